//! `smc-load`: the workload the lab scenarios and benchmarks run over SMC (or TCP).
//!
//! One server serves every mode: each connection starts with a 16-byte [`Hello`] from the
//! client that names the mode and sizes. Modes: ping-pong (N messages of S bytes echoed,
//! RTT per message), bulk (S-byte writes for N writes or a duration, acknowledged with the
//! byte total) and short connections (connect, one request/response, close). AF_SMC
//! sockets are `socket(AF_SMC, SOCK_STREAM, SMCPROTO_SMC[6])` used with AF_INET(6)
//! addresses; `--tcp` uses plain AF_INET(6) for comparison. Blocking sockets, one thread
//! per connection; times from `Instant` (CLOCK_MONOTONIC).

#![forbid(unsafe_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Address family number of SMC sockets.
pub const AF_SMC: i32 = 43;
/// `SMCPROTO_SMC` / `SMCPROTO_SMC6`: the protocol argument selecting IPv4 or IPv6 clcsocks.
const SMCPROTO_SMC: i32 = 0;
const SMCPROTO_SMC6: i32 = 1;

/// Errors, each shown to the user as one line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("AF_SMC not supported by this kernel (smc module not loaded?)")]
    SmcUnsupported,
    #[error("{what}: {err}")]
    Io { what: String, err: io::Error },
    #[error("{0}")]
    Protocol(String),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |err| Error::Io { what, err }
}

/// Socket kind: SMC (AF_SMC) or plain TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Smc,
    Tcp,
}

/// Creates a stream socket for `addr`'s family in the chosen protocol.
pub fn new_socket(proto: Proto, addr: &SocketAddr) -> Result<Socket, Error> {
    let r = match proto {
        Proto::Tcp => Socket::new(Domain::for_address(*addr), Type::STREAM, None),
        Proto::Smc => {
            let p = if addr.is_ipv4() {
                SMCPROTO_SMC
            } else {
                SMCPROTO_SMC6
            };
            Socket::new(Domain::from(AF_SMC), Type::STREAM, Some(Protocol::from(p)))
        }
    };
    r.map_err(|e| match (proto, e.raw_os_error()) {
        (Proto::Smc, Some(libc::EAFNOSUPPORT | libc::EPROTONOSUPPORT)) => Error::SmcUnsupported,
        _ => Error::Io {
            what: format!("socket({proto:?})"),
            err: e,
        },
    })
}

/// Workload mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Pingpong,
    Bulk,
    Shortconn,
}

impl Mode {
    fn code(self) -> u8 {
        match self {
            Mode::Pingpong => 1,
            Mode::Bulk => 2,
            Mode::Shortconn => 3,
        }
    }
    fn from_code(c: u8) -> Option<Mode> {
        match c {
            1 => Some(Mode::Pingpong),
            2 => Some(Mode::Bulk),
            3 => Some(Mode::Shortconn),
            _ => None,
        }
    }
}

/// The 16-byte greeting a client sends first (all fields big-endian):
/// `"SMCL"` magic, version (1), mode (1 pingpong, 2 bulk, 3 shortconn), 2 reserved
/// bytes, message size (u32), message count (u32; 0 for bulk = until the client shuts down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    pub mode: Mode,
    pub size: u32,
    pub count: u32,
}

pub const HELLO_LEN: usize = 16;
const MAGIC: &[u8; 4] = b"SMCL";
const VERSION: u8 = 1;
/// Largest message size a server accepts (it allocates one buffer of this size).
pub const MAX_SIZE: u32 = 64 << 20;

impl Hello {
    pub fn encode(&self) -> [u8; HELLO_LEN] {
        let mut b = [0u8; HELLO_LEN];
        b[..4].copy_from_slice(MAGIC);
        b[4] = VERSION;
        b[5] = self.mode.code();
        b[8..12].copy_from_slice(&self.size.to_be_bytes());
        b[12..16].copy_from_slice(&self.count.to_be_bytes());
        b
    }
    pub fn decode(b: &[u8; HELLO_LEN]) -> Result<Hello, Error> {
        if &b[..4] != MAGIC {
            return Err(Error::Protocol(
                "peer is not an smc-load client (bad hello magic)".into(),
            ));
        }
        if b[4] != VERSION {
            return Err(Error::Protocol(format!(
                "unsupported hello version {}",
                b[4]
            )));
        }
        let mode = Mode::from_code(b[5])
            .ok_or_else(|| Error::Protocol(format!("unknown mode {}", b[5])))?;
        let size = u32::from_be_bytes([b[8], b[9], b[10], b[11]]);
        let count = u32::from_be_bytes([b[12], b[13], b[14], b[15]]);
        if size == 0 || size > MAX_SIZE {
            return Err(Error::Protocol(format!(
                "message size {size} out of range 1..={MAX_SIZE}"
            )));
        }
        Ok(Hello { mode, size, count })
    }
}

