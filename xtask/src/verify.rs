//! What the analysis of a recorded lab scenario must show, checked on the JSON of
//! `smc-analyze report --json` over both peers' recordings: the end-to-end proof that the
//! recorder saw the real kernel and the analyzer rebuilt what really happened.
//!
//! Each check compares the analysis with evidence the recording did not produce: the
//! workload's own counts and RTT (`a-load.json`) and the scenario's expected fallback.

use crate::kernel::Series;
use crate::scenario::{expected_server_fallback, Scenario, EXPECTED_CLIENT_FALLBACK};
use serde_json::Value;
use std::path::Path;

/// Share of messages that must be followed through every stage on both peers.
///
/// The same on both kernels since smc-record attaches fentry/fexit: with kprobes, 6.1 lost
/// 2-9% of softirq stages (its rdma_rxe completes in tasklets that interrupt a process-context
/// kprobe handler, and the kernel skips a kprobe while another runs on the same CPU), so 6.1
/// was held to 0.85. fentry programs have per-program recursion guards and lose none
/// (4001 of 4001 messages complete on 6.1 in the lab).
fn min_complete(kernel: Series) -> f64 {
    match kernel {
        Series::V6_12 => 0.99,
        Series::V6_1 => 0.99,
        Series::V7_3 => 0.99,
    }
}
/// The analyzer's one-way end-to-end p50 against the workload's RTT p50 / 2. A ping-pong
/// round is two one-way trips plus the echo server's turn-around, so the one-way latency
/// is at most about RTT/2; far below it would mean stages are missing from e2e.
const E2E_VS_HALF_RTT: (f64, f64) = (0.5, 1.2);

fn u(v: &Value, path: &[&str]) -> u64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_u64().unwrap_or(0)
}

/// Problems found; empty means the scenario's analysis holds.
pub fn recorded_scenario(
    scenario: Scenario,
    kernel: Series,
    report: &Value,
    out: &Path,
) -> Vec<String> {
    let mut problems = Vec::new();
    let lost = u(report, &["summary", "lost_events"]);
    if lost != 0 {
        problems.push(format!("{lost} events lost"));
    }
    let recordings = report["recordings"].as_array().map(Vec::len).unwrap_or(0);
    if recordings != 2 {
        problems.push(format!("{recordings} recordings in the report, expected 2"));
    }
    match scenario {
        Scenario::Pingpong => pingpong(report, out, min_complete(kernel), &mut problems),
        Scenario::Fallback => fallback(report, kernel, &mut problems),
        // One recording, checked by reliability::check instead.
        Scenario::Crash | Scenario::Diskfull | Scenario::Overload | Scenario::Flight => {
            problems.push("a reliability scenario has no two-peer analysis".into())
        }
        // One guest, checked by smcd_scenarios::check instead.
        Scenario::SmcdLoopback | Scenario::Metrics | Scenario::KernelTests => {
            problems.push("a one-guest scenario has no two-peer analysis".into())
        }
        Scenario::Bulk | Scenario::Shortconn => {
            if u(report, &["summary", "connections_by_mode", "SMC-R"]) == 0 {
                problems.push("no SMC-R connection in the analysis".into());
            }
        }
    }
    problems
}

