//! `smc-analyze export --parquet DIR`: the export tables (defined once in
//! [`super`]) as Parquet files, so large recordings can be queried with
//! DuckDB, Spark or DataFusion without parsing text.
//!
//! Our own writer of the Parquet format (apache/parquet-format, README and
//! `parquet.thrift`), not the `parquet` crate: that crate (and every other
//! Rust Parquet writer, polars' included) is licensed Apache-2.0 only, which
//! the FSF holds incompatible with the GPL-2.0-only smc-analyze. The tables
//! are flat and small-typed, so the subset needed is small:
//!
//! - file: `PAR1`, the row groups, the footer (`FileMetaData` in the Thrift
//!   compact protocol, [`thrift`]), its length (u32 LE), `PAR1`;
//! - schema: one primitive leaf per column: INT64 for integers (signed, so
//!   every engine reads a plain 64-bit integer), BYTE_ARRAY with the STRING
//!   logical type (and the UTF8 converted type for old readers) for text,
//!   BOOLEAN; a column that can be an empty CSV cell is OPTIONAL (null),
//!   every other REQUIRED;
//! - a row group every `row_group_rows` rows: one column chunk per column,
//!   made of v1 data pages of about [`PAGE_BYTES`] of values (at most
//!   [`PAGE_ROWS`] rows), PLAIN encoded;
//!   OPTIONAL columns carry their definition levels (1 = value, 0 = null) in
//!   the RLE/bit-packed hybrid encoding; pages are zstd-compressed (or not)
//!   and carry a CRC32;
//! - chunk statistics: null count, and the min and max value (with the
//!   type-defined column order) when cheap: always for integers and booleans,
//!   for text when both are at most [`MAX_TEXT_STAT`] bytes.
//!
//! Memory is bounded by one row group: rows are buffered column by column
//! and written when the group is full.

mod thrift;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use super::{check_row, Column, Kind, TableWriter, Value};

/// Uncompressed value bytes after which a data page is cut: big enough for
/// compression to work, small enough for readers to skip pages.
pub const PAGE_BYTES: usize = 1 << 20;

/// Rows after which a data page is cut even if its values are small (a
/// column of nulls has no value bytes; a page counts its rows in an i32).
pub const PAGE_ROWS: usize = 1 << 20;

/// Longest text min/max written into the statistics (longer text would
/// bloat the footer for little pruning value).
pub const MAX_TEXT_STAT: usize = 64;

/// The zstd level of `--parquet-compression zstd` (zstd's default).
const ZSTD_LEVEL: i32 = 3;

const MAGIC: &[u8; 4] = b"PAR1";

// Values of parquet.thrift's enums.
const TYPE_BOOLEAN: i32 = 0;
const TYPE_INT64: i32 = 2;
const TYPE_BYTE_ARRAY: i32 = 6;
const REQUIRED: i32 = 0;
const OPTIONAL: i32 = 1;
const CONVERTED_UTF8: i32 = 0;
const ENCODING_PLAIN: i32 = 0;
const ENCODING_RLE: i32 = 3;
const CODEC_UNCOMPRESSED: i32 = 0;
const CODEC_ZSTD: i32 = 6;
const PAGE_DATA: i32 = 0;

/// How the pages of a Parquet file are compressed (`--parquet-compression`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Compression {
    /// zstd level 3: 3 to 7 times smaller than uncompressed (pingpong fixture, synthetic recordings).
    Zstd,
    /// Uncompressed pages: larger files, a little less CPU.
    None,
}

/// The buffered values of one column in the current row group: only the
/// non-null values, plus one flag per row (value present) for OPTIONAL
/// columns.
enum Values {
    Int(Vec<i64>),
    /// Text as one byte buffer and the end offset of each value.
    Text {
        bytes: Vec<u8>,
        ends: Vec<usize>,
    },
    Bool(Vec<bool>),
}

impl Values {
    fn len(&self) -> usize {
        match self {
            Values::Int(v) => v.len(),
            Values::Text { ends, .. } => ends.len(),
            Values::Bool(v) => v.len(),
        }
    }

