//! Streaming a recording must not leave the file mapped in the process's
//! resident set (`Reader::release` behind the decoder): RssFile stays
//! within a few MiB while a ~30 MB recording is read, whereas decoding the
//! same chunks without releasing them grows it by about the file's size
//! (which shows the measurement can fail); likewise the walk at open, which
//! reads every body of a file not closed cleanly. Alone in its test binary so no
//! other test's files move the process's RssFile.

mod common;

use std::sync::Arc;

use smctrace_format::layout::{self, ChunkHeader, CHUNK_HEADER_LEN};
use smctrace_format::stream::{EventStream, StreamItem};
use std::io::Write;

use smctrace_format::{Reader, Writer};

#[test]
fn streaming_releases_the_mapped_file_behind_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.smctrace");
    // ~30 MB of stored (uncompressed) chunks: the file is as big as its records.
    let (records, _) = smctrace_format::synth::PingPong {
        connections: 16,
        ..Default::default()
    }
    .build(1_500);
    // A recording not closed cleanly, then stored chunks appended raw (the
    // writer only makes compressed ones); the reader checks every body at open.
    drop(Writer::create(&path, &common::meta(), Default::default()).unwrap());
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    let pieces = common::split_records(&records, 16_000);
    for (seq, (raw, n, first, last)) in pieces.iter().enumerate() {
        let h = ChunkHeader {
            chunk_type: layout::CHUNK_EVENTS,
            flags: 0,
            seq: seq as u64,
            event_count: *n,
            first_ts: *first,
            last_ts: *last,
            raw_len: raw.len() as u32,
            comp_len: raw.len() as u32,
            body_crc: crc32c::crc32c(raw),
        };
        let mut v = h.encode().to_vec();
        v.extend_from_slice(raw);
        v.resize(CHUNK_HEADER_LEN + layout::pad8(raw.len()), 0);
        f.write_all(&v).unwrap();
    }
    drop(f);
    drop(records);
    let file_kib = std::fs::metadata(&path).unwrap().len() / 1024;
    assert!(
        file_kib > 20 << 10,
        "want a file of tens of MiB, got {file_kib} KiB"
    );

    let base = common::rss_file_kib();
    let r = Arc::new(Reader::open(&path).unwrap());
    assert!(!r.recovery().clean_close && r.recovery().bodies_verified);
    let open_growth = common::rss_file_kib().saturating_sub(base);
    assert!(
        open_growth < 8 << 10,
        "the walk at open kept +{open_growth} KiB of a {file_kib} KiB file resident"
    );
    let (mut peak, mut n, mut sum) = (base, 0u64, 0u64);
    let mut s = EventStream::new(r.clone());
    while let Some(it) = s.next_item() {
        let StreamItem::Event(ev) = it else {
            panic!("damage in an intact file")
        };
        sum = sum.wrapping_add(ev.hdr().ts_ns);
        n += 1;
        if n.is_multiple_of(4096) {
            peak = peak.max(common::rss_file_kib());
        }
    }
    drop(s);
    assert_eq!(n, r.stats().events);
    let streamed_growth = peak.saturating_sub(base);

    // The same chunks decoded and kept mapped (no release).
    let (mut peak2, mut n2, mut sum2) = (base, 0u64, 0u64);
    for c in r.chunks() {
        let d = r.decode(&c.unwrap()).unwrap();
        for ev in d.records() {
            sum2 = sum2.wrapping_add(ev.unwrap().hdr().ts_ns);
            n2 += 1;
        }
        peak2 = peak2.max(common::rss_file_kib());
    }
    assert_eq!((n2, sum2), (n, sum), "both ways read the same events");
    let kept_growth = peak2.saturating_sub(base);
    eprintln!("file {file_kib} KiB: RssFile +{streamed_growth} KiB streamed, +{kept_growth} KiB without release");
    assert!(
        kept_growth > file_kib / 2,
        "without release RssFile should grow with the file: +{kept_growth} KiB of {file_kib} KiB"
    );
    assert!(
        streamed_growth < 8 << 10,
        "streaming kept +{streamed_growth} KiB of a {file_kib} KiB file resident"
    );
}
