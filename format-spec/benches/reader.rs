//! Read throughput of a whole recording in file order, the way the analyzer
//! reads it: one chunk at a time on the caller's thread (`Reader::decode` +
//! `records()`), and pipelined through `stream::EventStream` (decompression
//! on 1 or 2 worker threads, records parsed from the decoded chunk on the
//! caller's thread). Every record's header is touched so parsing is not
//! optimised away. Figures only; nothing is asserted but the event count.
//! Run: `cargo bench -p smctrace-format --bench reader`.
//! Env: SMCTRACE_BENCH_EVENTS (default 4000000), SMCTRACE_BENCH_FILE (read
//! this recording instead of generating one, e.g. a `synth_large` file).

use std::sync::Arc;
use std::time::Instant;

use smctrace_format::stream::{EventStream, StreamItem};
use smctrace_format::{
    synth::PingPong, ChunkBuilder, Metadata, Reader, TrailerInput, Writer, WriterOptions,
};

/// Write `want` ping-pong events (64 connections) in ~1 MiB chunks at zstd 1,
/// as the recorder does.
fn generate(path: &std::path::Path, want: u64) {
    let pp = PingPong {
        connections: 64,
        ..Default::default()
    };
    let mut g = pp.generator();
    let mut w =
        Writer::create(path, &Metadata::default(), WriterOptions::default()).expect("create");
    let mut b = ChunkBuilder::new();
    let mut buf = Vec::new();
    let (mut events, mut seq) = (0u64, 0u64);
    while events < want {
        buf.clear();
        events += g.next_round(&mut buf);
        let mut off = 0;
        while off < buf.len() {
            let h: smctrace_format::event::Hdr =
                bytemuck::pod_read_unaligned(&buf[off..off + smctrace_format::event::HDR_LEN]);
            b.push(&buf[off..off + h.len as usize]).expect("push");
            off += h.len as usize;
        }
        if b.len_bytes() >= 1 << 20 {
            w.append(&b.take(seq, 1).expect("encode")).expect("append");
            seq += 1;
        }
    }
    if !b.is_empty() {
        w.append(&b.take(seq, 1).expect("encode")).expect("append");
    }
    w.finish(TrailerInput::default()).expect("finish");
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = match std::env::var_os("SMCTRACE_BENCH_FILE") {
        Some(p) => std::path::PathBuf::from(p),
        None => {
            let want: u64 = std::env::var("SMCTRACE_BENCH_EVENTS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(4_000_000);
            let p = dir.path().join("bench.smctrace");
            generate(&p, want);
            p
        }
    };
    let r = Arc::new(Reader::open(&path).expect("open"));
    let events = r.stats().events;
    println!(
        "{}: {events} events in {} chunks, {:.1} MB raw, {:.1} MB on disk",
        path.display(),
        r.stats().event_chunks,
        r.stats().raw_bytes as f64 / 1e6,
        r.file_len() as f64 / 1e6
    );
    println!(
        "{:<44} {:>8} {:>12} {:>9}",
        "way", "wall s", "events/s", "raw MB/s"
    );
    let row = |name: &str, secs: f64| {
        println!(
            "{name:<44} {secs:>8.3} {:>12.0} {:>9.0}",
            events as f64 / secs,
            r.stats().raw_bytes as f64 / 1e6 / secs
        );
    };
    for round in 0..2 {
        // One chunk at a time on this thread.
        let t = Instant::now();
        let (mut seen, mut sum) = (0u64, 0u64);
        for c in r.chunks() {
            let d = r.decode(&c.expect("chunk")).expect("decode");
            for ev in d.records() {
                sum = sum.wrapping_add(ev.expect("record").hdr().ts_ns);
                seen += 1;
            }
        }
        let inline = t.elapsed().as_secs_f64();
        assert_eq!(seen, events);
        std::hint::black_box(sum);
        let mut ways = vec![("Reader::decode + records (1 thread)".to_string(), inline)];
        for (depth, workers) in [(0, 1), (3, 1), (4, 2)] {
            let t = Instant::now();
            let (mut seen, mut sum) = (0u64, 0u64);
            let mut s = EventStream::with_workers(r.clone(), depth, workers);
            while let Some(it) = s.next_item() {
                if let StreamItem::Event(ev) = it {
                    sum = sum.wrapping_add(ev.hdr().ts_ns);
                    seen += 1;
                }
            }
            assert_eq!(seen, events);
            std::hint::black_box(sum);
            let name = if depth == 0 {
                "EventStream inline (depth 0)".to_string()
            } else {
                format!("EventStream depth {depth}, {workers} decode thread(s)")
            };
            ways.push((name, t.elapsed().as_secs_f64()));
        }
        if round == 1 {
            for (name, secs) in ways {
                row(&name, secs);
            }
        }
    }
    println!("(second of two rounds; the first warms the page cache)");
}
