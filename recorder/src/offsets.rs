//! Kernel struct member offsets for the BPF programs, resolved from BTF.
//!
//! aya 0.14 cannot apply CO-RE relocations against types that exist only in a
//! module's split BTF (every `smc_*` type lives in `/sys/kernel/btf/smc`), so
//! the BPF programs read fields at byte offsets held in `off_*` read-only
//! globals. This module computes those offsets on the running kernel by
//! walking member paths such as `smc_sock.conn.local_tx_ctrl.prod` through
//! vmlinux BTF plus the smc module's split BTF, descending through anonymous
//! structs and unions (e.g. 6.11+ wraps `smc_sock.sk` in a union). A path
//! that does not resolve is an error for that one global; the probes that
//! need it are then not attached (see `probes.rs`), the rest still record.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use btf_rs::{Btf, Type};

/// Where one member sits inside its outermost struct.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offset {
    /// Byte offset of the member (of the byte holding it, for a bitfield).
    pub byte: u32,
    /// Bit position inside that byte (bitfields only, else 0).
    pub bit: u32,
    /// Size in bits when the member is a bitfield.
    pub bitfield_bits: Option<u32>,
}

/// One global of the BPF program and the member path it must hold.
pub struct FieldSpec {
    pub global: &'static str,
    /// `struct_name.member.member...`
    pub path: &'static str,
    /// For a bitfield global: name of the companion `bit_*` global.
    pub bit_global: Option<&'static str>,
}

const fn f(global: &'static str, path: &'static str) -> FieldSpec {
    FieldSpec {
        global,
        path,
        bit_global: None,
    }
}

