//! `cargo xtask bench`: what smctrace costs and how fast it goes, printed as tables.
//!
//! A tracer that perturbs what it measures is useless on a latency bug, so the recorder's
//! cost is measured next to what a user would otherwise run (`perf record -e 'smc:*'`), in the
//! same QEMU guests of the same boot, with the tracers interleaved round by round; the
//! per-event BPF cost is set next to empty programs on the same hooks (the floor); the
//! userspace pipeline and the analyzer are measured on this host with synthetic recordings.
//! Nothing here asserts: the targets of issue 8 are printed next to the figures.
//!
//! Parts: `recorder` and `bpf` boot the lab (root; Debian 6.12 guests), `pipeline` runs the
//! format crate's benches, `analyzer` generates large synthetic recordings (the format crate's
//! `synth_large` example) and times release `smc-analyze report` and `export --csv` on them.
//! Every table is also written to `<out>/results.md` with the machine, kernel, date and load.
//! See docs/performance.md.

use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::host::{self, say};
use crate::kernel::{self, Series};
use crate::vm;

/// Which benchmarks to run.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// smc-load ping-pong RTT and bulk throughput: no tracer / smc-record / perf record.
    Recorder,
    /// Per-event BPF cost (kernel.bpf_stats_enabled) of every smc-record program next to an
    /// empty program on the same hook.
    Bpf,
    /// `recorder` and `bpf` in one boot of the lab.
    Lab,
    /// The recorder's userspace pipeline and the format's write/read throughput (host only).
    Pipeline,
    /// smc-analyze report / export --csv on large synthetic recordings (host only).
    Analyzer,
    /// The kernel series' always-on metrics: stock vs patched smc.ko on the lab's 7.3 kernel
    /// (SMC-D loopback ping-pong, ABBA; `--runs` rounds of `--count` messages).
    Series,
    /// Everything above (the lab parts share one boot).
    All,
}

/// Options of `cargo xtask bench` (see `main.rs` for the flags).
#[derive(Debug, Clone)]
pub struct Options {
    pub part: Part,
    /// Rounds of the interleaved tracer comparison (each round runs every tracer once).
    pub runs: u32,
    /// Ping-pong messages per run.
    pub count: u32,
    /// Seconds of bulk transfer per run.
    pub bulk_secs: u32,
    /// Event counts of the synthetic recordings for the analyzer.
    pub events: Vec<u64>,
    /// Runs of each analyzer command per size (interleaved; the median is printed).
    pub analyzer_runs: u32,
    /// Where results, recordings and lab logs go.
    pub out: Option<PathBuf>,
}

/// The tracers compared in the lab, in the order of the first round.
/// `floor`: the empty programs of the BPF part on every smc-record hook (the cost of the
/// kprobes themselves, with nothing recorded).
const TRACERS: [&str; 4] = ["none", "smc-record", "perf", "floor"];

pub fn run(opts: &Options) -> Result<i32> {
    let out = match &opts.out {
        Some(d) => d.clone(),
        None => host::target_dir()
            .join("bench")
            .join(format!("run-{}", unix_secs())),
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let out =
        std::fs::canonicalize(&out).with_context(|| format!("resolving {}", out.display()))?;
    let mut md = String::new();
    let _ = writeln!(md, "# cargo xtask bench {:?}\n", opts.part);
    let _ = writeln!(md, "{}\n", machine_line());
    println!("{}", machine_line());
    let want = |p: Part| {
        opts.part == p
            || opts.part == Part::All
            || (opts.part == Part::Lab && matches!(p, Part::Recorder | Part::Bpf))
    };
    if want(Part::Recorder) || want(Part::Bpf) {
        let tables = lab(opts, &out, want(Part::Recorder), want(Part::Bpf))?;
        print!("{tables}");
        md.push_str(&tables);
    }
    if want(Part::Series) {
        let t = crate::series_bench::run(&out, opts.runs, opts.count)?;
        print!("{t}");
        md.push_str(&t);
    }
    if want(Part::Pipeline) {
        let t = pipeline()?;
        print!("{t}");
        md.push_str(&t);
    }
    if want(Part::Analyzer) {
        let t = analyzer(opts, &out)?;
        print!("{t}");
        md.push_str(&t);
    }
    let results = out.join("results.md");
    std::fs::write(&results, md).with_context(|| format!("writing {}", results.display()))?;
    say(&format!("tables written to {}", results.display()));
    Ok(0)
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The 1-, 5- and 15-minute load averages of this host.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// One line: host CPU, cores, kernel, date, load.
fn machine_line() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "?".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!(
        "host: {cpu}, {cores} cores, kernel {kernel}, {date}, load {}",
        loadavg()
    )
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Samples the host's 1-minute load average every 5 s until dropped; min/median/max.
struct LoadSampler {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<Vec<f64>>>,
}

impl LoadSampler {
    fn start() -> LoadSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut v = Vec::new();
            let mut last: Option<Instant> = None;
            while !s.load(Ordering::Relaxed) {
                if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
                    if let Some(l) = loadavg()
                        .split_whitespace()
                        .next()
                        .and_then(|x| x.parse().ok())
                    {
                        v.push(l);
                    }
                    last = Some(Instant::now());
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            v
        });
        LoadSampler {
            stop,
            handle: Some(handle),
        }
    }

    fn finish(mut self) -> String {
        self.stop.store(true, Ordering::Relaxed);
        let mut v = self
            .handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        if v.is_empty() {
            return "?".into();
        }
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        format!("{lo:.1} / {:.1} / {hi:.1}", median(&mut v))
    }
}

// ---------------------------------------------------------------------------------------
// The lab: recorder overhead and per-event BPF cost

/// One program of smc-record's BPF object: its name (as the kernel shows it) and hook.
#[derive(Debug, Clone, PartialEq)]
struct Prog {
    name: String,
    /// `kprobe`, `kretprobe`, `fentry`, `fexit` or `raw_tp`.
    kind: String,
    hook: String,
}

