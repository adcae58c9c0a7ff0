// SPDX-License-Identifier: GPL-2.0
//! Compiles recorder-ebpf/*.bpf.c with clang (-target bpf) into OUT_DIR; the
//! loader embeds the object with `include_bytes_aligned!`. There is no
//! bpf-linker and no Rust BPF target here: the kernel half is C.

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
    ] {
        println!("cargo:rerun-if-changed={}", src_dir.join(f).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        inc.join("smctrace_event.h").display()
    );
    println!("cargo:rerun-if-env-changed=CLANG");

    // Userspace <asm/*.h> (struct pt_regs for bpf_tracing.h) live under the
    // multiarch include directory, which clang -target bpf does not search.
    let multiarch = "/usr/include/x86_64-linux-gnu";
    // smc_record.bpf.c: the recorder; monitor.bpf.c: `conns`' BPF monitor.
    for name in ["smc_record", "monitor"] {
        let obj = out.join(format!("{name}.bpf.o"));
        let status = Command::new(&clang)
            .args([
                "-O2",
                "-g",
                "-target",
                "bpf",
                "-D__TARGET_ARCH_x86",
                "-Wall",
                "-Wno-comment",
                "-Werror",
            ])
            .arg("-I")
            .arg(&inc)
            .arg("-I")
            .arg(&src_dir)
            .arg("-idirafter")
            .arg(multiarch)
            .arg("-c")
            .arg(src_dir.join(format!("{name}.bpf.c")))
            .arg("-o")
            .arg(&obj)
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => panic!("clang failed ({s}) compiling recorder-ebpf/{name}.bpf.c; see the errors above"),
            Err(e) => panic!(
                "cannot run `{clang}` ({e}): smc-record needs clang (>= 14) and libbpf headers \
                 (Debian: apt-get install clang libbpf-dev) to build its BPF programs; set CLANG=/path/to/clang if it is elsewhere"
            ),
        }
    }
}
