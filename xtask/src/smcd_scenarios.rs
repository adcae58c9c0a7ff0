//! The one-guest SMC-D scenarios (`cargo xtask lab run smcd-loopback|metrics`): the
//! out-of-tree net/smc of `kernel/module/build.sh` (CONFIG_SMC_LO on, with the latency
//! series unless `--smc-modules` names another build) loaded in guest A, and AF_SMC over
//! 127.0.0.1, which loopback-ism turns into SMC-D.
//!
//! - `smcd-loopback`: a recorded ping-pong; SMC-D proven by smc_diag (mode SMCD), the
//!   netlink SMC-D statistics and zero fallbacks; the recording analyzed on the host by
//!   `smc-analyze report --json` must show the SMC-D connection with its stages and
//!   (almost) every message complete.
//! - `metrics`: a slow reader (`smc-load --read-delay`) while `smc-record conns --source
//!   bpf` (the BPF monitor) runs; the injected delay must appear in the kernel's
//!   per-connection metrics (SMC_DIAG_LATENCY anomalies, sampled with `smcctl diag`) and
//!   in the BPF monitor's anomalies, matched one by one by timestamp (both are
//!   CLOCK_MONOTONIC), within the tolerances below.
//!
//! Guest B does not boot. Files in `/out`: `a-load.json`, `a-diag-<i>.json`,
//! `a-stats.json`, `a-fallback.json`; `smcd-loopback-a.smctrace`; for `metrics`
//! `metrics-bpf.jsonl` (the monitor's samples) and `metrics-bpf.err`.

use crate::host::{debug_bin, say, workspace_root};
use crate::kernel::Kernel;
use crate::scenario::{num, read_json, Options, Smcd};
use crate::vm::{self, sh_quote};
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Port of the local server.
const PORT: u16 = 5000;
/// Messages of the `smcd-loopback` ping-pong (64 bytes).
const LOOPBACK_COUNT: u64 = 2000;
/// Messages of the `metrics` slow-reader ping-pong, and the injected read delay.
const METRICS_COUNT: u64 = 30;
const METRICS_DELAY_MS: f64 = 50.0;
/// A kernel rx_consume anomaly of the slow reader must lie in
/// [delay, delay + DELAY_SLACK_MS]: the reader sleeps the delay, then TCG scheduling in
/// the one-vCPU guest adds ~1 ms (measured: 50.2-51.7 ms), rarely more while another
/// program starts; at least METRICS_MIN_IN_WINDOW of the kept anomalies must.
const DELAY_SLACK_MS: f64 = 10.0;
const METRICS_MIN_IN_WINDOW: usize = 5;
/// A kernel anomaly and the BPF monitor's one of the same read end at most this far
/// apart (the kernel stops the clock when recvmsg moves the consumer cursor, the monitor
/// at recvmsg's return, after the copy to user space).
const MATCH_WINDOW_US: f64 = 2000.0;
/// And their latencies differ by at most this much (absolute, µs) ...
const LAT_TOLERANCE_US: f64 = 1000.0;
/// ... or this fraction of the kernel's value, whichever is larger.
const LAT_TOLERANCE_FRAC: f64 = 0.02;
/// Messages of smc-analyze's report that must be complete.
const MIN_COMPLETE: f64 = 0.99;
const MODE_SMCD: u64 = 2;
const DIAG_SAMPLES: u32 = 60;

/// Where build.sh puts its modules; the same default as build.sh.
fn kernel_cache() -> PathBuf {
    std::env::var_os("SMCTRACE_KERNEL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/smctrace-kernel"))
}

fn newest_mtime(dir: &Path) -> Option<std::time::SystemTime> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| e.metadata().ok()?.modified().ok())
        .max()
}

