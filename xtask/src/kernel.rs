//! Debian kernels for the lab guests: pick the package, download it, unpack it once.
//!
//! The lab runs Debian's own kernels, unmodified, so what it proves holds for what operators
//! run. `--kernel 6.12` is bookworm-security's 6.12 backport
//! (`linux-image-6.12.*+deb12-amd64-unsigned`, same config as trixie's 6.12 and published
//! together with matching headers and source, so no extra apt source is needed);
//! `--kernel 6.1` is bookworm's `linux-image-6.1.0-*-amd64-unsigned`.
//!
//! `--kernel 7.3` is different: Debian's 7.x kernels ship no SMC (since 6.18 SMC depends on
//! the DIBS layer, which Debian leaves off), so the lab builds that kernel itself with
//! `kernel/lab/kernel-7.x/build.sh`: the newest `linux-source-7.*` of trixie-backports with
//! Debian's own config plus `kernel/lab/kernel-7.x/config.delta`, in a debootstrapped trixie
//! root. Its cache directory is named after the source package, its version and a hash of
//! the build inputs (script, config delta, module list, and the patch series built in), so a
//! changed input builds a new kernel and an unchanged one never rebuilds.
//!
//! A kernel is cached under `$SMCTRACE_LAB_CACHE` (default `/var/cache/smctrace-lab`) in a
//! directory named after the exact package and version, holding:
//! - `vmlinux`: the uncompressed ELF taken out of the bzImage, booted through its PVH entry
//!   (saves the in-guest decompression, seconds under TCG);
//! - `lib/modules/<kver>/`: the package's modules with a `modules.dep` made by `depmod -b`;
//! - `stage1/`: the decompressed modules stage 1 needs for 9p, and their load order;
//! - `kver`, `package`: what it is.
//!
//! It is built in a temporary directory and renamed into place, so an interrupted download
//! never leaves a half cache behind.

use crate::host::{run_checked, say};
use crate::initramfs::{load_order, read_module};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Kernel series the lab knows how to boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Series {
    #[value(name = "6.12")]
    V6_12,
    #[value(name = "6.1")]
    V6_1,
    /// Built by the lab from Debian's newest 7.x source (7.3 today), with SMC and DIBS.
    #[value(name = "7.3", alias = "7")]
    V7_3,
}

impl Series {
    pub fn as_str(self) -> &'static str {
        match self {
            Series::V6_12 => "6.12",
            Series::V6_1 => "6.1",
            Series::V7_3 => "7.3",
        }
    }

    /// Is this kernel built by the lab (from Debian's source) rather than Debian's binary?
    pub fn lab_built(self) -> bool {
        self == Series::V7_3
    }

    /// Does the kernel's own smc.ko do SMC-D over loopback (DIBS loopback, device `lo`)?
    /// On 6.x, SMC_LO is off in Debian's config, and the lab loads its own net/smc build.
    pub fn native_smcd_loopback(self) -> bool {
        self == Series::V7_3
    }

    /// Can `modprobe crc32_generic` work (7.x has crc32 as a library, not a module)?
    pub fn has_crc32_generic_module(self) -> bool {
        self != Series::V7_3
    }

    /// Does this kernel's SMC-R need PNET entries (no UEID-only SMC-Rv2 discovery)?
    pub fn needs_pnet(self) -> bool {
        self == Series::V6_1
    }

    /// Does Debian's rdma_rxe need the lab's fix module (`kernel/lab/rxe-fix`) for SMC-R?
    pub fn needs_rxe_fix(self) -> bool {
        self == Series::V6_1
    }
}

/// Modules stage 1 must load to mount the host over 9p (those built in are skipped).
pub const STAGE1_MODULES: &[&str] = &["virtio_pci", "9pnet_virtio", "9p"];

