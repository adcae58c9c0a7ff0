//! The bad-input table of docs/reliability.md for `smc-analyze`: every way a
//! recording can be wrong gives one line on stderr and its own documented exit
//! code (docs/format.md, "Exit codes for file problems"), never a panic; and two
//! recordings that share no connection are refused with exit code 30.
//! Runs the real binary on the lab fixtures and on files damaged from them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

fn tmpdir(name: &str) -> PathBuf {
    common::tmpdir("bad", name)
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(rel)
}

fn analyze(args: &[&str]) -> Output {
    common::run(args, &[])
}

/// The one stderr line of a refused input, checked for shape.
fn one_line(o: &Output, what: &str) -> String {
    let e = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(
        e.lines().count(),
        1,
        "{what}: stderr is not one line: {e:?}"
    );
    assert!(e.starts_with("smc-analyze: "), "{what}: {e}");
    assert!(!e.contains("panicked"), "{what}: {e}");
    assert!(
        o.stdout.is_empty(),
        "{what}: printed to stdout although refused"
    );
    e
}

/// Effective uid 0, from /proc/self/status (no libc dependency in this crate).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|v| v.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn each_bad_recording_has_one_line_and_its_own_exit_code() {
    let d = tmpdir("table");
    let good = std::fs::read(fixture("pingpong/a-client.smctrace")).unwrap();

    let mut wrong_magic = good.clone();
    wrong_magic[1..5].copy_from_slice(b"PCAP");
    let wrong_magic_f = d.join("wrong-magic.smctrace");
    std::fs::write(&wrong_magic_f, &wrong_magic).unwrap();

    // Major version 2, header CRC fixed up so only the version is wrong.
    let mut future = good.clone();
    future[8..10].copy_from_slice(&2u16.to_le_bytes());
    let crc = crc32c(&future[..60]);
    future[60..64].copy_from_slice(&crc.to_le_bytes());
    let future_f = d.join("future.smctrace");
    std::fs::write(&future_f, &future).unwrap();

    let empty_f = d.join("empty.smctrace");
    std::fs::write(&empty_f, b"").unwrap();
    let dir_f = d.join("a-directory.smctrace");
    std::fs::create_dir(&dir_f).unwrap();
    let missing_f = d.join("missing.smctrace");

    // header intact, metadata CRC broken
    let mut bad_meta = good.clone();
    bad_meta[70] ^= 0xff;
    let bad_meta_f = d.join("bad-meta.smctrace");
    std::fs::write(&bad_meta_f, &bad_meta).unwrap();

    let table: [(&str, &Path, i32, &str); 6] = [
        (
            "wrong magic",
            &wrong_magic_f,
            21,
            "not an smctrace recording",
        ),
        ("future major version", &future_f, 22, "2."),
        ("zero-length file", &empty_f, 21, ""),
        ("directory given as file", &dir_f, 21, ""),
        ("missing file", &missing_f, 20, ""),
        ("corrupt metadata", &bad_meta_f, 23, ""),
    ];
    for (what, path, code, needle) in table {
        for cmd in ["info", "report"] {
            let o = analyze(&[cmd, path.to_str().unwrap()]);
            let e = one_line(&o, what);
            assert_eq!(o.status.code(), Some(code), "{cmd} on {what}: {e}");
            assert!(
                e.contains(path.file_name().unwrap().to_str().unwrap()),
                "{what}: the line names the file: {e}"
            );
            assert!(e.contains(needle), "{what}: {e}");
        }
    }
}

/// CRC32C (Castagnoli), bitwise: the header checksum of the format.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn unreadable_file_is_exit_20_for_an_unprivileged_user() {
    let d = tmpdir("perm");
    let f = d.join("secret.smctrace");
    std::fs::copy(fixture("pingpong/a-client.smctrace"), &f).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o000)).unwrap();
    if is_root() {
        // root reads a mode-000 file (CAP_DAC_OVERRIDE): that is the honest root
        // behaviour, and the file is analyzed normally.
        let o = analyze(&["info", f.to_str().unwrap()]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        // As nobody (setpriv drops every capability with the uid change) it is refused.
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        let o = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_smc-analyze"))
            .args(["info", f.to_str().unwrap()])
            .output();
        let Ok(o) = o else {
            eprintln!("SKIP: setpriv not available to run as an unprivileged user");
            return;
        };
        let e = one_line(&o, "unreadable file");
        assert_eq!(o.status.code(), Some(20), "{e}");
        assert!(e.to_lowercase().contains("permission denied"), "{e}");
    } else {
        let o = analyze(&["info", f.to_str().unwrap()]);
        let e = one_line(&o, "unreadable file");
        assert_eq!(o.status.code(), Some(20), "{e}");
    }
}