/// The patched smc.ko/smc_diag.ko for `kernel`'s Debian version: built by
/// `kernel/module/build.sh --version VER` unless the cached build is newer than the
/// series and the build files.
pub fn ensure_patched_modules(kernel: &Kernel) -> Result<PathBuf> {
    let dir = kernel_cache()
        .join(&kernel.version)
        .join("modules")
        .join("patched");
    let root = workspace_root();
    let inputs = [root.join("kernel/patches-6.12"), root.join("kernel/module")];
    let newest_input = inputs.iter().filter_map(|d| newest_mtime(d)).max();
    let built = std::fs::metadata(dir.join("smc.ko"))
        .and_then(|m| m.modified())
        .ok();
    let fresh = matches!((built, newest_input), (Some(b), Some(i)) if b >= i)
        && dir.join("smc_diag.ko").exists();
    if fresh {
        say(&format!("patched SMC modules (cached): {}", dir.display()));
        return Ok(dir);
    }
    say(&format!(
        "building the patched SMC modules for {} with kernel/module/build.sh",
        kernel.version
    ));
    let out = Command::new(root.join("kernel/module/build.sh"))
        .args(["--version", &kernel.version])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running kernel/module/build.sh")?;
    if !out.status.success() {
        bail!(
            "kernel/module/build.sh --version {} failed ({})",
            kernel.version,
            out.status
        );
    }
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let printed = PathBuf::from(printed.lines().last().unwrap_or(""));
    if !printed.join("smc.ko").exists() {
        bail!(
            "kernel/module/build.sh printed {:?}, which holds no smc.ko",
            printed.display()
        );
    }
    Ok(printed)
}

/// smc-load's client arguments.
pub fn client_args(sc: Smcd) -> String {
    match sc {
        Smcd::Metrics => format!(
            "--mode pingpong --count {METRICS_COUNT} --size 64 --read-delay {}",
            METRICS_DELAY_MS / 1000.0
        ),
        _ => format!("--mode pingpong --count {LOOPBACK_COUNT} --size 64"),
    }
}

/// Wait (bounded) until the local AF_SMC listener's internal TCP socket listens.
fn wait_listen() -> String {
    format!(
        "n=0\n\
         while ! grep -qi ':{PORT:04X} 00000000:0000 0A' /proc/net/tcp; do\n\
         \x20 n=$((n + 1)); [ $n -le 100 ] || {{ echo \"server not listening after 10 s\"; exit 94; }}\n\
         \x20 sleep 0.1\n\
         done\n"
    )
}

/// Sample smc_diag while `$load` runs: every sample is kept (`metrics` needs the last).
/// `stop_at_first`: stop at the first sample with the client socket in mode SMCD (during
/// the handshake smc_diag reports mode 0 with no link group yet; `mode` is 5 lines above
/// `remote_port` in smcctl's pretty JSON).
fn diag_loop(smcctl: &str, stop_at_first: bool) -> String {
    let brk = if stop_at_first {
        format!(
            "\x20 grep -B5 '\"remote_port\": {PORT},' /out/a-diag-$i.json | grep -q '\"mode\": {MODE_SMCD},' && break\n"
        )
    } else {
        String::new()
    };
    format!(
        "i=0\n\
         while kill -0 $load 2>/dev/null && [ $i -lt {DIAG_SAMPLES} ]; do\n\
         \x20 {smcctl} diag --json > /out/a-diag-$i.json || true\n\
         {brk}\
         \x20 i=$((i + 1)); sleep 0.3\n\
         done\n\
         if wait $load; then :; else rc=$?; echo \"smc-load client failed with status $rc\"; exit $rc; fi\n\
         wait $srv || {{ echo \"smc-load server failed\"; exit 95; }}\n"
    )
}

