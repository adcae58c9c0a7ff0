//! Format stability: small recordings written by format version 1.0 (row
//! chunks only) and 1.1 (a row chunk and a columnar chunk) are kept in
//! `tests/data/golden-v1.{0,1}.smctrace`. This build must read both back
//! exactly, and must still write the 1.1 file byte for byte from the same
//! input — so a dependency upgrade or feature flip that changes the bytes on
//! disk fails here instead of producing unreadable recordings.
//! Regenerate the 1.1 file (only with a deliberate format change):
//! SMCTRACE_BLESS=1. The 1.0 file is history: it is never rewritten.

use std::path::PathBuf;

use smctrace_format::event::{self, EventKind, Hdr};
use smctrace_format::layout::CHUNK_F_COLUMNS;
use smctrace_format::meta::*;
use smctrace_format::{
    synth::PingPong, ChunkCodec, ChunkEncoder, Reader, TrailerInput, Writer, WriterOptions,
};

fn fixture_v10() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden-v1.0.smctrace")
}

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden-v1.1.smctrace")
}

fn golden_meta() -> Metadata {
    Metadata {
        host: "lab-a".into(),
        kernel_release: "6.1.0-28-amd64".into(),
        boot_id: "5d1c8a3e-3f51-4c2b-9a66-0f3e2b7d9c10".into(),
        recorder_version: "smc-record 0.1.0".into(),
        command_line: vec![
            "smc-record".into(),
            "--payload".into(),
            "16".into(),
            "-o".into(),
            "golden.smctrace".into(),
        ],
        clock: ClockRef {
            monotonic_ns: 1_000_000_000,
            realtime_ns: 1_795_000_000_000_000_000,
        },
        probes: vec![
            ProbeInfo {
                name: "smc_sendmsg".into(),
                hook: "smc_sendmsg".into(),
                attach_type: "kprobe".into(),
                stage: "A".into(),
                attached: true,
                error: None,
            },
            ProbeInfo {
                name: "smcd_tx_ism_write".into(),
                hook: "smcd_tx_ism_write".into(),
                attach_type: "kretprobe".into(),
                stage: "D".into(),
                attached: false,
                error: Some("symbol not found".into()),
            },
        ],
        filters: Filters {
            pids: vec![],
            comms: vec!["smc-load".into()],
            ports: vec![5000],
            netns: vec![],
        },
        payload_bytes: 16,
        start_snapshot: Some(Snapshot {
            taken_monotonic_ns: 999_000_000,
            stats: vec![("smcr.tx_bytes".into(), 0), ("smcr.rx_bytes".into(), 0)],
            fallbacks: vec![FallbackCount {
                code: 0x0303_0000,
                count: 2,
                server: true,
            }],
            sockets: vec![SockSnapshot {
                family: 2,
                state: 1,
                mode: event::MODE_SMCR,
                local_addr: [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                local_port: 40000,
                remote_addr: [10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                remote_port: 5000,
                inode: 12345,
                uid: 0,
                local_token: 0x100,
                sndbuf_len: 65536,
                rmb_len: 65536,
                peer_rmbe_size: 65536,
                fallback_rsn: 0,
                peer_diagnosis: 0,
            }],
            links: vec![LinkSnapshot {
                lgr_id: 1,
                link_id: 1,
                ibname: "rxe_0".into(),
                ibport: 1,
                netdev: "eth1".into(),
                qpn: 17,
                peer_qpn: 18,
                state: 2,
            }],
            error: None,
        }),
        extra: vec![("event_abi".into(), "1".into())],
    }
}

/// The records: two ping-pong rounds on one connection, a payload record and
/// a record of a kind no build knows.
fn golden_records() -> Vec<Vec<u8>> {
    let (stream, _) = PingPong {
        seed: 3,
        connections: 1,
        ..Default::default()
    }
    .build(2);
    let mut recs = Vec::new();
    let mut off = 0;
    while off < stream.len() {
        let h: Hdr = bytemuck::pod_read_unaligned(&stream[off..off + event::HDR_LEN]);
        recs.push(stream[off..off + h.len as usize].to_vec());
        off += h.len as usize;
    }
    let p = event::Payload {
        hdr: Hdr {
            kind: EventKind::Payload as u16,
            len: 64,
            cpu: 0,
            flags: 0,
            ts_ns: 2_000_000_000,
            pid: 2000,
            tid: 2000,
        },
        sock: 0x1000,
        captured: 11,
        msg_len: 4096,
        ..Default::default()
    };
    let mut rec = event::as_bytes(&p).to_vec();
    rec.extend_from_slice(b"hello world\0\0\0\0\0");
    recs.push(rec);
    let unknown = Hdr {
        kind: 0x7fff,
        len: 32,
        cpu: 1,
        flags: 0,
        ts_ns: 2_000_000_001,
        pid: 1,
        tid: 1,
    };
    let mut rec = event::as_bytes(&unknown).to_vec();
    rec.extend_from_slice(&[0xab; 8]);
    recs.push(rec);
    recs
}

fn write(path: &std::path::Path) {
    let recs = golden_records();
    let mut w = Writer::create(
        path,
        &golden_meta(),
        WriterOptions {
            overwrite: true,
            ..Default::default()
        },
    )
    .unwrap();
    let half = recs.len() / 2;
    // The first chunk in rows, the second in columns.
    let mut encoders = [
        ChunkEncoder::new(3, ChunkCodec::Rows),
        ChunkEncoder::new(3, ChunkCodec::Columns),
    ];
    for (seq, part) in [&recs[..half], &recs[half..]].iter().enumerate() {
        let ts: Vec<u64> = part
            .iter()
            .map(|r| u64::from_le_bytes(r[8..16].try_into().unwrap()))
            .collect();
        let c = encoders[seq]
            .encode(
                seq as u64,
                &part.concat(),
                part.len() as u32,
                *ts.iter().min().unwrap(),
                *ts.iter().max().unwrap(),
            )
            .unwrap();
        w.append(&c).unwrap();
    }
    w.finish(TrailerInput {
        probe_hits: vec![("smc_sendmsg".into(), 2), ("smcd_tx_ism_write".into(), 0)],
        lost_per_cpu: vec![0, 1],
        end_monotonic_ns: 3_000_000_000,
        end_snapshot: None,
    })
    .unwrap();
}

#[test]
fn golden_files_read_back_exactly() {
    if std::env::var_os("SMCTRACE_BLESS").is_some() {
        write(&fixture());
    }
    for (path, version) in [(fixture_v10(), (1, 0)), (fixture(), (1, 1))] {
        read_back(&path, version);
    }
    let r = Reader::open(&fixture()).unwrap();
    let flags: Vec<u16> = r.chunks().map(|c| c.unwrap().flags).collect();
    assert_eq!(
        flags
            .iter()
            .map(|f| f & CHUNK_F_COLUMNS != 0)
            .collect::<Vec<_>>(),
        [false, true],
        "{flags:?}"
    );
}

fn read_back(path: &std::path::Path, version: (u16, u16)) {
    let r = Reader::open(path).unwrap();
    assert_eq!(r.version(), version);
    assert_eq!(r.metadata(), &golden_meta());
    assert!(r.recovery().clean_close);
    let t = r.trailer().unwrap();
    assert_eq!(t.lost_per_cpu, vec![0, 1]);
    assert_eq!(t.probe_hits[0], ("smc_sendmsg".to_string(), 2));
    assert_eq!(t.end_monotonic_ns, 3_000_000_000);
    assert_eq!(t.chunk_index.len(), 2);
    let recs = golden_records();
    let got: Vec<u8> = r
        .decoded_chunks()
        .flat_map(|d| d.unwrap().bytes().to_vec())
        .collect();
    assert_eq!(got, recs.concat());
    let kinds: Vec<_> = r
        .decoded_chunks()
        .flat_map(|d| {
            d.unwrap()
                .records()
                .map(|e| e.unwrap().hdr().kind)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(kinds.len(), recs.len());
    assert_eq!(*kinds.last().unwrap(), 0x7fff);
}

#[test]
fn header_and_metadata_bytes_are_stable() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("fresh.smctrace");
    write(&fresh);
    let a = std::fs::read(&fresh).unwrap();
    let b = std::fs::read(fixture()).unwrap();
    let hl = Reader::open(&fixture()).unwrap().header_len() as usize;
    assert_eq!(
        &a[..hl],
        &b[..hl],
        "header/metadata bytes differ from the version 1.1 fixture"
    );
    assert_eq!(a, b, "the chunks differ from the version 1.1 fixture");
    // The file header itself, field by field (SPEC.md "File header").
    assert_eq!(&b[..8], b"\x89SMCT\r\n\x1a");
    assert_eq!(u16::from_le_bytes([b[8], b[9]]), 1);
    assert_eq!(u16::from_le_bytes([b[10], b[11]]), 1);
    assert_eq!(
        u32::from_le_bytes(b[12..16].try_into().unwrap()) as usize,
        hl
    );
    // First chunk header right after it.
    assert_eq!(&b[hl..hl + 4], b"SCHK");
    assert_eq!(u16::from_le_bytes([b[hl + 4], b[hl + 5]]), 1);
    // Footer at the end.
    assert_eq!(&b[b.len() - 32..b.len() - 24], b"SMCTFOOT");
}
