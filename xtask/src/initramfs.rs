//! The lab guests' initramfs: a `newc` cpio archive written in memory.
//!
//! It holds only what stage 1 (`kernel/lab/init`) needs to reach the host's root filesystem:
//! the host's static busybox, the two guest scripts, `/dev/console`, and the few modules that
//! the guest kernel does not have built in for 9p over virtio. Everything else in the guest
//! comes from the host over 9p, so the archive stays ~3 MB and is rebuilt on every run
//! (a few milliseconds) instead of being cached.
//!
//! The cpio writer is a dozen lines of a fixed format; no crate is worth the dependency.

use anyhow::{bail, Context, Result};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// One archive member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir {
        path: String,
        mode: u32,
    },
    File {
        path: String,
        mode: u32,
        data: Vec<u8>,
    },
    CharDev {
        path: String,
        mode: u32,
        major: u32,
        minor: u32,
    },
}

fn push_header(out: &mut Vec<u8>, ino: u32, mode: u32, size: usize, rdev: (u32, u32), name: &str) {
    let fields = [
        ino,
        mode,
        0, // uid
        0, // gid
        if mode & 0o170000 == 0o040000 { 2 } else { 1 },
        0, // mtime: fixed, so the archive is reproducible
        size as u32,
        0,
        0,
        rdev.0,
        rdev.1,
        name.len() as u32 + 1,
        0, // check (only for the crc format)
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// Serialize entries (paths relative, without a leading `/`) as a newc archive with trailer.
pub fn write_newc(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let ino = i as u32 + 1;
        match e {
            Entry::Dir { path, mode } => {
                push_header(&mut out, ino, 0o040000 | mode, 0, (0, 0), path)
            }
            Entry::File { path, mode, data } => {
                push_header(&mut out, ino, 0o100000 | mode, data.len(), (0, 0), path);
                out.extend_from_slice(data);
                pad4(&mut out);
            }
            Entry::CharDev {
                path,
                mode,
                major,
                minor,
            } => push_header(&mut out, ino, 0o020000 | mode, 0, (*major, *minor), path),
        }
    }
    push_header(&mut out, 0, 0, 0, (0, 0), "TRAILER!!!");
    out
}

/// List the members of a newc archive as (path, mode, size): used by the tests and by
/// `lab` to double-check what it is about to boot.
pub fn list_newc(data: &[u8]) -> Result<Vec<(String, u32, usize)>> {
    let mut out = Vec::new();
    let mut off = 0usize;
    loop {
        let hdr = data.get(off..off + 110).context("truncated cpio header")?;
        if &hdr[..6] != b"070701" {
            bail!("bad cpio magic at offset {off}");
        }
        let field = |i: usize| -> Result<usize> {
            let s = std::str::from_utf8(&hdr[6 + i * 8..14 + i * 8])?;
            Ok(usize::from_str_radix(s, 16)?)
        };
        let (mode, size, namesize) = (field(1)?, field(6)?, field(11)?);
        let name_end = off + 110 + namesize;
        let name = data
            .get(off + 110..name_end - 1)
            .context("truncated cpio name")?;
        let name = String::from_utf8(name.to_vec())?;
        off = (name_end + 3) & !3;
        if name == "TRAILER!!!" {
            return Ok(out);
        }
        off = (off + size + 3) & !3;
        if off > data.len() {
            bail!("truncated cpio data of {name}");
        }
        out.push((name, mode as u32, size));
    }
}

/// A module name as the kernel knows it: file stem without `.ko[.xz|.zst|.gz]`, `-` as `_`.
pub fn module_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let stem = base.split(".ko").next().unwrap_or(base);
    stem.replace('-', "_")
}

/// Resolve `wanted` modules against a `modules.dep` text into the list of module files
/// (relative to the modules directory) to insmod, dependencies first. Modules listed in
/// `builtin` (a `modules.builtin` text) are skipped; a module found in neither is an error.
pub fn load_order(modules_dep: &str, builtin: &str, wanted: &[&str]) -> Result<Vec<String>> {
    let mut deps: HashMap<String, (String, Vec<String>)> = HashMap::new();
    for line in modules_dep.lines() {
        let Some((file, rest)) = line.split_once(':') else {
            continue;
        };
        let d = rest.split_whitespace().map(str::to_string).collect();
        deps.insert(module_name(file), (file.to_string(), d));
    }
    let builtin: BTreeSet<String> = builtin.lines().map(module_name).collect();
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    fn visit(
        file: &str,
        deps: &HashMap<String, (String, Vec<String>)>,
        seen: &mut BTreeSet<String>,
        order: &mut Vec<String>,
    ) {
        if !seen.insert(file.to_string()) {
            return;
        }
        if let Some((_, d)) = deps.get(&module_name(file)) {
            // modules.dep lists the full transitive closure; visiting keeps leaves first.
            for dep in d.iter().rev() {
                visit(dep, deps, seen, order);
            }
        }
        order.push(file.to_string());
    }
    for w in wanted {
        let name = module_name(w);
        if let Some((file, _)) = deps.get(&name) {
            visit(&file.clone(), &deps, &mut seen, &mut order);
        } else if !builtin.contains(&name) {
            bail!("module {w} is neither in modules.dep nor built in");
        }
    }
    Ok(order)
}