/// Guest A's script.
pub fn a_script(sc: Smcd, smcctl: &Path, load: &Path, record: &Path) -> String {
    let smcctl = sh_quote(&smcctl.display().to_string());
    let load = sh_quote(&load.display().to_string());
    let rec = sh_quote(&record.display().to_string());
    let mut s = String::from(
        "set -e\n\
         # 6.x names the device loopback-ism (CONFIG_SMC_LO), 7.x DIBS loopback `lo`\n\
         dmesg | grep -qE 'smcd device (loopback-ism|lo )' || { echo 'no SMC-D loopback device: smc.ko built without CONFIG_SMC_LO, or no DIBS_LO?'; exit 96; }\n",
    );
    let name = sc.name();
    match sc {
        Smcd::Loopback => {
            s += &format!(
                "{rec} record --output /out/{name}-a.smctrace --ready-file /tmp/rec.ready -q &\n\
                 rec=$!\n"
            );
        }
        Smcd::Metrics => {
            s += &format!(
                "cat /proc/sys/net/smc/slow_threshold_us > /out/threshold_us\n\
                 {rec} conns --source bpf --json --interval 0.2 --ready-file /tmp/rec.ready > /out/{name}-bpf.jsonl 2>/out/{name}-bpf.err &\n\
                 rec=$!\n"
            );
        }
    }
    s += "n=0\n\
          while [ ! -e /tmp/rec.ready ]; do\n\
          \x20 kill -0 $rec 2>/dev/null || { echo \"smc-record exited before it was ready\"; cat /out/*-bpf.err 2>/dev/null; exit 90; }\n\
          \x20 n=$((n + 1)); [ $n -le 600 ] || { echo \"smc-record not ready after 60 s\"; kill -KILL $rec; exit 91; }\n\
          \x20 sleep 0.1\n\
          done\n";
    s += &format!("{load} server --listen 127.0.0.1:{PORT} --exit-after 1 &\nsrv=$!\n");
    s += &wait_listen();
    let args = client_args(sc);
    s += &format!(
        "{load} client --connect 127.0.0.1:{PORT} {args} --json > /out/a-load.json &\nload=$!\n"
    );
    s += &diag_loop(&smcctl, sc == Smcd::Loopback);
    if sc == Smcd::Metrics {
        // One more monitor sample after the last read.
        s += "sleep 1\n";
    }
    s += "kill -INT $rec\n\
          if wait $rec; then :; else rc=$?; echo \"smc-record exited with status $rc\"; cat /out/*-bpf.err 2>/dev/null; exit 92; fi\n";
    s += &format!(
        "{smcctl} stats --json > /out/a-stats.json\n{smcctl} fallback --json > /out/a-fallback.json\ncat /out/a-load.json\n"
    );
    s
}

fn diag_samples(out: &Path) -> Vec<Value> {
    (0..DIAG_SAMPLES)
        .filter_map(|i| read_json(&out.join(format!("a-diag-{i}.json"))).ok())
        .collect()
}

/// The client socket (the one whose peer is the server port) in one diag sample.
fn client_sock(sample: &Value) -> Option<&Value> {
    sample
        .as_array()?
        .iter()
        .find(|s| num(s, "remote_port") == PORT as u64)
}

/// SMC-D facts common to both scenarios: smc_diag mode, netlink SMC-D stats, no fallback.
fn check_smcd(out: &Path, proven: &mut Vec<String>) -> Result<()> {
    let load = read_json(&out.join("a-load.json"))?;
    if num(&load, "count") == 0 {
        bail!("assertion failed: smc-load client did no work (count 0 in a-load.json)");
    }
    let samples = diag_samples(out);
    let socks: Vec<&Value> = samples.iter().filter_map(client_sock).collect();
    if !socks.iter().any(|s| num(s, "mode") == MODE_SMCD) {
        bail!(
            "assertion failed: no smc_diag sample ({} taken) shows the client socket in mode SMCD (modes seen: {:?})",
            samples.len(),
            socks.iter().map(|s| num(s, "mode")).collect::<Vec<_>>()
        );
    }
    proven.push("smc_diag: live client socket in mode SMCD".into());
    let stats = read_json(&out.join("a-stats.json"))?;
    let smcd: u64 = ["clnt", "srv"]
        .iter()
        .flat_map(|side| ["v1", "v2"].map(|v| num(&stats, &format!("smcd.{side}_{v}_succ_cnt"))))
        .sum();
    if smcd < 2 {
        bail!(
            "assertion failed: netlink SMC-D handshakes {smcd}, expected >= 2 (client and server)"
        );
    }
    proven.push(format!(
        "netlink: {smcd} SMC-D handshakes (client + server)"
    ));
    let fb = read_json(&out.join("a-fallback.json"))?;
    let fbs = num(&fb, "server_total") + num(&fb, "client_total");
    if fbs != 0 {
        bail!("assertion failed: TCP fallback must be 0, netlink counts {fbs}");
    }
    proven.push("TCP fallbacks: 0 (netlink)".into());
    Ok(())
}

