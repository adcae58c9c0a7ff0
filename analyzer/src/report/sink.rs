//! Accumulation: [`ReportSink`] receives each joined message once (as a
//! [`Sink`]), keeps bounded per-stage and per-connection statistics and the
//! slowest messages, and turns them with the recordings' facts into a
//! [`Report`] in [`ReportSink::finish`].

use super::*;

pub(super) fn side_report(a: &Analysis, s: &Side) -> SideReport {
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

pub(super) fn fallback_info(code: u32, diag: u32) -> FallbackInfo {
    FallbackInfo {
        code,
        name: decline::name(code),
        meaning: decline::lookup(code)
            .map(|d| d.meaning.to_string())
            .unwrap_or_default(),
        peer_diagnosis: diag,
    }
}

pub(super) fn handshake(a: &Analysis, s: &Side) -> Option<HandshakeReport> {
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
        let why = if c.clc_type == ClcType::Decline && c.decline_diag != 0 {
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

pub(super) fn conn_mode(a: &Analysis, sides: &[usize]) -> Mode {
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
pub(super) struct ConnAcc {
    pub(super) fwd: u64,
    pub(super) bwd: u64,
    pub(super) bytes_fwd: u64,
    pub(super) bytes_bwd: u64,
    pub(super) incomplete: u64,
    pub(super) e2e: Series,
    pub(super) local: Series,
    pub(super) totals: [i64; 10],
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
pub(super) struct Ranked(i64, u64, MessageReport);
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
    pub(super) opts: Options,
    pub(super) conn_ok: Vec<bool>,
    pub(super) stages: Vec<Series>,
    pub(super) conns: Vec<ConnAcc>,
    pub(super) top: std::collections::BinaryHeap<Ranked>,
    pub(super) slow: Vec<Ranked>,
    pub(super) seq: u64,
    pub(super) messages: u64,
    pub(super) complete: u64,
    pub(super) fallback: u64,
    pub(super) rx_only: u64,
    pub(super) bytes: u64,
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