/// smc-record's programs, read from its source: `SEC("kind/hook")` followed by
/// `int BPF_KPROBE(name, ...)` (or BPF_KRETPROBE / BPF_PROG / `TRACING(name)` / a plain `int name(`).
fn recorder_programs(src: &str) -> Vec<Prog> {
    let mut out = Vec::new();
    let lines: Vec<&str> = src.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        let Some(rest) = l.trim().strip_prefix("SEC(\"") else {
            continue;
        };
        let Some((sec, _)) = rest.split_once('"') else {
            continue;
        };
        let Some((kind, hook)) = sec.split_once('/') else {
            continue;
        };
        if !matches!(kind, "kprobe" | "kretprobe" | "fentry" | "fexit" | "raw_tp") {
            continue;
        }
        let Some(next) = lines.get(i + 1) else {
            continue;
        };
        let decl = next.trim().trim_start_matches("int ").trim();
        let name = match decl.split_once('(') {
            Some((m, args)) if m.starts_with("BPF_") || m == "TRACING" => {
                args.split([',', ')']).next().unwrap_or("")
            }
            Some((n, _)) => n,
            None => "",
        }
        .trim();
        if !name.is_empty() {
            out.push(Prog {
                name: name.into(),
                kind: kind.into(),
                hook: hook.into(),
            });
        }
    }
    out
}

/// The floor: one empty program per (kind, hook) of smc-record, named `floor_<i>`.
/// With `emit`, the minimal emitter instead (`emit_<i>`): what any recorder pays per event
/// for the record itself, a 24-byte header-sized record (ktime) reserved in and submitted to a
/// ring buffer the loader drains, without map lookups or kernel reads.
fn floor_source(progs: &[Prog], emit: bool) -> (String, Vec<(String, String, String)>) {
    let mut src = String::from(
        "// SPDX-License-Identifier: GPL-2.0\n\
         /* Generated by `cargo xtask bench bpf` (xtask/src/bench.rs): reference programs on the\n \
         * hooks of smc-record, the floor of the per-event BPF cost. */\n\
         #include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n\n\
         char LICENSE[] SEC(\"license\") = \"GPL\";\n\n",
    );
    if emit {
        src.push_str(
            "struct {\n\t__uint(type, BPF_MAP_TYPE_RINGBUF);\n\t__uint(max_entries, 4 << 20);\n} events SEC(\".maps\");\n\n\
             struct rec {\n\t__u64 ts_ns;\n\t__u64 a, b;\n};\n\n",
        );
    }
    let mut map = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for p in progs {
        if !seen.insert((p.kind.clone(), p.hook.clone())) {
            continue;
        }
        let name = format!("{}_{}", if emit { "emit" } else { "floor" }, map.len());
        let body = if emit {
            "\tstruct rec *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);\n\n\
             \tif (!r)\n\t\treturn 0;\n\tr->ts_ns = bpf_ktime_get_ns();\n\tr->a = 0;\n\tr->b = 0;\n\
             \tbpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);\n\treturn 0;\n"
        } else {
            "\treturn 0;\n"
        };
        let _ = writeln!(
            src,
            "SEC(\"{}/{}\")\nint {name}(void *ctx)\n{{\n{body}}}\n",
            p.kind, p.hook
        );
        map.push((name, p.kind.clone(), p.hook.clone()));
    }
    (src, map)
}

/// A libbpf loader for the floor object: load, attach every program (reporting the ones that
/// fail), write the ready file, wait for SIGTERM/SIGINT; an object with a ring buffer named
/// `events` (the minimal emitter) has it drained every 50 ms, as smc-record does.
const FLOOR_LOADER: &str = r#"// SPDX-License-Identifier: GPL-2.0
/* Generated by `cargo xtask bench bpf` (xtask/src/bench.rs): loads the floor programs. */
#include <bpf/libbpf.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static int drop(void *ctx, void *data, size_t len)
{
	(void)ctx;
	(void)data;
	(void)len;
	return 0;
}

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	struct bpf_object *obj;
	struct bpf_program *prog;
	struct ring_buffer *rb = NULL;
	int attached = 0, fd;
	FILE *f;

	if (argc != 3) {
		fprintf(stderr, "usage: floor-loader OBJECT READY_FILE\n");
		return 2;
	}
	obj = bpf_object__open_file(argv[1], NULL);
	if (!obj) {
		perror("floor-loader: opening the object");
		return 1;
	}
	if (bpf_object__load(obj)) {
		fprintf(stderr, "floor-loader: loading %s failed\n", argv[1]);
		return 1;
	}
	bpf_object__for_each_program(prog, obj) {
		if (bpf_program__attach(prog))
			attached++;
		else
			fprintf(stderr, "floor-loader: %s (%s) not attached\n",
				bpf_program__name(prog), bpf_program__section_name(prog));
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	f = fopen(argv[2], "w");
	if (!f) {
		perror("floor-loader: ready file");
		return 1;
	}
	fprintf(f, "%d\n", attached);
	fclose(f);
	fd = bpf_object__find_map_fd_by_name(obj, "events");
	if (fd >= 0) {
		rb = ring_buffer__new(fd, drop, NULL, NULL);
		if (!rb) {
			perror("floor-loader: ring buffer");
			return 1;
		}
	}
	while (!stop) {
		if (rb)
			ring_buffer__poll(rb, 50);
		else
			pause();
	}
	return 0;
}
"#;

