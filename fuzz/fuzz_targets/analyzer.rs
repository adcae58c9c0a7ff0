// SPDX-License-Identifier: GPL-2.0
//! Fuzz target: the analyzer's model building on arbitrary records. The input
//! is a raw record stream (the decompressed body of event chunks, as the BPF
//! programs emit it); its well-formed prefix is written as one or two
//! recordings through the format crate's Writer (so the reader accepts them),
//! then analyzed like `smc-analyze report --json`: connections, handshake,
//! clock pairing, message joining, stages, the text and JSON reports.
//! The first byte picks how the records split between two hosts and whether
//! the files end cleanly.
#![no_main]

use std::sync::{Arc, Mutex};

use libfuzzer_sys::fuzz_target;
use smc_analyze::{input, join, report};
use smctrace_format::event::records;
use smctrace_format::{encode_chunk, ClockRef, Metadata, TrailerInput, Writer, WriterOptions};

/// Records per chunk: small, so chunk boundaries are exercised too.
const PER_CHUNK: usize = 16;

fn write(path: &std::path::Path, recs: &[&[u8]], host: &str, clean: bool) {
    let first = recs.iter().map(|r| ts(r)).min().unwrap_or(0);
    let meta = Metadata {
        host: host.into(),
        boot_id: format!("boot-{host}"),
        kernel_release: "fuzz".into(),
        clock: ClockRef {
            monotonic_ns: first,
            realtime_ns: 1_795_000_000_000_000_000,
        },
        ..Default::default()
    };
    let opts = WriterOptions {
        overwrite: true,
        extent_bytes: 64 << 10,
        ..Default::default()
    };
    let mut w = Writer::create(path, &meta, opts).expect("create");
    for (seq, batch) in recs.chunks(PER_CHUNK).enumerate() {
        let bytes: Vec<u8> = batch.concat();
        let f = batch.iter().map(|r| ts(r)).min().unwrap_or(0);
        let l = batch.iter().map(|r| ts(r)).max().unwrap_or(0);
        let c = encode_chunk(seq as u64, &bytes, batch.len() as u32, f, l, 1).expect("encode");
        w.append(&c).expect("append");
    }
    if clean {
        w.finish(TrailerInput {
            lost_per_cpu: vec![0],
            ..Default::default()
        })
        .expect("finish");
    }
}

fn ts(rec: &[u8]) -> u64 {
    u64::from_le_bytes(rec[8..16].try_into().unwrap())
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, body)) = data.split_first() else {
        return;
    };
    // The well-formed prefix: what the reader would hand the analyzer.
    let mut recs: Vec<&[u8]> = Vec::new();
    let mut it = records(body);
    let mut off = 0;
    while let Some(Ok(_)) = it.next() {
        let end = it.offset();
        recs.push(&body[off..end]);
        off = end;
        if recs.len() >= 4096 {
            break;
        }
    }
    let dir = std::env::temp_dir();
    let pid = std::process::id();
    let a = dir.join(format!("smctrace-fuzz-an-{pid}-a.smctrace"));
    let b = dir.join(format!("smctrace-fuzz-an-{pid}-b.smctrace"));
    let two = ctl & 1 != 0;
    let mut files = vec![a.clone()];
    if two {
        // every record whose ts bit 0 is set goes to host b
        let (ra, rb): (Vec<&[u8]>, Vec<&[u8]>) = recs.iter().partition(|r| ts(r) & 1 == 0);
        write(&a, &ra, "a", ctl & 2 != 0);
        write(&b, &rb, "b", ctl & 4 != 0);
        files.push(b.clone());
    } else {
        write(&a, &recs, "a", ctl & 2 != 0);
    }
    let warnings = Arc::new(Mutex::new(Vec::new()));
    let inputs: Vec<_> = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            input::open(f, i, None, warnings.clone())
                .expect("a recording the Writer wrote must open")
        })
        .collect();
    let opts = report::Options {
        filter: Default::default(),
        top: 5,
        slow_ns: Some(1_000_000),
    };
    let mut sink = report::ReportSink::new(opts);
    let analysis = join::run(
        inputs,
        smc_analyze::model::DEFAULT_REORDER_WINDOW_NS,
        &mut sink,
    );
    let ws = vec![warnings.lock().unwrap_or_else(|e| e.into_inner()).clone()];
    let r = sink.finish(&analysis, &ws);
    let _ = report::render_text(&r);
    let _ = serde_json::to_string(&r).expect("report serializes");
});