/// Every member the recorder's BPF program reads: the `off_*` globals of
/// `recorder-ebpf/smc_record.bpf.c` and of `recorder-ebpf/offsets.h`, which it
/// shares with the `conns` monitor (tests in `probes.rs` and `conns.rs` check
/// the names against the C sources).
pub const FIELDS: &[FieldSpec] = &[
    f("off_socket_sk", "socket.sk"),
    f("off_skc_family", "sock_common.skc_family"),
    f("off_skc_state", "sock_common.skc_state"),
    f("off_skc_num", "sock_common.skc_num"),
    f("off_skc_dport", "sock_common.skc_dport"),
    f("off_skc_rcv_saddr", "sock_common.skc_rcv_saddr"),
    f("off_skc_daddr", "sock_common.skc_daddr"),
    f("off_skc_v6_rcv_saddr", "sock_common.skc_v6_rcv_saddr"),
    f("off_skc_v6_daddr", "sock_common.skc_v6_daddr"),
    f("off_skc_net", "sock_common.skc_net"),
    f("off_net_ns_inum", "net.ns.inum"),
    f("off_ib_qp_qp_num", "ib_qp.qp_num"),
    f("off_ib_wc_status", "ib_wc.status"),
    f("off_smc_clcsock", "smc_sock.clcsock"),
    f("off_smc_conn", "smc_sock.conn"),
    f("off_smc_use_fallback", "smc_sock.use_fallback"),
    f("off_smc_fallback_rsn", "smc_sock.fallback_rsn"),
    f("off_smc_peer_diagnosis", "smc_sock.peer_diagnosis"),
    f("off_smc_listen_work", "smc_sock.smc_listen_work"),
    f("off_conn_lgr", "smc_connection.lgr"),
    f("off_conn_lnk", "smc_connection.lnk"),
    f(
        "off_conn_alert_token_local",
        "smc_connection.alert_token_local",
    ),
    f("off_conn_peer_token", "smc_connection.peer_token"),
    f("off_conn_rmb_desc", "smc_connection.rmb_desc"),
    f("off_conn_sndbuf_desc", "smc_connection.sndbuf_desc"),
    f("off_conn_peer_rmbe_size", "smc_connection.peer_rmbe_size"),
    f("off_conn_tx_curs_prep", "smc_connection.tx_curs_prep"),
    f("off_conn_tx_curs_sent", "smc_connection.tx_curs_sent"),
    f("off_conn_sndbuf_space", "smc_connection.sndbuf_space"),
    f("off_conn_bytes_to_rcv", "smc_connection.bytes_to_rcv"),
    FieldSpec {
        global: "off_conn_killed",
        path: "smc_connection.killed",
        bit_global: Some("bit_conn_killed"),
    },
    f("off_conn_tx_work", "smc_connection.tx_work"),
    f("off_conn_rx_tsklet", "smc_connection.rx_tsklet"),
    f("off_conn_tx_token", "smc_connection.local_tx_ctrl.token"),
    f("off_conn_tx_prod", "smc_connection.local_tx_ctrl.prod"),
    f("off_conn_tx_cons", "smc_connection.local_tx_ctrl.cons"),
    f("off_conn_tx_seqno", "smc_connection.local_tx_ctrl.seqno"),
    f(
        "off_conn_tx_prod_flags",
        "smc_connection.local_tx_ctrl.prod_flags",
    ),
    f(
        "off_conn_tx_cs_flags",
        "smc_connection.local_tx_ctrl.conn_state_flags",
    ),
    f("off_conn_rx_prod", "smc_connection.local_rx_ctrl.prod"),
    f("off_conn_rx_cons", "smc_connection.local_rx_ctrl.cons"),
    f("off_conn_rx_seqno", "smc_connection.local_rx_ctrl.seqno"),
    f(
        "off_conn_rx_prod_flags",
        "smc_connection.local_rx_ctrl.prod_flags",
    ),
    f(
        "off_conn_rx_cs_flags",
        "smc_connection.local_rx_ctrl.conn_state_flags",
    ),
    f("off_buf_cpu_addr", "smc_buf_desc.cpu_addr"),
    f("off_buf_len", "smc_buf_desc.len"),
    f("off_buf_token", "smc_buf_desc.token"),
    f("off_lnk_roce_qp", "smc_link.roce_qp"),
    f("off_lnk_peer_qpn", "smc_link.peer_qpn"),
    f("off_lnk_link_id", "smc_link.link_id"),
    f("off_lnk_ibname", "smc_link.ibname"),
    f("off_lnk_lgr", "smc_link.lgr"),
    f("off_lnk_state", "smc_link.state"),
    f("off_lgr_is_smcd", "smc_link_group.is_smcd"),
    f("off_lgr_smc_version", "smc_link_group.smc_version"),
    f("off_pend_conn", "smc_cdc_tx_pend.conn"),
    f("off_pend_p_cursor", "smc_cdc_tx_pend.p_cursor"),
    f("off_pend_ctrl_seq", "smc_cdc_tx_pend.ctrl_seq"),
];

/// Members only the `conns` BPF monitor (`recorder-ebpf/monitor.bpf.c`) reads;
/// the ones it shares with the recorder are in [`FIELDS`].
pub const MONITOR_ONLY_FIELDS: &[FieldSpec] = &[
    f("off_conn_peer_rmbe_space", "smc_connection.peer_rmbe_space"),
    f("off_conn_tx_cdc_seq", "smc_connection.tx_cdc_seq"),
];

/// The entry of [`FIELDS`] or [`MONITOR_ONLY_FIELDS`] for the global `global`.
pub fn field(global: &str) -> Option<&'static FieldSpec> {
    FIELDS
        .iter()
        .chain(MONITOR_ONLY_FIELDS)
        .find(|f| f.global == global)
}

/// vmlinux BTF plus the smc module's split BTF.
pub struct KernelBtf {
    btf: Btf,
}

impl KernelBtf {
    /// The running kernel: `/sys/kernel/btf/vmlinux` + `/sys/kernel/btf/smc`.
    pub fn running() -> Result<KernelBtf> {
        Self::from_files(
            Path::new("/sys/kernel/btf/vmlinux"),
            Path::new("/sys/kernel/btf/smc"),
        )
    }

    /// Raw BTF blobs (the `.BTF` section of vmlinux and of smc.ko).
    pub fn from_files(vmlinux: &Path, smc: &Path) -> Result<KernelBtf> {
        let base = Btf::from_file(vmlinux)
            .map_err(|e| anyhow!("{e}"))
            .with_context(|| format!("reading kernel BTF {}", vmlinux.display()))?;
        let btf = Btf::from_split_file(smc, &base)
            .map_err(|e| anyhow!("{e}"))
            .with_context(|| format!("reading smc module BTF {}", smc.display()))?;
        Ok(KernelBtf { btf })
    }

