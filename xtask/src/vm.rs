//! Boot the lab's guests and follow them to their result.
//!
//! One run = one or two QEMU processes (guest A, client role; guest B, server role) booted
//! from a cached Debian kernel and the initramfs, linked by a UDP socket netdev on
//! 127.0.0.1, sharing the host's `/` read-only (9p tag `hostroot`) and the run's output
//! directory read-write (9p tag `out`, `/out` in the guests). What happens inside is
//! `kernel/lab/init` then `kernel/lab/guest.sh`; this module owns what happens outside:
//! - the per-run files in `<out>/.lab/` (each guest's configuration and commands);
//! - the QEMU processes: never orphaned (PR_SET_PDEATHSIG, killed on drop, on Ctrl-C,
//!   SIGTERM or SIGHUP and on every error path), and a host-side deadline behind the
//!   in-guest watchdog;
//! - the commands' output (serial port ttyS1 of each guest, a file), streamed to the
//!   terminal with `[A] `/`[B] ` prefixes, and the `@@SMCTRACE-RC` line that ends it.

use crate::host::say;
use crate::initramfs::{list_newc, write_newc, Entry};
use crate::kernel::Kernel;
use anyhow::{bail, Context, Result};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

pub const GUEST_INIT: &str = include_str!("../../kernel/lab/init");
pub const GUEST_SCRIPT: &str = include_str!("../../kernel/lab/guest.sh");

/// UEID both guests register (SMC-Rv2 needs one, the same on both peers).
pub const LAB_UEID: &str = "SMCTRACE-LAB";
/// PNET ID tying eth0 and rxe0 together on kernels that need PNET entries (6.1).
pub const LAB_PNETID: &str = "SMCTRACELAB";

/// Seconds B waits after A finished before stopping B's commands.
const STOP_GRACE_SECS: u64 = 5;
/// Seconds B may take to start listening before A is started anyway.
const READY_TIMEOUT_SECS: u64 = 15;

/// Everything one lab run needs.
#[derive(Debug, Clone)]
pub struct Spec {
    pub kernel: Kernel,
    pub out: PathBuf,
    pub a_cmds: String,
    pub b_cmds: Option<String>,
    pub smc_setup: bool,
    pub timeout: Duration,
    pub smcctl: PathBuf,
    /// Host paths of extra modules insmod'ed after rdma_rxe (the 6.1 rxe fix).
    pub extra_modules: Vec<PathBuf>,
    /// Host directory with an out-of-tree smc.ko and smc_diag.ko loaded instead of the
    /// kernel's own (`--smc-modules`).
    pub smc_modules: Option<PathBuf>,
    pub memory_mb: u32,
    /// Print the commands' output live with `[A] `/`[B] ` prefixes.
    pub echo: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    A,
    B,
}

impl Role {
    pub fn lower(self) -> &'static str {
        match self {
            Role::A => "a",
            Role::B => "b",
        }
    }
    pub fn upper(self) -> &'static str {
        match self {
            Role::A => "A",
            Role::B => "B",
        }
    }
    fn addr(self) -> &'static str {
        match self {
            Role::A => "10.77.0.1",
            Role::B => "10.77.0.2",
        }
    }
    fn peer(self) -> &'static str {
        match self {
            Role::A => "10.77.0.2",
            Role::B => "10.77.0.1",
        }
    }
    fn mac(self) -> &'static str {
        match self {
            Role::A => "52:54:00:77:00:01",
            Role::B => "52:54:00:77:00:02",
        }
    }
}

/// How one guest ended.
#[derive(Debug, Clone)]
pub struct GuestResult {
    pub role: Role,
    /// Exit code reported by the guest (`None`: it never reported, e.g. a kernel panic).
    pub rc: Option<i32>,
    /// Words that came with the code ("exit status of A's commands", "setup failed: ...").
    pub words: String,
    /// The last line the commands printed (context for a failure).
    pub last_line: Option<String>,
    pub serial_log: PathBuf,
}

