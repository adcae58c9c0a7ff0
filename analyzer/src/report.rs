//! The report an operator reads: summary, clock offsets, fallback reasons,
//! per-stage latency table, per-connection table, handshake timing and the
//! slowest messages with their full timeline. Built once as a serde value
//! ([`Report`], the stable JSON schema of docs/analyzer.md) and rendered as
//! text from that same value, so `--json` and the text never disagree.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::decline;
use crate::duration::fmt;
use crate::join::{Analysis, Dir, Message, MsgKind, Sink, POINTS, STAGES};
use crate::model::{gap, Mode, Role, Side};
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

fn side_report(a: &Analysis, s: &Side) -> SideReport {
    let off = a.offset(s.rec).unwrap_or(0);
    let i = s.info.as_ref();
    SideReport {
        recording: s.rec,
        role: s.role,
        pid: s.pid,
        comm: s.comm.clone(),
        local: i
            .map(|i| i.local.to_string())
            .or_else(|| s.snapshot_local.as_ref().map(|l| l.to_string())),
        remote: i
            .map(|i| i.remote.to_string())
            .or_else(|| s.connect_dst.as_ref().map(|d| d.to_string())),
        local_token: s.local_token,
        peer_token: s.peer_token,
        qpn: i.filter(|_| s.mode == Mode::SmcR).map(|i| i.qpn),
        peer_qpn: i.filter(|_| s.mode == Mode::SmcR).map(|i| i.peer_qpn),
        ibname: i.filter(|i| !i.ibname.is_empty()).map(|i| i.ibname.clone()),
        link_id: i.filter(|_| s.mode == Mode::SmcR).map(|i| i.link_id),
        sndbuf_len: s.tx.sndbuf_len,
        rmb_len: s.rx.rmb_len,
        peer_rmbe_size: s.tx.peer_rmbe_size,
        closed_ns: s
            .close
            .map(|(t, _, _)| (t as i64).saturating_sub(off).saturating_sub(a.t0)),
        fallback: s.fallback.map(|(_, code, diag)| fallback_info(code, diag)),
    }
}

fn fallback_info(code: u32, diag: u32) -> FallbackInfo {
    FallbackInfo {
        code,
        name: decline::name(code),
        meaning: decline::lookup(code)
            .map(|d| d.meaning.to_string())
            .unwrap_or_default(),
        peer_diagnosis: diag,
    }
}

fn handshake(a: &Analysis, s: &Side) -> Option<HandshakeReport> {
    let off = a.offset(s.rec).unwrap_or(0);
    let start = s.connect_ts.or_else(|| s.clc.iter().map(|c| c.ts).min())?;
    let rel = |t: u64| (t as i64).saturating_sub(start as i64);
    let mut steps = Vec::new();
    if s.connect_ts.is_some() {
        steps.push(HandshakeStep {
            event: "connect".into(),
            at_ns: 0,
        });
    }
    for c in &s.clc {
        let why = if c.clc_type == "decline" && c.decline_diag != 0 {
            format!(" {}", decline::name(c.decline_diag))
        } else {
            String::new()
        };
        steps.push(HandshakeStep {
            event: format!("clc {} {}{why}", c.dir, c.clc_type),
            at_ns: rel(c.ts),
        });
    }
    if let Some((t, code, _)) = s.fallback {
        steps.push(HandshakeStep {
            event: format!("fallback {}", decline::name(code)),
            at_ns: rel(t),
        });
    }
    if let Some(i) = &s.info {
        steps.push(HandshakeStep {
            event: "done".into(),
            at_ns: rel(i.ts),
        });
    }
    steps.sort_by_key(|x| x.at_ns);
    Some(HandshakeReport {
        side: s.role,
        start_ns: (start as i64).saturating_sub(off).saturating_sub(a.t0),
        total_ns: s.info.as_ref().map(|i| rel(i.ts)),
        rc: s.info.as_ref().map(|i| i.rc),
        steps,
        first_data_ns: s.first_data_ts.map(rel),
    })
}