/// The recording analyzed on the host: an SMC-D connection, stages, complete messages.
pub fn check_report(report: &Value, proven: &mut Vec<String>) -> Result<()> {
    let summary = report.get("summary").context("report without summary")?;
    let smcd = summary
        .get("connections_by_mode")
        .map(|m| num(m, "SMC-D"))
        .unwrap_or(0);
    if smcd == 0 {
        bail!(
            "assertion failed: smc-analyze report shows no SMC-D connection (by mode: {})",
            summary
                .get("connections_by_mode")
                .cloned()
                .unwrap_or(Value::Null)
        );
    }
    let msgs = num(summary, "messages");
    let complete = num(summary, "complete_messages");
    if msgs == 0 || (complete as f64) < MIN_COMPLETE * msgs as f64 {
        bail!(
            "assertion failed: {complete} of {msgs} messages complete in smc-analyze's report, need >= {:.0} %",
            MIN_COMPLETE * 100.0
        );
    }
    let stages: Vec<String> = report
        .get("stages")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter(|s| num(s, "count") > 0)
                .filter_map(|s| s.get("stage").and_then(Value::as_str).map(String::from))
                .collect()
        })
        .unwrap_or_default();
    for need in ["send_call", "app_wait"] {
        if !stages.iter().any(|s| s == need) {
            bail!(
                "assertion failed: stage {need} missing from smc-analyze's report (stages: {})",
                stages.join(" ")
            );
        }
    }
    proven.push(format!(
        "smc-analyze report: {smcd} SMC-D connection(s), {complete} of {msgs} messages complete ({:.2} %), stages {}",
        100.0 * complete as f64 / msgs as f64,
        stages.join(" ")
    ));
    Ok(())
}

/// Kernel anomalies (`smcctl diag --json`) against the BPF monitor's: (tstamp, lat) in ns.
pub fn match_anomalies(kernel: &[(u64, u64)], bpf: &[(u64, u64)]) -> Result<Vec<(u64, u64, u64)>> {
    let mut matched = Vec::new();
    for &(t, lat) in kernel {
        let best = bpf
            .iter()
            .min_by_key(|(bt, _)| bt.abs_diff(t))
            .filter(|(bt, _)| bt.abs_diff(t) as f64 <= MATCH_WINDOW_US * 1000.0);
        let Some(&(_, blat)) = best else {
            bail!(
                "assertion failed: the kernel's rx_consume anomaly of {:.1} us at {} ns has no BPF monitor anomaly within {MATCH_WINDOW_US} us",
                lat as f64 / 1000.0,
                t
            );
        };
        let tol_us = LAT_TOLERANCE_US.max(LAT_TOLERANCE_FRAC * lat as f64 / 1000.0);
        let diff_us = (blat as f64 - lat as f64) / 1000.0;
        if diff_us.abs() > tol_us {
            bail!(
                "assertion failed: rx_consume kernel {:.1} us vs BPF monitor {:.1} us differ by {diff_us:.1} us (tolerance {tol_us:.0} us)",
                lat as f64 / 1000.0,
                blat as f64 / 1000.0
            );
        }
        matched.push((t, lat, blat));
    }
    Ok(matched)
}