    /// Resolve `struct.member[.member...]` to its offset in the outer struct.
    pub fn resolve(&self, path: &str) -> Result<Offset> {
        let mut parts = path.split('.');
        let root = parts
            .next()
            .filter(|s| !s.is_empty())
            .context("empty member path")?;
        let mut ty = self.named_struct(root)?;
        let mut bits: u64 = 0;
        let mut last_bitfield = None;
        let mut seen_member = false;
        for name in parts {
            let (rel_bits, bitfield, member_ty) = self
                .find_member(&ty, name, 0)?
                .with_context(|| format!("no member `{name}` in `{path}`"))?;
            bits += rel_bits as u64;
            last_bitfield = bitfield;
            ty = self.strip(member_ty)?;
            seen_member = true;
        }
        if !seen_member {
            bail!("`{path}` names no member");
        }
        let (byte, bit) = match last_bitfield {
            Some(_) => ((bits / 8) as u32, (bits % 8) as u32),
            None => {
                if !bits.is_multiple_of(8) {
                    bail!("`{path}` is not byte aligned");
                }
                ((bits / 8) as u32, 0)
            }
        };
        Ok(Offset {
            byte,
            bit,
            bitfield_bits: last_bitfield,
        })
    }

    /// Resolve every entry of [`FIELDS`]: global name -> value, or why not.
    pub fn resolve_all(&self) -> BTreeMap<&'static str, Result<u32, String>> {
        let mut out = BTreeMap::new();
        for spec in FIELDS {
            match self.resolve(spec.path) {
                Ok(off) => {
                    out.insert(spec.global, Ok(off.byte));
                    if let Some(bg) = spec.bit_global {
                        out.insert(bg, Ok(off.bit));
                    }
                }
                Err(e) => {
                    let msg = format!("{}: {e:#}", spec.path);
                    out.insert(spec.global, Err(msg.clone()));
                    if let Some(bg) = spec.bit_global {
                        out.insert(bg, Err(msg));
                    }
                }
            }
        }
        out
    }

    /// Whether a function exists in the BTF (module or vmlinux): the hook
    /// names of static functions are checked this way before attaching.
    /// Whether the kernel (or the smc module) defines tracepoint `name`
    /// (its `btf_trace_<name>` typedef, which raw_tp programs attach by).
    pub fn has_tracepoint(&self, name: &str) -> bool {
        self.btf
            .resolve_types_by_name(&format!("btf_trace_{name}"))
            .map(|v| v.iter().any(|t| matches!(t, Type::Typedef(_))))
            .unwrap_or(false)
    }

    /// BTF id of function `name` for an fentry/fexit attach, and whether it is
    /// in the smc module's split BTF (then `attach_btf_obj_fd` must be the
    /// module's BTF object) rather than vmlinux's. Split ids continue after
    /// vmlinux's, exactly as the kernel numbers them.
    pub fn func_btf_id(&self, name: &str) -> Option<(u32, bool)> {
        let is_func = |id: &u32| matches!(self.btf.resolve_type_by_id(*id), Ok(Type::Func(_)));
        if let Some(split) = self.btf.split() {
            if let Some(id) = split
                .resolve_ids_by_name(name)
                .ok()?
                .into_iter()
                .find(is_func)
            {
                return Some((id, true));
            }
        }
        self.btf
            .base()
            .resolve_ids_by_name(name)
            .ok()?
            .into_iter()
            .find(is_func)
            .map(|id| (id, false))
    }

    pub fn has_func(&self, name: &str) -> bool {
        self.btf
            .resolve_types_by_name(name)
            .map(|v| v.iter().any(|t| matches!(t, Type::Func(_))))
            .unwrap_or(false)
    }

    fn named_struct(&self, name: &str) -> Result<Type> {
        let types = self
            .btf
            .resolve_types_by_name(name)
            .map_err(|e| anyhow!("{e}"))
            .with_context(|| format!("type `{name}` not in BTF"))?;
        types
            .into_iter()
            .find(|t| matches!(t, Type::Struct(s) | Type::Union(s) if !s.members.is_empty()))
            .with_context(|| format!("no struct or union `{name}` in BTF"))
    }

    /// Follow typedefs and qualifiers to the underlying type.
    fn strip(&self, mut ty: Type) -> Result<Type> {
        for _ in 0..32 {
            match &ty {
                Type::Typedef(_)
                | Type::Volatile(_)
                | Type::Const(_)
                | Type::Restrict(_)
                | Type::TypeTag(_) => {
                    let bt = ty.as_btf_type().context("qualifier without type")?;
                    ty = self
                        .btf
                        .resolve_chained_type(bt)
                        .map_err(|e| anyhow!("{e}"))?;
                }
                _ => return Ok(ty),
            }
        }
        bail!("type chain too long")
    }

    /// Find `name` in a struct/union, looking inside anonymous members.
    /// Returns (bit offset relative to `ty`, bitfield size, member type).
    fn find_member(
        &self,
        ty: &Type,
        name: &str,
        depth: u32,
    ) -> Result<Option<(u32, Option<u32>, Type)>> {
        let s = match ty {
            Type::Struct(s) | Type::Union(s) => s,
            other => bail!("`{name}` looked up in a {} (not a struct)", other.name()),
        };
        if depth > 8 {
            bail!("anonymous nesting too deep looking for `{name}`");
        }
        for m in &s.members {
            let mname = self.btf.resolve_name(m).unwrap_or_default();
            let mty = self
                .btf
                .resolve_chained_type(m)
                .map_err(|e| anyhow!("{e}"))?;
            if mname == name {
                return Ok(Some((
                    m.bit_offset(),
                    m.bitfield_size().filter(|b| *b != 0),
                    mty,
                )));
            }
            if mname.is_empty() {
                let inner = self.strip(mty)?;
                if matches!(inner, Type::Struct(_) | Type::Union(_)) {
                    if let Some((off, bf, t)) = self.find_member(&inner, name, depth + 1)? {
                        return Ok(Some((m.bit_offset() + off, bf, t)));
                    }
                }
            }
        }
        Ok(None)
    }
}