/// Does `name` (an apt package name) belong to `series`' flavour of choice?
pub fn package_matches(series: Series, name: &str) -> bool {
    match series {
        Series::V6_12 => name
            .strip_prefix("linux-image-6.12.")
            .and_then(|r| r.strip_suffix("+deb12-amd64-unsigned"))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
        Series::V6_1 => name
            .strip_prefix("linux-image-6.1.0-")
            .and_then(|r| r.strip_suffix("-amd64-unsigned"))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
        Series::V7_3 => false,
    }
}

/// The newest matching package of a list of apt package names (numeric order of the ABI or
/// patch number, so `6.12.107` beats `6.12.99`).
pub fn newest_package<'a>(
    series: Series,
    names: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let key = |n: &str| -> u64 {
        let digits: String = match series {
            Series::V6_12 => n
                .trim_start_matches("linux-image-6.12.")
                .chars()
                .take_while(char::is_ascii_digit)
                .collect(),
            Series::V6_1 => n
                .trim_start_matches("linux-image-6.1.0-")
                .chars()
                .take_while(char::is_ascii_digit)
                .collect(),
            Series::V7_3 => String::new(),
        };
        digits.parse().unwrap_or(0)
    };
    names
        .into_iter()
        .filter(|n| package_matches(series, n))
        .max_by_key(|n| key(n))
        .map(str::to_string)
}

fn apt_candidates(series: Series) -> Result<Option<String>> {
    let prefix = match series {
        Series::V6_12 => "linux-image-6.12.",
        Series::V6_1 => "linux-image-6.1.0-",
        Series::V7_3 => return Ok(None),
    };
    let out = Command::new("apt-cache")
        .args(["pkgnames", prefix])
        .output()
        .context("running apt-cache pkgnames")?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(newest_package(series, text.lines()))
}

fn apt_version(package: &str) -> Result<String> {
    let out = Command::new("apt-cache")
        .args(["show", "--no-all-versions", package])
        .output()
        .context("running apt-cache show")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Version: "))
        .map(|v| v.trim().to_string())
        .with_context(|| format!("apt-cache show {package} gave no Version"))
}

/// A kernel ready to boot.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub series: Series,
    pub package: String,
    pub version: String,
    pub kver: String,
    pub dir: PathBuf,
}

impl Kernel {
    pub fn vmlinux(&self) -> PathBuf {
        self.dir.join("vmlinux")
    }
    /// Host path of the directory to bind over the guest's /lib/modules.
    pub fn modules_root(&self) -> PathBuf {
        self.dir.join("lib/modules")
    }
    pub fn stage1_dir(&self) -> PathBuf {
        self.dir.join("stage1")
    }
}

/// An exclusive lock on the cache, held while a kernel is downloaded, unpacked or its fix
/// module built, so that concurrent lab runs (several engineers, CI) never see half of it.
pub struct CacheLock {
    _file: std::fs::File,
}

pub fn lock_cache() -> Result<CacheLock> {
    use std::os::fd::AsRawFd;
    let root = cache_root();
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let path = root.join(".lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: flock on an fd we own; blocks until the other lab run is done with the cache.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        bail!(
            "locking {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
    }
    Ok(CacheLock { _file: f })
}

pub fn cache_root() -> PathBuf {
    std::env::var_os("SMCTRACE_LAB_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/smctrace-lab"))
}

/// Source of the 6.1 rxe fix module (see `kernel/lab/rxe-fix/rxe_fix.c`).
const RXE_FIX_C: &str = include_str!("../../kernel/lab/rxe-fix/rxe_fix.c");
const RXE_FIX_KBUILD: &str = include_str!("../../kernel/lab/rxe-fix/Kbuild");

