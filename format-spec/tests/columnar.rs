//! The columnar chunk layout (format 1.1, `CHUNK_F_COLUMNS`): every real
//! recording's records must come back exactly through the writer, the reader
//! and the streaming reader; the busy recordings must get smaller under zstd
//! level 1 (the test prints bytes/event of the chunk bodies both ways); and
//! a damaged columnar body must cost that chunk only, with a clear error.

use std::io::Write as _;
use std::sync::Arc;

use smctrace_format::layout::{self, ChunkHeader, CHUNK_F_COLUMNS, CHUNK_F_ZSTD, CHUNK_HEADER_LEN};
use smctrace_format::stream::{EventStream, StreamItem};
use smctrace_format::{
    columnar, ChunkCodec, ChunkEncoder, Metadata, Reader, TrailerInput, Writer, WriterOptions,
};

/// Every chunk of `src` re-encoded with `codec` into `dst`; body bytes written.
fn rewrite(src: &Reader, dst: &std::path::Path, codec: ChunkCodec) -> usize {
    let mut w = Writer::create(
        dst,
        src.metadata(),
        WriterOptions {
            overwrite: true,
            ..Default::default()
        },
    )
    .unwrap();
    let mut enc = ChunkEncoder::new(1, codec);
    let mut body = 0;
    for c in src.decoded_chunks() {
        let c = c.unwrap();
        let i = c.info();
        let e = enc
            .encode(i.seq, c.bytes(), i.event_count, i.first_ts, i.last_ts)
            .unwrap();
        body += e.comp_len() as usize;
        w.append(&e).unwrap();
    }
    w.finish(TrailerInput::default()).unwrap();
    body
}

fn fixtures() -> Vec<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
    let mut v = Vec::new();
    for dir in std::fs::read_dir(&root).unwrap() {
        let dir = dir.unwrap().path();
        if dir.is_dir() {
            for f in std::fs::read_dir(dir).unwrap() {
                let p = f.unwrap().path();
                if p.extension().is_some_and(|e| e == "smctrace") {
                    v.push(p);
                }
            }
        }
    }
    v.sort();
    v
}

#[test]
fn fixtures_round_trip_through_columnar_files_and_compress_better() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = fixtures();
    assert!(paths.len() >= 8, "only {} fixtures found", paths.len());
    for p in paths {
        let src = Reader::open(&p).unwrap();
        let want: Vec<Vec<u8>> = src
            .decoded_chunks()
            .map(|c| c.unwrap().bytes().to_vec())
            .collect();
        let events: u64 = src.chunks().map(|c| c.unwrap().event_count as u64).sum();
        let mut sizes = Vec::new();
        for codec in [ChunkCodec::Rows, ChunkCodec::Columns, ChunkCodec::Auto] {
            let out = tmp.path().join(format!("{codec:?}.smctrace"));
            sizes.push(rewrite(&src, &out, codec));
            let r = Arc::new(Reader::open(&out).unwrap());
            assert_eq!(r.version(), (1, 1));
            let cols = r
                .chunks()
                .filter(|c| c.as_ref().unwrap().flags & CHUNK_F_COLUMNS != 0)
                .count();
            match codec {
                ChunkCodec::Rows => assert_eq!(cols, 0),
                ChunkCodec::Columns => assert_eq!(cols, want.len()),
                ChunkCodec::Auto => {}
            }
            let got: Vec<Vec<u8>> = r
                .decoded_chunks()
                .map(|c| c.unwrap().bytes().to_vec())
                .collect();
            assert_eq!(got, want, "{} via {codec:?}", p.display());
            // The streaming reader sees the same records, in order.
            let mut stream = EventStream::new(r.clone());
            let mut n = 0u64;
            let flat: Vec<u8> = want.concat();
            let mut at = 0;
            while let Some(it) = stream.next_item() {
                let StreamItem::Event(ev) = it else {
                    panic!("{}: damaged item via {codec:?}", p.display())
                };
                let len = ev.hdr().len as usize;
                assert_eq!(
                    ev.hdr().ts_ns,
                    u64::from_le_bytes(flat[at + 8..at + 16].try_into().unwrap())
                );
                at += len;
                n += 1;
            }
            assert_eq!(n, events);
        }
        eprintln!(
            "{}: {events} events in {} chunks, zstd-1 bodies: rows {:.2} B/event, columns {:.2}, auto {:.2}",
            p.display(),
            want.len(),
            sizes[0] as f64 / events as f64,
            sizes[1] as f64 / events as f64,
            sizes[2] as f64 / events as f64
        );
        assert!(
            sizes[2] <= sizes[0],
            "{}: auto {} > rows {}",
            p.display(),
            sizes[2],
            sizes[0]
        );
        // Chunks of a few events carry the group table and index for little gain.
        if events >= 100 * want.len() as u64 {
            assert!(
                sizes[1] < sizes[0],
                "{}: columns {} >= rows {}",
                p.display(),
                sizes[1],
                sizes[0]
            );
        }
    }
}

