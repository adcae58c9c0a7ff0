//! The recorder's reliability scenarios (`cargo xtask lab run crash|diskfull|overload|flight`):
//! smc-record under real SMC-R load in guest A, pushed into a failure — SIGKILL, a full
//! file system, a ring buffer too small for the burst — or recording into rotated files and
//! the flight-recorder ring while a connection falls back, and the host's smc-analyze asked
//! what the recordings left behind still say. Guest B only serves the workload.
//!
//! Files A leaves in `/out` besides the usual `a-load.json`: `<scenario>-a.smctrace`,
//! `<scenario>-rec.err` (smc-record's stderr), `<scenario>-rec.rc` (its exit status),
//! `<scenario>-caps.txt` (its CapEff while recording), and for `crash`
//! `crash-kill-time` (CLOCK_REALTIME of the SIGKILL, `date +%s.%N`). `flight` leaves the
//! series `flight.NNNNNN.smctrace` (flight dumps) and `rot.NNNNNN.smctrace` (rotated files)
//! with `flight-rec.*` and `flight-rot.*` beside them.
//! What each one proves is in docs/reliability.md.

use crate::scenario::{Reliability, Tools};
use crate::vm::sh_quote;
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// TCP port of the server in guest B (the same as the other scenarios).
const PORT: u16 = 5000;
/// Seconds of SMC-R ping-pong before the recorder is killed.
const CRASH_AFTER_S: u32 = 4;
/// The newest recovered event must be at most this old when the SIGKILL lands: the
/// recorder hands a chunk to the writer every 100 ms (50 ms poll), so a kill loses at
/// most the last ~150 ms plus whatever the TCG guest delays; 1 s is the asserted bound.
pub const CRASH_LOSS_BOUND_S: f64 = 1.0;
/// Size of the tmpfs `diskfull` records into.
const DISKFULL_TMPFS: &str = "256k";
/// smc-record's exit code for a full output file system (recorder/src/main.rs).
pub const EXIT_DISK_FULL: i64 = 14;
/// Seconds of the `overload` burst: 64-byte writes as fast as the client can, into a
/// 4 KiB ring buffer (a ping-pong has one message in flight and never overflows it).
const OVERLOAD_SECS: u64 = 3;
/// `flight`: messages of the SMC-R ping-pong before the connection that falls back.
const FLIGHT_PINGPONG: u64 = 2000;
/// `flight`: size of each rotated file and how many are kept.
const ROTATE_SIZE: &str = "40k";
const ROTATE_KEEP: usize = 3;
/// `flight`: the client fallback reason when B has no UEID (`SMC_CLC_DECL_PEERDECL`).
const FLIGHT_FALLBACK: u64 = crate::scenario::EXPECTED_CLIENT_FALLBACK as u64;

/// smc-load's arguments: the crash and disk-full runs are stopped from outside, so
/// their count only has to outlast the test.
pub fn client_args(sc: Reliability) -> String {
    match sc {
        Reliability::Overload => format!("--mode bulk --duration {OVERLOAD_SECS} --size 64"),
        Reliability::Flight => format!("--mode pingpong --count {FLIGHT_PINGPONG} --size 64"),
        _ => "--mode pingpong --count 1000000 --size 64".to_string(),
    }
}

/// Start smc-record in the background (`$rec`), wait for its ready file, save its CapEff.
fn start_recorder(tools: &Tools, sc: Reliability, output: &str, extra: &str) -> String {
    let name = sc.name();
    format!(
        "{rec} record --output {output} --ready-file /tmp/rec.ready -q {extra} 2>/out/{name}-rec.err &\n\
         rec=$!\n\
         n=0\n\
         while [ ! -e /tmp/rec.ready ]; do\n\
         \x20 kill -0 $rec 2>/dev/null || {{ echo \"smc-record exited before it was ready\"; cat /out/{name}-rec.err; exit 90; }}\n\
         \x20 n=$((n + 1)); [ $n -le 600 ] || {{ echo \"smc-record not ready after 60 s\"; kill -KILL $rec; exit 91; }}\n\
         \x20 sleep 0.1\n\
         done\n\
         grep -H -E '^Cap(Eff|Prm):' /proc/$rec/task/*/status > /out/{name}-caps.txt\n",
        rec = sh_quote(&tools.record.display().to_string()),
    )
}

