//! The column transform (`smctrace_format::columnar`, the candidate chunk
//! codec of issue #8) must give back every real recording's records exactly,
//! and shrink the well-filled chunks of the busy ones under zstd level 1;
//! prints the zstd-compressed bytes/event (chunk bodies only) before and after.

use smctrace_format::{columnar, Reader};

#[test]
fn fixtures_round_trip_and_compress_better() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
    let mut seen = 0;
    for dir in std::fs::read_dir(&root).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(dir).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_none_or(|e| e != "smctrace") {
                continue;
            }
            let r = Reader::open(&p).unwrap();
            let (mut events, mut chunks, mut rows, mut cols) = (0u64, 0u64, 0usize, 0usize);
            for c in r.decoded_chunks() {
                let c = c.unwrap();
                let raw = c.bytes();
                events += c.info().event_count as u64;
                chunks += 1;
                let enc = columnar::encode(raw).expect("fixture records are encodable");
                assert_eq!(
                    columnar::decode(&enc, raw.len()).unwrap(),
                    raw,
                    "{}",
                    p.display()
                );
                rows += zstd::bulk::compress(raw, 1).unwrap().len();
                cols += zstd::bulk::compress(&enc, 1).unwrap().len();
            }
            eprintln!(
                "{}: {events} events in {chunks} chunks, zstd-1 rows {:.2} B/event, columns {:.2} B/event",
                p.display(),
                rows as f64 / events as f64,
                cols as f64 / events as f64
            );
            // Chunks of a few events carry the group table and index for little gain.
            if events >= 100 * chunks {
                assert!(
                    cols < rows,
                    "{}: columns {cols} >= rows {rows}",
                    p.display()
                );
            }
            seen += 1;
        }
    }
    assert!(seen >= 8, "only {seen} fixtures found");
}
