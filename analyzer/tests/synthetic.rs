//! Edge cases of issue 5 on synthetic streams: every test states the stage
//! durations or flags the analyzer must find for a stream built by
//! `smc_analyze::synth`, which emits exactly the records of smctrace_event.h.

use smc_analyze::join::{Analysis, Message, MsgKind, STAGES};
use smc_analyze::model::{gap, Mode};
use smc_analyze::synth::{analyze_streams, SimConn, SimMode, SimRecording, Synth};
use smctrace_format::event::EventKind;

fn stage(m: &Message, name: &str) -> Option<i64> {
    let k = STAGES.iter().position(|s| s.name == name).expect("stage name");
    m.stages[k]
}

fn one(sy: &Synth, host: usize) -> SimRecording {
    SimRecording { events: sy.stream(host), boot_id: format!("boot{host}"), lost: 0 }
}

fn smc_msgs(a: &Analysis) -> Vec<&Message> {
    a.messages.iter().filter(|m| m.kind == MsgKind::Smc).collect()
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
