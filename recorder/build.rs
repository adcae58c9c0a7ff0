// SPDX-License-Identifier: GPL-2.0
//! Compiles recorder-ebpf/*.bpf.c with clang (-target bpf) into OUT_DIR; the
//! loader embeds the object with `include_bytes_aligned!`. There is no
//! bpf-linker and no Rust BPF target here: the kernel half is C.
//!
//! The objects are built for the architecture the recorder is built for
//! (`CARGO_CFG_TARGET_ARCH`): libbpf's `bpf_tracing.h` reads kprobe arguments
//! from that architecture's `pt_regs`, so an x86 object would read garbage on
//! arm64 or s390x (where SMC-D is native).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    let src_dir = root.join("recorder-ebpf");
    let inc = root.join("format-spec/include");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".to_string());

    for f in [
        "smc_record.bpf.c",
        "smc_record.h",
        "monitor.bpf.c",
        "monitor.h",
        "kread.h",
        "offsets.h",
    ] {
        println!("cargo:rerun-if-changed={}", src_dir.join(f).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        inc.join("smctrace_event.h").display()
    );
    println!("cargo:rerun-if-env-changed=CLANG");

    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap();
    let (target_arch, triple) = bpf_target(&arch);
    let asm_inc = asm_include_dir(triple);
    // smc_record.bpf.c: the recorder; monitor.bpf.c: `conns`' BPF monitor.
    for name in ["smc_record", "monitor"] {
        let obj = out.join(format!("{name}.bpf.o"));
        let status = Command::new(&clang)
            .args([
                "-O2",
                "-g",
                "-target",
                "bpf",
                &format!("-D__TARGET_ARCH_{target_arch}"),
                "-Wall",
                "-Wno-comment",
                "-Werror",
            ])
            .arg("-I")
            .arg(&inc)
            .arg("-I")
            .arg(&src_dir)
            .arg("-idirafter")
            .arg(&asm_inc)
            .arg("-c")
            .arg(src_dir.join(format!("{name}.bpf.c")))
            .arg("-o")
            .arg(&obj)
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => panic!(
                "clang failed ({s}) compiling recorder-ebpf/{name}.bpf.c for {arch} \
                 (__TARGET_ARCH_{target_arch}, <asm/*.h> from {}); see the errors above",
                asm_inc.display()
            ),
            Err(e) => panic!(
                "cannot run `{clang}` ({e}): smc-record needs clang (>= 14) and libbpf headers \
                 (Debian: apt-get install clang libbpf-dev) to build its BPF programs; set CLANG=/path/to/clang if it is elsewhere"
            ),
        }
    }
}

/// libbpf's `__TARGET_ARCH_*` name and the GNU triple of a Rust target arch.
fn bpf_target(arch: &str) -> (&'static str, &'static str) {
    match arch {
        "x86_64" => ("x86", "x86_64-linux-gnu"),
        "aarch64" => ("arm64", "aarch64-linux-gnu"),
        "s390x" => ("s390", "s390x-linux-gnu"),
        other => panic!(
            "smc-record's BPF programs are built for x86_64, aarch64 and s390x, not {other}: \
             add {other}'s __TARGET_ARCH_ value (see libbpf's bpf_tracing.h) and GNU triple \
             to bpf_target() in recorder/build.rs"
        ),
    }
}

/// Where the target's userspace `<asm/*.h>` (its `pt_regs`, for
/// `bpf_tracing.h`) live: the multiarch directory of a native or multiarch
/// install (linux-libc-dev), else the Debian cross package's
/// (linux-libc-dev-<arch>-cross). clang -target bpf searches neither.
fn asm_include_dir(triple: &str) -> PathBuf {
    let candidates = [
        PathBuf::from(format!("/usr/include/{triple}")),
        PathBuf::from(format!("/usr/{triple}/include")),
    ];
    candidates
        .iter()
        .find(|c| c.join("asm/ptrace.h").exists())
        .unwrap_or(&candidates[0])
        .clone()
}
