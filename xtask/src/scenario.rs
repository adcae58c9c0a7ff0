//! The lab's scenarios: a workload between the two guests and the assertions that prove
//! what it must prove (SMC-R really used, or the expected fallback), checked on the files
//! the guests leave in the run's output directory.
//!
//! Each scenario is two shell scripts (B = server, A = client) built from the workspace's
//! own tools at their host paths: `smc-load` for the workload, `smcctl` for the kernel's
//! evidence (smc_diag sockets sampled while the workload runs, netlink SMC statistics and
//! fallback counters after it), optionally wrapped by `smc-record` (`--record`).
//! Files written to `/out` (the host's `--out DIR`):
//! `a-load.json` (smc-load's report), `a-diag-<i>.json` (smc_diag samples),
//! `<a|b>-stats.json`, `<a|b>-fallback.json`, and with --record `<scenario>-<a|b>.smctrace`.

use crate::host::{debug_bin, say};
use crate::kernel::{Kernel, Series};
use crate::vm::{self, sh_quote, Outcome, LAB_UEID};
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// TCP port of the scenario's server in guest B.
const PORT: u16 = 5000;
/// Connections made by `shortconn`.
const SHORTCONN_COUNT: u64 = 50;
/// Messages of `pingpong` (64 bytes each).
const PINGPONG_COUNT: u64 = 2000;
/// At most this many smc_diag samples while the client runs (it stops at the first that
/// shows the socket; one takes ~0.2 s under TCG).
const DIAG_SAMPLES: u32 = 50;
/// Seconds `bulk` streams 1 MiB writes.
const BULK_SECS: u64 = 3;
/// smc_diag mode values (`SMC_DIAG_MODE_*`).
const MODE_SMCR: u64 = 0;
/// smc_diag state of an established SMC socket (`SMC_ACTIVE`).
const SMC_ACTIVE: u64 = 1;
const MODE_FALLBACK_TCP: u64 = 1;
/// The fallback the `fallback` scenario expects of B, the server. B has no UEID, so it finds
/// no SMC-Rv2 device/EID in common and declines with NOSMCDEV (`SMC_CLC_DECL_NOSMCDEV`,
/// measured on Debian 6.1 and 6.12). On 7.x both guests also have an SMC-Dv2 device, DIBS
/// loopback (`lo`), which only matches a peer on the same host: B's search for an SMC-Dv2
/// device fails last and it declines with NOSMCD2DEV (`SMC_CLC_DECL_NOSMCD2DEV`, measured on
/// 7.3.4).
pub fn expected_server_fallback(kernel: Series) -> u32 {
    if kernel.native_smcd_loopback() {
        0x0303_0007
    } else {
        0x0303_0000
    }
}
/// A falls back because the peer declined (`SMC_CLC_DECL_PEERDECL`), on every kernel.
pub const EXPECTED_CLIENT_FALLBACK: u32 = 0x0500_0000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Pingpong,
    Bulk,
    Shortconn,
    Fallback,
    /// smc-record killed with SIGKILL under SMC-R load (see `reliability`).
    Crash,
    /// smc-record writing into a 256 KiB tmpfs until it is full.
    Diskfull,
    /// smc-record with a 4 KiB ring buffer under SMC-R load: counted losses.
    Overload,
    /// smc-record `--flight 1 --trigger fallback` and `--max-size --rotate 3` over an
    /// SMC-R ping-pong, then a connection that falls back (see `reliability`).
    Flight,
    /// One guest, SMC-D over loopback-ism (patched smc.ko), recorded and analyzed (see `smcd_scenarios`).
    SmcdLoopback,
    /// One guest, a slow reader: kernel latency metrics against the BPF monitor (see `smcd_scenarios`).
    Metrics,
    /// One guest, the kernel series' KUnit suite and kselftest (7.x; see `kernel_tests`).
    KernelTests,
}

/// The recorder's reliability scenarios, run and checked by `reliability`: the module
/// matches on these alone, so a new SMC-R scenario never reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reliability {
    Crash,
    Diskfull,
    Overload,
    Flight,
}

/// The one-guest SMC-D scenarios, run and checked by `smcd_scenarios`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Smcd {
    Loopback,
    Metrics,
}

