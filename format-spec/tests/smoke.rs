//! Minimal write-then-read of a recording through the public API.
use smctrace_format::{encode_chunk, event, Metadata, Reader, TrailerInput, Writer, WriterOptions};

#[test]
fn write_read_roundtrip_small() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.smctrace");
    let meta = Metadata {
        host: "h".into(),
        payload_bytes: 0,
        ..Default::default()
    };
    let mut w = Writer::create(&path, &meta, WriterOptions::default()).unwrap();
    let mut rec = event::RxWake::default();
    rec.hdr.kind = event::EventKind::RxWake as u16;
    rec.hdr.len = std::mem::size_of::<event::RxWake>() as u16;
    rec.hdr.ts_ns = 42;
    rec.sock = 7;
    let c = encode_chunk(0, event::as_bytes(&rec), 1, 42, 42, 1).unwrap();
    w.append(&c).unwrap();
    let s = w
        .finish(TrailerInput {
            lost_per_cpu: vec![0, 3],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(s.events, 1);
    let r = Reader::open(&path).unwrap();
    assert_eq!(r.metadata().host, "h");
    assert!(r.recovery().clean_close);
    assert_eq!(r.trailer().unwrap().lost_total(), 3);
    let chunks: Vec<_> = r.chunks().collect::<Result<_, _>>().unwrap();
    assert_eq!(chunks.len(), 1);
    let d = r.decode(&chunks[0]).unwrap();
    let evs: Vec<_> = d.records().collect::<Result<_, _>>().unwrap();
    assert_eq!(evs, vec![event::EventRef::RxWake(rec)]);
}
