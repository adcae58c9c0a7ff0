//! Edge cases of issue 5 on synthetic streams: every test states the stage
//! durations or flags the analyzer must find for a stream built by
//! `smc_analyze::synth`, which emits exactly the records of smctrace_event.h.

use smc_analyze::join::{Analysis, Message, MsgKind, STAGES};
use smc_analyze::model::{gap, Mode};
use smc_analyze::synth::{analyze_streams, SimConn, SimMode, SimRecording, Synth};
use smctrace_format::event::EventKind;

fn stage(m: &Message, name: &str) -> Option<i64> {
    let k = STAGES
        .iter()
        .position(|s| s.name == name)
        .expect("stage name");
    m.stages[k]
}

fn one(sy: &Synth, host: usize) -> SimRecording {
    SimRecording {
        events: sy.stream(host),
        boot_id: format!("boot{host}"),
        lost: 0,
        snapshot: Vec::new(),
    }
}

fn smc_msgs(a: &Analysis) -> Vec<&Message> {
    a.messages
        .iter()
        .filter(|m| m.kind == MsgKind::Smc)
        .collect()
}

#[test]
fn pingpong_one_host_all_stages() {
    let mut sy = Synth::new(1);
    let mut c = SimConn::new(SimMode::SmcR, 0, 0, 65536, 1);
    c.handshake(&mut sy);
    for _ in 0..10 {
        c.pingpong_round(&mut sy, 100);
    }
    c.close(&mut sy);
    let a = analyze_streams(vec![one(&sy, 0)]);
    assert_eq!(a.conns.len(), 1, "both sockets pair into one connection");
    assert_eq!(a.conns[0].sides.len(), 2);
    let msgs = smc_msgs(&a);
    assert_eq!(msgs.len(), 20);
    for m in &msgs {
        assert!(!m.incomplete(), "gaps {:?}", gap::names(m.gaps));
        assert_eq!(m.len, 100);
        assert_eq!(stage(m, "send_lock"), Some(1_000));
        assert_eq!(stage(m, "copy"), Some(1_000));
        assert_eq!(stage(m, "post"), Some(1_000));
        assert_eq!(stage(m, "cdc_send"), Some(1_000));
        assert_eq!(stage(m, "wire"), Some(10_000));
        assert_eq!(stage(m, "rx_process"), Some(3_000));
        assert_eq!(stage(m, "app_wait"), Some(3_000));
        assert_eq!(stage(m, "e2e"), Some(20_000));
        assert_eq!(stage(m, "cdc_complete"), Some(20_000));
        assert_eq!(stage(m, "send_call"), Some(6_500));
        assert_eq!(m.blocking_stage().map(|b| b.0), Some("wire"));
    }
}

fn two_hosts(offset: i64) -> (Synth, SimConn) {
    let mut sy = Synth::new(2);
    sy.host_offset[1] = offset;
    let c = SimConn::new(SimMode::SmcR, 0, 1, 65536, 1);
    (sy, c)
}

#[test]
fn two_hosts_offset_is_estimated_and_corrected() {
    let offset = 5_123_456_789i64; // host 1's clock runs 5.12 s ahead
    let (mut sy, mut c) = two_hosts(offset);
    c.handshake(&mut sy);
    for _ in 0..20 {
        c.pingpong_round(&mut sy, 64);
    }
    let a = analyze_streams(vec![one(&sy, 0), one(&sy, 1)]);
    let clk = &a.clocks[1];
    assert_eq!(clk.method, "cdc_bracketing");
    // Symmetric 10 us wire: the midpoint is exact, the bracket is +- one wire delay.
    assert_eq!(clk.offset_ns, Some(offset));
    assert_eq!(clk.uncertainty_ns, Some(10_000));
    assert!(clk.pairs_to >= 20 && clk.pairs_from >= 20);
    assert_eq!(a.conns.len(), 1);
    let msgs = smc_msgs(&a);
    assert_eq!(msgs.len(), 40);
    for m in msgs {
        assert!(!m.incomplete(), "gaps {:?}", gap::names(m.gaps));
        assert_eq!(stage(m, "wire"), Some(10_000));
        assert_eq!(stage(m, "e2e"), Some(20_000));
    }
}