/// Build the floor object (`floor.bpf.o`), the minimal emitter (`emit.bpf.o`) and their
/// loader into `dir`; returns the name maps (floor, emitter).
type NameMap = Vec<(String, String, String)>;
fn build_floor(dir: &Path, progs: &[Prog]) -> Result<(NameMap, NameMap)> {
    host::ensure_tools(&[
        ("clang", "/usr/bin/clang"),
        ("libbpf-dev", "/usr/include/bpf/libbpf.h"),
        ("gcc", "/usr/bin/cc"),
    ])?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut maps = Vec::new();
    for (stem, emit) in [("floor", false), ("emit", true)] {
        let (src, map) = floor_source(progs, emit);
        let c = dir.join(format!("{stem}.bpf.c"));
        std::fs::write(&c, src).with_context(|| format!("writing {}", c.display()))?;
        let clang = std::env::var_os("CLANG").unwrap_or_else(|| "clang".into());
        host::run_checked(
            Command::new(clang)
                .args([
                    "-O2",
                    "-g",
                    "-target",
                    "bpf",
                    "-D__TARGET_ARCH_x86",
                    "-I/usr/include/x86_64-linux-gnu",
                    "-c",
                ])
                .arg(&c)
                .arg("-o")
                .arg(dir.join(format!("{stem}.bpf.o"))),
            &format!("compiling the {stem} BPF programs"),
        )?;
        maps.push(map);
    }
    let l = dir.join("floor-loader.c");
    std::fs::write(&l, FLOOR_LOADER).with_context(|| format!("writing {}", l.display()))?;
    host::run_checked(
        Command::new("cc")
            .args(["-O2", "-Wall"])
            .arg(&l)
            .arg("-o")
            .arg(dir.join("floor-loader"))
            .arg("-lbpf"),
        "building the floor loader (cc ... -lbpf)",
    )?;
    let emit = maps.pop().unwrap_or_default();
    let floor = maps.pop().unwrap_or_default();
    Ok((floor, emit))
}

/// Guest A's script: warm-up, then `runs` rounds of every tracer in rotating order, then the
/// BPF statistics phase.
/// `SMC_RECORD_ATTACH=kprobe` in the host's environment: the guests run smc-record with its
/// kprobes instead of fentry/fexit (docs/recorder.md), for a before/after comparison.
fn kprobes_forced() -> bool {
    std::env::var("SMC_RECORD_ATTACH").is_ok_and(|v| v == "kprobe")
}

fn a_script(opts: &Options, bin: &Path, floor: &Path, recorder: bool, bpf: bool) -> String {
    let load = bin.join("smc-load");
    let rec = bin.join("smc-record");
    let mut s = format!(
        "set -e\nB=/out/bench; mkdir -p $B\nLOAD={load}\nREC={rec}\nATTACH={attach}\n\
         cat > /tmp/work.sh <<EOF\nset -e\n\
         $LOAD client --connect $SMCTRACE_PEER:5000 --mode pingpong --count {count} --json > $B/pp-\\$1-\\$2.json\n\
         $LOAD client --connect $SMCTRACE_PEER:5000 --mode bulk --duration {secs} --json > $B/bulk-\\$1-\\$2.json\n\
         EOF\n\
         echo 'bench: warm-up'\nsh /tmp/work.sh warmup 0\n",
        load = load.display(),
        rec = rec.display(),
        // SMC_RECORD_ATTACH=kprobe on the host: measure smc-record's kprobes instead of fentry
        attach = if kprobes_forced() { "SMC_RECORD_ATTACH=kprobe" } else { "" },
        count = opts.count,
        secs = opts.bulk_secs,
    );
    let run_none = "sh /tmp/work.sh none $i";
    let run_rec = "rm -f /tmp/r.smctrace; env $ATTACH $REC record --output /tmp/r.smctrace -q -- sh /tmp/work.sh smc-record $i\n\
                   { stat -c %s /tmp/r.smctrace; $REC dump /tmp/r.smctrace | grep '^trailer:'; } > $B/file-smc-record-$i.txt";
    let run_perf = "rm -f /tmp/p.data; perf record -q -e 'smc:*' -z -a -o /tmp/p.data -- sh /tmp/work.sh perf $i\n\
                    { stat -c %s /tmp/p.data; perf report -i /tmp/p.data --stats 2>&1 | grep -E 'SAMPLE events|LOST events' | head -2; } > $B/file-perf-$i.txt";
    let run_floor = format!(
        "rm -f /tmp/floor.ready; {loader} {obj} /tmp/floor.ready 2> $B/floor.err & F=$!\n\
         while [ ! -e /tmp/floor.ready ]; do kill -0 $F; sleep 0.2; done\n\
         sh /tmp/work.sh floor $i; kill $F; wait $F || true",
        loader = floor.join("floor-loader").display(),
        obj = floor.join("floor.bpf.o").display(),
    );
    if recorder {
        let _ = write!(
            s,
            "for i in $(seq 1 {runs}); do\n  case $((i % 4)) in\n\
             1) order='none smc-record perf floor';;\n  2) order='smc-record perf floor none';;\n\
             3) order='perf floor none smc-record';;\n  0) order='floor none smc-record perf';;\n  esac\n\
             for t in $order; do\n    echo \"bench: round $i $t\"\n    case $t in\n\
             none) {run_none};;\n    smc-record) {run_rec};;\n    perf) {run_perf};;\n    floor) {run_floor};;\n    esac\n  done\ndone\n",
            runs = opts.runs,
        );
    }
    if bpf {
        let _ = write!(
            s,
            "echo 'bench: bpf statistics'\nsysctl -qw kernel.bpf_stats_enabled=1\n\
             rm -f /tmp/floor.ready; {loader} {obj} /tmp/floor.ready 2> $B/floor.err & F=$!\n\
             while [ ! -e /tmp/floor.ready ]; do kill -0 $F; sleep 0.2; done\n\
             rm -f /tmp/emit.ready; {loader} {emit} /tmp/emit.ready 2> $B/emit.err & E=$!\n\
             while [ ! -e /tmp/emit.ready ]; do kill -0 $E; sleep 0.2; done\n\
             cat $B/floor.err $B/emit.err\n\
             rm -f /tmp/b.smctrace; env $ATTACH $REC record --output /tmp/b.smctrace -q -- sh -c 'sh /tmp/work.sh bpf 1 && bpftool -j prog show > /out/bench/bpf-progs.json'\n\
             kill $F $E; wait $F || true; wait $E || true\nsysctl -qw kernel.bpf_stats_enabled=0\n",
            loader = floor.join("floor-loader").display(),
            obj = floor.join("floor.bpf.o").display(),
            emit = floor.join("emit.bpf.o").display(),
        );
    }
    s.push_str("echo 'bench: done'\n");
    s
}