// ------------------------------------------------------------------ server

/// Server options.
#[derive(Debug, Clone)]
pub struct ServerOpts {
    pub listen: SocketAddr,
    pub proto: Proto,
    /// Exit after this many connections were served; `None` = forever.
    pub exit_after: Option<u64>,
    /// Give up on a connection that sends nothing for this long.
    pub idle_timeout: Option<Duration>,
}

/// What a server did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServerSummary {
    pub connections: u64,
    pub failed: u64,
    pub bytes_in: u64,
}

/// A bound, listening server socket; `local_addr` gives the port when 0 was asked for.
pub struct Server {
    sock: Socket,
    opts: ServerOpts,
}

impl Server {
    pub fn bind(opts: ServerOpts) -> Result<Server, Error> {
        let sock = new_socket(opts.proto, &opts.listen)?;
        sock.set_reuse_address(true)
            .map_err(io_err("SO_REUSEADDR"))?;
        sock.bind(&SockAddr::from(opts.listen))
            .map_err(io_err(format!("bind {}", opts.listen)))?;
        sock.listen(128)
            .map_err(io_err(format!("listen {}", opts.listen)))?;
        Ok(Server { sock, opts })
    }

    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        self.sock
            .local_addr()
            .map_err(io_err("getsockname"))?
            .as_socket()
            .ok_or_else(|| Error::Protocol("listening socket has no IP address".into()))
    }

    /// Serves connections, one thread each; returns after `exit_after` connections ended.
    pub fn run(self) -> Result<ServerSummary, Error> {
        let bytes = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let mut handles = Vec::new();
        let mut accepted = 0u64;
        while self.opts.exit_after.is_none_or(|n| accepted < n) {
            let (conn, peer) = match self.sock.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Error::Io {
                        what: "accept".into(),
                        err: e,
                    })
                }
            };
            accepted += 1;
            let (bytes, failed) = (bytes.clone(), failed.clone());
            let idle = self.opts.idle_timeout;
            let h = thread::spawn(move || {
                if let Err(e) = set_idle(&conn, idle).and_then(|_| serve_one(conn, &bytes)) {
                    failed.fetch_add(1, Ordering::Relaxed);
                    let peer = peer.as_socket().map(|a| a.to_string()).unwrap_or_default();
                    eprintln!("smc-load server: connection from {peer}: {e}");
                }
            });
            if self.opts.exit_after.is_some() {
                handles.push(h);
            }
        }
        for h in handles {
            let _ = h.join();
        }
        Ok(ServerSummary {
            connections: accepted,
            failed: failed.load(Ordering::Relaxed),
            bytes_in: bytes.load(Ordering::Relaxed),
        })
    }
}

fn serve_one(mut s: Socket, total: &AtomicU64) -> Result<(), Error> {
    let mut hb = [0u8; HELLO_LEN];
    read_exact(&mut s, &mut hb).map_err(io_err("read hello"))?;
    let hello = Hello::decode(&hb)?;
    let mut buf = vec![0u8; hello.size as usize];
    match hello.mode {
        Mode::Pingpong | Mode::Shortconn => {
            for i in 0..hello.count {
                read_exact(&mut s, &mut buf).map_err(io_err(format!("read message {i}")))?;
                s.write_all(&buf)
                    .map_err(io_err(format!("echo message {i}")))?;
                total.fetch_add(buf.len() as u64, Ordering::Relaxed);
            }
        }
        Mode::Bulk => {
            let mut got = 0u64;
            loop {
                let n = s.read(&mut buf).map_err(|e| Error::Io {
                    what: "read bulk data".into(),
                    err: timeout_meaning(e),
                })?;
                if n == 0 {
                    break;
                }
                got += n as u64;
            }
            total.fetch_add(got, Ordering::Relaxed);
            s.write_all(&got.to_be_bytes())
                .map_err(io_err("send bulk ack"))?;
        }
    }
    let _ = s.shutdown(Shutdown::Write);
    // Wait for the client's close so the connection ends on its side first.
    let _ = s.read(&mut hb);
    Ok(())
}

