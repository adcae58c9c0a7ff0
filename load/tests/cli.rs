//! The `smc-load` binary as a user runs it: exit status and one-line errors.

use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_smc-load"))
}

#[test]
fn smc_client_without_kernel_support_fails_with_one_clear_line() {
    let out = bin()
        .args([
            "client",
            "--connect",
            "127.0.0.1:1",
            "--mode",
            "pingpong",
            "--count",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    let smc_here = std::path::Path::new("/proc/net/smc").exists()
        || std::path::Path::new("/sys/module/smc").exists();
    if smc_here {
        assert!(err.starts_with("smc-load: connect 127.0.0.1:1:"), "{err}");
    } else {
        assert_eq!(
            err.trim_end(),
            "smc-load: AF_SMC not supported by this kernel (smc module not loaded?)"
        );
    }
}

#[test]
fn tcp_server_and_client_binaries_run_a_pingpong_with_json_output() {
    // Port chosen by the OS is not visible to us through the binary, so pick one from a probe.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut srv = bin()
        .args(["server", "--listen", &addr, "--tcp", "--exit-after", "1"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = None;
    for _ in 0..50 {
        thread::sleep(Duration::from_millis(50));
        let o = bin()
            .args([
                "client",
                "--connect",
                &addr,
                "--tcp",
                "--mode",
                "pingpong",
                "--count",
                "50",
                "--size",
                "32",
                "--json",
            ])
            .output()
            .unwrap();
        if o.status.success() {
            out = Some(o);
            break;
        }
    }
    let out = out.expect("client never connected");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["mode"], "pingpong");
    assert_eq!(v["proto"], "tcp");
    assert_eq!(v["count"], 50);
    assert_eq!(v["size"], 32);
    assert_eq!(v["connects"], 1);
    for k in [
        "seconds",
        "rtt_p50_us",
        "rtt_p90_us",
        "rtt_p99_us",
        "rtt_max_us",
        "msgs_per_s",
        "mbytes_per_s",
    ] {
        assert!(v[k].as_f64().unwrap() > 0.0, "{k}");
    }
    assert!(srv.wait().unwrap().success());
}

#[test]
fn bad_flags_are_refused() {
    let out = bin()
        .args([
            "client",
            "--connect",
            "127.0.0.1:1",
            "--mode",
            "pingpong",
            "--duration",
            "1",
            "--tcp",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--duration applies to --mode bulk only"));
    let out = bin()
        .args([
            "client",
            "--connect",
            "127.0.0.1:1",
            "--mode",
            "bulk",
            "--read-delay",
            "0.01",
            "--tcp",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("--read-delay applies to --mode pingpong only"));
    let out = bin()
        .args([
            "client",
            "--connect",
            "127.0.0.1:1",
            "--mode",
            "pingpong",
            "--read-delay=-1",
            "--tcp",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("--read-delay must be a non-negative number of seconds"));
}
