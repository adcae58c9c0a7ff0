//! `cargo xtask bench series`: what the kernel series' always-on metrics cost, on the lab's
//! 7.x kernel. One guest, SMC-D over DIBS loopback, a 64-byte ping-pong, alternately with the
//! kernel's own smc.ko (stock) and the series' smc.ko built on top of the same kernel
//! (`build.sh smc-modules`), in ABBA order so that drift in the guest hits both alike; the
//! modules are reloaded for every run. Every run must have been SMC-D (netlink handshake
//! counters grew, no fallback) or the benchmark fails. Prints the per-run p50 RTTs, the
//! medians and the difference with a bootstrap 95 % interval.

use crate::host::{self, debug_bin, say};
use crate::kernel::{self, Series};
use crate::scenario::{num, read_json};
use crate::vm::{self, sh_quote, LAB_UEID};
use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// The two variants, in the order of one ABBA round.
const ORDER: [&str; 4] = ["stock", "patched", "patched", "stock"];

fn guest_script(series_dir: &Path, rounds: u32, count: u32) -> String {
    let load = sh_quote(
        &host::target_dir()
            .join("release/smc-load")
            .display()
            .to_string(),
    );
    let smcctl = sh_quote(&debug_bin("smcctl").display().to_string());
    let dir = sh_quote(&series_dir.display().to_string());
    let order = ORDER.join(" ");
    format!(
        "set -e\n\
         modprobe ib_core\n\
         modprobe dibs\n\
         mkdir -p /out/series\n\
         use() {{\n\
         \x20 rmmod smc_diag 2>/dev/null || true; rmmod smc 2>/dev/null || true\n\
         \x20 if [ \"$1\" = stock ]; then modprobe smc; modprobe smc_diag;\n\
         \x20 else insmod {dir}/smc.ko; insmod {dir}/smc_diag.ko; fi\n\
         \x20 {smcctl} ueid add {LAB_UEID}\n\
         }}\n\
         r=0\n\
         while [ $r -lt {rounds} ]; do\n\
         \x20 i=0\n\
         \x20 for v in {order}; do\n\
         \x20   use $v\n\
         \x20   {load} server --listen 127.0.0.1:5000 --exit-after 1 &\n\
         \x20   srv=$!\n\
         \x20   n=0; while ! grep -qi ':1388 00000000:0000 0A' /proc/net/tcp; do n=$((n + 1)); [ $n -le 100 ] || exit 94; sleep 0.1; done\n\
         \x20   {load} client --connect 127.0.0.1:5000 --mode pingpong --count {count} --size 64 --json > /out/series/$r-$i-$v.json\n\
         \x20   wait $srv\n\
         \x20   {smcctl} stats --json > /out/series/$r-$i-$v-stats.json\n\
         \x20   {smcctl} fallback --json > /out/series/$r-$i-$v-fallback.json\n\
         \x20   i=$((i + 1))\n\
         \x20 done\n\
         \x20 r=$((r + 1))\n\
         done\n"
    )
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Bootstrap 95 % interval of median(patched) - median(stock), resampling each side
/// (a fixed-seed xorshift: the figure is reproducible from the same runs).
fn bootstrap(stock: &[f64], patched: &[f64]) -> (f64, f64) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    let mut diffs: Vec<f64> = (0..2000)
        .map(|_| {
            let mut s: Vec<f64> = (0..stock.len()).map(|_| stock[next(stock.len())]).collect();
            let mut p: Vec<f64> = (0..patched.len())
                .map(|_| patched[next(patched.len())])
                .collect();
            median(&mut p) - median(&mut s)
        })
        .collect();
    diffs.sort_by(f64::total_cmp);
    (
        diffs[diffs.len() * 25 / 1000],
        diffs[diffs.len() * 975 / 1000],
    )
}

/// SMC-D handshakes (client + server, v1 + v2) in a `smcctl stats --json`.
fn smcd_handshakes(stats: &serde_json::Value) -> u64 {
    ["clnt", "srv"]
        .iter()
        .flat_map(|side| ["v1", "v2"].map(|v| num(stats, &format!("smcd.{side}_{v}_succ_cnt"))))
        .sum()
}

