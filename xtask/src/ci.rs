//! The two commands a newcomer runs first (README): `cargo xtask test`, every test of the
//! project including the lab scenarios on real kernels, and `cargo xtask demo`, the main
//! job (record a real SMC-R workload in the lab and analyze it).
//!
//! Both start from a fresh Debian 12 machine as root: they install the Debian packages
//! the build and the lab need, so `.ci/run` is just `cargo xtask test`.

use crate::host::{self, say};
use crate::kernel::{self, Series};
use crate::scenario::{self, Scenario};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Debian packages the workspace build and its tests need (the lab adds its own):
/// clang + llvm compile the BPF programs, libbpf-dev gives their helper headers,
/// linux-libc-dev the `<linux/types.h>` the event header uses, gcc the C layout test.
pub const BUILD_PACKAGES: &[(&str, &str)] = &[
    ("clang", "/usr/bin/clang"),
    ("llvm", "/usr/bin/llvm-strip"),
    ("libbpf-dev", "/usr/include/bpf/bpf_helpers.h"),
    ("linux-libc-dev", "/usr/include/linux/types.h"),
    ("gcc", "/usr/bin/gcc"),
    ("tshark", "/usr/bin/tshark"), // smc-analyze's pcapng tests decode with it
    ("python3-pip", "/usr/bin/pip3"), // installs DuckDB for the Parquet cross-check (ensure_duckdb)
];

/// One lab run of the test suite: a scenario on a kernel, recorded or not.
struct LabCase {
    scenario: Scenario,
    kernel: Series,
    record: bool,
}

/// The lab part of `cargo xtask test`: every scenario on 6.12, recorded and analyzed, plus
/// the reliability scenarios (recorder killed, disk full, ring overload) and SMC-D over
/// loopback-ism with the patched module (recorded; kernel metrics against the BPF monitor); on
/// 6.1 (SMC-R through the lab's rxe fix module) every SMC-R scenario recorded and analyzed, and
/// the reliability scenarios, so one recorder build is proven on both kernels; on 7.3 (built
/// by the lab from Debian's source) every 6.12 scenario.
fn lab_cases() -> Vec<LabCase> {
    vec![
        LabCase {
            scenario: Scenario::Pingpong,
            kernel: Series::V6_12,
            record: true,
        },
        LabCase {
            scenario: Scenario::Bulk,
            kernel: Series::V6_12,
            record: true,
        },
        LabCase {
            scenario: Scenario::Shortconn,
            kernel: Series::V6_12,
            record: true,
        },
        LabCase {
            scenario: Scenario::Fallback,
            kernel: Series::V6_12,
            record: true,
        },
        // These record (or load other modules) and check their own evidence.
        LabCase {
            scenario: Scenario::Crash,
            kernel: Series::V6_12,
            record: false,
        },
        LabCase {
            scenario: Scenario::Diskfull,
            kernel: Series::V6_12,
            record: false,
        },
        LabCase {
            scenario: Scenario::Overload,
            kernel: Series::V6_12,
            record: false,
        },
        LabCase {
            scenario: Scenario::Flight,
            kernel: Series::V6_12,
            record: false,
        },
        LabCase {
            scenario: Scenario::SmcdLoopback,
            kernel: Series::V6_12,
            record: false,
        },
        LabCase {
            scenario: Scenario::Metrics,
            kernel: Series::V6_12,
            record: false,
        },
        LabCase {
            scenario: Scenario::Pingpong,
            kernel: Series::V6_1,
            record: true,
        },
        LabCase {
            scenario: Scenario::Bulk,
            kernel: Series::V6_1,
            record: true,
        },
        LabCase {
            scenario: Scenario::Shortconn,
            kernel: Series::V6_1,
            record: true,
        },
        LabCase {
            scenario: Scenario::Fallback,
            kernel: Series::V6_1,
            record: true,
        },
        LabCase {
            scenario: Scenario::Crash,
            kernel: Series::V6_1,
            record: false,
        },
        LabCase {
            scenario: Scenario::Diskfull,
            kernel: Series::V6_1,
            record: false,
        },
        LabCase {
            scenario: Scenario::Overload,
            kernel: Series::V6_1,
            record: false,
        },
        // 7.3, the lab's own build of Debian's newest source with SMC and DIBS: the same
        // scenarios as 6.12; SMC-D over the kernel's own DIBS loopback, `metrics` with the
        // series' smc.ko (kernel/patches/) built on top of the same kernel.
        LabCase {
            scenario: Scenario::Pingpong,
            kernel: Series::V7_3,
            record: true,
        },
        LabCase {
            scenario: Scenario::Bulk,
            kernel: Series::V7_3,
            record: true,
        },
        LabCase {
            scenario: Scenario::Shortconn,
            kernel: Series::V7_3,
            record: true,
        },
        LabCase {
            scenario: Scenario::Fallback,
            kernel: Series::V7_3,
            record: true,
        },
        LabCase {
            scenario: Scenario::Crash,
            kernel: Series::V7_3,
            record: false,
        },
        LabCase {
            scenario: Scenario::Diskfull,
            kernel: Series::V7_3,
            record: false,
        },
        LabCase {
            scenario: Scenario::Overload,
            kernel: Series::V7_3,
            record: false,
        },
        LabCase {
            scenario: Scenario::Flight,
            kernel: Series::V7_3,
            record: false,
        },
        LabCase {
            scenario: Scenario::SmcdLoopback,
            kernel: Series::V7_3,
            record: false,
        },
        LabCase {
            scenario: Scenario::Metrics,
            kernel: Series::V7_3,
            record: false,
        },
        LabCase {
            scenario: Scenario::KernelTests,
            kernel: Series::V7_3,
            record: false,
        },
    ]
}

fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// Install the build packages (root only; without root, say what is missing).
pub fn ensure_build_packages() -> Result<()> {
    if host::is_root() {
        return host::ensure_tools(BUILD_PACKAGES);
    }
    let missing: Vec<&str> = BUILD_PACKAGES
        .iter()
        .filter(|(_, f)| !Path::new(f).exists())
        .map(|(p, _)| *p)
        .collect();
    if !missing.is_empty() {
        bail!(
            "missing Debian packages {} (run as root to have them installed)",
            missing.join(" ")
        );
    }
    Ok(())
}

/// smc-analyze's Parquet test cross-checks its files with DuckDB's Python module when
/// `python3` has it: install it from PyPI as root if missing. Best effort: without it
/// that one test prints that it skipped.
fn ensure_duckdb() {
    let has = || {
        Command::new("python3")
            .args(["-c", "import duckdb"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if has() || !host::is_root() {
        return;
    }
    say("pip3 install duckdb (for smc-analyze's Parquet cross-check)");
    let ok = Command::new("pip3")
        .args(["install", "--quiet", "--break-system-packages", "duckdb"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok || !has() {
        say("duckdb not installed: the DuckDB cross-check of the Parquet export will be skipped");
    }
}

/// `cargo xtask test`: cargo test of the whole workspace, then the lab scenarios.
pub fn test(lab: bool) -> Result<i32> {
    let started = Instant::now();
    ensure_build_packages()?;
    if lab {
        if !host::is_root() {
            bail!("the lab scenarios need root (run as root, or pass --no-lab to run only cargo test)");
        }
        host::ensure_lab_host()?;
    }
    say("licence gate (cargo xtask licenses)");
    if crate::licenses::check()? != 0 {
        bail!("a shipped binary links a crate whose licence is not GPL-2.0-compatible (see above)");
    }
    ensure_duckdb();
    say("cargo test --workspace --all-features");
    let status = Command::new(cargo())
        .args(["test", "--workspace", "--all-features"])
        .current_dir(host::workspace_root())
        .status()
        .context("running cargo test")?;
    if !status.success() {
        bail!("cargo test --workspace --all-features failed ({status})");
    }
    // A newcomer's editor must never reformat files they did not touch; clippy shares
    // the build cache of the tests above.
    say("cargo fmt --check (workspace and fuzz/)");
    for args in [
        &["fmt", "--all", "--check"][..],
        &[
            "fmt",
            "--manifest-path",
            "fuzz/Cargo.toml",
            "--all",
            "--check",
        ][..],
    ] {
        let status = Command::new(cargo())
            .args(args)
            .current_dir(host::workspace_root())
            .status()
            .context("running cargo fmt")?;
        if !status.success() {
            bail!(
                "`cargo {}` failed: run `cargo fmt --all` (and in fuzz/)",
                args.join(" ")
            );
        }
    }
    say("cargo clippy --workspace --all-targets --all-features -- -D warnings");
    let status = Command::new(cargo())
        .args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ])
        .current_dir(host::workspace_root())
        .status()
        .context("running cargo clippy")?;
    if !status.success() {
        bail!("cargo clippy found warnings (see above)");
    }
    // The fuzz targets live outside the workspace (cargo-fuzz wants a crate of its own):
    // a type check keeps them building when the crates they call change.
    say("cargo clippy of the fuzz targets (fuzz/, -D warnings)");
    let status = Command::new(cargo())
        .args([
            "clippy",
            "--manifest-path",
            "fuzz/Cargo.toml",
            "--bins",
            "--locked",
            "--",
            "-D",
            "warnings",
        ])
        .current_dir(host::workspace_root())
        .status()
        .context("running cargo check on fuzz/")?;
    if !status.success() {
        bail!("the fuzz targets do not build or have clippy warnings ({status}): see above");
    }
    if !lab {
        say("lab scenarios not run (--no-lab)");
        return Ok(0);
    }
    host::cargo_build(&["smc-netlink", "smc-load", "smc-record", "smc-analyze"])?;
    let lab_started = Instant::now();
    let mut passed = 0;
    let mut failed = Vec::new();
    // Each kernel once, timed: a fresh machine downloads Debian's and builds the 7.x one
    // here. A kernel that cannot be had fails its scenarios, not the others.
    let mut kernels: Vec<(Series, std::result::Result<kernel::Kernel, String>)> = Vec::new();
    for case in lab_cases() {
        if kernels.iter().any(|(s, _)| *s == case.kernel) {
            continue;
        }
        let t = Instant::now();
        let k = kernel::ensure(case.kernel).map_err(|e| format!("{e:#}"));
        match &k {
            Ok(k) => say(&format!(
                "kernel {}: {} ({} {}) ready after {:.0} s",
                case.kernel.as_str(),
                k.kver,
                k.package,
                k.version,
                t.elapsed().as_secs_f64()
            )),
            Err(e) => eprintln!("lab: kernel {}: {e}", case.kernel.as_str()),
        }
        kernels.push((case.kernel, k));
    }
    if kernels.iter().any(|(s, k)| s.lab_built() && k.is_ok()) {
        say(
            "the kernel series (kernel/patches/): git am, checkpatch --strict, W=1 build per patch",
        );
        let t = Instant::now();
        match kernel::check_series() {
            Ok(()) => say(&format!(
                "kernel series checked in {:.0} s",
                t.elapsed().as_secs_f64()
            )),
            Err(e) => {
                eprintln!("lab: {e:#}");
                failed.push("kernel series check (git am, checkpatch, W=1)".to_string());
            }
        }
    }
    // The recorder's BTF tests skipped in `cargo test` above on a machine whose lab cache
    // was empty; now that every kernel is there, they run and must not skip.
    if kernels.iter().all(|(_, k)| k.is_ok()) {
        say("smc-record's BTF tests on every lab kernel (SMCTRACE_BTF_REQUIRED=1)");
        let status = Command::new(cargo())
            .args(["test", "-p", "smc-record", "--", "offsets::", "loader::"])
            .env("SMCTRACE_BTF_REQUIRED", "1")
            .current_dir(host::workspace_root())
            .status()
            .context("running cargo test -p smc-record")?;
        if !status.success() {
            failed.push("smc-record BTF tests on the lab kernels".to_string());
        }
    }
    for case in lab_cases() {
        let name = format!(
            "{} on {}{}",
            case.scenario.name(),
            case.kernel.as_str(),
            if case.record { " (recorded)" } else { "" }
        );
        say(&format!("=== lab scenario {name}"));
        let k = match kernels.iter().find(|(s, _)| *s == case.kernel) {
            Some((_, Ok(k))) => k,
            _ => {
                failed.push(format!("{name} (no kernel)"));
                continue;
            }
        };
        match run_case(&case, k) {
            Ok(0) => passed += 1,
            Ok(code) => failed.push(format!("{name} (exit {code})")),
            Err(e) => {
                eprintln!("lab: {name}: {e:#}");
                failed.push(name);
            }
        }
    }
    say(&format!(
        "lab scenarios took {:.0} s; the whole test run {:.0} s",
        lab_started.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    ));
    // The plain closing line CI reads, for the lab part (cargo test printed its own).
    println!("lab: {passed} passed, {} failed", failed.len());
    if !failed.is_empty() {
        eprintln!("lab: failed: {}", failed.join("; "));
        return Ok(1);
    }
    Ok(0)
}

fn case_out(case: &LabCase) -> Result<PathBuf> {
    let dir = host::target_dir().join("lab").join("test").join(format!(
        "{}-{}",
        case.scenario.name(),
        case.kernel.as_str()
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn run_case(case: &LabCase, k: &kernel::Kernel) -> Result<i32> {
    let out = case_out(case)?;
    let opts = scenario::Options {
        record: case.record,
        timeout: Duration::from_secs(180),
        memory_mb: 1024,
        smcctl: host::debug_bin("smcctl"),
        smc_modules: None,
    };
    let code = scenario::run(case.scenario, k, &out, &opts)?;
    if code != 0 || !case.record {
        return Ok(code);
    }
    analyze_recordings(case, &out)
}

/// A recorded scenario must also analyze: `smc-analyze report` over both peers'
/// recordings succeeds and its JSON names the connections the scenario made.
fn analyze_recordings(case: &LabCase, out: &Path) -> Result<i32> {
    let files: Vec<PathBuf> = ["a", "b"]
        .iter()
        .map(|r| out.join(format!("{}-{r}.smctrace", case.scenario.name())))
        .collect();
    for f in &files {
        if !f.exists() {
            bail!("recording {} missing", f.display());
        }
    }
    let analyze = host::debug_bin("smc-analyze");
    let o = Command::new(&analyze)
        .arg("report")
        .arg("--json")
        .args(&files)
        .output()
        .with_context(|| format!("running {}", analyze.display()))?;
    if !o.status.success() {
        bail!(
            "smc-analyze report failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    let report: serde_json::Value =
        serde_json::from_slice(&o.stdout).context("smc-analyze report --json is not JSON")?;
    std::fs::write(out.join("report.json"), &o.stdout).context("writing report.json")?;
    let problems = crate::verify::recorded_scenario(case.scenario, case.kernel, &report, out);
    for p in &problems {
        eprintln!("lab: {}: analysis: {p}", case.scenario.name());
    }
    Ok(if problems.is_empty() { 0 } else { 1 })
}

/// `cargo xtask demo`: record both peers of an SMC-R ping-pong in the lab and print the
/// analyzer's report of the two recordings.
pub fn demo(out: Option<&Path>) -> Result<i32> {
    ensure_build_packages()?;
    if !host::is_root() {
        bail!("the demo boots the lab, which needs root");
    }
    host::ensure_lab_host()?;
    host::cargo_build(&["smc-netlink", "smc-load", "smc-record", "smc-analyze"])?;
    let k = kernel::ensure(Series::V6_12)?;
    let out = match out {
        Some(d) => d.to_path_buf(),
        None => host::workspace_root().join("lab-out").join("demo"),
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let opts = scenario::Options {
        record: true,
        timeout: Duration::from_secs(180),
        memory_mb: 1024,
        smcctl: host::debug_bin("smcctl"),
        smc_modules: None,
    };
    let code = scenario::run(Scenario::Pingpong, &k, &out, &opts)?;
    if code != 0 {
        return Ok(code);
    }
    let files = [
        out.join("pingpong-a.smctrace"),
        out.join("pingpong-b.smctrace"),
    ];
    say(&format!(
        "recordings: {} {}",
        files[0].display(),
        files[1].display()
    ));
    let analyze = host::debug_bin("smc-analyze");
    let status = Command::new(&analyze)
        .arg("report")
        .args(&files)
        .status()
        .context("running smc-analyze")?;
    Ok(status.code().unwrap_or(1))
}
