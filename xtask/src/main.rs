//! `cargo xtask`: the project's automation that is not a product, today the QEMU lab.
//!
//! The lab boots Debian's own kernels in two TCG guests linked by soft-RoCE (rdma_rxe), so
//! that SMC-R really runs between them on a machine whose kernel has no SMC at all.
//! `lab run SCENARIO` is the end-to-end test of the project (CI runs every scenario);
//! `lab exec` is how the other parts try their binaries in real kernels. See docs/lab.md.

mod bench;
mod ci;
mod host;
mod initramfs;
mod kernel;
mod kernel_tests;
mod licenses;
mod reliability;
mod scenario;
mod series_bench;
mod smcd_scenarios;
mod verify;
mod vm;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use host::say;
use kernel::Series;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "smctrace project automation",
    version
)]
struct Cli {
    #[command(subcommand)]
    cmd: Top,
}

#[derive(Subcommand, Debug)]
enum Top {
    /// The QEMU lab: real SMC-R between two guests running Debian's own kernels.
    #[command(subcommand)]
    Lab(LabCmd),
    /// Every test: `cargo fmt --check`, clippy, `cargo test` of the workspace, then the lab
    /// scenarios on Debian 6.12 and 6.1 and on the lab's own 7.3 build (recorded runs are
    /// analyzed and checked). Installs the Debian packages it needs.
    Test {
        /// Only `cargo test`; no lab (the lab needs root and QEMU).
        #[arg(long)]
        no_lab: bool,
    },
    /// Fail if a crate linked into smc-record, smc-analyze, smc-load or smcctl has a licence
    /// that is not GPL-2.0-compatible (see docs/ci.md).
    Licenses,
    /// The main job: record both peers of an SMC-R ping-pong between two Debian 6.12
    /// guests with smc-record, then print smc-analyze's report of the two recordings.
    Demo {
        /// Where the recordings and lab logs go (default: lab-out/demo).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Benchmarks, printed as tables: recorder overhead against perf in the lab, per-event
    /// BPF cost, the userspace pipeline, the analyzer. See docs/performance.md.
    Bench {
        /// recorder | bpf | lab (recorder + bpf) | series | pipeline | analyzer | all
        #[arg(value_enum, default_value = "all")]
        part: bench::Part,
        /// Rounds of the interleaved tracer comparison (median over rounds).
        #[arg(long, default_value_t = 5)]
        runs: u32,
        /// Ping-pong messages per run.
        #[arg(long, default_value_t = 2000)]
        count: u32,
        /// Seconds of bulk transfer per run.
        #[arg(long, default_value_t = 3)]
        bulk_secs: u32,
        /// Sizes of the analyzer's synthetic recordings (comma-separated; k/M/G suffixes).
        #[arg(long, value_delimiter = ',', value_parser = bench::parse_count, default_value = "10M,30M")]
        events: Vec<u64>,
        /// Runs of each analyzer command per size (median printed).
        #[arg(long, default_value_t = 3)]
        analyzer_runs: u32,
        /// Output directory (default target/bench/run-<time>).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// Kernel series the guests boot: Debian's 6.12 or 6.1 packages, or 7.3, which the lab
    /// builds from Debian's newest 7.x source with SMC and DIBS (once; see docs/lab.md).
    #[arg(long, value_enum, default_value = "6.12")]
    kernel: Series,
    /// Host directory shared read-write with both guests as /out (default: a new
    /// target/lab/<name>-<time> directory). Serial logs and outputs are kept there.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Seconds after boot at which each guest's watchdog ends it (the host kills QEMU 20 s
    /// later if it is still there).
    #[arg(long, value_name = "SECS", default_value_t = 180)]
    timeout: u64,
    /// Memory of each guest in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    memory: u32,
    /// Load smc.ko and smc_diag.ko from this host directory instead of the kernel's own
    /// (an out-of-tree build against the guest kernel, e.g. kernel/module/build.sh's).
    #[arg(long, value_name = "DIR")]
    smc_modules: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum LabCmd {
    /// Run one scenario and check its assertions; exit 0 only if they all hold.
    ///
    /// Scenarios: pingpong (SMC-R ping-pong of small messages), bulk (SMC-R stream of 1 MiB
    /// writes), shortconn (many short SMC-R connections), fallback (the server has no UEID,
    /// so connections fall back to TCP with the decoded reason); one guest on the patched
    /// smc.ko of kernel/module/build.sh (built and cached first): smcd-loopback (SMC-D
    /// recorded and analyzed), metrics (slow reader: kernel metrics against the BPF monitor).
    /// The workspace binaries they use (smcctl, smc-load, and smc-record with --record) are
    /// built first.
    Run {
        /// pingpong | bulk | shortconn | fallback | smcd-loopback | metrics | all (each of the
        /// first four in turn, then "N passed, N failed")
        scenario: String,
        #[command(flatten)]
        common: Common,
        /// Record both guests with smc-record during the workload, into
        /// <out>/<scenario>-<a|b>.smctrace.
        #[arg(long)]
        record: bool,
        /// Do not run `cargo build` for the binaries the scenario uses.
        #[arg(long)]
        no_build: bool,
    },
    /// Boot guest A (client role, 10.77.0.1) and, with --b, guest B (server role, 10.77.0.2),
    /// do the standard SMC-R setup and run shell commands in them.
    ///
    /// The guests see the host's root filesystem read-only at its usual paths (so
    /// /work/main/target/debug/smcctl runs as it is), the --out DIR read-write at /out, and
    /// have SMCTRACE_ROLE=a|b, SMCTRACE_PEER (the other guest's address), SMCTRACE_OUT=/out,
    /// SMCTRACE_KERNEL (uname -r) and SMCTRACE_READY_FILE in their environment; commands run
    /// in the directory `cargo xtask` was started from (so target/debug/... works).
    /// B's commands start first; A's start once B is ready: B created $SMCTRACE_READY_FILE,
    /// or B has a listening TCP socket (AF_SMC listeners count), or B's commands ended, or
    /// 15 s passed. B's commands are stopped (SIGTERM) 5 s after A's ended. Each guest's
    /// output is printed with an `[A] `/`[B] ` prefix; the exit status is non-zero if the
    /// commands of either guest (their last command, as sh runs them) failed.
    Exec {
        #[command(flatten)]
        common: Common,
        /// Skip the SMC setup (modules, rxe0, UEID, PNET); the network is set up anyway.
        #[arg(long)]
        no_smc_setup: bool,
        /// Shell commands run by /bin/sh in guest A.
        #[arg(long = "a", value_name = "SHELL CMDS")]
        a: String,
        /// Shell commands run by /bin/sh in guest B (without it, only guest A boots).
        #[arg(long = "b", value_name = "SHELL CMDS")]
        b: Option<String>,
    },
    /// Download and unpack a lab kernel into the cache without booting anything.
    Fetch {
        #[arg(long, value_enum, default_value = "6.12")]
        kernel: Series,
    },
}

fn main() {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("lab: error: {e:#}");
            std::process::exit(1);
        }
    }
}

fn dispatch(cli: Cli) -> Result<i32> {
    let cmd = match cli.cmd {
        Top::Lab(cmd) => cmd,
        Top::Test { no_lab } => return ci::test(!no_lab),
        Top::Demo { out } => return ci::demo(out.as_deref()),
        Top::Licenses => return licenses::check(),
        Top::Bench {
            part,
            runs,
            count,
            bulk_secs,
            events,
            analyzer_runs,
            out,
        } => {
            return bench::run(&bench::Options {
                part,
                runs,
                count,
                bulk_secs,
                events,
                analyzer_runs,
                out,
            })
        }
    };
    match cmd {
        LabCmd::Fetch { kernel } => {
            prepare_host()?;
            let k = kernel::ensure(kernel)?;
            say(&format!(
                "{} {} (kernel {}) ready in {}",
                k.package,
                k.version,
                k.kver,
                k.dir.display()
            ));
            Ok(0)
        }
        LabCmd::Exec {
            common,
            no_smc_setup,
            a,
            b,
        } => {
            prepare_host()?;
            let k = kernel::ensure(common.kernel)?;
            let smc_modules = check_smc_modules(common.smc_modules.as_deref(), &k)?;
            let out = out_dir(common.out.as_deref(), "exec")?;
            let smcctl = smcctl_path();
            if !no_smc_setup && !smcctl.exists() {
                bail!(
                    "{} not found: the SMC setup registers the UEID with it; build it with \
                     `cargo build -p smc-netlink`, or pass --no-smc-setup",
                    smcctl.display()
                );
            }
            let extra_modules = if !no_smc_setup && k.series.needs_rxe_fix() {
                vec![kernel::ensure_rxe_fix(&k)?]
            } else {
                Vec::new()
            };
            let spec = vm::Spec {
                kernel: k.clone(),
                out: out.clone(),
                a_cmds: a,
                b_cmds: b,
                smc_setup: !no_smc_setup,
                smc_modules,
                timeout: Duration::from_secs(common.timeout),
                smcctl,
                extra_modules,
                memory_mb: common.memory,
                echo: true,
            };
            say(&format!(
                "kernel {} ({} {}), output in {}",
                k.kver,
                k.package,
                k.version,
                out.display()
            ));
            let o = vm::run(&spec)?;
            for g in o.guests() {
                say(&g.describe());
            }
            say(&format!("boot-to-result {:.1} s", o.wall.as_secs_f64()));
            if !o.ok() {
                eprintln!("lab: exec failed: {}", o.failure_summary());
                return Ok(1);
            }
            Ok(0)
        }
        LabCmd::Run {
            scenario,
            common,
            record,
            no_build,
        } => {
            let t0 = std::time::Instant::now();
            let all = scenario == "all";
            let list = if all {
                scenario::Scenario::ALL.to_vec()
            } else {
                vec![scenario::Scenario::parse(&scenario)?]
            };
            prepare_host()?;
            let k = kernel::ensure(common.kernel)?;
            if !no_build {
                let mut pkgs = vec!["smc-netlink", "smc-load"];
                if record {
                    pkgs.push("smc-record");
                }
                if list
                    .iter()
                    .any(|s| s.needs_recorder() || scenario::Scenario::SMCD.contains(s))
                {
                    pkgs.extend(["smc-record", "smc-analyze"]);
                }
                host::cargo_build(&pkgs)?;
            }
            let opts = scenario::Options {
                record,
                timeout: Duration::from_secs(common.timeout),
                memory_mb: common.memory,
                smcctl: smcctl_path(),
                smc_modules: check_smc_modules(common.smc_modules.as_deref(), &k)?,
            };
            let mut failed = Vec::new();
            for sc in &list {
                // With `all`, each scenario gets its own subdirectory of --out.
                let out = match (&common.out, all) {
                    (Some(d), true) => out_dir(Some(&d.join(sc.name())), sc.name())?,
                    (given, _) => out_dir(given.as_deref(), sc.name())?,
                };
                let code = match scenario::run(*sc, &k, &out, &opts) {
                    Ok(code) => code,
                    Err(e) if all => {
                        eprintln!("lab: {} FAILED: {e:#}", sc.name());
                        1
                    }
                    Err(e) => return Err(e),
                };
                if code != 0 {
                    failed.push(sc.name());
                }
            }
            say(&format!(
                "total wall time (with package/kernel checks and build): {:.1} s",
                t0.elapsed().as_secs_f64()
            ));
            if all {
                // The plain closing line CI reads, then which ones failed.
                say(&format!(
                    "scenarios on {} ({} {}):",
                    k.kver, k.package, k.version
                ));
                println!(
                    "lab: {} passed, {} failed",
                    list.len() - failed.len(),
                    failed.len()
                );
                if !failed.is_empty() {
                    eprintln!("lab: failed scenarios on {}: {}", k.kver, failed.join(" "));
                }
            }
            Ok(if failed.is_empty() { 0 } else { 1 })
        }
    }
}

/// Validate `--smc-modules DIR`: both modules there, built for the kernel the guests boot.
fn check_smc_modules(dir: Option<&Path>, k: &kernel::Kernel) -> Result<Option<PathBuf>> {
    let Some(dir) = dir else { return Ok(None) };
    let dir =
        std::fs::canonicalize(dir).with_context(|| format!("--smc-modules {}", dir.display()))?;
    for m in ["smc.ko", "smc_diag.ko"] {
        let p = dir.join(m);
        let out = std::process::Command::new("modinfo")
            .args(["-F", "vermagic"])
            .arg(&p)
            .output()
            .with_context(|| format!("running modinfo on {}", p.display()))?;
        let vermagic = String::from_utf8_lossy(&out.stdout);
        let built_for = vermagic.split_whitespace().next().unwrap_or("");
        if !out.status.success() || built_for.is_empty() {
            bail!(
                "--smc-modules: {} is missing or not a kernel module",
                p.display()
            );
        }
        if built_for != k.kver {
            bail!(
                "--smc-modules: {} is built for {built_for}, the guests boot {}",
                p.display(),
                k.kver
            );
        }
    }
    Ok(Some(dir))
}

fn smcctl_path() -> PathBuf {
    std::env::var_os("SMCTRACE_LAB_SMCCTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| host::debug_bin("smcctl"))
}

/// Root, and what the lab needs on the host ([`host::ensure_lab_host`]).
fn prepare_host() -> Result<()> {
    if !host::is_root() {
        bail!("the lab needs root (apt-get, and QEMU exporting / read-only over 9p)");
    }
    host::ensure_lab_host()
}

/// The run's output directory, absolute, created.
fn out_dir(given: Option<&Path>, name: &str) -> Result<PathBuf> {
    let dir = match given {
        Some(d) => d.to_path_buf(),
        None => {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            host::target_dir()
                .join("lab")
                .join(format!("{name}-{secs}-{}", std::process::id()))
        }
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir =
        std::fs::canonicalize(&dir).with_context(|| format!("resolving {}", dir.display()))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn exec_arguments_parse() {
        let cli = Cli::try_parse_from([
            "xtask",
            "lab",
            "exec",
            "--kernel",
            "6.1",
            "--out",
            "/tmp/x",
            "--no-smc-setup",
            "--a",
            "uname -r",
            "--b",
            "true",
        ])
        .unwrap();
        let Top::Lab(LabCmd::Exec {
            common,
            no_smc_setup,
            a,
            b,
        }) = cli.cmd
        else {
            panic!("not exec")
        };
        assert_eq!(common.kernel, Series::V6_1);
        assert_eq!(common.out.as_deref(), Some(Path::new("/tmp/x")));
        assert!(no_smc_setup);
        assert_eq!(a, "uname -r");
        assert_eq!(b.as_deref(), Some("true"));
        assert!(
            Cli::try_parse_from(["xtask", "lab", "exec", "--b", "true"]).is_err(),
            "--a is required"
        );
        assert!(
            Cli::try_parse_from(["xtask", "lab", "exec", "--kernel", "5.10", "--a", "x"]).is_err()
        );
    }

    #[test]
    fn run_arguments_parse() {
        let cli = Cli::try_parse_from(["xtask", "lab", "run", "bulk", "--record"]).unwrap();
        let Top::Lab(LabCmd::Run {
            scenario,
            common,
            record,
            no_build,
        }) = cli.cmd
        else {
            panic!("not run")
        };
        assert_eq!(scenario, "bulk");
        assert_eq!(common.kernel, Series::V6_12);
        assert!(record && !no_build);
    }
}
