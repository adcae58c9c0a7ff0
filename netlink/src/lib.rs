//! `smc-netlink`: read and configure the Linux SMC stack (AF_SMC, net/smc) from Rust.
//!
//! What it is for: the kernel's own SMC interfaces, spoken directly, because smc-tools is
//! not packaged in Debian. The lab uses it to set up SMC-R (UEIDs, PNET table), `smcctl`
//! is its command line, and the recorder snapshots SMC state into recordings with it.
//!
//! - generic netlink family `SMC_GEN_NETLINK`: [`add_ueid`], [`del_ueid`], [`list_ueids`],
//!   [`flush_ueids`], [`sys_info`], [`stats`], [`fallback_stats`], [`link_groups`], [`links`];
//! - generic netlink family `SMC_PNETID`: [`pnet_add_netdev`], [`pnet_add_ib`], [`pnet_list`],
//!   [`pnet_del`], [`pnet_flush`];
//! - `NETLINK_SOCK_DIAG` with family AF_SMC (smc_diag): [`diag_sockets`], including the
//!   per-connection latency metrics ([`LatencyInfo`]) and, in [`stats`], the per-netns
//!   latency histograms ([`Stats::lat_histogram`]) of kernels with smctrace's net/smc series;
//! - [`snapshot`]: all of the above that a recording stores, as `smctrace_format::meta::Snapshot`.
//!
//! What it is not: a tracer. These interfaces only give counters and samples; the only
//! timing is the latency metrics of a kernel with smctrace's net/smc series.
//! Every call opens its own socket, so the functions are independent and thread-safe.
//! Errors are [`Error`] values whose `Display` is one line.

mod attrs;
pub mod diag;
mod error;
mod nl;
pub mod smc;
mod snapshot;

pub use diag::{
    diag_sockets, lat_stage_name, ConnInfo, Cursor, DiagSock, DmbInfo, FallbackInfo, LatAnomaly,
    LatStage, LatencyInfo, LgrInfo,
};
pub use error::{Error, Result};
pub use smc::{
    add_ueid, del_ueid, fallback_reason_name, fallback_stats, flush_ueids, link_groups, links,
    list_ueids, pnet_add_ib, pnet_add_netdev, pnet_del, pnet_flush, pnet_list, stats, sys_info,
    Fallback, FallbackStats, Link, LinkGroup, PnetEntry, Stats, SysInfo,
};
pub use snapshot::{link_snapshot, monotonic_ns, snapshot, sock_snapshot};
