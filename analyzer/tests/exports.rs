//! The exports on the lab's real recordings (`fixtures/`): the pcapng is
//! decoded by `tshark` (Debian package `tshark`, required: the test fails
//! without it) and every decoded CLC type, CDC seqno, token and cursor is
//! compared with the recording decoded independently here through
//! `smctrace_format`; the charts and the HTML report are written; the CI
//! gate's exit codes and lines.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use smctrace_format::event::{self, EventRef};
use smctrace_format::Reader;

mod common;
use common::{fixture, run, text};

fn tmpdir(tag: &str) -> PathBuf {
    common::tmpdir("exports", tag)
}

/// `tshark -r FILE -T fields -E separator=/t -e F...` as rows of columns.
fn tshark(file: &Path, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
    let mut c = Command::new("tshark");
    c.args(["-r"])
        .arg(file)
        .args(["-Y", filter, "-T", "fields", "-E", "separator=/t"]);
    for f in fields {
        c.args(["-e", f]);
    }
    let o = match c.output() {
        Ok(o) => o,
        Err(e) => panic!(
            "tshark is required for this test and could not be run ({e}); install the Debian package: \
             DEBIAN_FRONTEND=noninteractive apt-get install -y tshark"
        ),
    };
    assert!(
        o.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or_else(|_| panic!("not hex: {s:?}"))
}

/// Every record of a recording, decoded with the format crate.
fn events(path: &Path) -> Vec<EventRef<'static>> {
    let r = Reader::open(path).unwrap();
    let mut out = Vec::new();
    for c in r.chunks() {
        let d = r.decode(&c.unwrap()).unwrap();
        for ev in d.records() {
            out.push(smc_analyze::model::owned(&ev.unwrap()));
        }
    }
    out
}

/// (direction flag, seqno, token, prod wrap, prod count, cons wrap, cons count)
type CdcKey = (u64, u64, u64, u64, u64, u64, u64);

fn count<T: Ord>(v: impl IntoIterator<Item = T>) -> BTreeMap<T, usize> {
    let mut m = BTreeMap::new();
    for x in v {
        *m.entry(x).or_insert(0) += 1;
    }
    m
}

