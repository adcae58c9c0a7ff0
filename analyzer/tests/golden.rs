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

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
    let Ok(rd) = std::fs::read_dir(&root) else { return Vec::new() };
    let mut v: Vec<PathBuf> = rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    v.sort();
    v
}

fn recordings(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "smctrace"))
        .collect();
    v.sort();
    v
}

fn report(files: &[PathBuf]) -> serde_json::Value {
    let o = Command::new(env!("CARGO_BIN_EXE_smc-analyze"))
        .arg("report")
        .args(files)
        .args(["--json", "--top", "5"])
        .output()
        .expect("run smc-analyze");
    assert!(o.status.success(), "{:?}: {}", files, String::from_utf8_lossy(&o.stderr));
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
            std::fs::write(&exp_path, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
            continue;
        }
        let exp = std::fs::read_to_string(&exp_path)
            .unwrap_or_else(|e| panic!("{}: {e} (bless it with SMC_ANALYZE_BLESS=1)", exp_path.display()));
        let exp: serde_json::Value = serde_json::from_str(&exp).unwrap();
        assert_eq!(got, exp, "{}: report differs from expected-report.json", dir.display());
    }
}

/// On a ping-pong fixture, the analyzer's own measurement must agree with the
/// workload's RTT: one round trip = forward e2e + server turnaround + backward
/// e2e, so the median forward and backward e2e together may not exceed the
/// workload's median RTT (+10 % + 20 us for the workload's own timing
/// overhead), and the forward e2e must be at least a quarter of RTT/2
/// (an analyzer that matched the wrong events would be far off either way).
#[test]
fn pingpong_e2e_agrees_with_workload_rtt() {
    for dir in fixtures() {
        let Ok(load) = std::fs::read_to_string(dir.join("load.json")) else { continue };
        let load: serde_json::Value = serde_json::from_str(load.trim()).unwrap();
        if load["mode"] != "pingpong" || load["proto"] != "smc" {
            continue;
        }
        let rtt_ns = load["rtt_p50_us"].as_f64().unwrap() * 1e3;
        let j = report(&recordings(&dir));
        let conn = j["connections"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["latency_basis"] == "e2e")
            .max_by_key(|c| c["messages_fwd"].as_u64().unwrap_or(0))
            .unwrap_or_else(|| panic!("{}: no connection with end-to-end latency", dir.display()));
        let id = conn["id"].as_u64().unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_smc-analyze"))
            .arg("export")
            .arg("--csv")
            .arg(std::env::temp_dir().join(format!("smc-golden-{}", std::process::id())))
            .args(recordings(&dir))
            .args(["--conn", &id.to_string()])
            .output()
            .unwrap();
        assert!(o.status.success());
        let csv = std::fs::read_to_string(std::env::temp_dir().join(format!("smc-golden-{}/messages.csv", std::process::id()))).unwrap();
        let mut lines = csv.lines();
        let head: Vec<&str> = lines.next().unwrap().split(',').collect();
        let col = |n: &str| head.iter().position(|h| *h == n).unwrap();
        let (dir_c, e2e_c, ok_c) = (col("dir"), col("e2e_ns"), col("complete"));
        let mut fwd = Vec::new();
        let mut bwd = Vec::new();
        for l in lines {
            let f: Vec<&str> = l.split(',').collect();
            let (Ok(e), "true") = (f[e2e_c].parse::<i64>(), f[ok_c]) else { continue };
            if f[dir_c] == "forward" { fwd.push(e) } else { bwd.push(e) }
        }
        assert!(!fwd.is_empty() && !bwd.is_empty(), "{}: no complete messages", dir.display());
        fwd.sort();
        bwd.sort();
        let (f50, b50) = (fwd[fwd.len() / 2] as f64, bwd[bwd.len() / 2] as f64);
        assert!(f50 + b50 <= rtt_ns * 1.10 + 20_000.0, "{}: e2e {f50}+{b50} ns vs RTT {rtt_ns} ns", dir.display());
        assert!(f50 >= rtt_ns / 2.0 / 4.0, "{}: e2e {f50} ns vs RTT/2 {} ns", dir.display(), rtt_ns / 2.0);
    }
}
