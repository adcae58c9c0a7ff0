//! `smc-analyze info FILE`: a recording's header, metadata, probes, chunks,
//! lost events and close status, as text. A separate command from the
//! analysis: it reads the file's own facts through `smctrace_format::Reader`
//! and builds no model.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use smctrace_format::stream::{EventStream, RecordItem};
use smctrace_format::{FormatError, Reader};

/// Wall-clock text (UTC) of a CLOCK_REALTIME nanosecond value.
pub fn utc(realtime_ns: i128) -> String {
    let secs = realtime_ns.div_euclid(1_000_000_000) as i64;
    let nanos = realtime_ns.rem_euclid(1_000_000_000) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:06} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        nanos / 1000
    )
}

/// The text of `smc-analyze info FILE`.
pub fn info(path: &Path) -> Result<String, FormatError> {
    let r = Arc::new(Reader::open(path)?);
    let md = r.metadata();
    let st = r.stats();
    let rec = r.recovery();
    let mut o = String::new();
    let (maj, min) = r.version();
    let _ = writeln!(
        o,
        "file:       {} ({} bytes, format {maj}.{min})",
        path.display(),
        r.file_len()
    );
    let _ = writeln!(
        o,
        "host:       {}  kernel {}  boot id {}",
        md.host, md.kernel_release, md.boot_id
    );
    let _ = writeln!(
        o,
        "recorder:   {}  command: {}",
        md.recorder_version,
        md.command_line.join(" ")
    );
    let _ = writeln!(
        o,
        "clock:      monotonic {} ns = {}",
        md.clock.monotonic_ns,
        utc(md.clock.realtime_ns as i128)
    );
    let f = &md.filters;
    let _ = writeln!(
        o,
        "filters:    pids {:?} comms {:?} ports {:?} netns {:?}",
        f.pids, f.comms, f.ports, f.netns
    );
    let _ = writeln!(
        o,
        "payload:    {}",
        if md.payload_bytes == 0 {
            "not captured".to_string()
        } else {
            format!("first {} bytes of each send", md.payload_bytes)
        }
    );
    for (k, v) in &md.extra {
        let _ = writeln!(o, "extra:      {k} = {v}");
    }
    let hits = |name: &str| {
        r.trailer().and_then(|t| {
            t.probe_hits
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, h)| *h)
        })
    };
    let _ = writeln!(o, "probes:     {}", md.probes.len());
    for p in &md.probes {
        let _ = writeln!(
            o,
            "  {:<22} {:<10} {:<28} stage {:<12} {}{}",
            p.name,
            p.attach_type,
            p.hook,
            if p.stage.is_empty() { "-" } else { &p.stage },
            if p.attached {
                "attached".to_string()
            } else {
                format!("NOT attached: {}", p.error.as_deref().unwrap_or("?"))
            },
            hits(&p.name)
                .map(|h| format!(", {h} hits"))
                .unwrap_or_default()
        );
    }
    let span = st.last_ts.saturating_sub(st.first_ts);
    let _ = writeln!(
        o,
        "chunks:     {} event chunks, {} events, {} raw bytes, {} compressed ({:.2}x), span {}",
        st.event_chunks,
        st.events,
        st.raw_bytes,
        st.compressed_bytes,
        if st.compressed_bytes > 0 {
            st.raw_bytes as f64 / st.compressed_bytes as f64
        } else {
            0.0
        },
        crate::duration::fmt(span as i64)
    );
    if st.events > 0 {
        let _ = writeln!(
            o,
            "time:       {} .. {}",
            utc(md.clock.to_realtime_ns(st.first_ts)),
            utc(md.clock.to_realtime_ns(st.last_ts))
        );
    }
    // Records per kind, by decoding every chunk (also for files without
    // trailer), decompressing ahead on a second thread.
    let mut kinds = vec![0u64; 1 << 16];
    let mut unreadable = 0u64;
    let mut events = EventStream::new(r.clone());
    while let Some(it) = events.next_record() {
        match it {
            RecordItem::Record(rec) => kinds[u16::from_le_bytes([rec[0], rec[1]]) as usize] += 1,
            RecordItem::BadChunk(_) => unreadable += 1,
            RecordItem::BadRecord { .. } => {}
        }
    }
    let by_kind: Vec<String> = kinds
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(
            |(k, n)| match smctrace_format::event::EventKind::from_u16(k as u16) {
                Some(kind) => format!("{} {n}", kind.name()),
                None => format!("kind{k} {n}"),
            },
        )
        .collect();
    let _ = writeln!(
        o,
        "records:    {}",
        if by_kind.is_empty() {
            "none".to_string()
        } else {
            by_kind.join(", ")
        }
    );
    if unreadable > 0 {
        let _ = writeln!(o, "unreadable: {unreadable} chunks (corrupt; listed below)");
    }
    match r.trailer() {
        Some(t) => {
            let lost: Vec<String> = t
                .lost_per_cpu
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(c, n)| format!("cpu{c}: {n}"))
                .collect();
            let _ = writeln!(
                o,
                "lost:       {} events{}",
                t.lost_total(),
                if lost.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", lost.join(", "))
                }
            );
            let _ = writeln!(
                o,
                "close:      clean (trailer: {} chunks indexed, end at monotonic {} ns)",
                t.chunk_index.len(),
                t.end_monotonic_ns
            );
        }
        None => {
            let _ = writeln!(o, "lost:       unknown (no trailer)");
            let _ = writeln!(
                o,
                "close:      NOT clean: recovered {} chunks, {} events{}",
                rec.chunks_ok,
                rec.events_ok,
                rec.stopped_at
                    .as_ref()
                    .map(|(off, why)| format!("; stopped at offset {off}: {why}"))
                    .unwrap_or_default()
            );
        }
    }
    if let Some(t) = &rec.trailer_error {
        let _ = writeln!(o, "trailer:    unusable: {t}");
    }
    for c in &rec.corrupt {
        let _ = writeln!(
            o,
            "corrupt:    chunk {}{} at offset {}: {}",
            c.index,
            c.seq.map(|s| format!(" (seq {s})")).unwrap_or_default(),
            c.offset,
            c.reason
        );
    }
    if rec.unknown_chunks > 0 {
        let _ = writeln!(
            o,
            "skipped:    {} chunks of unknown type",
            rec.unknown_chunks
        );
    }
    for (label, snap) in [
        ("start", md.start_snapshot.as_ref()),
        ("end", r.trailer().and_then(|t| t.end_snapshot.as_ref())),
    ] {
        if let Some(s) = snap {
            let _ = writeln!(
                o,
                "snapshot:   {label}: {} sockets, {} links, {} fallback counters, {} stats{}",
                s.sockets.len(),
                s.links.len(),
                s.fallbacks.len(),
                s.stats.len(),
                s.error
                    .as_ref()
                    .map(|e| format!(" (partial: {e})"))
                    .unwrap_or_default()
            );
            for fb in &s.fallbacks {
                let _ = writeln!(
                    o,
                    "  {} fallback {} x{}",
                    if fb.server { "server" } else { "client" },
                    crate::decline::describe(fb.code),
                    fb.count
                );
            }
        }
    }
    Ok(o)
}