fn read_exact(s: &mut Socket, buf: &mut [u8]) -> io::Result<()> {
    let mut off = 0;
    while off < buf.len() {
        match s.read(&mut buf[off..]) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "peer closed the connection",
                ))
            }
            Ok(n) => off += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(timeout_meaning(e)),
        }
    }
    Ok(())
}

/// SO_RCVTIMEO expiry shows up as EAGAIN; say what it means.
fn timeout_meaning(e: io::Error) -> io::Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => io::Error::new(
            io::ErrorKind::TimedOut,
            "no data within the idle timeout (peer gone or connection stuck; see --idle-timeout)",
        ),
        _ => e,
    }
}

/// Applies the idle timeout to reads (`None` or zero: wait forever).
fn set_idle(s: &Socket, idle: Option<Duration>) -> Result<(), Error> {
    s.set_read_timeout(idle.filter(|d| !d.is_zero()))
        .map_err(io_err("SO_RCVTIMEO"))
}

// ------------------------------------------------------------------ client

/// Client options.
#[derive(Debug, Clone)]
pub struct ClientOpts {
    pub connect: SocketAddr,
    pub proto: Proto,
    pub mode: Mode,
    /// Messages (pingpong), writes (bulk, unless `duration`) or connections (shortconn).
    pub count: u64,
    pub size: u32,
    /// Bulk: write for this long instead of `count` writes.
    pub duration: Option<Duration>,
    /// Parallel connections (threads); `count` is split among them.
    pub conns: u32,
    /// Give up when the server sends nothing for this long.
    pub idle_timeout: Option<Duration>,
    /// Pingpong: sleep this long between sending a message and reading its echo, so the
    /// echo waits in the receive buffer (a slow reader). The RTT samples include it.
    pub read_delay: Option<Duration>,
}

/// The result line: what `--json` prints, field for field.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub mode: Mode,
    pub proto: Proto,
    /// Messages echoed (pingpong), writes done (bulk) or connections completed (shortconn).
    pub count: u64,
    pub size: u32,
    pub conns: u32,
    /// Payload bytes the client sent.
    pub bytes: u64,
    pub seconds: f64,
    pub rtt_p50_us: f64,
    pub rtt_p90_us: f64,
    pub rtt_p99_us: f64,
    pub rtt_max_us: f64,
    pub msgs_per_s: f64,
    pub mbytes_per_s: f64,
    pub connects: u64,
}

impl Report {
    /// One human line.
    pub fn summary(&self) -> String {
        let proto = match self.proto {
            Proto::Smc => "SMC",
            Proto::Tcp => "TCP",
        };
        match self.mode {
            Mode::Pingpong => format!(
                "pingpong {proto}: {} msgs x {} B over {} conn(s) in {:.3} s: {:.0} msgs/s, RTT p50 {:.1} us p90 {:.1} us p99 {:.1} us max {:.1} us",
                self.count, self.size, self.conns, self.seconds, self.msgs_per_s, self.rtt_p50_us, self.rtt_p90_us, self.rtt_p99_us, self.rtt_max_us
            ),
            Mode::Bulk => format!(
                "bulk {proto}: {} writes x {} B = {} B over {} conn(s) in {:.3} s: {:.2} MB/s",
                self.count, self.size, self.bytes, self.conns, self.seconds, self.mbytes_per_s
            ),
            Mode::Shortconn => format!(
                "shortconn {proto}: {} connections ({} B request/response) in {:.3} s: {:.0} connects/s, connect+RTT p50 {:.1} us p99 {:.1} us max {:.1} us",
                self.connects, self.size, self.seconds, self.msgs_per_s, self.rtt_p50_us, self.rtt_p99_us, self.rtt_max_us
            ),
        }
    }
}

/// Nearest-rank percentile of sorted samples (0 for none).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

struct Part {
    samples: Vec<Duration>,
    count: u64,
    bytes: u64,
    connects: u64,
}