/// A chunk with a valid header and body CRC around `body`.
fn raw_chunk(flags: u16, raw_len: usize, event_count: u32, body: &[u8]) -> Vec<u8> {
    let h = ChunkHeader {
        chunk_type: layout::CHUNK_EVENTS,
        flags,
        seq: 77,
        event_count,
        raw_len: raw_len as u32,
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
fn a_damaged_columnar_body_costs_its_chunk_only() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("d.smctrace");
    let (records, n) = smctrace_format::synth::PingPong {
        connections: 3,
        ..Default::default()
    }
    .build(40);
    let mut w = Writer::create(&path, &Metadata::default(), WriterOptions::default()).unwrap();
    let mut enc = ChunkEncoder::new(1, ChunkCodec::Columns);
    w.append(&enc.encode(0, &records, n as u32, 0, 1).unwrap())
        .unwrap();
    // No trailer: the reader walks the chunks, so appended ones count.
    drop(w);
    let good = columnar::encode(&records).unwrap();
    let mut bad = Vec::new();
    // Counts that disagree with the group table, an index naming a missing
    // group, a body cut short, an event count other than the body's, and
    // rows beyond the 64 MiB limit.
    let mut b = good.clone();
    b[0] ^= 1;
    bad.push((b, n as u32, "header says"));
    let mut b = good.clone();
    let g = u16::from_le_bytes([b[8], b[9]]) as usize;
    b[12 + 8 * g] = 0xff;
    bad.push((b, n as u32, "names column group"));
    bad.push((good[..good.len() - 8].to_vec(), n as u32, "tables say"));
    bad.push((good.clone(), n as u32 + 1, "the header says"));
    let mut b = good.clone();
    b[4..8].copy_from_slice(&(65u32 << 20).to_le_bytes());
    bad.push((b, n as u32, "limit"));
    {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        for (body, count, _) in &bad {
            let z = zstd::bulk::compress(body, 1).unwrap();
            f.write_all(&raw_chunk(
                CHUNK_F_ZSTD | CHUNK_F_COLUMNS,
                body.len(),
                *count,
                &z,
            ))
            .unwrap();
        }
        // And the good body once more, after the damaged ones.
        let z = zstd::bulk::compress(&good, 1).unwrap();
        f.write_all(&raw_chunk(
            CHUNK_F_ZSTD | CHUNK_F_COLUMNS,
            good.len(),
            n as u32,
            &z,
        ))
        .unwrap();
    }
    let r = Reader::open(&path).unwrap();
    let chunks: Vec<_> = r.chunks().map(|c| c.unwrap()).collect();
    assert_eq!(chunks.len(), 2 + bad.len());
    assert!(r.decode(&chunks[0]).unwrap().bytes() == &records[..]);
    for (c, (_, _, why)) in chunks[1..=bad.len()].iter().zip(&bad) {
        let e = r.decode(c).map(|_| ()).unwrap_err().to_string();
        assert!(
            e.contains(why) && e.contains(&format!("chunk {}", c.index)),
            "{e} (wanted {why:?})"
        );
        assert!(!e.contains('\n'), "one line: {e}");
    }
    assert!(r.decode(chunks.last().unwrap()).unwrap().bytes() == &records[..]);
}

#[test]
fn a_reader_without_the_columns_flag_refuses_the_chunk_by_name() {
    // What a 1.0 reader does with a 1.1 columnar chunk: the flag bit is
    // unknown to it, so it reports the chunk undecodable. This build must do
    // the same with the next, still unknown, bit.
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("f.smctrace");
    let (records, n) = smctrace_format::synth::PingPong::default().build(5);
    let mut w = Writer::create(&path, &Metadata::default(), WriterOptions::default()).unwrap();
    w.append(
        &ChunkEncoder::new(1, ChunkCodec::Rows)
            .encode(0, &records, n as u32, 0, 1)
            .unwrap(),
    )
    .unwrap();
    drop(w);
    let z = zstd::bulk::compress(&records, 1).unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&raw_chunk(
            CHUNK_F_ZSTD | 0x0004,
            records.len(),
            n as u32,
            &z,
        ))
        .unwrap();
    let r = Reader::open(&path).unwrap();
    let last = r.chunks().last().unwrap().unwrap();
    assert_eq!(last.index, 1);
    let e = r.decode(&last).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("unsupported chunk flags 0x0005"), "{e}");
}