#[test]
fn asymmetric_wire_stays_inside_the_stated_uncertainty() {
    let offset = -777_000i64;
    let (mut sy, mut c) = two_hosts(offset);
    c.handshake(&mut sy);
    for i in 0..10 {
        // forward 10 us, backward 30 us
        c.wire_ns = 10_000;
        c.send(&mut sy, 0, 10 + i, 1);
        c.deliver(&mut sy, 1);
        c.recv(&mut sy, 1, 100);
        c.wire_ns = 30_000;
        c.send(&mut sy, 1, 10, 1);
        c.deliver(&mut sy, 0);
        c.recv(&mut sy, 0, 100);
    }
    let a = analyze_streams(vec![one(&sy, 0), one(&sy, 1)]);
    let clk = &a.clocks[1];
    let (est, unc) = (clk.offset_ns.unwrap(), clk.uncertainty_ns.unwrap() as i64);
    assert_eq!(unc, 20_000, "half of the 40 us round trip");
    assert!(
        (est - offset).abs() <= unc,
        "estimate {est} vs true {offset} +- {unc}"
    );
    assert_eq!(est, offset - 10_000);
}

#[test]
fn same_boot_id_means_same_clock() {
    let (mut sy, mut c) = two_hosts(0);
    c.handshake(&mut sy);
    c.send(&mut sy, 0, 10, 1); // one direction only: bracketing impossible
    c.deliver(&mut sy, 1);
    c.recv(&mut sy, 1, 10);
    let mut r0 = one(&sy, 0);
    let mut r1 = one(&sy, 1);
    r0.boot_id = "same".into();
    r1.boot_id = "same".into();
    let a = analyze_streams(vec![r0, r1]);
    assert_eq!(a.clocks[1].method, "same_host");
    let m = smc_msgs(&a)[0];
    assert_eq!(stage(m, "e2e"), Some(20_000));
}

#[test]
fn one_direction_only_leaves_clock_unknown_not_wrong() {
    let (mut sy, mut c) = two_hosts(3_000_000);
    c.handshake(&mut sy);
    c.send(&mut sy, 0, 10, 1);
    c.deliver(&mut sy, 1);
    c.recv(&mut sy, 1, 10);
    let a = analyze_streams(vec![one(&sy, 0), one(&sy, 1)]);
    assert_eq!(a.clocks[1].method, "unknown");
    let m = smc_msgs(&a)[0];
    assert!(m.gaps & gap::CLOCK_UNKNOWN != 0);
    assert_eq!(stage(m, "wire"), None);
    assert_eq!(stage(m, "e2e"), None);
    // Receiver-local stages need no offset.
    assert_eq!(stage(m, "rx_process"), Some(3_000));
    assert_eq!(stage(m, "app_wait"), Some(3_000));
}

#[test]
fn cursor_wrap_ring_turns_and_u16_overflow() {
    let ring = 4096u32;
    let mut sy = Synth::new(1);
    let mut c = SimConn::new(SimMode::SmcR, 0, 0, ring, 1);
    c.handshake(&mut sy);
    // Recording starts 6 ring turns before the u16 wrap counter overflows.
    c.set_stream_start(65530 * ring as u64 + 100);
    for _ in 0..40 {
        c.pingpong_round(&mut sy, 1000);
    }
    let a = analyze_streams(vec![one(&sy, 0)]);
    let msgs = smc_msgs(&a);
    assert_eq!(msgs.len(), 80);
    for m in &msgs {
        assert!(
            !m.incomplete(),
            "gaps {:?} at {}",
            gap::names(m.gaps),
            m.start
        );
        assert_eq!(m.len, 1000);
        assert_eq!(stage(m, "e2e"), Some(20_000));
    }
    let fwd: Vec<_> = msgs
        .iter()
        .filter(|m| m.dir == smc_analyze::join::Dir::Forward)
        .collect();
    assert!(
        fwd.last().unwrap().end > 65536 * ring as u64,
        "crossed the u16 wrap epoch"
    );
    for w in fwd.windows(2) {
        assert_eq!(
            w[0].end, w[1].start,
            "stream offsets are contiguous across wraps"
        );
    }
}

#[test]
fn one_send_split_over_several_cdcs() {
    let mut sy = Synth::new(1);
    let mut c = SimConn::new(SimMode::SmcR, 0, 0, 65536, 1);
    c.handshake(&mut sy);
    let t0 = c.send(&mut sy, 0, 40_000, 4);
    c.deliver(&mut sy, 1);
    c.recv(&mut sy, 1, 40_000);
    let a = analyze_streams(vec![one(&sy, 0)]);
    let msgs = smc_msgs(&a);
    assert_eq!(msgs.len(), 1);
    let m = msgs[0];
    assert!(!m.incomplete(), "gaps {:?}", gap::names(m.gaps));
    assert_eq!(m.len, 40_000);
    // Four posts of 2.5 us each start at t0+2us: the last write (the one
    // covering the last byte) starts at t0 + 2 + 3*2.5 us.
    let t0 = t0 as i64;
    assert_eq!(
        m.points[smc_analyze::join::pt::POST_ENTER],
        Some(t0 + 9_500)
    );
    assert_eq!(m.points[smc_analyze::join::pt::CDC_SEND], Some(t0 + 11_500));
    assert_eq!(
        m.cdc_seqno,
        Some(4),
        "the last of the four CDCs carries the end"
    );
    assert_eq!(
        stage(m, "copy"),
        Some(8_500),
        "copy ends when the last post starts"
    );
    assert_eq!(stage(m, "wire"), Some(10_000));
}

