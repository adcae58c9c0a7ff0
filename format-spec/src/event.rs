//! Rust mirror of `include/smctrace_event.h`: the event records the recorder's
//! BPF programs emit and a chunk stores verbatim.
//!
//! The C header is the one declaration; these types copy it field for field
//! (`#[repr(C)]`, no implicit padding, so they are `bytemuck::Pod`). The test
//! `tests/c_layout.rs` compiles the header and checks every size and offset.
//! Records are parsed with [`EventRef::parse`], which never panics and skips
//! kinds it does not know.

use bytemuck::{Pod, Zeroable};

/// `ST_EVENT_ABI` in the C header.
pub const EVENT_ABI: u32 = 1;
pub const COMM_LEN: usize = 16;
pub const IBNAME_LEN: usize = 16;
pub const PAYLOAD_MAX: usize = 256;

/// `ST_F_TRUNCATED`
pub const F_TRUNCATED: u16 = 0x0001;
pub const ROLE_CLIENT: u8 = 1;
pub const ROLE_SERVER: u8 = 2;
pub const MODE_UNKNOWN: u8 = 0;
pub const MODE_SMCR: u8 = 1;
pub const MODE_SMCD: u8 = 2;
pub const MODE_FALLBACK: u8 = 3;
pub const DIR_TX: u8 = 1;
pub const DIR_RX: u8 = 2;
pub const TX_PATH_SENDMSG: u8 = 1;
pub const TX_PATH_PENDING: u8 = 2;
pub const TX_PATH_WORK: u8 = 3;
pub const CDC_F_SMCD: u8 = 0x01;

/// `struct st_hdr`
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct Hdr {
    pub kind: u16,
    pub len: u16,
    pub cpu: u16,
    pub flags: u16,
    pub ts_ns: u64,
    pub pid: u32,
    pub tid: u32,
}

/// `struct st_curs`
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct Curs {
    pub count: u32,
    pub wrap: u16,
    pub _pad: u16,
}

/// `struct st_endpoint`
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct Endpoint {
    pub addr: [u8; 16],
    pub port: u16,
    pub _pad: [u16; 3],
}

