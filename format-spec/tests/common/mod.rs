//! Helpers shared by the integration tests: build recordings from the
//! synthetic ping-pong stream and remember what each chunk held.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use smctrace_format::{
    encode_chunk, event, synth::PingPong, Metadata, Reader, TrailerInput, Writer, WriterOptions,
};

pub struct Built {
    pub path: PathBuf,
    /// Raw records of each chunk, in order.
    pub chunks: Vec<Vec<u8>>,
    pub counts: Vec<u32>,
}

pub fn meta() -> Metadata {
    Metadata {
        host: "lab-a".into(),
        kernel_release: "6.1.0-28-amd64".into(),
        boot_id: "0b7a3c1e-0000-4000-8000-000000000001".into(),
        recorder_version: "0.1.0".into(),
        command_line: vec!["smc-record".into(), "-o".into(), "x.smctrace".into()],
        payload_bytes: 0,
        ..Default::default()
    }
}

/// Split a record stream into pieces of `per` records.
pub fn split_records(records: &[u8], per: usize) -> Vec<(Vec<u8>, u32, u64, u64)> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let (mut n, mut first, mut last) = (0u32, u64::MAX, 0u64);
    let mut off = 0;
    while off < records.len() {
        let h: event::Hdr = bytemuck::pod_read_unaligned(&records[off..off + event::HDR_LEN]);
        cur.extend_from_slice(&records[off..off + h.len as usize]);
        first = first.min(h.ts_ns);
        last = last.max(h.ts_ns);
        n += 1;
        off += h.len as usize;
        if n as usize == per || off == records.len() {
            out.push((std::mem::take(&mut cur), n, first, last));
            n = 0;
            first = u64::MAX;
            last = 0;
        }
    }
    out
}

/// Write `rounds` ping-pong rounds in chunks of `per` records. Closed cleanly if `finish`.
pub fn build(dir: &Path, name: &str, rounds: u32, per: usize, finish: bool) -> Built {
    let (records, _) = PingPong {
        connections: 2,
        ..Default::default()
    }
    .build(rounds);
    let path = dir.join(name);
    let mut w = Writer::create(&path, &meta(), WriterOptions::default()).unwrap();
    let mut chunks = Vec::new();
    let mut counts = Vec::new();
    for (seq, (raw, n, f, l)) in split_records(&records, per).into_iter().enumerate() {
        w.append(&encode_chunk(seq as u64, &raw, n, f, l, 3).unwrap())
            .unwrap();
        chunks.push(raw);
        counts.push(n);
    }
    if finish {
        w.finish(TrailerInput {
            probe_hits: vec![("smc_sendmsg".into(), 5)],
            lost_per_cpu: vec![0, 2],
            end_monotonic_ns: 9,
            end_snapshot: None,
        })
        .unwrap();
    } else {
        drop(w);
    }
    Built {
        path,
        chunks,
        counts,
    }
}

/// Decode every chunk that the reader lists; returns (seq, raw bytes) of those that decode.
pub fn decode_all(r: &Reader) -> Vec<(u64, Vec<u8>)> {
    r.chunks()
        .filter_map(|c| c.ok())
        .filter_map(|c| r.decode(&c).ok())
        .map(|d| (d.info().seq, d.bytes().to_vec()))
        .collect()
}

/// RssFile of this process in KiB (Linux).
pub fn rss_file_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    s.lines()
        .find_map(|l| l.strip_prefix("RssFile:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("RssFile line")
}
