//! Crash recovery and damage: truncation at every byte of the last chunks and
//! at random offsets elsewhere, the zero tail of a killed writer, bit flips
//! (every byte of a small file), corrupt headers, unknown chunk types and
//! length limits. Nothing may panic, every complete chunk before a cut is
//! recovered, and no damaged chunk is ever returned as data.

mod common;

use smctrace_format::layout::{self, ChunkHeader, CHUNK_F_ZSTD, CHUNK_HEADER_LEN};
use smctrace_format::synth::Rng;
use smctrace_format::{encode_chunk, FormatError, Reader, Writer, WriterOptions};

#[test]
fn truncation_at_every_offset_of_the_last_chunks_and_random_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let b = common::build(dir.path(), "full.smctrace", 12, 25, true);
    let full = std::fs::read(&b.path).unwrap();
    let r = Reader::open(&b.path).unwrap();
    let infos: Vec<_> = r.chunks().map(|c| c.unwrap()).collect();
    assert!(infos.len() >= 6, "want several chunks, got {}", infos.len());
    let header_len = r.header_len() as usize;
    let last_two = infos[infos.len() - 2].offset as usize;

    let mut rng = Rng::new(7);
    let mut cuts: Vec<usize> = (last_two..=full.len()).collect();
    cuts.extend((0..300).map(|_| rng.range(0, last_two as u64 - 1) as usize));
    cuts.extend(0..=header_len + 1);
    let cut_path = dir.path().join("cut.smctrace");
    for cut in cuts {
        std::fs::write(&cut_path, &full[..cut]).unwrap();
        let res = Reader::open(&cut_path);
        if cut < header_len {
            let e = res.expect_err("a file cut inside its header must not open");
            assert!(
                matches!(
                    e,
                    FormatError::NotARecording { .. } | FormatError::CorruptHeader { .. }
                ),
                "cut {cut}: {e}"
            );
            continue;
        }
        let r = res.unwrap_or_else(|e| panic!("cut {cut}: {e}"));
        let complete: Vec<_> = infos
            .iter()
            .filter(|c| (c.offset + c.stored_len()) as usize <= cut)
            .collect();
        let rec = r.recovery();
        assert_eq!(rec.clean_close, cut == full.len(), "cut {cut}");
        assert_eq!(rec.chunks_ok as usize, complete.len(), "cut {cut}: {rec:?}");
        assert_eq!(
            rec.events_ok,
            complete.iter().map(|c| c.event_count as u64).sum::<u64>(),
            "cut {cut}"
        );
        if cut < full.len() {
            // The end of the data is either exactly a chunk boundary or a reported stop.
            let at_boundary = cut == header_len
                || infos
                    .iter()
                    .any(|c| (c.offset + c.stored_len()) as usize == cut);
            assert!(
                at_boundary || rec.stopped_at.is_some(),
                "cut {cut}: no stop reported"
            );
        }
        let got = common::decode_all(&r);
        assert_eq!(got.len(), complete.len(), "cut {cut}");
        for (i, (seq, raw)) in got.iter().enumerate() {
            assert_eq!(*seq, i as u64);
            assert_eq!(raw, &b.chunks[i], "cut {cut}: chunk {i} differs");
        }
    }
}

#[test]
fn killed_writer_leaves_a_zero_tail_that_reads_as_not_closed_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("killed.smctrace");
    let (records, _) = smctrace_format::synth::PingPong::default().build(200);
    let parts = common::split_records(&records, 100);
    let mut w = Writer::create(
        &path,
        &common::meta(),
        WriterOptions {
            extent_bytes: 64 << 10,
            ..Default::default()
        },
    )
    .unwrap();
    for (seq, (raw, n, f, l)) in parts.iter().enumerate() {
        w.append(&encode_chunk(seq as u64, raw, *n, *f, *l, 1).unwrap())
            .unwrap();
    }
    let written = w.bytes_written();
    // As if the process were SIGKILLed: no finish, no Drop.
    std::mem::forget(w);
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(
        len > written && len.is_multiple_of(64 << 10),
        "file should still have its preallocated tail: {len} vs {written}"
    );

    let r = Reader::open(&path).unwrap();
    let rec = r.recovery();
    assert!(!rec.clean_close);
    assert!(r.trailer().is_none());
    assert_eq!(rec.chunks_ok as usize, parts.len());
    assert!(rec.corrupt.is_empty(), "{:?}", rec.corrupt);
    let (at, why) = rec.stopped_at.clone().unwrap();
    assert_eq!(at, written);
    assert!(why.contains("not closed cleanly"), "{why}");
    assert_eq!(common::decode_all(&r).len(), parts.len());
}