macro_rules! record {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $f:ident : $t:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
        #[repr(C)]
        pub struct $name {
            pub hdr: Hdr,
            $($(#[$fm])* pub $f: $t,)*
        }
    };
}

record!(/// `struct st_connect`
Connect { sock: u64, netns: u64, dst: Endpoint, family: u16, _pad: [u16; 3], comm: [u8; COMM_LEN] });

record!(/// `struct st_conn_info`
ConnInfo {
    sock: u64, netns: u64, local: Endpoint, remote: Endpoint,
    family: u16, role: u8, mode: u8, rc: i32,
    fallback_rsn: u32, peer_diagnosis: u32,
    local_token: u32, peer_token: u32,
    peer_dmb_token: u64, local_dmb_token: u64,
    sndbuf_len: u32, rmb_len: u32, peer_rmbe_size: u32, qpn: u32, peer_qpn: u32,
    link_id: u8, smc_version: u8, _pad: u16,
    lgr: u64, ibname: [u8; IBNAME_LEN], comm: [u8; COMM_LEN],
});

record!(/// `struct st_clc`
Clc { sock: u64, dir: u8, clc_type: u8, length: u16, version: u8, path: u8, _pad: u16, rc: i32, decline_diag: u32 });

record!(/// `struct st_fallback`
Fallback { sock: u64, reason: u32, peer_diagnosis: u32 });

record!(/// `struct st_close`
Close { sock: u64, state: u8, killed: u8, _pad: [u16; 3] });

record!(/// `struct st_link_down`
LinkDown { lgr: u64, link_id: u8, state: u8, _pad: [u16; 3], ibname: [u8; IBNAME_LEN] });

record!(/// `struct st_sendmsg`
SendMsg { sock: u64, enter_ns: u64, len: u64, ret: i64 });

record!(/// `struct st_tx_copy`
TxCopy { sock: u64, enter_ns: u64, prep_before: Curs, prep_after: Curs, sndbuf_len: u32, sndbuf_space: i32, ret: i64 });

record!(/// `struct st_tx_start`
TxStart { sock: u64, path: u8, _pad: [u8; 7] });

record!(/// `struct st_rdma_write`
RdmaWrite {
    sock: u64, enter_ns: u64, prod_before: Curs, prod_after: Curs, sent_after: Curs,
    peer_rmbe_size: u32, rc: i32, ism_len: u32, ism_offset: u32,
});

record!(/// `struct st_cdc` (both `CdcSend` and `CdcRecv`)
Cdc {
    sock: u64, seqno: u16, prod_flags: u8, conn_state_flags: u8, token: u32,
    prod: Curs, cons: Curs, rc: i32, cdc_flags: u8, _pad: [u8; 3],
});

record!(/// `struct st_cdc_tx_done`
CdcTxDone { sock: u64, seqno: u16, _pad: u16, wc_status: u32, prod: Curs });

record!(/// `struct st_rx_action`
RxAction {
    sock: u64, enter_ns: u64, prod_before: Curs, prod_after: Curs, peer_cons: Curs,
    seqno: u16, prod_flags: u8, conn_state_flags: u8, bytes_to_rcv: i32, rmb_len: u32, _pad: u32,
});

record!(/// `struct st_rx_wake`
RxWake { sock: u64 });

record!(/// `struct st_recvmsg`
RecvMsg {
    sock: u64, enter_ns: u64, cons_before: Curs, cons_after: Curs,
    len: u64, ret: i64, flags: u32, rmb_len: u32,
});

record!(/// `struct st_payload`; `captured` data bytes follow, padded to 8.
Payload { sock: u64, prep_before: Curs, captured: u32, msg_len: u32 });

// ---- the kinds: declared once ----

/// Generates everything that lists the event kinds from one table:
/// [`EventKind`] (with `ALL`, `from_u16`, `fixed_len`, `name`,
/// `has_sock`), [`EventRef`] and its `parse`, `hdr` and `sock`.
///
/// A row is `Variant = value, "name", FixedStruct, sock | no_sock [, Data]`:
/// `value` is the C `enum st_kind` value; `FixedStruct` the record's fixed
/// part; `sock` when a `u64 sock` follows the header (the socket id), and a
/// trailing `Data` type (only `Payload`'s `&'a [u8]`) when the fixed part is
/// followed by `captured` data bytes that the event borrows.
macro_rules! event_kinds {
    ($(
        $v:ident = $val:literal, $name:literal, $ty:ident, $sock:ident $(, $data:ty)?;
    )*) => {
        /// `enum st_kind`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u16)]
        pub enum EventKind {
            $($v = $val,)*
        }

        impl EventKind {
            pub const ALL: [EventKind; [$($val),*].len()] = [$(EventKind::$v),*];

            pub fn from_u16(v: u16) -> Option<EventKind> {
                match v {
                    $($val => Some(EventKind::$v),)*
                    _ => None,
                }
            }

            /// Size of the fixed part of a record of this kind (header included).
            pub fn fixed_len(self) -> usize {
                match self {
                    $(EventKind::$v => std::mem::size_of::<$ty>(),)*
                }
            }

            /// Short stable name, used in reports, CSV and `smc-record probes`.
            pub fn name(self) -> &'static str {
                match self {
                    $(EventKind::$v => $name,)*
                }
            }

            /// Whether a record of this kind names a socket: a `u64 sock`
            /// right after the header (see [`peek_sock`]).
            pub fn has_sock(self) -> bool {
                match self {
                    $(EventKind::$v => event_kinds!(@has_sock $sock),)*
                }
            }
        }

/// One decoded record. Fixed parts are copied out (records are small and the
        /// chunk buffer need not be aligned); a payload's bytes borrow the chunk.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum EventRef<'a> {
            $($v($ty $(, $data)?),)*
            /// A kind this build does not know: skipped by its length, counted by readers.
            Unknown(Hdr),
        }

        impl<'a> EventRef<'a> {
            /// Parse the record at the start of `buf`; returns it and its length.
            pub fn parse(buf: &'a [u8]) -> Result<(EventRef<'a>, usize), RecordError> {
                let (kind, len) = check_record(buf)?;
                let rec = &buf[..len];
                let Some(kind) = kind else {
                    return Ok((
                        EventRef::Unknown(bytemuck::pod_read_unaligned(&rec[..HDR_LEN])),
                        len,
                    ));
                };
                let ev = match kind {
                    $(EventKind::$v => event_kinds!(@build $v, $ty, rec, kind $(, $data)?),)*
                };
                Ok((ev, len))
            }

            /// The common header of the record.
            pub fn hdr(&self) -> &Hdr {
                match self {
                    $(EventRef::$v(e, ..) => &e.hdr,)*
                    EventRef::Unknown(h) => h,
                }
            }

            /// The socket id the record is about, if it names one. Link-level
            /// records (`LinkDown`) and unknown kinds have none; `CdcRecv` on SMC-R
            /// carries 0 (only the token is known there) and returns `Some(0)`.
            pub fn sock(&self) -> Option<u64> {
                match self {
                    $(EventRef::$v(_e, ..) => event_kinds!(@sock $sock, _e),)*
                    EventRef::Unknown(_) => None,
                }
            }
        }
    };
    (@has_sock sock) => { true };
    (@has_sock no_sock) => { false };
    (@sock sock, $e:ident) => { Some($e.sock) };
    (@sock no_sock, $e:ident) => { None };
    (@build $v:ident, $ty:ident, $rec:ident, $kind:ident) => { EventRef::$v(get($rec)) };
    // A fixed part followed by `captured` data bytes, clamped to the record.
    (@build $v:ident, $ty:ident, $rec:ident, $kind:ident, $data:ty) => {{
        let p: $ty = get($rec);
        let need = $kind.fixed_len();
        let n = (p.captured as usize).min($rec.len() - need);
        EventRef::$v(p, &$rec[need..need + n])
    }};
}

