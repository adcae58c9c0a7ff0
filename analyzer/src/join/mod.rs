//! From the sides of every recording to the analysis: pair sockets into
//! connections (tokens, QP numbers, mirrored 4-tuples; never sock ids across
//! recordings), estimate each recording's clock offset from paired CDCs
//! (two-way bracketing as in NTP), and join each sender half of a message with
//! the receiver points that carried its last byte, giving its full timeline.
//!
//! Files, in data-flow order: `driver.rs` runs the two passes over the recordings;
//! `pair.rs` pairs sockets into connections; `clock.rs` estimates clock offsets;
//! `message.rs` joins sender halves with receiver points into messages. This file
//! holds the types they share ([`Analysis`], [`Message`], the stage table).

mod clock;
mod driver;
mod message;
mod pair;

pub use clock::*;
pub use driver::*;
use message::*;
use pair::*;

use std::collections::HashMap;

use crate::model::{
    gap, Addr, BuilderOptions, Mode, RecordingBuilder, RecordingStats, Role, RxAct, Side, TxMsg,
    CLOCK_SAMPLES,
};

/// Facts about one input recording.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RecordingMeta {
    pub path: String,
    pub host: String,
    pub boot_id: String,
    pub kernel_release: String,
    /// The file had its trailer (else lost-event counts are unknown).
    pub clean_close: bool,
    pub stats: RecordingStats,
    #[serde(skip)]
    pub snapshot_sockets: Vec<SnapshotSock>,
}

/// A socket listed in the recording's start snapshot (smc_diag), used to
/// name connections whose handshake predates the recording.
#[derive(Clone, Debug)]
pub struct SnapshotSock {
    pub local: Addr,
    pub remote: Addr,
    pub mode: Mode,
    pub local_token: u32,
    pub sndbuf_len: u32,
    pub rmb_len: u32,
    pub peer_rmbe_size: u32,
    pub fallback_rsn: u32,
}

/// A connection: one SMC socket pair, with the sides recorded of it.
#[derive(Clone, Debug)]
pub struct Connection {
    /// 1, 2, ... in order of appearance; 0 for an idle socket.
    pub id: u32,
    /// A socket that never connected nor moved data (a listener, a socket
    /// closed unused): not a connection, left out of reports.
    pub idle: bool,
    /// Indices into [`Analysis::sides`]; the client first when known.
    pub sides: Vec<usize>,
}

/// Direction of a message inside its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dir {
    /// From the connection's first side (the client when known) to the other.
    Forward,
    Backward,
}

/// What kind of message this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MsgKind {
    /// Bytes of one user send followed through the SMC data path.
    Smc,
    /// A send on a connection that fell back to TCP: only `send_call` exists.
    Fallback,
    /// Seen only at the receiver (peer not recorded): one CDC's worth of data.
    RxOnly,
}

/// Time points of a message, in the reference clock (ns).
pub const POINTS: [&str; 11] = [
    "send_enter",
    "copy_enter",
    "copy_done",
    "post_enter",
    "post_done",
    "cdc_send",
    "cdc_tx_done",
    "cdc_recv",
    "rx_done",
    "delivered",
    "send_return",
];
pub mod pt {
    pub const SEND_ENTER: usize = 0;
    pub const COPY_ENTER: usize = 1;
    pub const COPY_DONE: usize = 2;
    pub const POST_ENTER: usize = 3;
    pub const POST_DONE: usize = 4;
    pub const CDC_SEND: usize = 5;
    pub const CDC_TX_DONE: usize = 6;
    pub const CDC_RECV: usize = 7;
    pub const RX_DONE: usize = 8;
    pub const DELIVERED: usize = 9;
    pub const SEND_RETURN: usize = 10;
}

/// A stage: a named interval between two points.
pub struct StageDef {
    pub name: &'static str,
    pub from: usize,
    pub to: usize,
    /// Part of the chain that tiles `e2e` (used to find the blocking stage).
    pub chain: bool,
    /// Needs both hosts' clocks (sender and receiver points).
    pub cross_host: bool,
}

/// Every stage, in path order. See docs/analyzer.md for the definitions.
pub const STAGES: [StageDef; 10] = [
    StageDef {
        name: "send_call",
        from: pt::SEND_ENTER,
        to: pt::SEND_RETURN,
        chain: false,
        cross_host: false,
    },
    StageDef {
        name: "send_lock",
        from: pt::SEND_ENTER,
        to: pt::COPY_ENTER,
        chain: true,
        cross_host: false,
    },
    StageDef {
        name: "copy",
        from: pt::COPY_ENTER,
        to: pt::COPY_DONE,
        chain: true,
        cross_host: false,
    },
    StageDef {
        name: "post",
        from: pt::COPY_DONE,
        to: pt::POST_DONE,
        chain: true,
        cross_host: false,
    },
    StageDef {
        name: "cdc_send",
        from: pt::POST_DONE,
        to: pt::CDC_SEND,
        chain: true,
        cross_host: false,
    },
    StageDef {
        name: "cdc_complete",
        from: pt::CDC_SEND,
        to: pt::CDC_TX_DONE,
        chain: false,
        cross_host: false,
    },
    StageDef {
        name: "wire",
        from: pt::CDC_SEND,
        to: pt::CDC_RECV,
        chain: true,
        cross_host: true,
    },
    StageDef {
        name: "rx_process",
        from: pt::CDC_RECV,
        to: pt::RX_DONE,
        chain: true,
        cross_host: false,
    },
    StageDef {
        name: "app_wait",
        from: pt::RX_DONE,
        to: pt::DELIVERED,
        chain: true,
        cross_host: false,
    },
    StageDef {
        name: "e2e",
        from: pt::SEND_ENTER,
        to: pt::DELIVERED,
        chain: false,
        cross_host: true,
    },
];