fn start_load(tools: &Tools, sc: Reliability) -> String {
    format!(
        "{load} client --connect \"$SMCTRACE_PEER:{PORT}\" {} --json > /out/a-load.json &\n\
         load=$!\n",
        client_args(sc),
        load = sh_quote(&tools.load.display().to_string()),
    )
}

/// Guest B of `flight`: one SMC-R connection, then (UEID removed, so SMC-Rv2 has no
/// device in common) one that falls back.
pub fn flight_b_script(tools: &Tools) -> String {
    let smcctl = sh_quote(&tools.smcctl.display().to_string());
    let load = sh_quote(&tools.load.display().to_string());
    format!(
        "set -e\n\
         {load} server --listen 0.0.0.0:{PORT} --exit-after 1\n\
         {smcctl} ueid del {ueid}\n\
         {load} server --listen 0.0.0.0:{PORT} --exit-after 1\n\
         {smcctl} stats --json > /out/b-stats.json\n{smcctl} fallback --json > /out/b-fallback.json\n",
        ueid = crate::vm::LAB_UEID,
    )
}

/// Guest A of `flight`: two recorders (flight ring with the fallback trigger; rotated
/// files), the SMC-R ping-pong, SIGUSR1 to the flight recorder, then a short ping-pong
/// that falls back (retried until B's second server listens), then both recorders
/// stopped with SIGINT.
fn flight_a_script(tools: &Tools) -> String {
    let rec = sh_quote(&tools.record.display().to_string());
    let load = sh_quote(&tools.load.display().to_string());
    let wait_ready = |pid: &str, ready: &str, err: &str| {
        format!(
            "n=0\n\
             while [ ! -e {ready} ]; do\n\
             \x20 kill -0 ${pid} 2>/dev/null || {{ echo \"smc-record exited before it was ready\"; cat {err}; exit 90; }}\n\
             \x20 n=$((n + 1)); [ $n -le 600 ] || {{ echo \"smc-record not ready after 60 s\"; kill -KILL ${pid}; exit 91; }}\n\
             \x20 sleep 0.1\n\
             done\n"
        )
    };
    let mut s = String::from("set -e\n");
    s += &format!(
        "{rec} record --output /out/flight.smctrace --flight 1 --trigger fallback --ready-file /tmp/rec.ready 2>/out/flight-rec.err &\nrec=$!\n"
    );
    s += &wait_ready("rec", "/tmp/rec.ready", "/out/flight-rec.err");
    s += &format!(
        "{rec} record --output /out/rot.smctrace --max-size {ROTATE_SIZE} --rotate {ROTATE_KEEP} --ready-file /tmp/rot.ready 2>/out/flight-rot.err &\nrot=$!\n"
    );
    s += &wait_ready("rot", "/tmp/rot.ready", "/out/flight-rot.err");
    s += "grep -H -E '^Cap(Eff|Prm):' /proc/$rec/task/*/status > /out/flight-caps.txt\n";
    s += &format!(
        "{load} client --connect \"$SMCTRACE_PEER:{PORT}\" {} --json > /out/a-load.json\n\
         kill -USR1 $rec\n\
         sleep 0.5\n\
         i=0\n\
         until {load} client --connect \"$SMCTRACE_PEER:{PORT}\" --mode pingpong --count 20 --size 64 --json > /out/a-load-fallback.json 2>/dev/null; do\n\
         \x20 i=$((i + 1)); [ $i -le 100 ] || {{ echo \"fallback client never connected\"; exit 94; }}\n\
         \x20 sleep 0.2\n\
         done\n\
         sleep 1\n\
         kill -INT $rec\n\
         rc=0; wait $rec || rc=$?\n\
         echo $rc > /out/flight-rec.rc\n\
         kill -INT $rot\n\
         rc=0; wait $rot || rc=$?\n\
         echo $rc > /out/flight-rot.rc\n\
         cat /out/flight-rec.err /out/flight-rot.err\n\
         echo \"smc-record exit status $(cat /out/flight-rec.rc) (flight), $(cat /out/flight-rot.rc) (rotate)\"\n",
        client_args(Reliability::Flight)
    );
    s
}