#[test]
fn autocorked_sends_share_one_cdc() {
    let mut sy = Synth::new(1);
    let mut c = SimConn::new(SimMode::SmcR, 0, 0, 65536, 1);
    c.handshake(&mut sy);
    let starts: Vec<u64> = (0..3).map(|_| c.send_corked(&mut sy, 0, 100)).collect();
    c.idle(50_000);
    c.flush(&mut sy, 0);
    c.deliver(&mut sy, 1);
    c.recv(&mut sy, 1, 1000);
    let a = analyze_streams(vec![one(&sy, 0)]);
    let msgs = smc_msgs(&a);
    assert_eq!(msgs.len(), 3);
    let seq: Vec<_> = msgs.iter().map(|m| m.cdc_seqno).collect();
    assert_eq!(seq, vec![Some(1), Some(1), Some(1)]);
    let cdc = msgs[0].points[smc_analyze::join::pt::CDC_SEND];
    for (m, s) in msgs.iter().zip(starts) {
        assert!(!m.incomplete(), "gaps {:?}", gap::names(m.gaps));
        assert_eq!(m.points[smc_analyze::join::pt::CDC_SEND], cdc);
        assert_eq!(m.points[smc_analyze::join::pt::SEND_ENTER], Some(s as i64));
        // the corked wait shows up in `post`, and is the blocking stage
        assert_eq!(m.blocking_stage().map(|b| b.0), Some("post"));
        assert_eq!(
            m.points[smc_analyze::join::pt::DELIVERED],
            msgs[0].points[smc_analyze::join::pt::DELIVERED]
        );
    }
    assert!(stage(msgs[0], "post").unwrap() > stage(msgs[2], "post").unwrap());
}

#[test]
fn partial_reads_deliver_on_the_read_that_reaches_the_end() {
    let mut sy = Synth::new(1);
    let mut c = SimConn::new(SimMode::SmcR, 0, 0, 65536, 1);
    c.handshake(&mut sy);
    c.send(&mut sy, 0, 100, 1);
    c.send(&mut sy, 0, 50, 1);
    c.deliver(&mut sy, 1);
    let mut reads = Vec::new();
    loop {
        let before = c.now;
        let n = c.recv(&mut sy, 1, 40);
        if n == 0 {
            break;
        }
        reads.push(before + 2_000);
    }
    // reads of 40: [0,40) [40,80) [80,120) [120,150): msg 1 ends in read 3, msg 2 in read 4
    assert_eq!(reads.len(), 4);
    let a = analyze_streams(vec![one(&sy, 0)]);
    let msgs = smc_msgs(&a);
    assert_eq!(msgs.len(), 2);
    assert_eq!(
        msgs[0].points[smc_analyze::join::pt::DELIVERED],
        Some(reads[2] as i64)
    );
    assert_eq!(
        msgs[1].points[smc_analyze::join::pt::DELIVERED],
        Some(reads[3] as i64)
    );
    assert!(msgs.iter().all(|m| !m.incomplete()));
}

#[test]
fn reordered_events_give_the_same_result() {
    let mut sy = Synth::new(1);
    let mut c = SimConn::new(SimMode::SmcR, 0, 0, 8192, 1);
    c.handshake(&mut sy);
    for i in 0..30 {
        c.pingpong_round(&mut sy, 500 + i * 7);
    }
    let ordered = analyze_streams(vec![one(&sy, 0)]);
    let shuffled = sy.stream_reordered(0, 4, 5);
    assert_ne!(
        shuffled.iter().map(|e| e.ts).collect::<Vec<_>>(),
        sy.stream(0).iter().map(|e| e.ts).collect::<Vec<_>>(),
        "the test stream really is out of order"
    );
    let re = analyze_streams(vec![SimRecording {
        events: shuffled,
        boot_id: "b".into(),
        lost: 0,
        snapshot: Vec::new(),
    }]);
    assert_eq!(ordered.messages.len(), re.messages.len());
    for (a, b) in ordered.messages.iter().zip(re.messages.iter()) {
        assert_eq!(a.points, b.points);
        assert_eq!(a.gaps, b.gaps);
        assert!(!b.incomplete());
    }
}