/// Build what the guests run (release smc-load and smc-record; smcctl for the lab setup).
fn cargo_release(packages: &[&str]) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "--release"])
        .current_dir(host::workspace_root());
    for p in packages {
        cmd.args(["-p", p]);
    }
    say(&format!("building (release) {}", packages.join(", ")));
    let status = cmd.status().context("running cargo build --release")?;
    if !status.success() {
        bail!(
            "cargo build --release -p {} failed ({status})",
            packages.join(" -p ")
        );
    }
    Ok(())
}

fn lab(opts: &Options, out: &Path, recorder: bool, bpf: bool) -> Result<String> {
    if !host::is_root() {
        bail!("the recorder and bpf benchmarks boot the lab, which needs root");
    }
    if opts.runs == 0 || opts.count == 0 || opts.bulk_secs == 0 {
        bail!("--runs, --count and --bulk-secs must be at least 1");
    }
    host::ensure_lab_host()?;
    host::ensure_tools(&[
        ("linux-perf", "/usr/bin/perf"),
        ("bpftool", "/usr/sbin/bpftool"),
    ])?;
    host::cargo_build(&["smc-netlink"])?;
    cargo_release(&["smc-load", "smc-record"])?;
    let src_path = host::workspace_root().join("recorder-ebpf/smc_record.bpf.c");
    let src = std::fs::read_to_string(&src_path)
        .with_context(|| format!("reading {}", src_path.display()))?;
    // Only the programs of the attach mechanism smc-record will use (each hook has a kprobe and
    // an fentry twin): the floor then costs what smc-record's own hooks cost, nothing more.
    let progs: Vec<Prog> = recorder_programs(&src)
        .into_iter()
        .filter(|p| match p.kind.as_str() {
            "kprobe" | "kretprobe" => kprobes_forced(),
            "fentry" | "fexit" => !kprobes_forced(),
            _ => true,
        })
        .collect();
    if progs.is_empty() {
        bail!(
            "no SEC(\"kprobe/...\") programs found in {}",
            src_path.display()
        );
    }
    let floor_dir = out.join("floor");
    // The empty programs serve both parts: a tracer of the overhead rounds, the BPF floor.
    let (floor_map, emit_map) = build_floor(&floor_dir, &progs)?;
    let k = kernel::ensure(Series::V6_12)?;
    let lab_out = out.join("lab");
    std::fs::create_dir_all(lab_out.join("bench"))
        .with_context(|| format!("creating {}", lab_out.display()))?;
    // A round: three tracers, each ~(count x RTT + bulk), smc-record's start-up ~15 s under TCG.
    let per_round = 4 * (opts.count as u64 * 3 / 1000 + opts.bulk_secs as u64 + 10) + 30;
    let timeout = 240 + per_round * (opts.runs as u64 + 2);
    let spec = vm::Spec {
        kernel: k.clone(),
        out: lab_out.clone(),
        a_cmds: a_script(
            opts,
            &host::target_dir().join("release"),
            &floor_dir,
            recorder,
            bpf,
        ),
        b_cmds: Some(format!(
            "{} server --listen 0.0.0.0:5000",
            host::target_dir().join("release/smc-load").display()
        )),
        smc_setup: true,
        smc_modules: None,
        timeout: Duration::from_secs(timeout),
        smcctl: host::debug_bin("smcctl"),
        extra_modules: Vec::new(),
        memory_mb: 1024,
        echo: true,
    };
    say(&format!(
        "booting kernel {} ({} {}); output in {}",
        k.kver,
        k.package,
        k.version,
        lab_out.display()
    ));
    let sampler = LoadSampler::start();
    let start_load = loadavg();
    let o = vm::run(&spec)?;
    let load = sampler.finish();
    let dir = lab_out.join("bench");
    // A guest that dies mid-run (soft-RoCE under TCG has crashed the guest kernel, rarely) still
    // leaves the rounds it completed: those are reported, with the failure named.
    let failure = if o.ok() {
        None
    } else {
        let failed: Vec<String> = o
            .guests()
            .filter(|g| !g.ok())
            .map(|g| g.describe())
            .collect();
        let msg = format!(
            "bench guests failed: {} (serial logs kept: {})",
            failed.join("; "),
            o.serial_logs()
        );
        if !dir.join("pp-none-1.json").exists() || !dir.join("bulk-none-1.json").exists() {
            bail!("{msg}");
        }
        eprintln!("lab: {msg}; reporting the rounds that completed");
        Some(msg)
    };
    let mut t = String::new();
    let _ = writeln!(
        t,
        "## Lab: Debian {} ({} {}), two QEMU/TCG guests (1 vCPU each), SMC-R over soft-RoCE\n",
        k.kver, k.package, k.version
    );
    let _ = writeln!(
        t,
        "host load (1-min avg) at start {start_load}; during the run min / median / max {load}; boot-to-result {:.0} s\n",
        o.wall.as_secs_f64()
    );
    if let Some(f) = &failure {
        let _ = writeln!(t, "**Incomplete run**: {f}\n");
    }
    if recorder {
        t.push_str(&recorder_table(opts, &dir)?);
    }
    if bpf {
        if failure.is_some() && !dir.join("bpf-progs.json").exists() {
            t.push_str(
                "### Per-event BPF cost: not measured (the guests failed before that phase)\n\n",
            );
        } else {
            t.push_str(&bpf_table(&dir, &progs, &floor_map, &emit_map)?);
        }
    }
    Ok(t)
}

