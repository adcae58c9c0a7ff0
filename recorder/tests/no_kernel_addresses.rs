//! Kernel addresses never reach a recording in the clear (docs/security.md):
//! every pointer-derived field the probes write — `sock` (the smc_sock) in
//! every record and `lgr` (the link group) in CONN_INFO and LINK_DOWN — is the
//! per-recording keyed transform of recorder-ebpf's `sock_id()`. Checked on the
//! lab's real recordings in fixtures/: no such value lies in the x86-64 kernel
//! half (>= 0xffff800000000000), where every slab object lives, and the two
//! peers of a run (separate keys) share no id although they saw the same
//! link group. (A transformed value lands there with probability 2^-17.)

use std::collections::HashSet;
use std::path::Path;

use smctrace_format::event::EventRef;
use smctrace_format::Reader;

const KERNEL_HALF: u64 = 0xffff_8000_0000_0000;

/// (sock ids, lgr ids) of one recording; panics on any value in the kernel half.
fn ids(path: &Path) -> (HashSet<u64>, HashSet<u64>) {
    let r = Reader::open(path).unwrap();
    let (mut socks, mut lgrs) = (HashSet::new(), HashSet::new());
    for c in r.decoded_chunks() {
        let c = c.unwrap();
        for ev in c.records() {
            let ev = ev.unwrap();
            let lgr = match &ev {
                EventRef::ConnInfo(e) => Some(e.lgr),
                EventRef::LinkDown(e) => Some(e.lgr),
                _ => None,
            };
            for v in ev.sock().into_iter().chain(lgr) {
                assert!(
                    v < KERNEL_HALF,
                    "{}: value {v:#x} looks like a kernel address",
                    path.display()
                );
            }
            if let Some(s) = ev.sock().filter(|s| *s != 0) {
                socks.insert(s);
            }
            if let Some(l) = lgr.filter(|l| *l != 0) {
                lgrs.insert(l);
            }
        }
    }
    let extra = &r.metadata().extra;
    assert!(
        extra
            .iter()
            .any(|(k, v)| k == "sock_id" && v.contains("per-recording random key")),
        "{}: metadata does not name the keyed transform: {extra:?}",
        path.display()
    );
    (socks, lgrs)
}

#[test]
fn sock_and_lgr_are_keyed_transforms_in_the_lab_recordings() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
    let mut checked = 0;
    for run in ["pingpong", "bulk", "shortconn", "fallback"] {
        let (a, b) = (
            root.join(run).join("a-client.smctrace"),
            root.join(run).join("b-server.smctrace"),
        );
        if !a.exists() || !b.exists() {
            continue;
        }
        let (sa, la) = ids(&a);
        let (sb, lb) = ids(&b);
        assert!(!sa.is_empty() && !sb.is_empty(), "{run}: no socket ids");
        // The kernel address of a peer's smc_sock may even coincide (two guests, same
        // kernel, same boot path); the keys differ, so the ids must not.
        assert!(
            sa.is_disjoint(&sb),
            "{run}: the two recordings share socket ids"
        );
        assert!(
            la.is_disjoint(&lb),
            "{run}: the two recordings share lgr ids"
        );
        checked += 1;
    }
    assert!(
        checked >= 3,
        "fixtures missing: only {checked} runs checked"
    );
}
