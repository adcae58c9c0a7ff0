//! Property tests: random event streams (every known kind, payloads of any
//! length, unknown kinds, longer-than-known bodies) cut into random chunks at
//! random zstd levels, and random metadata, come back byte for byte and
//! parse to the same events.

mod common;

use proptest::prelude::*;
use smctrace_format::event::{self, EventKind, EventRef, Hdr};
use smctrace_format::layout::pad8;
use smctrace_format::meta::*;
use smctrace_format::{encode_chunk, Reader, TrailerInput, Writer, WriterOptions};

/// One record: kind selector, timestamp, filler bytes for the body, extra tail.
fn record() -> impl Strategy<Value = Vec<u8>> {
    (
        0usize..EventKind::ALL.len() + 2,
        any::<u64>(),
        proptest::collection::vec(any::<u8>(), 0..400),
        0usize..3,
    )
        .prop_map(|(sel, ts, fill, extra_words)| {
            let (kind, mut len) = if sel < EventKind::ALL.len() {
                let k = EventKind::ALL[sel];
                (k as u16, k.fixed_len())
            } else {
                // A kind this build does not know, of some length.
                (1000 + sel as u16, event::HDR_LEN + 8 * (fill.len() % 5))
            };
            let mut rec: Vec<u8> = fill.iter().copied().cycle().take(len).collect();
            rec.resize(len, 0);
            if kind == EventKind::Payload as u16 {
                let captured = fill.len().min(event::PAYLOAD_MAX);
                rec[40..44].copy_from_slice(&(captured as u32).to_le_bytes());
                rec.extend_from_slice(&fill[..captured]);
                len = pad8(rec.len());
                rec.resize(len, 0);
            } else {
                // Minor-version growth: a longer body than this build knows.
                len += 8 * extra_words;
                rec.resize(len, 0xee);
            }
            let hdr = Hdr {
                kind,
                len: len as u16,
                cpu: (ts % 64) as u16,
                flags: 0,
                ts_ns: ts,
                pid: 1,
                tid: 2,
            };
            rec[..event::HDR_LEN].copy_from_slice(event::as_bytes(&hdr));
            rec
        })
}

fn string() -> impl Strategy<Value = String> {
    "\\PC{0,24}"
}

fn snapshot() -> impl Strategy<Value = Snapshot> {
    (
        any::<u64>(),
        proptest::collection::vec((string(), any::<u64>()), 0..4),
        proptest::collection::vec((any::<u32>(), any::<u64>(), any::<bool>()), 0..3),
        proptest::collection::vec(
            (any::<[u8; 16]>(), any::<u16>(), any::<u64>(), any::<u8>()),
            0..3,
        ),
        proptest::collection::vec((any::<u32>(), string(), any::<u32>()), 0..3),
        proptest::option::of(string()),
    )
        .prop_map(|(t, stats, fb, socks, links, error)| Snapshot {
            taken_monotonic_ns: t,
            stats,
            fallbacks: fb
                .into_iter()
                .map(|(code, count, server)| FallbackCount {
                    code,
                    count,
                    server,
                })
                .collect(),
            sockets: socks
                .into_iter()
                .map(|(a, p, inode, st)| SockSnapshot {
                    local_addr: a,
                    local_port: p,
                    inode,
                    state: st,
                    mode: st % 4,
                    ..Default::default()
                })
                .collect(),
            links: links
                .into_iter()
                .map(|(id, name, qpn)| LinkSnapshot {
                    lgr_id: id,
                    ibname: name.clone(),
                    netdev: name,
                    qpn,
                    ..Default::default()
                })
                .collect(),
            error,
        })
}