fn read_json(p: &Path) -> Result<serde_json::Value> {
    let s = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_str(&s).with_context(|| format!("parsing {}", p.display()))
}

fn num(v: &serde_json::Value, key: &str, p: &Path) -> Result<f64> {
    v.get(key)
        .and_then(|x| x.as_f64())
        .with_context(|| format!("{}: no number {key:?}", p.display()))
}

/// (file bytes, events, lost) of one traced run.
fn file_figures(tracer: &str, p: &Path) -> Result<(f64, f64, f64)> {
    let s = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    let mut lines = s.lines();
    let bytes: f64 = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .with_context(|| format!("{}: no file size", p.display()))?;
    let (mut events, mut lost) = (f64::NAN, 0.0);
    for l in lines {
        let words: Vec<&str> = l.split_whitespace().collect();
        if tracer == "smc-record" {
            // trailer: clean close, 5026 events, lost 0 (per cpu [0])
            for w in words.windows(2) {
                if w[1].starts_with("events") {
                    events = w[0].parse().unwrap_or(f64::NAN);
                }
                if w[0] == "lost" {
                    lost = w[1].parse().unwrap_or(f64::NAN);
                }
            }
        } else if let Some(i) = words.iter().position(|w| *w == "events:") {
            // SAMPLE events:  1001  (81.1%) / LOST events: 3
            let n: f64 = words
                .get(i + 1)
                .and_then(|x| x.parse().ok())
                .unwrap_or(f64::NAN);
            // The first line of each is the aggregate; per-event lines follow.
            if words.first() == Some(&"SAMPLE") && events.is_nan() {
                events = n;
            } else if words.first() == Some(&"LOST") && lost == 0.0 {
                lost = n;
            }
        }
    }
    if events.is_nan() {
        bail!("{}: no event count for {tracer}", p.display());
    }
    Ok((bytes, events, lost))
}

