//! Recording metadata: what a `.smctrace` file says about itself (host, kernel,
//! clock reference, probe set, filters, SMC snapshots) and the end-of-recording
//! trailer.
//!
//! These types are archived with rkyv 0.8 (validated with bytecheck on read),
//! so their field order *is* the on-disk layout: changing a field here is a
//! format major bump. Forward-compatible additions go into
//! [`Metadata::extra`] as free-form key/value pairs (see SPEC.md, "Metadata").

use rkyv::{Archive, Deserialize, Serialize};

/// CLOCK_MONOTONIC and CLOCK_REALTIME read back to back by the recorder, so an
/// event timestamp (`bpf_ktime_get_ns()`, CLOCK_MONOTONIC) maps to wall time.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClockRef {
    pub monotonic_ns: u64,
    pub realtime_ns: u64,
}

impl ClockRef {
    /// Wall-clock nanoseconds since the Unix epoch of a CLOCK_MONOTONIC timestamp.
    pub fn to_realtime_ns(&self, monotonic_ns: u64) -> i128 {
        self.realtime_ns as i128 + (monotonic_ns as i128 - self.monotonic_ns as i128)
    }
}

/// One probe of the recorder's probe set and whether it could be attached.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct ProbeInfo {
    /// Stable probe name (e.g. `smc_sendmsg`).
    pub name: String,
    /// Kernel symbol or tracepoint it attaches to.
    pub hook: String,
    /// `kprobe`, `kretprobe`, `raw_tracepoint`, ...
    pub attach_type: String,
    /// Stage of a message's path this probe marks (empty if none).
    pub stage: String,
    pub attached: bool,
    /// Why attaching failed, if it did.
    pub error: Option<String>,
}

/// Filters in force while recording; empty vectors mean "no filter".
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Filters {
    pub pids: Vec<u32>,
    pub comms: Vec<String>,
    pub ports: Vec<u16>,
    pub netns: Vec<u64>,
}

/// SMC fallback counter from the SMC netlink statistics.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FallbackCount {
    /// SMC_CLC_DECL_* reason code.
    pub code: u32,
    pub count: u64,
    /// Counted on the server side (else client side).
    pub server: bool,
}

/// One SMC socket as smc_diag reported it.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockSnapshot {
    pub family: u16,
    pub state: u8,
    /// `event::MODE_*`.
    pub mode: u8,
    /// Network byte order; IPv4 uses the first 4 bytes.
    pub local_addr: [u8; 16],
    pub local_port: u16,
    pub remote_addr: [u8; 16],
    pub remote_port: u16,
    pub inode: u64,
    pub uid: u32,
    pub local_token: u32,
    pub sndbuf_len: u32,
    pub rmb_len: u32,
    pub peer_rmbe_size: u32,
    pub fallback_rsn: u32,
    pub peer_diagnosis: u32,
}

/// One SMC-R link as the SMC netlink interface reported it.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkSnapshot {
    pub lgr_id: u32,
    pub link_id: u8,
    pub ibname: String,
    pub ibport: u8,
    pub netdev: String,
    pub qpn: u32,
    pub peer_qpn: u32,
    pub state: u32,
}

/// What the SMC netlink/diag interfaces said at one moment.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// CLOCK_MONOTONIC when the snapshot was taken.
    pub taken_monotonic_ns: u64,
    /// Flattened counters, e.g. `("smcr.tx_bytes", 123)`.
    pub stats: Vec<(String, u64)>,
    pub fallbacks: Vec<FallbackCount>,
    pub sockets: Vec<SockSnapshot>,
    pub links: Vec<LinkSnapshot>,
    /// Why (part of) the snapshot could not be taken.
    pub error: Option<String>,
}

/// Everything the file header says about the recording.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    pub host: String,
    pub kernel_release: String,
    pub boot_id: String,
    pub recorder_version: String,
    pub command_line: Vec<String>,
    pub clock: ClockRef,
    pub probes: Vec<ProbeInfo>,
    pub filters: Filters,
    /// Bytes of user data captured per send; 0 = no user data captured.
    pub payload_bytes: u32,
    pub start_snapshot: Option<Snapshot>,
    /// Forward-compatible free-form keys (readers ignore keys they do not know).
    pub extra: Vec<(String, String)>,
}

impl Metadata {
    /// Value of a free-form key in [`Metadata::extra`].
    pub fn extra_value(&self, key: &str) -> Option<&str> {
        self.extra
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// One event chunk as listed in the trailer's chunk index.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChunkIndexEntry {
    /// File offset of the chunk header.
    pub offset: u64,
    pub seq: u64,
    pub event_count: u32,
    pub first_ts: u64,
    pub last_ts: u64,
}

/// The trailer, written once on clean close (see SPEC.md, "Trailer").
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Trailer {
    /// Every event chunk of the file, in file order.
    pub chunk_index: Vec<ChunkIndexEntry>,
    /// Per-probe hit counts as the recorder counted them (BPF-side counters).
    pub probe_hits: Vec<(String, u64)>,
    /// Events lost per CPU (ring buffer full), index = CPU number.
    pub lost_per_cpu: Vec<u64>,
    /// CLOCK_MONOTONIC when recording stopped.
    pub end_monotonic_ns: u64,
    pub end_snapshot: Option<Snapshot>,
    /// Always true in a trailer the writer produced; kept so a tool that
    /// rewrites files can mark a salvaged one.
    pub clean_close: bool,
    /// Sum of the event counts of all chunks.
    pub total_events: u64,
}

impl Trailer {
    /// Total events lost across CPUs.
    pub fn lost_total(&self) -> u64 {
        self.lost_per_cpu.iter().sum()
    }
}