impl From<Reliability> for Scenario {
    fn from(r: Reliability) -> Scenario {
        match r {
            Reliability::Crash => Scenario::Crash,
            Reliability::Diskfull => Scenario::Diskfull,
            Reliability::Overload => Scenario::Overload,
            Reliability::Flight => Scenario::Flight,
        }
    }
}

impl From<Smcd> for Scenario {
    fn from(s: Smcd) -> Scenario {
        match s {
            Smcd::Loopback => Scenario::SmcdLoopback,
            Smcd::Metrics => Scenario::Metrics,
        }
    }
}

impl Reliability {
    pub fn name(self) -> &'static str {
        Scenario::from(self).name()
    }
}

impl Smcd {
    pub fn name(self) -> &'static str {
        Scenario::from(self).name()
    }
}

pub struct Options {
    pub record: bool,
    pub timeout: Duration,
    pub memory_mb: u32,
    pub smcctl: PathBuf,
    pub smc_modules: Option<PathBuf>,
}

impl Scenario {
    pub const ALL: [Scenario; 4] = [
        Scenario::Pingpong,
        Scenario::Bulk,
        Scenario::Shortconn,
        Scenario::Fallback,
    ];

    /// The recorder's reliability scenarios (not in `all`: they test smc-record itself,
    /// always record, and need smc-record and smc-analyze built).
    pub const RELIABILITY: [Scenario; 4] = [
        Scenario::Crash,
        Scenario::Diskfull,
        Scenario::Overload,
        Scenario::Flight,
    ];

    /// The one-guest SMC-D scenarios on the out-of-tree smc.ko of kernel/module/build.sh
    /// (not in `all`: the module is built for 6.12 only; they always record or monitor).
    pub const SMCD: [Scenario; 2] = [Scenario::SmcdLoopback, Scenario::Metrics];

    pub fn parse(s: &str) -> Result<Scenario> {
        Scenario::ALL
            .into_iter()
            .chain(Scenario::RELIABILITY)
            .chain(Scenario::SMCD)
            .chain([Scenario::KernelTests])
            .find(|sc| sc.name() == s)
            .with_context(|| {
                format!("unknown scenario {s:?} (known: pingpong, bulk, shortconn, fallback, crash, diskfull, overload, flight, smcd-loopback, metrics, kernel-tests)")
            })
    }

    /// Whether the scenario runs smc-record and smc-analyze whatever `--record` says.
    pub fn needs_recorder(self) -> bool {
        self.reliability().is_some()
    }

    /// The reliability scenario this is, if it is one.
    pub fn reliability(self) -> Option<Reliability> {
        match self {
            Scenario::Crash => Some(Reliability::Crash),
            Scenario::Diskfull => Some(Reliability::Diskfull),
            Scenario::Overload => Some(Reliability::Overload),
            Scenario::Flight => Some(Reliability::Flight),
            _ => None,
        }
    }

    /// The one-guest SMC-D scenario this is, if it is one.
    pub fn smcd(self) -> Option<Smcd> {
        match self {
            Scenario::SmcdLoopback => Some(Smcd::Loopback),
            Scenario::Metrics => Some(Smcd::Metrics),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Pingpong => "pingpong",
            Scenario::Bulk => "bulk",
            Scenario::Shortconn => "shortconn",
            Scenario::Fallback => "fallback",
            Scenario::Crash => "crash",
            Scenario::Diskfull => "diskfull",
            Scenario::Overload => "overload",
            Scenario::Flight => "flight",
            Scenario::SmcdLoopback => "smcd-loopback",
            Scenario::Metrics => "metrics",
            Scenario::KernelTests => "kernel-tests",
        }
    }

    /// Connections the client makes.
    fn connections(self) -> u64 {
        match self {
            Scenario::Shortconn => SHORTCONN_COUNT,
            _ => 1,
        }
    }