/// Stop the (endless) client; its status does not matter.
const STOP_LOAD: &str = "kill -TERM $load 2>/dev/null || true\nwait $load || true\n";

/// Guest A's script for a reliability scenario.
pub fn a_script(sc: Reliability, tools: &Tools) -> String {
    let name = sc.name();
    let mut s = String::from("set -e\n");
    match sc {
        Reliability::Flight => return flight_a_script(tools),
        Reliability::Crash => {
            s += &start_recorder(tools, sc, "/out/crash-a.smctrace", "");
            s += &start_load(tools, sc);
            s += &format!(
                "sleep {CRASH_AFTER_S}\n\
                 kill -0 $load 2>/dev/null || {{ echo \"smc-load ended before the kill\"; cat /out/a-load.json; exit 93; }}\n\
                 date +%s.%N > /out/crash-kill-time\n\
                 kill -KILL $rec\n\
                 rc=0; wait $rec || rc=$?\n\
                 echo $rc > /out/{name}-rec.rc\n"
            );
            s += STOP_LOAD;
        }
        Reliability::Diskfull => {
            s += &format!(
                "mkdir -p /tmp/small\n\
                 mount -t tmpfs -o size={DISKFULL_TMPFS},mode=0700 smctrace-small /tmp/small\n"
            );
            s += &start_recorder(tools, sc, "/tmp/small/diskfull-a.smctrace", "");
            s += &start_load(tools, sc);
            // The recorder must end by itself; after 90 s it is stopped and the check fails.
            s += &format!(
                "( sleep 90; kill -INT $rec 2>/dev/null ) &\n\
                 guard=$!\n\
                 rc=0; wait $rec || rc=$?\n\
                 kill $guard 2>/dev/null || true\n\
                 echo $rc > /out/{name}-rec.rc\n\
                 df -k /tmp/small > /out/diskfull-df.txt\n\
                 cp /tmp/small/diskfull-a.smctrace /out/diskfull-a.smctrace\n"
            );
            s += STOP_LOAD;
        }
        Reliability::Overload => {
            s += &start_recorder(tools, sc, "/out/overload-a.smctrace", "--buffer 4k");
            s += &start_load(tools, sc);
            s += &format!(
                "lrc=0; wait $load || lrc=$?\n\
                 kill -INT $rec\n\
                 rc=0; wait $rec || rc=$?\n\
                 echo $rc > /out/{name}-rec.rc\n\
                 [ $lrc -eq 0 ] || {{ echo \"smc-load client failed with status $lrc\"; exit $lrc; }}\n"
            );
        }
    }
    s += &format!(
        "cat /out/{name}-rec.err\necho \"smc-record exit status $(cat /out/{name}-rec.rc)\"\n"
    );
    s
}

fn read(out: &Path, file: &str) -> Result<String> {
    std::fs::read_to_string(out.join(file))
        .with_context(|| format!("{} missing", out.join(file).display()))
}

/// Run smc-analyze on the host; returns (exit code, stdout, stderr).
fn analyze(analyze: &Path, args: &[&str]) -> Result<(i32, String, String)> {
    let o = Command::new(analyze)
        .args(args)
        .output()
        .with_context(|| format!("running {}", analyze.display()))?;
    Ok((
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    ))
}

/// The value after `key` on the first line of `text` starting with it.
fn line<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
}

/// Event count of `smc-analyze info`'s "chunks:" line ("N event chunks, E events, ...").
pub fn info_events(info: &str) -> Option<(u64, u64)> {
    let l = line(info, "chunks:")?;
    let mut it = l.split(',');
    let chunks = it.next()?.split_whitespace().next()?.parse().ok()?;
    let events = it.next()?.split_whitespace().next()?.parse().ok()?;
    Some((chunks, events))
}

/// The lost count of `smc-analyze info`'s "lost:" line (None: "unknown (no trailer)").
pub fn info_lost(info: &str) -> Option<u64> {
    line(info, "lost:")?.split_whitespace().next()?.parse().ok()
}

