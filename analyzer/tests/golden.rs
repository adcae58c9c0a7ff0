//! Golden tests on real recordings from the lab (`fixtures/<name>/`).
//!
//! A fixture directory holds:
//! - one or more `*.smctrace` recordings (given to `smc-analyze report` in
//!   file-name order, so name the reference host's file first, e.g.
//!   `a-client.smctrace`, `b-server.smctrace`);
//! - `README.md`: how and on which kernel it was recorded;
//! - `expected-report.json`: the blessed `report --json --top 5` output,
//!   written by `SMC_ANALYZE_BLESS=1 cargo test -p smc-analyze --test golden`
//!   (review the diff before committing it);
//! - optionally `load.json`: the `smc-load pingpong --json` line of the run,
//!   for the RTT cross-check below.
//!
//! Until the lab delivers fixtures there are none and these tests check
//! nothing; a fixture without `expected-report.json` fails.
//! `SMC_ANALYZE_FIXTURES=DIR` runs them on another tree, e.g. a lab run's
//! output copied into `DIR/<name>/` (recordings + `a-load.json` as `load.json`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> Vec<PathBuf> {
    // SMC_ANALYZE_FIXTURES points at another fixtures tree (e.g. a fresh lab run).
    let root = std::env::var_os("SMC_ANALYZE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures"));
    let Ok(rd) = std::fs::read_dir(&root) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

mod common;
use common::recordings;

fn report(files: &[PathBuf]) -> serde_json::Value {
    let o = Command::new(env!("CARGO_BIN_EXE_smc-analyze"))
        .arg("report")
        .args(files)
        .args(["--json", "--top", "5"])
        .output()
        .expect("run smc-analyze");
    assert!(
        o.status.success(),
        "{:?}: {}",
        files,
        String::from_utf8_lossy(&o.stderr)
    );
    let mut j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // Paths depend on where the checkout lives.
    for r in j["recordings"].as_array_mut().unwrap() {
        r["path"] = serde_json::Value::Null;
    }
    j
}

#[test]
fn golden_reports() {
    for dir in fixtures() {
        let files = recordings(&dir);
        if files.is_empty() {
            continue;
        }
        let got = report(&files);
        let exp_path = dir.join("expected-report.json");
        if std::env::var_os("SMC_ANALYZE_BLESS").is_some() {
            std::fs::write(
                &exp_path,
                serde_json::to_string_pretty(&got).unwrap() + "\n",
            )
            .unwrap();
            continue;
        }
        let exp = std::fs::read_to_string(&exp_path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (bless it with SMC_ANALYZE_BLESS=1)",
                exp_path.display()
            )
        });
        let exp: serde_json::Value = serde_json::from_str(&exp).unwrap();
        assert_eq!(
            got,
            exp,
            "{}: report differs from expected-report.json",
            dir.display()
        );
    }
}

/// On a ping-pong fixture, the analyzer's own measurement must agree with the
/// workload's RTT (a cross-check no unit test can fake):
/// - per round, client `send_enter` of ping k to client `delivered` of pong k
///   (both on the client's clock) is the round trip the workload timed: its
///   median must be within 10 % + 50 us of the workload's `rtt_p50_us`
///   (the workload's clock also covers its own user-space work);
/// - the median forward e2e (cross-host, corrected clock) must lie between
///   half of RTT/2 and RTT/2 + 10 %: one way can be at most the round trip
///   minus the way back.
///
/// Measured on the lab's 6.12 pingpong (TCG, 2000 x 64 B): workload RTT p50
/// 3.993 ms, analyzer round trip p50 3.883 ms, forward e2e p50 1.753 ms.
#[test]
fn pingpong_e2e_agrees_with_workload_rtt() {
    for dir in fixtures() {
        let Ok(load) = std::fs::read_to_string(dir.join("load.json")) else {
            continue;
        };
        let load: serde_json::Value = serde_json::from_str(load.trim()).unwrap();
        if load["mode"] != "pingpong" || load["proto"] != "smc" {
            continue;
        }
        let rtt_ns = load["rtt_p50_us"].as_f64().unwrap() * 1e3;
        let size = load["size"].as_u64().unwrap().to_string();
        let j = report(&recordings(&dir));
        let conn = j["connections"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["latency_basis"] == "e2e")
            .max_by_key(|c| c["messages_fwd"].as_u64().unwrap_or(0))
            .unwrap_or_else(|| panic!("{}: no connection with end-to-end latency", dir.display()));
        let id = conn["id"].as_u64().unwrap();
        let out = std::env::temp_dir().join(format!("smc-golden-{}-{}", std::process::id(), id));
        let o = Command::new(env!("CARGO_BIN_EXE_smc-analyze"))
            .arg("export")
            .arg("--csv")
            .arg(&out)
            .args(recordings(&dir))
            .args(["--conn", &id.to_string()])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let csv = std::fs::read_to_string(out.join("messages.csv")).unwrap();
        let mut lines = csv.lines();
        let head: Vec<&str> = lines.next().unwrap().split(',').collect();
        let col = |n: &str| head.iter().position(|h| *h == n).unwrap();
        let (dir_c, len_c, e2e_c, ok_c, send_c, dlv_c) = (
            col("dir"),
            col("len"),
            col("e2e_ns"),
            col("complete"),
            col("t_send_enter_ns"),
            col("t_delivered_ns"),
        );
        let mut pings: Vec<(i64, i64)> = Vec::new(); // (send_enter, e2e)
        let mut pongs: Vec<(i64, i64)> = Vec::new(); // (send_enter, delivered)
        for l in lines {
            let f: Vec<&str> = l.split(',').collect();
            if f[ok_c] != "true" || f[len_c] != size {
                continue;
            }
            let (Ok(send), Ok(e2e), Ok(dlv)) = (
                f[send_c].parse::<i64>(),
                f[e2e_c].parse::<i64>(),
                f[dlv_c].parse::<i64>(),
            ) else {
                continue;
            };
            if f[dir_c] == "forward" {
                pings.push((send, e2e));
            } else {
                pongs.push((send, dlv));
            }
        }
        assert!(
            pings.len() > 10 && pongs.len() > 10,
            "{}: too few complete messages",
            dir.display()
        );
        pings.sort();
        pongs.sort();
        let mut rtt: Vec<i64> = pings
            .iter()
            .zip(pongs.iter())
            .map(|(p, q)| q.1 - p.0)
            .collect();
        rtt.sort();
        let mut fwd: Vec<i64> = pings.iter().map(|p| p.1).collect();
        fwd.sort();
        let (rtt50, fwd50) = (rtt[rtt.len() / 2] as f64, fwd[fwd.len() / 2] as f64);
        assert!(
            (rtt50 - rtt_ns).abs() <= rtt_ns * 0.10 + 50_000.0,
            "{}: analyzer round trip p50 {rtt50} ns vs workload RTT p50 {rtt_ns} ns",
            dir.display()
        );
        let half = rtt_ns / 2.0;
        assert!(
            fwd50 >= half * 0.5 && fwd50 <= half * 1.10,
            "{}: forward e2e p50 {fwd50} ns vs RTT/2 {half} ns",
            dir.display()
        );
    }
}
