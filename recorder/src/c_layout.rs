//! Test helper: checks Rust mirrors of C declarations in `recorder-ebpf/*.h`
//! against the C compiler's view. A small C program that includes the header
//! and prints the value of each given expression (an `offsetof`, a `sizeof`,
//! a `#define`) is compiled with the system C compiler and run, the pattern of
//! `format-spec/tests/c_layout.rs` for the event records.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

fn ebpf_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../recorder-ebpf")
}

/// The text of `recorder-ebpf/<header>` without its comments.
pub fn header_source(header: &str) -> String {
    let src = std::fs::read_to_string(ebpf_dir().join(header)).unwrap();
    let mut out = String::new();
    let mut rest = src.as_str();
    while let Some(i) = rest.find("/*") {
        out.push_str(&rest[..i]);
        let j = rest[i + 2..].find("*/").expect("unterminated comment");
        rest = &rest[i + 2 + j + 2..];
    }
    out.push_str(rest);
    out
}

/// Member names of `struct <name>` in `src`, in declaration order.
pub fn struct_fields(src: &str, name: &str) -> Vec<String> {
    let open = format!("struct {name} {{");
    let start = src.find(&open).unwrap_or_else(|| panic!("no {open}")) + open.len();
    let end = start + src[start..].find("};").unwrap();
    src[start..end]
        .split(';')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            let last = d.split_whitespace().last().unwrap();
            last.split('[').next().unwrap().to_string()
        })
        .collect()
}

/// Names of the `#define <prefix>...` with a value in `src`.
pub fn defines(src: &str, prefix: &str) -> Vec<String> {
    src.lines()
        .filter_map(|l| l.trim().strip_prefix("#define "))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let name = it.next()?;
            it.next()?;
            name.starts_with(prefix).then(|| name.to_string())
        })
        .collect()
}

/// Compiles `#include "<header>"` plus a `printf` of each `(label, C
/// expression)` and returns label -> value.
pub fn c_values(header: &str, exprs: &[(String, String)]) -> BTreeMap<String, i64> {
    let mut c = format!(
        "#include <stdio.h>\n#include <stddef.h>\n#include \"{header}\"\nint main(void) {{\n"
    );
    for (label, expr) in exprs {
        c.push_str(&format!(
            "  printf(\"{label} %lld\\n\", (long long)({expr}));\n"
        ));
    }
    c.push_str("  return 0;\n}\n");

    let dir = std::env::temp_dir().join(format!(
        "smc-record-c-layout-{}-{}",
        std::process::id(),
        header.replace('.', "_")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("layout.c");
    let bin = dir.join("layout");
    std::fs::write(&src, c).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args(["-std=gnu11", "-Wall", "-Werror", "-Wno-comment", "-o"])
        .arg(&bin)
        .arg("-I")
        .arg(ebpf_dir())
        .arg(&src)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}`: {e}"));
    assert!(
        out.status.success(),
        "C compile failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&bin).output().unwrap();
    assert!(run.status.success());
    let _ = std::fs::remove_dir_all(&dir);
    String::from_utf8(run.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

/// Size of the field a projection closure points at (`|s: &S| &s.f`).
pub fn field_size<T, F>(_: fn(&T) -> &F) -> usize {
    std::mem::size_of::<F>()
}