/// The end of `smc-analyze info`'s "time:" line ("A UTC .. B UTC"), as Unix seconds.
fn info_last_event_s(info: &str) -> Result<f64> {
    let l = line(info, "time:").context("smc-analyze info printed no time: line")?;
    let end = l
        .split("..")
        .nth(1)
        .context("time: line without '..'")?
        .trim();
    let o = Command::new("date")
        .args(["-u", "-d", end, "+%s.%N"])
        .output()
        .context("running date")?;
    let s = String::from_utf8_lossy(&o.stdout);
    s.trim()
        .parse()
        .with_context(|| format!("date cannot read {end:?}"))
}

/// The number in the recorder's "warning: N events were lost" line.
pub fn recorder_lost(stderr: &str) -> Option<u64> {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("smc-record: warning: "))
        .filter(|l| l.contains("events were lost"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Capability masks of every `CapEff:`/`CapPrm:` line of `grep -H` over the
/// recorder's `/proc/PID/task/*/status`: (effective of each thread, permitted of each).
pub fn thread_caps(caps: &str) -> (Vec<u64>, Vec<u64>) {
    let (mut eff, mut prm) = (Vec::new(), Vec::new());
    for l in caps.lines() {
        let l = l.rsplit_once("status:").map(|(_, r)| r).unwrap_or(l);
        let parse = |v: &str| u64::from_str_radix(v.trim(), 16).ok();
        if let Some(v) = l.strip_prefix("CapEff:").and_then(parse) {
            eff.push(v);
        } else if let Some(v) = l.strip_prefix("CapPrm:").and_then(parse) {
            prm.push(v);
        }
    }
    (eff, prm)
}

/// What smc-record keeps permitted while recording as root: CAP_BPF and CAP_NET_ADMIN
/// (recorder/src/privs.rs); effective: nothing.
pub const KEPT_CAPS: u64 = (1 << 39) | (1 << 12);

/// Check a finished reliability run on the host.
pub fn check(sc: Reliability, out: &Path, analyze_bin: &Path) -> Result<Vec<String>> {
    if sc == Reliability::Flight {
        return check_flight(out, analyze_bin);
    }
    let name = sc.name();
    let mut proven = Vec::new();
    let rec = out.join(format!("{name}-a.smctrace"));
    let recp = rec.display().to_string();
    let rc: i64 = read(out, &format!("{name}-rec.rc"))?
        .trim()
        .parse()
        .context("bad rc file")?;
    let err = read(out, &format!("{name}-rec.err"))?;
    let (eff, prm) = thread_caps(&read(out, &format!("{name}-caps.txt"))?);
    if eff.len() < 3 || eff.iter().any(|&e| e != 0) || prm.iter().any(|&p| p != KEPT_CAPS) {
        bail!("assertion failed: while recording, every smc-record thread must have CapEff 0 and CapPrm {KEPT_CAPS:016x}; threads have CapEff {eff:x?}, CapPrm {prm:x?}");
    }
    proven.push(format!(
        "least privilege: all {} smc-record threads at CapEff 0, CapPrm {KEPT_CAPS:016x} (CAP_BPF, CAP_NET_ADMIN) while recording",
        eff.len()
    ));
    let mode = std::fs::metadata(&rec).with_context(|| format!("{recp} missing"))?;
    let (code, info, ierr) = analyze(analyze_bin, &["info", &recp])?;
    if code != 0 {
        bail!(
            "assertion failed: smc-analyze info {recp} exited {code}: {}",
            ierr.trim()
        );
    }
    let (chunks, events) =
        info_events(&info).context("smc-analyze info printed no chunks: line")?;
    // Security: every recording is 0600 and carries no user data without --payload.
    let perm = std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777;
    if perm != 0o600 {
        bail!("assertion failed: {recp} has mode {perm:o}, recordings must be 0600");
    }
    let records = line(&info, "records:").unwrap_or("");
    if line(&info, "payload:") != Some("not captured") || records.contains("payload") {
        bail!("assertion failed: {recp} holds payload without --payload (records: {records})");
    }
    proven.push(format!(
        "{recp}: mode 0600, no payload records (--payload not given)"
    ));
    let close = line(&info, "close:").unwrap_or("").to_string();
    let (code, rep, rerr) = analyze(analyze_bin, &["report", "--json", &recp])?;
    if code != 0 {
        bail!(
            "assertion failed: smc-analyze report {recp} exited {code}: {}",
            rerr.trim()
        );
    }
    let rep: Value = serde_json::from_str(&rep).context("smc-analyze report --json is not JSON")?;
    let r0 = &rep["recordings"][0];
    let clean = r0["clean_close"].as_bool();
    let unreadable = r0["unreadable_chunks"].as_u64().unwrap_or(u64::MAX);
    let summary = &rep["summary"];
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0);
    match sc {
        // checked by check_flight, at the top
        Reliability::Flight => {}
        Reliability::Crash | Reliability::Diskfull => {
            if sc == Reliability::Crash && rc != 137 {
                bail!("assertion failed: smc-record should have died of SIGKILL (status 137), status {rc}");
            }
            if sc == Reliability::Diskfull {
                let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
                if rc != EXIT_DISK_FULL
                    || lines.len() != 1
                    || !lines[0].contains("output file system full")
                {
                    bail!(
                        "assertion failed: smc-record must exit {EXIT_DISK_FULL} with one 'output file system full' line, got status {rc} and stderr {:?}",
                        err.trim()
                    );
                }
                proven.push(format!(
                    "smc-record stopped on the full tmpfs: exit {rc}, one line: {}",
                    lines[0]
                ));
            }
            if !close.starts_with("NOT clean") || clean != Some(false) {
                bail!("assertion failed: {recp} must read as not closed cleanly (info: {close:?}, report clean_close {clean:?})");
            }
            if chunks == 0 || events == 0 || unreadable != 0 {
                bail!("assertion failed: {recp}: {chunks} chunks / {events} events recovered, {unreadable} unreadable chunks");
            }
            if !close.contains(&format!("recovered {chunks} chunks, {events} events")) {
                bail!("assertion failed: info's recovery report {close:?} disagrees with its chunk totals ({chunks} chunks, {events} events)");
            }
            if n(summary, "messages") == 0 {
                bail!("assertion failed: report of {recp} finds no message in {events} recovered events");
            }
            proven.push(format!(
                "{recp} ({} bytes, mode {:o}): {close}; report: {} events, {} messages ({} complete)",
                mode.len(),
                std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
                n(summary, "events"),
                n(summary, "messages"),
                n(summary, "complete_messages")
            ));
            if sc == Reliability::Crash {
                let kill: f64 = read(out, "crash-kill-time")?
                    .trim()
                    .parse()
                    .context("bad crash-kill-time")?;
                let last = info_last_event_s(&info)?;
                let gap = kill - last;
                if !(-0.5..=CRASH_LOSS_BOUND_S).contains(&gap) {
                    bail!("assertion failed: the newest recovered event is {gap:.3} s older than the SIGKILL (bound {CRASH_LOSS_BOUND_S} s)");
                }
                proven.push(format!(
                    "newest recovered event {:.0} ms before the SIGKILL time stamp (bound {:.0} ms; negative: events between the time stamp and the kill)",
                    gap * 1000.0,
                    CRASH_LOSS_BOUND_S * 1000.0
                ));
            } else {
                let df = read(out, "diskfull-df.txt").unwrap_or_default();
                proven.push(format!(
                    "tmpfs at the end: {}",
                    df.lines()
                        .last()
                        .unwrap_or("?")
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                ));
            }
        }
        Reliability::Overload => {
            if rc != 0 {
                bail!(
                    "assertion failed: smc-record must exit 0 after SIGINT, status {rc}: {}",
                    err.trim()
                );
            }
            let lost = info_lost(&info).context("smc-analyze info: no lost count (no trailer?)")?;
            if lost == 0 {
                bail!("assertion failed: a 4 KiB ring buffer lost nothing ({events} events); the scenario proves nothing");
            }
            let warned = recorder_lost(&err);
            let (rl, sl) = (n(r0, "lost_events"), n(summary, "lost_events"));
            if warned != Some(lost) || rl != lost || sl != lost {
                bail!("assertion failed: lost counts disagree: trailer {lost}, smc-record warning {warned:?}, report recording {rl}, report summary {sl}");
            }
            if clean != Some(true) {
                bail!("assertion failed: {recp} not closed cleanly after SIGINT");
            }
            let inc = n(summary, "incomplete_messages");
            if inc == 0 {
                bail!("assertion failed: {lost} events lost but no message marked incomplete");
            }
            proven.push(format!(
                "lost {lost} events: trailer == smc-record's warning == report (recording and summary); {events} events kept"
            ));
            proven.push(format!(
                "report: {} messages, {inc} incomplete, {} complete",
                n(summary, "messages"),
                n(summary, "complete_messages")
            ));
        }
    }
    Ok(proven)
}

/// Files of a numbered series (`<stem>.NNNNNN.smctrace`) in `out`, sorted: (number, path).
fn series(out: &Path, stem: &str) -> Result<Vec<(u64, std::path::PathBuf)>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(out).with_context(|| format!("reading {}", out.display()))? {
        let p = e?.path();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let num = name
            .strip_prefix(&format!("{stem}."))
            .and_then(|r| r.strip_suffix(".smctrace"))
            .filter(|n| n.len() == 6)
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(n) = num {
            v.push((n, p));
        }
    }
    v.sort();
    Ok(v)
}