/// Build (once per kernel and source version) the rxe fix module that 6.1 needs for SMC-R,
/// against Debian's linux-headers of exactly this kernel, downloaded and unpacked into the
/// kernel's cache directory (never installed: the headers package would pull in the image).
pub fn ensure_rxe_fix(k: &Kernel) -> Result<PathBuf> {
    let _lock = lock_cache()?;
    let build = k.dir.join("rxe-fix");
    let ko = build.join("smctrace_rxe_fix.ko");
    let same_source = std::fs::read_to_string(build.join("rxe_fix.c"))
        .is_ok_and(|c| c == RXE_FIX_C)
        && std::fs::read_to_string(build.join("Kbuild")).is_ok_and(|c| c == RXE_FIX_KBUILD);
    if ko.exists() && same_source {
        return Ok(ko);
    }
    crate::host::ensure_tools(&[("gcc-12", "/usr/bin/gcc-12"), ("make", "/usr/bin/make")])?;
    let headers = k.dir.join("headers");
    let hdir = headers
        .join("usr/src")
        .join(format!("linux-headers-{}", k.kver));
    if !hdir.join("Makefile").exists() {
        let flavour = k
            .kver
            .rsplit_once('-')
            .map(|(abi, _)| abi)
            .context("odd kernel release")?;
        let series = k.series.as_str();
        let pkgs = [
            format!("linux-headers-{}={}", k.kver, k.version),
            format!("linux-headers-{flavour}-common={}", k.version),
            format!("linux-kbuild-{series}={}", k.version),
        ];
        say(&format!(
            "downloading {} to build the rxe fix module",
            pkgs.join(" ")
        ));
        let debs = k.dir.join("headers-debs");
        let _ = std::fs::remove_dir_all(&debs);
        let _ = std::fs::remove_dir_all(&headers);
        std::fs::create_dir_all(&debs)?;
        run_checked(
            Command::new("apt-get")
                .args(["download", "-q"])
                .args(&pkgs)
                .current_dir(&debs),
            "apt-get download (headers)",
        )?;
        for deb in std::fs::read_dir(&debs)? {
            run_checked(
                Command::new("dpkg-deb")
                    .arg("-x")
                    .arg(deb?.path())
                    .arg(&headers),
                "dpkg-deb -x (headers)",
            )?;
        }
        let _ = std::fs::remove_dir_all(&debs);
        // The arch headers' Makefile includes the common headers by absolute path.
        let mk = hdir.join("Makefile");
        let text =
            std::fs::read_to_string(&mk).with_context(|| format!("reading {}", mk.display()))?;
        let root = headers.display().to_string();
        std::fs::write(
            &mk,
            text.replace("include /usr/src/", &format!("include {root}/usr/src/")),
        )?;
    }
    let _ = std::fs::remove_dir_all(&build);
    std::fs::create_dir_all(&build)?;
    std::fs::write(build.join("rxe_fix.c"), RXE_FIX_C)?;
    std::fs::write(build.join("Kbuild"), RXE_FIX_KBUILD)?;
    say(&format!(
        "building the rxe fix module against linux-headers-{}",
        k.kver
    ));
    run_checked(
        Command::new("make")
            .arg("-s")
            .arg("-C")
            .arg(&hdir)
            .arg(format!("M={}", build.display()))
            .arg("modules"),
        "building the rxe fix module",
    )?;
    if !ko.exists() {
        bail!("building the rxe fix module left no {}", ko.display());
    }
    Ok(ko)
}