pub fn run(out: &Path, rounds: u32, count: u32) -> Result<String> {
    if !host::is_root() {
        bail!("the series benchmark boots the lab, which needs root");
    }
    if rounds == 0 || count == 0 {
        bail!("--runs and --count must be at least 1");
    }
    host::ensure_lab_host()?;
    host::cargo_build(&["smc-netlink"])?;
    let status = std::process::Command::new(std::env::var_os("CARGO").unwrap_or("cargo".into()))
        .args(["build", "--release", "-p", "smc-load"])
        .current_dir(host::workspace_root())
        .status()
        .context("running cargo build --release -p smc-load")?;
    if !status.success() {
        bail!("cargo build --release -p smc-load failed ({status})");
    }
    let k = kernel::ensure(Series::V7_3)?;
    let series = kernel::ensure_series_modules(&k)?;
    let lab_out = out.join("series-lab");
    std::fs::create_dir_all(&lab_out).with_context(|| format!("creating {}", lab_out.display()))?;
    let spec = vm::Spec {
        kernel: k.clone(),
        out: lab_out.clone(),
        a_cmds: guest_script(&series, rounds, count),
        b_cmds: None,
        smc_setup: false,
        smc_modules: None,
        timeout: Duration::from_secs(120 + u64::from(rounds) * 4 * (u64::from(count) / 500 + 15)),
        smcctl: debug_bin("smcctl"),
        extra_modules: Vec::new(),
        memory_mb: 1024,
        echo: false,
    };
    say(&format!(
        "series benchmark on {} ({} {}): {rounds} ABBA rounds of {count} ping-pongs, output in {}",
        k.kver,
        k.package,
        k.version,
        lab_out.display()
    ));
    let o = vm::run(&spec)?;
    if !o.ok() {
        bail!("the series benchmark guest failed: {}", o.failure_summary());
    }
    let (mut stock, mut patched) = (Vec::new(), Vec::new());
    let mut rows = String::new();
    for r in 0..rounds {
        let mut line = format!("| {r} |");
        for (i, v) in ORDER.iter().enumerate() {
            let base = lab_out.join("series").join(format!("{r}-{i}-{v}"));
            let load = read_json(&base.with_extension("json"))?;
            let stats = read_json(Path::new(&format!("{}-stats.json", base.display())))?;
            let fb = read_json(Path::new(&format!("{}-fallback.json", base.display())))?;
            if smcd_handshakes(&stats) < 2 {
                bail!("run {r}-{i} ({v}): netlink counts no SMC-D handshakes: not SMC-D");
            }
            if num(&fb, "server_total") + num(&fb, "client_total") != 0 {
                bail!("run {r}-{i} ({v}): TCP fallback counted");
            }
            let p50 = load["rtt_p50_us"]
                .as_f64()
                .with_context(|| format!("{}: no rtt_p50_us", base.display()))?;
            let _ = write!(line, " {v} {p50:.1} |");
            if *v == "stock" {
                stock.push(p50);
            } else {
                patched.push(p50);
            }
        }
        rows.push_str(&line);
        rows.push('\n');
    }
    let (ms, mp) = (median(&mut stock.clone()), median(&mut patched.clone()));
    let (lo, hi) = bootstrap(&stock, &patched);
    let mut t = String::new();
    let _ = writeln!(
        t,
        "\n## Kernel series: always-on metrics overhead ({}, SMC-D DIBS loopback, {count} x 64 B ping-pong, one TCG guest)\n",
        k.kver
    );
    let _ = writeln!(
        t,
        "p50 RTT (µs) per run, ABBA order, modules reloaded per run:\n"
    );
    let _ = writeln!(t, "| round | A | B | B | A |\n|---|---|---|---|---|");
    t.push_str(&rows);
    let _ = writeln!(
        t,
        "\nmedian p50 RTT: stock {ms:.1} µs ({} runs), patched {mp:.1} µs ({} runs): {:+.1} µs ({:+.1} %), bootstrap 95 % interval [{lo:+.1}, {hi:+.1}] µs{}",
        stock.len(),
        patched.len(),
        mp - ms,
        (mp - ms) / ms * 100.0,
        if lo <= 0.0 && hi >= 0.0 {
            " (spans 0: no difference resolved)"
        } else {
            ""
        }
    );
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_brackets_a_clear_shift_and_spans_zero_for_none() {
        let stock = [90.0, 91.0, 92.0, 90.5, 91.5, 92.5];
        let patched = [95.0, 96.0, 97.0, 95.5, 96.5, 97.5];
        let (lo, hi) = bootstrap(&stock, &patched);
        assert!(lo > 2.0 && hi < 8.0 && lo <= hi, "{lo} {hi}");
        let (lo, hi) = bootstrap(&stock, &stock);
        assert!(lo <= 0.0 && hi >= 0.0, "{lo} {hi}");
    }
}