fn connect(o: &ClientOpts) -> Result<Socket, Error> {
    let s = new_socket(o.proto, &o.connect)?;
    set_idle(&s, o.idle_timeout)?;
    s.connect(&SockAddr::from(o.connect))
        .map_err(io_err(format!("connect {}", o.connect)))?;
    Ok(s)
}

fn hello(s: &mut Socket, h: Hello) -> Result<(), Error> {
    s.write_all(&h.encode()).map_err(io_err("send hello"))
}

fn close(mut s: Socket) {
    let _ = s.shutdown(Shutdown::Write);
    let mut b = [0u8; 16];
    let _ = s.read(&mut b);
}

fn run_pingpong(o: &ClientOpts, count: u64) -> Result<Part, Error> {
    let mut s = connect(o)?;
    let count32 = u32::try_from(count).map_err(|_| Error::Protocol("--count too large".into()))?;
    hello(
        &mut s,
        Hello {
            mode: Mode::Pingpong,
            size: o.size,
            count: count32,
        },
    )?;
    let msg: Vec<u8> = (0..o.size).map(|i| i as u8).collect();
    let mut back = vec![0u8; o.size as usize];
    let mut samples = Vec::with_capacity(count as usize);
    for i in 0..count {
        let t = Instant::now();
        s.write_all(&msg)
            .map_err(io_err(format!("send message {i}")))?;
        if let Some(d) = o.read_delay {
            thread::sleep(d);
        }
        read_exact(&mut s, &mut back).map_err(io_err(format!("receive echo {i}")))?;
        samples.push(t.elapsed());
        if back != msg {
            return Err(Error::Protocol(format!(
                "echo {i} differs from what was sent"
            )));
        }
    }
    close(s);
    Ok(Part {
        samples,
        count,
        bytes: count * u64::from(o.size),
        connects: 1,
    })
}

fn run_bulk(o: &ClientOpts, count: u64) -> Result<Part, Error> {
    let mut s = connect(o)?;
    hello(
        &mut s,
        Hello {
            mode: Mode::Bulk,
            size: o.size,
            count: 0,
        },
    )?;
    let buf = vec![0x5au8; o.size as usize];
    let start = Instant::now();
    let mut writes = 0u64;
    loop {
        let done = match o.duration {
            Some(d) => start.elapsed() >= d,
            None => writes >= count,
        };
        if done {
            break;
        }
        s.write_all(&buf)
            .map_err(io_err(format!("bulk write {writes}")))?;
        writes += 1;
    }
    s.shutdown(Shutdown::Write)
        .map_err(io_err("shutdown after bulk"))?;
    let mut ack = [0u8; 8];
    read_exact(&mut s, &mut ack).map_err(io_err("read bulk ack"))?;
    let sent = writes * u64::from(o.size);
    let got = u64::from_be_bytes(ack);
    if got != sent {
        return Err(Error::Protocol(format!(
            "server received {got} bytes, client sent {sent}"
        )));
    }
    Ok(Part {
        samples: Vec::new(),
        count: writes,
        bytes: sent,
        connects: 1,
    })
}

fn run_shortconn(o: &ClientOpts, count: u64) -> Result<Part, Error> {
    let msg = vec![0xa5u8; o.size as usize];
    let mut back = vec![0u8; o.size as usize];
    let mut samples = Vec::with_capacity(count as usize);
    for i in 0..count {
        let t = Instant::now();
        let mut s = connect(o)?;
        hello(
            &mut s,
            Hello {
                mode: Mode::Shortconn,
                size: o.size,
                count: 1,
            },
        )?;
        s.write_all(&msg)
            .map_err(io_err(format!("connection {i}: send request")))?;
        read_exact(&mut s, &mut back)
            .map_err(io_err(format!("connection {i}: receive response")))?;
        samples.push(t.elapsed());
        close(s);
    }
    Ok(Part {
        samples,
        count,
        bytes: count * u64::from(o.size),
        connects: count,
    })
}

