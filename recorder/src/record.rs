//! `smc-record record` and `smc-record probes`: the recording session.
//!
//! Checks what the host provides (privileges, kernel BTF, the smc module),
//! loads the probes, writes the metadata, runs the pipeline until a stop
//! condition (signal, duration, size, end of the command), then closes the
//! file with the trailer (probe hits, per-CPU losses, end snapshot) on every
//! stop path. Where the chunks go (one file, rotated files, the flight ring)
//! is output.rs.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use clap::Args;
use smctrace_format::meta::{ClockRef, Filters, Metadata, Snapshot};
use smctrace_format::ChunkCodec;

use crate::flight::{parse_trigger, Trigger, TriggerCheck};
use crate::output::{self, Boundary, Output};

use crate::exit;
use crate::loader::{self, Config};
use crate::offsets::KernelBtf;
use crate::pipeline::{Options, Pipeline, Progress};
use crate::probes::PROBES;
use crate::Failure;

#[derive(Args)]
pub struct RecordArgs {
    /// The .smctrace file to create (refused if it exists, unless --force).
    #[arg(short, long)]
    output: PathBuf,
    /// Replace an existing output file.
    #[arg(long)]
    force: bool,
    /// Stop after this many seconds (fractions allowed).
    #[arg(long, value_name = "SECONDS")]
    duration: Option<f64>,
    /// Stop once the file reaches this many bytes (suffixes k, M, G allowed);
    /// with --rotate, continue in the next file instead.
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    max_size: Option<u64>,
    /// With --max-size: close a full file and continue in the next one
    /// (OUTPUT.000001.smctrace, OUTPUT.000002.smctrace, ...), keeping the newest N.
    #[arg(long, value_name = "N", requires = "max_size", value_parser = clap::value_parser!(u32).range(1..))]
    rotate: Option<u32>,
    /// Flight recorder: keep only the last MIB MiB of compressed chunks in memory and
    /// write them out (OUTPUT.000001.smctrace, ...) on SIGUSR1, on a --trigger, and at exit.
    #[arg(long, value_name = "MIB", conflicts_with_all = ["max_size", "rotate"], value_parser = clap::value_parser!(u32).range(1..=4096))]
    flight: Option<u32>,
    /// Write the flight ring out when this happens: `fallback`, `link-down`, or
    /// `slow=DURATION` (a sendmsg call or a CDC send->completion longer than DURATION). Repeatable.
    #[arg(long = "trigger", value_name = "TRIGGER", requires = "flight", value_parser = parse_trigger)]
    triggers: Vec<Trigger>,
    /// After a trigger, keep recording this many seconds before writing the ring out.
    #[arg(long, value_name = "SECONDS", requires = "flight")]
    trigger_post: Option<f64>,
    /// Record only sockets used by these processes (tgid). Repeatable.
    #[arg(long = "pid", value_name = "PID")]
    pids: Vec<u32>,
    /// Record only sockets used by tasks with this command name (15 chars max). Repeatable.
    #[arg(long = "comm", value_name = "COMM")]
    comms: Vec<String>,
    /// Record only connections whose TCP (clcsock) local or remote port is this. Repeatable.
    #[arg(long = "port", value_name = "PORT")]
    ports: Vec<u16>,
    /// Record only connections in this network namespace (inode, as in /proc/PID/ns/net). Repeatable.
    #[arg(long = "netns", value_name = "INODE")]
    netns: Vec<u64>,
    /// Record only this connection: an ID from `smc-record conns` (its token, 8 hex
    /// digits) or its TCP 4-tuple LOCAL:PORT-PEER:PORT. Both ends on this host are
    /// recorded. Filtered in the kernel. Repeatable.
    #[arg(long = "conn", value_name = "ID")]
    conns: Vec<String>,
    /// Capture the first N bytes of each send's user data (0-256; default 0: no user data).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=256))]
    payload: u32,
    /// Kernel ring buffer size in bytes (power of two, suffixes allowed).
    #[arg(long, value_name = "BYTES", default_value = "16M", value_parser = parse_size)]
    buffer: u64,
    /// zstd level of the event chunks.
    #[arg(long, default_value_t = 1)]
    zstd_level: i32,
    /// Layout of the event chunks: `auto` (columns where they are smaller,
    /// format 1.1), `rows` (readable by format 1.0 readers), `columns`.
    #[arg(long, value_name = "LAYOUT", default_value = "auto", value_parser = parse_layout)]
    chunk_layout: ChunkCodec,
    /// No live status line on stderr.
    #[arg(short, long)]
    quiet: bool,
    /// Create this file once every probe is attached (for scripts that wait on it).
    #[arg(long, value_name = "PATH")]
    ready_file: Option<PathBuf>,
    /// Do not attach this probe (a name from `smc-record probes`). Repeatable.
    #[arg(long = "exclude", value_name = "PROBE")]
    exclude: Vec<String>,
    /// Skip the SMC netlink/smc_diag snapshots at start and end.
    #[arg(long)]
    no_snapshot: bool,
    /// Run this command and record while it runs; exit with its status.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

fn parse_layout(s: &str) -> Result<ChunkCodec, String> {
    match s {
        "auto" => Ok(ChunkCodec::Auto),
        "rows" => Ok(ChunkCodec::Rows),
        "columns" => Ok(ChunkCodec::Columns),
        _ => Err(format!(
            "unknown chunk layout {s:?} (auto, rows or columns)"
        )),
    }
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&s[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size (e.g. 4096, 64k, 16M, 1G)"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{s}` is too large"))
}