/// Real BTF of Debian's kernels for the tests, found without network access.
#[cfg(test)]
pub mod test_btf {
    use super::KernelBtf;
    use std::path::{Path, PathBuf};

    /// `name` is "6.1", "6.12" or "7.3". Looks in `$SMCTRACE_BTF_DIR/<name>/{vmlinux,smc}.btf`
    /// (default /var/cache/smctrace-lab/btf, see docs/recorder.md), then in the lab's
    /// kernel cache (`cargo xtask lab fetch [--kernel 6.1]` fills it): the `.BTF`
    /// sections of its `vmlinux` and `smc.ko[.xz]` are extracted into the BTF dir.
    /// Returns None, printing why, when neither is there.
    pub fn kernel(name: &str) -> Option<KernelBtf> {
        let lab = std::env::var_os("SMCTRACE_LAB_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/cache/smctrace-lab"));
        let dir = std::env::var_os("SMCTRACE_BTF_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| lab.join("btf"))
            .join(name);
        let (v, s) = (dir.join("vmlinux.btf"), dir.join("smc.btf"));
        if !v.exists() || !s.exists() {
            if let Err(why) = from_lab_cache(&lab, name, &dir) {
                // `cargo xtask test` reruns these tests after the lab filled its cache,
                // where a missing kernel is a failure, not a skip.
                if std::env::var_os("SMCTRACE_BTF_REQUIRED").is_some() {
                    panic!("no BTF for kernel {name}: {why} (SMCTRACE_BTF_REQUIRED is set)");
                }
                eprintln!("SKIP: no BTF for Debian {name}: {why} (see docs/recorder.md)");
                return None;
            }
        }
        Some(KernelBtf::from_files(&v, &s).expect("BTF parses"))
    }

