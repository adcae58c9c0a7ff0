//! Write one large synthetic recording, streamed, for speed and memory
//! measurements of the readers (`cargo xtask bench analyzer` uses it): the
//! SMC-R request/response stream of `smctrace_format::synth::PingPong`
//! (handshakes, then for every message the sender's and the receiver's
//! stages, both hosts' records in one file), cut into 1 MiB chunks like the
//! recorder cuts them, compressed with zstd and written with the crate's
//! `Writer`. Memory stays at one chunk whatever the event count.
//!
//!     cargo run --release -p smctrace-format --example synth_large -- \
//!         OUT.smctrace EVENTS [CONNECTIONS] [MSG_SIZE] [ZSTD_LEVEL]
//!
//! Defaults: 64 connections, 64-byte messages, zstd level 1 (the recorder's).
//! Prints one line: events, chunks, file bytes, bytes per event, seconds.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use smctrace_format::{
    encode_chunk, event, synth::PingPong, Metadata, TrailerInput, Writer, WriterOptions,
};

/// Raw bytes per chunk, as the recorder's default (`pipeline.rs`: 1 MiB).
const CHUNK_BYTES: usize = 1 << 20;

fn arg<T: std::str::FromStr>(args: &[String], i: usize, name: &str, default: T) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    match args.get(i) {
        None => Ok(default),
        Some(s) => s.parse().map_err(|e| format!("{name} {s:?}: {e}")),
    }
}

fn run() -> Result<String, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 || args.len() > 5 {
        return Err(
            "usage: synth_large OUT.smctrace EVENTS [CONNECTIONS] [MSG_SIZE] [ZSTD_LEVEL]".into(),
        );
    }
    let out = PathBuf::from(&args[0]);
    let want: u64 = arg(&args, 1, "EVENTS", 0)?;
    let connections: u32 = arg(&args, 2, "CONNECTIONS", 64)?;
    let msg_size: u32 = arg(&args, 3, "MSG_SIZE", 64)?;
    let level: i32 = arg(&args, 4, "ZSTD_LEVEL", 1)?;
    if connections == 0 || msg_size == 0 {
        return Err("CONNECTIONS and MSG_SIZE must be at least 1".into());
    }
    let t0 = Instant::now();
    let meta = Metadata {
        host: "synth".into(),
        kernel_release: "synthetic".into(),
        boot_id: "synth-boot".into(),
        ..Default::default()
    };
    let mut w = Writer::create(
        &out,
        &meta,
        WriterOptions {
            overwrite: true,
            ..Default::default()
        },
    )
    .map_err(|e| format!("{}: {e}", out.display()))?;
    let mut g = PingPong {
        connections,
        msg_size,
        ..Default::default()
    }
    .generator();
    let mut raw = Vec::with_capacity(CHUNK_BYTES + 64 * 1024);
    let (mut events, mut seq, mut in_chunk) = (0u64, 0u64, 0u32);
    let flush =
        |raw: &mut Vec<u8>, n: &mut u32, seq: &mut u64, w: &mut Writer| -> Result<(), String> {
            if *n == 0 {
                return Ok(());
            }
            let (first, last) = ts_range(raw);
            let c = encode_chunk(*seq, raw, *n, first, last, level)
                .map_err(|e| format!("chunk {seq}: {e}"))?;
            w.append(&c)
                .map_err(|e| format!("{}: {e}", out.display()))?;
            raw.clear();
            *n = 0;
            *seq += 1;
            Ok(())
        };
    while events < want {
        // One round: a request and a reply on every connection. Rounds are
        // small (~20 records per connection); cut chunks at the next round.
        let n = g.next_round(&mut raw);
        events += n;
        in_chunk += n as u32;
        if raw.len() >= CHUNK_BYTES {
            flush(&mut raw, &mut in_chunk, &mut seq, &mut w)?;
        }
    }
    flush(&mut raw, &mut in_chunk, &mut seq, &mut w)?;
    let s = w
        .finish(TrailerInput::default())
        .map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(format!(
        "{} events, {} chunks, {} bytes ({:.2} B/event) -> {} in {:.1} s",
        s.events,
        s.chunks,
        s.bytes,
        s.bytes as f64 / s.events.max(1) as f64,
        out.display(),
        t0.elapsed().as_secs_f64()
    ))
}

/// First and last timestamp of the records in `raw` (records are framed by
/// their header's `len`).
fn ts_range(raw: &[u8]) -> (u64, u64) {
    let (mut first, mut last, mut off) = (u64::MAX, 0u64, 0usize);
    while off + event::HDR_LEN <= raw.len() {
        let h: event::Hdr = bytemuck::pod_read_unaligned(&raw[off..off + event::HDR_LEN]);
        first = first.min(h.ts_ns);
        last = last.max(h.ts_ns);
        off += (h.len as usize).max(event::HDR_LEN);
    }
    (first, last)
}

fn main() -> ExitCode {
    match run() {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("synth_large: {e}");
            ExitCode::FAILURE
        }
    }
}
