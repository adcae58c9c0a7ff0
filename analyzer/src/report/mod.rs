//! The report an operator reads: summary, clock offsets, fallback reasons,
//! per-stage latency table, per-connection table, handshake timing and the
//! slowest messages with their full timeline. Built once as a serde value
//! ([`Report`], the stable JSON schema of docs/analyzer.md) and rendered as
//! text from that same value, so `--json` and the text never disagree.
//!
//! Files: `schema.rs` is the serde value (the JSON schema); `sink.rs`
//! accumulates joined messages into it; `text.rs` renders it as text. This file
//! holds the selection ([`Filter`], [`Options`]) and [`build`].

mod schema;
mod sink;
mod text;

pub use schema::*;
pub use sink::*;
pub use text::*;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::decline;
use crate::duration::fmt;
use crate::join::{Analysis, Dir, Message, MsgKind, Sink, POINTS, STAGES};
use crate::model::{gap, ClcType, Mode, Role, Side};
use crate::sketch::Series;
use crate::stats::{summarize, summarize_series, Summary};

/// Version of the JSON schema; bumped on any incompatible change.
pub const SCHEMA: &str = "smc-analyze/report/1";

/// Which connections and messages a report covers.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Filter {
    pub conn: Option<u32>,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    pub port: Option<u16>,
    /// Window relative to the start of the report timeline (ns).
    pub from_ns: Option<u64>,
    pub to_ns: Option<u64>,
}

/// Report options.
#[derive(Clone, Debug)]
pub struct Options {
    pub filter: Filter,
    pub top: usize,
    pub slow_ns: Option<u64>,
}

impl Filter {
    pub fn side_matches(&self, s: &Side) -> bool {
        if self.pid.is_some_and(|p| p != s.pid) {
            return false;
        }
        if self.comm.as_deref().is_some_and(|c| c != s.comm) {
            return false;
        }
        if let Some(port) = self.port {
            let mut ports = Vec::new();
            if let Some(i) = &s.info {
                ports.extend([i.local.port, i.remote.port]);
            }
            if let Some(d) = &s.connect_dst {
                ports.push(d.port);
            }
            if let Some(l) = &s.snapshot_local {
                ports.push(l.port);
            }
            if !ports.contains(&port) {
                return false;
            }
        }
        true
    }

    /// A connection matches when its id matches and any of its sides matches
    /// the pid/comm/port filters.
    pub fn conn_matches(&self, a: &Analysis, ci: usize) -> bool {
        let c = &a.conns[ci];
        if c.idle || self.conn.is_some_and(|id| id != c.id) {
            return false;
        }
        c.sides.iter().any(|&s| self.side_matches(&a.sides[s]))
    }

    pub fn message_matches(&self, a: &Analysis, m: &Message) -> bool {
        let t = m.first_point().map(|t| t.saturating_sub(a.t0)).unwrap_or(0);
        if self.from_ns.is_some_and(|f| t < f as i64) || self.to_ns.is_some_and(|e| t > e as i64) {
            return false;
        }
        true
    }
}

/// Build a report from an analysis whose messages were collected (tests).
pub fn build(a: &Analysis, opts: &Options, warnings: &[Vec<String>]) -> Report {
    let mut s = ReportSink::new(opts.clone());
    s.begin(a);
    for m in &a.messages {
        s.message(a, m.clone());
    }
    s.finish(a, warnings)
}
