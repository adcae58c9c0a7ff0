//! `stream::EventStream` / `stream::DecodedChunks` (pipelined decoding,
//! borrowed records) must yield exactly what `Reader::chunks` +
//! `Reader::decode` + `DecodedChunk::records` yield, in the same order, for
//! intact, damaged, truncated and malformed recordings, at every look-ahead
//! depth (0 = inline); and dropping a stream early must not hang.

mod common;

use std::sync::Arc;

use smctrace_format::layout::CHUNK_HEADER_LEN;
use smctrace_format::stream::{DecodedChunks, EventStream, StreamItem};
use smctrace_format::{encode_chunk, event, Reader, TrailerInput, Writer, WriterOptions};

/// One observable step, comparable across the two APIs.
#[derive(Debug, PartialEq)]
enum Step {
    Event(String),
    BadChunk(String),
    BadRecord(u64, usize, String),
}

/// What the one-chunk-at-a-time API yields.
fn reference(r: &Reader) -> Vec<Step> {
    let mut out = Vec::new();
    for c in r.chunks() {
        match c.and_then(|c| r.decode(&c)) {
            Err(e) => out.push(Step::BadChunk(e.to_string())),
            Ok(d) => {
                let mut recs = d.records();
                loop {
                    let off = recs.offset();
                    match recs.next() {
                        None => break,
                        Some(Ok(ev)) => out.push(Step::Event(format!("{ev:?}"))),
                        Some(Err(e)) => {
                            out.push(Step::BadRecord(d.info().index, off, e.to_string()))
                        }
                    }
                }
            }
        }
    }
    out
}

fn streamed(r: &Arc<Reader>, depth: usize, workers: usize) -> Vec<Step> {
    let mut s = EventStream::with_workers(r.clone(), depth, workers);
    let mut out = Vec::new();
    while let Some(it) = s.next_item() {
        out.push(match it {
            StreamItem::Event(ev) => Step::Event(format!("{ev:?}")),
            StreamItem::BadChunk(e) => Step::BadChunk(e.to_string()),
            StreamItem::BadRecord {
                chunk,
                offset,
                error,
            } => Step::BadRecord(chunk.index, offset, error.to_string()),
        });
    }
    out
}

fn check_all_depths(path: &std::path::Path) -> Vec<Step> {
    let r = Arc::new(Reader::open(path).unwrap());
    let want = reference(&r);
    for (depth, workers) in [
        (0, 1),
        (1, 1),
        (2, 1),
        (3, 1),
        (8, 1),
        (1, 2),
        (3, 2),
        (4, 3),
        (2, 5),
    ] {
        let got = streamed(&r, depth, workers);
        assert_eq!(
            got.len(),
            want.len(),
            "depth {depth} workers {workers}: item count"
        );
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "depth {depth} workers {workers}: item {i} differs");
        }
        let chunks: Vec<String> = DecodedChunks::with_workers(r.clone(), depth, workers)
            .map(|d| match d {
                Ok(d) => format!("ok {} {:?}", d.info().index, d.bytes().len()),
                Err(e) => format!("err {e}"),
            })
            .collect();
        let want_chunks: Vec<String> = r
            .decoded_chunks()
            .map(|d| match d {
                Ok(d) => format!("ok {} {:?}", d.info().index, d.bytes().len()),
                Err(e) => format!("err {e}"),
            })
            .collect();
        assert_eq!(
            chunks, want_chunks,
            "depth {depth} workers {workers}: decoded chunks"
        );
    }
    want
}

#[test]
fn intact_recording_same_events_same_order() {
    let dir = tempfile::tempdir().unwrap();
    let b = common::build(dir.path(), "ok.smctrace", 30, 17, true);
    let want = check_all_depths(&b.path);
    let total: u32 = b.counts.iter().sum();
    assert_eq!(want.len(), total as usize);
    assert!(want.iter().all(|s| matches!(s, Step::Event(_))));
    let r = Arc::new(Reader::open(&b.path).unwrap());
    let mut s = EventStream::new(r);
    while s.next_item().is_some() {}
    assert_eq!(s.chunks_seen(), b.chunks.len() as u64);
}