impl GuestResult {
    pub fn ok(&self) -> bool {
        self.rc == Some(0)
    }
    /// One line saying how the guest ended.
    pub fn describe(&self) -> String {
        match self.rc {
            Some(rc) if rc != 0 && self.last_line.is_some() => format!(
                "guest {}: exit {rc} ({}; last output: {:?})",
                self.role.upper(),
                self.words,
                self.last_line.as_deref().unwrap_or("")
            ),
            Some(rc) => format!("guest {}: exit {rc} ({})", self.role.upper(), self.words),
            None => format!(
                "guest {}: ended without reporting a result (panic or crash?)",
                self.role.upper()
            ),
        }
    }
}

#[derive(Debug)]
pub struct Outcome {
    pub a: GuestResult,
    pub b: Option<GuestResult>,
    /// From the first QEMU spawn to the last guest's end.
    pub wall: Duration,
}

impl Outcome {
    pub fn guests(&self) -> impl Iterator<Item = &GuestResult> {
        std::iter::once(&self.a).chain(self.b.as_ref())
    }
    pub fn ok(&self) -> bool {
        self.guests().all(GuestResult::ok)
    }
    pub fn serial_logs(&self) -> String {
        self.guests()
            .map(|g| g.serial_log.display().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }
    /// What went wrong, for one error line: each failed guest, then the kept serial logs.
    pub fn failure_summary(&self) -> String {
        let failed: Vec<String> = self
            .guests()
            .filter(|g| !g.ok())
            .map(|g| g.describe())
            .collect();
        format!(
            "{} (serial logs kept: {})",
            failed.join("; "),
            self.serial_logs()
        )
    }
}

/// Quote a value for a POSIX shell (`'...'`, with `'` as `'\''`).
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// QEMU option values escape `,` by doubling it.
fn qemu_escape(p: &Path) -> String {
    p.display().to_string().replace(',', ",,")
}

/// The configuration file stage 2 sources (`/out/.lab/<role>.env`).
pub fn guest_env(spec: &Spec, role: Role) -> String {
    let two = spec.b_cmds.is_some();
    let series = spec.kernel.series;
    let vars: Vec<(&str, String)> = vec![
        (
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        ),
        ("SMCTRACE_PEER", role.peer().into()),
        ("SMCTRACE_OUT", "/out".into()),
        ("SMCTRACE_READY_FILE", "/out/.lab/b.ready".into()),
        ("LAB_ADDR", role.addr().into()),
        (
            "LAB_SMC_SETUP",
            if spec.smc_setup { "1" } else { "0" }.into(),
        ),
        ("LAB_UEID", LAB_UEID.into()),
        (
            "LAB_CRC32_MODULE",
            if series.has_crc32_generic_module() {
                "1"
            } else {
                "0"
            }
            .into(),
        ),
        (
            "LAB_PNETID",
            if series.needs_pnet() {
                LAB_PNETID.into()
            } else {
                String::new()
            },
        ),
        ("LAB_SMCCTL", spec.smcctl.display().to_string()),
        (
            "LAB_EXTRA_MODULES",
            spec.extra_modules
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        (
            "LAB_CWD",
            std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_else(|_| "/".into()),
        ),
        (
            "LAB_SMC_MODULES",
            spec.smc_modules
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        ),
        ("LAB_TWO_GUESTS", if two { "1" } else { "0" }.into()),
        ("LAB_READY_TIMEOUT", READY_TIMEOUT_SECS.to_string()),
        ("LAB_STOP_GRACE", STOP_GRACE_SECS.to_string()),
        ("LAB_PEER_TIMEOUT", spec.timeout.as_secs().to_string()),
    ];
    vars.iter()
        .map(|(k, v)| format!("{k}={}\n", sh_quote(v)))
        .collect()
}

/// The initramfs members: busybox, the two scripts, /dev/console, stage-1 modules.
pub fn initramfs_entries(kernel: &Kernel, extra_keep: &[PathBuf]) -> Result<Vec<Entry>> {
    let dir = |p: &str| Entry::Dir {
        path: p.into(),
        mode: 0o755,
    };
    let mut e = vec![
        dir("bin"),
        dir("dev"),
        dir("proc"),
        dir("sys"),
        dir("lab"),
        dir("modules"),
    ];
    e.push(Entry::CharDev {
        path: "dev/console".into(),
        mode: 0o600,
        major: 5,
        minor: 1,
    });
    let busybox = std::fs::read("/bin/busybox").context("reading /bin/busybox (busybox-static)")?;
    e.push(Entry::File {
        path: "bin/busybox".into(),
        mode: 0o755,
        data: busybox,
    });
    e.push(Entry::File {
        path: "init".into(),
        mode: 0o755,
        data: GUEST_INIT.as_bytes().to_vec(),
    });
    e.push(Entry::File {
        path: "lab/guest.sh".into(),
        mode: 0o755,
        data: GUEST_SCRIPT.as_bytes().to_vec(),
    });
    // Host paths the guests must see although they lie under /tmp or /run, which the
    // guests replace with their own tmpfs (a CI clone in /tmp, a cache in /tmp...).
    let mut keep: Vec<String> = vec![
        crate::host::workspace_root().display().to_string(),
        crate::host::target_dir().display().to_string(),
        kernel.dir.display().to_string(),
    ];
    if let Ok(cwd) = std::env::current_dir() {
        keep.push(cwd.display().to_string());
    }
    keep.extend(extra_keep.iter().map(|p| p.display().to_string()));
    let keep: String = keep
        .iter()
        .filter(|p| !p.contains(char::is_whitespace))
        .map(|p| format!("{p}\n"))
        .collect();
    e.push(Entry::File {
        path: "lab/keep".into(),
        mode: 0o644,
        data: keep.into_bytes(),
    });
    let stage1 = kernel.stage1_dir();
    let order = std::fs::read_to_string(stage1.join("order"))
        .with_context(|| format!("reading {}", stage1.join("order").display()))?;
    for name in order.lines().filter(|l| !l.is_empty()) {
        let data = std::fs::read(stage1.join(format!("{name}.ko")))?;
        e.push(Entry::File {
            path: format!("modules/{name}.ko"),
            mode: 0o644,
            data,
        });
    }
    e.push(Entry::File {
        path: "modules/order".into(),
        mode: 0o644,
        data: order.into_bytes(),
    });
    Ok(e)
}

fn interrupted_flag() -> Result<Arc<AtomicBool>> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    if let Some(f) = FLAG.get() {
        return Ok(f.clone());
    }
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(sig, flag.clone()).context("installing the signal handler")?;
    }
    Ok(FLAG.get_or_init(|| flag).clone())
}

