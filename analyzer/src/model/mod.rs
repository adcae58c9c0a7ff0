//! One recording's event stream turned into per-socket state: the *sides* of
//! connections (identity, handshake, close), the sender halves of messages
//! (one user send followed by stream offset through copy, RDMA write, CDC send
//! and CDC completion) and the receiver-side points (CDC arrivals, rx
//! processing, user receives) that `join` later matches to messages.
//!
//! Events arrive in recording order, which is not time order across CPUs:
//! [`RecordingBuilder::push`] keeps a bounded reorder window and processes
//! events sorted by timestamp. Raw events are never kept beyond that window;
//! what stays is one compact record per message and per receive-side point.
//!
//! Cursors are unwrapped to absolute stream offsets (ring turns · ring size +
//! count), so a byte is "the same byte" in the sender's send buffer, in the
//! peer RMBE and in the receiver's RMB (SMC-INTERNALS §2.6).
//!
//! The stages of this module, in data-flow order:
//! - `builder.rs`: the reorder window and the dispatch of each event;
//! - `side.rs`: a socket's identity, handshake and close (one *side*);
//! - `tx.rs`: the send path (sendmsg, copy, RDMA write / ISM, CDC send, completion);
//! - `rx.rs`: the receive path (CDC arrival, rx processing, user receive).

mod builder;
mod rx;
mod side;
mod tx;

pub use builder::*;
pub use rx::*;
pub use side::*;
pub use tx::*;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use crate::history::{History, Keys};
use crate::idhash::IdMap;

use smctrace_format::event::{self, Curs, EventRef};

/// Default reorder window: events whose timestamps are this much older than
/// the newest one seen are processed. Per-CPU batches of the recorder are far
/// shorter than this.
pub const DEFAULT_REORDER_WINDOW_NS: u64 = 200_000_000;
/// Hard cap of the reorder buffer (events), so memory stays bounded even if
/// timestamps jump.
pub const REORDER_CAP: usize = 1 << 18;
/// Unresolved CDC receptions kept per unknown token before the oldest are dropped.
const PENDING_RX_CAP: usize = 4096;

/// History kept per socket to match events that arrive before the message
/// they belong to (bounded: older entries can no longer be the first match).
pub(crate) const HISTORY: usize = 512;

fn push_bounded<T>(q: &mut VecDeque<T>, v: T) {
    if q.len() >= HISTORY {
        q.pop_front();
    }
    q.push_back(v);
}