#[test]
fn body_bit_flip_is_one_bad_chunk_and_the_rest_reads() {
    for finish in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let b = common::build(dir.path(), "f.smctrace", 10, 20, finish);
        let infos: Vec<_> = Reader::open(&b.path)
            .unwrap()
            .chunks()
            .map(|c| c.unwrap())
            .collect();
        let mut bytes = std::fs::read(&b.path).unwrap();
        bytes[infos[3].offset as usize + CHUNK_HEADER_LEN + 5] ^= 0x10;
        std::fs::write(&b.path, &bytes).unwrap();
        let want = check_all_depths(&b.path);
        let bad: Vec<_> = want
            .iter()
            .filter(|s| matches!(s, Step::BadChunk(_)))
            .collect();
        assert_eq!(bad.len(), 1, "finish {finish}: {bad:?}");
        let events = want.iter().filter(|s| matches!(s, Step::Event(_))).count();
        assert_eq!(events as u32, b.counts.iter().sum::<u32>() - b.counts[3]);
    }
}

#[test]
fn header_damage_and_truncated_tail_match_the_reader() {
    let dir = tempfile::tempdir().unwrap();
    let b = common::build(dir.path(), "h.smctrace", 10, 20, false);
    let infos: Vec<_> = Reader::open(&b.path)
        .unwrap()
        .chunks()
        .map(|c| c.unwrap())
        .collect();
    let full = std::fs::read(&b.path).unwrap();
    // A corrupt header that a valid one follows.
    let mut bytes = full.clone();
    bytes[infos[2].offset as usize + 40] ^= 0x01;
    std::fs::write(&b.path, &bytes).unwrap();
    let want = check_all_depths(&b.path);
    assert_eq!(
        want.iter()
            .filter(|s| matches!(s, Step::BadChunk(_)))
            .count(),
        1
    );
    // Cuts inside the last chunks: what was complete is recovered.
    let last = infos[infos.len() - 2].offset as usize;
    for cut in [last + 3, last + CHUNK_HEADER_LEN + 9, full.len() - 1] {
        std::fs::write(&b.path, &full[..cut]).unwrap();
        let want = check_all_depths(&b.path);
        assert!(
            want.len() >= b.counts[..infos.len() - 2].iter().sum::<u32>() as usize,
            "cut {cut}"
        );
    }
}

#[test]
fn malformed_record_ends_its_chunk_only() {
    let dir = tempfile::tempdir().unwrap();
    let (records, _) = smctrace_format::synth::PingPong::default().build(3);
    let pieces = common::split_records(&records, 10);
    let path = dir.path().join("m.smctrace");
    let mut w = Writer::create(&path, &common::meta(), WriterOptions::default()).unwrap();
    for (seq, (raw, n, f, l)) in pieces.iter().enumerate() {
        let mut raw = raw.clone();
        if seq == 1 {
            // After the chunk's first record: a header whose length (12)
            // is shorter than a header, then the chunk's other records.
            let mut h = [0u8; event::HDR_LEN];
            h[2..4].copy_from_slice(&12u16.to_le_bytes());
            let first: event::Hdr = bytemuck::pod_read_unaligned(&raw[..event::HDR_LEN]);
            let at = first.len as usize;
            let tail = raw.split_off(at);
            raw.extend_from_slice(&h);
            raw.extend_from_slice(&tail);
        }
        w.append(&encode_chunk(seq as u64, &raw, *n, *f, *l, 1).unwrap())
            .unwrap();
    }
    w.finish(TrailerInput::default()).unwrap();
    let want = check_all_depths(&path);
    let bad: Vec<_> = want
        .iter()
        .filter(|s| matches!(s, Step::BadRecord(..)))
        .collect();
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(matches!(bad[0], Step::BadRecord(1, _, _)), "{bad:?}");
    let in_chunk1 = want
        .iter()
        .skip(pieces[0].1 as usize)
        .take_while(|s| matches!(s, Step::Event(_)))
        .count();
    assert_eq!(in_chunk1, 1, "the record before the damage is kept");
    // Chunks after the damaged one are read in full.
    let after = want
        .iter()
        .skip_while(|s| !matches!(s, Step::BadRecord(..)))
        .skip(1)
        .count();
    assert_eq!(after as u32, pieces[2..].iter().map(|p| p.1).sum::<u32>());
}

