//! Hostile input: arbitrary bytes after a valid header, arbitrary multi-byte
//! damage anywhere, and crafted headers/footers whose checksums hold but whose
//! lengths and offsets lie. The reader must answer with data it can vouch
//! for or a typed error — never a panic, never a huge allocation.

mod common;

use proptest::prelude::*;
use smctrace_format::layout::{ChunkHeader, Footer, CHUNK_HEADER_LEN, FOOTER_LEN};
use smctrace_format::Reader;

/// Open and consume everything a reader offers.
fn exercise(path: &std::path::Path) {
    if let Ok(r) = Reader::open(path) {
        let _ = r.recovery();
        let _ = r.stats();
        let _ = r.verify();
        for d in r.decoded_chunks().flatten() {
            for ev in d.records() {
                if ev.is_err() {
                    break;
                }
            }
        }
    }
}

fn sample() -> (tempfile::TempDir, Vec<u8>, usize) {
    let dir = tempfile::tempdir().unwrap();
    let b = common::build(dir.path(), "s.smctrace", 2, 15, true);
    let bytes = std::fs::read(&b.path).unwrap();
    let hl = Reader::open(&b.path).unwrap().header_len() as usize;
    (dir, bytes, hl)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_after_a_valid_header(tail in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let (dir, bytes, hl) = sample();
        let mut f = bytes[..hl].to_vec();
        f.extend_from_slice(&tail);
        let p = dir.path().join("t.smctrace");
        std::fs::write(&p, &f).unwrap();
        exercise(&p);
    }

    #[test]
    fn arbitrary_damage_anywhere(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..12)) {
        let (dir, mut bytes, _) = sample();
        for (i, v) in edits {
            let at = i.index(bytes.len());
            bytes[at] = v;
        }
        let p = dir.path().join("d.smctrace");
        std::fs::write(&p, &bytes).unwrap();
        exercise(&p);
    }

    #[test]
    fn lying_chunk_headers_with_good_checksums(
        at in any::<prop::sample::Index>(),
        chunk_type in prop_oneof![Just(1u16), Just(2u16), any::<u16>()],
        flags in any::<u16>(),
        raw_len in any::<u32>(),
        comp_len in any::<u32>(),
        event_count in any::<u32>(),
    ) {
        let (dir, mut bytes, hl) = sample();
        let h = ChunkHeader { chunk_type, flags, seq: 1, first_ts: 0, last_ts: 0, event_count, raw_len, comp_len, body_crc: 0 };
        let slots = (bytes.len() - FOOTER_LEN - CHUNK_HEADER_LEN - hl) / 8;
        let off = hl + 8 * at.index(slots.max(1));
        bytes[off..off + CHUNK_HEADER_LEN].copy_from_slice(&h.encode());
        let p = dir.path().join("h.smctrace");
        std::fs::write(&p, &bytes).unwrap();
        exercise(&p);
    }

    #[test]
    fn lying_footers_with_good_checksums(trailer_offset in any::<u64>(), trailer_len in any::<u64>(), near in any::<bool>()) {
        let (dir, mut bytes, _) = sample();
        let n = bytes.len();
        let (o, l) = if near {
            // Plausible values around the real ones.
            let foot = (n - FOOTER_LEN) as u64;
            let o = trailer_offset % foot;
            (o, foot - o)
        } else {
            (trailer_offset, trailer_len)
        };
        bytes[n - FOOTER_LEN..].copy_from_slice(&Footer { trailer_offset: o, trailer_len: l }.encode());
        let p = dir.path().join("f.smctrace");
        std::fs::write(&p, &bytes).unwrap();
        exercise(&p);
    }
}

#[test]
fn footer_pointing_at_a_trailer_shorter_than_a_chunk_header() {
    let (dir, mut bytes, _) = sample();
    let n = bytes.len();
    let foot = (n - FOOTER_LEN) as u64;
    for short in [0u64, 8, 48] {
        let f = Footer {
            trailer_offset: foot - short,
            trailer_len: short,
        };
        bytes[n - FOOTER_LEN..].copy_from_slice(&f.encode());
        let p = dir.path().join("short.smctrace");
        std::fs::write(&p, &bytes).unwrap();
        let r = Reader::open(&p).unwrap();
        assert!(!r.recovery().clean_close);
        assert!(r.recovery().trailer_error.is_some());
        exercise(&p);
    }
}
