//! Reading recordings through `smctrace_format::Reader`: stream every chunk's
//! records into a [`RecordingBuilder`](crate::model::RecordingBuilder) (one chunk decompressed at a time),
//! account what is missing (lost events, unreadable chunks, a file that was
//! not closed cleanly). `smc-analyze info` lives in [`crate::info`].

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

/// Kept here for callers of `input::info` / `input::utc` (the fuzz targets).
pub use crate::info::{info, utc};