    fn client_args(self) -> String {
        match self {
            Scenario::Pingpong => format!("--mode pingpong --count {PINGPONG_COUNT} --size 64"),
            Scenario::Fallback => format!("--mode pingpong --count {PINGPONG_COUNT} --size 64"),
            Scenario::Bulk => format!("--mode bulk --duration {BULK_SECS} --size 1048576"),
            Scenario::Shortconn => format!("--mode shortconn --count {SHORTCONN_COUNT} --size 64"),
            Scenario::Crash | Scenario::Diskfull | Scenario::Overload | Scenario::Flight => {
                crate::reliability::client_args(self.reliability().expect("a reliability scenario"))
            }
            // runs no smc-load of its own
            Scenario::KernelTests => String::new(),
            Scenario::SmcdLoopback | Scenario::Metrics => {
                crate::smcd_scenarios::client_args(self.smcd().expect("an SMC-D scenario"))
            }
        }
    }
}

/// Paths of the workspace binaries the scripts call.
pub struct Tools {
    pub smcctl: PathBuf,
    pub load: PathBuf,
    pub record: PathBuf,
}

fn record_start(tools: &Tools, scenario: Scenario, role: &str) -> String {
    format!(
        "{rec} record --output /out/{sc}-{role}.smctrace --ready-file /tmp/rec.ready -q &\n\
         rec=$!\n\
         n=0\n\
         while [ ! -e /tmp/rec.ready ]; do\n\
         \x20 kill -0 $rec 2>/dev/null || {{ echo \"smc-record exited before it was ready\"; exit 90; }}\n\
         \x20 n=$((n + 1)); [ $n -le 600 ] || {{ echo \"smc-record not ready after 60 s\"; kill -KILL $rec; exit 91; }}\n\
         \x20 sleep 0.1\n\
         done\n",
        rec = sh_quote(&tools.record.display().to_string()),
        sc = scenario.name(),
    )
}

const RECORD_STOP: &str = "kill -INT $rec\n\
     if wait $rec; then :; else rc=$?; echo \"smc-record exited with status $rc\"; exit 92; fi\n";

/// Guest B's script: the server, then the evidence.
pub fn b_script(scenario: Scenario, tools: &Tools, record: bool) -> String {
    let smcctl = sh_quote(&tools.smcctl.display().to_string());
    let load = sh_quote(&tools.load.display().to_string());
    if scenario == Scenario::Flight {
        return crate::reliability::flight_b_script(tools);
    }
    let mut s = String::from("set -e\n");
    if scenario == Scenario::Fallback {
        // The server side refuses SMC-Rv2: no UEID in common with the client.
        s += &format!("{smcctl} ueid del {LAB_UEID}\n");
    }
    let record = record && !scenario.needs_recorder();
    if record {
        s += &record_start(tools, scenario, "b");
    }
    s += &format!(
        "{load} server --listen 0.0.0.0:{PORT} --exit-after {}{}\n",
        scenario.connections(),
        // The reliability scenarios stop their client from outside: a reset is expected.
        if scenario.needs_recorder() {
            " || echo \"server ended with status $?\""
        } else {
            ""
        }
    );
    if record {
        s += RECORD_STOP;
    }
    s += &format!("{smcctl} stats --json > /out/b-stats.json\n{smcctl} fallback --json > /out/b-fallback.json\n");
    s
}

/// Guest A's script: the client with smc_diag sampled while it runs, then the evidence.
pub fn a_script(scenario: Scenario, tools: &Tools, record: bool) -> String {
    if let Some(r) = scenario.reliability() {
        return crate::reliability::a_script(r, tools);
    }
    let smcctl = sh_quote(&tools.smcctl.display().to_string());
    let load = sh_quote(&tools.load.display().to_string());
    let mut s = String::from("set -e\n");
    if record {
        s += &record_start(tools, scenario, "a");
    }
    s += &format!(
        "{load} client --connect \"$SMCTRACE_PEER:{PORT}\" {} --json > /out/a-load.json &\n\
         load=$!\n\
         i=0\n\
         while kill -0 $load 2>/dev/null && [ $i -lt {DIAG_SAMPLES} ]; do\n\
         \x20 {smcctl} diag --json > /out/a-diag-$i.json || true\n\
         \x20 grep -q '\"remote_port\": {PORT}' /out/a-diag-$i.json && grep -q '\"state\": 1,' /out/a-diag-$i.json && break\n\
         \x20 i=$((i + 1)); sleep 0.1\n\
         done\n\
         if wait $load; then :; else rc=$?; echo \"smc-load client failed with status $rc\"; exit $rc; fi\n",
        scenario.client_args()
    );
    if record {
        s += RECORD_STOP;
    }
    s += &format!(
        "{smcctl} stats --json > /out/a-stats.json\n{smcctl} fallback --json > /out/a-fallback.json\n\
         cat /out/a-load.json\n"
    );
    s
}