fn lossy_run(kind: EventKind, host_of_event: usize, nth: usize) -> Analysis {
    let (mut sy, mut c) = two_hosts(0);
    c.handshake(&mut sy);
    for _ in 0..6 {
        c.pingpong_round(&mut sy, 64);
    }
    sy.drop_nth(host_of_event, kind, nth);
    let mut r0 = one(&sy, 0);
    let r1 = one(&sy, 1);
    r0.boot_id = "b".into();
    let mut r1 = r1;
    r1.boot_id = "b".into();
    r0.lost = if host_of_event == 0 { 1 } else { 0 };
    r1.lost = if host_of_event == 1 { 1 } else { 0 };
    analyze_streams(vec![r0, r1])
}

fn incomplete_count(a: &Analysis) -> (usize, u32) {
    let inc: Vec<_> = smc_msgs(a).into_iter().filter(|m| m.incomplete()).collect();
    (inc.len(), inc.iter().fold(0, |acc, m| acc | m.gaps))
}

#[test]
fn lost_cdc_send_marks_the_message_incomplete() {
    // The client's 3rd CDC (3rd forward message) is lost from the recording.
    let a = lossy_run(EventKind::CdcSend, 0, 2);
    let (n, gaps) = incomplete_count(&a);
    assert_eq!(n, 1, "exactly the message whose CDC was lost");
    assert!(
        gaps & gap::NO_CDC_SEND != 0 || gaps & gap::CDC_SEQ_GAP != 0,
        "{:?}",
        gap::names(gaps)
    );
    assert_eq!(smc_msgs(&a).len(), 12);
}

#[test]
fn lost_receiver_events_mark_the_message_incomplete() {
    for (kind, flag) in [
        (EventKind::RxAction, gap::NO_RX_ACTION),
        (EventKind::RecvMsg, gap::NO_RECVMSG),
        (EventKind::CdcRecv, gap::NO_CDC_RECV),
    ] {
        let a = lossy_run(kind, 1, 3);
        let (n, gaps) = incomplete_count(&a);
        assert_eq!(n, 1, "{kind:?}: {:?}", gap::names(gaps));
        assert!(gaps & flag != 0, "{kind:?}: {:?}", gap::names(gaps));
    }
}

#[test]
fn lost_sender_events_mark_the_message_incomplete() {
    for (kind, flag) in [
        (EventKind::TxCopy, gap::NO_TX_COPY),
        (EventKind::SendMsg, gap::NO_SENDMSG),
        (EventKind::RdmaWrite, gap::NO_RDMA_WRITE),
        (EventKind::CdcTxDone, gap::NO_CDC_TX_DONE),
    ] {
        let a = lossy_run(kind, 0, 2);
        let (n, gaps) = incomplete_count(&a);
        assert_eq!(n, 1, "{kind:?}: {:?}", gap::names(gaps));
        assert!(gaps & flag != 0, "{kind:?}: {:?}", gap::names(gaps));
    }
}

#[test]
fn missing_handshake_pairs_by_tokens_learned_from_cdcs() {
    let offset = 42_000_000i64;
    let (mut sy, mut c) = two_hosts(offset);
    c.handshake(&mut sy);
    for h in 0..2 {
        sy.drop_kind(h, EventKind::ConnInfo);
        sy.drop_kind(h, EventKind::Connect);
        sy.drop_kind(h, EventKind::Clc);
    }
    for _ in 0..5 {
        c.pingpong_round(&mut sy, 64);
    }
    let a = analyze_streams(vec![one(&sy, 0), one(&sy, 1)]);
    assert_eq!(a.conns.len(), 1, "paired without CONN_INFO");
    assert_eq!(a.clocks[1].offset_ns, Some(offset));
    let msgs = smc_msgs(&a);
    assert_eq!(msgs.len(), 10);
    for m in msgs {
        assert!(!m.incomplete(), "gaps {:?}", gap::names(m.gaps));
        assert_eq!(stage(m, "e2e"), Some(20_000));
    }
    assert!(a.sides.iter().all(|s| s.mode == Mode::SmcR));
}