/// Two recordings that share no connection are not the two ends of one run:
/// one line naming both, and exit code 30 (nothing on stdout), for every
/// command that analyzes; each alone is analyzed as usual.
#[test]
fn unrelated_recordings_are_refused_with_their_own_code() {
    // A ping-pong client and a short-connection server: different runs and boots,
    // no connection in common.
    let a = fixture("pingpong/a-client.smctrace");
    let b = fixture("shortconn/b-server.smctrace");
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let d = tmpdir("unrelated");
    let csv = d.join("csv");
    for args in [
        vec!["report", a, b],
        vec!["report", "--json", a, b],
        vec!["export", "--csv", csv.to_str().unwrap(), a, b],
        vec!["check", "--fail-on-loss", a, b],
    ] {
        let o = analyze(&args);
        let e = one_line(&o, "unrelated recordings");
        assert_eq!(o.status.code(), Some(30), "{args:?}: {e}");
        assert!(e.contains("no connection in common"), "{e}");
        assert!(
            e.contains("pingpong/a-client.smctrace") && e.contains("shortconn/b-server.smctrace"),
            "{e}"
        );
    }
    for f in [a, b] {
        let o = analyze(&["report", f]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{f}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // the two ends of one run are paired as before
    let o = analyze(&[
        "report",
        fixture("pingpong/a-client.smctrace").to_str().unwrap(),
        fixture("pingpong/b-server.smctrace").to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A file cut at any point (power loss, a copy that stopped) is still read: up to
/// the header and metadata it is refused with its own code; from there on every
/// complete chunk before the cut is recovered, never more, and the analysis runs.
#[test]
fn a_recording_cut_anywhere_is_recovered_up_to_the_cut() {
    let d = tmpdir("cut");
    let good = std::fs::read(fixture("shortconn/a-client.smctrace")).unwrap();
    let full = smctrace_format::Reader::open(&fixture("shortconn/a-client.smctrace")).unwrap();
    let header_len = full.header_len() as usize;
    let total_events = full.recovery().events_ok;
    let f = d.join("cut.smctrace");
    let mut last_events = 0;
    let step = (good.len() / 97).max(1);
    let mut cuts: Vec<usize> = (1..good.len()).step_by(step).collect();
    cuts.extend([header_len - 1, header_len, header_len + 1, good.len() - 1]);
    cuts.sort();
    for cut in cuts {
        std::fs::write(&f, &good[..cut]).unwrap();
        match smctrace_format::Reader::open(&f) {
            Err(e) => {
                assert!(
                    cut < header_len,
                    "cut at {cut} (header ends at {header_len}) refused: {e}"
                );
                assert!(
                    matches!(e.exit_code(), 21 | 23),
                    "cut at {cut}: {e} (exit {})",
                    e.exit_code()
                );
            }
            Ok(r) => {
                let rec = r.recovery();
                assert!(!rec.clean_close, "cut at {cut} reads as clean");
                assert!(
                    rec.events_ok >= last_events,
                    "cut at {cut}: fewer events than a shorter cut"
                );
                assert!(rec.events_ok <= total_events);
                last_events = rec.events_ok;
                let text = smc_analyze::input::info(&f).unwrap();
                assert!(text.contains("NOT clean"), "cut at {cut}");
            }
        }
    }
    assert!(last_events > 0 && last_events <= total_events);
    // the report of a cut file succeeds through the binary too
    std::fs::write(&f, &good[..good.len() / 2]).unwrap();
    let o = analyze(&["report", "--json", f.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