    fn text<'a>(bytes: &'a [u8], ends: &[usize], i: usize) -> &'a [u8] {
        let start = if i == 0 { 0 } else { ends[i - 1] };
        &bytes[start..ends[i]]
    }

    /// PLAIN size of value `i` (booleans: rounded up per page).
    fn plain_len(&self, i: usize) -> usize {
        match self {
            Values::Int(_) => 8,
            Values::Text { bytes, ends } => 4 + Values::text(bytes, ends, i).len(),
            Values::Bool(_) => 1,
        }
    }

    /// Append the PLAIN encoding of values `range` to `out`.
    fn plain(&self, range: std::ops::Range<usize>, out: &mut Vec<u8>) {
        match self {
            Values::Int(v) => v[range]
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Values::Text { bytes, ends } => {
                for i in range {
                    let s = Values::text(bytes, ends, i);
                    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                    out.extend_from_slice(s);
                }
            }
            // Bit-packed, least significant bit first.
            Values::Bool(v) => out.extend(v[range].chunks(8).map(|c| {
                c.iter()
                    .enumerate()
                    .fold(0u8, |b, (k, &x)| b | (u8::from(x) << k))
            })),
        }
    }

    /// The PLAIN bytes (no length prefix for text) of the min and max value.
    fn min_max(&self) -> Option<(Vec<u8>, Vec<u8>)> {
        match self {
            Values::Int(v) => Some((
                v.iter().min()?.to_le_bytes().to_vec(),
                v.iter().max()?.to_le_bytes().to_vec(),
            )),
            Values::Text { bytes, ends } => {
                let all = (0..ends.len()).map(|i| Values::text(bytes, ends, i));
                let (min, max) = (all.clone().min()?, all.max()?);
                (min.len() <= MAX_TEXT_STAT && max.len() <= MAX_TEXT_STAT)
                    .then(|| (min.to_vec(), max.to_vec()))
            }
            Values::Bool(v) => Some((
                vec![u8::from(v.iter().all(|&x| x))],
                vec![u8::from(v.iter().any(|&x| x))],
            )),
        }
    }

    fn clear(&mut self) {
        match self {
            Values::Int(v) => v.clear(),
            Values::Text { bytes, ends } => {
                bytes.clear();
                ends.clear();
            }
            Values::Bool(v) => v.clear(),
        }
    }
}

struct ColumnBuffer {
    values: Values,
    /// Per row: is there a value (OPTIONAL columns only).
    present: Vec<bool>,
}