fn recorder_table(opts: &Options, dir: &Path) -> Result<String> {
    // Per tracer and round: p50, p99, bulk MB/s; per round the ratios to that round's untraced run.
    struct Series {
        p50: Vec<f64>,
        p99: Vec<f64>,
        mbs: Vec<f64>,
        r50: Vec<f64>,
        r99: Vec<f64>,
        rmbs: Vec<f64>,
        bytes: Vec<f64>,
        events: Vec<f64>,
        lost: f64,
    }
    // Rounds in which every tracer left its results (all of them unless a guest died).
    let complete: Vec<u32> = (1..=opts.runs)
        .filter(|i| {
            TRACERS.iter().all(|t| {
                dir.join(format!("pp-{t}-{i}.json")).exists()
                    && dir.join(format!("bulk-{t}-{i}.json")).exists()
                    && (!matches!(*t, "smc-record" | "perf")
                        || dir.join(format!("file-{t}-{i}.txt")).exists())
            })
        })
        .collect();
    if complete.is_empty() {
        bail!(
            "no round of the tracer comparison completed (results in {})",
            dir.display()
        );
    }
    let mut all = Vec::new();
    let mut base = Vec::new();
    for &i in &complete {
        let pp = dir.join(format!("pp-none-{i}.json"));
        let bk = dir.join(format!("bulk-none-{i}.json"));
        let (a, b) = (read_json(&pp)?, read_json(&bk)?);
        base.push((
            num(&a, "rtt_p50_us", &pp)?,
            num(&a, "rtt_p99_us", &pp)?,
            num(&b, "mbytes_per_s", &bk)?,
        ));
    }
    for tracer in TRACERS {
        let mut s = Series {
            p50: vec![],
            p99: vec![],
            mbs: vec![],
            r50: vec![],
            r99: vec![],
            rmbs: vec![],
            bytes: vec![],
            events: vec![],
            lost: 0.0,
        };
        for (k, &i) in complete.iter().enumerate() {
            let pp = dir.join(format!("pp-{tracer}-{i}.json"));
            let bk = dir.join(format!("bulk-{tracer}-{i}.json"));
            let (a, b) = (read_json(&pp)?, read_json(&bk)?);
            let (p50, p99, mbs) = (
                num(&a, "rtt_p50_us", &pp)?,
                num(&a, "rtt_p99_us", &pp)?,
                num(&b, "mbytes_per_s", &bk)?,
            );
            let (b50, b99, bmbs) = base[k];
            s.p50.push(p50);
            s.p99.push(p99);
            s.mbs.push(mbs);
            s.r50.push(p50 / b50);
            s.r99.push(p99 / b99);
            s.rmbs.push(mbs / bmbs);
            if tracer == "smc-record" || tracer == "perf" {
                let (by, ev, lo) =
                    file_figures(tracer, &dir.join(format!("file-{tracer}-{i}.txt")))?;
                s.bytes.push(by);
                s.events.push(ev);
                s.lost += lo;
            }
        }
        all.push((tracer, s));
    }
    let mut t = String::new();
    let _ = writeln!(
        t,
        "### Recorder overhead: client guest traced; {} of {} rounds complete, order rotated each round; per run {} x 64 B ping-pong + {} s bulk (1 MiB writes)\n",
        complete.len(), opts.runs, opts.count, opts.bulk_secs
    );
    let _ = writeln!(t, "| tracer | p50 RTT us | p99 RTT us | bulk MB/s | p50 ratio | p99 ratio | bulk ratio | events/run | file bytes/run | bytes/event | lost |");
    let _ = writeln!(t, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (tracer, mut s) in all {
        let ev = median(&mut s.events);
        let by = median(&mut s.bytes);
        let _ = writeln!(
            t,
            "| {tracer} | {:.0} | {:.0} | {:.2} | {:.3} | {:.3} | {:.3} | {} | {} | {} | {} |",
            median(&mut s.p50),
            median(&mut s.p99),
            median(&mut s.mbs),
            median(&mut s.r50),
            median(&mut s.r99),
            median(&mut s.rmbs),
            if s.events.is_empty() {
                "-".into()
            } else {
                format!("{ev:.0}")
            },
            if s.events.is_empty() {
                "-".into()
            } else {
                format!("{by:.0}")
            },
            if s.events.is_empty() {
                "-".into()
            } else {
                format!("{:.1}", by / ev)
            },
            if s.events.is_empty() {
                "-".into()
            } else {
                format!("{:.0}", s.lost)
            },
        );
    }
    let _ = writeln!(
        t,
        "\nvalues: medians over the rounds; ratios: median of (traced / untraced of the same round). \
         perf records the 2 `smc:*` tracepoints that fire on the data path (smc_tx_sendmsg, smc_rx_recvmsg); \
         smc-record every stage (about 10 records per ping-pong round trip on the client); \
         floor: the empty BPF programs on every smc-record hook, with smc-record's attach mechanism \
         (fentry/fexit; kprobes with SMC_RECORD_ATTACH=kprobe): what the hooks alone cost. \
         Targets (issue 8): <= 1.03 on p50 RTT and bulk; <= 8 bytes/event.\n"
    );
    Ok(t)
}

/// Per program: runs, share of smc-record's total BPF run time, ns/run, next to the empty
/// program (floor) and the minimal emitter on the same hook; sorted by share, the top
/// contributors first.
fn bpf_table(
    dir: &Path,
    progs: &[Prog],
    floor: &[(String, String, String)],
    emit: &[(String, String, String)],
) -> Result<String> {
    let p = dir.join("bpf-progs.json");
    let v = read_json(&p)?;
    let list = v
        .as_array()
        .with_context(|| format!("{}: not a JSON array", p.display()))?;
    // The kernel keeps the first 15 characters of a program name; bpftool shows the full
    // name from BTF when it has it. bpftool leaves out run_cnt/run_time_ns while they are 0.
    // smc-record loads its fentry/fexit twins without BTF, under a 15-character name that
    // keeps the `_fe` suffix (recorder/src/fentry.rs `kernel_name`).
    let stats = |name: &str| -> Option<(f64, f64)> {
        let short: String = match name.strip_suffix("_fe") {
            Some(base) if name.len() > 15 => format!("{}_fe", &base[..12.min(base.len())]),
            _ => name.chars().take(15).collect(),
        };
        let e = list.iter().find(|e| {
            let n = e.get("name").and_then(|n| n.as_str());
            n == Some(name) || n == Some(short.as_str())
        })?;
        let get = |k: &str| e.get(k).and_then(|x| x.as_f64()).unwrap_or(0.0);
        Some((get("run_time_ns"), get("run_cnt")))
    };
    let on_hook = |refs: &[(String, String, String)], pr: &Prog| {
        refs.iter()
            .find(|(_, k, h)| *k == pr.kind && *h == pr.hook)
            .and_then(|(n, _, _)| stats(n))
            .filter(|&(_, c)| c > 0.0)
    };
    // Each hook is attached either as fentry/fexit or as kprobe/kretprobe (its twin is then
    // never loaded): the programs that are not loaded are counted, not listed.
    let mut not_loaded = Vec::new();
    let mut rows = Vec::new();
    for pr in progs {
        let Some((ns, cnt)) = stats(&pr.name) else {
            not_loaded.push(pr.kind.as_str());
            continue;
        };
        if cnt > 0.0 {
            rows.push((pr, ns, cnt, on_hook(floor, pr), on_hook(emit, pr)));
        }
    }
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    let total_ns: f64 = rows.iter().map(|r| r.1).sum();
    let mut t = String::from(
        "### Per-event BPF cost (kernel.bpf_stats_enabled=1, one ping-pong + bulk run, client guest)\n\n\
         | program | hook | runs | share of time | ns/run | empty ns/run | emitter ns/run | ratio to empty | ratio to emitter |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    // Weighted by smc-record's own run counts, so the references are compared on the same mix.
    let (mut tot_cnt, mut f_ns, mut f_w, mut e_ns, mut e_w) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let cell = |r: Option<(f64, f64)>| r.map_or("-".to_string(), |(n, c)| format!("{:.0}", n / c));
    let ratio = |ours: f64, r: Option<(f64, f64)>| {
        r.map_or("-".to_string(), |(n, c)| format!("{:.2}", ours / (n / c)))
    };
    for (pr, ns, cnt, fl, em) in &rows {
        tot_cnt += cnt;
        if let Some((n, c)) = fl {
            f_ns += n / c * cnt;
            f_w += cnt;
        }
        if let Some((n, c)) = em {
            e_ns += n / c * cnt;
            e_w += cnt;
        }
        let per = ns / cnt;
        let _ = writeln!(
            t,
            "| {} | {} {} | {cnt:.0} | {:.1}% | {per:.0} | {} | {} | {} | {} |",
            pr.name,
            pr.kind,
            pr.hook,
            100.0 * ns / total_ns.max(1.0),
            cell(*fl),
            cell(*em),
            ratio(per, *fl),
            ratio(per, *em),
        );
    }
    let ours = total_ns / tot_cnt.max(1.0);
    let (fl, em) = (f_ns / f_w.max(1.0), e_ns / e_w.max(1.0));
    let _ = writeln!(
        t,
        "| **all (weighted)** | | {tot_cnt:.0} | 100% | {ours:.0} | {fl:.0} | {em:.0} | {:.2} | {:.2} |\n\n\
         empty: an empty program on the same hook (what the attachment alone costs); emitter: a \
         minimal emitter on the same hook (ktime + ring buffer reserve/submit of a 24-byte record, \
         drained every 50 ms; no map lookup, no kernel read); both attached at the same time as \
         smc-record. The references are weighted by smc-record's run counts. Programs that did not \
         run in the workload are left out. Times are TCG-emulated (the guest's clock through an \
         emulated CPU): only the ratios mean something. Target (issue 8): within 2x of the empty \
         program.\n",
        ours / fl.max(1e-9),
        ours / em.max(1e-9),
    );
    not_loaded.sort_unstable();
    not_loaded.dedup();
    if !not_loaded.is_empty() {
        let _ = writeln!(
            t,
            "Not loaded (their hooks used the other attach mechanism): the {} programs.\n",
            not_loaded.join("/")
        );
    }
    Ok(t)
}

// ---------------------------------------------------------------------------------------
// Host-only parts

/// The format crate's benches: the recorder pipeline and the write/read throughput.
fn pipeline() -> Result<String> {
    let mut t = String::from("## Userspace pipeline and format throughput (this host)\n\n");
    for bench in ["pipeline", "throughput"] {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let load = loadavg();
        say(&format!("cargo bench -p smctrace-format --bench {bench}"));
        let o = Command::new(cargo)
            .args([
                "bench",
                "--quiet",
                "-p",
                "smctrace-format",
                "--bench",
                bench,
            ])
            .current_dir(host::workspace_root())
            .stderr(Stdio::inherit())
            .output()
            .context("running cargo bench")?;
        if !o.status.success() {
            bail!(
                "cargo bench -p smctrace-format --bench {bench} failed ({})",
                o.status
            );
        }
        let _ = writeln!(
            t,
            "`cargo bench -p smctrace-format --bench {bench}` (load before: {load}, after: {}):\n",
            loadavg()
        );
        let _ = writeln!(t, "```\n{}```\n", String::from_utf8_lossy(&o.stdout));
    }
    t.push_str("Target (issue 8): pipeline >= 10M events/s per core.\n\n");
    Ok(t)
}

/// Parse `10M`, `30m`, `1G`, `2500000`.
pub fn parse_count(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, mult) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1_000),
        Some('m' | 'M') => (&s[..s.len() - 1], 1_000_000),
        Some('g' | 'G') => (&s[..s.len() - 1], 1_000_000_000),
        _ => (s, 1),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a count like 10M or 2500000"))?;
    n.checked_mul(mult)
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{s:?}: must be between 1 and 2^64"))
}

