//! The `smc-analyze` binary on recordings written by the format crate's
//! Writer from synthetic streams: info, report (text and JSON), export, bad
//! input. Golden tests on the lab's real recordings go in tests/golden.rs.

use std::path::{Path, PathBuf};
use std::process::Output;

use smc_analyze::synth::{write_recording, SimConn, SimMode, Synth};
use smctrace_format::event::EventKind;

mod common;

fn tmpdir(name: &str) -> PathBuf {
    common::tmpdir("cli", name)
}

fn run(args: &[&str]) -> Output {
    common::run(args, &[])
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Two hosts, host 1 clock 3 ms ahead: a ping-pong connection and a fallback.
fn two_host_files(dir: &Path) -> (PathBuf, PathBuf) {
    let mut sy = Synth::new(2);
    sy.host_offset[1] = 3_000_000;
    let mut c = SimConn::new(SimMode::SmcR, 0, 1, 65536, 1);
    c.handshake(&mut sy);
    for _ in 0..50 {
        c.pingpong_round(&mut sy, 128);
    }
    // one slow delivery: the server app reads 500 us late
    c.send(&mut sy, 0, 128, 1);
    c.deliver(&mut sy, 1);
    c.idle(500_000);
    c.recv(&mut sy, 1, 128);
    c.close(&mut sy);
    let mut fb = SimConn::new(SimMode::SmcR, 0, 1, 65536, 2);
    fb.now = c.now + 1_000_000;
    fb.handshake_fallback(&mut sy, 0x0303_0002);
    let a = dir.join("client.smctrace");
    let b = dir.join("server.smctrace");
    write_recording(&a, &sy.stream(0), "client", "boot-a", 0, 50, true).unwrap();
    write_recording(&b, &sy.stream(1), "server", "boot-b", 0, 50, true).unwrap();
    (a, b)
}

#[test]
fn info_prints_header_probes_chunks_and_close() {
    let d = tmpdir("info");
    let (a, _) = two_host_files(&d);
    let o = run(&["info", s(&a)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = String::from_utf8(o.stdout).unwrap();
    assert!(
        t.contains("host:       client  kernel 6.1.0-synthetic  boot id boot-a"),
        "{t}"
    );
    assert!(t.contains("probes:     17"), "{t}");
    assert!(t.contains("sendmsg"), "{t}");
    assert!(t.contains("lost:       0 events"), "{t}");
    assert!(t.contains("close:      clean"), "{t}");
}

#[test]
fn report_text_and_json_agree_with_the_simulation() {
    let d = tmpdir("report");
    let (a, b) = two_host_files(&d);
    let o = run(&["report", s(&a), s(&b), "--top", "2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = String::from_utf8(o.stdout).unwrap();
    assert!(t.contains("clock [1] - [0] = 3.00ms ± 10.0us"), "{t}");
    assert!(t.contains("0x03030002 NOSMCRDEV"), "{t}");
    assert!(t.contains("blocked in app_wait"), "{t}");

    let o = run(&[
        "report",
        s(&a),
        s(&b),
        "--json",
        "--top",
        "1",
        "--slow",
        "100us",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["schema"], "smc-analyze/report/1");
    assert_eq!(j["clock"][1]["offset_ns"], 3_000_000);
    assert_eq!(j["clock"][1]["uncertainty_ns"], 10_000);
    assert_eq!(j["summary"]["messages"], 101);
    assert_eq!(j["summary"]["incomplete_messages"], 0);
    assert_eq!(j["summary"]["connections_by_mode"]["SMC-R"], 1);
    assert_eq!(j["summary"]["connections_by_mode"]["fallback"], 1);
    let e2e = j["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["stage"] == "e2e")
        .unwrap();
    assert_eq!(e2e["count"], 101);
    assert_eq!(e2e["p50_ns"], 20_000);
    assert_eq!(e2e["max_ns"], 20_000 + 500_000);
    let slow = &j["slowest"][0];
    assert_eq!(slow["latency_ns"], 520_000);
    assert_eq!(slow["blocking_stage"], "app_wait");
    assert_eq!(slow["stages"]["app_wait"], 503_000);
    assert_eq!(
        j["slow"].as_array().unwrap().len(),
        1,
        "only one message is above 100us"
    );
    let conn = &j["connections"][0];
    assert_eq!(conn["latency_basis"], "e2e");
    assert_eq!(conn["messages_fwd"], 51);
    assert_eq!(conn["messages_bwd"], 50);
    assert_eq!(conn["handshake"]["total_ns"], 600_000);
    assert_eq!(j["fallback_reasons"][0]["name"], "NOSMCRDEV");
}

#[test]
fn filters_select_connections_and_time() {
    let d = tmpdir("filters");
    let (a, b) = two_host_files(&d);
    let j = |args: &[&str]| -> serde_json::Value {
        let mut v = vec!["report", s(&a), s(&b), "--json"];
        v.extend_from_slice(args);
        let o = run(&v);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    assert_eq!(j(&["--conn", "2"])["summary"]["messages"], 0);
    assert_eq!(j(&["--conn", "2"])["summary"]["connections"], 1);
    assert_eq!(j(&["--port", "40001"])["summary"]["messages"], 101);
    assert_eq!(j(&["--port", "9"])["summary"]["connections"], 0);
    assert_eq!(j(&["--comm", "client"])["summary"]["connections"], 2);
    // A server's handshake ends in a kworker: its comm is not the application's,
    // so server sides have no comm (and the pid comes from its sends/receives).
    assert_eq!(j(&["--comm", "server"])["summary"]["connections"], 0);
    assert_eq!(j(&["--pid", "111"])["summary"]["connections"], 1);
    // the first round starts 1 ms after the report start (handshake); 50 rounds of 54 us
    let early = j(&["--to", "1.5ms"])["summary"]["messages"]
        .as_u64()
        .unwrap();
    assert!(early > 0 && early < 101, "{early}");
    let late = j(&["--from", "1.5ms"])["summary"]["messages"]
        .as_u64()
        .unwrap();
    assert_eq!(early + late, 101);
}

#[test]
fn export_writes_three_csv_files() {
    let d = tmpdir("export");
    let (a, b) = two_host_files(&d);
    let out = d.join("csv");
    let o = run(&["export", "--csv", s(&out), s(&a), s(&b)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let msgs = std::fs::read_to_string(out.join("messages.csv")).unwrap();
    let mut lines = msgs.lines();
    let head = lines.next().unwrap();
    assert!(head.starts_with("conn,dir,kind,len,stream_start"), "{head}");
    assert!(
        head.contains("t_delivered_ns") && head.contains("e2e_ns"),
        "{head}"
    );
    assert_eq!(lines.count(), 101);
    let conns = std::fs::read_to_string(out.join("connections.csv")).unwrap();
    assert_eq!(conns.lines().count(), 3);
    assert!(conns.contains("NOSMCRDEV"));
    let stages = std::fs::read_to_string(out.join("stages.csv")).unwrap();
    assert!(
        stages.lines().any(|l| l.starts_with("e2e,101,")),
        "{stages}"
    );
}

#[test]
fn lost_events_and_unclean_files_are_reported_not_hidden() {
    let d = tmpdir("lossy");
    let mut sy = Synth::new(1);
    let mut c = SimConn::new(SimMode::SmcR, 0, 0, 65536, 1);
    c.handshake(&mut sy);
    for _ in 0..20 {
        c.pingpong_round(&mut sy, 100);
    }
    sy.drop_nth(0, EventKind::RxAction, 5);
    let f = d.join("lossy.smctrace");
    write_recording(&f, &sy.stream(0), "h", "b", 1, 40, true).unwrap();
    let o = run(&["report", "--json", s(&f)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["summary"]["lost_events"], 1);
    assert_eq!(j["summary"]["incomplete_messages"], 1);
    assert!(j["recordings"][0]["warnings"][0]
        .as_str()
        .unwrap()
        .contains("dropped 1 events"));

    let u = d.join("unclean.smctrace");
    write_recording(&u, &sy.stream(0), "h", "b", 0, 40, false).unwrap();
    let o = run(&["info", s(&u)]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("close:      NOT clean"));
    let o = run(&["report", s(&u)]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("not closed cleanly"));
}

#[test]
fn bad_input_is_one_line_and_a_distinct_exit_code() {
    let d = tmpdir("bad");
    let missing = run(&["report", s(&d.join("nope.smctrace"))]);
    let junk = d.join("junk.smctrace");
    std::fs::write(&junk, b"this is not a recording at all, just text").unwrap();
    let notrec = run(&["report", s(&junk)]);
    let usage = run(&["report", s(&junk), "--slow", "12"]);
    let codes: Vec<i32> = [&missing, &notrec, &usage]
        .iter()
        .map(|o| o.status.code().unwrap())
        .collect();
    assert_eq!(codes, vec![20, 21, 2]);
    for o in [&missing, &notrec] {
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(e.starts_with("smc-analyze: "), "{e}");
        assert!(!e.contains("panicked"));
    }
    // a truncated recording is recovered, not refused
    let (a, _) = two_host_files(&d);
    let bytes = std::fs::read(&a).unwrap();
    let t = d.join("trunc.smctrace");
    std::fs::write(&t, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let o = run(&["report", s(&t)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Load recordings through the same path as the binary, collecting messages.
fn analyze_files(files: &[&Path]) -> smc_analyze::join::Analysis {
    let inputs = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            smc_analyze::input::open(
                f,
                i,
                None,
                std::sync::Arc::new(std::sync::Mutex::new(Vec::new())),
            )
            .unwrap()
        })
        .collect();
    smc_analyze::join::collect(inputs, smc_analyze::model::DEFAULT_REORDER_WINDOW_NS)
}

#[test]
fn damaged_chunks_never_give_wrong_timelines() {
    let d = tmpdir("damaged");
    let (a, b) = two_host_files(&d);
    let clean = analyze_files(&[&a, &b]);
    let key = |m: &smc_analyze::join::Message| {
        (
            m.conn,
            m.dir == smc_analyze::join::Dir::Forward,
            m.start,
            m.end,
        )
    };
    let truth: std::collections::HashMap<_, _> =
        clean.messages.iter().map(|m| (key(m), m.points)).collect();
    assert!(clean.messages.iter().all(|m| !m.incomplete()));
    // Flip one byte in the compressed body of several chunks of each file.
    for (f, seed) in [(&a, 7usize), (&b, 3usize)] {
        // In the chunks: past the header and metadata.
        let hl = smctrace_format::Reader::open(f).unwrap().header_len() as usize;
        let mut bytes = std::fs::read(f).unwrap();
        let n = bytes.len() - hl;
        for k in 0..4 {
            let at = hl + n / 5 * (k + 1) + seed * 13;
            bytes[at] ^= 0x5a;
        }
        std::fs::write(f, &bytes).unwrap();
    }
    let o = run(&["report", "--json", s(&a), s(&b)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let unreadable: u64 = j["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["unreadable_chunks"].as_u64().unwrap())
        .sum();
    assert!(unreadable >= 2, "{}", j["recordings"]);
    let damaged = analyze_files(&[&a, &b]);
    let mut complete = 0;
    for m in damaged.messages.iter().filter(|m| !m.incomplete()) {
        complete += 1;
        // A complete message must match the undamaged truth exactly
        // (clock offsets agree: both estimates come from the same CDCs).
        let t = truth
            .get(&key(m))
            .unwrap_or_else(|| panic!("message {:?} not in the clean recording", key(m)));
        assert_eq!(
            &m.points,
            t,
            "complete message {:?} differs from the truth",
            key(m)
        );
    }
    assert!(
        complete > 0 && complete < clean.messages.len(),
        "{complete} of {}",
        clean.messages.len()
    );
}