/// A JSON file a guest left in the output directory.
pub fn read_json(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("{} missing", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// An unsigned field of a JSON object, 0 when absent.
pub fn num(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// Successful SMC-R handshakes counted by `smcctl stats --json` on one side.
pub fn smcr_successes(stats: &Value, client: bool) -> u64 {
    let side = if client { "clnt" } else { "srv" };
    num(stats, &format!("smcr.{side}_v1_succ_cnt"))
        + num(stats, &format!("smcr.{side}_v2_succ_cnt"))
}

/// Fallbacks counted by `smcctl fallback --json` (both sides).
pub fn fallback_total(fb: &Value) -> u64 {
    num(fb, "server_total") + num(fb, "client_total")
}

/// Reason codes with a non-zero count in `smcctl fallback --json`.
pub fn fallback_reasons(fb: &Value) -> Vec<u32> {
    fb.get("reasons")
        .and_then(Value::as_array)
        .map(|rs| {
            rs.iter()
                .filter(|r| num(r, "count") > 0)
                .filter_map(|r| r.get("code").and_then(Value::as_u64).map(|c| c as u32))
                .collect()
        })
        .unwrap_or_default()
}

/// The sockets of all diag samples whose peer is the scenario's server.
pub fn diag_server_sockets(samples: &[Value]) -> Vec<&Value> {
    samples
        .iter()
        .filter_map(Value::as_array)
        .flatten()
        .filter(|s| num(s, "remote_port") == PORT as u64)
        .collect()
}

fn diag_samples(out: &Path) -> Vec<Value> {
    let mut v = Vec::new();
    for i in 0..DIAG_SAMPLES {
        if let Ok(j) = read_json(&out.join(format!("a-diag-{i}.json"))) {
            v.push(j);
        }
    }
    v
}

/// Check a finished run; the error names the first failed assertion.
pub fn check(scenario: Scenario, kernel: Series, out: &Path, record: bool) -> Result<Vec<String>> {
    if let Some(r) = scenario.reliability() {
        return crate::reliability::check(r, out, &debug_bin("smc-analyze"));
    }
    let mut proven = Vec::new();
    let load = read_json(&out.join("a-load.json"))?;
    let count = num(&load, "count");
    if count == 0 {
        bail!("assertion failed: smc-load client did no work (count 0 in a-load.json)");
    }
    if scenario == Scenario::Shortconn && num(&load, "connects") < SHORTCONN_COUNT {
        bail!(
            "assertion failed: {} of {SHORTCONN_COUNT} short connections completed",
            num(&load, "connects")
        );
    }
    let a_stats = read_json(&out.join("a-stats.json"))?;
    let b_stats = read_json(&out.join("b-stats.json"))?;
    let a_fb = read_json(&out.join("a-fallback.json"))?;
    let b_fb = read_json(&out.join("b-fallback.json"))?;
    let samples = diag_samples(out);
    let socks = diag_server_sockets(&samples);
    let want = scenario.connections();
    if scenario == Scenario::Fallback {
        let (a, b) = (
            smcr_successes(&a_stats, true),
            smcr_successes(&b_stats, false),
        );
        if a + b != 0 {
            bail!("assertion failed: SMC-R handshakes succeeded (A {a}, B {b}) although B has no UEID");
        }
        for (who, fb, side, want) in [
            ("A", &a_fb, "client_total", EXPECTED_CLIENT_FALLBACK),
            ("B", &b_fb, "server_total", expected_server_fallback(kernel)),
        ] {
            let reasons = fallback_reasons(fb);
            if num(fb, side) == 0 || !reasons.contains(&want) {
                bail!(
                    "assertion failed: {who} must count a fallback with reason {want:#010x}, netlink says {} fallback(s), reasons {}",
                    num(fb, side),
                    hexes(&reasons)
                );
            }
            proven.push(format!(
                "{who} fell back to TCP with reason {want:#010x} (netlink fallback stats)"
            ));
        }
        let fell: Vec<&&Value> = socks
            .iter()
            .filter(|s| num(s, "mode") == MODE_FALLBACK_TCP)
            .collect();
        if fell.is_empty() {
            bail!("assertion failed: no smc_diag sample shows the client socket in fallback mode ({} samples)", samples.len());
        }
        let r = fell[0]
            .get("fallback")
            .map(|f| num(f, "reason") as u32)
            .unwrap_or(0);
        if r != EXPECTED_CLIENT_FALLBACK {
            bail!("assertion failed: smc_diag fallback reason {r:#010x} on A, expected {EXPECTED_CLIENT_FALLBACK:#010x}");
        }
        proven.push(format!(
            "smc_diag: live client socket in mode TCP (fallback), reason {r:#010x}"
        ));
        return Ok(proven);
    }
    let (a, b) = (
        smcr_successes(&a_stats, true),
        smcr_successes(&b_stats, false),
    );
    if a < want || b < want {
        bail!("assertion failed: {want} SMC-R connection(s) expected, netlink stats count A {a} client, B {b} server");
    }
    proven.push(format!(
        "SMC-R handshakes: A {a} client, B {b} server (netlink stats)"
    ));
    let (fa, fb) = (fallback_total(&a_fb), fallback_total(&b_fb));
    if fa != 0 || fb != 0 {
        bail!(
            "assertion failed: TCP fallback must be 0, netlink counts A {fa} (reasons {}), B {fb} (reasons {})",
            hexes(&fallback_reasons(&a_fb)),
            hexes(&fallback_reasons(&b_fb))
        );
    }
    proven.push("TCP fallbacks: 0 on both sides (netlink)".to_string());
    if scenario != Scenario::Shortconn {
        // Mid-handshake smc_diag says state INIT and mode 0, which is also SMCR's value:
        // only an established (ACTIVE) socket proves the mode.
        if !socks
            .iter()
            .any(|s| num(s, "state") == SMC_ACTIVE && num(s, "mode") == MODE_SMCR)
        {
            bail!(
                "assertion failed: no smc_diag sample ({} taken) shows the client socket ACTIVE in mode SMCR",
                samples.len()
            );
        }
        proven.push("smc_diag: live client socket in mode SMCR".to_string());
    }
    if record {
        for role in ["a", "b"] {
            let p = out.join(format!("{}-{role}.smctrace", scenario.name()));
            let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            if len == 0 {
                bail!(
                    "assertion failed: recording {} missing or empty",
                    p.display()
                );
            }
            proven.push(format!("recording {} ({len} bytes)", p.display()));
        }
    }
    Ok(proven)
}

fn hexes(codes: &[u32]) -> String {
    if codes.is_empty() {
        return "none".into();
    }
    codes
        .iter()
        .map(|c| format!("{c:#010x}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The one-line summary of smc-load's report.
fn load_summary(load: &Value) -> String {
    let f = |k: &str| load.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    let mode = load.get("mode").and_then(Value::as_str).unwrap_or("?");
    let proto = load.get("proto").and_then(Value::as_str).unwrap_or("?");
    let what = match mode {
        "bulk" => format!(
            "{} writes of {} B, {:.1} MB/s",
            num(load, "count"),
            num(load, "size"),
            f("mbytes_per_s")
        ),
        "shortconn" => format!(
            "{} connections, {:.0} connects/s, connect+RTT p50 {:.0} us p99 {:.0} us",
            num(load, "connects"),
            f("msgs_per_s"),
            f("rtt_p50_us"),
            f("rtt_p99_us")
        ),
        _ => format!(
            "{} messages of {} B, RTT p50 {:.0} us p99 {:.0} us, {:.0} msgs/s",
            num(load, "count"),
            num(load, "size"),
            f("rtt_p50_us"),
            f("rtt_p99_us"),
            f("msgs_per_s")
        ),
    };
    format!("smc-load {mode} over {proto}: {what}")
}

/// Run `scenario` on `kernel`, check it, and return the process exit code.
pub fn run(scenario: Scenario, kernel: &Kernel, out: &Path, opts: &Options) -> Result<i32> {
    if scenario == Scenario::KernelTests {
        return crate::kernel_tests::run(kernel, out, opts);
    }
    if let Some(sc) = scenario.smcd() {
        return crate::smcd_scenarios::run(sc, kernel, out, opts);
    }
    let extra_modules = if kernel.series.needs_rxe_fix() {
        vec![crate::kernel::ensure_rxe_fix(kernel)?]
    } else {
        Vec::new()
    };
    let tools = Tools {
        smcctl: opts.smcctl.clone(),
        load: debug_bin("smc-load"),
        record: debug_bin("smc-record"),
    };
    for (name, p) in [("smcctl", &tools.smcctl), ("smc-load", &tools.load)] {
        if !p.exists() {
            bail!(
                "{name} not found at {} (build it, or drop --no-build)",
                p.display()
            );
        }
    }
    if scenario.needs_recorder() {
        let analyze = debug_bin("smc-analyze");
        for p in [&tools.record, &analyze] {
            if !p.exists() {
                bail!(
                    "scenario {} needs {}, which is not built (drop --no-build)",
                    scenario.name(),
                    p.display()
                );
            }
        }
    }
    if opts.record && !tools.record.exists() {
        bail!("--record needs {}, which is not built (is the recorder there yet? cargo build -p smc-record)", tools.record.display());
    }
    // Old evidence in a reused --out DIR must not pass for this run's.
    for e in std::fs::read_dir(out)?.flatten() {
        let n = e.file_name().to_string_lossy().to_string();
        if (n.starts_with("a-") || n.starts_with("b-")) && n.ends_with(".json")
            || n.ends_with(".smctrace")
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let spec = vm::Spec {
        kernel: kernel.clone(),
        out: out.to_path_buf(),
        a_cmds: a_script(scenario, &tools, opts.record),
        b_cmds: Some(b_script(scenario, &tools, opts.record)),
        smc_setup: true,
        timeout: opts.timeout,
        smcctl: tools.smcctl.clone(),
        extra_modules,
        smc_modules: opts.smc_modules.clone(),
        memory_mb: opts.memory_mb,
        echo: true,
    };
    say(&format!(
        "scenario {} on kernel {} ({} {}), output in {}",
        scenario.name(),
        kernel.kver,
        kernel.package,
        kernel.version,
        out.display()
    ));
    let o: Outcome = vm::run(&spec)?;
    let wall = o.wall.as_secs_f64();
    if !o.ok() {
        eprintln!(
            "lab: {} FAILED after {wall:.1} s: {}",
            scenario.name(),
            o.failure_summary()
        );
        return Ok(1);
    }
    match check(scenario, kernel.series, out, opts.record) {
        Ok(proven) => {
            if let Ok(load) = read_json(&out.join("a-load.json")) {
                say(&load_summary(&load));
            }
            for p in proven {
                say(&format!("ok: {p}"));
            }
            say(&format!(
                "{} PASSED on {}: boot-to-result {wall:.1} s",
                scenario.name(),
                kernel.kver
            ));
            Ok(0)
        }
        Err(e) => {
            eprintln!(
                "lab: {} FAILED after {wall:.1} s: {e:#} (serial logs kept: {})",
                scenario.name(),
                o.serial_logs()
            );
            Ok(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tools() -> Tools {
        Tools {
            smcctl: "/w/smcctl".into(),
            load: "/w/smc-load".into(),
            record: "/w/smc-record".into(),
        }
    }

    #[test]
    fn summaries_fit_the_mode() {
        let bulk = json!({"mode": "bulk", "proto": "smc", "count": 27, "size": 1048576, "mbytes_per_s": 8.14});
        assert_eq!(
            load_summary(&bulk),
            "smc-load bulk over smc: 27 writes of 1048576 B, 8.1 MB/s"
        );
        let pp = json!({"mode": "pingpong", "proto": "smc", "count": 2000, "size": 64,
            "rtt_p50_us": 1072.4, "rtt_p99_us": 10024.4, "msgs_per_s": 555.5});
        assert_eq!(
            load_summary(&pp),
            "smc-load pingpong over smc: 2000 messages of 64 B, RTT p50 1072 us p99 10024 us, 556 msgs/s"
        );
    }

    #[test]
    fn names_roundtrip() {
        for sc in Scenario::ALL {
            assert_eq!(Scenario::parse(sc.name()).unwrap(), sc);
        }
        assert!(Scenario::parse("nope").is_err());
    }

    #[test]
    fn scripts_use_the_workspace_tools() {
        let b = b_script(Scenario::Shortconn, &tools(), false);
        assert!(b.contains("'/w/smc-load' server --listen 0.0.0.0:5000 --exit-after 50"));
        assert!(b.contains("'/w/smcctl' stats --json > /out/b-stats.json"));
        let a = a_script(Scenario::Bulk, &tools(), true);
        assert!(a.contains("--mode bulk --duration 3 --size 1048576 --json"));
        assert!(a.contains("record --output /out/bulk-a.smctrace --ready-file /tmp/rec.ready -q &"));
        assert!(a.find("kill -INT $rec").unwrap() > a.find("wait $load").unwrap());
        assert!(b_script(Scenario::Fallback, &tools(), false).contains("ueid del SMCTRACE-LAB"));
    }

    #[test]
    fn stats_and_fallbacks_are_read() {
        let st = json!({"smcr.clnt_v2_succ_cnt": 3, "smcr.clnt_v1_succ_cnt": 1, "smcr.srv_v2_succ_cnt": 7});
        assert_eq!(smcr_successes(&st, true), 4);
        assert_eq!(smcr_successes(&st, false), 7);
        let fb = json!({"server_total": 0, "client_total": 2,
            "reasons": [{"code": 0x03030000u32, "count": 2, "server": false}, {"code": 5, "count": 0, "server": true}]});
        assert_eq!(fallback_total(&fb), 2);
        assert_eq!(fallback_reasons(&fb), vec![0x03030000]);
    }

    #[test]
    fn check_names_the_failed_assertion() {
        let dir = std::env::temp_dir().join(format!("xtask-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let w = |n: &str, v: Value| std::fs::write(dir.join(n), v.to_string()).unwrap();
        w(
            "a-load.json",
            json!({"mode": "pingpong", "proto": "smc", "count": 2000, "connects": 1}),
        );
        w("a-stats.json", json!({"smcr.clnt_v2_succ_cnt": 1}));
        w("b-stats.json", json!({"smcr.srv_v2_succ_cnt": 1}));
        w(
            "a-fallback.json",
            json!({"server_total": 0, "client_total": 0, "reasons": []}),
        );
        w(
            "b-fallback.json",
            json!({"server_total": 0, "client_total": 0, "reasons": []}),
        );
        // Mid-handshake (state INIT, mode 0) proves nothing; an ACTIVE SMCR socket does.
        w(
            "a-diag-0.json",
            json!([{"state": 2, "mode": 0, "remote_port": 5000}]),
        );
        let e = check(Scenario::Pingpong, Series::V6_12, &dir, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("ACTIVE in mode SMCR"), "{e}");
        w(
            "a-diag-0.json",
            json!([{"state": 1, "mode": 0, "remote_port": 5000}]),
        );
        assert_eq!(
            check(Scenario::Pingpong, Series::V6_12, &dir, false)
                .unwrap()
                .len(),
            3
        );
        w(
            "b-fallback.json",
            json!({"server_total": 1, "client_total": 0, "reasons": [{"code": 0x03030000u32, "count": 1}]}),
        );
        let e = check(Scenario::Pingpong, Series::V6_12, &dir, false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("TCP fallback must be 0") && e.contains("0x03030000"),
            "{e}"
        );
        w(
            "b-fallback.json",
            json!({"server_total": 0, "client_total": 0, "reasons": []}),
        );
        w(
            "a-diag-0.json",
            json!([{"state": 1, "mode": 1, "remote_port": 5000}]),
        );
        let e = check(Scenario::Pingpong, Series::V6_12, &dir, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("mode SMCR"), "{e}");
        let e = check(Scenario::Pingpong, Series::V6_12, &dir, true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("mode SMCR"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