event_kinds! {
    Connect = 1, "connect", Connect, sock;
    ConnInfo = 2, "conn_info", ConnInfo, sock;
    Clc = 3, "clc", Clc, sock;
    Fallback = 4, "fallback", Fallback, sock;
    Close = 5, "close", Close, sock;
    LinkDown = 6, "link_down", LinkDown, no_sock;
    SendMsg = 16, "sendmsg", SendMsg, sock;
    TxCopy = 17, "tx_copy", TxCopy, sock;
    TxStart = 18, "tx_start", TxStart, sock;
    RdmaWrite = 19, "rdma_write", RdmaWrite, sock;
    CdcSend = 20, "cdc_send", Cdc, sock;
    CdcTxDone = 21, "cdc_tx_done", CdcTxDone, sock;
    CdcRecv = 32, "cdc_recv", Cdc, sock;
    RxAction = 33, "rx_action", RxAction, sock;
    RxWake = 34, "rx_wake", RxWake, sock;
    RecvMsg = 35, "recvmsg", RecvMsg, sock;
    Payload = 48, "payload", Payload, sock, &'a [u8];
}

/// Why a record could not be parsed. The stream cannot be resynchronised
/// after one of these: the caller stops decoding the chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// Fewer bytes left than a header.
    ShortHeader { have: usize },
    /// `hdr.len` is smaller than a header, not a multiple of 8, or runs past the buffer.
    BadLength { len: u16, have: usize },
    /// `hdr.len` is smaller than the fixed body of a known kind.
    ShortBody { kind: u16, len: u16, need: usize },
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::ShortHeader { have } => {
                write!(f, "{have} bytes left, fewer than a 24-byte record header")
            }
            RecordError::BadLength { len, have } => {
                write!(f, "record length {len} is invalid ({have} bytes left)")
            }
            RecordError::ShortBody { kind, len, need } => {
                write!(
                    f,
                    "record of kind {kind} has length {len}, its fixed part needs {need}"
                )
            }
        }
    }
}

impl std::error::Error for RecordError {}

pub const HDR_LEN: usize = std::mem::size_of::<Hdr>();

