//! The writer must not keep the output file resident in the process as it
//! grows (issue #9, docs/reliability.md "Soak"): a 320 MiB recording written
//! through one 512 MiB mapping (one extent, so the mapping is never replaced)
//! must leave RssFile within a few MiB of where it started. Without the
//! writer's release of finished pages RssFile grows by the file's size,
//! which this test would catch. Alone in its test binary so no other test's
//! mappings move the process's RssFile.

mod common;

use smctrace_format::chunk::encode_chunk;
use smctrace_format::writer::{TrailerInput, WriterOptions};
use smctrace_format::Writer;

#[test]
fn writer_rss_stays_flat_while_the_file_grows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.smctrace");
    // 4 MiB of incompressible 32-byte records (xorshift), encoded once and
    // appended 80 times: zstd stores them, so the file grows by ~4 MiB each.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut raw = vec![0u8; 4 << 20];
    for w in raw.chunks_exact_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        w.copy_from_slice(&x.to_le_bytes());
    }
    let n = (raw.len() / 32) as u32;
    let chunk = encode_chunk(0, &raw, n, 1, 2, 1).unwrap();
    let opts = WriterOptions {
        extent_bytes: 512 << 20,
        ..Default::default()
    };
    let mut w = Writer::create(&path, &common::meta(), opts).unwrap();
    w.append(&chunk).unwrap();
    let base = common::rss_file_kib();
    let mut peak = base;
    for _ in 0..80 {
        w.append(&chunk).unwrap();
        peak = peak.max(common::rss_file_kib());
    }
    let written = w.bytes_written();
    assert!(written > 300 << 20, "wrote only {written} bytes");
    let grown = peak.saturating_sub(base);
    eprintln!(
        "wrote {} MiB; RssFile {base} kB at start, peak {peak} kB (+{grown} kB)",
        written >> 20
    );
    assert!(
        grown < 8 << 10,
        "RssFile grew by {grown} kB while writing {} MiB",
        written >> 20
    );
    w.finish(TrailerInput::default()).unwrap();
}
