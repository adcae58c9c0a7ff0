//! Proves that `src/event.rs` mirrors `include/smctrace_event.h`: the header
//! is parsed for every struct, field, enum value and `#define ST_*`, compiled
//! with the system C compiler into a program that prints their offsets, sizes
//! and values, and compared with the Rust side (`offset_of!`). A field added,
//! removed, renamed or moved on one side only fails this test.

use std::collections::BTreeMap;
use std::mem::{align_of, offset_of, size_of};
use std::path::PathBuf;
use std::process::Command;

use smctrace_format::event::{self, *};

fn header_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("include/smctrace_event.h")
}

fn strip_comments(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("/*") {
        out.push_str(&rest[..i]);
        match rest[i + 2..].find("*/") {
            Some(j) => rest = &rest[i + 2 + j + 2..],
            None => panic!("unterminated comment in header"),
        }
    }
    out.push_str(rest);
    out
}

/// (struct name, field names) in declaration order.
fn c_structs(src: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(i) = rest.find("struct st_") {
        let after = &rest[i + "struct ".len()..];
        let name_end = after
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap();
        let name = &after[..name_end];
        let tail = after[name_end..].trim_start();
        if !tail.starts_with('{') {
            rest = &after[name_end..];
            continue;
        }
        let body_start = after.find('{').unwrap() + 1;
        let body_end = after.find("};").expect("struct without end");
        let body = &after[body_start..body_end];
        let fields = body
            .split(';')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|d| {
                let last = d.split_whitespace().last().unwrap();
                last.split('[').next().unwrap().to_string()
            })
            .collect();
        out.push((name.to_string(), fields));
        rest = &after[body_end..];
    }
    out
}

fn c_enum_names(src: &str) -> Vec<String> {
    let start = src.find("enum st_kind {").expect("enum st_kind") + "enum st_kind {".len();
    let end = start + src[start..].find("};").unwrap();
    src[start..end]
        .split(',')
        .map(|e| e.split('=').next().unwrap().trim().to_string())
        .filter(|n| !n.is_empty())
        .collect()
}

fn c_defines(src: &str) -> Vec<String> {
    src.lines()
        .filter_map(|l| l.trim().strip_prefix("#define "))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let name = it.next()?;
            it.next()?; // has a value
            name.starts_with("ST_").then(|| name.to_string())
        })
        .collect()
}

/// Runs the generated C program; returns its lines "kind name a b".
fn run_c(
    structs: &[(String, Vec<String>)],
    enums: &[String],
    defines: &[String],
) -> BTreeMap<String, (i64, i64)> {
    let mut c = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include \"smctrace_event.h\"\nint main(void) {\n",
    );
    for (s, fields) in structs {
        for f in fields {
            c.push_str(&format!(
                "  printf(\"{s}.{f} %zu %zu\\n\", offsetof(struct {s}, {f}), sizeof(((struct {s} *)0)->{f}));\n"
            ));
        }
        c.push_str(&format!(
            "  printf(\"{s}.#size %zu %zu\\n\", sizeof(struct {s}), _Alignof(struct {s}));\n"
        ));
    }
    for e in enums {
        c.push_str(&format!("  printf(\"{e} %lld 0\\n\", (long long){e});\n"));
    }
    for d in defines {
        c.push_str(&format!("  printf(\"{d} %lld 0\\n\", (long long)({d}));\n"));
    }
    c.push_str("  return 0;\n}\n");

    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("layout.c");
    let bin = dir.path().join("layout");
    std::fs::write(&src, c).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let include = header_path().parent().unwrap().to_path_buf();
    let out = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Werror", "-Wno-comment", "-o"])
        .arg(&bin)
        .arg("-I")
        .arg(&include)
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
    String::from_utf8(run.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Vec<&str> = l.split_whitespace().collect();
            (
                v[0].to_string(),
                (v[1].parse().unwrap(), v[2].parse().unwrap()),
            )
        })
        .collect()
}