fn anomalies_of(v: &Value, stage: &str) -> Vec<(u64, u64)> {
    v.get("anomalies")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter(|x| {
                    x.get("stage").and_then(Value::as_str) == Some(stage)
                        || (x.get("stage").and_then(Value::as_u64) == Some(1)
                            && stage == "rx_consume")
                })
                .map(|x| (num(x, "tstamp_ns"), num(x, "lat_ns")))
                .collect()
        })
        .unwrap_or_default()
}

fn check_metrics(out: &Path, proven: &mut Vec<String>) -> Result<()> {
    // The kernel's view: the last diag sample of the slow reader's socket.
    let samples = diag_samples(out);
    let sock = samples
        .iter()
        .rev()
        .filter_map(client_sock)
        .find(|s| s.get("latency").is_some_and(|l| !l.is_null()))
        .context("assertion failed: no smc_diag sample has the client socket with SMC_DIAG_LATENCY (is the module patched?)")?;
    let local_port = num(sock, "local_port");
    let lat = &sock["latency"];
    let kernel = anomalies_of(lat, "rx_consume");
    let delay_ns = METRICS_DELAY_MS * 1e6;
    let in_window = kernel
        .iter()
        .filter(|(_, l)| (*l as f64) >= delay_ns && (*l as f64) <= delay_ns + DELAY_SLACK_MS * 1e6)
        .count();
    if in_window < METRICS_MIN_IN_WINDOW {
        bail!(
            "assertion failed: {in_window} of the kernel's {} kept rx_consume anomalies lie in [{METRICS_DELAY_MS}, {}] ms (need {METRICS_MIN_IN_WINDOW}); seen {:?} us",
            kernel.len(),
            METRICS_DELAY_MS + DELAY_SLACK_MS,
            kernel.iter().map(|(_, l)| l / 1000).collect::<Vec<_>>()
        );
    }
    proven.push(format!(
        "kernel (SMC_DIAG_LATENCY) of the reader 127.0.0.1:{local_port}: {} anomalies in all, {in_window} of the {} kept rx_consume ones within [{METRICS_DELAY_MS}, {}] ms of the injected {METRICS_DELAY_MS} ms",
        num(lat, "anomaly_total"),
        kernel.len(),
        METRICS_DELAY_MS + DELAY_SLACK_MS
    ));
    // The BPF monitor's view: every anomaly it showed for the same socket over all its
    // samples (each keeps the last 8, as the kernel: sampled every 0.2 s, at most ~4 of
    // the 50 ms anomalies happen in between), and its last sample of it.
    let text = std::fs::read_to_string(out.join("metrics-bpf.jsonl"))
        .context("metrics-bpf.jsonl missing")?;
    let mut conn = None;
    let mut bpf: Vec<(u64, u64)> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value =
            serde_json::from_str(line).context("metrics-bpf.jsonl: a line is not JSON")?;
        if v.get("source").and_then(Value::as_str) != Some("bpf") {
            bail!(
                "assertion failed: the monitor says source {:?}, expected bpf",
                v.get("source")
            );
        }
        if let Some(c) = v.get("conns").and_then(Value::as_array).and_then(|cs| {
            cs.iter().find(|c| {
                num(c, "local_port") == local_port && num(c, "remote_port") == PORT as u64
            })
        }) {
            bpf.extend(anomalies_of(c, "rx_consume"));
            conn = Some(c.clone());
        }
    }
    bpf.sort_unstable();
    bpf.dedup();
    let conn = conn.with_context(|| {
        format!("assertion failed: the BPF monitor never showed the reader's connection 127.0.0.1:{local_port}")
    })?;
    let matched = match_anomalies(&kernel, &bpf)?;
    let worst = matched
        .iter()
        .map(|(_, k, b)| (*b as f64 - *k as f64) / 1000.0)
        .fold(0.0f64, |a, d| if d.abs() > a.abs() { d } else { a });
    proven.push(format!(
        "BPF monitor: all {} kernel rx_consume anomalies matched by timestamp (within {MATCH_WINDOW_US} us), latencies within max({LAT_TOLERANCE_US} us, {} %) (largest difference {worst:+.1} us); monitor total {} anomalies",
        matched.len(),
        LAT_TOLERANCE_FRAC * 100.0,
        num(&conn, "anomaly_total")
    ));
    Ok(())
}