/// Index of the `e2e` stage in [`STAGES`].
pub const E2E: usize = 9;

/// One message with its whole timeline.
#[derive(Clone, Debug)]
pub struct Message {
    pub conn: usize,
    pub dir: Dir,
    pub kind: MsgKind,
    pub sender: Option<usize>,
    pub receiver: Option<usize>,
    /// Stream offsets `[start, end)` of the message in its direction.
    pub start: u64,
    pub end: u64,
    pub len: u64,
    pub pid: u32,
    pub points: [Option<i64>; 11],
    pub stages: [Option<i64>; 10],
    pub gaps: u32,
    pub cdc_seqno: Option<u16>,
}

impl Message {
    /// Incomplete: a stage it should have is missing or not trustworthy
    /// (a peer that was not recorded does not make it incomplete).
    pub fn incomplete(&self) -> bool {
        self.gaps & !gap::NO_PEER != 0
    }

    /// The latency used to rank messages: e2e when known, else the span of
    /// the points this side saw.
    pub fn latency(&self) -> i64 {
        if let Some(e) = self.stages[E2E] {
            return e;
        }
        let known = self.points.iter().flatten();
        match (known.clone().min(), known.max()) {
            (Some(a), Some(b)) => b.saturating_sub(*a),
            _ => 0,
        }
    }

    /// The chain stage that took longest, with its share of the chain sum.
    pub fn blocking_stage(&self) -> Option<(&'static str, i64)> {
        STAGES
            .iter()
            .zip(self.stages.iter())
            .filter(|(d, v)| d.chain && v.is_some())
            .map(|(d, v)| (d.name, v.unwrap_or(0)))
            .max_by_key(|(_, v)| *v)
    }

    /// First known point (reference clock).
    pub fn first_point(&self) -> Option<i64> {
        self.points.iter().flatten().min().copied()
    }
}

/// Everything the outputs need except the messages, which stream through a
/// [`Sink`]. Sides here come from the first pass (identity, handshake,
/// counters, clock samples); their message data is not kept.
#[derive(Debug)]
pub struct Analysis {
    pub recordings: Vec<RecordingMeta>,
    pub sides: Vec<Side>,
    pub conns: Vec<Connection>,
    /// Connection index of every side.
    pub side_conn: Vec<usize>,
    pub clocks: Vec<ClockEstimate>,
    /// Earliest event of the reference timeline (ns), the zero of relative times.
    pub t0: i64,
    /// Messages, only when collected with [`collect`] (tests, small inputs).
    pub messages: Vec<Message>,
    /// Index of a recording's first side in `sides`.
    pub side_base: Vec<usize>,
    /// Most message halves and receive points held at once during the
    /// second pass (the memory bound the streaming join achieves).
    pub peak_retained: u64,
}

impl Analysis {
    /// Clock offset of a recording, if known.
    pub fn offset(&self, rec: usize) -> Option<i64> {
        self.clocks.get(rec).and_then(|c| c.offset_ns)
    }

    /// The other side of side `si`'s connection.
    pub fn peer(&self, si: usize) -> Option<usize> {
        self.conns[self.side_conn[si]]
            .sides
            .iter()
            .copied()
            .find(|&k| k != si)
    }

    fn dir_of(&self, si: usize) -> Dir {
        if self.conns[self.side_conn[si]].sides.first() == Some(&si) {
            Dir::Forward
        } else {
            Dir::Backward
        }
    }

    /// Whether the side ever sent data (first pass counters).
    fn sends(&self, si: usize) -> bool {
        let t = &self.sides[si].tx;
        t.msgs > 0 || t.cdc_count > 0
    }
}

/// Receives every finished message once, in join order (roughly time order).
pub trait Sink {
    /// Called once the connections and clocks are known, before any message.
    fn begin(&mut self, _a: &Analysis) {}
    fn message(&mut self, a: &Analysis, m: Message);
}

impl Sink for Vec<Message> {
    fn message(&mut self, _a: &Analysis, m: Message) {
        self.push(m);
    }
}

/// One element of a recording's event stream.
pub enum Item {
    Event(crate::model::Ev),
    /// A chunk that could not be read: its events are missing.
    UnreadableChunk,
    /// A malformed record: the rest of its chunk is missing.
    BadRecord,
}

/// A recording that can be read twice (once per pass).
pub struct Input {
    pub meta: RecordingMeta,
    /// Events the kernel dropped (trailer).
    pub lost: u64,
    /// Opens the recording's event stream (called once per pass); the
    /// stream is read on a thread of its own in the second pass.
    pub open: Box<dyn FnMut() -> Box<dyn Iterator<Item = Item> + Send>>,
}