/// Find (or download and unpack) the newest kernel package of `series`.
pub fn ensure(series: Series) -> Result<Kernel> {
    if series.lab_built() {
        return ensure_built(series, None);
    }
    let root = cache_root();
    let mut package = apt_candidates(series)?;
    if package.is_none() {
        say("apt has no lists for the lab kernels yet: running apt-get update");
        run_checked(
            Command::new("apt-get").args(["update", "-qq"]),
            "apt-get update",
        )?;
        package = apt_candidates(series)?;
    }
    let package = package.with_context(|| {
        format!(
            "apt knows no kernel package for {} (looked for {})",
            series.as_str(),
            match series {
                Series::V6_12 => "linux-image-6.12.*+deb12-amd64-unsigned in bookworm-security",
                Series::V6_1 => "linux-image-6.1.0-*-amd64-unsigned in bookworm",
                Series::V7_3 => unreachable!("7.3 is built by the lab, not found in apt"),
            }
        )
    })?;
    let version = apt_version(&package)?;
    let dir = root.join(format!("{package}_{version}"));
    let _lock = lock_cache()?;
    if !dir.join("kver").exists() {
        say(&format!(
            "downloading and unpacking {package} {version} into {}",
            dir.display()
        ));
        build_cache(&package, &dir).with_context(|| format!("preparing {package} {version}"))?;
    }
    let kver = std::fs::read_to_string(dir.join("kver"))
        .with_context(|| format!("reading {}", dir.join("kver").display()))?
        .trim()
        .to_string();
    Ok(Kernel {
        series,
        package,
        version,
        kver,
        dir,
    })
}

fn build_cache(package: &str, dir: &Path) -> Result<()> {
    let parent = dir.parent().context("cache dir has no parent")?;
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let tmp = parent.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        dir.file_name().unwrap_or_default().to_string_lossy()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(tmp.join("deb"))?;
    let result = (|| -> Result<()> {
        run_checked(
            Command::new("apt-get")
                .args(["download", "-q", package])
                .current_dir(tmp.join("deb")),
            "apt-get download",
        )?;
        let deb = std::fs::read_dir(tmp.join("deb"))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "deb"))
            .context("apt-get download left no .deb")?;
        let x = tmp.join("x");
        run_checked(
            Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&x),
            "dpkg-deb -x",
        )?;
        let vmlinuz = std::fs::read_dir(x.join("boot"))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
            })
            .context("the package has no boot/vmlinuz-*")?;
        let kver = vmlinuz
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .trim_start_matches("vmlinuz-")
            .to_string();
        let out = tmp.join("out");
        std::fs::create_dir_all(out.join("lib/modules"))?;
        let image = std::fs::read(&vmlinuz)?;
        std::fs::write(out.join("vmlinux"), extract_vmlinux(&image)?)?;
        let moddir = [
            x.join("lib/modules").join(&kver),
            x.join("usr/lib/modules").join(&kver),
        ]
        .into_iter()
        .find(|p| p.is_dir())
        .context("the package has no lib/modules/<kver>")?;
        std::fs::rename(&moddir, out.join("lib/modules").join(&kver))?;
        for f in std::fs::read_dir(x.join("boot"))? {
            let f = f?.path();
            if f.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("config-"))
            {
                std::fs::copy(&f, out.join("config"))?;
            }
        }
        install_cache(&out, &kver, package, dir)
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// Finish a kernel directory made in `out` (`vmlinux`, `lib/modules/<kver>/`, `config`) and
/// move it to `dir`: `modules.dep` by `depmod -b`, the decompressed stage 1 modules with their
/// load order, `package` and, last, `kver` (whose presence marks a complete cache entry).
fn install_cache(out: &Path, kver: &str, package: &str, dir: &Path) -> Result<()> {
    run_checked(
        Command::new("depmod").arg("-b").arg(out).arg(kver),
        "depmod",
    )?;
    let mods = out.join("lib/modules").join(kver);
    let dep = std::fs::read_to_string(mods.join("modules.dep"))?;
    let builtin = std::fs::read_to_string(mods.join("modules.builtin")).unwrap_or_default();
    let order = load_order(&dep, &builtin, STAGE1_MODULES)?;
    std::fs::create_dir_all(out.join("stage1"))?;
    let mut names = String::new();
    for file in &order {
        let name = crate::initramfs::module_name(file);
        std::fs::write(
            out.join("stage1").join(format!("{name}.ko")),
            read_module(&mods.join(file))?,
        )?;
        names.push_str(&name);
        names.push('\n');
    }
    std::fs::write(out.join("stage1/order"), names)?;
    std::fs::write(out.join("package"), format!("{package}\n"))?;
    std::fs::write(out.join("kver"), format!("{kver}\n"))?;
    // Under the cache lock nobody else builds this directory; a leftover without `kver`
    // is a half-written one from an older layout and goes.
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(out, dir).with_context(|| format!("moving the kernel to {}", dir.display()))?;
    Ok(())
}