/// Run `smc-analyze report --json` on the recording.
fn analyze(out: &Path, sc: Smcd) -> Result<Value> {
    let rec = out.join(format!("{}-a.smctrace", sc.name()));
    let analyzer = debug_bin("smc-analyze");
    let o = Command::new(&analyzer)
        .args(["report", "--json"])
        .arg(&rec)
        .output()
        .with_context(|| format!("running {}", analyzer.display()))?;
    if !o.status.success() {
        bail!(
            "smc-analyze report {} failed ({}): {}",
            rec.display(),
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    serde_json::from_slice(&o.stdout).context("smc-analyze report --json printed no JSON")
}

pub fn check(sc: Smcd, out: &Path) -> Result<Vec<String>> {
    let mut proven = Vec::new();
    check_smcd(out, &mut proven)?;
    match sc {
        Smcd::Loopback => check_report(&analyze(out, sc)?, &mut proven)?,
        _ => check_metrics(out, &mut proven)?,
    }
    Ok(proven)
}

/// Run an SMC-D scenario in guest A alone; returns the exit code.
pub fn run(sc: Smcd, kernel: &Kernel, out: &Path, opts: &Options) -> Result<i32> {
    let modules = match &opts.smc_modules {
        Some(d) => Some(d.clone()),
        // 7.x: the lab's kernel has SMC-D loopback (DIBS) in its own smc.ko; `metrics`
        // loads the series' smc.ko built on top of the same kernel (kernel/patches/).
        None if kernel.series.native_smcd_loopback() => match sc {
            Smcd::Metrics => Some(crate::kernel::ensure_series_modules(kernel)?),
            _ => None,
        },
        // The series and SMC_LO (loopback-ism) exist for 6.12 only (upstream since 6.10).
        None if kernel.series != crate::kernel::Series::V6_12 => bail!(
            "scenario {} needs SMC-D loopback-ism, which Debian's {} kernel lacks: use --kernel 6.12 or 7.3",
            sc.name(),
            kernel.series.as_str()
        ),
        None => Some(ensure_patched_modules(kernel)?),
    };
    let load = debug_bin("smc-load");
    let record = debug_bin("smc-record");
    for p in [&opts.smcctl, &load, &record, &debug_bin("smc-analyze")] {
        if !p.exists() {
            bail!(
                "scenario {} needs {}, which is not built (drop --no-build)",
                sc.name(),
                p.display()
            );
        }
    }
    for e in std::fs::read_dir(out)?.flatten() {
        let n = e.file_name().to_string_lossy().to_string();
        if n.starts_with("a-") || n.ends_with(".smctrace") || n.ends_with(".jsonl") {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let spec = vm::Spec {
        kernel: kernel.clone(),
        out: out.to_path_buf(),
        a_cmds: a_script(sc, &opts.smcctl, &load, &record),
        b_cmds: None,
        smc_setup: true,
        timeout: opts.timeout,
        smcctl: opts.smcctl.clone(),
        extra_modules: Vec::new(),
        smc_modules: modules.clone(),
        memory_mb: opts.memory_mb,
        echo: true,
    };
    say(&format!(
        "scenario {} on kernel {} with SMC modules {}, output in {}",
        sc.name(),
        kernel.kver,
        modules
            .as_ref()
            .map_or_else(|| "of the kernel".to_string(), |m| m.display().to_string()),
        out.display()
    ));
    let o = vm::run(&spec)?;
    let wall = o.wall.as_secs_f64();
    if !o.ok() {
        eprintln!(
            "lab: {} FAILED after {wall:.1} s: {}",
            sc.name(),
            o.failure_summary()
        );
        return Ok(1);
    }
    match check(sc, out) {
        Ok(proven) => {
            for p in proven {
                say(&format!("ok: {p}"));
            }
            say(&format!(
                "{} PASSED on {}: boot-to-result {wall:.1} s",
                sc.name(),
                kernel.kver
            ));
            Ok(0)
        }
        Err(e) => {
            eprintln!(
                "lab: {} FAILED after {wall:.1} s: {e:#} (serial logs kept: {})",
                sc.name(),
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

    #[test]
    fn report_check_wants_smcd_and_complete_messages() {
        let mut p = Vec::new();
        let good = json!({"summary": {"connections_by_mode": {"SMC-D": 1}, "messages": 4000, "complete_messages": 3990},
            "stages": [{"stage": "send_call", "count": 3990}, {"stage": "app_wait", "count": 3990}, {"stage": "cdc_complete", "count": 0}]});
        check_report(&good, &mut p).unwrap();
        assert!(p[0].contains("3990 of 4000"), "{}", p[0]);
        let mut bad = good.clone();
        bad["summary"]["complete_messages"] = json!(3900);
        assert!(check_report(&bad, &mut p)
            .unwrap_err()
            .to_string()
            .contains("3900 of 4000"));
        let mut r = good.clone();
        r["summary"]["connections_by_mode"] = json!({"SMC-R": 1});
        assert!(check_report(&r, &mut p)
            .unwrap_err()
            .to_string()
            .contains("no SMC-D"));
        let mut s = good;
        s["stages"] = json!([{"stage": "send_call", "count": 3}]);
        assert!(check_report(&s, &mut p)
            .unwrap_err()
            .to_string()
            .contains("app_wait"));
    }

    #[test]
    fn anomalies_match_by_time_and_latency() {
        let k = [(1_000_000_000, 50_200_000), (1_100_000_000, 50_900_000)];
        let b = [
            (1_100_050_000, 50_950_000),
            (1_000_040_000, 50_240_000),
            (5, 5),
        ];
        assert_eq!(match_anomalies(&k, &b).unwrap().len(), 2);
        let off = [(1_000_040_000, 52_500_000), (1_100_050_000, 50_950_000)];
        assert!(match_anomalies(&k, &off)
            .unwrap_err()
            .to_string()
            .contains("differ"));
        let late = [(1_010_000_000, 50_200_000), (1_100_050_000, 50_950_000)];
        assert!(match_anomalies(&k, &late)
            .unwrap_err()
            .to_string()
            .contains("no BPF monitor anomaly"));
    }

    #[test]
    fn script_starts_the_monitor_before_the_workload() {
        let a = a_script(
            Smcd::Metrics,
            Path::new("/w/smcctl"),
            Path::new("/w/smc-load"),
            Path::new("/w/smc-record"),
        );
        let mon = a.find("conns --source bpf").unwrap();
        assert!(mon < a.find("client --connect 127.0.0.1:5000").unwrap());
        assert!(a.contains("--read-delay 0.05"));
        let l = a_script(
            Smcd::Loopback,
            Path::new("/w/smcctl"),
            Path::new("/w/smc-load"),
            Path::new("/w/smc-record"),
        );
        assert!(l.contains("record --output /out/smcd-loopback-a.smctrace"));
        assert!(l.contains(":1388 00000000:0000 0A"));
        assert!(l.contains("grep -B5 '\"remote_port\": 5000,' /out/a-diag-$i.json | grep -q '\"mode\": 2,' && break"));
    }
}