/// Read a module file, decompressing `.xz`/`.zst`/`.gz` with the host's tools (busybox
/// `insmod` in stage 1 wants plain ELF).
pub fn read_module(path: &Path) -> Result<Vec<u8>> {
    let p = path.to_string_lossy();
    let tool = if p.ends_with(".xz") {
        Some("xz")
    } else if p.ends_with(".zst") {
        Some("zstd")
    } else if p.ends_with(".gz") {
        Some("gzip")
    } else {
        None
    };
    match tool {
        None => std::fs::read(path).with_context(|| format!("reading {p}")),
        Some(tool) => {
            let out = std::process::Command::new(tool)
                .args(["-dc", "--"])
                .arg(path)
                .output()
                .with_context(|| format!("running {tool} -dc {p}"))?;
            if !out.status.success() {
                bail!(
                    "{tool} -dc {p} failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            Ok(out.stdout)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_roundtrip_lists_every_member() {
        let entries = vec![
            Entry::Dir {
                path: "bin".into(),
                mode: 0o755,
            },
            Entry::File {
                path: "bin/busybox".into(),
                mode: 0o755,
                data: vec![1, 2, 3, 4, 5],
            },
            Entry::CharDev {
                path: "dev/console".into(),
                mode: 0o600,
                major: 5,
                minor: 1,
            },
            Entry::File {
                path: "init".into(),
                mode: 0o755,
                data: b"#!/bin/sh\n".to_vec(),
            },
        ];
        let data = write_newc(&entries);
        assert_eq!(data.len() % 4, 0);
        let listed = list_newc(&data).unwrap();
        assert_eq!(
            listed,
            vec![
                ("bin".to_string(), 0o040755, 0),
                ("bin/busybox".to_string(), 0o100755, 5),
                ("dev/console".to_string(), 0o020600, 0),
                ("init".to_string(), 0o100755, 10),
            ]
        );
    }

    #[test]
    fn newc_header_matches_cpio_tool_layout() {
        let data = write_newc(&[Entry::File {
            path: "a".into(),
            mode: 0o644,
            data: b"xy".to_vec(),
        }]);
        // 110-byte header + "a\0" padded to 112, then data padded to 116.
        assert_eq!(&data[..6], b"070701");
        assert_eq!(&data[6..14], b"00000001");
        assert_eq!(&data[14..22], b"000081A4");
        assert_eq!(&data[112..114], b"xy");
        assert_eq!(&data[116..122], b"070701");
    }

    #[test]
    fn list_rejects_garbage() {
        assert!(list_newc(b"not a cpio archive at all, long enough? no").is_err());
    }

    #[test]
    fn module_names_are_normalized() {
        assert_eq!(
            module_name("kernel/net/9p/9pnet_virtio.ko.xz"),
            "9pnet_virtio"
        );
        assert_eq!(module_name("crc32-pclmul"), "crc32_pclmul");
        assert_eq!(module_name("kernel/fs/9p/9p.ko"), "9p");
    }

    #[test]
    fn load_order_puts_dependencies_first_and_skips_builtins() {
        let dep = "kernel/fs/9p/9p.ko.xz: kernel/net/9p/9pnet.ko.xz kernel/fs/netfs/netfs.ko.xz\n\
                   kernel/net/9p/9pnet_virtio.ko.xz: kernel/net/9p/9pnet.ko.xz kernel/fs/netfs/netfs.ko.xz\n\
                   kernel/net/9p/9pnet.ko.xz: kernel/fs/netfs/netfs.ko.xz\n\
                   kernel/fs/netfs/netfs.ko.xz:\n";
        let builtin = "kernel/drivers/virtio/virtio_pci.ko\n";
        let order = load_order(dep, builtin, &["virtio_pci", "9pnet_virtio", "9p"]).unwrap();
        assert_eq!(
            order,
            vec![
                "kernel/fs/netfs/netfs.ko.xz",
                "kernel/net/9p/9pnet.ko.xz",
                "kernel/net/9p/9pnet_virtio.ko.xz",
                "kernel/fs/9p/9p.ko.xz",
            ]
        );
        assert!(load_order(dep, builtin, &["nosuch"]).is_err());
    }
}
