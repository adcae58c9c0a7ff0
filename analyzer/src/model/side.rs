//! Per-socket identity and state: one *side* of a connection as one recording
//! saw it (addresses, mode, handshake, close) and the cursor unwrapping that
//! both the send and the receive path rely on. The send path ([`super::tx`])
//! and the receive path ([`super::rx`]) fill a side's `tx` and `rx` halves.

use super::*;

/// Turns a (wrap, count) cursor of a ring into an absolute stream offset,
/// choosing the u16 wrap epoch closest to the previous value, so it survives
/// both the u16 overflow of `wrap` and mildly reordered events.
#[derive(Clone, Debug, Default)]
pub struct Unwrapper {
    pub(super) last: Option<u64>,
}

impl Unwrapper {
    /// Absolute offset of `c` in a ring of `ring` bytes (`None` if the ring size is unknown).
    pub fn unwrap(&mut self, c: Curs, ring: u32) -> Option<u64> {
        if ring == 0 {
            return None;
        }
        let ring = ring as u64;
        let span = 65536 * ring;
        let v = c.wrap as u64 * ring + c.count as u64;
        let abs = match self.last {
            None => v,
            Some(last) => {
                let base = last - last % span;
                let mut best = base.saturating_add(v);
                let cands = [
                    base.checked_sub(span).map(|b| b + v),
                    base.checked_add(span).and_then(|b| b.checked_add(v)),
                ];
                for cand in cands.into_iter().flatten() {
                    if cand.abs_diff(last) < best.abs_diff(last) {
                        best = cand;
                    }
                }
                best
            }
        };
        self.last = Some(self.last.map_or(abs, |l| l.max(abs)));
        Some(abs)
    }
}

/// Role of a socket in its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Client,
    Server,
    Unknown,
}

/// Transport of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    #[serde(rename = "SMC-R")]
    SmcR,
    #[serde(rename = "SMC-D")]
    SmcD,
    Fallback,
    Unknown,
}

impl Mode {
    pub fn from_u8(m: u8) -> Mode {
        match m {
            event::MODE_SMCR => Mode::SmcR,
            event::MODE_SMCD => Mode::SmcD,
            event::MODE_FALLBACK => Mode::Fallback,
            _ => Mode::Unknown,
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Mode::SmcR => "SMC-R",
            Mode::SmcD => "SMC-D",
            Mode::Fallback => "fallback",
            Mode::Unknown => "unknown",
        }
    }
}

/// An IP endpoint (address text and port).
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Addr {
    pub ip: String,
    pub port: u16,
}

impl Addr {
    pub fn from_endpoint(ep: &event::Endpoint, family: u16) -> Addr {
        let ip = if family == 10 {
            std::net::Ipv6Addr::from(ep.addr).to_string()
        } else {
            std::net::Ipv4Addr::new(ep.addr[0], ep.addr[1], ep.addr[2], ep.addr[3]).to_string()
        };
        Addr { ip, port: ep.port }
    }
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.ip.contains(':') {
            write!(f, "[{}]:{}", self.ip, self.port)
        } else {
            write!(f, "{}:{}", self.ip, self.port)
        }
    }
}

/// What CONN_INFO said when the handshake finished.
#[derive(Clone, Debug, serde::Serialize)]
pub struct HandshakeInfo {
    pub ts: u64,
    pub rc: i32,
    pub local: Addr,
    pub remote: Addr,
    pub local_token: u32,
    pub peer_token: u32,
    pub local_dmb_token: u64,
    pub peer_dmb_token: u64,
    pub sndbuf_len: u32,
    pub rmb_len: u32,
    pub peer_rmbe_size: u32,
    pub qpn: u32,
    pub peer_qpn: u32,
    pub link_id: u8,
    pub smc_version: u8,
    pub lgr: u64,
    pub ibname: String,
}

/// The type of a CLC message (the type byte of its header). The names
/// ([`ClcType::name`]) are what the report and the pcapng comments print.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClcType {
    Proposal,
    Accept,
    Confirm,
    Decline,
    /// Any other type byte.
    Unknown,
}

impl ClcType {
    /// The type of header type byte `t` (1 proposal, 2 accept, 3 confirm, 4 decline).
    pub fn from_u8(t: u8) -> ClcType {
        match t {
            1 => ClcType::Proposal,
            2 => ClcType::Accept,
            3 => ClcType::Confirm,
            4 => ClcType::Decline,
            _ => ClcType::Unknown,
        }
    }

