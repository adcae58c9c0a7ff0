//! Write and read throughput of the .smctrace format on a synthetic SMC-R
//! ping-pong event stream (`synth::PingPong`): prints events/s, MB/s and
//! bytes per event after compression for a few zstd levels and chunk sizes.
//! Figures only; nothing is asserted. Run: `cargo bench -p smctrace-format`.
//! Env: SMCTRACE_BENCH_EVENTS (default 2000000).

use std::time::Instant;

use smctrace_format::{
    encode_chunk, event, synth::PingPong, Metadata, Reader, TrailerInput, Writer, WriterOptions,
};

/// Cut a record stream into chunks of about `target` bytes at record boundaries.
fn split(records: &[u8], target: usize) -> Vec<(usize, usize, u32, u64, u64)> {
    let mut out = Vec::new();
    let (mut start, mut off, mut n, mut first, mut last) = (0, 0, 0u32, u64::MAX, 0u64);
    while off < records.len() {
        let h: event::Hdr = bytemuck::pod_read_unaligned(&records[off..off + event::HDR_LEN]);
        first = first.min(h.ts_ns);
        last = last.max(h.ts_ns);
        off += h.len as usize;
        n += 1;
        if off - start >= target || off == records.len() {
            out.push((start, off, n, first, last));
            start = off;
            n = 0;
            first = u64::MAX;
            last = 0;
        }
    }
    out
}

fn main() {
    let want: u64 = std::env::var("SMCTRACE_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let pp = PingPong {
        connections: 8,
        ..Default::default()
    };
    let mut g = pp.generator();
    let mut records = Vec::new();
    let mut events = 0;
    while events < want {
        events += g.next_round(&mut records);
    }
    let raw_mb = records.len() as f64 / 1e6;
    println!(
        "synthetic SMC-R ping-pong stream: {events} events, {:.1} MB raw, {:.1} B/event raw",
        raw_mb,
        records.len() as f64 / events as f64
    );
    let dir = tempfile::tempdir().expect("tempdir");
    println!(
        "{:>5} {:>9} | {:>12} {:>9} | {:>12} {:>9} {:>12} | {:>8} {:>7}",
        "zstd",
        "chunk",
        "write ev/s",
        "write MB/s",
        "read ev/s",
        "read MB/s",
        "read2 ev/s",
        "B/event",
        "ratio"
    );
    for (level, chunk_kib) in [(1, 256usize), (1, 1024), (3, 1024), (6, 1024)] {
        let path = dir
            .path()
            .join(format!("bench-{level}-{chunk_kib}.smctrace"));
        let parts = split(&records, chunk_kib * 1024);
        let t0 = Instant::now();
        let mut w = Writer::create(
            &path,
            &Metadata::default(),
            WriterOptions {
                overwrite: true,
                ..Default::default()
            },
        )
        .expect("create");
        for (seq, (a, b, n, f, l)) in parts.iter().enumerate() {
            let c = encode_chunk(seq as u64, &records[*a..*b], *n, *f, *l, level).expect("encode");
            w.append(&c).expect("append");
        }
        let sum = w.finish(TrailerInput::default()).expect("finish");
        let wt = t0.elapsed().as_secs_f64();

        // Read: decode every chunk and parse every record (single thread).
        let t1 = Instant::now();
        let r = Reader::open(&path).expect("open");
        let mut seen = 0u64;
        let mut ts_sum = 0u64;
        for c in r.chunks() {
            let d = r.decode(&c.expect("chunk")).expect("decode");
            for ev in d.records() {
                ts_sum = ts_sum.wrapping_add(ev.expect("record").hdr().ts_ns);
                seen += 1;
            }
        }
        let rt = t1.elapsed().as_secs_f64();
        assert_eq!(seen, events, "read back a different number of events");

        // Read with the chunks split over 2 threads (chunks decode independently).
        let t2 = Instant::now();
        let infos: Vec<_> = r.chunks().map(|c| c.expect("chunk")).collect();
        let seen2: u64 = std::thread::scope(|s| {
            let hs: Vec<_> = infos
                .chunks(infos.len().div_ceil(2).max(1))
                .map(|part| {
                    let r = &r;
                    s.spawn(move || {
                        part.iter()
                            .map(|c| r.decode(c).expect("decode").records().count() as u64)
                            .sum::<u64>()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().expect("thread")).sum()
        });
        let rt2 = t2.elapsed().as_secs_f64();
        assert_eq!(seen2, events);
        std::hint::black_box(ts_sum);

        println!(
            "{:>5} {:>6}KiB | {:>12.0} {:>9.1} | {:>12.0} {:>9.1} {:>12.0} | {:>8.2} {:>6.2}x",
            level,
            chunk_kib,
            events as f64 / wt,
            raw_mb / wt,
            events as f64 / rt,
            raw_mb / rt,
            events as f64 / rt2,
            sum.bytes as f64 / events as f64,
            records.len() as f64 / sum.bytes as f64,
        );
    }
    println!("(MB/s counts raw record bytes; B/event counts the whole file; read2 = 2 threads)");
}
