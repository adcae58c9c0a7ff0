//! Bounds-checked reading and writing of netlink attributes (TLVs).
//!
//! The SMC families are not modelled by any netlink crate, so replies are walked here with
//! `netlink-packet-core`'s checked `NlasIterator`; every value read checks its length, and
//! a short or malformed attribute is a decode error, never a panic.

use netlink_packet_core::{DefaultNla, Emitable, NlasIterator, NLA_TYPE_MASK};

/// One decoded attribute: type (flags masked off) and value bytes.
#[derive(Debug, Clone, Copy)]
pub struct Attr<'a> {
    pub kind: u16,
    pub value: &'a [u8],
    /// `NLA_F_NESTED` was set: the kernel's `nla_nest_start()` sets it on every nest.
    pub is_nest: bool,
}

impl<'a> Attr<'a> {
    pub fn u8(&self) -> Option<u8> {
        self.value.first().copied()
    }
    pub fn u16(&self) -> Option<u16> {
        self.value
            .get(..2)
            .map(|b| u16::from_ne_bytes([b[0], b[1]]))
    }
    pub fn u32(&self) -> Option<u32> {
        self.value
            .get(..4)
            .map(|b| u32::from_ne_bytes(b.try_into().unwrap_or_default()))
    }
    pub fn u64(&self) -> Option<u64> {
        self.value
            .get(..8)
            .map(|b| u64::from_ne_bytes(b.try_into().unwrap_or_default()))
    }
    /// A NUL-terminated (or not) string attribute, lossily decoded, trailing NULs dropped.
    pub fn string(&self) -> String {
        let end = self
            .value
            .iter()
            .position(|&c| c == 0)
            .unwrap_or(self.value.len());
        String::from_utf8_lossy(&self.value[..end]).into_owned()
    }
    /// An unsigned integer of whatever width the kernel used (1, 2, 4 or 8 bytes).
    pub fn uint(&self) -> Option<u64> {
        match self.value.len() {
            1 => self.u8().map(u64::from),
            2 => self.u16().map(u64::from),
            4 => self.u32().map(u64::from),
            8 => self.u64(),
            _ => None,
        }
    }
    pub fn nested(&self) -> Result<Vec<Attr<'a>>, String> {
        parse(self.value)
    }
}

/// Splits `buf` into attributes; fails on a truncated or inconsistent one.
pub fn parse(buf: &[u8]) -> Result<Vec<Attr<'_>>, String> {
    let mut out = Vec::new();
    for nla in NlasIterator::new(buf) {
        let nla = nla.map_err(|e| e.to_string())?;
        let kind = nla.kind() & NLA_TYPE_MASK;
        let is_nest = nla.nested_flag();
        let value_len = nla.value_length();
        let inner = nla.into_inner();
        let value = inner
            .get(4..4 + value_len)
            .ok_or_else(|| format!("attribute {kind} value out of bounds"))?;
        out.push(Attr {
            kind,
            value,
            is_nest,
        });
    }
    Ok(out)
}

/// First attribute of type `kind`.
pub fn find<'a>(attrs: &[Attr<'a>], kind: u16) -> Option<Attr<'a>> {
    attrs.iter().find(|a| a.kind == kind).copied()
}

/// Builds attribute bytes for a request.
#[derive(Default)]
pub struct Builder {
    nlas: Vec<DefaultNla>,
}

impl Builder {
    pub fn new() -> Builder {
        Builder::default()
    }
    pub fn bytes(mut self, kind: u16, value: &[u8]) -> Builder {
        self.nlas.push(DefaultNla::new(kind, value.to_vec()));
        self
    }
    /// A NUL-terminated string attribute.
    pub fn string(self, kind: u16, s: &str) -> Builder {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.bytes(kind, &v)
    }
    pub fn u8(self, kind: u16, v: u8) -> Builder {
        self.bytes(kind, &[v])
    }
    /// A nested attribute, flagged NLA_F_NESTED as the kernel's `nla_nest_start` does.
    #[cfg(test)]
    pub fn nested(self, kind: u16, inner: Vec<u8>) -> Builder {
        self.bytes(kind | netlink_packet_core::NLA_F_NESTED, &inner)
    }
    #[cfg(test)]
    pub fn u32(self, kind: u16, v: u32) -> Builder {
        self.bytes(kind, &v.to_ne_bytes())
    }
    #[cfg(test)]
    pub fn u64(self, kind: u16, v: u64) -> Builder {
        self.bytes(kind, &v.to_ne_bytes())
    }
    pub fn build(self) -> Vec<u8> {
        let nlas = self.nlas.as_slice();
        let mut buf = vec![0u8; nlas.buffer_len()];
        nlas.emit(&mut buf);
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_round_trips_through_parser() {
        let buf = Builder::new()
            .string(1, "NET1")
            .u8(4, 1)
            .bytes(2, &7u64.to_ne_bytes())
            .build();
        // 4 hdr + "NET1\0" padded to 8 = 12; 4 + 1 -> 8; 4 + 8 = 12
        assert_eq!(buf.len(), 32);
        let attrs = parse(&buf).unwrap();
        assert_eq!(attrs.len(), 3);
        assert_eq!(find(&attrs, 1).unwrap().string(), "NET1");
        assert_eq!(find(&attrs, 4).unwrap().u8(), Some(1));
        assert_eq!(find(&attrs, 2).unwrap().u64(), Some(7));
        assert_eq!(find(&attrs, 2).unwrap().uint(), Some(7));
    }

    #[test]
    fn truncated_attribute_is_an_error_not_a_panic() {
        let buf = Builder::new().string(1, "ABCDEFG").build();
        for cut in 1..buf.len() {
            // Either a clean error or fewer attributes; never a panic or an out-of-bounds value.
            if let Ok(a) = parse(&buf[..cut]) {
                assert!(a.iter().all(|x| x.value.len() <= cut));
            }
        }
        // A length field larger than the buffer must be rejected.
        let mut bad = buf.clone();
        bad[0] = 0xff;
        assert!(parse(&bad).is_err());
    }

    #[test]
    fn short_values_read_as_none() {
        let a = Attr {
            kind: 1,
            value: &[1, 2, 3],
            is_nest: false,
        };
        assert_eq!(a.u32(), None);
        assert_eq!(a.u64(), None);
        assert_eq!(a.uint(), None);
        assert_eq!(a.u16(), Some(u16::from_ne_bytes([1, 2])));
    }
}
