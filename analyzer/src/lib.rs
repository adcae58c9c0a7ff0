//! smc-analyze: offline replay of `.smctrace` recordings into connections,
//! messages and stage latencies, and the reports an operator reads when an
//! SMC connection is slow. Reads recordings only through `smctrace-format`.
//!
//! Data flow: events ([`model`]) -> connections, clock offsets and complete
//! messages ([`join`]) -> statistics ([`stats`], bounded by [`sketch`]) -> outputs ([`report`], [`export`],
//! [`pcapng`], [`plot`], [`html`]) and the CI gate ([`gate`]).
//! [`info`] prints a recording's own facts without analyzing it. `synth`
//! (feature `synth`, for tests, benches and examples only) writes synthetic
//! recordings.

#![forbid(unsafe_code)]

pub mod decline;
pub mod duration;
pub mod export;
pub mod gate;
pub mod history;
pub mod html;
pub mod idhash;
pub mod info;
pub mod input;
pub mod join;
pub mod model;
pub mod pcapng;
pub mod plot;
pub mod report;
pub mod sketch;
pub mod stats;
#[cfg(feature = "synth")]
pub mod synth;
