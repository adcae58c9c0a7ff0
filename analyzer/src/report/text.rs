//! The text renderer: a [`Report`] as the plain-text page `smc-analyze
//! report` prints. Reads only the report value, so it cannot disagree with
//! `--json`.

use super::*;

pub(super) fn opt(v: Option<i64>) -> String {
    v.map(fmt).unwrap_or_else(|| "-".into())
}

pub(super) fn fmt_message(out: &mut String, idx: usize, m: &MessageReport) {
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