/// Free bytes of the file system holding `p`.
fn free_bytes(p: &Path) -> Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).context("path with a NUL byte")?;
    // SAFETY: zeroed statvfs is a valid out-parameter; c is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("statvfs {}", p.display()));
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

/// Wall seconds, user+sys CPU seconds and peak RSS (KiB) of a child, from wait4.
fn timed(cmd: &mut Command, what: &str) -> Result<(f64, f64, u64)> {
    let t0 = Instant::now();
    let child = cmd
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid out-parameter; pid is our child, not yet reaped.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let wall = t0.elapsed().as_secs_f64();
    if r != pid {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("waiting for {what}"));
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("{what} failed (wait status {status:#x})");
    }
    let cpu = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    Ok((
        wall,
        cpu(ru.ru_utime) + cpu(ru.ru_stime),
        ru.ru_maxrss as u64,
    ))
}

/// One analyzer run: wall s, CPU s, peak RSS KiB, host load when it started.
type Timing = (f64, f64, u64, f64);

/// Synthetic recordings: 64 concurrent SMC-R connections, 64-byte request/response.
const SYNTH_CONNECTIONS: u32 = 64;
const SYNTH_MSG: u32 = 64;
/// Format version of the recordings `synth_large` writes (part of their cached names).
const SYNTH_FORMAT: &str = "1.1";