/// Capability bits of the calling thread (CapEff in /proc/thread-self/status:
/// capabilities are per thread, and /proc/self shows the main thread's).
fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/thread-self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Refuse early, naming what is missing, instead of failing deep inside aya.
fn check_privileges() -> Result<(), Failure> {
    let caps = effective_caps();
    let has = |c: u32| caps & (1u64 << c) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return Ok(());
    }
    let mut missing = Vec::new();
    if !has(CAP_BPF) {
        missing.push("CAP_BPF");
    }
    if !has(CAP_PERFMON) {
        missing.push("CAP_PERFMON");
    }
    Err(Failure::new(
        exit::PRIVILEGES,
        anyhow!(
            "loading eBPF probes needs CAP_BPF and CAP_PERFMON (plus CAP_NET_ADMIN for the SMC snapshots), or root; missing: {}",
            missing.join(", ")
        ),
    ))
}

/// Refuse an output path the format crate's writer would refuse anyway (a
/// symbolic link; an existing file without --force) before seconds of probe
/// loading, with the same error and exit code (26). The writer checks again when
/// it creates the file (O_NOFOLLOW, O_EXCL), so this is not the security check.
fn check_output(path: &Path, force: bool) -> Result<(), Failure> {
    let refused = |reason: &str| {
        Failure::from(anyhow::Error::new(
            smctrace_format::FormatError::OutputRefused {
                path: path.to_path_buf(),
                reason: reason.to_string(),
            },
        ))
    };
    match std::fs::symlink_metadata(path) {
        Ok(st) if st.file_type().is_symlink() => Err(refused("it is a symbolic link")),
        Ok(_) if !force => Err(refused("it already exists (use --force to replace it)")),
        Ok(st) if !st.file_type().is_file() => Err(refused("it exists and is not a regular file")),
        _ => Ok(()),
    }
}