fn conn_mode(a: &Analysis, sides: &[usize]) -> Mode {
    let modes: Vec<Mode> = sides.iter().map(|&s| a.sides[s].mode).collect();
    if modes.contains(&Mode::Fallback) {
        Mode::Fallback
    } else {
        modes
            .into_iter()
            .find(|m| *m != Mode::Unknown)
            .unwrap_or(Mode::Unknown)
    }
}

pub(crate) fn basis(m: &Message) -> &'static str {
    if m.stages[crate::join::E2E].is_some() {
        "e2e"
    } else {
        "local"
    }
}

/// One message as reported (timeline relative to the report start).
pub fn message_report(a: &Analysis, m: &Message) -> MessageReport {
    let mut timeline: Vec<PointReport> = POINTS
        .iter()
        .zip(m.points.iter())
        .filter_map(|(p, t)| {
            t.map(|t| PointReport {
                point: p,
                t_ns: t.saturating_sub(a.t0),
            })
        })
        .collect();
    timeline.sort_by_key(|p| p.t_ns);
    MessageReport {
        conn: a.conns[m.conn].id,
        dir: m.dir,
        kind: m.kind,
        len: m.len,
        stream_start: m.start,
        stream_end: m.end,
        cdc_seqno: m.cdc_seqno,
        latency_ns: m.latency(),
        latency_basis: basis(m),
        blocking_stage: m.blocking_stage().map(|b| b.0),
        complete: !m.incomplete(),
        gaps: gap::names(m.gaps),
        timeline,
        stages: STAGES
            .iter()
            .zip(m.stages.iter())
            .filter_map(|(d, v)| v.map(|v| (d.name, v)))
            .collect(),
    }
}

/// Per-connection accumulators.
struct ConnAcc {
    fwd: u64,
    bwd: u64,
    bytes_fwd: u64,
    bytes_bwd: u64,
    incomplete: u64,
    e2e: Series,
    local: Series,
    totals: [i64; 10],
}

/// Exact per-connection latencies kept before a connection's series turns
/// into a sketch: 32 KiB per connection, so many connections stay bounded.
pub const CONN_EXACT_LIMIT: usize = 4096;

impl Default for ConnAcc {
    fn default() -> ConnAcc {
        ConnAcc {
            fwd: 0,
            bwd: 0,
            bytes_fwd: 0,
            bytes_bwd: 0,
            incomplete: 0,
            e2e: Series::with_limit(CONN_EXACT_LIMIT),
            local: Series::with_limit(CONN_EXACT_LIMIT),
            totals: [0; 10],
        }
    }
}

/// Ranked entry of the slowest-message list.
struct Ranked(i64, u64, MessageReport);
impl PartialEq for Ranked {
    fn eq(&self, o: &Self) -> bool {
        (self.0, self.1) == (o.0, o.1)
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Ranked {
    // Slower first; among equals the earlier message first.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        o.0.cmp(&self.0).then(self.1.cmp(&o.1))
    }
}

/// Builds a [`Report`] from the message stream: keeps per-stage and
/// per-connection duration series (exact while small, then bounded sketches,
/// see [`crate::sketch`]), the N slowest messages and, with `--slow`, the
/// slow ones; each message is dropped once counted.
pub struct ReportSink {
    opts: Options,
    conn_ok: Vec<bool>,
    stages: Vec<Series>,
    conns: Vec<ConnAcc>,
    top: std::collections::BinaryHeap<Ranked>,
    slow: Vec<Ranked>,
    seq: u64,
    messages: u64,
    complete: u64,
    fallback: u64,
    rx_only: u64,
    bytes: u64,
}

impl ReportSink {
    pub fn new(opts: Options) -> ReportSink {
        ReportSink {
            opts,
            conn_ok: Vec::new(),
            stages: vec![Series::default(); STAGES.len()],
            conns: Vec::new(),
            top: Default::default(),
            slow: Vec::new(),
            seq: 0,
            messages: 0,
            complete: 0,
            fallback: 0,
            rx_only: 0,
            bytes: 0,
        }
    }