#[test]
fn smcd_loopback_matches_by_cursor() {
    let mut sy = Synth::new(1);
    let mut c = SimConn::new(SimMode::SmcD, 0, 0, 16384, 1);
    c.handshake(&mut sy);
    for _ in 0..5 {
        c.pingpong_round(&mut sy, 3000);
    }
    let a = analyze_streams(vec![one(&sy, 0)]);
    assert_eq!(a.conns.len(), 1);
    let msgs = smc_msgs(&a);
    assert_eq!(msgs.len(), 10);
    for m in msgs {
        assert!(!m.incomplete(), "gaps {:?}", gap::names(m.gaps));
        assert_eq!(stage(m, "e2e"), Some(20_000));
        assert_eq!(
            stage(m, "cdc_complete"),
            None,
            "SMC-D has no send completion"
        );
    }
}

#[test]
fn fallback_connection_keeps_reason_and_send_calls() {
    let mut sy = Synth::new(1);
    let mut c = SimConn::new(SimMode::SmcR, 0, 0, 65536, 1);
    c.handshake_fallback(&mut sy, 0x0303_0002);
    // Fallback sends: only SENDMSG (the bytes go to TCP).
    let e = c.ends[0].clone();
    let _ = e;
    let a = analyze_streams(vec![one(&sy, 0)]);
    let s = &a.sides[0];
    assert_eq!(s.mode, Mode::Fallback);
    assert_eq!(s.fallback.map(|f| f.1), Some(0x0303_0002));
    assert_eq!(smc_analyze::decline::name(0x0303_0002), "NOSMCRDEV");
}

#[test]
fn one_sided_recording_reports_what_that_side_owns() {
    let (mut sy, mut c) = two_hosts(1_000_000);
    c.handshake(&mut sy);
    for _ in 0..4 {
        c.pingpong_round(&mut sy, 64);
    }
    let a = analyze_streams(vec![one(&sy, 0)]);
    let sent: Vec<_> = smc_msgs(&a);
    assert_eq!(sent.len(), 4);
    for m in &sent {
        assert!(
            !m.incomplete(),
            "peer not recorded is not a gap: {:?}",
            gap::names(m.gaps)
        );
        assert!(m.gaps & gap::NO_PEER != 0);
        assert_eq!(stage(m, "cdc_complete"), Some(20_000));
        assert_eq!(stage(m, "e2e"), None);
    }
    let rx: Vec<_> = a
        .messages
        .iter()
        .filter(|m| m.kind == MsgKind::RxOnly)
        .collect();
    assert_eq!(rx.len(), 4, "the answers, seen by the receiver only");
    for m in rx {
        assert_eq!(stage(m, "rx_process"), Some(3_000));
        assert_eq!(stage(m, "app_wait"), Some(3_000));
    }
}

fn long_run(rounds: u64, offset: i64) -> Analysis {
    let (mut sy, mut c) = two_hosts(offset);
    c.handshake(&mut sy);
    for i in 0..rounds {
        c.pingpong_round(&mut sy, 64 + (i % 7) * 100);
        c.idle(1_000_000); // 1 ms per round: many reorder windows long
    }
    c.close(&mut sy);
    analyze_streams(vec![one(&sy, 0), one(&sy, 1)])
}

#[test]
fn long_two_host_run_is_joined_streaming_with_bounded_memory() {
    let offset = 12_345_678i64;
    let short = long_run(1500, offset);
    let long = long_run(6000, offset);
    assert_eq!(long.clocks[1].offset_ns, Some(offset));
    let msgs = smc_msgs(&long);
    assert_eq!(msgs.len(), 12_000);
    for m in &msgs {
        assert!(!m.incomplete(), "gaps {:?}", gap::names(m.gaps));
        assert_eq!(stage(m, "e2e"), Some(20_000));
    }
    // What is held at once depends on the join interval and the reorder
    // window, not on the length of the recording.
    assert!(
        long.peak_retained <= short.peak_retained * 6 / 5,
        "peak retained {} for 4x the run vs {}",
        long.peak_retained,
        short.peak_retained
    );
    assert!(
        long.peak_retained < 12_000 * 4 / 3,
        "{}",
        long.peak_retained
    );
}

#[test]
fn long_one_sided_run_gives_sender_and_receive_only_messages() {
    let (mut sy, mut c) = two_hosts(0);
    c.handshake(&mut sy);
    for _ in 0..3000 {
        c.pingpong_round(&mut sy, 64);
        c.idle(1_000_000);
    }
    let a = analyze_streams(vec![one(&sy, 0)]);
    let sent = smc_msgs(&a);
    assert_eq!(sent.len(), 3000);
    assert!(sent
        .iter()
        .all(|m| !m.incomplete() && stage(m, "cdc_complete") == Some(20_000)));
    let rx: Vec<_> = a
        .messages
        .iter()
        .filter(|m| m.kind == MsgKind::RxOnly)
        .collect();
    assert_eq!(rx.len(), 3000);
    for m in rx {
        assert!(!m.incomplete(), "gaps {:?}", gap::names(m.gaps));
        assert_eq!(stage(m, "rx_process"), Some(3_000));
        assert_eq!(stage(m, "app_wait"), Some(3_000));
    }
    assert!(
        a.peak_retained < 6_000,
        "peak retained {} for 6000 messages and their receive points",
        a.peak_retained
    );
}