/// vmlinux + smc BTF of the running kernel, with a clear error for each gap.
fn kernel_btf() -> Result<KernelBtf, Failure> {
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Err(Failure::new(
            exit::NO_BTF,
            anyhow!("this kernel exposes no BTF (/sys/kernel/btf/vmlinux missing): smc-record needs CONFIG_DEBUG_INFO_BTF"),
        ));
    }
    if !Path::new("/sys/kernel/btf/smc").exists() {
        let loaded = std::fs::read_to_string("/proc/modules")
            .map(|m| m.lines().any(|l| l.starts_with("smc ")))
            .unwrap_or(false);
        let why = if loaded {
            "the smc module is loaded but has no BTF (/sys/kernel/btf/smc missing; needs CONFIG_DEBUG_INFO_BTF_MODULES)"
        } else {
            "the smc kernel module is not loaded (run `modprobe smc`, or open an AF_SMC socket once)"
        };
        return Err(Failure::new(exit::NO_SMC, anyhow!("{why}")));
    }
    KernelBtf::running().map_err(|e| Failure::new(exit::NO_BTF, e))
}

fn random_key() -> Result<[u64; 2]> {
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .context("reading /dev/urandom for the socket-id key")?;
    Ok([
        u64::from_le_bytes(b[..8].try_into().unwrap()),
        u64::from_le_bytes(b[8..].try_into().unwrap()),
    ])
}

pub fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn uname() -> (String, String) {
    // SAFETY: utsname is plain data; uname fills it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    unsafe { libc::uname(&mut u) };
    let s = |f: &[libc::c_char]| {
        let b: Vec<u8> = f
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8)
            .collect();
        String::from_utf8_lossy(&b).into_owned()
    };
    (s(&u.nodename), s(&u.release))
}

/// The SMC state at one moment (netlink statistics, fallback counters, links,
/// smc_diag sockets). Partial failures are kept in `Snapshot.error`.
fn snapshot(enabled: bool) -> Option<Snapshot> {
    if !enabled {
        return None;
    }
    let mut s = smc_netlink::snapshot();
    if effective_caps() & (1u64 << CAP_NET_ADMIN) == 0 && s.error.is_none() {
        s.error = Some("taken without CAP_NET_ADMIN: some SMC netlink dumps may be empty".into());
    }
    Some(s)
}

/// The session's side of [`Boundary`]: counters and snapshots for the writer
/// thread, each read with the kept capabilities raised for just that call.
struct Live {
    loaded: Arc<loader::Loaded>,
    snap: bool,
    /// The hit counters could not be read: said once, not at every chunk.
    hits_warned: AtomicBool,
}

impl Live {
    fn raised<T>(&self, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        crate::privs::with_raised(f).with_context(|| format!("raising capabilities for {what}"))?
    }

