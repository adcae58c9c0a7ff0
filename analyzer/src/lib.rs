//! smc-analyze: offline replay of `.smctrace` recordings into connections,
//! messages and stage latencies, and the reports an operator reads when an
//! SMC connection is slow. Reads recordings only through `smctrace-format`.
//!
//! Data flow: events ([`model`]) -> connections, clock offsets and complete
//! messages ([`join`]) -> statistics ([`stats`], bounded by [`sketch`]) -> outputs ([`report`], [`export`],
//! [`pcapng`], [`plot`], [`html`]) and the CI gate ([`check`]).

pub mod decline;
pub mod duration;
pub mod model;
pub mod history;
pub mod idhash;
pub mod join;
pub mod synth;
pub mod stats;
pub mod sketch;
pub mod report;
pub mod export;
pub mod input;
pub mod pcapng;
pub mod check;
pub mod plot;
pub mod html;
