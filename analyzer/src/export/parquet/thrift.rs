//! The Thrift compact protocol, write side only, as much of it as a Parquet
//! footer and page header need: structs, lists, i16/i32/i64, bool and
//! binary fields. Parquet's metadata (`parquet.thrift` in apache/parquet-format)
//! is defined as Thrift structs serialized this way; writing the few structs
//! by hand keeps the Apache-2.0-only Thrift and Parquet crates out of the
//! GPL-2.0 binary (see docs/analyzer.md, export).
//!
//! Encoding (Thrift's compact protocol spec): integers are zigzag varints;
//! a field header is one byte `delta << 4 | type` when the field id is 1..15
//! above the previous field of the same struct, else the type byte and the
//! id as a zigzag varint; bool fields carry their value in the type; a
//! struct ends with a 0 byte; a list header is `size << 4 | element type`
//! (size < 15) or `0xF0 | element type` and the size as a varint.

/// Compact-protocol type ids.
pub const BOOL_TRUE: u8 = 1;
pub const BOOL_FALSE: u8 = 2;
pub const I16: u8 = 4;
pub const I32: u8 = 5;
pub const I64: u8 = 6;
pub const BINARY: u8 = 8;
pub const LIST: u8 = 9;
pub const STRUCT: u8 = 12;

/// A compact-protocol encoder of one top-level struct.
pub struct Writer {
    buf: Vec<u8>,
    /// The id of the last field written in the current struct.
    last: i16,
    /// `last` of the enclosing structs.
    stack: Vec<i16>,
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

impl Writer {
    pub fn new() -> Writer {
        Writer {
            buf: Vec::new(),
            last: 0,
            stack: Vec::new(),
        }
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    fn header(&mut self, id: i16, ty: u8) {
        let delta = i32::from(id) - i32::from(self.last);
        if (1..=15).contains(&delta) {
            self.buf.push(((delta as u8) << 4) | ty);
        } else {
            self.buf.push(ty);
            self.varint(zigzag(i64::from(id)));
        }
        self.last = id;
    }

    pub fn i16(&mut self, id: i16, v: i16) -> &mut Self {
        self.header(id, I16);
        self.varint(zigzag(i64::from(v)));
        self
    }

    pub fn i32(&mut self, id: i16, v: i32) -> &mut Self {
        self.header(id, I32);
        self.varint(zigzag(i64::from(v)));
        self
    }

    pub fn i64(&mut self, id: i16, v: i64) -> &mut Self {
        self.header(id, I64);
        self.varint(zigzag(v));
        self
    }

    pub fn bool(&mut self, id: i16, v: bool) -> &mut Self {
        self.header(id, if v { BOOL_TRUE } else { BOOL_FALSE });
        self
    }

    pub fn binary(&mut self, id: i16, v: &[u8]) -> &mut Self {
        self.header(id, BINARY);
        self.list_binary(v);
        self
    }

    /// Start a struct-typed field; close it with [`Writer::end`].
    pub fn begin(&mut self, id: i16) -> &mut Self {
        self.header(id, STRUCT);
        self.enter();
        self
    }

    /// Start a struct that is an element of a list (no field header).
    pub fn enter(&mut self) -> &mut Self {
        self.stack.push(self.last);
        self.last = 0;
        self
    }

    /// End the current struct (the stop byte).
    pub fn end(&mut self) -> &mut Self {
        self.buf.push(0);
        self.last = self.stack.pop().unwrap_or(0);
        self
    }

    /// Start a list field of `n` elements of compact type `elem`; the
    /// elements follow (`list_*`, or `enter`/`end` for structs).
    pub fn list(&mut self, id: i16, elem: u8, n: usize) -> &mut Self {
        self.header(id, LIST);
        if n < 15 {
            self.buf.push(((n as u8) << 4) | elem);
        } else {
            self.buf.push(0xf0 | elem);
            self.varint(n as u64);
        }
        self
    }

    pub fn list_i32(&mut self, v: i32) -> &mut Self {
        self.varint(zigzag(i64::from(v)));
        self
    }

    pub fn list_binary(&mut self, v: &[u8]) -> &mut Self {
        self.varint(v.len() as u64);
        self.buf.extend_from_slice(v);
        self
    }

    /// End the top-level struct and return its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        debug_assert!(self.stack.is_empty(), "unclosed Thrift struct");
        self.buf.push(0);
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_headers_varints_and_nesting() {
        let mut w = Writer::new();
        w.i32(1, 1) // short header: delta 1, type 5; zigzag(1) = 2
            .i64(3, -1) // delta 2; zigzag(-1) = 1
            .binary(20, b"ab") // delta 17: long header, zigzag(20) = 40
            .begin(21) // struct, delta 1
            .bool(1, true)
            .bool(2, false)
            .end()
            .list(22, I32, 2)
            .list_i32(300) // zigzag 600 = 0xd8 0x04
            .list_i32(-2)
            .i16(40, 0);
        let want = [
            0x15, 0x02, //
            0x26, 0x01, //
            0x08, 0x28, 0x02, b'a', b'b', //
            0x1c, 0x11, 0x12, 0x00, //
            0x19, 0x25, 0xd8, 0x04, 0x03, //
            0x04, 0x50, 0x00, //
            0x00,
        ];
        assert_eq!(w.finish(), want);
    }

    #[test]
    fn long_list_header() {
        let mut w = Writer::new();
        w.list(1, BINARY, 20);
        for _ in 0..20 {
            w.list_binary(b"");
        }
        let b = w.finish();
        assert_eq!(&b[..3], &[0x19, 0xf8, 20]);
        assert_eq!(b.len(), 3 + 20 + 1);
    }
}