#[test]
fn chunk_killed_mid_append_is_dropped_and_earlier_ones_kept() {
    // The writer stores a chunk's body before its header: a process killed in
    // between leaves a body after a zero header.
    let dir = tempfile::tempdir().unwrap();
    let b = common::build(dir.path(), "x.smctrace", 6, 20, false);
    let r = Reader::open(&b.path).unwrap();
    let infos: Vec<_> = r.chunks().map(|c| c.unwrap()).collect();
    drop(r);
    let last = infos.last().unwrap();
    let mut bytes = std::fs::read(&b.path).unwrap();
    bytes[last.offset as usize..last.offset as usize + CHUNK_HEADER_LEN].fill(0);
    std::fs::write(&b.path, &bytes).unwrap();
    let r = Reader::open(&b.path).unwrap();
    assert_eq!(r.recovery().chunks_ok as usize, infos.len() - 1);
    assert!(r
        .recovery()
        .stopped_at
        .as_ref()
        .unwrap()
        .1
        .contains("not closed cleanly"));
}

#[test]
fn writer_dropped_without_finish_is_cut_to_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let b = common::build(dir.path(), "d.smctrace", 4, 20, false);
    let r = Reader::open(&b.path).unwrap();
    assert!(!r.recovery().clean_close);
    assert_eq!(r.recovery().chunks_ok as usize, b.chunks.len());
    assert_eq!(
        r.recovery().stopped_at,
        None,
        "a cut at a chunk boundary is not a stop"
    );
}

fn flip(path: &std::path::Path, at: usize, mask: u8) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= mask;
    std::fs::write(path, &bytes).unwrap();
}

#[test]
fn body_bit_flip_names_the_chunk_and_others_stay_readable() {
    for finish in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let b = common::build(dir.path(), "f.smctrace", 8, 20, finish);
        let infos: Vec<_> = Reader::open(&b.path)
            .unwrap()
            .chunks()
            .map(|c| c.unwrap())
            .collect();
        let victim = infos[3];
        flip(&b.path, victim.offset as usize + CHUNK_HEADER_LEN + 5, 0x10);
        let r = Reader::open(&b.path).unwrap();
        assert_eq!(r.recovery().clean_close, finish);
        let mut ok = 0;
        for c in r.chunks() {
            let c = c.unwrap();
            match r.decode(&c) {
                Ok(d) => {
                    assert_ne!(c.index, 3);
                    assert_eq!(d.bytes(), &b.chunks[c.seq as usize][..]);
                    ok += 1;
                }
                Err(e) => {
                    assert_eq!(c.index, 3);
                    assert!(
                        matches!(
                            e,
                            FormatError::CorruptChunk {
                                index: 3,
                                seq: Some(3),
                                ..
                            }
                        ),
                        "{e}"
                    );
                    let msg = e.to_string();
                    assert!(msg.contains("chunk 3") && msg.contains("checksum"), "{msg}");
                    assert_eq!(e.exit_code(), smctrace_format::error::exit::CORRUPT_CHUNK);
                }
            }
        }
        assert_eq!(ok, infos.len() - 1);
        let bad = r.verify();
        assert_eq!(bad.len(), 1, "{bad:?}");
        if !finish {
            // Not closed cleanly: the walk at open checked the bodies.
            assert_eq!(r.recovery().chunks_ok as usize, infos.len() - 1);
            assert_eq!(r.recovery().corrupt.len(), 1);
            assert_eq!(r.recovery().corrupt[0].index, 3);
        }
    }
}

#[test]
fn header_bit_flip_is_reported_and_the_walk_resyncs() {
    for finish in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let b = common::build(dir.path(), "h.smctrace", 8, 20, finish);
        let infos: Vec<_> = Reader::open(&b.path)
            .unwrap()
            .chunks()
            .map(|c| c.unwrap())
            .collect();
        flip(&b.path, infos[2].offset as usize + 40, 0x01); // comp_len
        let r = Reader::open(&b.path).unwrap();
        let items: Vec<_> = r.chunks().collect();
        assert_eq!(items.len(), infos.len());
        for (i, it) in items.iter().enumerate() {
            if i == 2 {
                let e = it.as_ref().unwrap_err();
                assert!(
                    matches!(e, FormatError::CorruptChunk { index: 2, .. }),
                    "{e}"
                );
                assert!(
                    e.to_string()
                        .contains(&format!("offset {}", infos[2].offset)),
                    "{e}"
                );
            } else {
                let c = it.as_ref().unwrap();
                assert_eq!(r.decode(c).unwrap().bytes(), &b.chunks[c.seq as usize][..]);
            }
        }
    }
}

