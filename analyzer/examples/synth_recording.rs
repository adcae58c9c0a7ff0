//! Write a pair of synthetic recordings (client host and server host, clocks
//! 2.5 ms apart) to try `smc-analyze` before the lab's real fixtures exist:
//!
//!     cargo run -p smc-analyze --example synth_recording -- /tmp/demo [ROUNDS]
//!     smc-analyze report /tmp/demo/client.smctrace /tmp/demo/server.smctrace
//!
//! ROUNDS (default 100) sets the length of the ping-pong connection, e.g.
//! 500000 for a recording of about ten million events to measure speed and memory.
//!
//! Content: an SMC-R ping-pong connection (100 rounds of 64 bytes, a few of
//! them delayed in the receiving application), an autocorked bulk connection
//! and a connection that fell back to TCP (NOSMCRDEV).

use smc_analyze::synth::{write_recording, SimConn, SimMode, Synth};

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "smc-demo".into());
    let dir = std::path::PathBuf::from(dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("{}: {e}", dir.display());
        std::process::exit(1);
    }
    let rounds = match std::env::args().nth(2).map(|r| r.parse::<u64>()) {
        None => 100,
        Some(Ok(r)) => r,
        Some(Err(e)) => {
            eprintln!("ROUNDS: {e}");
            std::process::exit(2);
        }
    };
    let sy = demo(rounds);
    for (host, name) in [(0, "client"), (1, "server")] {
        let p = dir.join(format!("{name}.smctrace"));
        if let Err(e) = write_recording(
            &p,
            &sy.stream(host),
            name,
            &format!("boot-{name}"),
            0,
            4096,
            true,
        ) {
            eprintln!("{e}");
            std::process::exit(1);
        }
        println!("{}", p.display());
    }
}

/// The demo's events.
fn demo(rounds: u64) -> Synth {
    let mut sy = Synth::new(2);
    sy.host_offset[1] = 2_500_000;
    let mut pp = SimConn::new(SimMode::SmcR, 0, 1, 65536, 1);
    pp.handshake(&mut sy);
    for i in 0..rounds {
        pp.send(&mut sy, 0, 64, 1);
        pp.deliver(&mut sy, 1);
        if i % 25 == 7 {
            pp.idle(180_000); // the server application is late to read
        }
        pp.recv(&mut sy, 1, 64);
        pp.send(&mut sy, 1, 64, 1);
        pp.deliver(&mut sy, 0);
        pp.recv(&mut sy, 0, 64);
        pp.idle(30_000);
    }
    pp.close(&mut sy);
    let mut bulk = SimConn::new(SimMode::SmcR, 0, 1, 16384, 2);
    bulk.now = pp.now + 1_000_000;
    bulk.handshake(&mut sy);
    for _ in 0..50 {
        for _ in 0..4 {
            bulk.send_corked(&mut sy, 0, 1024);
        }
        bulk.flush(&mut sy, 0);
        bulk.deliver(&mut sy, 1);
        bulk.recv(&mut sy, 1, 4096);
        bulk.cons_update(&mut sy, 1);
        bulk.deliver(&mut sy, 0);
    }
    bulk.close(&mut sy);
    let mut fb = SimConn::new(SimMode::SmcR, 0, 1, 65536, 3);
    fb.now = bulk.now + 1_000_000;
    fb.handshake_fallback(&mut sy, 0x0303_0002);
    sy
}