    fn from_lab_cache(lab: &Path, name: &str, out: &Path) -> Result<(), String> {
        // 7.3 is the lab's own build (`cargo xtask lab fetch --kernel 7.3`), named after
        // Debian's source package; the stock build, not one with the kernel series.
        let (prefix, suffix) = match name {
            "6.1" => ("linux-image-6.1.", ""),
            "7.3" => ("linux-source-7.3_", ""),
            _ => ("linux-image-6.12.", ""),
        };
        let stock = |n: &str| name != "7.3" || n.contains("_stock_");
        let kdir = std::fs::read_dir(lab)
            .map_err(|e| format!("{}: {e}", lab.display()))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix) && n.ends_with(suffix) && stock(n))
            })
            .filter(|p| p.join("kver").exists())
            .max()
            .ok_or_else(|| format!("no {prefix}* kernel in {}", lab.display()))?;
        let vmlinux = std::fs::read(kdir.join("vmlinux"))
            .map_err(|e| format!("{}/vmlinux: {e}", kdir.display()))?;
        let smc = find_smc_ko(&kdir.join("lib/modules"))
            .ok_or_else(|| format!("no smc.ko under {}", kdir.display()))?;
        let smc = if smc.extension().is_some_and(|e| e == "xz") {
            let o = std::process::Command::new("xz")
                .arg("-dc")
                .arg(&smc)
                .output()
                .map_err(|e| format!("xz: {e}"))?;
            if !o.status.success() {
                return Err(format!("xz -dc {} failed", smc.display()));
            }
            o.stdout
        } else {
            std::fs::read(&smc).map_err(|e| format!("{}: {e}", smc.display()))?
        };
        std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
        // Tests run in parallel and may extract the same kernel at once: each file is
        // written under a private name and renamed into place, so no test reads half a file.
        for (file, elf) in [("vmlinux.btf", &vmlinux), ("smc.btf", &smc)] {
            let tmp = out.join(format!(".{file}.{:?}", std::thread::current().id()));
            std::fs::write(&tmp, btf_section(elf)?).map_err(|e| e.to_string())?;
            std::fs::rename(&tmp, out.join(file)).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn find_smc_ko(dir: &Path) -> Option<PathBuf> {
        for e in std::fs::read_dir(dir).ok()?.filter_map(|e| e.ok()) {
            let p = e.path();
            if p.is_dir() {
                if let Some(f) = find_smc_ko(&p) {
                    return Some(f);
                }
            } else if matches!(
                p.file_name().and_then(|n| n.to_str()),
                Some("smc.ko" | "smc.ko.xz")
            ) {
                return Some(p);
            }
        }
        None
    }

    fn btf_section(elf: &[u8]) -> Result<Vec<u8>, String> {
        use object::{Object, ObjectSection};
        let f = object::File::parse(elf).map_err(|e| format!("not an ELF file: {e}"))?;
        let sec = f.section_by_name(".BTF").ok_or("no .BTF section")?;
        Ok(sec.data().map_err(|e| e.to_string())?.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel(name: &str) -> Option<KernelBtf> {
        test_btf::kernel(name)
    }

    /// fentry attach ids: module functions carry split-BTF ids (as the kernel
    /// numbers them, checked with `bpftool -B vmlinux.btf btf dump file smc.btf`),
    /// vmlinux functions their base ids.
    #[test]
    fn func_btf_ids() {
        for (name, sendmsg, rx) in [("6.1", 100992, 101317), ("6.12", 112714, 113255)] {
            let Some(k) = kernel(name) else { continue };
            // the ids are those of the kernel builds the lab caches; other builds differ
            let (id, in_module) = k.func_btf_id("smc_sendmsg").unwrap();
            assert!(in_module);
            if (id, k.func_btf_id("smc_cdc_rx_handler")) != (sendmsg, Some((rx, true))) {
                eprintln!("{name}: a different kernel build than the ids were taken from; id {id}");
            }
            assert!(
                matches!(k.btf.resolve_type_by_id(id), Ok(Type::Func(f)) if k.btf.resolve_name(&f).unwrap() == "smc_sendmsg")
            );
            let (vid, vm) = k.func_btf_id("tcp_sendmsg").unwrap();
            assert!(!vm && vid < id);
            assert!(k.func_btf_id("no_such_function_x").is_none());
            for p in crate::probes::PROBES {
                if p.programs
                    .iter()
                    .all(|(_, a)| *a != crate::probes::Attach::RawTp)
                {
                    assert!(
                        k.func_btf_id(p.hook).is_some_and(|(_, m)| m),
                        "{name}: {} not an smc.ko function",
                        p.hook
                    );
                }
            }
        }
    }

    fn check_kernel(k: &KernelBtf, smc_sk_in_union: bool) {
        let all = k.resolve_all();
        let failed: Vec<_> = all
            .iter()
            .filter_map(|(g, r)| r.as_ref().err().map(|e| format!("{g}: {e}")))
            .collect();
        assert!(failed.is_empty(), "unresolved: {failed:#?}");
        for spec in MONITOR_ONLY_FIELDS {
            k.resolve(spec.path).unwrap();
        }
        // sock_common starts every sock; smc_sock.sk (or the union holding it) is first.
        assert_eq!(k.resolve("smc_sock.sk").unwrap().byte, 0);
        let _ = smc_sk_in_union;
        // union smc_host_cursor is 8 bytes, so the cursors of one ctrl message are 8 apart.
        let prod = k.resolve("smc_connection.local_tx_ctrl.prod").unwrap().byte;
        let cons = k.resolve("smc_connection.local_tx_ctrl.cons").unwrap().byte;
        assert_eq!(cons - prod, 8);
        // smc_cdc_tx_pend {conn; cursor; p_cursor; ctrl_seq}
        assert_eq!(k.resolve("smc_cdc_tx_pend.conn").unwrap().byte, 0);
        assert_eq!(k.resolve("smc_cdc_tx_pend.p_cursor").unwrap().byte, 16);
        assert_eq!(k.resolve("smc_cdc_tx_pend.ctrl_seq").unwrap().byte, 24);
        // sock_common.skc_dport/skc_num share one u32 (skc_portpair): dport first.
        let dport = k.resolve("sock_common.skc_dport").unwrap().byte;
        assert_eq!(k.resolve("sock_common.skc_num").unwrap().byte, dport + 2);
        assert!(k.has_func("smc_tx_sendmsg"));
        assert!(k.has_func("smc_cdc_msg_recv_action"));
        assert!(!k.has_func("no_such_function_here"));
        assert!(k.resolve("smc_sock.no_such_member").is_err());
        assert!(k.resolve("no_such_struct.x").is_err());
    }

    #[test]
    fn debian_6_12() {
        if let Some(k) = kernel("6.12") {
            check_kernel(&k, true);
            // 6.11+: sk sits in an anonymous union with icsk_inet.
            let sk = k.resolve("smc_sock.sk").unwrap();
            let icsk = k.resolve("smc_sock.icsk_inet").unwrap();
            assert_eq!((sk.byte, icsk.byte), (0, 0));
            // killed is a 1-bit bitfield in 6.12.107 and a plain u8 from 6.12.11x
            // (upstream data-race fix); either way the BPF side reads bit `bit` of one byte.
            let killed = k.resolve("smc_connection.killed").unwrap();
            assert!(matches!(killed.bitfield_bits, None | Some(1)), "{killed:?}");
            assert!(killed.bit < 8);
        }
    }

    #[test]
    fn lab_built_7_3() {
        if let Some(k) = kernel("7.3") {
            check_kernel(&k, true);
            let sk = k.resolve("smc_sock.sk").unwrap();
            let icsk = k.resolve("smc_sock.icsk_inet").unwrap();
            assert_eq!((sk.byte, icsk.byte), (0, 0));
            // 6.18+: SMC-D loopback lives in the DIBS layer, not in smc.ko.
            assert!(!k.has_func("smc_lo_move_data"));
        }
    }

    #[test]
    fn debian_6_1() {
        if let Some(k) = kernel("6.1") {
            check_kernel(&k, false);
            // no icsk_inet union before 6.11
            assert!(k.resolve("smc_sock.icsk_inet").is_err());
        }
    }
}