#[test]
fn short_connections_reusing_socket_addresses_stay_apart() {
    // The kernel reuses freed smc_sock memory: every connection here gets the
    // same two sock ids, but its own tokens and ports.
    let (mut sy, _) = two_hosts(0);
    let mut now = 1_000_000_000;
    for id in 1..=50u32 {
        let mut c = SimConn::new(SimMode::SmcR, 0, 1, 65536, id);
        c.ends[0].sock = 0xc11e;
        c.ends[1].sock = 0x5e77;
        c.now = now;
        c.handshake(&mut sy);
        c.pingpong_round(&mut sy, 32);
        c.close(&mut sy);
        now = c.now + 100_000;
    }
    let mut r0 = one(&sy, 0);
    let mut r1 = one(&sy, 1);
    r0.boot_id = "x".into();
    r1.boot_id = "x".into();
    let a = analyze_streams(vec![r0, r1]);
    assert_eq!(a.conns.len(), 50);
    assert!(a.conns.iter().all(|c| c.sides.len() == 2));
    let msgs = smc_msgs(&a);
    assert_eq!(msgs.len(), 100);
    for m in &msgs {
        assert!(!m.incomplete(), "gaps {:?}", gap::names(m.gaps));
        assert_eq!(stage(m, "e2e"), Some(20_000));
    }
    let per_conn: std::collections::BTreeSet<usize> = msgs.iter().map(|m| m.conn).collect();
    assert_eq!(per_conn.len(), 50, "each connection has its own messages");
    for s in &a.sides {
        assert_eq!(
            s.clc.len(),
            3,
            "each side has exactly its own handshake's CLC messages"
        );
        assert!(s.info.is_some() && s.close.is_some());
    }
}

#[test]
fn connection_older_than_the_recording_is_named_from_the_snapshot() {
    use smc_analyze::join::SnapshotSock;
    use smc_analyze::model::Addr;
    let mut sy = Synth::new(2);
    let mut c = SimConn::new(SimMode::SmcR, 0, 1, 65536, 1);
    c.handshake(&mut sy);
    for h in 0..2 {
        sy.drop_kind(h, EventKind::ConnInfo);
        sy.drop_kind(h, EventKind::Connect);
        sy.drop_kind(h, EventKind::Clc);
    }
    for _ in 0..3 {
        c.pingpong_round(&mut sy, 64);
    }
    let snap = |local: ([u8; 4], u16), remote: ([u8; 4], u16), token| SnapshotSock {
        local: Addr {
            ip: std::net::Ipv4Addr::from(local.0).to_string(),
            port: local.1,
        },
        remote: Addr {
            ip: std::net::Ipv4Addr::from(remote.0).to_string(),
            port: remote.1,
        },
        mode: Mode::SmcR,
        local_token: token,
        sndbuf_len: 65536,
        rmb_len: 65536,
        peer_rmbe_size: 65536,
        fallback_rsn: 0,
    };
    let (e0, e1) = (c.ends[0].clone(), c.ends[1].clone());
    let mut r0 = one(&sy, 0);
    r0.snapshot = vec![snap((e0.addr, e0.port), (e1.addr, e1.port), e0.token)];
    let mut r1 = one(&sy, 1);
    r1.snapshot = vec![snap((e1.addr, e1.port), (e0.addr, e0.port), e1.token)];
    let a = analyze_streams(vec![r0, r1]);
    assert_eq!(a.conns.iter().filter(|c| !c.idle).count(), 1);
    let r = smc_analyze::report::build(
        &a,
        &smc_analyze::report::Options {
            filter: Default::default(),
            top: 0,
            slow_ns: None,
        },
        &[],
    );
    let sides = &r.connections[0].sides;
    assert_eq!(sides[0].local.as_deref(), Some("10.0.0.1:40001"));
    assert_eq!(sides[0].remote.as_deref(), Some("10.0.0.2:5000"));
    assert_eq!(sides[1].local.as_deref(), Some("10.0.0.2:5000"));
    assert_eq!(r.connections[0].client.as_deref(), Some("10.0.0.1:40001"));
    assert_eq!(r.connections[0].server.as_deref(), Some("10.0.0.2:5000"));
    assert_eq!(r.summary.complete_messages, 6);
    // --port finds it although the recording has no handshake
    let by_port = smc_analyze::report::build(
        &a,
        &smc_analyze::report::Options {
            filter: smc_analyze::report::Filter {
                port: Some(40001),
                ..Default::default()
            },
            top: 0,
            slow_ns: None,
        },
        &[],
    );
    assert_eq!(by_port.summary.connections, 1);
}