fn field_size<T, F>(_: fn(&T) -> &F) -> usize {
    size_of::<F>()
}

macro_rules! mirror {
    ($out:ident, $cname:literal, $ty:ty { $($cf:literal => $rf:ident),* $(,)? }) => {{
        $( $out.insert(format!("{}.{}", $cname, $cf),
                       (offset_of!($ty, $rf) as i64, field_size(|s: &$ty| &s.$rf) as i64)); )*
        $out.insert(format!("{}.#size", $cname), (size_of::<$ty>() as i64, align_of::<$ty>() as i64));
    }};
}

fn rust_side() -> BTreeMap<String, (i64, i64)> {
    let mut m = BTreeMap::new();
    mirror!(m, "st_hdr", Hdr { "kind" => kind, "len" => len, "cpu" => cpu, "flags" => flags, "ts_ns" => ts_ns, "pid" => pid, "tid" => tid });
    mirror!(m, "st_curs", Curs { "count" => count, "wrap" => wrap, "_pad" => _pad });
    mirror!(m, "st_endpoint", Endpoint { "addr" => addr, "port" => port, "_pad" => _pad });
    mirror!(m, "st_connect", Connect { "hdr" => hdr, "sock" => sock, "netns" => netns, "dst" => dst, "family" => family, "_pad" => _pad, "comm" => comm });
    mirror!(m, "st_conn_info", ConnInfo {
        "hdr" => hdr, "sock" => sock, "netns" => netns, "local" => local, "remote" => remote,
        "family" => family, "role" => role, "mode" => mode, "rc" => rc,
        "fallback_rsn" => fallback_rsn, "peer_diagnosis" => peer_diagnosis,
        "local_token" => local_token, "peer_token" => peer_token,
        "peer_dmb_token" => peer_dmb_token, "local_dmb_token" => local_dmb_token,
        "sndbuf_len" => sndbuf_len, "rmb_len" => rmb_len, "peer_rmbe_size" => peer_rmbe_size,
        "qpn" => qpn, "peer_qpn" => peer_qpn, "link_id" => link_id, "smc_version" => smc_version,
        "_pad" => _pad, "lgr" => lgr, "ibname" => ibname, "comm" => comm,
    });
    mirror!(m, "st_clc", Clc {
        "hdr" => hdr, "sock" => sock, "dir" => dir, "type" => clc_type, "length" => length,
        "version" => version, "path" => path, "_pad" => _pad, "rc" => rc, "decline_diag" => decline_diag,
    });
    mirror!(m, "st_fallback", Fallback { "hdr" => hdr, "sock" => sock, "reason" => reason, "peer_diagnosis" => peer_diagnosis });
    mirror!(m, "st_close", Close { "hdr" => hdr, "sock" => sock, "state" => state, "killed" => killed, "_pad" => _pad });
    mirror!(m, "st_link_down", LinkDown { "hdr" => hdr, "lgr" => lgr, "link_id" => link_id, "state" => state, "_pad" => _pad, "ibname" => ibname });
    mirror!(m, "st_sendmsg", SendMsg { "hdr" => hdr, "sock" => sock, "enter_ns" => enter_ns, "len" => len, "ret" => ret });
    mirror!(m, "st_tx_copy", TxCopy {
        "hdr" => hdr, "sock" => sock, "enter_ns" => enter_ns, "prep_before" => prep_before, "prep_after" => prep_after,
        "sndbuf_len" => sndbuf_len, "sndbuf_space" => sndbuf_space, "ret" => ret,
    });
    mirror!(m, "st_tx_start", TxStart { "hdr" => hdr, "sock" => sock, "path" => path, "_pad" => _pad });
    mirror!(m, "st_rdma_write", RdmaWrite {
        "hdr" => hdr, "sock" => sock, "enter_ns" => enter_ns, "prod_before" => prod_before, "prod_after" => prod_after,
        "sent_after" => sent_after, "peer_rmbe_size" => peer_rmbe_size, "rc" => rc, "ism_len" => ism_len, "ism_offset" => ism_offset,
    });
    mirror!(m, "st_cdc", Cdc {
        "hdr" => hdr, "sock" => sock, "seqno" => seqno, "prod_flags" => prod_flags, "conn_state_flags" => conn_state_flags,
        "token" => token, "prod" => prod, "cons" => cons, "rc" => rc, "cdc_flags" => cdc_flags, "_pad" => _pad,
    });
    mirror!(m, "st_cdc_tx_done", CdcTxDone { "hdr" => hdr, "sock" => sock, "seqno" => seqno, "_pad" => _pad, "wc_status" => wc_status, "prod" => prod });
    mirror!(m, "st_rx_action", RxAction {
        "hdr" => hdr, "sock" => sock, "enter_ns" => enter_ns, "prod_before" => prod_before, "prod_after" => prod_after,
        "peer_cons" => peer_cons, "seqno" => seqno, "prod_flags" => prod_flags, "conn_state_flags" => conn_state_flags,
        "bytes_to_rcv" => bytes_to_rcv, "rmb_len" => rmb_len, "_pad" => _pad,
    });
    mirror!(m, "st_rx_wake", RxWake { "hdr" => hdr, "sock" => sock });
    mirror!(m, "st_recvmsg", RecvMsg {
        "hdr" => hdr, "sock" => sock, "enter_ns" => enter_ns, "cons_before" => cons_before, "cons_after" => cons_after,
        "len" => len, "ret" => ret, "flags" => flags, "rmb_len" => rmb_len,
    });
    mirror!(m, "st_payload", Payload { "hdr" => hdr, "sock" => sock, "prep_before" => prep_before, "captured" => captured, "msg_len" => msg_len });

    for k in EventKind::ALL {
        m.insert(
            format!("ST_EV_{}", k.name().to_uppercase()),
            (k as u16 as i64, 0),
        );
    }
    let defines: [(&str, i64); 17] = [
        ("ST_EVENT_ABI", EVENT_ABI as i64),
        ("ST_COMM_LEN", COMM_LEN as i64),
        ("ST_IBNAME_LEN", IBNAME_LEN as i64),
        ("ST_PAYLOAD_MAX", PAYLOAD_MAX as i64),
        ("ST_F_TRUNCATED", F_TRUNCATED as i64),
        ("ST_ROLE_CLIENT", ROLE_CLIENT as i64),
        ("ST_ROLE_SERVER", ROLE_SERVER as i64),
        ("ST_MODE_UNKNOWN", MODE_UNKNOWN as i64),
        ("ST_MODE_SMCR", MODE_SMCR as i64),
        ("ST_MODE_SMCD", MODE_SMCD as i64),
        ("ST_MODE_FALLBACK", MODE_FALLBACK as i64),
        ("ST_DIR_TX", DIR_TX as i64),
        ("ST_DIR_RX", DIR_RX as i64),
        ("ST_TX_PATH_SENDMSG", TX_PATH_SENDMSG as i64),
        ("ST_TX_PATH_PENDING", TX_PATH_PENDING as i64),
        ("ST_TX_PATH_WORK", TX_PATH_WORK as i64),
        ("ST_CDC_F_SMCD", CDC_F_SMCD as i64),
    ];
    for (n, v) in defines {
        m.insert(n.to_string(), (v, 0));
    }
    m
}

