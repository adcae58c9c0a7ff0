//! `cargo xtask lab run kernel-tests --kernel 7.3`: the kernel series' own tests, the way a
//! net/smc maintainer runs them, on the kernel the lab boots. One guest with the series'
//! smc.ko/smc_diag.ko (built on top of the lab's 7.x kernel, `kernel::ensure_series_modules`),
//! then `kernel/lab/kernel-7.x/kernel-tests.sh`: the KUnit suite (`smc_lat_test.ko`) and the
//! kselftest (`tools/testing/selftests/net/smc/smc_latency`, SMC-D over DIBS loopback with a
//! slow reader). Their KTAP output is kept in `<out>/kunit.ktap`, `<out>/selftest.ktap` and
//! summed up here; any failed or skipped case fails the scenario.

use crate::host::{say, workspace_root};
use crate::kernel::{self, Kernel};
use crate::scenario::Options;
use crate::vm::{self, sh_quote};
use anyhow::{bail, Context, Result};
use std::path::Path;

/// Where `build.sh smc-modules` leaves the tests next to the modules.
pub const KUNIT_MODULE: &str = "smc_lat_test.ko";
pub const SELFTEST: &str = "selftest/smc_latency";

/// KTAP counts of one file: (passed, failed, skipped) of the lines at `depth` spaces of
/// indentation that name a test matching `prefix`.
pub fn ktap_counts(ktap: &str, prefix: &str) -> (usize, usize, usize) {
    let (mut pass, mut fail, mut skip) = (0, 0, 0);
    for line in ktap.lines().map(str::trim_start) {
        let (ok, rest) = if let Some(r) = line.strip_prefix("not ok ") {
            (false, r)
        } else if let Some(r) = line.strip_prefix("ok ") {
            (true, r)
        } else {
            continue;
        };
        let Some((_, name)) = rest.split_once(' ') else {
            continue;
        };
        if !name.starts_with(prefix) {
            continue;
        }
        if name.contains("# SKIP") || name.contains("#SKIP") {
            skip += 1;
        } else if ok {
            pass += 1;
        } else {
            fail += 1;
        }
    }
    (pass, fail, skip)
}

pub fn run(kernel: &Kernel, out: &Path, opts: &Options) -> Result<i32> {
    if !kernel.series.lab_built() {
        bail!(
            "scenario kernel-tests runs the 7.x series' KUnit and kselftest: use --kernel 7.3 \
             (the 6.12 backport has no kernel-side tests)"
        );
    }
    let modules = match &opts.smc_modules {
        Some(d) => d.clone(),
        None => kernel::ensure_series_modules(kernel)?,
    };
    for f in [KUNIT_MODULE, SELFTEST] {
        if !modules.join(f).exists() {
            bail!(
                "{} has no {f}: the series' tests were not built (does kernel/patches/ have the \
                 KUnit and kselftest patches, and the kernel CONFIG_KUNIT?)",
                modules.display()
            );
        }
    }
    for f in ["kunit.ktap", "selftest.ktap"] {
        let _ = std::fs::remove_file(out.join(f));
    }
    let script = workspace_root().join("kernel/lab/kernel-7.x/kernel-tests.sh");
    let a_cmds = format!(
        "KUNIT_KO={} SELFTEST_DIR={} OUT=/out sh {}\n",
        sh_quote(&modules.join(KUNIT_MODULE).display().to_string()),
        sh_quote(
            &modules
                .join(SELFTEST)
                .parent()
                .context("selftest path")?
                .display()
                .to_string()
        ),
        sh_quote(&script.display().to_string())
    );
    let spec = vm::Spec {
        kernel: kernel.clone(),
        out: out.to_path_buf(),
        a_cmds,
        b_cmds: None,
        smc_setup: true,
        timeout: opts.timeout,
        smcctl: opts.smcctl.clone(),
        extra_modules: Vec::new(),
        smc_modules: Some(modules.clone()),
        memory_mb: opts.memory_mb,
        echo: true,
    };
    say(&format!(
        "scenario kernel-tests on kernel {} with the series' modules {}, output in {}",
        kernel.kver,
        modules.display(),
        out.display()
    ));
    let o = vm::run(&spec)?;
    let wall = o.wall.as_secs_f64();
    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap_or_default();
    let (kp, kf, ks) = ktap_counts(&read("kunit.ktap"), "smc_lat_test_");
    let (sp, sf, ss) = ktap_counts(&read("selftest.ktap"), "");
    say(&format!(
        "KUnit (suite smc_lat): {kp} passed, {kf} failed, {ks} skipped; kselftest net/smc \
         smc_latency: {sp} passed, {sf} failed, {ss} skipped"
    ));
    if !o.ok() || kp == 0 || kf + ks != 0 || sp == 0 || sf + ss != 0 {
        eprintln!(
            "lab: kernel-tests FAILED after {wall:.1} s: {} (KTAP in {}/kunit.ktap, selftest.ktap; serial logs {})",
            if o.ok() {
                "no or failed test results".to_string()
            } else {
                o.failure_summary()
            },
            out.display(),
            o.serial_logs()
        );
        return Ok(1);
    }
    say(&format!(
        "kernel-tests PASSED on {}: boot-to-result {wall:.1} s",
        kernel.kver
    ));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_ktap_results_by_prefix_with_skips() {
        let k = "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: smc_lat\n    1..3\n    \
                 ok 1 smc_lat_test_bucket\n    not ok 2 smc_lat_test_ring\n    ok 3 smc_lat_test_thr # SKIP no\n\
                 not ok 1 smc_lat\n";
        assert_eq!(ktap_counts(k, "smc_lat_test_"), (1, 1, 1));
        let s = "TAP version 13\n1..2\nok 1 slow_reader\nok 2 tracepoints # SKIP no tracefs\n";
        assert_eq!(ktap_counts(s, ""), (1, 0, 1));
        assert_eq!(ktap_counts("", ""), (0, 0, 0));
    }
}