#[test]
fn every_single_byte_flip_of_a_small_file_is_caught_or_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let b = common::build(dir.path(), "s.smctrace", 2, 15, true);
    let orig = std::fs::read(&b.path).unwrap();
    let total = b.chunks.len();
    let p = dir.path().join("flip.smctrace");
    for at in 0..orig.len() {
        let mut bytes = orig.clone();
        bytes[at] ^= 1 << (at % 8);
        std::fs::write(&p, &bytes).unwrap();
        let Ok(r) = Reader::open(&p) else { continue };
        let got = common::decode_all(&r);
        assert!(
            got.len() + 1 >= total,
            "flip at {at}: only {} of {total} chunks survive",
            got.len()
        );
        for (seq, raw) in got {
            assert_eq!(
                raw, b.chunks[seq as usize],
                "flip at {at}: chunk seq {seq} decoded to wrong data"
            );
        }
        if let Some(t) = r.trailer() {
            assert_eq!(
                t.lost_per_cpu,
                vec![0, 2],
                "flip at {at}: trailer content changed"
            );
        }
    }
}

/// Append raw bytes to a file not closed cleanly.
fn append(path: &std::path::Path, extra: &[u8]) {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(extra)
        .unwrap();
}

fn raw_chunk(chunk_type: u16, flags: u16, raw_len: u32, body: &[u8]) -> Vec<u8> {
    let h = ChunkHeader {
        chunk_type,
        flags,
        seq: 99,
        event_count: 1,
        raw_len,
        comp_len: body.len() as u32,
        body_crc: crc32c::crc32c(body),
        ..Default::default()
    };
    let mut v = h.encode().to_vec();
    v.extend_from_slice(body);
    v.resize(CHUNK_HEADER_LEN + layout::pad8(body.len()), 0);
    v
}

#[test]
fn unknown_chunk_types_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let b = common::build(dir.path(), "u.smctrace", 3, 20, false);
    append(&b.path, &raw_chunk(0x7777, 0, 13, b"future stuff!"));
    let extra = encode_chunk(1000, &b.chunks[0], b.counts[0], 0, 1, 1).unwrap();
    append(&b.path, extra.as_bytes());
    let r = Reader::open(&b.path).unwrap();
    assert_eq!(r.recovery().unknown_chunks, 1);
    assert_eq!(r.recovery().chunks_ok as usize, b.chunks.len() + 1);
    let last = r.chunks().last().unwrap().unwrap();
    assert_eq!(last.seq, 1000);
    assert_eq!(
        last.index as usize,
        b.chunks.len() + 1,
        "the unknown chunk still counts in chunk numbering"
    );
    assert_eq!(r.decode(&last).unwrap().bytes(), &b.chunks[0][..]);
}

#[test]
fn lengths_are_checked_before_allocating_or_decompressing() {
    let dir = tempfile::tempdir().unwrap();
    // raw_len claims 1 GiB.
    let b = common::build(dir.path(), "l.smctrace", 1, 20, false);
    let small = zstd::bulk::compress(&[0u8; 64], 1).unwrap();
    append(
        &b.path,
        &raw_chunk(layout::CHUNK_EVENTS, CHUNK_F_ZSTD, 1 << 30, &small),
    );
    // A bomb: 4 MiB of zeros, header says 64 bytes.
    let bomb = zstd::bulk::compress(&vec![0u8; 4 << 20], 19).unwrap();
    append(
        &b.path,
        &raw_chunk(layout::CHUNK_EVENTS, CHUNK_F_ZSTD, 64, &bomb),
    );
    // Unknown flag bits.
    append(
        &b.path,
        &raw_chunk(layout::CHUNK_EVENTS, 0x8001, 64, &small),
    );
    let r = Reader::open(&b.path).unwrap();
    let infos: Vec<_> = r.chunks().map(|c| c.unwrap()).collect();
    let n = infos.len();
    let e = r.decode(&infos[n - 3]).unwrap_err().to_string();
    assert!(e.contains("exceeds"), "{e}");
    let e = r.decode(&infos[n - 2]).unwrap_err().to_string();
    assert!(e.contains("zstd") || e.contains("decompressed"), "{e}");
    let e = r.decode(&infos[n - 1]).unwrap_err().to_string();
    assert!(e.contains("flags"), "{e}");
    // A header that claims a body far past the end of the file stops the walk.
    append(
        &b.path,
        &raw_chunk(layout::CHUNK_EVENTS, CHUNK_F_ZSTD, 64, &small)[..CHUNK_HEADER_LEN],
    );
    let r = Reader::open(&b.path).unwrap();
    assert!(
        r.recovery()
            .stopped_at
            .as_ref()
            .unwrap()
            .1
            .contains("truncated"),
        "{:?}",
        r.recovery()
    );
}