#[test]
fn pingpong_pcapng_decodes_in_tshark_with_the_recorded_values() {
    let files = fixture("pingpong");
    let dir = tmpdir("pp");
    let out = dir.join("pp.pcapng");
    let o = run(&["export", "--pcapng", out.to_str().unwrap()], &files);
    assert!(o.status.success(), "{}", text(&o));

    // The recording's own view: every CDC sent (outbound, epb_flags 2) and
    // received (inbound, 1) on every host, SMC-R CLCs and CONN_INFOs.
    let mut want = Vec::new();
    let mut infos = Vec::new();
    let mut clc_tx = Vec::new();
    for f in &files {
        for ev in events(f) {
            match ev {
                EventRef::CdcSend(c) | EventRef::CdcRecv(c) => {
                    let dir = if matches!(ev, EventRef::CdcSend(_)) {
                        2
                    } else {
                        1
                    };
                    want.push((
                        dir,
                        c.seqno as u64,
                        c.token as u64,
                        c.prod.wrap as u64,
                        c.prod.count as u64,
                        c.cons.wrap as u64,
                        c.cons.count as u64,
                    ));
                }
                EventRef::ConnInfo(i) if i.mode == event::MODE_SMCR => infos.push(i),
                EventRef::Clc(c) if c.dir == event::DIR_TX => clc_tx.push(c.clc_type),
                _ => {}
            }
        }
    }
    assert!(
        want.len() > 4000,
        "the fixture has thousands of CDCs, found {}",
        want.len()
    );

    // tshark's decode of the SMC-R CDC dissector. The consumer cursor fields
    // share the producer fields' names: each holds "prod,cons".
    let rows = tshark(
        &out,
        "smc.rmbe.ctrl.seqno",
        &[
            "frame.packet_flags_direction",
            "smc.rmbe.ctrl.seqno",
            "smc.rmbe.ctrl.alert.token",
            "smc.rmbe.ctrl.prod.wrap.seq",
            "smc.rmbe.ctrl.peer.prod.curs",
            "_ws.col.Info",
        ],
    );
    let got: Vec<CdcKey> = rows
        .iter()
        .map(|r| {
            assert!(r[5].contains("CDC Message"), "not decoded as a CDC: {r:?}");
            let wrap: Vec<&str> = r[3].split(',').collect();
            let curs: Vec<&str> = r[4].split(',').collect();
            assert_eq!(
                (wrap.len(), curs.len()),
                (2, 2),
                "prod and cons cursor expected: {r:?}"
            );
            (
                hex(&r[0]),
                hex(&r[1]),
                hex(&r[2]),
                hex(wrap[0]),
                hex(curs[0]),
                hex(wrap[1]),
                hex(curs[1]),
            )
        })
        .collect();
    assert_eq!(
        got.len(),
        want.len(),
        "one CDC frame per recorded CDC_SEND/CDC_RECV"
    );
    assert_eq!(
        count(got),
        count(want),
        "decoded CDCs differ from the recording"
    );

    // CLC: the handshake decodes as Proposal, Accept, Confirm; Accept and
    // Confirm carry the QPN and RMBE alert token of the side that sent them.
    let rows = tshark(
        &out,
        "smc.clc_msg || smc.length",
        &[
            "_ws.col.Info",
            "smc.accept.server.qp.number",
            "smc.accept.server.rmb.element.alert.token",
            "smc.confirm.client.qp.number",
            "smc.client.rmb.element.alert.token",
        ],
    );
    let info: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    let types: Vec<&str> = info
        .iter()
        .filter_map(|i| {
            ["Proposal", "Accept", "Confirm", "Decline"]
                .into_iter()
                .find(|t| i.contains(&format!("-{t}]")))
        })
        .collect();
    assert_eq!(
        types,
        ["Proposal", "Accept", "Confirm"],
        "CLC frames: {:?}",
        info.iter()
            .filter(|i| !i.contains("CDC Message"))
            .collect::<Vec<_>>()
    );
    // The send hooks record no length; the frames have the length the receiver read.
    let clc: Vec<&&str> = info.iter().filter(|i| !i.contains("CDC Message")).collect();
    for (t, len) in [("Proposal", 156), ("Accept", 160), ("Confirm", 180)] {
        let want = format!("Len={len}");
        assert!(
            clc.iter()
                .any(|i| i.contains(&format!("-{t}]")) && i.split_whitespace().any(|w| w == want)),
            "{t} of {len} bytes: {clc:?}"
        );
    }
    assert_eq!(clc_tx.len(), 3, "the fixture records three CLC sends");
    let server = infos
        .iter()
        .find(|i| i.role == event::ROLE_SERVER)
        .expect("server CONN_INFO");
    let client = infos
        .iter()
        .find(|i| i.role == event::ROLE_CLIENT)
        .expect("client CONN_INFO");
    let accept = rows.iter().find(|r| r[0].contains("-Accept]")).unwrap();
    assert_eq!(hex(&accept[1]), server.qpn as u64);
    assert_eq!(hex(&accept[2]), server.local_token as u64);
    let confirm = rows.iter().find(|r| r[0].contains("-Confirm]")).unwrap();
    assert_eq!(hex(&confirm[3]), client.qpn as u64);
    assert_eq!(hex(&confirm[4]), client.local_token as u64);
    // The CDC frames go to the real destination QP: the peer's QPN.
    let qps = tshark(&out, "smc.rmbe.ctrl.seqno", &["infiniband.bth.destqp"]);
    let want_qps: std::collections::BTreeSet<u64> = [server.qpn as u64, client.qpn as u64].into();
    let got_qps: std::collections::BTreeSet<u64> = qps.iter().map(|r| hex(&r[0])).collect();
    assert_eq!(got_qps, want_qps);

    // Every packet has its comment; interfaces name host and device.
    let rows = tshark(&out, "frame", &["frame.comment", "frame.interface_name"]);
    assert!(
        rows.iter().all(|r| r[0].starts_with("conn 1 ")),
        "every packet comments its connection"
    );
    let names: std::collections::BTreeSet<&str> = rows.iter().map(|r| r[1].as_str()).collect();
    assert!(
        names.contains("a-client:clcsock") && names.contains("b-server:rxe0"),
        "{names:?}"
    );
    assert!(
        rows.iter()
            .any(|r| r[0].contains("msg 1 -> 16 B") && r[0].contains(" e2e=")),
        "message comments with stages"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fallback_pcapng_shows_the_proposal_and_the_decline_with_its_diagnosis() {
    let files = fixture("fallback");
    let dir = tmpdir("fb");
    let out = dir.join("fb.pcapng");
    let o = run(&["export", "--pcapng", out.to_str().unwrap()], &files);
    assert!(o.status.success(), "{}", text(&o));
    let mut diags = Vec::new();
    for f in &files {
        for ev in events(f) {
            if let EventRef::Clc(c) = ev {
                if c.clc_type == 4 {
                    diags.push(c.decline_diag as u64);
                }
            }
        }
    }
    assert!(
        diags.contains(&0x0303_0000),
        "the fixture's server declines with NOSMCDEV: {diags:?}"
    );
    let rows = tshark(&out, "smc.length", &["_ws.col.Info", "smc.peer.diag.info"]);
    let info: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert!(info.iter().any(|i| i.contains("-Proposal]")), "{info:?}");
    let decl = rows
        .iter()
        .find(|r| r[0].contains("-Decline]"))
        .unwrap_or_else(|| panic!("no decline decoded: {info:?}"));
    // A v2 decline (44 bytes) has four more (zero) diagnosis slots after the real one.
    let first = decl[1].split(',').next().unwrap_or_default();
    assert!(
        diags.contains(&hex(first)),
        "decline diagnosis {} not in the recording {diags:?}",
        decl[1]
    );
    assert!(
        decl[0].contains("Len=44"),
        "the decline's length as the client read it: {}",
        decl[0]
    );
    // The client's SYN and the server's SYN-ACK carry the SMC experimental option.
    let syns = tshark(
        &out,
        "tcp.flags.syn == 1",
        &["tcp.flags.ack", "tcp.options.experimental.exid"],
    );
    assert_eq!(
        syns,
        [
            vec!["0".to_string(), "0xe2d4".to_string()],
            vec!["1".to_string(), "0xe2d4".to_string()]
        ]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn plot_and_html_write_titled_charts() {
    let files = fixture("pingpong");
    let dir = tmpdir("plot");
    let o = run(&["plot", "--out", dir.to_str().unwrap()], &files);
    assert!(o.status.success(), "{}", text(&o));
    for (f, title, legend, axis) in [
        (
            "stage-cdf.svg",
            "Stage latency CDF",
            "e2e (n=4001",
            "stage duration (log scale)",
        ),
        (
            "stage-breakdown.svg",
            "chain stages at p50 and p99",
            "app_wait",
            "conn 1 p99",
        ),
        (
            "latency-over-time.svg",
            "Message latency over time",
            "conn 1 (4001 msgs)",
            "time since the report start (s)",
        ),
        (
            "handshake-waterfall.svg",
            "Handshake waterfall",
            "clc tx proposal",
            "time since connect",
        ),
    ] {
        let svg = std::fs::read_to_string(dir.join(f)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains(title), "{f}: title");
        assert!(svg.contains(legend), "{f}: legend {legend}");
        assert!(svg.contains(axis), "{f}: axis {axis}");
    }
    let html = dir.join("r.html");
    let o = run(&["html", html.to_str().unwrap()], &files);
    assert!(o.status.success(), "{}", text(&o));
    let h = std::fs::read_to_string(&html).unwrap();
    assert_eq!(h.matches("<svg").count(), 4);
    assert!(
        h.contains("<td class=l>e2e</td>") && !h.contains("<script") && !h.contains("src=\"http")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_passes_fails_and_rejects_bad_rules() {
    let pp = fixture("pingpong");
    let o = run(
        &[
            "check",
            "--max",
            "e2e.p99=1s",
            "--max",
            "rx_process.p50=10ms",
            "--fail-on-loss",
            "--fail-on-fallback",
            "--fail-on-incomplete",
            "1",
        ],
        &pp,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("ok   e2e.p99 <= 1.000s: is 43.5ms over 4001 messages"),
        "{}",
        text(&o)
    );

    let o = run(
        &[
            "check",
            "--max",
            "e2e.p99=1s",
            "--max",
            "rx_process.p50=20us",
        ],
        &pp,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let fails: Vec<&str> = out.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(
        fails,
        ["FAIL rx_process.p50 <= 20.0us: is 82.1us over 4001 messages"]
    );

    let fb = fixture("fallback");
    let o = run(
        &["check", "--fail-on-fallback", "--max", "e2e.p50=1ms"],
        &fb,
    );
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("FAIL no fallback: 1 connection(s) fell back to TCP: conn 1"),
        "{out}"
    );
    assert!(
        out.contains("FAIL e2e.p50 <= 1.00ms: no complete measurement of e2e"),
        "{out}"
    );

    let o = run(&["check"], &pp);
    assert_eq!(o.status.code(), Some(2), "no rule at all: {}", text(&o));
    assert!(text(&o).contains("check needs at least one rule"));

    for bad in [
        "e2e.p99=200",
        "e2e=200us",
        "wire.p98=1ms",
        "latency.p99=1ms",
    ] {
        let o = run(&["check", "--max", bad], &pp);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", text(&o));
        assert!(
            text(&o).contains(&format!("bad rule '{bad}'")),
            "{}",
            text(&o)
        );
    }
}

#[test]
fn smcd_cdcs_use_the_documented_encapsulation() {
    use smc_analyze::synth::{write_recording, SimConn, SimMode, Synth};
    let dir = tmpdir("smcd");
    let mut sy = Synth::new(1);
    let mut c = SimConn::new(SimMode::SmcD, 0, 0, 16384, 1);
    c.handshake(&mut sy);
    for _ in 0..5 {
        c.pingpong_round(&mut sy, 3000);
    }
    let f = dir.join("lo.smctrace");
    write_recording(&f, &sy.stream(0), "lo", "boot", 0, 50, true).unwrap();
    let want: Vec<(u64, u64)> = events(&f)
        .into_iter()
        .filter_map(|ev| match ev {
            EventRef::CdcSend(c) | EventRef::CdcRecv(c) => {
                Some((c.prod.wrap as u64, c.prod.count as u64))
            }
            _ => None,
        })
        .collect();
    assert!(!want.is_empty());
    let out = dir.join("lo.pcapng");
    let o = run(&["export", "--pcapng", out.to_str().unwrap()], &[f]);
    assert!(o.status.success(), "{}", text(&o));
    // EtherType 0x88b5, "smcd", kind 1 (CDC), 3 pad, DMB token (8), then the
    // 32-byte smcd_cdc_msg: prod cursor {u16 wrap, u32 count} little-endian at 8.
    let rows = tshark(&out, "eth.type == 0x88b5", &["data.data"]);
    let mut got = Vec::new();
    for r in &rows {
        let b: Vec<u8> = (0..r[0].len() / 2)
            .map(|i| u8::from_str_radix(&r[0][2 * i..2 * i + 2], 16).unwrap())
            .collect();
        assert_eq!(&b[0..4], b"smcd");
        if b[4] == 1 {
            let p = &b[16..];
            assert_eq!(p.len(), 32);
            got.push((
                u16::from_le_bytes([p[8], p[9]]) as u64,
                u32::from_le_bytes([p[10], p[11], p[12], p[13]]) as u64,
            ));
        }
    }
    assert_eq!(count(got), count(want));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A PAYLOAD record (`smc-record --payload N`) as the recorder writes it.
fn payload_event(
    host: usize,
    ts: u64,
    sock: u64,
    before: u64,
    ring: u32,
    data: &[u8],
    msg_len: u32,
) -> smc_analyze::synth::SimEvent {
    let fixed = std::mem::size_of::<event::Payload>();
    let total = (fixed + data.len()).div_ceil(8) * 8;
    let p = event::Payload {
        hdr: event::Hdr {
            kind: event::EventKind::Payload as u16,
            len: total as u16,
            cpu: 0,
            flags: 0,
            ts_ns: ts,
            pid: 100,
            tid: 100,
        },
        sock,
        prep_before: event::Curs {
            count: (before % ring as u64) as u32,
            wrap: (before / ring as u64) as u16,
            _pad: 0,
        },
        captured: data.len() as u32,
        msg_len,
    };
    let mut bytes = bytemuck::bytes_of(&p).to_vec();
    bytes.extend_from_slice(data);
    bytes.resize(total, 0);
    smc_analyze::synth::SimEvent {
        host,
        kind: event::EventKind::Payload,
        ts,
        cpu: 0,
        bytes,
    }
}

#[test]
fn rdma_writes_carry_the_captured_payload_bytes() {
    use smc_analyze::synth::{write_recording, SimConn, SimMode, Synth};
    let dir = tmpdir("payload");
    let mut sy = Synth::new(2);
    let mut c = SimConn::new(SimMode::SmcR, 0, 1, 65536, 1);
    c.handshake(&mut sy);
    let sock = c.ends[0].sock;
    // 100 bytes of which 64 captured, then 40 bytes captured whole.
    let a: Vec<u8> = (0..64u8).collect();
    let b: Vec<u8> = (0..40u8).map(|x| 0xA0 ^ x).collect();
    let t = c.send(&mut sy, 0, 100, 1);
    sy.events
        .push(payload_event(0, t + 1_500, sock, 0, 65536, &a, 100));
    c.deliver(&mut sy, 1);
    c.recv(&mut sy, 1, 100);
    let t = c.send(&mut sy, 0, 40, 1);
    sy.events
        .push(payload_event(0, t + 1_500, sock, 100, 65536, &b, 40));
    c.deliver(&mut sy, 1);
    c.recv(&mut sy, 1, 40);
    let fa = dir.join("a.smctrace");
    let fb = dir.join("b.smctrace");
    write_recording(&fa, &sy.stream(0), "a", "boot-a", 0, 50, true).unwrap();
    write_recording(&fb, &sy.stream(1), "b", "boot-b", 0, 50, true).unwrap();
    let out = dir.join("p.pcapng");
    let o = run(&["export", "--pcapng", out.to_str().unwrap()], &[fa, fb]);
    assert!(o.status.success(), "{}", text(&o));
    let rows = tshark(
        &out,
        "infiniband.bth.opcode == 10",
        &[
            "frame.len",
            "frame.cap_len",
            "infiniband.reth.dmalen",
            "data.data",
            "frame.comment",
        ],
    );
    assert_eq!(rows.len(), 2, "{rows:?}");
    // Ethernet 14 + IPv4 20 + UDP 8 + BTH 12 + RETH 16 + data + ICRC 4.
    assert_eq!(rows[0][0], (70 + 100 + 4).to_string());
    assert_eq!(
        rows[0][1],
        (70 + 64).to_string(),
        "only the captured prefix is in the file"
    );
    assert_eq!(rows[0][2], "100");
    assert!(
        rows[0][4].contains("payload: 64 of 100 bytes captured"),
        "{}",
        rows[0][4]
    );
    assert_eq!(rows[1][0], (70 + 40 + 4).to_string());
    assert_eq!(rows[1][1], rows[1][0]);
    let want: String = b.iter().map(|x| format!("{x:02x}")).collect();
    assert!(
        rows[1][3].replace(':', "").starts_with(&want),
        "{:?}",
        rows[1][3]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