/// The checks of [`EventRef::parse`] without building the event: the
/// record's kind (`None` if this build does not know it) and length. A
/// record that passes is at least as long as the fixed part of its kind, so
/// [`read_fixed`] of that kind's struct cannot fail.
pub fn check_record(buf: &[u8]) -> Result<(Option<EventKind>, usize), RecordError> {
    if buf.len() < HDR_LEN {
        return Err(RecordError::ShortHeader { have: buf.len() });
    }
    let hdr: Hdr = bytemuck::pod_read_unaligned(&buf[..HDR_LEN]);
    let len = hdr.len as usize;
    if len < HDR_LEN || !len.is_multiple_of(8) || len > buf.len() {
        return Err(RecordError::BadLength {
            len: hdr.len,
            have: buf.len(),
        });
    }
    let kind = EventKind::from_u16(hdr.kind);
    if let Some(k) = kind {
        let need = k.fixed_len();
        if len < need {
            return Err(RecordError::ShortBody {
                kind: hdr.kind,
                len: hdr.len,
                need,
            });
        }
    }
    Ok((kind, len))
}

/// The fixed part of a record as its struct (the record must be at least
/// that long: see [`check_record`]).
pub fn read_fixed<T: Pod>(rec: &[u8]) -> T {
    bytemuck::pod_read_unaligned(&rec[..std::mem::size_of::<T>()])
}

fn get<T: Pod>(rec: &[u8]) -> T {
    read_fixed(rec)
}

/// Iterate over the records of a decompressed chunk. Stops at the first
/// malformed record and yields its error once.
pub fn records(buf: &[u8]) -> Records<'_> {
    Records {
        buf,
        off: 0,
        failed: false,
    }
}

pub struct Records<'a> {
    buf: &'a [u8],
    off: usize,
    failed: bool,
}

