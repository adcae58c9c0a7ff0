//! The recorder's userspace pipeline without a kernel: BPF ring buffer items
//! -> one drain thread batching records into 1 MiB chunks -> one thread
//! compressing them (zstd) and appending them to the memory-mapped log,
//! linked by a bounded channel, as `recorder/src/pipeline.rs` does. The ring
//! buffer is simulated by a pre-built image of its items (8-byte ring header,
//! record, padding to 8), so what is timed is the copy out of the ring, the
//! record checks, batching, compression and the file writes.
//!
//! Prints, for several realistic SMC-R event streams (`synth::PingPong` with
//! different message sizes and connection counts): wall-clock events/s, events
//! per CPU-second of both threads together ("per core") and of each thread,
//! raw MB/s, file bytes per event and the compression ratio, for the row
//! layout of format 1.0 and the recorder's default (`auto`: columnar chunks).
//! Figures only; nothing is asserted except that every event reaches the file.
//! Run: `cargo bench -p smctrace-format --bench pipeline`
//! (or `cargo xtask bench pipeline`). Env: SMCTRACE_BENCH_EVENTS (default 4000000),
//! SMCTRACE_BENCH_ZSTD (default 1, the recorder's default level).

use std::sync::mpsc::sync_channel;
use std::time::Instant;

use smctrace_format::{
    synth::PingPong, ChunkCodec, ChunkEncoder, Metadata, Reader, TrailerInput, Writer,
    WriterOptions,
};

/// The recorder's defaults (`recorder/src/pipeline.rs`, `--zstd-level`).
const CHUNK_BYTES: usize = 1 << 20;
/// BPF ring buffer item header: u32 length (with busy/discard bits) + u32 page offset.
const RING_HDR: usize = 8;

/// CPU time of the calling thread, in seconds.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid clock id and a valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// The same well-formedness check the recorder's drain makes on each item.
fn record_len(item: &[u8]) -> Option<usize> {
    if item.len() < smctrace_format::event::HDR_LEN {
        return None;
    }
    let len = u16::from_le_bytes([item[2], item[3]]) as usize;
    (len >= smctrace_format::event::HDR_LEN && len <= item.len() && len.is_multiple_of(8))
        .then_some(len)
}