/// A running QEMU; killed and reaped when dropped, whatever happened.
struct Guest {
    role: Role,
    child: Option<Child>,
    output_log: PathBuf,
    serial_log: PathBuf,
    stderr_log: PathBuf,
    read_pos: u64,
    partial: Vec<u8>,
    last_line: Option<String>,
    rc: Option<(i32, String)>,
    exited: Option<Instant>,
}

impl Drop for Guest {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Guest {
    fn spawn(spec: &Spec, role: Role, initrd: &Path, ports: (u16, u16)) -> Result<Guest> {
        let lab = spec.out.join(".lab");
        let serial_log = spec.out.join(format!("serial-{}.log", role.lower()));
        let output_log = spec.out.join(format!("output-{}.log", role.lower()));
        let stderr_log = lab.join(format!("qemu-{}.stderr", role.lower()));
        let _ = std::fs::remove_file(&serial_log);
        let _ = std::fs::remove_file(&output_log);
        let (local, remote) = match role {
            Role::A => (ports.0, ports.1),
            Role::B => (ports.1, ports.0),
        };
        let append = format!(
            "console=ttyS0 panic=-1 oops=panic mitigations=off tsc=reliable no_timer_check smctrace.role={} smctrace.watchdog={} smctrace.moddir={}",
            role.lower(),
            spec.timeout.as_secs(),
            spec.kernel.modules_root().display()
        );
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args([
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
        ])
        .args([
            "-M",
            "pc",
            "-accel",
            "tcg,thread=multi",
            "-cpu",
            "max",
            "-smp",
            "1",
        ])
        .args(["-m", &spec.memory_mb.to_string()])
        .arg("-kernel")
        .arg(spec.kernel.vmlinux())
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", &append])
        .args(["-serial", &format!("file:{}", qemu_escape(&serial_log))])
        .args(["-serial", &format!("file:{}", qemu_escape(&output_log))])
        .args([
            "-virtfs",
            "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
        ])
        .args([
            "-virtfs",
            &format!(
                "local,path={},mount_tag=out,security_model=none,multidevs=remap",
                qemu_escape(&spec.out)
            ),
        ])
        .args([
            "-netdev",
            &format!("socket,id=n0,udp=127.0.0.1:{remote},localaddr=127.0.0.1:{local}"),
        ])
        .args([
            "-device",
            &format!("virtio-net-pci,netdev=n0,mac={}", role.mac()),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(
            std::fs::File::create(&stderr_log)
                .with_context(|| format!("creating {}", stderr_log.display()))?,
        );
        // SAFETY: prctl and setpgid are async-signal-safe and touch only the child.
        unsafe {
            cmd.pre_exec(|| {
                // Die with us even if we are SIGKILLed; own process group so a terminal
                // Ctrl-C reaches only us and we stop QEMU ourselves.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                libc::setpgid(0, 0);
                Ok(())
            });
        }
        let child = cmd.spawn().context("starting qemu-system-x86_64")?;
        Ok(Guest {
            role,
            child: Some(child),
            output_log,
            serial_log,
            stderr_log,
            read_pos: 0,
            partial: Vec::new(),
            last_line: None,
            rc: None,
            exited: None,
        })
    }

    /// Read new output, print complete lines, pick up the result line.
    fn pump(&mut self, echo: bool) {
        let Ok(mut f) = std::fs::File::open(&self.output_log) else {
            return;
        };
        use std::io::Seek;
        if f.seek(std::io::SeekFrom::Start(self.read_pos)).is_err() {
            return;
        }
        let mut buf = Vec::new();
        if let Ok(n) = f.read_to_end(&mut buf) {
            self.read_pos += n as u64;
            self.partial.extend_from_slice(&buf);
        }
        while let Some(i) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            self.line(
                String::from_utf8_lossy(&line)
                    .trim_end_matches(['\n', '\r'])
                    .to_string(),
                echo,
            );
        }
    }

    fn flush(&mut self, echo: bool) {
        self.pump(echo);
        if !self.partial.is_empty() {
            let rest = std::mem::take(&mut self.partial);
            self.line(
                String::from_utf8_lossy(&rest)
                    .trim_end_matches(['\n', '\r'])
                    .to_string(),
                echo,
            );
        }
    }

    fn line(&mut self, line: String, echo: bool) {
        if let Some((rc, words)) = parse_rc_line(&line) {
            self.rc = Some((rc, words));
            return;
        }
        if echo {
            println!("[{}] {line}", self.role.upper());
        }
        if !line.trim().is_empty() {
            self.last_line = Some(line);
        }
    }

    fn poll_exit(&mut self) -> Result<bool> {
        if self.exited.is_some() {
            return Ok(true);
        }
        if let Some(c) = self.child.as_mut() {
            if c.try_wait()?.is_some() {
                self.child = None;
                self.exited = Some(Instant::now());
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn result(&self) -> GuestResult {
        let (rc, words) = match &self.rc {
            Some((rc, w)) => (Some(*rc), w.clone()),
            None => (None, String::new()),
        };
        GuestResult {
            role: self.role,
            rc,
            words,
            last_line: self.last_line.clone(),
            serial_log: self.serial_log.clone(),
        }
    }

    fn qemu_stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log)
            .unwrap_or_default()
            .lines()
            .last()
            .unwrap_or("")
            .to_string()
    }
}

/// Parse `@@SMCTRACE-RC <code> <words>`.
pub fn parse_rc_line(line: &str) -> Option<(i32, String)> {
    let rest = line.trim().strip_prefix("@@SMCTRACE-RC ")?;
    let (code, words) = rest.split_once(' ').unwrap_or((rest, ""));
    Some((code.parse().ok()?, words.trim().to_string()))
}

fn free_udp_ports() -> Result<(u16, u16)> {
    let a = std::net::UdpSocket::bind("127.0.0.1:0").context("finding a free UDP port")?;
    let b = std::net::UdpSocket::bind("127.0.0.1:0").context("finding a free UDP port")?;
    Ok((a.local_addr()?.port(), b.local_addr()?.port()))
}

/// Boot the guests of `spec`, follow them to their end, and return how they ended.
/// Errors are reserved for the lab itself failing (QEMU not starting, deadline, Ctrl-C);
/// a command failing in a guest is a normal [`Outcome`].
pub fn run(spec: &Spec) -> Result<Outcome> {
    let interrupted = interrupted_flag()?;
    let lab = spec.out.join(".lab");
    if lab.exists() {
        std::fs::remove_dir_all(&lab).with_context(|| format!("clearing {}", lab.display()))?;
    }
    std::fs::create_dir_all(&lab).with_context(|| format!("creating {}", lab.display()))?;
    let initrd = lab.join("initramfs.cpio");
    let archive = write_newc(&initramfs_entries(
        &spec.kernel,
        &spec
            .smcctl
            .parent()
            .map(Path::to_path_buf)
            .into_iter()
            .chain(spec.smc_modules.clone())
            .collect::<Vec<_>>(),
    )?);
    // Cheap self-check of what is about to boot: the archive parses and has its init.
    let members = list_newc(&archive)?;
    if !members.iter().any(|(p, _, _)| p == "init") {
        bail!("internal error: the initramfs has no /init");
    }
    std::fs::write(&initrd, archive)?;
    let mut roles = vec![Role::A];
    if spec.b_cmds.is_some() {
        roles.insert(0, Role::B);
    }
    for &role in &roles {
        let cmds = match role {
            Role::A => spec.a_cmds.as_str(),
            Role::B => spec.b_cmds.as_deref().unwrap_or(""),
        };
        std::fs::write(
            lab.join(format!("{}.env", role.lower())),
            guest_env(spec, role),
        )?;
        std::fs::write(
            lab.join(format!("{}.cmd", role.lower())),
            format!("{cmds}\n"),
        )?;
    }
    let ports = free_udp_ports()?;
    let start = Instant::now();
    let mut guests = Vec::new();
    for &role in &roles {
        guests.push(Guest::spawn(spec, role, &initrd, ports)?);
    }
    // Host-side deadline: the in-guest watchdog fires at spec.timeout from boot.
    let deadline = start + spec.timeout + Duration::from_secs(20);
    loop {
        for g in guests.iter_mut() {
            g.pump(spec.echo);
        }
        if interrupted.load(Ordering::SeqCst) {
            drop(guests);
            bail!("interrupted: QEMU stopped (logs in {})", spec.out.display());
        }
        let mut all = true;
        for g in guests.iter_mut() {
            let was_running = g.exited.is_none();
            if !g.poll_exit()? {
                all = false;
            } else if was_running {
                // The peer waits on this guest's done marker (A: B ended before ready; B: stop
                // after A). A guest that crashed never wrote it: write it for it, so the other
                // one ends now instead of at its watchdog.
                let done = lab.join(format!("{}.done", g.role.lower()));
                if !done.exists() {
                    let _ = std::fs::write(
                        &done,
                        format!(
                            "125 QEMU of guest {} exited without a result\n",
                            g.role.upper()
                        ),
                    );
                }
            }
        }
        if all {
            break;
        }
        // If one guest ended early and the other is waiting on it forever, the other's
        // own timers (peer timeout, stop grace) end it; the deadline is the last resort.
        if Instant::now() > deadline {
            let names: Vec<_> = guests
                .iter()
                .filter(|g| g.exited.is_none())
                .map(|g| g.role.upper())
                .collect();
            let logs: Vec<_> = guests
                .iter()
                .map(|g| g.serial_log.display().to_string())
                .collect();
            drop(guests);
            bail!(
                "guest {} still running {}s after boot: killed (serial logs kept: {})",
                names.join(", "),
                (spec.timeout + Duration::from_secs(20)).as_secs(),
                logs.join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let wall = start.elapsed();
    // QEMU read it at start; 3 MB per kept run is not worth keeping.
    let _ = std::fs::remove_file(&initrd);
    for g in guests.iter_mut() {
        g.flush(spec.echo);
        if g.rc.is_none() {
            let e = g.qemu_stderr();
            if !e.is_empty() {
                say(&format!("QEMU of guest {} said: {e}", g.role.upper()));
            }
        }
    }
    let mut a = None;
    let mut b = None;
    for g in &guests {
        match g.role {
            Role::A => a = Some(g.result()),
            Role::B => b = Some(g.result()),
        }
    }
    Ok(Outcome {
        a: a.context("guest A missing")?,
        b,
        wall,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rc_lines_parse() {
        assert_eq!(
            parse_rc_line("@@SMCTRACE-RC 0 exit status of A's commands\r"),
            Some((0, "exit status of A's commands".into()))
        );
        assert_eq!(
            parse_rc_line("@@SMCTRACE-RC 125"),
            Some((125, String::new()))
        );
        assert_eq!(parse_rc_line("[  1.0] @@SMCTRACE-RC 0"), None);
        assert_eq!(parse_rc_line("@@SMCTRACE-RC x"), None);
    }

    #[test]
    fn shell_quoting_survives_quotes() {
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn guest_scripts_parse_as_posix_sh() {
        use std::io::Write;
        for (name, text) in [("init", GUEST_INIT), ("guest.sh", GUEST_SCRIPT)] {
            let mut child = Command::new("sh")
                .arg("-n")
                .stdin(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("sh");
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    #[test]
    fn guest_env_carries_the_interface_variables() {
        let kernel = Kernel {
            series: crate::kernel::Series::V6_1,
            package: "p".into(),
            version: "v".into(),
            kver: "6.1.0-56-amd64".into(),
            dir: "/c/k".into(),
        };
        let spec = Spec {
            kernel,
            out: "/o".into(),
            a_cmds: "true".into(),
            b_cmds: Some("true".into()),
            smc_setup: true,
            timeout: Duration::from_secs(60),
            smcctl: "/w/smcctl".into(),
            extra_modules: vec!["/c/k/rxe-fix/smctrace_rxe_fix.ko".into()],
            smc_modules: None,
            memory_mb: 1024,
            echo: false,
        };
        let a = guest_env(&spec, Role::A);
        assert!(a.contains("SMCTRACE_PEER='10.77.0.2'\n"));
        assert!(a.contains("LAB_ADDR='10.77.0.1'\n"));
        assert!(a.contains("SMCTRACE_OUT='/out'\n"));
        assert!(
            a.contains("LAB_PNETID='SMCTRACELAB'\n"),
            "6.1 needs PNET entries"
        );
        assert!(a.contains("LAB_EXTRA_MODULES='/c/k/rxe-fix/smctrace_rxe_fix.ko'\n"));
        assert!(a.contains("LAB_TWO_GUESTS='1'\n"));
        let b = guest_env(&spec, Role::B);
        assert!(b.contains("SMCTRACE_PEER='10.77.0.1'\n") && b.contains("LAB_ADDR='10.77.0.2'\n"));
    }

    #[test]
    fn qemu_values_escape_commas() {
        assert_eq!(qemu_escape(Path::new("/tmp/a,b")), "/tmp/a,,b");
    }
}
