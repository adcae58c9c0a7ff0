//! Reading recordings through `smctrace_format::Reader`: stream every chunk's
//! records into a [`RecordingBuilder`] (one chunk decompressed at a time),
//! account what is missing (lost events, unreadable chunks, a file that was
//! not closed cleanly) and print `smc-analyze info`.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::Path;

use std::sync::{Arc, Mutex};

use smctrace_format::stream::{EventStream, RecordItem};
use smctrace_format::{FormatError, Reader};

use crate::join::{Input, Item, RecordingMeta, SnapshotSock};
use crate::model::{Addr, Ev, Mode};

fn snapshot_sockets(r: &Reader) -> Vec<SnapshotSock> {
    let Some(snap) = &r.metadata().start_snapshot else {
        return Vec::new();
    };
    snap.sockets
        .iter()
        .filter(|s| s.local_token != 0)
        .map(|s| {
            let ep = |addr: [u8; 16], port: u16| {
                Addr::from_endpoint(
                    &smctrace_format::event::Endpoint {
                        addr,
                        port,
                        _pad: [0; 3],
                    },
                    s.family,
                )
            };
            SnapshotSock {
                local: ep(s.local_addr, s.local_port),
                remote: ep(s.remote_addr, s.remote_port),
                mode: Mode::from_u8(s.mode),
                local_token: s.local_token,
                sndbuf_len: s.sndbuf_len,
                rmb_len: s.rmb_len,
                peer_rmbe_size: s.peer_rmbe_size,
                fallback_rsn: s.fallback_rsn,
            }
        })
        .collect()
}

/// Streams one recording's events in file order. Chunks are checked and
/// decompressed on a worker thread a few chunks ahead
/// ([`smctrace_format::stream`]), and each record is parsed straight from
/// the decoded chunk when it is asked for (no per-chunk event vector);
/// damaged chunks become [`Item::UnreadableChunk`] and a warning.
struct ChunkEvents {
    events: EventStream,
    warnings: Option<Arc<Mutex<Vec<String>>>>,
    bar: Option<indicatif::ProgressBar>,
    /// Chunks of the earlier pass already shown on the bar.
    bar_base: u64,
    last_pass: bool,
}

impl ChunkEvents {
    fn warn(&self, w: String) {
        if let Some(ws) = &self.warnings {
            ws.lock().unwrap_or_else(|e| e.into_inner()).push(w);
        }
    }
}

impl Iterator for ChunkEvents {
    type Item = Item;

    #[inline]
    fn next(&mut self) -> Option<Item> {
        let seen = self.events.chunks_seen();
        let item = match self.events.next_record() {
            Some(RecordItem::Record(rec)) => {
                let kind = smctrace_format::event::EventKind::from_u16(u16::from_le_bytes([
                    rec[0], rec[1],
                ]));
                Item::Event(Ev::from_record(kind, rec))
            }
            Some(RecordItem::BadChunk(e)) => {
                self.warn(format!("{e}; its events are missing"));
                Item::UnreadableChunk
            }
            Some(RecordItem::BadRecord { chunk, error, .. }) => {
                self.warn(format!(
                    "chunk {} (seq {}): {error}; rest of the chunk skipped",
                    chunk.index, chunk.seq
                ));
                Item::BadRecord
            }
            None => {
                if let (Some(pb), true) = (&self.bar, self.last_pass) {
                    pb.finish_and_clear();
                }
                return None;
            }
        };
        if let Some(pb) = &self.bar {
            let now = self.events.chunks_seen();
            if now != seen {
                pb.set_position(self.bar_base + now);
            }
        }
        Some(item)
    }
}

/// Open recording number `index` at `path` as an analyzer input. Warnings
/// (damage, lost events) are appended to `warnings` during the first pass.
/// With `progress` (only when stderr is a terminal), a bar per recording
/// shows the chunks read in both passes.
pub fn open(
    path: &Path,
    index: usize,
    progress: Option<&indicatif::MultiProgress>,
    warnings: Arc<Mutex<Vec<String>>>,
) -> Result<Input, FormatError> {
    let reader = Arc::new(Reader::open(path)?);
    let md = reader.metadata();
    let rec = reader.recovery();
    let mut lost = 0;
    {
        let mut w = warnings.lock().unwrap_or_else(|e| e.into_inner());
        if !rec.clean_close {
            let why = rec
                .stopped_at
                .as_ref()
                .map(|(off, r)| format!(", stopped at offset {off}: {r}"))
                .unwrap_or_default();
            w.push(format!(
                "not closed cleanly: recovered {} chunks / {} events{why}; lost-event counts unknown",
                rec.chunks_ok, rec.events_ok
            ));
        }
        if let Some(t) = &rec.trailer_error {
            w.push(format!("trailer unusable: {t}"));
        }
        if let Some(t) = reader.trailer() {
            lost = t.lost_total();
            if lost > 0 {
                w.push(format!("the kernel dropped {lost} events (ring buffer full); affected messages are marked incomplete"));
            }
        }
    }
    let meta = RecordingMeta {
        path: path.display().to_string(),
        host: md.host.clone(),
        boot_id: md.boot_id.clone(),
        kernel_release: md.kernel_release.clone(),
        clean_close: reader.trailer().is_some(),
        stats: Default::default(),
        snapshot_sockets: snapshot_sockets(&reader),
    };
    let bar = if let (Some(multi), true) = (progress, std::io::stderr().is_terminal()) {
        let pb = multi.add(indicatif::ProgressBar::new(reader.stats().event_chunks * 2));
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {pos}/{len} chunks (2 passes) {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        pb.set_message(format!("[{index}] {}", path.display()));
        Some(pb)
    } else {
        None
    };
    let mut pass = 0;
    let open = move || -> Box<dyn Iterator<Item = Item> + Send> {
        pass += 1;
        Box::new(ChunkEvents {
            events: EventStream::new(reader.clone()),
            warnings: (pass == 1).then(|| warnings.clone()),
            bar: bar.clone(),
            bar_base: if pass >= 2 {
                reader.stats().event_chunks
            } else {
                0
            },
            last_pass: pass >= 2,
        })
    };
    Ok(Input {
        meta,
        lost,
        open: Box::new(open),
    })
}

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