    /// The name shown to users.
    pub fn name(self) -> &'static str {
        match self {
            ClcType::Proposal => "proposal",
            ClcType::Accept => "accept",
            ClcType::Confirm => "confirm",
            ClcType::Decline => "decline",
            ClcType::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for ClcType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One CLC message sent or received.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ClcEvent {
    pub ts: u64,
    pub dir: &'static str,
    pub clc_type: ClcType,
    pub path: String,
    pub version: u8,
    pub rc: i32,
    pub decline_diag: u32,
}

/// Why a message is incomplete (bit set). Names are part of the JSON/CSV output.
pub mod gap {
    pub const NO_SENDMSG: u32 = 1 << 0;
    pub const NO_TX_COPY: u32 = 1 << 1;
    pub const NO_RDMA_WRITE: u32 = 1 << 2;
    pub const NO_CDC_SEND: u32 = 1 << 3;
    pub const NO_CDC_TX_DONE: u32 = 1 << 4;
    pub const CDC_SEQ_GAP: u32 = 1 << 5;
    pub const NO_CDC_RECV: u32 = 1 << 6;
    pub const NO_RX_ACTION: u32 = 1 << 7;
    pub const NO_RECVMSG: u32 = 1 << 8;
    pub const NO_PEER: u32 = 1 << 9;
    pub const CLOCK_UNKNOWN: u32 = 1 << 10;
    pub const RING_UNKNOWN: u32 = 1 << 11;
    pub const TX_ERROR: u32 = 1 << 12;
    pub const LOSSY_SMCD: u32 = 1 << 13;
    pub const CDC_MISMATCH: u32 = 1 << 14;

    pub const NAMES: [(u32, &str); 15] = [
        (NO_SENDMSG, "no_sendmsg"),
        (NO_TX_COPY, "no_tx_copy"),
        (NO_RDMA_WRITE, "no_rdma_write"),
        (NO_CDC_SEND, "no_cdc_send"),
        (NO_CDC_TX_DONE, "no_cdc_tx_done"),
        (CDC_SEQ_GAP, "cdc_seqno_gap"),
        (NO_CDC_RECV, "no_cdc_recv"),
        (NO_RX_ACTION, "no_rx_action"),
        (NO_RECVMSG, "no_recvmsg"),
        (NO_PEER, "peer_not_recorded"),
        (CLOCK_UNKNOWN, "clock_offset_unknown"),
        (RING_UNKNOWN, "ring_size_unknown"),
        (TX_ERROR, "tx_error"),
        (LOSSY_SMCD, "smcd_with_lost_events"),
        (CDC_MISMATCH, "cdc_mismatch"),
    ];

    /// Names of the bits set in `flags`.
    pub fn names(flags: u32) -> Vec<&'static str> {
        NAMES
            .iter()
            .filter(|(b, _)| flags & b != 0)
            .map(|(_, n)| *n)
            .collect()
    }
}

/// One socket of a connection as one recording saw it.
#[derive(Debug)]
pub struct Side {
    pub rec: usize,
    pub sock: u64,
    pub pid: u32,
    pub comm: String,
    pub netns: u64,
    pub role: Role,
    pub mode: Mode,
    pub connect_ts: Option<u64>,
    pub connect_dst: Option<Addr>,
    /// Local address from the start snapshot, for sides without CONN_INFO.
    pub snapshot_local: Option<Addr>,
    pub info: Option<HandshakeInfo>,
    pub clc: Vec<ClcEvent>,
    pub fallback: Option<(u64, u32, u32)>,
    pub close: Option<(u64, u8, u8)>,
    pub local_token: Option<u32>,
    pub peer_token: Option<u32>,
    pub first_ts: u64,
    pub last_ts: u64,
    pub first_data_ts: Option<u64>,
    pub events: u64,
    pub tx: TxState,
    pub rx: RxState,
}

impl Side {
    pub(super) fn new(rec: usize, sock: u64, ts: u64) -> Side {
        Side {
            rec,
            sock,
            pid: 0,
            comm: String::new(),
            netns: 0,
            role: Role::Unknown,
            mode: Mode::Unknown,
            connect_ts: None,
            connect_dst: None,
            snapshot_local: None,
            info: None,
            clc: Vec::new(),
            fallback: None,
            close: None,
            local_token: None,
            peer_token: None,
            first_ts: ts,
            last_ts: ts,
            first_data_ts: None,
            events: 0,
            tx: TxState::default(),
            rx: RxState::default(),
        }
    }

    /// Never connected nor moved data: a listening socket, or one closed unused.
    pub fn is_idle(&self) -> bool {
        self.connect_ts.is_none()
            && self.info.is_none()
            && self.clc.is_empty()
            && self.fallback.is_none()
            && self.local_token.is_none()
            && self.tx.sends == 0
            && self.tx.cdc_count == 0
            && self.rx.recv_calls == 0
            && self.rx.cdc_count == 0
            && self.rx.actions.is_empty()
    }

    pub fn is_smcd(&self) -> bool {
        self.mode == Mode::SmcD
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(wrap: u16, count: u32) -> Curs {
        Curs {
            count,
            wrap,
            _pad: 0,
        }
    }

    #[test]
    fn unwrap_follows_ring_turns_and_u16_overflow() {
        let mut u = Unwrapper::default();
        assert_eq!(u.unwrap(c(65534, 100), 1000), Some(65534 * 1000 + 100));
        assert_eq!(u.unwrap(c(65535, 999), 1000), Some(65535 * 1000 + 999));
        // wrap overflowed from 65535 to 0: one epoch later
        assert_eq!(u.unwrap(c(0, 5), 1000), Some(65536 * 1000 + 5));
        // a late event from before the overflow stays in the old epoch
        assert_eq!(u.unwrap(c(65535, 10), 1000), Some(65535 * 1000 + 10));
        assert_eq!(u.unwrap(c(1, 0), 0), None);
    }
}