#[test]
fn dropping_a_stream_early_stops_its_worker() {
    let dir = tempfile::tempdir().unwrap();
    let b = common::build(dir.path(), "d.smctrace", 40, 5, true);
    let r = Arc::new(Reader::open(&b.path).unwrap());
    for (depth, workers) in [(1, 1), (2, 1), (4, 1), (1, 2), (4, 2)] {
        let mut s = EventStream::with_workers(r.clone(), depth, workers);
        assert!(matches!(s.next_item(), Some(StreamItem::Event(_))));
        drop(s);
        let mut c = DecodedChunks::with_workers(r.clone(), depth, workers);
        assert!(c.next().unwrap().is_ok());
        drop(c);
    }
    // Every worker joined and released its reference to the reader.
    assert_eq!(Arc::strong_count(&r), 1);
}

#[test]
fn empty_recording_streams_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.smctrace");
    let w = Writer::create(&path, &common::meta(), WriterOptions::default()).unwrap();
    w.finish(TrailerInput::default()).unwrap();
    assert!(check_all_depths(&path).is_empty());
}

#[test]
fn decode_with_reused_buffers_matches_decode_and_keeps_its_limits() {
    use smctrace_format::layout::{self, ChunkHeader, CHUNK_F_ZSTD};
    use smctrace_format::reader::ChunkDecoder;
    let dir = tempfile::tempdir().unwrap();
    let b = common::build(dir.path(), "r.smctrace", 12, 13, false);
    // Then a stored (uncompressed) chunk and a frame larger than its header says.
    let raw = |flags: u16, raw_len: u32, body: &[u8]| {
        let h = ChunkHeader {
            chunk_type: layout::CHUNK_EVENTS,
            flags,
            seq: 77,
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
    };
    let stored = b.chunks[0].clone();
    let big = zstd::bulk::compress(&vec![7u8; 100_000], 3).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&b.path)
        .unwrap();
    use std::io::Write;
    f.write_all(&raw(0, stored.len() as u32, &stored)).unwrap();
    f.write_all(&raw(CHUNK_F_ZSTD, 64, &big)).unwrap();
    drop(f);
    let r = Reader::open(&b.path).unwrap();
    let infos: Vec<_> = r.chunks().map(|c| c.unwrap()).collect();
    let mut dec = ChunkDecoder::new();
    // A buffer larger than any chunk, reused from chunk to chunk.
    let mut buf = vec![0xAAu8; 4 << 20];
    for c in &infos {
        let want = r.decode(c);
        let got = r.decode_with(c, &mut dec, std::mem::take(&mut buf));
        match (want, got) {
            (Ok(w), Ok(g)) => {
                assert_eq!(w.bytes(), g.bytes(), "chunk {}", c.index);
                buf = g.bytes().to_vec();
                buf.reserve(4 << 20);
            }
            (Err(w), Err(g)) => {
                assert_eq!(c.seq, 77, "only the oversized frame fails");
                assert!(
                    g.to_string().contains("decompressed to 100000 bytes"),
                    "{g} / {w}"
                );
                buf = vec![0u8; 4 << 20];
            }
            (w, g) => panic!("chunk {}: decode {w:?} vs decode_with {g:?}", c.index),
        }
    }
    assert_eq!(infos.len(), b.chunks.len() + 2);
}
