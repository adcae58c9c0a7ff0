//! `smc-analyze export --parquet DIR`: the export tables (defined once in
//! [`super`]) as Parquet files, so large recordings can be queried with
//! DuckDB, Spark or DataFusion without parsing text.
//!
//! Written with the `parquet` crate's low-level column writer (no Arrow:
//! it would multiply the build time). Types: integers are INT64 (signed, so
//! every engine reads them as a plain 64-bit integer), text is UTF-8
//! (BYTE_ARRAY, logical type String), booleans BOOLEAN; a column that can be
//! an empty CSV cell is OPTIONAL (null), every other REQUIRED. Pages are
//! zstd-compressed. Rows are buffered column by column and written as one
//! row group every `row_group_rows` rows, so memory is bounded by the row
//! group, not by the file.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use ::parquet::basic::{Compression, LogicalType, Repetition, Type as Physical, ZstdLevel};
use ::parquet::data_type::{BoolType, ByteArray, ByteArrayType, Int64Type};
use ::parquet::file::properties::WriterProperties;
use ::parquet::file::writer::SerializedFileWriter;
use ::parquet::schema::types::Type;

use super::{check_row, Column, Kind, TableWriter, Value};

/// The buffered values of one column in the current row group: only the
/// non-null values, plus one definition level per row (1 = value present,
/// 0 = null) for OPTIONAL columns.
enum Values {
    Int(Vec<i64>),
    /// Text as one byte buffer and the end offset of each value: a
    /// `ByteArray` per cell would cost an allocation and ~64 bytes each;
    /// they are made one column at a time when the row group is written.
    Text { bytes: Vec<u8>, ends: Vec<usize> },
    Bool(Vec<bool>),
}

struct ColumnBuffer {
    values: Values,
    def: Vec<i16>,
}

impl ColumnBuffer {
    fn clear(&mut self) {
        match &mut self.values {
            Values::Int(v) => v.clear(),
            Values::Text { bytes, ends } => {
                bytes.clear();
                ends.clear();
            }
            Values::Bool(v) => v.clear(),
        }
        self.def.clear();
    }
}

/// The Parquet schema of a table: one primitive field per column.
fn schema(table: &str, columns: &[Column]) -> ::parquet::errors::Result<Type> {
    let fields = columns
        .iter()
        .map(|c| {
            let (physical, logical) = match c.kind {
                Kind::Int | Kind::Code => (Physical::INT64, None),
                Kind::Text => (Physical::BYTE_ARRAY, Some(LogicalType::String)),
                Kind::Bool => (Physical::BOOLEAN, None),
            };
            Type::primitive_type_builder(&c.name, physical)
                .with_repetition(if c.nullable { Repetition::OPTIONAL } else { Repetition::REQUIRED })
                .with_logical_type(logical)
                .build()
                .map(Arc::new)
        })
        .collect::<::parquet::errors::Result<Vec<_>>>()?;
    Type::group_type_builder(table).with_fields(fields).build()
}

/// One table being written as a Parquet file.
pub struct ParquetTable {
    path: PathBuf,
    columns: Vec<Column>,
    writer: SerializedFileWriter<File>,
    buffers: Vec<ColumnBuffer>,
    rows: usize,
    row_group_rows: usize,
}

impl ParquetTable {
    /// Create `path` with the schema of `columns`; rows are written in row
    /// groups of at most `row_group_rows` (at least 1).
    pub fn create(path: PathBuf, table: &str, columns: Vec<Column>, row_group_rows: usize) -> Result<ParquetTable, String> {
        let fail = |e: &dyn std::fmt::Display| format!("{}: cannot create: {e}", path.display());
        let schema = Arc::new(schema(table, &columns).map_err(|e| fail(&e))?);
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).map_err(|e| fail(&e))?))
            .set_created_by(format!("smc-analyze {}", env!("CARGO_PKG_VERSION")))
            .build();
        let file = File::create(&path).map_err(|e| fail(&e))?;
        let writer = SerializedFileWriter::new(file, schema, Arc::new(props)).map_err(|e| fail(&e))?;
        let buffers = columns
            .iter()
            .map(|c| ColumnBuffer {
                values: match c.kind {
                    Kind::Int | Kind::Code => Values::Int(Vec::new()),
                    Kind::Text => Values::Text { bytes: Vec::new(), ends: Vec::new() },
                    Kind::Bool => Values::Bool(Vec::new()),
                },
                def: Vec::new(),
            })
            .collect();
        Ok(ParquetTable { path, columns, writer, buffers, rows: 0, row_group_rows: row_group_rows.max(1) })
    }

    /// Write the buffered rows as one row group.
    fn flush_row_group(&mut self) -> Result<(), String> {
        if self.rows == 0 {
            return Ok(());
        }
        let fail = |e: ::parquet::errors::ParquetError| format!("{}: write failed: {e}", self.path.display());
        let mut rg = self.writer.next_row_group().map_err(fail)?;
        for (c, b) in self.columns.iter().zip(&self.buffers) {
            let mut w = rg
                .next_column()
                .map_err(fail)?
                .ok_or_else(|| format!("{}: internal error: schema has no column {}", self.path.display(), c.name))?;
            let def = c.nullable.then_some(&b.def[..]);
            match &b.values {
                Values::Int(v) => w.typed::<Int64Type>().write_batch(v, def, None),
                Values::Text { bytes, ends } => {
                    let starts = std::iter::once(0).chain(ends.iter().copied());
                    let v: Vec<ByteArray> = starts.zip(ends).map(|(a, &b)| ByteArray::from(&bytes[a..b])).collect();
                    w.typed::<ByteArrayType>().write_batch(&v, def, None)
                }
                Values::Bool(v) => w.typed::<BoolType>().write_batch(v, def, None),
            }
            .map_err(fail)?;
            w.close().map_err(fail)?;
        }
        rg.close().map_err(fail)?;
        for b in &mut self.buffers {
            b.clear();
        }
        self.rows = 0;
        Ok(())
    }
}

impl TableWriter for ParquetTable {
    fn row(&mut self, row: &[Value]) -> Result<(), String> {
        check_row(&self.path, &self.columns, row)?;
        for ((b, v), c) in self.buffers.iter_mut().zip(row).zip(&self.columns) {
            if c.nullable {
                b.def.push(if *v == Value::Null { 0 } else { 1 });
            }
            match (&mut b.values, v) {
                (_, Value::Null) => {}
                (Values::Int(x), Value::Int(i)) => x.push(*i),
                (Values::Text { bytes, ends }, Value::Text(s)) => {
                    bytes.extend_from_slice(s.as_bytes());
                    ends.push(bytes.len());
                }
                (Values::Bool(x), Value::Bool(y)) => x.push(*y),
                // check_row has matched every value to its column's kind.
                _ => return Err(format!("{}: internal error: value {v:?} in a column of another type", self.path.display())),
            }
        }
        self.rows += 1;
        if self.rows >= self.row_group_rows {
            self.flush_row_group()?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), String> {
        self.flush_row_group()?;
        let path = self.path.clone();
        self.writer.close().map_err(|e| format!("{}: write failed: {e}", path.display()))?;
        Ok(())
    }
}