#[test]
fn c_header_and_rust_mirror_agree() {
    let src = std::fs::read_to_string(header_path()).unwrap();
    let clean = strip_comments(&src);
    let structs = c_structs(&clean);
    assert!(
        structs.len() >= 19,
        "parsed only {} structs from the header",
        structs.len()
    );
    let enums = c_enum_names(&clean);
    let defines = c_defines(&clean);
    let c = run_c(&structs, &enums, &defines);
    let r = rust_side();

    let mut problems = Vec::new();
    for (k, cv) in &c {
        match r.get(k) {
            None => problems.push(format!(
                "{k}: in the C header (offset/value {}, size {}) but not mirrored in Rust",
                cv.0, cv.1
            )),
            Some(rv) if rv != cv => problems.push(format!(
                "{k}: C offset/value {} size {} vs Rust {} {}",
                cv.0, cv.1, rv.0, rv.1
            )),
            _ => {}
        }
    }
    for k in r.keys() {
        if !c.contains_key(k) {
            problems.push(format!("{k}: in the Rust mirror but not in the C header"));
        }
    }
    assert!(
        problems.is_empty(),
        "layout drift between smctrace_event.h and event.rs:\n{}",
        problems.join("\n")
    );
    // Sanity: the comparison covered every field.
    assert!(c.len() > 150, "only {} items compared", c.len());
}

