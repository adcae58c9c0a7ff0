//! A full disk, simulated with RLIMIT_FSIZE (posix_fallocate then fails with
//! EFBIG as it would with ENOSPC): the append that needs the space fails with
//! an I/O error, nothing faults, the writer can still close the file cleanly
//! if the trailer fits, and every chunk appended before is readable.
//! Alone in its own test binary because the limit is process-wide.

use smctrace_format::synth::PingPong;
use smctrace_format::{
    encode_chunk, event, FormatError, Metadata, Reader, TrailerInput, Writer, WriterOptions,
};

#[test]
fn append_past_the_space_limit_fails_cleanly_and_the_file_still_closes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.smctrace");
    let limit: u64 = 1 << 20;
    // SAFETY: plain libc calls; this binary has no other tests.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let rl = libc::rlimit {
            rlim_cur: limit,
            rlim_max: libc::RLIM_INFINITY,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &rl), 0);
    }
    let mut w = Writer::create(
        &path,
        &Metadata::default(),
        WriterOptions {
            extent_bytes: 256 << 10,
            ..Default::default()
        },
    )
    .unwrap();
    let mut g = PingPong::default().generator();
    let mut seq = 0u64;
    let mut appended = Vec::new();
    let err = loop {
        // Incompressible-ish chunks so the limit is reached quickly.
        let mut raw = Vec::new();
        let n = g.next_round(&mut raw);
        let mut noise = smctrace_format::synth::Rng::new(seq + 1);
        let mut rec = event::RxWake::default();
        rec.hdr.kind = 0x7fff; // unknown kind: carries random bytes
        rec.hdr.len = 32;
        let mut extra = 0u32;
        for _ in 0..2000 {
            rec.sock = noise.next_u64();
            raw.extend_from_slice(event::as_bytes(&rec));
            extra += 1;
        }
        let c = encode_chunk(seq, &raw, n as u32 + extra, 0, 0, 1).unwrap();
        match w.append(&c) {
            Ok(()) => appended.push(raw),
            Err(e) => break e,
        }
        seq += 1;
        assert!(seq < 1000, "the space limit was never hit");
    };
    assert!(matches!(err, FormatError::Io { .. }), "{err}");
    assert!(err.to_string().contains("posix_fallocate"), "{err}");
    assert!(w.bytes_written() <= limit);
    let closed = w.finish(TrailerInput::default());
    eprintln!(
        "append failed with: {err}; finish: {:?}",
        closed.as_ref().map(|s| s.bytes)
    );
    unsafe {
        let rl = libc::rlimit {
            rlim_cur: libc::RLIM_INFINITY,
            rlim_max: libc::RLIM_INFINITY,
        };
        libc::setrlimit(libc::RLIMIT_FSIZE, &rl);
    }
    let r = Reader::open(&path).unwrap();
    assert_eq!(r.recovery().clean_close, closed.is_ok(), "{closed:?}");
    assert_eq!(r.recovery().chunks_ok as usize, appended.len());
    for (c, raw) in r.chunks().zip(&appended) {
        assert_eq!(r.decode(&c.unwrap()).unwrap().bytes(), &raw[..]);
    }
    assert!(!appended.is_empty());
}