    /// Recursion skips per probe with a count.
    fn misses(&self) -> Vec<(String, u64)> {
        self.loaded
            .recursion_misses()
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

impl Boundary for Live {
    fn lost_per_cpu(&self) -> Option<Vec<u64>> {
        // Without capabilities, kernels before 6.5 refuse the map read: retry raised.
        self.loaded
            .lost_per_cpu()
            .or_else(|_| self.raised("the lost counters", || self.loaded.lost_per_cpu()))
            .ok()
    }

    fn probe_hits(&self) -> Vec<(String, u64)> {
        let mut hits = self
            .loaded
            .probe_hits()
            .or_else(|_| self.raised("the probe hits", || self.loaded.probe_hits()))
            .unwrap_or_else(|e| {
                if !self.hits_warned.swap(true, Ordering::Relaxed) {
                    eprintln!("smc-record: warning: {e:#}");
                }
                Vec::new()
            });
        // Skipped runs (another BPF program active on the CPU) go next to the hits
        // as "<probe>.missed" entries, so the trailer shows every kind of loss.
        hits.extend(
            self.misses()
                .into_iter()
                .map(|(p, n)| (format!("{p}.missed"), n)),
        );
        hits
    }

    fn snapshot(&self) -> Option<Snapshot> {
        if !self.snap {
            return None;
        }
        crate::privs::with_raised(|| snapshot(true)).unwrap_or_else(|e| {
            Some(Snapshot {
                taken_monotonic_ns: clock_ns(libc::CLOCK_MONOTONIC),
                error: Some(format!("{e:#}")),
                ..Default::default()
            })
        })
    }
}

pub fn run(args: RecordArgs) -> Result<u8, Failure> {
    if let Some(bad) = args
        .exclude
        .iter()
        .find(|e| !PROBES.iter().any(|p| p.name == e.as_str()))
    {
        return Err(Failure::new(
            2,
            anyhow!("--exclude {bad}: no such probe (see `smc-record probes`)"),
        ));
    }
    // First of all: a Ctrl-C/SIGTERM while the probes load (seconds on a slow
    // machine) must still end with a closed file, not kill us half way.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    // In flight mode SIGUSR1 asks for a dump; installed now, so an early one is not fatal.
    let dump_request = Arc::new(AtomicBool::new(false));
    if args.flight.is_some() {
        signal_hook::flag::register(signal_hook::consts::SIGUSR1, dump_request.clone())
            .context("installing the SIGUSR1 handler")?;
    }
    let mode = match (args.flight, args.rotate, args.max_size) {
        (Some(mib), _, _) => output::Mode::Flight {
            budget: mib as u64 * (1 << 20),
            post: Duration::from_secs_f64(args.trigger_post.unwrap_or(0.0).clamp(0.0, 3600.0)),
        },
        (None, Some(keep), Some(max_size)) => output::Mode::Rotate {
            max_size,
            keep: keep as usize,
        },
        _ => output::Mode::Single,
    };
    if args
        .trigger_post
        .is_some_and(|p| !(0.0..=3600.0).contains(&p))
    {
        return Err(Failure::new(
            2,
            anyhow!("--trigger-post must be between 0 and 3600 seconds"),
        ));
    }
    if matches!(mode, output::Mode::Single) {
        check_output(&args.output, args.force)?;
    } else {
        if std::fs::symlink_metadata(&args.output).is_ok_and(|m| m.is_dir()) {
            return Err(Failure::new(
                2,
                anyhow!(
                    "--output {} is a directory; give a file name (the series is named after it)",
                    args.output.display()
                ),
            ));
        }
        check_output(&output::numbered(&args.output, 1), args.force)?;
        output::check_series(&args.output, args.force).map_err(|e| {
            Failure::from(anyhow::Error::new(
                smctrace_format::FormatError::OutputRefused {
                    path: args.output.clone(),
                    reason: format!("{e:#}"),
                },
            ))
        })?;
    }
    check_privileges()?;
    if !args.buffer.is_power_of_two() || args.buffer < 4096 || args.buffer > (1 << 30) {
        return Err(Failure::new(
            2,
            anyhow!("--buffer must be a power of two between 4k and 1G"),
        ));
    }
    let btf = kernel_btf()?;
    let filters = Filters {
        pids: args.pids.clone(),
        comms: args.comms.clone(),
        ports: args.ports.clone(),
        netns: args.netns.clone(),
    };
    let cfg = Config {
        filters: filters.clone(),
        payload_bytes: args.payload,
        ring_bytes: args.buffer as u32,
        sock_key: random_key()?,
        exclude: args.exclude.clone(),
        conn_pairs: crate::conns::resolve_ids(&args.conns).map_err(|e| Failure::new(2, e))?,
    };
    let mut loaded = loader::load_and_attach(&btf, &cfg).map_err(|e| Failure::new(exit::BPF, e))?;
    let attached = loaded.probes.iter().filter(|p| p.attached).count();
    if attached == 0 {
        let why = loaded
            .probes
            .first()
            .and_then(|p| p.error.clone())
            .unwrap_or_default();
        return Err(Failure::new(
            exit::BPF,
            anyhow!("no probe could be attached (first error: {why})"),
        ));
    }
    if !args.quiet {
        for p in loaded
            .probes
            .iter()
            .filter(|p| !p.attached && !args.exclude.contains(&p.name))
        {
            eprintln!(
                "smc-record: probe {} ({}) not attached: {}",
                p.name,
                p.hook,
                p.error.as_deref().unwrap_or("?")
            );
        }
    }

    let (host, release) = uname();
    let meta = Metadata {
        host,
        kernel_release: release,
        boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        recorder_version: env!("CARGO_PKG_VERSION").to_string(),
        command_line: std::env::args().collect(),
        clock: ClockRef {
            monotonic_ns: clock_ns(libc::CLOCK_MONOTONIC),
            realtime_ns: clock_ns(libc::CLOCK_REALTIME),
        },
        probes: loaded.probes.clone(),
        filters,
        payload_bytes: args.payload,
        start_snapshot: snapshot(!args.no_snapshot),
        extra: vec![
            (
                "sock_id".into(),
                "murmur3-fmix64(addr ^ key0) ^ key1, per-recording random key".into(),
            ),
            ("ring_bytes".into(), args.buffer.to_string()),
            (
                "event_abi".into(),
                smctrace_format::event::EVENT_ABI.to_string(),
            ),
        ],
    };
    let ring = loaded.take_ring().map_err(|e| Failure::new(exit::BPF, e))?;
    let loaded = Arc::new(loaded);
    let live = Arc::new(Live {
        loaded: loaded.clone(),
        snap: !args.no_snapshot,
        hits_warned: AtomicBool::new(false),
    });
    let multi = !matches!(mode, output::Mode::Single);
    let output = Output::new(
        mode,
        &args.output,
        args.force,
        meta,
        live.clone(),
        args.quiet,
    )
    .map_err(Failure::from)?;

    let progress = Arc::new(Progress::default());
    // Everything privileged is done: record with no effective capability (see privs.rs).
    // Before Pipeline::start, so its threads (and the command's waiter) start without them.
    crate::privs::drop_while_recording().context("dropping capabilities")?;
    let lost_at_cut: Option<Arc<dyn Boundary>> = if multi { Some(live.clone()) } else { None };
    let pipeline = Pipeline::start(
        ring,
        output,
        stop.clone(),
        progress.clone(),
        Options {
            chunk_bytes: 1 << 20,
            chunk_age: Duration::from_millis(100),
            zstd_level: args.zstd_level,
            chunk_layout: args.chunk_layout,
            lost_at_cut,
            triggers: TriggerCheck::new(&args.triggers),
            dump_request,
        },
    )?;

    // From here on every path goes through finish(): the file is always closed.
    let outcome = session(&args, &stop, &progress, &loaded, multi);
    stop.store(true, Ordering::Release);
    let closed = close(pipeline, &live);
    if let Some(p) = &args.ready_file {
        let _ = std::fs::remove_file(p);
    }
    let (files, lost) = closed?;
    if !args.quiet {
        if std::io::stderr().is_terminal() {
            eprintln!();
        }
        let events: u64 = files.iter().map(|f| f.summary.events).sum();
        let chunks: u64 = files.iter().map(|f| f.summary.chunks).sum();
        let bytes: u64 = files.iter().map(|f| f.summary.bytes).sum();
        let last = files
            .last()
            .map(|f| f.summary.path.display().to_string())
            .unwrap_or_default();
        if multi {
            eprintln!("smc-record: {events} events, {chunks} chunks, {bytes} bytes in {} files written (last {last}); lost {lost}", files.len());
        } else {
            eprintln!("smc-record: {events} events, {chunks} chunks, {bytes} bytes -> {last}; lost {lost}");
        }
    }
    if lost > 0 {
        eprintln!("smc-record: warning: {lost} events were lost (ring buffer full); try a larger --buffer or filters");
    }
    let malformed = progress.malformed.load(Ordering::Relaxed);
    if malformed > 0 {
        eprintln!("smc-record: warning: {malformed} malformed ring buffer records were skipped");
    }
    outcome
}

/// Run until a stop condition; returns the exit code (the command's, if any).
fn session(
    args: &RecordArgs,
    stop: &Arc<AtomicBool>,
    progress: &Progress,
    loaded: &loader::Loaded,
    multi: bool,
) -> Result<u8, Failure> {
    let child_status: Arc<Mutex<Option<ExitStatus>>> = Arc::new(Mutex::new(None));
    if !args.command.is_empty() && stop.load(Ordering::Acquire) {
        eprintln!(
            "smc-record: interrupted before `{}` was started; not running it",
            args.command[0]
        );
        return Ok(0);
    }
    if !args.command.is_empty() {
        let mut child = Command::new(&args.command[0])
            .args(&args.command[1..])
            .spawn()
            .with_context(|| format!("starting `{}`", args.command[0]))?;
        let st = child_status.clone();
        let stop2 = stop.clone();
        std::thread::spawn(move || {
            let status = child.wait();
            if let Ok(s) = status {
                *st.lock().unwrap() = Some(s);
            }
            stop2.store(true, Ordering::Release);
        });
    }
    if let Some(p) = &args.ready_file {
        std::fs::write(p, format!("{}\n", std::process::id()))
            .with_context(|| format!("creating ready file {}", p.display()))?;
    }
    let started = Instant::now();
    let deadline = args.duration.map(Duration::from_secs_f64);
    let status_line = !args.quiet && std::io::stderr().is_terminal();
    let mut last_status = Instant::now();
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(50));
        if deadline.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        if !multi
            && args
                .max_size
                .is_some_and(|m| progress.file_bytes.load(Ordering::Relaxed) >= m)
        {
            if !args.quiet {
                eprintln!("\nsmc-record: --max-size reached");
            }
            break;
        }
        if status_line && last_status.elapsed() >= Duration::from_millis(500) {
            last_status = Instant::now();
            // Without capabilities, kernels before 6.5 refuse the map read: "?" then.
            let lost = loaded
                .lost_per_cpu()
                .map(|v| v.iter().sum::<u64>().to_string())
                .unwrap_or_else(|_| "?".into());
            eprint!(
                "\r{:>8.1}s  {:>10} events  {:>8.2} MB written  {} lost",
                started.elapsed().as_secs_f64(),
                progress.events.load(Ordering::Relaxed),
                progress.file_bytes.load(Ordering::Relaxed) as f64 / 1e6,
                lost
            );
            let _ = std::io::stderr().flush();
        }
    }
    if args.command.is_empty() {
        return Ok(0);
    }
    // Give the waiter thread a moment if we stopped for another reason.
    let status = *child_status.lock().unwrap();
    Ok(match status {
        Some(s) => match (s.code(), std::os::unix::process::ExitStatusExt::signal(&s)) {
            (Some(c), _) => c as u8,
            (None, Some(sig)) => 128u8.wrapping_add(sig as u8),
            _ => exit::ERROR,
        },
        None => 0,
    })
}