/// The lab's own 7.x build (`kernel/lab/kernel-7.x/`).
const BUILD_7X_DIR: &str = "kernel/lab/kernel-7.x";
/// The files whose content decides the kernel that `build.sh` makes.
const BUILD_7X_INPUTS: &[&str] = &["build.sh", "config.delta", "modules.lsmod"];

/// FNV-1a, 64 bits: a stable content hash for cache names (std's hasher may change between
/// toolchains; nothing here needs a cryptographic hash).
fn fnv1a64(data: &[u8], mut h: u64) -> u64 {
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Hash of the build inputs of a lab-built kernel: the build files, then each patch (by
/// name and content) of `patches`, in name order.
fn build_inputs_hash(patches: Option<&Path>) -> Result<u64> {
    let dir = crate::host::workspace_root().join(BUILD_7X_DIR);
    let mut h = 0xcbf2_9ce4_8422_2325;
    for f in BUILD_7X_INPUTS {
        let p = dir.join(f);
        h = fnv1a64(f.as_bytes(), h);
        h = fnv1a64(
            &std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?,
            h,
        );
    }
    if let Some(patches) = patches {
        let mut files: Vec<PathBuf> = std::fs::read_dir(patches)
            .with_context(|| format!("reading {}", patches.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "patch"))
            .collect();
        files.sort();
        for p in files {
            h = fnv1a64(p.file_name().unwrap_or_default().as_encoded_bytes(), h);
            h = fnv1a64(&std::fs::read(&p)?, h);
        }
    }
    Ok(h)
}

/// The kernel series (`kernel/patches/`) as net/smc modules (smc.ko, smc_diag.ko, and its
/// KUnit test module where the kernel has KUnit) built on top of the lab's stock build of
/// `k` (`build.sh smc-modules`), cached in `<cache>/<k's dir>_series_<hash>/` by the build
/// inputs, the series and `kernel/module/Kbuild`. They load into `k` instead of its smc.ko.
pub fn ensure_series_modules(k: &Kernel) -> Result<PathBuf> {
    if !k.series.lab_built() {
        bail!("the series modules of build.sh are for the lab-built kernels (7.x)");
    }
    let root = crate::host::workspace_root();
    let patches = root.join("kernel/patches");
    let mut h = build_inputs_hash(Some(&patches))?;
    h = fnv1a64(&std::fs::read(root.join("kernel/module/Kbuild"))?, h);
    let name = k.dir.file_name().unwrap_or_default().to_string_lossy();
    let dir = cache_root().join(format!("{name}_series_{h:016x}"));
    let _lock = lock_cache()?;
    if dir.join("smc.ko").exists() && dir.join("smc_diag.ko").exists() {
        return Ok(dir);
    }
    say(&format!(
        "building the kernel series (kernel/patches/) as net/smc modules for {} into {}",
        k.kver,
        dir.display()
    ));
    let tmp = cache_root().join(format!(".tmp-{}-series", std::process::id()));
    let status = Command::new(root.join(BUILD_7X_DIR).join("build.sh"))
        .arg("smc-modules")
        .arg("--cache")
        .arg(cache_root().join("build-7.x"))
        .arg("--patches")
        .arg(&patches)
        .arg("--out")
        .arg(&tmp)
        .status()
        .context("running kernel/lab/kernel-7.x/build.sh smc-modules")?;
    if !status.success() {
        let _ = std::fs::remove_dir_all(&tmp);
        bail!("kernel/lab/kernel-7.x/build.sh smc-modules failed ({status})");
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir).with_context(|| format!("moving to {}", dir.display()))?;
    Ok(dir)
}

/// The kernel series as upstream takes it (`build.sh check`): `git am` onto the pristine
/// source of the lab's 7.x kernel (which must be built), `checkpatch.pl --strict` on every
/// patch, and net/smc built with W=1 after every patch.
pub fn check_series() -> Result<()> {
    let root = crate::host::workspace_root();
    let status = Command::new(root.join(BUILD_7X_DIR).join("build.sh"))
        .arg("check")
        .arg("--cache")
        .arg(cache_root().join("build-7.x"))
        .arg("--patches")
        .arg(root.join("kernel/patches"))
        .status()
        .context("running kernel/lab/kernel-7.x/build.sh check")?;
    if !status.success() {
        bail!("kernel/patches/ failed build.sh check ({status}): see above");
    }
    Ok(())
}

/// Find (or build) the lab's kernel of a lab-built `series` from Debian's newest 7.x source,
/// with the patch series in `patches` applied on top if given.
pub fn ensure_built(series: Series, patches: Option<&Path>) -> Result<Kernel> {
    let script = crate::host::workspace_root()
        .join(BUILD_7X_DIR)
        .join("build.sh");
    let work = cache_root().join("build-7.x");
    let o = Command::new(&script)
        .arg("resolve")
        .arg("--cache")
        .arg(&work)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {} resolve", script.display()))?;
    if !o.status.success() {
        bail!("{} resolve failed ({})", script.display(), o.status);
    }
    let text = String::from_utf8_lossy(&o.stdout);
    let [source, version, kver] = text.split_whitespace().collect::<Vec<_>>()[..] else {
        bail!(
            "{} resolve printed {text:?}, not \"<package> <version> <kver>\"",
            script.display()
        );
    };
    if source != format!("linux-source-{}", series.as_str()) {
        say(&format!(
            "note: the newest Debian 7.x source is now {source} {version}; --kernel {} builds it",
            series.as_str()
        ));
    }
    let hash = build_inputs_hash(patches)?;
    let flavour = if patches.is_some() {
        "patched"
    } else {
        "stock"
    };
    let package = format!("{source} (lab build, {flavour}, inputs {hash:016x})");
    let dir = cache_root().join(format!("{source}_{version}_{flavour}_{hash:016x}"));
    let _lock = lock_cache()?;
    if !dir.join("kver").exists() {
        say(&format!(
            "building Linux {kver} from Debian's {source} {version} with SMC and DIBS \
             (kernel/lab/kernel-7.x; about 20 min on 2 cores, once) into {}",
            dir.display()
        ));
        let tmp = cache_root().join(format!(".tmp-{}-build-7.x", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let result = (|| -> Result<()> {
            let mut cmd = Command::new(&script);
            cmd.arg("build")
                .arg("--cache")
                .arg(&work)
                .arg("--out")
                .arg(&tmp);
            if let Some(p) = patches {
                cmd.arg("--patches").arg(p);
            }
            // build.sh says what it does on stderr (minutes of build): let it through.
            let status = cmd
                .stdout(std::process::Stdio::inherit())
                .stderr(std::process::Stdio::inherit())
                .status()
                .with_context(|| format!("running {}", script.display()))?;
            if !status.success() {
                bail!("{} build failed ({status})", script.display());
            }
            let built = std::fs::read_to_string(tmp.join("kver"))?;
            if built.trim() != kver {
                bail!("build.sh built {}, resolve said {kver}", built.trim());
            }
            install_cache(&tmp, kver, &package, &dir)
        })();
        let _ = std::fs::remove_dir_all(&tmp);
        result.with_context(|| format!("building the lab kernel from {source} {version}"))?;
    }
    Ok(Kernel {
        series,
        package,
        version: version.to_string(),
        kver: kver.to_string(),
        dir,
    })
}

/// The compressed payload of a bzImage: its format and bytes (without the 4-byte size
/// trailer the kernel's build appends).
pub fn bzimage_payload(image: &[u8]) -> Result<(&'static str, &[u8])> {
    if image.len() < 0x250 || &image[0x202..0x206] != b"HdrS" {
        bail!("not a bzImage (no HdrS boot header)");
    }
    let setup_sects = match image[0x1f1] {
        0 => 4,
        n => n as usize,
    };
    let pm = (setup_sects + 1) * 512;
    let off = u32::from_le_bytes(image[0x248..0x24c].try_into()?) as usize;
    let len = u32::from_le_bytes(image[0x24c..0x250].try_into()?) as usize;
    let payload = image
        .get(pm + off..pm + off + len)
        .context("bzImage payload out of bounds")?;
    let kind = match payload {
        [0x28, 0xb5, 0x2f, 0xfd, ..] => "zstd",
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => "xz",
        [0x1f, 0x8b, ..] => "gzip",
        _ => bail!("unknown bzImage payload compression"),
    };
    Ok((kind, &payload[..payload.len().saturating_sub(4)]))
}

/// Decompress the ELF `vmlinux` out of a bzImage with the host's zstd/xz/gzip.
pub fn extract_vmlinux(image: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    let (kind, payload) = bzimage_payload(image)?;
    let mut child = Command::new(kind)
        .args(["-dc", "-q"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("running {kind} to decompress the kernel"))?;
    let mut stdin = child.stdin.take().context("no stdin")?;
    let payload = payload.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&payload));
    let out = child.wait_with_output()?;
    // xz and gzip may complain about the trailing padding; the ELF check below decides.
    let _ = writer.join();
    if out.stdout.get(..4) != Some(b"\x7fELF") {
        bail!(
            "decompressing the kernel with {kind} gave no ELF: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_newest_matching_package() {
        let names = [
            "linux-image-6.12.99+deb12-amd64-unsigned",
            "linux-image-6.12.107+deb12-amd64-unsigned",
            "linux-image-6.12.107+deb12-amd64-dbg",
            "linux-image-6.12.107+deb12-cloud-amd64-unsigned",
            "linux-image-6.12.107+deb12-rt-amd64-unsigned",
        ];
        assert_eq!(
            newest_package(Series::V6_12, names).as_deref(),
            Some("linux-image-6.12.107+deb12-amd64-unsigned")
        );
        let names = [
            "linux-image-6.1.0-9-amd64-unsigned",
            "linux-image-6.1.0-56-amd64-unsigned",
            "linux-image-6.1.0-56-cloud-amd64-unsigned",
        ];
        assert_eq!(
            newest_package(Series::V6_1, names).as_deref(),
            Some("linux-image-6.1.0-56-amd64-unsigned")
        );
        assert_eq!(
            newest_package(Series::V6_1, ["linux-image-6.1.0-56-amd64"]),
            None
        );
    }

    fn fake_bzimage(payload: &[u8]) -> Vec<u8> {
        let mut img = vec![0u8; 5 * 512];
        img[0x1f1] = 4;
        img[0x202..0x206].copy_from_slice(b"HdrS");
        img[0x248..0x24c].copy_from_slice(&16u32.to_le_bytes());
        img[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        img.extend_from_slice(&[0u8; 16]);
        img.extend_from_slice(payload);
        img
    }

    #[test]
    fn finds_the_payload_and_drops_the_size_trailer() {
        let img = fake_bzimage(&[0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3, 9, 9, 9, 9]);
        let (kind, p) = bzimage_payload(&img).unwrap();
        assert_eq!(kind, "zstd");
        assert_eq!(p, &[0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3]);
        assert!(bzimage_payload(&fake_bzimage(b"garbage!")).is_err());
        assert!(bzimage_payload(b"short").is_err());
    }
}
