//! The report's schema: the serde value that `--json` prints (schema
//! `smc-analyze/report/1`, documented in docs/analyzer.md) and that the text
//! renderer ([`super::text`]) and the CI gate read. Only types live here.

use super::*;

#[derive(Clone, Debug, serde::Serialize)]
pub struct RecordingReport {
    pub index: usize,
    pub path: String,
    pub host: String,
    pub kernel_release: String,
    pub boot_id: String,
    /// False: the file has no trailer, `lost_events` is then unknown (0).
    pub clean_close: bool,
    pub events: u64,
    pub lost_events: u64,
    pub unreadable_chunks: u64,
    pub late_events: u64,
    pub unknown_kinds: u64,
    pub unresolved_cdc_recv: u64,
    pub duration_ns: u64,
    /// SMC-R link failures: time on the report timeline, device, link id.
    pub link_down: Vec<LinkDownReport>,
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct LinkDownReport {
    pub t_ns: i64,
    pub ibname: String,
    pub link_id: u8,
    pub state: u8,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct SummaryReport {
    pub duration_ns: u64,
    pub events: u64,
    pub lost_events: u64,
    pub connections: u64,
    pub connections_by_mode: BTreeMap<String, u64>,
    pub messages: u64,
    pub complete_messages: u64,
    pub incomplete_messages: u64,
    pub fallback_messages: u64,
    pub rx_only_messages: u64,
    pub bytes: u64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct FallbackReport {
    pub code: u32,
    pub name: String,
    pub meaning: String,
    /// Which side fell back with this reason (a server that declines and the
    /// client that receives the decline give different reasons).
    pub side: Role,
    pub connections: u64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct StageRow {
    pub stage: &'static str,
    #[serde(flatten)]
    pub summary: Summary,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct SideReport {
    pub recording: usize,
    pub role: Role,
    pub pid: u32,
    pub comm: String,
    pub local: Option<String>,
    pub remote: Option<String>,
    pub local_token: Option<u32>,
    pub peer_token: Option<u32>,
    pub qpn: Option<u32>,
    pub peer_qpn: Option<u32>,
    pub ibname: Option<String>,
    pub link_id: Option<u8>,
    pub sndbuf_len: u32,
    pub rmb_len: u32,
    pub peer_rmbe_size: u32,
    pub closed_ns: Option<i64>,
    pub fallback: Option<FallbackInfo>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct HandshakeStep {
    pub event: String,
    pub at_ns: i64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct HandshakeReport {
    /// The side the timing is taken from ("client" preferred).
    pub side: Role,
    /// Start (connect, or first CLC message on a server) on the report timeline.
    pub start_ns: i64,
    /// Start to the end of the handshake (CONN_INFO); None if it did not end in the recording.
    pub total_ns: Option<i64>,
    pub rc: Option<i32>,
    pub steps: Vec<HandshakeStep>,
    /// Start to the first byte copied or received.
    pub first_data_ns: Option<i64>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct FallbackInfo {
    pub code: u32,
    pub name: String,
    pub meaning: String,
    pub peer_diagnosis: u32,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct ConnReport {
    pub id: u32,
    pub mode: Mode,
    pub client: Option<String>,
    pub server: Option<String>,
    pub sides: Vec<SideReport>,
    pub fallback: Option<FallbackInfo>,
    pub messages_fwd: u64,
    pub messages_bwd: u64,
    pub bytes_fwd: u64,
    pub bytes_bwd: u64,
    pub incomplete: u64,
    /// "e2e" when both ends were recorded, else "local" (the span one side saw).
    pub latency_basis: &'static str,
    pub latency_p50_ns: Option<i64>,
    pub latency_p99_ns: Option<i64>,
    /// p50/p99 are approximate (within 0.5%): the connection had more than
    /// 4,096 complete messages. Absent from JSON when false.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub latency_approximate: bool,
    pub dominant_stage: Option<&'static str>,
    pub handshake: Option<HandshakeReport>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct PointReport {
    pub point: &'static str,
    /// On the report timeline (ns since its start).
    pub t_ns: i64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct MessageReport {
    pub conn: u32,
    pub dir: Dir,
    pub kind: MsgKind,
    pub len: u64,
    pub stream_start: u64,
    pub stream_end: u64,
    pub cdc_seqno: Option<u16>,
    pub latency_ns: i64,
    pub latency_basis: &'static str,
    pub blocking_stage: Option<&'static str>,
    pub complete: bool,
    pub gaps: Vec<&'static str>,
    pub timeline: Vec<PointReport>,
    pub stages: BTreeMap<&'static str, i64>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub recordings: Vec<RecordingReport>,
    pub clock: Vec<crate::join::ClockEstimate>,
    pub filter: Filter,
    pub summary: SummaryReport,
    pub fallback_reasons: Vec<FallbackReport>,
    pub stages: Vec<StageRow>,
    pub handshake: Option<Summary>,
    pub connections: Vec<ConnReport>,
    pub slowest: Vec<MessageReport>,
    pub slow_threshold_ns: Option<u64>,
    pub slow: Vec<MessageReport>,
}