/// Records with random field values (valid kinds and lengths, hostile
/// contents: huge timestamps, wild cursors, zero ring sizes) must never make
/// the analyzer panic, in debug builds (overflow checks) included.
#[test]
fn random_records_never_panic() {
    use smc_analyze::synth::SimEvent;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..6 {
        let mut events = Vec::new();
        for _ in 0..6000 {
            let kind = EventKind::ALL[(rnd() % EventKind::ALL.len() as u64) as usize];
            let len = kind.fixed_len();
            let mut b: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
            // A few socks, tokens and rings so events meet each other.
            let pick = |r: u64, small: &[u64]| small[(r % small.len() as u64) as usize];
            b[0..2].copy_from_slice(&(kind as u16).to_le_bytes());
            b[2..4].copy_from_slice(&(len as u16).to_le_bytes());
            let ts = match round {
                0 => rnd(),                             // anything
                1 => 1_000_000 + rnd() % 1_000_000_000, // plausible
                _ => u64::MAX - rnd() % 1_000_000,      // near the end of time
            };
            b[8..16].copy_from_slice(&ts.to_le_bytes());
            if len >= 32 {
                b[24..32].copy_from_slice(&pick(rnd(), &[0, 1, 2, 3]).to_le_bytes());
            }
            if round % 2 == 1 && len >= 40 {
                let enter = ts.saturating_sub(rnd() % 100_000);
                b[32..40].copy_from_slice(&enter.to_le_bytes());
            }
            events.push(SimEvent {
                host: 0,
                kind,
                ts,
                cpu: 0,
                bytes: b,
            });
        }
        let half = events.split_off(3000);
        let a = analyze_streams(vec![
            SimRecording {
                events,
                boot_id: "r".into(),
                lost: rnd() % 3,
                snapshot: Vec::new(),
            },
            SimRecording {
                events: half,
                boot_id: String::new(),
                lost: 0,
                snapshot: Vec::new(),
            },
        ]);
        let r = smc_analyze::report::build(
            &a,
            &smc_analyze::report::Options {
                filter: Default::default(),
                top: 5,
                slow_ns: Some(1),
            },
            &[],
        );
        let _ = smc_analyze::report::render_text(&r);
        let _ = serde_json::to_string(&r).unwrap();
    }
}

#[test]
fn concurrent_connections_do_not_mix() {
    let offset = -4_000_000i64;
    let mut sy = Synth::new(2);
    sy.host_offset[1] = offset;
    let mut conns: Vec<SimConn> = (1..=3u32)
        .map(|id| SimConn::new(SimMode::SmcR, 0, 1, 8192, id))
        .collect();
    for c in conns.iter_mut() {
        c.handshake(&mut sy);
        c.now = 2_000_000_000; // all three run at the same time
    }
    for round in 0..200u64 {
        for (k, c) in conns.iter_mut().enumerate() {
            // each connection has its own wire delay and message size
            c.wire_ns = 10_000 * (k as u64 + 1);
            c.now = 2_000_000_000 + round * 100_000 + k as u64 * 7_000;
            c.pingpong_round(&mut sy, 100 * (k as u64 + 1));
        }
    }
    let mk = |h: usize| SimRecording {
        events: sy.stream_reordered(h, 2, 7),
        boot_id: format!("b{h}"),
        lost: 0,
        snapshot: Vec::new(),
    };
    let a = analyze_streams(vec![mk(0), mk(1)]);
    assert_eq!(a.clocks[1].offset_ns, Some(offset));
    assert_eq!(a.conns.iter().filter(|c| !c.idle).count(), 3);
    let msgs = smc_msgs(&a);
    assert_eq!(msgs.len(), 3 * 400);
    for m in msgs {
        assert!(!m.incomplete(), "gaps {:?}", gap::names(m.gaps));
        let k = a.conns[m.conn].id as i64; // ids follow the handshake order: 1, 2, 3
        assert_eq!(m.len as i64, 100 * k);
        assert_eq!(stage(m, "wire"), Some(10_000 * k));
        assert_eq!(stage(m, "e2e"), Some(10_000 * k + 10_000));
    }
}