#[test]
fn records_are_multiples_of_8_and_fixed_len_matches() {
    for k in EventKind::ALL {
        assert_eq!(k.fixed_len() % 8, 0, "{}", k.name());
        assert!(k.fixed_len() >= event::HDR_LEN);
    }
    assert_eq!(size_of::<Hdr>(), 24);
}

#[test]
fn parser_sees_a_drifted_header() {
    // The test must be able to fail: a header with a moved field is caught.
    let src = std::fs::read_to_string(header_path()).unwrap();
    let drifted = src.replacen("__u16 kind;", "__u32 kind;", 1);
    let clean = strip_comments(&drifted);
    let structs = c_structs(&clean);
    let dir = tempfile::tempdir().unwrap();
    // Compile the drifted copy by pointing the program at it.
    let p = dir.path().join("smctrace_event.h");
    std::fs::write(&p, &drifted).unwrap();
    let mut c = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include \"smctrace_event.h\"\nint main(void){\n",
    );
    for (s, fields) in &structs {
        for f in fields {
            c.push_str(&format!("printf(\"{s}.{f} %zu %zu\\n\", offsetof(struct {s}, {f}), sizeof(((struct {s} *)0)->{f}));\n"));
        }
    }
    c.push_str("return 0;}\n");
    std::fs::write(dir.path().join("d.c"), c).unwrap();
    let bin = dir.path().join("d");
    let ok = Command::new("cc")
        .arg("-I")
        .arg(dir.path())
        .arg("-o")
        .arg(&bin)
        .arg(dir.path().join("d.c"))
        .status()
        .unwrap();
    assert!(ok.success());
    let out = String::from_utf8(Command::new(&bin).output().unwrap().stdout).unwrap();
    let r = rust_side();
    let differs = out.lines().any(|l| {
        let v: Vec<&str> = l.split_whitespace().collect();
        r.get(v[0]) != Some(&(v[1].parse().unwrap(), v[2].parse().unwrap()))
    });
    assert!(differs, "a widened st_hdr.kind went unnoticed");
}

#[test]
fn spec_lists_every_record_field_with_its_offset_and_size() {
    let spec =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("SPEC.md")).unwrap();
    let src = std::fs::read_to_string(header_path()).unwrap();
    let r = rust_side();
    let mut missing = Vec::new();
    for (s, fields) in c_structs(&strip_comments(&src)) {
        let size = r[&format!("{s}.#size")].0;
        let title = format!("#### `struct {s}` — {size} bytes");
        let Some(at) = spec.find(&title) else {
            missing.push(title);
            continue;
        };
        // The section runs to the next heading.
        let section = &spec[at + title.len()..];
        let section = &section[..section.find("\n#").unwrap_or(section.len())];
        for f in fields {
            let (off, sz) = r[&format!("{s}.{f}")];
            let row = format!("| {off} | {sz} | `{f}` |");
            if !section.contains(&row) {
                missing.push(format!("{s}: {row}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "SPEC.md section 12.1 is out of date; missing:\n{}",
        missing.join("\n")
    );
}