fn metadata() -> impl Strategy<Value = Metadata> {
    (
        (
            string(),
            string(),
            string(),
            string(),
            proptest::collection::vec(string(), 0..5),
        ),
        (any::<u64>(), any::<u64>(), any::<u32>()),
        proptest::collection::vec(
            (
                string(),
                string(),
                any::<bool>(),
                proptest::option::of(string()),
            ),
            0..5,
        ),
        (
            proptest::collection::vec(any::<u32>(), 0..3),
            proptest::collection::vec(any::<u16>(), 0..3),
        ),
        proptest::option::of(snapshot()),
        proptest::collection::vec((string(), string()), 0..4),
    )
        .prop_map(
            |(
                (host, kernel, boot, ver, cmd),
                (mono, real, payload),
                probes,
                (pids, ports),
                snap,
                extra,
            )| Metadata {
                host,
                kernel_release: kernel,
                boot_id: boot,
                recorder_version: ver,
                command_line: cmd,
                clock: ClockRef {
                    monotonic_ns: mono,
                    realtime_ns: real,
                },
                probes: probes
                    .into_iter()
                    .map(|(name, hook, attached, error)| ProbeInfo {
                        name,
                        hook,
                        attach_type: "kprobe".into(),
                        stage: String::new(),
                        attached,
                        error,
                    })
                    .collect(),
                filters: Filters {
                    pids,
                    comms: vec!["x".into()],
                    ports,
                    netns: vec![1],
                },
                payload_bytes: payload,
                start_snapshot: snap,
                extra,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn events_round_trip(
        recs in proptest::collection::vec(record(), 0..300),
        cuts in proptest::collection::vec(1usize..80, 1..20),
        level in 1i32..6,
        finish in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.smctrace");
        let mut w = Writer::create(&path, &common::meta(), WriterOptions { extent_bytes: 64 << 10, ..Default::default() }).unwrap();
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        let mut i = 0;
        let mut c = 0;
        while i < recs.len() {
            let n = cuts[c % cuts.len()].min(recs.len() - i);
            let group = &recs[i..i + n];
            let raw: Vec<u8> = group.concat();
            let ts: Vec<u64> = group.iter().map(|r| u64::from_le_bytes(r[8..16].try_into().unwrap())).collect();
            let ch = encode_chunk(c as u64, &raw, n as u32, *ts.iter().min().unwrap(), *ts.iter().max().unwrap(), level).unwrap();
            w.append(&ch).unwrap();
            chunks.push(raw);
            i += n;
            c += 1;
        }
        if finish {
            w.finish(TrailerInput { lost_per_cpu: vec![c as u64], ..Default::default() }).unwrap();
        } else {
            drop(w);
        }

        let r = Reader::open(&path).unwrap();
        prop_assert_eq!(r.recovery().clean_close, finish);
        prop_assert_eq!(r.recovery().chunks_ok as usize, chunks.len());
        prop_assert_eq!(r.recovery().events_ok as usize, recs.len());
        prop_assert!(r.recovery().stopped_at.is_none());
        if finish {
            let t = r.trailer().unwrap();
            prop_assert_eq!(t.chunk_index.len(), chunks.len());
            prop_assert_eq!(t.total_events as usize, recs.len());
            for (e, c) in t.chunk_index.iter().zip(r.chunks()) {
                prop_assert_eq!(e.offset, c.unwrap().offset);
            }
        }
        let mut k = 0;
        for (idx, c) in r.chunks().enumerate() {
            let d = r.decode(&c.unwrap()).unwrap();
            prop_assert_eq!(d.bytes(), &chunks[idx][..]);
            for ev in d.records() {
                let ev = ev.unwrap();
                let (want, len) = EventRef::parse(&recs[k]).unwrap();
                prop_assert_eq!(len, recs[k].len());
                prop_assert_eq!(ev, want);
                if u16::from_le_bytes([recs[k][0], recs[k][1]]) >= 1000 {
                    prop_assert!(matches!(ev, EventRef::Unknown(_)), "unknown kinds are skipped, not misread");
                }
                k += 1;
            }
        }
        prop_assert_eq!(k, recs.len());
    }

    #[test]
    fn metadata_and_trailer_round_trip(meta in metadata(), end in proptest::option::of(snapshot()), lost in proptest::collection::vec(any::<u64>(), 0..8)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.smctrace");
        let w = Writer::create(&path, &meta, WriterOptions::default()).unwrap();
        let hits = vec![("smc_sendmsg".to_string(), 3u64)];
        w.finish(TrailerInput { probe_hits: hits.clone(), lost_per_cpu: lost.clone(), end_monotonic_ns: 77, end_snapshot: end.clone() }).unwrap();
        let r = Reader::open(&path).unwrap();
        prop_assert_eq!(r.metadata(), &meta);
        let t = r.trailer().unwrap();
        prop_assert_eq!(&t.probe_hits, &hits);
        prop_assert_eq!(&t.lost_per_cpu, &lost);
        prop_assert_eq!(t.end_monotonic_ns, 77);
        prop_assert_eq!(&t.end_snapshot, &end);
        prop_assert!(t.clean_close);
        prop_assert_eq!(r.chunks().count(), 0);
    }
}