    /// Whether a message is in the selection.
    pub fn selected(&self, a: &Analysis, m: &Message) -> bool {
        self.conn_ok.get(m.conn).copied().unwrap_or(false) && self.opts.filter.message_matches(a, m)
    }
}

impl Sink for ReportSink {
    fn begin(&mut self, a: &Analysis) {
        self.conn_ok = (0..a.conns.len())
            .map(|ci| self.opts.filter.conn_matches(a, ci))
            .collect();
        self.conns = (0..a.conns.len()).map(|_| ConnAcc::default()).collect();
    }

    fn message(&mut self, a: &Analysis, m: Message) {
        if !self.selected(a, &m) {
            return;
        }
        self.seq += 1;
        self.messages += 1;
        let complete = !m.incomplete();
        match m.kind {
            MsgKind::Fallback => self.fallback += 1,
            MsgKind::RxOnly => self.rx_only += 1,
            MsgKind::Smc => {}
        }
        if m.kind != MsgKind::RxOnly {
            self.bytes = self.bytes.saturating_add(m.len);
        }
        if complete {
            self.complete += 1;
            for (k, v) in m.stages.iter().enumerate() {
                if let Some(v) = v {
                    self.stages[k].push(*v);
                }
            }
        }
        let c = &mut self.conns[m.conn];
        match m.dir {
            Dir::Forward => {
                if m.kind != MsgKind::RxOnly {
                    c.fwd += 1;
                }
                c.bytes_fwd = c.bytes_fwd.saturating_add(m.len);
            }
            Dir::Backward => {
                if m.kind != MsgKind::RxOnly {
                    c.bwd += 1;
                }
                c.bytes_bwd = c.bytes_bwd.saturating_add(m.len);
            }
        }
        if !complete {
            c.incomplete += 1;
        }
        if complete && m.kind != MsgKind::Fallback {
            if basis(&m) == "e2e" {
                c.e2e.push(m.latency());
            } else {
                c.local.push(m.latency());
            }
            for (k, (d, v)) in STAGES.iter().zip(m.stages.iter()).enumerate() {
                if let (true, Some(v)) = (d.chain, v) {
                    c.totals[k] = c.totals[k].saturating_add(*v);
                }
            }
        }
        if m.kind == MsgKind::Fallback {
            return;
        }
        let lat = m.latency();
        let slow = self.opts.slow_ns.is_some_and(|th| lat >= th as i64);
        let top = self.opts.top > 0
            && (self.top.len() < self.opts.top || self.top.peek().is_some_and(|w| lat > w.0));
        if slow || top {
            let r = message_report(a, &m);
            if slow {
                self.slow.push(Ranked(lat, self.seq, r.clone()));
            }
            if top {
                self.top.push(Ranked(lat, self.seq, r));
                if self.top.len() > self.opts.top {
                    self.top.pop();
                }
            }
        }
    }
}

impl ReportSink {
    /// The report (warnings are per recording, from loading).
    pub fn finish(mut self, a: &Analysis, warnings: &[Vec<String>]) -> Report {
        let f = self.opts.filter.clone();
        let recordings: Vec<RecordingReport> = a
            .recordings
            .iter()
            .enumerate()
            .map(|(i, r)| RecordingReport {
                index: i,
                path: r.path.clone(),
                host: r.host.clone(),
                kernel_release: r.kernel_release.clone(),
                clean_close: r.clean_close,
                boot_id: r.boot_id.clone(),
                events: r.stats.events,
                lost_events: r.stats.lost_events,
                unreadable_chunks: r.stats.unreadable_chunks,
                late_events: r.stats.late_events,
                unknown_kinds: r.stats.unknown_kinds,
                unresolved_cdc_recv: r.stats.unresolved_cdc_recv,
                duration_ns: match (r.stats.first_ts, r.stats.last_ts) {
                    (Some(f), Some(l)) => l.saturating_sub(f),
                    _ => 0,
                },
                link_down: r
                    .stats
                    .link_down_events
                    .iter()
                    .map(|l| LinkDownReport {
                        t_ns: (l.ts as i64)
                            .saturating_sub(a.offset(i).unwrap_or(0))
                            .saturating_sub(a.t0),
                        ibname: l.ibname.clone(),
                        link_id: l.link_id,
                        state: l.state,
                    })
                    .collect(),
                warnings: warnings.get(i).cloned().unwrap_or_default(),
            })
            .collect();
        // Stage table over complete messages only: an incomplete message's
        // stages may be measured against the wrong event.
        let mut stages = Vec::new();
        for (k, d) in STAGES.iter().enumerate() {
            if let Some(s) = summarize_series(&mut self.stages[k]) {
                stages.push(StageRow {
                    stage: d.name,
                    summary: s,
                });
            }
        }
        let mut by_mode: BTreeMap<String, u64> = BTreeMap::new();
        let mut fallbacks: BTreeMap<(u32, &'static str), (Role, u64)> = BTreeMap::new();
        let mut conns = Vec::new();
        let mut hs_totals = Vec::new();
        for (ci, c) in a.conns.iter().enumerate() {
            if !self.conn_ok.get(ci).copied().unwrap_or(false) {
                continue;
            }
            let acc = &mut self.conns[ci];
            let mode = conn_mode(a, &c.sides);
            *by_mode.entry(mode.label().to_string()).or_default() += 1;
            for &s in &c.sides {
                if let Some((_, code, _)) = a.sides[s].fallback {
                    let role = a.sides[s].role;
                    let label = match role {
                        Role::Client => "client",
                        Role::Server => "server",
                        Role::Unknown => "unknown",
                    };
                    fallbacks.entry((code, label)).or_insert((role, 0)).1 += 1;
                }
            }
            // The connection's reason: the client's when it has one.
            let fb = c
                .sides
                .iter()
                .map(|&s| &a.sides[s])
                .filter(|s| s.fallback.is_some())
                .min_by_key(|s| s.role != Role::Client)
                .and_then(|s| s.fallback);
            let e2e = !acc.e2e.is_empty();
            let sum = if e2e {
                summarize_series(&mut acc.e2e)
            } else {
                summarize_series(&mut acc.local)
            };
            let dominant = STAGES
                .iter()
                .zip(acc.totals.iter())
                .filter(|(d, v)| d.chain && **v > 0)
                .max_by_key(|(_, v)| **v)
                .map(|(d, _)| d.name);
            let hs_side = c
                .sides
                .iter()
                .map(|&s| &a.sides[s])
                .find(|s| s.role == Role::Client && s.connect_ts.is_some())
                .or_else(|| {
                    c.sides
                        .iter()
                        .map(|&s| &a.sides[s])
                        .find(|s| !s.clc.is_empty())
                });
            let hs = hs_side.and_then(|s| handshake(a, s));
            if let Some(t) = hs.as_ref().and_then(|h| h.total_ns) {
                hs_totals.push(t);
            }
            let side_of = |role: Role| {
                c.sides
                    .iter()
                    .map(|&s| &a.sides[s])
                    .find(|s| s.role == role)
            };
            let client = side_of(Role::Client)
                .and_then(|s| s.info.as_ref().map(|i| i.local.to_string()))
                .or_else(|| {
                    side_of(Role::Server)
                        .and_then(|s| s.info.as_ref().map(|i| i.remote.to_string()))
                });
            let server = side_of(Role::Server)
                .and_then(|s| s.info.as_ref().map(|i| i.local.to_string()))
                .or_else(|| {
                    side_of(Role::Client).and_then(|s| {
                        s.info
                            .as_ref()
                            .map(|i| i.remote.to_string())
                            .or_else(|| s.connect_dst.as_ref().map(|d| d.to_string()))
                    })
                });
            let sides: Vec<SideReport> = c
                .sides
                .iter()
                .map(|&s| side_report(a, &a.sides[s]))
                .collect();
            // Roles unknown (no handshake recorded): the first side's view.
            let client = client.or_else(|| sides.first().and_then(|s| s.local.clone()));
            let server = server.or_else(|| sides.first().and_then(|s| s.remote.clone()));
            conns.push(ConnReport {
                id: c.id,
                mode,
                client,
                server,
                sides,
                fallback: fb.map(|(_, code, diag)| fallback_info(code, diag)),
                messages_fwd: acc.fwd,
                messages_bwd: acc.bwd,
                bytes_fwd: acc.bytes_fwd,
                bytes_bwd: acc.bytes_bwd,
                incomplete: acc.incomplete,
                latency_basis: if e2e { "e2e" } else { "local" },
                latency_p50_ns: sum.as_ref().map(|s| s.p50_ns),
                latency_p99_ns: sum.as_ref().map(|s| s.p99_ns),
                latency_approximate: sum.as_ref().is_some_and(|s| s.approximate),
                dominant_stage: dominant,
                handshake: hs,
            });
        }
        let slowest = self
            .top
            .into_sorted_vec()
            .into_iter()
            .map(|r| r.2)
            .collect();
        self.slow.sort();
        let slow = self.slow.into_iter().map(|r| r.2).collect();
        let total_events: u64 = a.recordings.iter().map(|r| r.stats.events).sum();
        let lost: u64 = a.recordings.iter().map(|r| r.stats.lost_events).sum();
        let span = (0..a.recordings.len())
            .filter_map(|r| {
                let off = a.offset(r).unwrap_or(0);
                let s = &a.recordings[r].stats;
                Some((
                    (s.first_ts? as i64).saturating_sub(off),
                    (s.last_ts? as i64).saturating_sub(off),
                ))
            })
            .fold(None, |acc: Option<(i64, i64)>, (f, l)| {
                Some(acc.map_or((f, l), |(af, al)| (af.min(f), al.max(l))))
            });
        let summary = SummaryReport {
            duration_ns: span.map_or(0, |(f, l)| l.saturating_sub(f).max(0) as u64),
            events: total_events,
            lost_events: lost,
            connections: conns.len() as u64,
            connections_by_mode: by_mode,
            messages: self.messages,
            complete_messages: self.complete,
            incomplete_messages: self.messages - self.complete,
            fallback_messages: self.fallback,
            rx_only_messages: self.rx_only,
            bytes: self.bytes,
        };
        Report {
            schema: SCHEMA,
            recordings,
            clock: a.clocks.clone(),
            filter: f,
            summary,
            fallback_reasons: fallbacks
                .into_iter()
                .map(|((code, _), (side, n))| FallbackReport {
                    code,
                    name: decline::name(code),
                    meaning: decline::lookup(code)
                        .map(|d| d.meaning.to_string())
                        .unwrap_or_default(),
                    side,
                    connections: n,
                })
                .collect(),
            stages,
            handshake: summarize(&mut hs_totals),
            connections: conns,
            slowest,
            slow_threshold_ns: self.opts.slow_ns,
            slow,
        }
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

fn opt(v: Option<i64>) -> String {
    v.map(fmt).unwrap_or_else(|| "-".into())
}

fn fmt_message(out: &mut String, idx: usize, m: &MessageReport) {
    let _ = writeln!(
        out,
        "  #{idx} conn {} {} {} B  {} {}  blocked in {}{}",
        m.conn,
        match m.dir {
            Dir::Forward => "->",
            Dir::Backward => "<-",
        },
        m.len,
        if m.latency_basis == "e2e" {
            "e2e"
        } else {
            "local span"
        },
        fmt(m.latency_ns),
        m.blocking_stage.unwrap_or("-"),
        if m.complete {
            String::new()
        } else {
            format!("  INCOMPLETE ({})", m.gaps.join(", "))
        },
    );
    let t0 = m.timeline.first().map(|p| p.t_ns).unwrap_or(0);
    let mut line = String::new();
    for p in &m.timeline {
        let _ = write!(line, " {}@+{}", p.point, fmt(p.t_ns.saturating_sub(t0)));
    }
    let _ = writeln!(out, "     at {:.6}s:{line}", t0 as f64 / 1e9);
    let mut st = String::new();
    for d in STAGES.iter() {
        if let Some(v) = m.stages.get(d.name) {
            let _ = write!(st, " {}={}", d.name, fmt(*v));
        }
    }
    let _ = writeln!(out, "     stages:{st}");
}

/// The text form of a report.
pub fn render_text(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "smc-analyze report ({} recording{})",
        r.recordings.len(),
        if r.recordings.len() == 1 { "" } else { "s" }
    );
    for rec in &r.recordings {
        let _ = writeln!(
            o,
            "  [{}] {}  host {}  kernel {}  {} events over {}  lost {}{}",
            rec.index,
            rec.path,
            if rec.host.is_empty() { "?" } else { &rec.host },
            if rec.kernel_release.is_empty() {
                "?"
            } else {
                &rec.kernel_release
            },
            rec.events,
            fmt(rec.duration_ns as i64),
            if rec.clean_close {
                rec.lost_events.to_string()
            } else {
                "unknown".to_string()
            },
            if rec.unreadable_chunks > 0 {
                format!(", {} unreadable chunks", rec.unreadable_chunks)
            } else {
                String::new()
            },
        );
        for l in &rec.link_down {
            let _ = writeln!(
                o,
                "      SMC-R link down at {:.6}s: {} link {} (state {})",
                l.t_ns as f64 / 1e9,
                if l.ibname.is_empty() { "?" } else { &l.ibname },
                l.link_id,
                l.state
            );
        }
        for w in &rec.warnings {
            let _ = writeln!(o, "      warning: {w}");
        }
    }
    for c in r.clock.iter().filter(|c| c.recording > 0) {
        let _ = match (c.method, c.offset_ns, c.uncertainty_ns) {
            ("same_host", _, _) => writeln!(o, "clock [{}]: same host as [0] (same boot id), offset 0", c.recording),
            (_, Some(off), Some(u)) => writeln!(
                o,
                "clock [{}] - [0] = {} ± {} (two-way CDC bracketing, {} + {} CDC pairs)",
                c.recording,
                fmt(off),
                fmt(u as i64),
                c.pairs_to,
                c.pairs_from
            ),
            _ => writeln!(
                o,
                "clock [{}]: offset unknown (needs CDCs paired in both directions; have {} + {}): cross-host stages (wire, e2e) omitted",
                c.recording, c.pairs_to, c.pairs_from
            ),
        };
    }
    let s = &r.summary;
    let modes: Vec<String> = s
        .connections_by_mode
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let _ = writeln!(
        o,
        "\nsummary: {} span, {} events, {} lost; {} connection{} ({}); {} messages ({} complete, {} incomplete, {} fallback, {} receive-only), {} bytes",
        fmt(s.duration_ns as i64),
        s.events,
        s.lost_events,
        s.connections,
        if s.connections == 1 { "" } else { "s" },
        if modes.is_empty() { "-".into() } else { modes.join(", ") },
        s.messages,
        s.complete_messages,
        s.incomplete_messages,
        s.fallback_messages,
        s.rx_only_messages,
        s.bytes
    );
    if !r.fallback_reasons.is_empty() {
        let _ = writeln!(o, "\nfallback reasons:");
        for f in &r.fallback_reasons {
            let _ = writeln!(
                o,
                "  {:#010x} {:<12} {:<7} {:>5} connection(s)  {}",
                f.code,
                f.name,
                format!("{:?}", f.side).to_lowercase(),
                f.connections,
                f.meaning
            );
        }
    }
    let _ = writeln!(o, "\nstages (complete messages):");
    let _ = writeln!(
        o,
        "  {:<13} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "stage", "count", "mean", "p50", "p90", "p99", "p99.9", "max"
    );
    if r.stages.is_empty() {
        let _ = writeln!(o, "  (no complete messages)");
    }
    for st in &r.stages {
        let [count, mean, p50, p90, p99, p999, max] = st.summary.cells();
        let _ = writeln!(
            o,
            "  {:<13} {count:>8} {mean:>9} {p50:>9} {p90:>9} {p99:>9} {p999:>9} {max:>9}",
            st.stage
        );
    }
    if r.stages.iter().any(|s| s.summary.approximate) {
        let _ = writeln!(o, "  p50..p99.9 of stages with more than 65536 messages are approximate (within 0.5%); count, mean, max exact");
    }
    let _ = writeln!(o, "\nconnections:");
    let _ = writeln!(
        o,
        "  {:>4} {:<8} {:<45} {:>13} {:>17} {:>6} {:>9} {:>9} {:<12}",
        "id",
        "mode",
        "client -> server",
        "msgs ->/<-",
        "bytes ->/<-",
        "incmpl",
        "p50",
        "p99",
        "dominant"
    );
    for c in &r.connections {
        let ends = format!(
            "{} -> {}",
            c.client.as_deref().unwrap_or("?"),
            c.server.as_deref().unwrap_or("?")
        );
        let basis = if c.latency_basis == "e2e" { "" } else { "*" };
        let _ = writeln!(
            o,
            "  {:>4} {:<8} {:<45} {:>13} {:>17} {:>6} {:>9} {:>9} {:<12}",
            c.id,
            c.mode.label(),
            ends,
            format!("{}/{}", c.messages_fwd, c.messages_bwd),
            format!("{}/{}", c.bytes_fwd, c.bytes_bwd),
            c.incomplete,
            format!("{}{basis}", opt(c.latency_p50_ns)),
            format!("{}{basis}", opt(c.latency_p99_ns)),
            c.dominant_stage.unwrap_or("-")
        );
        let who: Vec<String> = c
            .sides
            .iter()
            .map(|s| {
                format!(
                    "[{}] {:?} pid {} {}{}",
                    s.recording,
                    s.role,
                    s.pid,
                    if s.comm.is_empty() { "?" } else { &s.comm },
                    s.ibname
                        .as_ref()
                        .map(|i| format!(" {i}/qp {}", s.qpn.unwrap_or(0)))
                        .unwrap_or_default()
                )
            })
            .collect();
        let _ = writeln!(o, "       {}", who.join("; "));
        for s in &c.sides {
            if let Some(f) = &s.fallback {
                let _ = writeln!(
                    o,
                    "       [{}] {:?} fell back: {:#010x} {} ({})",
                    s.recording, s.role, f.code, f.name, f.meaning
                );
            }
        }
    }
    if r.connections.iter().any(|c| c.latency_basis != "e2e") {
        let _ = writeln!(o, "  * local span: the peer (or the clock offset to it) is not known; latency is what this side saw");
    }
    if r.connections.iter().any(|c| c.latency_approximate) {
        let _ = writeln!(o, "  p50/p99 of connections with more than 4096 complete messages are approximate (within 0.5%)");
    }
    let _ = writeln!(o, "\nhandshakes:");
    match &r.handshake {
        Some(h) => {
            let _ = writeln!(
                o,
                "  {} handshakes: p50 {}  p99 {}  max {}",
                h.count,
                fmt(h.p50_ns),
                fmt(h.p99_ns),
                fmt(h.max_ns)
            );
        }
        None => {
            let _ = writeln!(o, "  (no handshake in the recording)");
        }
    }
    for c in &r.connections {
        if let Some(h) = &c.handshake {
            let steps: Vec<String> = h
                .steps
                .iter()
                .map(|s| format!("{} +{}", s.event, fmt(s.at_ns)))
                .collect();
            let _ = writeln!(
                o,
                "  conn {:>4} ({:?}) total {}  first data +{}:  {}",
                c.id,
                h.side,
                opt(h.total_ns),
                opt(h.first_data_ns),
                steps.join(", ")
            );
        }
    }
    let _ = writeln!(o, "\nslowest {} messages:", r.slowest.len());
    for (i, m) in r.slowest.iter().enumerate() {
        fmt_message(&mut o, i + 1, m);
    }
    if let Some(th) = r.slow_threshold_ns {
        let _ = writeln!(
            o,
            "\n{} messages at or above {}:",
            r.slow.len(),
            fmt(th as i64)
        );
        for (i, m) in r.slow.iter().enumerate() {
            fmt_message(&mut o, i + 1, m);
        }
    }
    o
}