/// Frame a record stream as BPF ring buffer items.
fn ring_image(records: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(records.len() + records.len() / 8);
    let mut off = 0;
    while off < records.len() {
        let len = u16::from_le_bytes([records[off + 2], records[off + 3]]) as usize;
        out.extend_from_slice(&(len as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&records[off..off + len]);
        out.resize(out.len().next_multiple_of(8), 0);
        off += len;
    }
    out
}

struct Raw {
    seq: u64,
    bytes: Vec<u8>,
    count: u32,
    first: u64,
    last: u64,
}

struct Measured {
    wall: f64,
    drain_cpu: f64,
    write_cpu: f64,
    file_bytes: u64,
    events: u64,
}

fn run(ring: &[u8], level: i32, codec: ChunkCodec, path: &std::path::Path) -> Measured {
    let writer = Writer::create(
        path,
        &Metadata::default(),
        WriterOptions {
            overwrite: true,
            ..Default::default()
        },
    )
    .expect("create the log");
    let (tx, rx) = sync_channel::<Raw>(4);
    // Spent chunk buffers go back to the drain thread, as in the recorder.
    let (spent_tx, spent_rx) = sync_channel::<Vec<u8>>(8);
    let t0 = Instant::now();
    let (drain_cpu, (write_cpu, summary)) = std::thread::scope(|s| {
        let w = s.spawn(move || {
            let c0 = thread_cpu();
            let mut writer = writer;
            let mut encoder = ChunkEncoder::new(level, codec);
            for c in rx {
                let enc = encoder
                    .encode(c.seq, &c.bytes, c.count, c.first, c.last)
                    .expect("encode");
                writer.append(&enc).expect("append");
                let _ = spent_tx.try_send(c.bytes);
            }
            let sum = writer.finish(TrailerInput::default()).expect("finish");
            (thread_cpu() - c0, sum)
        });
        let c0 = thread_cpu();
        let cap = CHUNK_BYTES + 4096;
        let (mut seq, mut buf, mut count, mut first, mut last) =
            (0u64, Vec::with_capacity(cap), 0u32, 0u64, 0u64);
        let mut off = 0;
        while off < ring.len() {
            let len = u32::from_le_bytes(ring[off..off + 4].try_into().unwrap()) as usize;
            let item = &ring[off + RING_HDR..off + RING_HDR + len];
            let rlen = record_len(item).expect("well-formed record");
            let ts = u64::from_le_bytes(item[8..16].try_into().unwrap());
            if count == 0 {
                first = ts;
                last = ts;
            }
            first = first.min(ts);
            last = last.max(ts);
            buf.extend_from_slice(&item[..rlen]);
            count += 1;
            if buf.len() >= CHUNK_BYTES {
                let fresh = match spent_rx.try_recv() {
                    Ok(mut b) => {
                        b.clear();
                        b
                    }
                    Err(_) => Vec::with_capacity(cap),
                };
                let bytes = std::mem::replace(&mut buf, fresh);
                tx.send(Raw {
                    seq,
                    bytes,
                    count,
                    first,
                    last,
                })
                .expect("writer alive");
                seq += 1;
                count = 0;
            }
            off += (RING_HDR + len).next_multiple_of(8);
        }
        if count > 0 {
            tx.send(Raw {
                seq,
                bytes: buf,
                count,
                first,
                last,
            })
            .expect("writer alive");
        }
        drop(tx);
        let drain_cpu = thread_cpu() - c0;
        (drain_cpu, w.join().expect("writer thread"))
    });
    Measured {
        wall: t0.elapsed().as_secs_f64(),
        drain_cpu,
        write_cpu,
        file_bytes: summary.bytes,
        events: summary.events,
    }
}

fn main() {
    let want: u64 = std::env::var("SMCTRACE_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4_000_000);
    let level: i32 = std::env::var("SMCTRACE_BENCH_ZSTD")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let profiles: [(&str, u32, u32); 4] = [
        ("pingpong 64 B x 1 conn", 1, 64),
        ("pingpong 64 B x 64 conns", 64, 64),
        ("pingpong 4 KiB x 8 conns", 8, 4096),
        ("stream 64 KiB x 4 conns", 4, 65536),
    ];
    println!("recorder pipeline (ring items -> 1 MiB chunks -> zstd {level} -> mmap log), {want} events per stream");
    println!(
        "{:<36} | {:>11} {:>11} | {:>11} {:>11} | {:>8} | {:>7} {:>6}",
        "stream",
        "wall ev/s",
        "ev/s/core",
        "drain ev/s",
        "zstd+w ev/s",
        "raw MB/s",
        "B/event",
        "ratio"
    );
    for (name, connections, msg_size) in profiles {
        let mut g = PingPong {
            connections,
            msg_size,
            ..Default::default()
        }
        .generator();
        let mut records = Vec::new();
        let mut n = 0;
        while n < want {
            n += g.next_round(&mut records);
        }
        let ring = ring_image(&records);
        let path = dir.path().join("pipeline.smctrace");
        for (layout, codec) in [("rows", ChunkCodec::Rows), ("auto", ChunkCodec::Auto)] {
            // Best of three: the machine is shared, the slowest runs measure the neighbours.
            let mut best: Option<Measured> = None;
            for _ in 0..3 {
                let r = run(&ring, level, codec, &path);
                assert_eq!(r.events, n, "events lost between the ring and the file");
                if best.as_ref().is_none_or(|b| r.wall < b.wall) {
                    best = Some(r);
                }
            }
            let r = best.expect("three runs");
            // The file reads back with every event.
            let back: u64 = {
                let rd = Reader::open(&path).expect("open");
                rd.chunks()
                    .map(|c| {
                        rd.decode(&c.expect("chunk"))
                            .expect("decode")
                            .records()
                            .count() as u64
                    })
                    .sum()
            };
            assert_eq!(back, n, "the file does not hold every event");
            let ev = r.events as f64;
            println!(
                "{:<36} | {:>11.0} {:>11.0} | {:>11.0} {:>11.0} | {:>8.1} | {:>7.2} {:>5.1}x",
                format!("{name}, {layout}"),
                ev / r.wall,
                ev / (r.drain_cpu + r.write_cpu),
                ev / r.drain_cpu,
                ev / r.write_cpu,
                records.len() as f64 / 1e6 / r.wall,
                r.file_bytes as f64 / ev,
                records.len() as f64 / r.file_bytes as f64,
            );
        }
    }
    println!("(best of 3 runs; ev/s/core = events per CPU-second of both threads; raw MB/s counts record bytes;");
    println!(
        " B/event = whole file incl. header and trailer; ratio = raw record bytes / file bytes)"
    );
}