/// Stop the pipeline and close the output; returns the files written and the
/// events the kernel lost over the whole recording.
fn close(pipeline: Pipeline, live: &Live) -> Result<(Vec<output::Closed>, u64), Failure> {
    let output = pipeline.finish()?;
    if let Err(e) = crate::privs::raise_for_close() {
        eprintln!("smc-record: warning: {e:#}; the counters and end snapshot may be incomplete");
    }
    let lost_per_cpu = live
        .loaded
        .lost_per_cpu()
        .map_err(|e| eprintln!("smc-record: warning: {e:#}"))
        .ok();
    let misses = live.misses();
    let missed: u64 = misses.iter().map(|(_, n)| n).sum();
    if missed > 0 {
        let list: Vec<String> = misses.iter().map(|(p, n)| format!("{p} {n}")).collect();
        eprintln!(
            "smc-record: warning: the kernel skipped {missed} probe runs because another BPF program was running on the CPU ({})",
            list.join(", ")
        );
    }
    let lost = lost_per_cpu.as_ref().map_or(0, |v| v.iter().sum());
    let files = output
        .finish(lost_per_cpu)
        .map_err(|e| Failure::from(e.context("closing the recording")))?;
    Ok((files, lost))
}

/// `smc-record probes`: the table of probes on this kernel.
pub fn probes(dry_run: bool, btf_dir: Option<&Path>) -> Result<(), Failure> {
    let btf = match btf_dir {
        Some(d) => KernelBtf::from_files(&d.join("vmlinux.btf"), &d.join("smc.btf"))
            .map_err(|e| Failure::new(exit::NO_BTF, e))?,
        None => kernel_btf()?,
    };

    let offsets = btf.resolve_all();
    let verdicts = loader::preflight(&btf, &offsets);
    let attach = !dry_run && check_privileges().is_ok();
    let infos = if attach {
        let cfg = Config {
            filters: Filters::default(),
            payload_bytes: 0,
            ring_bytes: 4096,
            sock_key: random_key()?,
            exclude: Vec::new(),
            conn_pairs: Vec::new(),
        };
        Some(
            loader::load_and_attach(&btf, &cfg)
                .map_err(|e| Failure::new(exit::BPF, e))?
                .probes,
        )
    } else {
        None
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{:<18} {:<26} {:<18} {:<24} STATUS",
        "PROBE", "HOOK", "ATTACH", "STAGE"
    );
    let mut lost_stages = Vec::new();
    let mut on_tracepoints = Vec::new();
    for (i, p) in PROBES.iter().enumerate() {
        let mut kind = p
            .programs
            .iter()
            .map(|(_, a)| a.name())
            .collect::<Vec<_>>()
            .join("+");
        let mut hook = p.hook.to_string();
        let tp = match &infos {
            Some(v) => (v[i].error.is_none() && v[i].attach_type.starts_with("raw_tp ("))
                .then(|| v[i].hook.clone()),
            None => crate::probes::preferred_tracepoint(p.name, |t| btf.has_tracepoint(t))
                .map(|t| t.tracepoint.to_string()),
        };
        if let Some(v) = &infos {
            if v[i].error.is_none() {
                kind = v[i].attach_type.clone();
            }
        }
        if let Some(tp) = tp {
            on_tracepoints.push(format!(
                "{} on tracepoint smc:{tp} (instead of a kprobe on {})",
                p.name, p.hook
            ));
            hook = tp;
            kind = "raw_tp".to_string();
        }
        let status = match &infos {
            Some(v) => match &v[i].error {
                None => "attached".to_string(),
                Some(e) => format!("NOT ATTACHED: {e}"),
            },
            None => match &verdicts[i] {
                None => "available (not attached: dry run or no privileges)".to_string(),
                Some(e) => format!("UNAVAILABLE: {e}"),
            },
        };
        let ok = status.starts_with("attached") || status.starts_with("available");
        if !ok {
            lost_stages.push(format!("{} ({}): {}", p.stage, p.name, p.loses));
        }
        let _ = writeln!(
            out,
            "{:<18} {:<26} {:<18} {:<24} {}",
            p.name, hook, kind, p.stage, status
        );
    }
    if on_tracepoints.is_empty() {
        let _ = writeln!(out, "\nTracepoints: none of the smctrace series' tracepoints in this kernel; function probes (fentry/fexit, else kprobes) everywhere.");
    } else {
        let _ = writeln!(
            out,
            "\nTracepoints of the smctrace series preferred over function probes:"
        );
        for l in &on_tracepoints {
            let _ = writeln!(out, "  - {l}");
        }
    }
    if lost_stages.is_empty() {
        let _ = writeln!(out, "\nEvery stage is available on this kernel.");
    } else {
        let _ = writeln!(out, "\nThe analysis will lack:");
        for l in lost_stages {
            let _ = writeln!(out, "  - {l}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64k"), Ok(65536));
        assert_eq!(parse_size("16M"), Ok(16 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert!(parse_size("x").is_err());
        assert!(parse_size("99999999999999G").is_err());
    }
}