/// `info` and `report --json` of one file, which must be valid, closed cleanly, 0600.
fn valid_file(analyze_bin: &Path, p: &Path) -> Result<(String, Value)> {
    let ps = p.display().to_string();
    let perm =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p)?.permissions()) & 0o777;
    if perm != 0o600 {
        bail!("assertion failed: {ps} has mode {perm:o}, recordings must be 0600");
    }
    let (code, info, ierr) = analyze(analyze_bin, &["info", &ps])?;
    if code != 0 {
        bail!(
            "assertion failed: smc-analyze info {ps} exited {code}: {}",
            ierr.trim()
        );
    }
    if !line(&info, "close:").unwrap_or("").starts_with("clean") || info_lost(&info).is_none() {
        bail!("assertion failed: {ps} must be closed cleanly with a lost count (info: close {:?}, lost {:?})", line(&info, "close:"), line(&info, "lost:"));
    }
    let (code, rep, rerr) = analyze(analyze_bin, &["report", "--json", &ps])?;
    if code != 0 {
        bail!(
            "assertion failed: smc-analyze report {ps} exited {code}: {}",
            rerr.trim()
        );
    }
    let rep: Value = serde_json::from_str(&rep).context("smc-analyze report --json is not JSON")?;
    Ok((info, rep))
}

