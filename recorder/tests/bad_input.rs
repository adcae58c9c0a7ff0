//! The recorder's half of the bad-input table (docs/reliability.md): what
//! `smc-record record` says on a host that cannot record — no privileges, no
//! kernel BTF, no smc module — and for output paths it must refuse (a symbolic
//! link, an existing file). Each case is one stderr line and its own documented
//! exit code (docs/recorder.md). These run on the build host for real: it has
//! BTF and no smc module; the unprivileged and no-BTF cases are made with
//! `setpriv` and a private mount namespace.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_smc-record")
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("smc-record-bad-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn is_root() -> bool {
    // SAFETY: plain getter.
    unsafe { libc::geteuid() == 0 }
}

fn smc_loaded() -> bool {
    Path::new("/sys/kernel/btf/smc").exists()
}

/// One stderr line starting `smc-record: `, no panic; returns it.
fn one_line(o: &Output, what: &str) -> String {
    let e = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(
        e.lines().count(),
        1,
        "{what}: stderr is not one line: {e:?}"
    );
    assert!(e.starts_with("smc-record: "), "{what}: {e}");
    assert!(!e.contains("panicked"), "{what}: {e}");
    e
}

fn record(out: &Path, extra: &[&str]) -> Output {
    Command::new(bin())
        .args(["record", "-q", "--output", out.to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn no_smc_module_is_exit_12() {
    if smc_loaded() || !is_root() || !Path::new("/sys/kernel/btf/vmlinux").exists() {
        eprintln!(
            "SKIP: needs root, kernel BTF and no smc module (this host: smc {})",
            smc_loaded()
        );
        return;
    }
    let d = tmpdir("nosmc");
    let f = d.join("r.smctrace");
    let o = record(&f, &[]);
    let e = one_line(&o, "no smc module");
    assert_eq!(o.status.code(), Some(12), "{e}");
    assert!(
        e.contains("smc kernel module is not loaded") && e.contains("modprobe smc"),
        "{e}"
    );
    assert!(!f.exists(), "a refused recording left a file");
}

#[test]
fn missing_privileges_is_exit_10_naming_the_capabilities() {
    if !is_root() {
        // Already unprivileged: the same refusal, without setpriv.
        let d = tmpdir("noprivs-self");
        let o = record(&d.join("r.smctrace"), &[]);
        let e = one_line(&o, "unprivileged");
        assert_eq!(o.status.code(), Some(10), "{e}");
        return;
    }
    let d = tmpdir("noprivs");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    let f = d.join("r.smctrace");
    let o = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            bin(),
            "record",
            "-q",
            "--output",
        ])
        .arg(&f)
        .output()
        .expect("setpriv (util-linux) runs");
    let e = one_line(&o, "unprivileged");
    assert_eq!(o.status.code(), Some(10), "{e}");
    assert!(e.contains("missing: CAP_BPF, CAP_PERFMON"), "{e}");
    assert!(!f.exists());
}

#[test]
fn missing_kernel_btf_is_exit_11() {
    if !is_root() {
        eprintln!("SKIP: hiding /sys/kernel/btf needs root (a private mount namespace)");
        return;
    }
    let d = tmpdir("nobtf");
    let f = d.join("r.smctrace");
    // A private mount namespace where /sys/kernel/btf is an empty tmpfs: the
    // kernel looks as if it had no CONFIG_DEBUG_INFO_BTF.
    let script = format!(
        "mount -t tmpfs none /sys/kernel/btf && exec {} record -q --output {}",
        bin(),
        f.display()
    );
    let o = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    if !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("unshare:") {
        eprintln!(
            "SKIP: cannot make a mount namespace here: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        );
        return;
    }
    let e = one_line(&o, "no BTF");
    assert_eq!(o.status.code(), Some(11), "{e}");
    assert!(e.contains("/sys/kernel/btf/vmlinux missing"), "{e}");
}

#[test]
fn output_symlink_and_existing_file_are_refused_with_26() {
    let d = tmpdir("output");
    let target = d.join("target");
    let link = d.join("link.smctrace");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let o = record(&link, &[]);
    let e = one_line(&o, "symlink output");
    assert_eq!(o.status.code(), Some(26), "{e}");
    assert!(e.contains("symbolic link"), "{e}");
    assert!(!target.exists(), "the link's target was created");
    // --force never follows a symlink either
    let o = record(&link, &["--force"]);
    assert_eq!(
        o.status.code(),
        Some(26),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!target.exists());

    let existing = d.join("old.smctrace");
    std::fs::write(&existing, b"keep me").unwrap();
    let o = record(&existing, &[]);
    let e = one_line(&o, "existing output");
    assert_eq!(o.status.code(), Some(26), "{e}");
    assert!(e.contains("already exists") && e.contains("--force"), "{e}");
    assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");

    // --rotate / --flight write OUTPUT.NNNNNN.smctrace: a series left by an earlier run is refused.
    let base = d.join("ser.smctrace");
    let old = d.join("ser.000002.smctrace");
    std::fs::write(&old, b"keep me").unwrap();
    for args in [
        &["--flight", "1"][..],
        &["--max-size", "1M", "--rotate", "2"],
    ] {
        let o = record(&base, args);
        let e = one_line(&o, "earlier series");
        assert_eq!(o.status.code(), Some(26), "{args:?}: {e}");
        assert!(
            e.contains("ser.000002.smctrace") && e.contains("--force"),
            "{e}"
        );
    }
    assert_eq!(std::fs::read(&old).unwrap(), b"keep me");
    assert!(!base.exists(), "the series base name is never created");
}

#[test]
fn bad_command_line_is_exit_2() {
    let d = tmpdir("usage");
    let f = d.join("r.smctrace");
    for args in [
        &["--buffer", "3000"][..],
        &["--payload", "300"],
        &["--exclude", "no_such_probe"],
        // rotation and flight-recorder options
        &["--rotate", "3"],
        &["--max-size", "1M", "--rotate", "0"],
        &["--trigger", "fallback"],
        &["--flight", "0"],
        &["--flight", "1", "--max-size", "1M"],
        &["--flight", "1", "--trigger", "slow=5"],
        &["--flight", "1", "--trigger", "sometimes"],
        &["--flight", "1", "--trigger-post", "-1"],
    ] {
        let o = record(&f, args);
        assert_eq!(
            o.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"));
    }
}

#[test]
fn dump_of_a_bad_file_uses_the_format_exit_codes() {
    let d = tmpdir("dump");
    let empty = d.join("empty.smctrace");
    std::fs::write(&empty, b"").unwrap();
    let cases: [(&Path, i32); 3] = [(&empty, 21), (&d, 21), (&d.join("missing"), 20)];
    for (p, code) in cases {
        let o = Command::new(bin()).arg("dump").arg(p).output().unwrap();
        let e = one_line(&o, "dump");
        assert_eq!(o.status.code(), Some(code), "{}: {e}", p.display());
    }
}