fn pingpong(report: &Value, out: &Path, min_complete: f64, problems: &mut Vec<String>) {
    let load: Value = match std::fs::read(out.join("a-load.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
    {
        Some(v) => v,
        None => {
            problems.push("a-load.json (the workload's own report) missing or not JSON".into());
            return;
        }
    };
    let count = u(&load, &["count"]);
    let conns = report["connections"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let Some(conn) = conns
        .iter()
        .find(|c| c["mode"] == "SMC-R" && c["sides"].as_array().map(Vec::len) == Some(2))
    else {
        problems.push("no SMC-R connection seen by both recordings".into());
        return;
    };
    let (fwd, bwd) = (u(conn, &["messages_fwd"]), u(conn, &["messages_bwd"]));
    if fwd < count || bwd < count {
        problems.push(format!(
            "connection has {fwd}/{bwd} messages each way, the workload sent {count} each way"
        ));
    }
    let messages = u(report, &["summary", "messages"]);
    let complete = u(report, &["summary", "complete_messages"]);
    if messages == 0 || (complete as f64) < min_complete * messages as f64 {
        problems.push(format!(
            "only {complete} of {messages} messages complete (need {:.0}%)",
            min_complete * 100.0
        ));
    }
    let rtt_p50_ns = load["rtt_p50_us"].as_f64().unwrap_or(0.0) * 1000.0;
    let e2e_p50_ns = conn["latency_p50_ns"].as_f64().unwrap_or(0.0);
    let ratio = e2e_p50_ns / (rtt_p50_ns / 2.0);
    eprintln!(
        "lab: pingpong cross-check: analyzer e2e p50 {:.0} us, workload RTT p50 {:.0} us, e2e / (RTT/2) = {ratio:.2} (accepted {}..{})",
        e2e_p50_ns / 1000.0,
        rtt_p50_ns / 1000.0,
        E2E_VS_HALF_RTT.0,
        E2E_VS_HALF_RTT.1
    );
    if !(E2E_VS_HALF_RTT.0..=E2E_VS_HALF_RTT.1).contains(&ratio) {
        problems.push(format!(
            "e2e p50 / (RTT p50 / 2) = {ratio:.2}, outside {:?}",
            E2E_VS_HALF_RTT
        ));
    }
}

fn fallback(report: &Value, kernel: Series, problems: &mut Vec<String>) {
    let reasons: Vec<u64> = report["fallback_reasons"]
        .as_array()
        .map(|a| a.iter().map(|r| u(r, &["code"])).collect())
        .unwrap_or_default();
    for (code, who) in [
        (expected_server_fallback(kernel), "server"),
        (EXPECTED_CLIENT_FALLBACK, "client"),
    ] {
        if !reasons.contains(&(code as u64)) {
            problems.push(format!(
                "{who} fallback reason {code:#010x} not in the analysis (found {reasons:x?})"
            ));
        }
    }
    let named = report["fallback_reasons"]
        .as_array()
        .map(|a| {
            a.iter()
                .all(|r| r["name"].as_str().is_some_and(|n| !n.is_empty()))
        })
        .unwrap_or(false);
    if !named {
        problems.push("a fallback reason has no decoded name".into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base(conns: Value, summary: Value) -> Value {
        json!({"recordings": [{}, {}], "summary": summary, "connections": conns, "fallback_reasons": []})
    }

    #[test]
    fn pingpong_accepts_consistent_analysis_and_rejects_drift() {
        let dir = std::env::temp_dir().join(format!("xtask-verify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("a-load.json"),
            r#"{"count":100,"rtt_p50_us":1000.0}"#,
        )
        .unwrap();
        let conn = json!([{"mode":"SMC-R","sides":[{},{}],"messages_fwd":101,"messages_bwd":100,"latency_p50_ns":450000}]);
        let good = base(
            conn.clone(),
            json!({"lost_events":0,"messages":201,"complete_messages":200}),
        );
        assert!(recorded_scenario(Scenario::Pingpong, Series::V6_12, &good, &dir).is_empty());
        let slow = base(
            json!([{"mode":"SMC-R","sides":[{},{}],"messages_fwd":101,"messages_bwd":100,"latency_p50_ns":90000}]),
            json!({"lost_events":0,"messages":201,"complete_messages":200}),
        );
        assert_eq!(
            recorded_scenario(Scenario::Pingpong, Series::V6_12, &slow, &dir).len(),
            1
        );
        let lossy = base(
            conn,
            json!({"lost_events":3,"messages":201,"complete_messages":150}),
        );
        assert_eq!(
            recorded_scenario(Scenario::Pingpong, Series::V6_12, &lossy, &dir).len(),
            2
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn fallback_needs_both_decoded_reasons() {
        let mut r = base(json!([]), json!({"lost_events":0}));
        r["fallback_reasons"] = json!([{"code": 0x0303_0000u32, "name": "NOSMCDEV"}]);
        assert_eq!(
            recorded_scenario(
                Scenario::Fallback,
                Series::V6_12,
                &r,
                Path::new("/nonexistent")
            )
            .len(),
            1
        );
        r["fallback_reasons"] = json!([{"code": 0x0303_0000u32, "name": "NOSMCDEV"}, {"code": 0x0500_0000u32, "name": "PEERDECL"}]);
        assert!(recorded_scenario(
            Scenario::Fallback,
            Series::V6_12,
            &r,
            Path::new("/nonexistent")
        )
        .is_empty());
    }
}