/// Runs the client workload and reports.
pub fn run_client(o: &ClientOpts) -> Result<Report, Error> {
    if o.size == 0 || o.size > MAX_SIZE {
        return Err(Error::Protocol(format!("--size must be 1..={MAX_SIZE}")));
    }
    let conns = o.conns.max(1);
    // Fail early, once, with the clear error when AF_SMC is missing.
    drop(new_socket(o.proto, &o.connect)?);
    let per =
        |i: u32| o.count / u64::from(conns) + u64::from(u64::from(i) < o.count % u64::from(conns));
    let start = Instant::now();
    let parts: Vec<Result<Part, Error>> = thread::scope(|sc| {
        let hs: Vec<_> = (0..conns)
            .map(|i| {
                let n = per(i);
                sc.spawn(move || match o.mode {
                    Mode::Pingpong => run_pingpong(o, n),
                    Mode::Bulk => run_bulk(o, n),
                    Mode::Shortconn => run_shortconn(o, n),
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Protocol("client thread panicked".into())))
            })
            .collect()
    });
    let secs = start.elapsed().as_secs_f64();
    let mut samples = Vec::new();
    let (mut count, mut bytes, mut connects) = (0, 0, 0);
    for p in parts {
        let p = p?;
        samples.extend(p.samples);
        count += p.count;
        bytes += p.bytes;
        connects += p.connects;
    }
    samples.sort_unstable();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let rate = |n: f64| if secs > 0.0 { n / secs } else { 0.0 };
    Ok(Report {
        mode: o.mode,
        proto: o.proto,
        count,
        size: o.size,
        conns,
        bytes,
        seconds: secs,
        rtt_p50_us: us(percentile(&samples, 50.0)),
        rtt_p90_us: us(percentile(&samples, 90.0)),
        rtt_p99_us: us(percentile(&samples, 99.0)),
        rtt_max_us: us(samples.last().copied().unwrap_or_default()),
        msgs_per_s: rate(if o.mode == Mode::Shortconn {
            connects as f64
        } else {
            count as f64
        }),
        mbytes_per_s: rate(bytes as f64 / 1e6),
        connects,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(exit_after: u64) -> (SocketAddr, thread::JoinHandle<Result<ServerSummary, Error>>) {
        let s = Server::bind(ServerOpts {
            listen: "127.0.0.1:0".parse().unwrap(),
            proto: Proto::Tcp,
            exit_after: Some(exit_after),
            idle_timeout: Some(Duration::from_secs(10)),
        })
        .unwrap();
        let addr = s.local_addr().unwrap();
        (addr, thread::spawn(move || s.run()))
    }

    fn opts(addr: SocketAddr, mode: Mode, count: u64, size: u32, conns: u32) -> ClientOpts {
        ClientOpts {
            connect: addr,
            proto: Proto::Tcp,
            mode,
            count,
            size,
            duration: None,
            conns,
            idle_timeout: Some(Duration::from_secs(10)),
            read_delay: None,
        }
    }

    #[test]
    fn hello_round_trip_and_rejects() {
        let h = Hello {
            mode: Mode::Bulk,
            size: 1 << 20,
            count: 7,
        };
        let b = h.encode();
        assert_eq!(&b[..4], b"SMCL");
        assert_eq!(b[5], 2);
        assert_eq!(Hello::decode(&b).unwrap(), h);
        let mut bad = b;
        bad[0] = b'X';
        assert!(Hello::decode(&bad).is_err());
        let mut bad = b;
        bad[5] = 9;
        assert!(Hello::decode(&bad).is_err());
        let zero = Hello {
            mode: Mode::Pingpong,
            size: 0,
            count: 1,
        }
        .encode();
        assert!(Hello::decode(&zero).is_err());
    }

    #[test]
    fn percentile_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(percentile(&v, 50.0), Duration::from_micros(50));
        assert_eq!(percentile(&v, 99.0), Duration::from_micros(99));
        assert_eq!(percentile(&v, 100.0), Duration::from_micros(100));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }

    #[test]
    fn pingpong_over_tcp_counts_every_message() {
        let (addr, srv) = server(2);
        let r = run_client(&opts(addr, Mode::Pingpong, 301, 100, 2)).unwrap();
        assert_eq!(r.count, 301);
        assert_eq!(r.bytes, 30100);
        assert_eq!(r.connects, 2);
        assert!(r.rtt_p50_us > 0.0 && r.rtt_p50_us <= r.rtt_p99_us && r.rtt_p99_us <= r.rtt_max_us);
        let s = srv.join().unwrap().unwrap();
        assert_eq!(s.connections, 2);
        assert_eq!(s.failed, 0);
        assert_eq!(s.bytes_in, 30100);
    }

    #[test]
    fn read_delay_holds_every_echo_back() {
        let (addr, srv) = server(1);
        let mut o = opts(addr, Mode::Pingpong, 5, 64, 1);
        o.read_delay = Some(Duration::from_millis(20));
        let t = Instant::now();
        let r = run_client(&o).unwrap();
        assert!(
            t.elapsed() >= Duration::from_millis(100),
            "5 echoes held 20 ms each"
        );
        assert!(
            r.rtt_p50_us >= 20_000.0,
            "the RTT includes the read delay: {}",
            r.rtt_p50_us
        );
        assert_eq!(srv.join().unwrap().unwrap().failed, 0);
    }

    #[test]
    fn bulk_over_tcp_is_acknowledged_in_full() {
        let (addr, srv) = server(1);
        let r = run_client(&opts(addr, Mode::Bulk, 20, 256 * 1024, 1)).unwrap();
        assert_eq!(r.count, 20);
        assert_eq!(r.bytes, 20 * 256 * 1024);
        assert!(r.mbytes_per_s > 0.0);
        assert_eq!(srv.join().unwrap().unwrap().bytes_in, 20 * 256 * 1024);
    }

    #[test]
    fn bulk_for_a_duration() {
        let (addr, srv) = server(1);
        let mut o = opts(addr, Mode::Bulk, 0, 64 * 1024, 1);
        o.duration = Some(Duration::from_millis(200));
        let r = run_client(&o).unwrap();
        assert!(r.count > 0 && r.seconds >= 0.2);
        assert_eq!(srv.join().unwrap().unwrap().bytes_in, r.bytes);
    }

    #[test]
    fn ipv6_loopback_works() {
        let Ok(s) = Server::bind(ServerOpts {
            listen: "[::1]:0".parse().unwrap(),
            proto: Proto::Tcp,
            exit_after: Some(1),
            idle_timeout: None,
        }) else {
            return; // no IPv6 on this host
        };
        let addr = s.local_addr().unwrap();
        let srv = thread::spawn(move || s.run());
        let r = run_client(&opts(addr, Mode::Pingpong, 10, 8, 1)).unwrap();
        assert_eq!(r.count, 10);
        assert_eq!(srv.join().unwrap().unwrap().bytes_in, 80);
    }

    #[test]
    fn server_refuses_a_non_smc_load_peer_and_keeps_serving() {
        let (addr, srv) = server(2);
        let mut junk = std::net::TcpStream::connect(addr).unwrap();
        junk.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let mut b = Vec::new();
        let _ = junk.read_to_end(&mut b);
        drop(junk);
        let r = run_client(&opts(addr, Mode::Pingpong, 5, 16, 1)).unwrap();
        assert_eq!(r.count, 5);
        let s = srv.join().unwrap().unwrap();
        assert_eq!((s.connections, s.failed), (2, 1));
    }

    #[test]
    fn silent_peer_hits_the_idle_timeout_with_a_clear_error() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let keep = thread::spawn(move || {
            l.accept().map(|(s, _)| {
                thread::sleep(Duration::from_millis(800));
                drop(s)
            })
        });
        let mut o = opts(addr, Mode::Pingpong, 1, 8, 1);
        o.idle_timeout = Some(Duration::from_millis(200));
        let e = run_client(&o).unwrap_err().to_string();
        assert!(
            e.contains("receive echo 0") && e.contains("idle timeout"),
            "{e}"
        );
        keep.join().unwrap().unwrap();
    }

    #[test]
    fn shortconn_over_tcp_makes_n_connections() {
        let (addr, srv) = server(25);
        let r = run_client(&opts(addr, Mode::Shortconn, 25, 64, 3)).unwrap();
        assert_eq!(r.connects, 25);
        let s = srv.join().unwrap().unwrap();
        assert_eq!(s.connections, 25);
        assert_eq!(s.failed, 0);
    }

    #[test]
    fn smc_socket_error_is_clear_when_unsupported() {
        // On a kernel with SMC this creates a socket; without it the error must be the clear one.
        match new_socket(Proto::Smc, &"127.0.0.1:1".parse().unwrap()) {
            Ok(_) => {}
            Err(e) => assert_eq!(
                e.to_string(),
                "AF_SMC not supported by this kernel (smc module not loaded?)"
            ),
        }
    }
}