fn analyzer(opts: &Options, out: &Path) -> Result<String> {
    if opts.events.is_empty() || opts.analyzer_runs == 0 {
        bail!("--events needs at least one size and --analyzer-runs at least 1");
    }
    cargo_release(&["smc-analyze"])?;
    {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let st = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "--release",
                "-p",
                "smctrace-format",
                "--example",
                "synth_large",
            ])
            .current_dir(host::workspace_root())
            .status()
            .context("running cargo build --example synth_large")?;
        if !st.success() {
            bail!("cargo build --release -p smctrace-format --example synth_large failed ({st})");
        }
    }
    let rel = host::target_dir().join("release");
    let gen = rel.join("examples/synth_large");
    let analyze = rel.join("smc-analyze");
    // Recordings are kept between runs (target/bench/synth-*.smctrace): generating is not timed.
    // Their names carry the format version the generator writes (1.1: columnar chunks), so a
    // format change regenerates them.
    let data = host::target_dir().join("bench");
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let mut t = format!(
        "## Analyzer (release smc-analyze, this host): synthetic SMC-R recordings, {SYNTH_CONNECTIONS} connections \
         x {SYNTH_MSG} B request/response, both peers' records in one file; median of {} interleaved runs\n\n\
         | events | file MB | command | wall s | CPU s | events/s (wall) | events/s per CPU-s | peak RSS MiB | load (1-min) |\n\
         |---:|---:|---|---:|---:|---:|---:|---:|---|\n",
        opts.analyzer_runs
    );
    for &n in &opts.events {
        let file = data.join(format!(
            "synth-{n}-c{SYNTH_CONNECTIONS}-s{SYNTH_MSG}-f{SYNTH_FORMAT}.smctrace"
        ));
        if !file.exists() {
            // ~3 B/event on disk (10.3 in rows); CSV output ~34 B/event.
            let need = n * 60;
            let free = free_bytes(&data)?;
            if free < need {
                bail!("{} events need about {} MB of disk for the recording and the CSV; {} has {} MB free",
                    n, need / 1_000_000, data.display(), free / 1_000_000);
            }
            say(&format!("generating {}", file.display()));
            let tmp = file.with_extension("partial");
            host::run_checked(
                Command::new(&gen)
                    .arg(&tmp)
                    .arg(n.to_string())
                    .arg(SYNTH_CONNECTIONS.to_string())
                    .arg(SYNTH_MSG.to_string()),
                "generating the synthetic recording",
            )?;
            std::fs::rename(&tmp, &file).with_context(|| format!("renaming {}", tmp.display()))?;
        }
        let mb = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
        let csv = out.join(format!("csv-{n}"));
        let mut res: Vec<(&str, Vec<Timing>)> = vec![("report", vec![]), ("export --csv", vec![])];
        for i in 0..opts.analyzer_runs {
            for (cmd, v) in res.iter_mut() {
                say(&format!("smc-analyze {cmd} {} events, run {}", n, i + 1));
                let load: f64 = loadavg()
                    .split_whitespace()
                    .next()
                    .and_then(|x| x.parse().ok())
                    .unwrap_or(f64::NAN);
                let mut c = Command::new(&analyze);
                if *cmd == "report" {
                    c.arg("report").arg(&file);
                } else {
                    let _ = std::fs::remove_dir_all(&csv);
                    c.arg("export").arg("--csv").arg(&csv).arg(&file);
                }
                let (wall, cpu, rss) =
                    timed(&mut c, &format!("smc-analyze {cmd} {}", file.display()))?;
                v.push((wall, cpu, rss, load));
            }
        }
        let _ = std::fs::remove_dir_all(&csv);
        for (cmd, v) in res {
            let mut wall: Vec<f64> = v.iter().map(|x| x.0).collect();
            let mut cpu: Vec<f64> = v.iter().map(|x| x.1).collect();
            let rss = v.iter().map(|x| x.2).max().unwrap_or(0);
            let mut load: Vec<f64> = v.iter().map(|x| x.3).collect();
            let (w, c) = (median(&mut wall), median(&mut cpu));
            let _ = writeln!(
                t,
                "| {n} | {mb:.0} | {cmd} | {w:.1} | {c:.1} | {:.2}M | {:.2}M | {:.0} | {:.1} |",
                n as f64 / w / 1e6,
                n as f64 / c / 1e6,
                rss as f64 / 1024.0,
                median(&mut load),
            );
        }
    }
    t.push_str(
        "\nTargets (issue 8): >= 20M events/s; 100M events in <= 10 s on 2 cores; RSS <= 512 MiB.\n\n",
    );
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_read_from_the_bpf_source() {
        let src = "SEC(\"kprobe/smc_sendmsg\")\nint BPF_KPROBE(sendmsg_enter, void *sock)\n{\n}\n\
                   SEC(\"kretprobe/smc_sendmsg\")\nint BPF_KRETPROBE(sendmsg_exit, long ret)\n\
                   SEC(\"raw_tp/smcr_link_down\")\nint BPF_PROG(link_down, void *lnk)\n\
                   SEC(\".maps\");\nSEC(\"license\")\n";
        let p = recorder_programs(src);
        assert_eq!(
            p,
            vec![
                Prog {
                    name: "sendmsg_enter".into(),
                    kind: "kprobe".into(),
                    hook: "smc_sendmsg".into()
                },
                Prog {
                    name: "sendmsg_exit".into(),
                    kind: "kretprobe".into(),
                    hook: "smc_sendmsg".into()
                },
                Prog {
                    name: "link_down".into(),
                    kind: "raw_tp".into(),
                    hook: "smcr_link_down".into()
                },
            ]
        );
        let (c, map) = floor_source(&p, false);
        assert_eq!(map.len(), 3);
        assert!(
            c.contains("SEC(\"kretprobe/smc_sendmsg\")\nint floor_1(void *ctx)"),
            "{c}"
        );
        assert!(!c.contains("bpf_ringbuf_reserve"), "{c}");
        let (e, map) = floor_source(&p, true);
        assert_eq!(
            map[2],
            (
                "emit_2".to_string(),
                "raw_tp".to_string(),
                "smcr_link_down".to_string()
            )
        );
        assert!(e.contains("SEC(\"raw_tp/smcr_link_down\")\nint emit_2(void *ctx)\n{\n\tstruct rec *r = bpf_ringbuf_reserve"), "{e}");
        assert!(e.contains("BPF_MAP_TYPE_RINGBUF"), "{e}");
    }

    #[test]
    fn the_real_recorder_source_has_its_data_path_programs() {
        let src =
            std::fs::read_to_string(host::workspace_root().join("recorder-ebpf/smc_record.bpf.c"))
                .unwrap();
        let p = recorder_programs(&src);
        for hook in ["smc_sendmsg", "smc_cdc_rx_handler", "smc_rx_recvmsg"] {
            assert!(p.iter().any(|x| x.hook == hook), "{hook} missing in {p:?}");
        }
        // the fentry/fexit twins smc-record prefers
        assert!(
            p.contains(&Prog {
                name: "sendmsg_enter_fe".into(),
                kind: "fentry".into(),
                hook: "smc_sendmsg".into()
            }),
            "{p:?}"
        );
        assert!(
            p.contains(&Prog {
                name: "sendmsg_exit_fe".into(),
                kind: "fexit".into(),
                hook: "smc_sendmsg".into()
            }),
            "{p:?}"
        );
    }

    #[test]
    fn counts_and_file_figures_parse() {
        assert_eq!(parse_count("10M"), Ok(10_000_000));
        assert_eq!(parse_count("2500000"), Ok(2_500_000));
        assert!(parse_count("0").is_err() && parse_count("x").is_err());
        let d = tempfile_dir();
        let r = d.join("r.txt");
        std::fs::write(
            &r,
            "62880\ntrailer: clean close, 5026 events, lost 3 (per cpu [3])\n",
        )
        .unwrap();
        assert_eq!(
            file_figures("smc-record", &r).unwrap(),
            (62880.0, 5026.0, 3.0)
        );
        std::fs::write(&r, "40801\n          SAMPLE events:       1001  (81.1%)\n          SAMPLE events:        501\n").unwrap();
        assert_eq!(file_figures("perf", &r).unwrap(), (40801.0, 1001.0, 0.0));
        std::fs::write(&r, "40801\n").unwrap();
        assert!(file_figures("perf", &r).is_err());
        let _ = std::fs::remove_dir_all(&d);
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("xtask-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
