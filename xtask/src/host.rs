//! The build host's side of the lab: Debian packages it needs, where the workspace is, and
//! how external commands are run so that their failure reads as one line.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::Command;

/// Debian packages the lab needs on the host, with a file each proves it is there.
/// (The guests run the host's own tools: `ip`/`rdma` from iproute2, `modprobe` from kmod,
/// `setsid` from util-linux, `awk`.)
pub const PACKAGES: &[(&str, &str)] = &[
    ("qemu-system-x86", "/usr/bin/qemu-system-x86_64"),
    ("busybox-static", "/bin/busybox"),
    ("kmod", "/usr/sbin/depmod"),
    ("iproute2", "/usr/bin/rdma"),
    ("xz-utils", "/usr/bin/xz"),
    ("zstd", "/usr/bin/zstd"),
    ("util-linux", "/usr/bin/setsid"),
    ("mawk", "/usr/bin/awk"),
];

pub fn say(msg: &str) {
    eprintln!("lab: {msg}");
}

/// Run a command; a non-zero exit becomes an error carrying its stderr's last line.
pub fn run_checked(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("{what}: cannot start {:?}", cmd.get_program()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty() && !l.starts_with("W: "))
            .unwrap_or("");
        bail!("{what} failed ({}): {}", out.status, last.trim());
    }
    Ok(())
}

/// Everything the lab needs on the host: its Debian packages (installed with apt-get,
/// non-interactively) and the mount point the guests bind their kernel's modules on.
pub fn ensure_lab_host() -> Result<()> {
    ensure_tools(PACKAGES)?;
    // The guests see the host's /usr read-only and bind their modules over /lib/modules,
    // which must therefore exist on the host (it does on any Debian with a kernel package;
    // a container or a VM booted from an outside kernel may have none).
    if !std::path::Path::new("/lib/modules").is_dir() {
        say("creating /lib/modules on the host (the guests bind their kernel's modules there)");
        std::fs::create_dir_all("/lib/modules").context("creating /lib/modules")?;
    }
    Ok(())
}

/// Install the packages of `(package, file)` pairs whose file is missing.
pub fn ensure_tools(packages: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .filter(|(_, file)| !std::path::Path::new(file).exists())
        .map(|(pkg, _)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    say(&format!(
        "installing missing Debian packages: {}",
        missing.join(" ")
    ));
    run_checked(
        Command::new("apt-get").args(["update", "-qq"]),
        "apt-get update",
    )?;
    run_checked(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
        "apt-get install",
    )?;
    for (pkg, file) in packages {
        if !std::path::Path::new(file).exists() {
            bail!("{file} still missing after installing {pkg}");
        }
    }
    Ok(())
}

/// The workspace root (xtask lives in `<root>/xtask`).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// Cargo's target directory as the other crates' binaries are built into it.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                workspace_root().join(d)
            }
        }
        None => workspace_root().join("target"),
    }
}

/// Absolute path of a workspace binary in target/debug.
pub fn debug_bin(name: &str) -> PathBuf {
    target_dir().join("debug").join(name)
}

/// Build workspace packages with the cargo that runs us.
pub fn cargo_build(packages: &[&str]) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--quiet")
        .current_dir(workspace_root());
    for p in packages {
        cmd.args(["-p", p]);
    }
    say(&format!("building {}", packages.join(", ")));
    let status = cmd.status().context("running cargo build")?;
    if !status.success() {
        bail!("cargo build -p {} failed ({status})", packages.join(" -p "));
    }
    Ok(())
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
