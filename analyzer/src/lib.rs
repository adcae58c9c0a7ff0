//! smc-analyze: offline replay of `.smctrace` recordings into connections,
//! messages and stage latencies, and the reports an operator reads when an
//! SMC connection is slow. Reads recordings only through `smctrace-format`.
//!
//! Data flow: events ([`model`]) -> connections, clock offsets and complete
//! messages ([`join`]) -> statistics ([`stats`], bounded by [`sketch`]) -> outputs ([`report`], [`export`],
//! [`pcapng`], [`plot`], [`html`]) and the CI gate ([`check`]).

#![forbid(unsafe_code)]

pub mod check;
pub mod decline;
pub mod duration;
pub mod export;
pub mod history;
pub mod html;
pub mod idhash;
pub mod input;
pub mod join;
pub mod model;
pub mod pcapng;
pub mod plot;
pub mod report;
pub mod sketch;
pub mod stats;
pub mod synth;