#[test]
fn blocking_readers_are_joined_after_their_rx_events() {
    // Readers wait in recvmsg long before the data arrives: their records
    // sort by entry, well before the CDC and rx processing they wait for.
    // SMC-D: no send completion holds the sender half back either.
    let mut sy = Synth::new(2);
    let mut c = SimConn::new(SimMode::SmcD, 0, 1, 65536, 1);
    c.handshake(&mut sy);
    for _ in 0..6000 {
        let t0 = c.now;
        c.send(&mut sy, 0, 64, 1);
        c.deliver(&mut sy, 1);
        c.recv_from(&mut sy, 1, 64, t0.saturating_sub(400_000));
        let t1 = c.now;
        c.send(&mut sy, 1, 64, 1);
        c.deliver(&mut sy, 0);
        c.recv_from(&mut sy, 0, 64, t1.saturating_sub(400_000));
        c.idle(500_000);
    }
    let mut r0 = one(&sy, 0);
    let mut r1 = one(&sy, 1);
    r0.boot_id = "h".into();
    r1.boot_id = "h".into();
    let a = analyze_streams(vec![r0, r1]);
    let msgs = smc_msgs(&a);
    assert_eq!(msgs.len(), 12_000);
    let bad: Vec<_> = msgs
        .iter()
        .filter(|m| m.incomplete())
        .map(|m| gap::names(m.gaps))
        .collect();
    assert!(
        bad.is_empty(),
        "{} incomplete, e.g. {:?}",
        bad.len(),
        bad.first()
    );
}

/// Past 65,536 complete messages a stage's quantiles come from the sketch:
/// the report says so, count/mean/min/max stay exact, and every quantile is
/// within 0.5% of the exact nearest-rank value of the same messages
/// (heavy-tailed waits: the receiving application reads after a Pareto delay).
#[test]
fn many_messages_give_approximate_quantiles_within_their_bound() {
    // Both ends on one host, in one recording: every stage is known.
    let mut sy = Synth::new(1);
    let mut c = SimConn::new(SimMode::SmcR, 0, 0, 65536, 1);
    c.handshake(&mut sy);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..70_000u32 {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let u = ((x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        c.send(&mut sy, 0, 64, 1);
        c.deliver(&mut sy, 1);
        c.idle((1_000.0 / u.powf(1.0 / 1.2)).min(50_000_000.0) as u64);
        c.recv(&mut sy, 1, 64);
        c.idle(5_000);
    }
    let a = analyze_streams(vec![one(&sy, 0)]);
    let msgs = smc_msgs(&a);
    assert_eq!(msgs.len(), 70_000);
    let r = smc_analyze::report::build(
        &a,
        &smc_analyze::report::Options {
            filter: Default::default(),
            top: 0,
            slow_ns: None,
        },
        &[],
    );
    for name in ["app_wait", "e2e"] {
        let mut exact: Vec<i64> = msgs
            .iter()
            .filter(|m| !m.incomplete())
            .filter_map(|m| stage(m, name))
            .collect();
        assert_eq!(exact.len(), 70_000, "{name}");
        let want = smc_analyze::stats::summarize(&mut exact).unwrap();
        let row = &r.stages.iter().find(|s| s.stage == name).unwrap().summary;
        assert!(row.approximate && !want.approximate, "{name}");
        assert_eq!(
            (row.count, row.mean_ns, row.min_ns, row.max_ns),
            (want.count, want.mean_ns, want.min_ns, want.max_ns),
            "{name}"
        );
        assert!(
            want.p999_ns > 10 * want.p50_ns,
            "{name}: not heavy-tailed: {want:?}"
        );
        for (got, exact) in [
            (row.p50_ns, want.p50_ns),
            (row.p90_ns, want.p90_ns),
            (row.p99_ns, want.p99_ns),
            (row.p999_ns, want.p999_ns),
        ] {
            let bound = exact as f64 * smc_analyze::sketch::ALPHA + 1.0;
            assert!(
                (got - exact).abs() as f64 <= bound,
                "{name}: {got} vs exact {exact} (bound {bound})"
            );
        }
    }
    // The connection's latency (more than 4,096 messages) is flagged too, and
    // the JSON carries the flags; the text report says it.
    assert!(r.connections[0].latency_approximate);
    let j = serde_json::to_value(&r).unwrap();
    assert_eq!(j["stages"][0]["approximate"], true);
    assert_eq!(j["connections"][0]["latency_approximate"], true);
    assert!(smc_analyze::report::render_text(&r).contains("are approximate (within 0.5%)"));
}