/// The value of `extra:      KEY = VALUE` in `smc-analyze info`.
fn info_extra<'a>(info: &'a str, key: &str) -> Option<&'a str> {
    info.lines()
        .filter_map(|l| l.strip_prefix("extra:"))
        .find_map(|l| l.trim().strip_prefix(key)?.trim_start().strip_prefix('='))
        .map(str::trim)
}

/// `flight`: the flight dumps hold the fallback connection with its reason and account
/// for every lost event; the rotated series keeps the newest N valid files, each naming
/// its connections.
fn check_flight(out: &Path, analyze_bin: &Path) -> Result<Vec<String>> {
    let mut proven = Vec::new();
    for who in ["rec", "rot"] {
        let rc = read(out, &format!("flight-{who}.rc"))?.trim().to_string();
        if rc != "0" {
            bail!(
                "assertion failed: smc-record ({who}) must exit 0 after SIGINT, status {rc}: {}",
                read(out, &format!("flight-{who}.err"))?.trim()
            );
        }
    }
    let (eff, prm) = thread_caps(&read(out, "flight-caps.txt")?);
    if eff.len() < 3 || eff.iter().any(|&e| e != 0) || prm.iter().any(|&p| p != KEPT_CAPS) {
        bail!("assertion failed: flight recorder threads must have CapEff 0 and CapPrm {KEPT_CAPS:016x}; they have CapEff {eff:x?}, CapPrm {prm:x?}");
    }
    proven.push(format!(
        "least privilege in flight mode: all {} threads at CapEff 0 while recording",
        eff.len()
    ));

    // Flight dumps: one on SIGUSR1 (the ping-pong), one from the trigger, one at exit.
    let dumps = series(out, "flight")?;
    if dumps.len() < 3 {
        bail!("assertion failed: expected a SIGUSR1 dump, a trigger dump and an exit dump, found {} flight file(s)", dumps.len());
    }
    let (mut lost_sum, mut fallback_dump, mut usr1_dump) = (0u64, None, None);
    for (n, p) in &dumps {
        let (info, rep) = valid_file(analyze_bin, p)?;
        let reason = info_extra(&info, "flight.reason").unwrap_or("").to_string();
        if reason == "SIGUSR1" && usr1_dump.is_none() {
            let msgs = rep["summary"]["complete_messages"].as_u64().unwrap_or(0);
            if msgs < FLIGHT_PINGPONG {
                bail!("assertion failed: the SIGUSR1 dump {} holds {msgs} complete messages, the ping-pong sent {FLIGHT_PINGPONG}", p.display());
            }
            usr1_dump = Some((*n, msgs));
        }
        lost_sum += info_lost(&info).unwrap_or(0)
            + info_extra(&info, "flight.dropped_lost")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
        let fb = rep["fallback_reasons"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let has_fb = fb
            .iter()
            .any(|f| f["code"].as_u64() == Some(FLIGHT_FALLBACK) && f["side"] == "client");
        if reason.starts_with("trigger: fallback") && fallback_dump.is_none() {
            if !has_fb {
                bail!("assertion failed: trigger dump {} lacks the client fallback {FLIGHT_FALLBACK:#010x}: {fb:?}", p.display());
            }
            fallback_dump = Some((
                *n,
                p.clone(),
                reason.clone(),
                rep["summary"]["messages"].as_u64().unwrap_or(0),
            ));
        }
    }
    let Some((n, p, reason, msgs)) = fallback_dump else {
        bail!(
            "assertion failed: no flight dump written by the fallback trigger ({} dumps)",
            dumps.len()
        );
    };
    let Some((un, umsgs)) = usr1_dump.filter(|(un, _)| *un < n) else {
        bail!(
            "assertion failed: no SIGUSR1 dump before the trigger dump ({} dumps)",
            dumps.len()
        );
    };
    proven.push(format!("flight dump {un} written on SIGUSR1: valid, clean, {umsgs} complete messages of the ping-pong"));
    let last_reason = info_extra(
        &valid_file(analyze_bin, &dumps.last().unwrap().1)?.0,
        "flight.reason",
    )
    .unwrap_or("")
    .to_string();
    if !last_reason.starts_with("exit") {
        bail!("assertion failed: the last flight dump must be the one written at exit, its reason is {last_reason:?}");
    }
    proven.push(format!(
        "flight dump {n} ({}): valid, clean, {reason:?}; holds the client fallback {FLIGHT_FALLBACK:#010x} (PEERDECL) and {msgs} messages (the ring was emptied by the SIGUSR1 dump); last dump written at exit",
        p.display()
    ));
    let err = read(out, "flight-rec.err")?;
    let total_lost = err
        .lines()
        .find(|l| l.contains(" files written"))
        .and_then(|l| l.rsplit("lost ").next())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .context("flight-rec.err: no final summary line")?;
    if total_lost != lost_sum {
        bail!("assertion failed: the flight dumps account for {lost_sum} lost events, smc-record lost {total_lost}");
    }
    proven.push(format!("{} flight dumps; lost events accounted: {lost_sum} in the dumps == {total_lost} for the session", dumps.len()));

    // Rotation: the newest N files, consecutive, each valid and naming its connections.
    let rot = series(out, "rot")?;
    let rerr = read(out, "flight-rot.err")?;
    let closed = rerr
        .lines()
        .filter(|l| l.starts_with("smc-record: closed "))
        .count();
    if rot.len() != ROTATE_KEEP || closed <= ROTATE_KEEP {
        bail!("assertion failed: --rotate {ROTATE_KEEP} must leave {ROTATE_KEEP} files after more were written; {} left, {closed} closed", rot.len());
    }
    let nums: Vec<u64> = rot.iter().map(|(n, _)| *n).collect();
    if nums.windows(2).any(|w| w[1] != w[0] + 1) || *nums.last().unwrap() != closed as u64 {
        bail!("assertion failed: the kept files must be the newest, consecutive: {nums:?} of {closed}");
    }
    let mut named = 0;
    for (_, p) in &rot {
        let (_, rep) = valid_file(analyze_bin, p)?;
        for c in rep["connections"].as_array().cloned().unwrap_or_default() {
            let msgs =
                c["messages_fwd"].as_u64().unwrap_or(0) + c["messages_bwd"].as_u64().unwrap_or(0);
            if msgs == 0 {
                continue;
            }
            let server = c["server"].as_str().unwrap_or("");
            if !server.ends_with(&format!(":{PORT}")) {
                bail!("assertion failed: {}: connection {} with {msgs} messages has no identity (server {server:?})", p.display(), c["id"]);
            }
            named += 1;
        }
    }
    if named == 0 {
        bail!("assertion failed: no kept rotated file holds a connection with messages");
    }
    proven.push(format!(
        "--rotate {ROTATE_KEEP}: {closed} files written, the newest {ROTATE_KEEP} kept ({nums:?}), each valid and closed cleanly; {named} connection(s) with messages, each named (server :{PORT})"
    ));
    Ok(proven)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_lines_are_parsed() {
        let info = "chunks:     62 event chunks, 12010 events, 739848 raw bytes\n\
                    lost:       16535 events (cpu0 16535)\n\
                    close:      clean\n";
        assert_eq!(info_events(info), Some((62, 12010)));
        assert_eq!(info_lost(info), Some(16535));
        assert_eq!(info_lost("lost:       unknown (no trailer)\n"), None);
        assert_eq!(
            recorder_lost("smc-record: warning: 42 events were lost (ring buffer full); try\n"),
            Some(42)
        );
        assert_eq!(
            recorder_lost("smc-record: warning: the kernel skipped 3 probe runs\n"),
            None
        );
        let caps = "/proc/9/task/9/status:CapPrm:\t0000008000001000\n/proc/9/task/9/status:CapEff:\t0000000000000000\n/proc/9/task/10/status:CapEff:\t0000000000001000\n";
        assert_eq!(thread_caps(caps), (vec![0, 0x1000], vec![KEPT_CAPS]));
        let info = "extra:      flight.reason = trigger: fallback (reason 0x05000000, sock 1)\nextra:      flight.dropped_lost = 3\n";
        assert_eq!(
            info_extra(info, "flight.reason"),
            Some("trigger: fallback (reason 0x05000000, sock 1)")
        );
        assert_eq!(info_extra(info, "flight.dropped_lost"), Some("3"));
        assert_eq!(info_extra(info, "flight"), None);
    }

    #[test]
    fn scripts_kill_and_fill() {
        let tools = Tools {
            smcctl: "/w/smcctl".into(),
            load: "/w/smc-load".into(),
            record: "/w/smc-record".into(),
        };
        let a = a_script(Reliability::Crash, &tools);
        assert!(a.rfind("kill -KILL $rec").unwrap() > a.find("crash-kill-time").unwrap());
        let d = a_script(Reliability::Diskfull, &tools);
        assert!(d.contains("mount -t tmpfs -o size=256k"));
        assert!(d.contains("--output /tmp/small/diskfull-a.smctrace"));
        let o = a_script(Reliability::Overload, &tools);
        assert!(o.contains("--buffer 4k") && o.contains("kill -INT $rec"));
        let f = a_script(Reliability::Flight, &tools);
        assert!(
            f.contains("--flight 1 --trigger fallback")
                && f.contains(&format!("--max-size {ROTATE_SIZE} --rotate {ROTATE_KEEP}"))
        );
        assert!(f.find("kill -INT $rec").unwrap() > f.find("until ").unwrap());
        assert!(f.find("kill -USR1 $rec").unwrap() < f.find("until ").unwrap());
        let b = flight_b_script(&tools);
        assert!(b.find("ueid del").unwrap() > b.find("--exit-after 1").unwrap());
    }
}