/// Append `levels` (bit width 1) in the RLE/bit-packed hybrid encoding: a
/// run of 8 or more equal levels is one RLE run (header `count << 1`, then
/// the value in one byte); anything else goes into bit-packed runs (header
/// `groups << 1 | 1`, then 8 levels per byte, first level in the lowest
/// bit). A bit-packed run holds whole groups of 8, so it may swallow the
/// start of a long run; only the last group is padded with zeros.
fn rle_hybrid_bits(levels: &[bool], out: &mut Vec<u8>) {
    let run_at = |i: usize| levels[i..].iter().take_while(|&&x| x == levels[i]).count();
    let varint = |out: &mut Vec<u8>, mut v: u64| {
        while v >= 0x80 {
            out.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    };
    let mut i = 0;
    while i < levels.len() {
        let run = run_at(i);
        if run >= 8 {
            varint(out, (run as u64) << 1);
            out.push(u8::from(levels[i]));
            i += run;
            continue;
        }
        let mut packed = Vec::new();
        while i < levels.len() {
            let group = &levels[i..levels.len().min(i + 8)];
            packed.push(
                group
                    .iter()
                    .enumerate()
                    .fold(0u8, |b, (k, &x)| b | (u8::from(x) << k)),
            );
            i += 8;
            if i >= levels.len() || run_at(i) >= 8 {
                break;
            }
        }
        varint(out, ((packed.len() as u64) << 1) | 1);
        out.extend_from_slice(&packed);
    }
}

/// What the footer needs to know about one written column chunk.
struct ChunkMeta {
    data_page_offset: i64,
    num_values: i64,
    uncompressed: i64,
    compressed: i64,
    null_count: i64,
    min_max: Option<(Vec<u8>, Vec<u8>)>,
}

struct RowGroupMeta {
    chunks: Vec<ChunkMeta>,
    num_rows: i64,
    file_offset: i64,
}

/// One table being written as a Parquet file.
pub struct ParquetTable {
    path: PathBuf,
    table: String,
    columns: Vec<Column>,
    out: BufWriter<File>,
    /// Bytes written so far (the offset of the next byte).
    pos: u64,
    buffers: Vec<ColumnBuffer>,
    rows: usize,
    row_group_rows: usize,
    compressor: Option<zstd::bulk::Compressor<'static>>,
    row_groups: Vec<RowGroupMeta>,
    /// Reused page buffer.
    page: Vec<u8>,
}

impl ParquetTable {
    /// Create `path` for a table named `table` with `columns`; rows are
    /// written in row groups of at most `row_group_rows` (at least 1).
    pub fn create(
        path: PathBuf,
        table: &str,
        columns: Vec<Column>,
        row_group_rows: usize,
        compression: Compression,
    ) -> Result<ParquetTable, String> {
        let fail = |e: &dyn std::fmt::Display| format!("{}: cannot create: {e}", path.display());
        let compressor = match compression {
            Compression::Zstd => {
                Some(zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(|e| fail(&e))?)
            }
            Compression::None => None,
        };
        let file = File::create(&path).map_err(|e| fail(&e))?;
        let buffers = columns
            .iter()
            .map(|c| ColumnBuffer {
                values: match c.kind {
                    Kind::Int | Kind::Code => Values::Int(Vec::new()),
                    Kind::Text => Values::Text {
                        bytes: Vec::new(),
                        ends: Vec::new(),
                    },
                    Kind::Bool => Values::Bool(Vec::new()),
                },
                present: Vec::new(),
            })
            .collect();
        let mut t = ParquetTable {
            path,
            table: table.to_string(),
            columns,
            out: BufWriter::with_capacity(1 << 20, file),
            pos: 0,
            buffers,
            rows: 0,
            row_group_rows: row_group_rows.max(1),
            compressor,
            row_groups: Vec::new(),
            page: Vec::new(),
        };
        t.write(MAGIC)?;
        Ok(t)
    }

    fn write(&mut self, b: &[u8]) -> Result<(), String> {
        self.out
            .write_all(b)
            .map_err(|e| format!("{}: write failed: {e}", self.path.display()))?;
        self.pos += b.len() as u64;
        Ok(())
    }

    /// Write one data page of column `c`: rows `rows` holding values `vals`.
    /// Returns (uncompressed, compressed) sizes including the header.
    fn write_page(
        &mut self,
        c: usize,
        rows: std::ops::Range<usize>,
        vals: std::ops::Range<usize>,
    ) -> Result<(i64, i64), String> {
        let mut page = std::mem::take(&mut self.page);
        page.clear();
        let b = &self.buffers[c];
        if self.columns[c].nullable {
            page.extend_from_slice(&[0; 4]);
            rle_hybrid_bits(&b.present[rows.clone()], &mut page);
            let n = (page.len() - 4) as u32;
            page[..4].copy_from_slice(&n.to_le_bytes());
        }
        b.values.plain(vals, &mut page);
        let too_big = |n: usize| {
            i32::try_from(n)
                .map_err(|_| format!("{}: internal error: page of {n} bytes", self.path.display()))
        };
        let uncompressed = too_big(page.len())?;
        let compressed_page;
        let body: &[u8] = match &mut self.compressor {
            Some(z) => {
                compressed_page = z
                    .compress(&page)
                    .map_err(|e| format!("{}: zstd failed: {e}", self.path.display()))?;
                &compressed_page
            }
            None => &page,
        };
        let compressed = too_big(body.len())?;
        let mut h = thrift::Writer::new();
        h.i32(1, PAGE_DATA)
            .i32(2, uncompressed)
            .i32(3, compressed)
            .i32(4, crc32fast::hash(body) as i32);
        h.begin(5)
            .i32(1, too_big(rows.len())?)
            .i32(2, ENCODING_PLAIN)
            .i32(3, ENCODING_RLE)
            .i32(4, ENCODING_RLE)
            .end();
        let header = h.finish();
        self.write(&header)?;
        self.write(body)?;
        let sizes = (
            (header.len() + page.len()) as i64,
            (header.len() + body.len()) as i64,
        );
        self.page = page;
        Ok(sizes)
    }

    /// Write the buffered rows as one row group.
    fn flush_row_group(&mut self) -> Result<(), String> {
        if self.rows == 0 {
            return Ok(());
        }
        let file_offset = self.pos as i64;
        let mut chunks = Vec::with_capacity(self.columns.len());
        for c in 0..self.columns.len() {
            let data_page_offset = self.pos as i64;
            let (mut uncompressed, mut compressed) = (0, 0);
            // Cut pages at row boundaries once PAGE_BYTES of values or PAGE_ROWS rows are in.
            let (mut row0, mut val0, mut val, mut bytes) = (0, 0, 0, 0);
            for row in 0..self.rows {
                let b = &self.buffers[c];
                if !self.columns[c].nullable || b.present[row] {
                    bytes += b.values.plain_len(val);
                    val += 1;
                }
                if bytes >= PAGE_BYTES || row + 1 - row0 >= PAGE_ROWS || row + 1 == self.rows {
                    let (u, z) = self.write_page(c, row0..row + 1, val0..val)?;
                    uncompressed += u;
                    compressed += z;
                    (row0, val0, bytes) = (row + 1, val, 0);
                }
            }
            let b = &self.buffers[c];
            chunks.push(ChunkMeta {
                data_page_offset,
                num_values: self.rows as i64,
                uncompressed,
                compressed,
                null_count: (self.rows - b.values.len()) as i64,
                min_max: b.values.min_max(),
            });
        }
        self.row_groups.push(RowGroupMeta {
            chunks,
            num_rows: self.rows as i64,
            file_offset,
        });
        for b in &mut self.buffers {
            b.values.clear();
            b.present.clear();
        }
        self.rows = 0;
        Ok(())
    }

    /// The footer: parquet.thrift's `FileMetaData`.
    fn file_metadata(&self) -> Vec<u8> {
        let mut w = thrift::Writer::new();
        w.i32(1, 1); // version
        w.list(2, thrift::STRUCT, self.columns.len() + 1);
        w.enter()
            .binary(4, self.table.as_bytes())
            .i32(5, self.columns.len() as i32)
            .end();
        for c in &self.columns {
            w.enter();
            w.i32(
                1,
                match c.kind {
                    Kind::Int | Kind::Code => TYPE_INT64,
                    Kind::Text => TYPE_BYTE_ARRAY,
                    Kind::Bool => TYPE_BOOLEAN,
                },
            );
            w.i32(3, if c.nullable { OPTIONAL } else { REQUIRED });
            w.binary(4, c.name.as_bytes());
            if c.kind == Kind::Text {
                w.i32(6, CONVERTED_UTF8);
                w.begin(10).begin(1).end().end(); // LogicalType { STRING: StringType {} }
            }
            w.end();
        }
        w.i64(3, self.row_groups.iter().map(|g| g.num_rows).sum());
        w.list(4, thrift::STRUCT, self.row_groups.len());
        for (ordinal, g) in self.row_groups.iter().enumerate() {
            w.enter();
            w.list(1, thrift::STRUCT, g.chunks.len());
            for (c, m) in self.columns.iter().zip(&g.chunks) {
                w.enter().i64(2, 0); // ColumnChunk.file_offset: deprecated, 0
                w.begin(3); // ColumnMetaData
                w.i32(
                    1,
                    match c.kind {
                        Kind::Int | Kind::Code => TYPE_INT64,
                        Kind::Text => TYPE_BYTE_ARRAY,
                        Kind::Bool => TYPE_BOOLEAN,
                    },
                );
                if c.nullable {
                    w.list(2, thrift::I32, 2)
                        .list_i32(ENCODING_PLAIN)
                        .list_i32(ENCODING_RLE);
                } else {
                    w.list(2, thrift::I32, 1).list_i32(ENCODING_PLAIN);
                }
                w.list(3, thrift::BINARY, 1).list_binary(c.name.as_bytes());
                w.i32(
                    4,
                    if self.compressor.is_some() {
                        CODEC_ZSTD
                    } else {
                        CODEC_UNCOMPRESSED
                    },
                );
                w.i64(5, m.num_values)
                    .i64(6, m.uncompressed)
                    .i64(7, m.compressed)
                    .i64(9, m.data_page_offset);
                w.begin(12).i64(3, m.null_count); // Statistics
                if let Some((min, max)) = &m.min_max {
                    w.binary(5, max).binary(6, min).bool(7, true).bool(8, true);
                }
                w.end().end().end();
            }
            w.i64(2, g.chunks.iter().map(|m| m.uncompressed).sum());
            w.i64(3, g.num_rows);
            w.i64(5, g.file_offset);
            w.i64(6, g.chunks.iter().map(|m| m.compressed).sum());
            if let Ok(o) = i16::try_from(ordinal) {
                w.i16(7, o);
            }
            w.end();
        }
        w.binary(
            6,
            format!("smc-analyze version {}", env!("CARGO_PKG_VERSION")).as_bytes(),
        );
        // column_orders: TypeDefinedOrder for every column, so readers trust min/max.
        w.list(7, thrift::STRUCT, self.columns.len());
        for _ in &self.columns {
            w.enter().begin(1).end().end();
        }
        w.finish()
    }
}

impl TableWriter for ParquetTable {
    fn row(&mut self, row: &[Value]) -> Result<(), String> {
        check_row(&self.path, &self.columns, row)?;
        for ((b, v), c) in self.buffers.iter_mut().zip(row).zip(&self.columns) {
            if c.nullable {
                b.present.push(*v != Value::Null);
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
                _ => {
                    return Err(format!(
                        "{}: internal error: value {v:?} in a column of another type",
                        self.path.display()
                    ))
                }
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
        let footer = self.file_metadata();
        let len = u32::try_from(footer.len()).map_err(|_| {
            format!(
                "{}: internal error: footer of {} bytes",
                self.path.display(),
                footer.len()
            )
        })?;
        self.write(&footer)?;
        self.write(&len.to_le_bytes())?;
        self.write(MAGIC)?;
        let path = self.path.clone();
        let file = self
            .out
            .into_inner()
            .map_err(|e| format!("{}: write failed: {}", path.display(), e.error()))?;
        file.sync_all()
            .map_err(|e| format!("{}: write failed: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decode the hybrid encoding (bit width 1) back, for the round trip.
    fn decode(mut b: &[u8], n: usize) -> Vec<bool> {
        let mut out = Vec::new();
        while out.len() < n {
            let (mut h, mut shift) = (0u64, 0);
            loop {
                let x = b[0];
                b = &b[1..];
                h |= u64::from(x & 0x7f) << shift;
                shift += 7;
                if x < 0x80 {
                    break;
                }
            }
            if h & 1 == 0 {
                let v = b[0] != 0;
                b = &b[1..];
                out.extend(std::iter::repeat_n(v, (h >> 1) as usize));
            } else {
                for _ in 0..(h >> 1) {
                    out.extend((0..8).map(|k| b[0] >> k & 1 == 1));
                    b = &b[1..];
                }
            }
        }
        assert!(b.is_empty(), "trailing bytes");
        out.truncate(n);
        out
    }

    /// Rows of a table that needs several pages per chunk (long text),
    /// several row groups, nulls in runs and alone, all-null chunks.
    fn sample_rows(n: usize) -> Vec<Vec<Value>> {
        (0..n)
            .map(|i| {
                vec![
                    Value::Int(i as i64 - 7),
                    if i % 3 == 0 {
                        Value::Null
                    } else {
                        Value::Text(format!("{i:05}-{}", "x".repeat((i * 7) % 4000)).into())
                    },
                    if i % 5 == 1 {
                        Value::Null
                    } else {
                        Value::Bool(i % 2 == 0)
                    },
                    // null for whole row groups of 1000 (rows 1000..2000), else a value
                    if (1000..2000).contains(&i) {
                        Value::Null
                    } else {
                        Value::Int(-(i as i64) * 1_000_000_007)
                    },
                    Value::Text(["", "é", "zz"][i % 3].into()),
                ]
            })
            .collect()
    }

    fn sample_columns() -> Vec<Column> {
        let c = |name: &str, kind, nullable| Column {
            name: name.into(),
            kind,
            nullable,
        };
        vec![
            c("id", Kind::Int, false),
            c("text", Kind::Text, true),
            c("flag", Kind::Bool, true),
            c("big", Kind::Int, true),
            c("short", Kind::Text, false),
        ]
    }

    /// Our file read back by the `parquet` crate (a dev-dependency only):
    /// every value, every page's CRC (its `crc` feature), several pages per
    /// chunk, the statistics.
    #[test]
    fn parquet_crate_reads_back_pages_row_groups_and_statistics() {
        use ::parquet::file::reader::{FileReader, SerializedFileReader};
        use ::parquet::file::statistics::Statistics;
        use ::parquet::record::Field;
        for compression in [Compression::Zstd, Compression::None] {
            let path = std::env::temp_dir().join(format!(
                "smc-analyze-pq-unit-{}-{compression:?}.parquet",
                std::process::id()
            ));
            let rows = sample_rows(2500);
            let mut t = Box::new(
                ParquetTable::create(path.clone(), "sample", sample_columns(), 1000, compression)
                    .unwrap(),
            );
            for r in &rows {
                t.row(r).unwrap();
            }
            t.finish().unwrap();
            let r = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
            let md = r.metadata();
            assert_eq!(md.file_metadata().num_rows(), 2500);
            assert_eq!(
                (0..md.num_row_groups())
                    .map(|g| md.row_group(g).num_rows())
                    .collect::<Vec<_>>(),
                [1000, 1000, 500]
            );
            let mut got = Vec::new();
            for row in r.get_row_iter(None).unwrap() {
                got.push(
                    row.unwrap()
                        .get_column_iter()
                        .map(|(_, f)| f.clone())
                        .collect::<Vec<_>>(),
                );
            }
            let want: Vec<Vec<Field>> = rows
                .iter()
                .map(|r| {
                    r.iter()
                        .map(|v| match v {
                            Value::Null => Field::Null,
                            Value::Int(i) => Field::Long(*i),
                            Value::Text(s) => Field::Str(s.to_string()),
                            Value::Bool(b) => Field::Bool(*b),
                        })
                        .collect()
                })
                .collect();
            assert_eq!(got.len(), want.len());
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g, w, "row {i}");
            }
            // The long text of each row group is over PAGE_BYTES: several pages.
            let rg = r.get_row_group(0).unwrap();
            let pages = rg
                .get_column_page_reader(1)
                .unwrap()
                .map(|p| p.unwrap().num_values())
                .collect::<Vec<_>>();
            assert!(pages.len() > 1, "pages {pages:?}");
            assert_eq!(pages.iter().sum::<u32>(), 1000);
            // Statistics of every chunk, against the rows of its group.
            for g in 0..md.num_row_groups() {
                let part = &rows[g * 1000..(g * 1000 + 1000).min(rows.len())];
                for (c, col) in sample_columns().iter().enumerate() {
                    let vals: Vec<&Value> = part
                        .iter()
                        .map(|r| &r[c])
                        .filter(|v| **v != Value::Null)
                        .collect();
                    let st = md
                        .row_group(g)
                        .column(c)
                        .statistics()
                        .unwrap_or_else(|| panic!("rg {g} {}: no statistics", col.name));
                    assert_eq!(
                        st.null_count_opt(),
                        Some((part.len() - vals.len()) as u64),
                        "rg {g} {}",
                        col.name
                    );
                    match st {
                        Statistics::Int64(s) => {
                            let ints: Vec<i64> = vals
                                .iter()
                                .map(|v| {
                                    if let Value::Int(i) = v {
                                        *i
                                    } else {
                                        unreachable!()
                                    }
                                })
                                .collect();
                            assert_eq!(
                                (s.min_opt(), s.max_opt()),
                                (ints.iter().min(), ints.iter().max()),
                                "rg {g} {}",
                                col.name
                            );
                        }
                        Statistics::Boolean(s) => {
                            let b: Vec<bool> =
                                vals.iter().map(|v| *v == &Value::Bool(true)).collect();
                            assert_eq!(
                                (s.min_opt(), s.max_opt()),
                                (b.iter().min(), b.iter().max()),
                                "rg {g} {}",
                                col.name
                            );
                        }
                        Statistics::ByteArray(s) => {
                            let t: Vec<&[u8]> = vals
                                .iter()
                                .map(|v| {
                                    if let Value::Text(t) = v {
                                        t.as_bytes()
                                    } else {
                                        unreachable!()
                                    }
                                })
                                .collect();
                            let (min, max) = (t.iter().min().copied(), t.iter().max().copied());
                            if min.is_some_and(|m| m.len() > MAX_TEXT_STAT)
                                || max.is_some_and(|m| m.len() > MAX_TEXT_STAT)
                            {
                                assert!(
                                    s.min_opt().is_none() && s.max_opt().is_none(),
                                    "rg {g} {}: long text has no min/max",
                                    col.name
                                );
                            } else {
                                assert_eq!(
                                    (s.min_opt().map(|x| x.data()), s.max_opt().map(|x| x.data())),
                                    (min, max),
                                    "rg {g} {}",
                                    col.name
                                );
                            }
                        }
                        other => panic!("{}: statistics {other:?}", col.name),
                    }
                }
            }
            let codec = md.row_group(0).column(0).compression();
            assert_eq!(
                format!("{codec:?}").starts_with("ZSTD"),
                compression == Compression::Zstd,
                "{codec:?}"
            );
            std::fs::remove_file(&path).unwrap();
        }
    }

    /// A chunk of nulls has no value bytes: its pages are cut by rows.
    #[test]
    fn null_pages_are_cut_by_rows() {
        use ::parquet::file::reader::{FileReader, SerializedFileReader};
        let path = std::env::temp_dir().join(format!(
            "smc-analyze-pq-nulls-{}.parquet",
            std::process::id()
        ));
        let cols = vec![Column {
            name: "n".into(),
            kind: Kind::Int,
            nullable: true,
        }];
        let rows = PAGE_ROWS + PAGE_ROWS / 2;
        let mut t = Box::new(
            ParquetTable::create(path.clone(), "nulls", cols, rows, Compression::Zstd).unwrap(),
        );
        for _ in 0..rows {
            t.row(&[Value::Null]).unwrap();
        }
        t.finish().unwrap();
        let r = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
        let pages: Vec<u32> = r
            .get_row_group(0)
            .unwrap()
            .get_column_page_reader(0)
            .unwrap()
            .map(|p| p.unwrap().num_values())
            .collect();
        assert_eq!(pages, [PAGE_ROWS as u32, (PAGE_ROWS / 2) as u32]);
        assert_eq!(
            r.get_row_iter(None)
                .unwrap()
                .filter(|x| x
                    .as_ref()
                    .unwrap()
                    .get_column_iter()
                    .all(|(_, f)| *f == ::parquet::record::Field::Null))
                .count(),
            rows
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn empty_table_is_a_valid_file() {
        use ::parquet::file::reader::{FileReader, SerializedFileReader};
        let path = std::env::temp_dir().join(format!(
            "smc-analyze-pq-empty-{}.parquet",
            std::process::id()
        ));
        Box::new(
            ParquetTable::create(
                path.clone(),
                "empty",
                sample_columns(),
                10,
                Compression::Zstd,
            )
            .unwrap(),
        )
        .finish()
        .unwrap();
        let r = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
        assert_eq!(r.metadata().num_row_groups(), 0);
        assert_eq!(r.metadata().file_metadata().schema_descr().num_columns(), 5);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn rle_hybrid_known_bytes() {
        let mut out = Vec::new();
        rle_hybrid_bits(&[true; 100], &mut out);
        assert_eq!(out, [200, 1, 1]); // varint(100 << 1), value 1
        out.clear();
        rle_hybrid_bits(&[true, false, true], &mut out);
        assert_eq!(out, [0b11, 0b101]); // one bit-packed group
    }

    #[test]
    fn rle_hybrid_round_trips() {
        // Mixed patterns: short alternations, long runs starting mid-group, tails.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for n in [0, 1, 7, 8, 9, 15, 16, 17, 100, 1000] {
            for style in 0..4 {
                let levels: Vec<bool> = (0..n)
                    .map(|i| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        match style {
                            0 => seed & 1 == 0,
                            1 => (i / 13) % 2 == 0,
                            2 => i % 3 == 0 || (i > n / 2),
                            _ => !seed.is_multiple_of(10),
                        }
                    })
                    .collect();
                let mut out = Vec::new();
                rle_hybrid_bits(&levels, &mut out);
                assert_eq!(decode(&out, n), levels, "n={n} style={style}");
            }
        }
    }
}