impl<'a> Records<'a> {
    /// Byte offset of the next record inside the chunk.
    pub fn offset(&self) -> usize {
        self.off
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<EventRef<'a>, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.off >= self.buf.len() {
            return None;
        }
        match EventRef::parse(&self.buf[self.off..]) {
            Ok((ev, len)) => {
                self.off += len;
                Some(Ok(ev))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Turn a fixed-size record into bytes (used by writers of synthetic streams and tests).
pub fn as_bytes<T: Pod>(rec: &T) -> &[u8] {
    bytemuck::bytes_of(rec)
}

/// Text of a NUL-padded C string field (comm, ibname).
pub fn c_str(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// Absolute stream offset of a cursor in a ring of `ring_len` bytes, given the
/// wrap count already unwrapped past u16 by the caller (`wrap_epochs` * 65536).
pub fn curs_offset(c: Curs, ring_len: u32, wrap_epochs: u64) -> u64 {
    (wrap_epochs * 65536 + c.wrap as u64) * ring_len as u64 + c.count as u64
}

impl EventRef<'_> {
    /// The known kind of the record (`None` for [`EventRef::Unknown`]).
    pub fn kind(&self) -> Option<EventKind> {
        EventKind::from_u16(self.hdr().kind)
    }
}

// ---- header-level reads of raw records ----
//
// For code that moves records without decoding them (the recorder's ring
// buffer reader, its trigger and identity scans): the header fields read
// straight from the bytes. They check only that the bytes are there;
// [`check_record`] is what validates a record.

/// The header of the record at the start of `rec` (`None`: fewer than [`HDR_LEN`] bytes).
pub fn peek(rec: &[u8]) -> Option<Hdr> {
    rec.get(..HDR_LEN).map(bytemuck::pod_read_unaligned)
}

/// The known kind of the record at the start of `rec` (`None`: unknown kind or no header).
pub fn peek_kind(rec: &[u8]) -> Option<EventKind> {
    peek(rec).and_then(|h| EventKind::from_u16(h.kind))
}

/// The socket id of a record whose kind names one ([`EventKind::has_sock`]):
/// the `u64` after the header (`None`: another kind, or too short).
pub fn peek_sock(rec: &[u8]) -> Option<u64> {
    if !peek_kind(rec)?.has_sock() {
        return None;
    }
    let b = rec.get(HDR_LEN..HDR_LEN + 8)?;
    Some(u64::from_le_bytes(b.try_into().expect("8 bytes")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec<T: Pod>(mut r: T, kind: EventKind) -> Vec<u8> {
        let h: &mut Hdr = bytemuck::from_bytes_mut(&mut bytemuck::bytes_of_mut(&mut r)[..HDR_LEN]);
        h.kind = kind as u16;
        h.len = std::mem::size_of::<T>() as u16;
        bytemuck::bytes_of(&r).to_vec()
    }

    #[test]
    fn every_kind_parses_with_its_kind_and_sock() {
        let mut buf = Vec::new();
        for k in EventKind::ALL {
            // A zeroed record of the right length with sock = 0x42 where present.
            let mut r = vec![0u8; k.fixed_len()];
            let h = Hdr {
                kind: k as u16,
                len: k.fixed_len() as u16,
                ..Default::default()
            };
            r[..HDR_LEN].copy_from_slice(bytemuck::bytes_of(&h));
            r[HDR_LEN..HDR_LEN + 8].copy_from_slice(&0x42u64.to_le_bytes());
            buf.extend_from_slice(&r);
        }
        let evs: Vec<_> = records(&buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(evs.len(), EventKind::ALL.len());
        for (ev, k) in evs.iter().zip(EventKind::ALL) {
            assert_eq!(ev.kind(), Some(k));
            let want = if k == EventKind::LinkDown {
                None
            } else {
                Some(0x42)
            };
            assert_eq!(ev.sock(), want, "{}", k.name());
            assert_eq!(k.has_sock(), want.is_some(), "{}", k.name());
            assert_eq!(EventKind::from_u16(k as u16), Some(k));
        }
        // the header-level reads agree with the parser
        let mut off = 0;
        for k in EventKind::ALL {
            let rec = &buf[off..off + k.fixed_len()];
            let h = peek(rec).unwrap();
            assert_eq!((h.kind, h.len as usize), (k as u16, k.fixed_len()));
            assert_eq!(peek_kind(rec), Some(k));
            let want = (k != EventKind::LinkDown).then_some(0x42);
            assert_eq!(peek_sock(rec), want, "{}", k.name());
            off += k.fixed_len();
        }
        assert_eq!(peek(&buf[..HDR_LEN - 1]), None);
        assert_eq!(peek_sock(&buf[..HDR_LEN + 7]), None);
    }

    #[test]
    fn unknown_kinds_are_skipped_and_bad_lengths_stop_the_walk() {
        let mut buf = rec(
            RxWake {
                sock: 1,
                ..Default::default()
            },
            EventKind::RxWake,
        );
        let unknown = Hdr {
            kind: 999,
            len: 40,
            ..Default::default()
        };
        buf.extend_from_slice(bytemuck::bytes_of(&unknown));
        buf.extend_from_slice(&[7u8; 16]);
        buf.extend_from_slice(&rec(
            RxWake {
                sock: 2,
                ..Default::default()
            },
            EventKind::RxWake,
        ));
        let evs: Vec<_> = records(&buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(evs.len(), 3);
        assert!(matches!(evs[1], EventRef::Unknown(h) if h.kind == 999));
        assert_eq!(evs[1].kind(), None);
        assert_eq!(evs[2].sock(), Some(2));

        let mut bad = rec(RxWake::default(), EventKind::RxWake);
        bad[2] = 12; // len 12: not a multiple of 8
        let out: Vec<_> = records(&bad).collect();
        assert_eq!(out.len(), 1);
        assert!(matches!(
            out[0],
            Err(RecordError::BadLength { len: 12, .. })
        ));

        let mut short = rec(SendMsg::default(), EventKind::SendMsg);
        short.truncate(32);
        short[2] = 32;
        assert!(matches!(
            EventRef::parse(&short),
            Err(RecordError::ShortBody { need: 56, .. })
        ));
    }

    #[test]
    fn payload_never_reads_past_its_record() {
        let p = Payload {
            hdr: Hdr {
                kind: EventKind::Payload as u16,
                len: 56,
                ..Default::default()
            },
            captured: 200, // lies: only 8 bytes follow
            ..Default::default()
        };
        let mut buf = bytemuck::bytes_of(&p).to_vec();
        buf.extend_from_slice(b"abcdefgh");
        let (ev, len) = EventRef::parse(&buf).unwrap();
        assert_eq!(len, 56);
        assert!(matches!(ev, EventRef::Payload(_, d) if d == b"abcdefgh"));
    }
}
