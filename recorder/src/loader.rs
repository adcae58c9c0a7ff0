//! Loading and attaching the BPF programs with aya 0.14.
//!
//! Sets the read-only globals (member offsets from `offsets.rs`, the per
//! recording socket-id key, filter flags, payload size), loads the object
//! embedded at build time and attaches every probe of `probes.rs` whose hook
//! exists and whose members resolved. A probe that cannot attach is recorded
//! with the reason (in the file's metadata and in `smc-record probes`), never
//! fatal: the recording goes on with what the kernel allows.
//!
//! Each kprobe/kretprobe probe is attached as fentry/fexit first (its `_fe`
//! twin programs, loaded by `fentry.rs` because aya cannot attach to module
//! functions) and falls back to its kprobes when that fails; the probe's
//! `attach_type` says which one attached. `SMC_RECORD_ATTACH=kprobe` in the
//! environment forces kprobes everywhere (for comparisons).

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use anyhow::{Context, Result};
use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::{KProbe, RawTracePoint};
use aya::{Ebpf, EbpfLoader};
use smctrace_format::meta::{Filters, ProbeInfo};

use crate::fentry::{self, TracingObject};
use crate::offsets::KernelBtf;
use crate::probes::{preferred_tracepoint, Attach, Probe, PROBES};

static BPF_OBJ: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/smc_record.bpf.o"));

const FLT_PID: u32 = 0x1;
const FLT_COMM: u32 = 0x2;
const FLT_PORT: u32 = 0x4;
const FLT_NETNS: u32 = 0x8;
const FLT_CONN: u32 = 0x10;

/// What the programs are configured with.
pub struct Config {
    pub filters: Filters,
    pub payload_bytes: u32,
    pub ring_bytes: u32,
    pub sock_key: [u64; 2],
    /// Probe names not to attach (`--exclude`).
    pub exclude: Vec<String>,
    /// `--conn`: (local port, remote port) of the clcsock of the connections to record.
    pub conn_pairs: Vec<(u16, u16)>,
}

/// A loaded and attached recorder. Dropping it detaches everything.
pub struct Loaded {
    pub ebpf: Ebpf,
    pub probes: Vec<ProbeInfo>,
    /// fentry/fexit programs and their links (closing them detaches).
    traced: Vec<Traced>,
}

/// One attached fentry/fexit program.
struct Traced {
    /// Index in `PROBES`.
    probe: usize,
    prog: OwnedFd,
    _link: OwnedFd,
}

/// Environment variable that selects the attach mechanism: `kprobe` forces
/// kprobes/kretprobes for every probe; anything else (or unset) prefers fentry/fexit.
pub const ATTACH_ENV: &str = "SMC_RECORD_ATTACH";

/// Name of the fentry/fexit twin of a kprobe/kretprobe program (smc_record.bpf.c).
pub fn fentry_twin(program: &str) -> String {
    format!("{program}_fe")
}

/// What fentry needs on this kernel: the relocated object and the smc module's
/// BTF object, or why fentry is not used.
fn tracing_setup(ebpf: &Ebpf) -> Result<(TracingObject, OwnedFd), String> {
    if std::env::var(ATTACH_ENV).is_ok_and(|v| v == "kprobe") {
        return Err(format!("{ATTACH_ENV}=kprobe"));
    }
    let btf_fd = fentry::module_btf_fd("smc").map_err(|e| format!("{e:#}"))?;
    let obj = TracingObject::new(BPF_OBJ, ebpf).map_err(|e| format!("{e:#}"))?;
    Ok((obj, btf_fd))
}

/// Attach probe `p` with the fentry/fexit twins of its programs (exit first, as
/// for kretprobes). All or nothing: on an error the ones attached are dropped.
fn attach_tracing(
    btf: &KernelBtf,
    t: &(TracingObject, OwnedFd),
    idx: usize,
    p: &Probe,
) -> Result<(Vec<Traced>, String)> {
    let (obj, smc_btf) = t;
    let (id, in_module) = btf
        .func_btf_id(p.hook)
        .with_context(|| format!("no BTF function {}", p.hook))?;
    let mut order: Vec<&(&str, Attach)> = p.programs.iter().collect();
    order.sort_by_key(|(_, a)| if *a == Attach::KRetProbe { 0 } else { 1 });
    let mut out = Vec::new();
    for (name, how) in order {
        let kind = match how {
            Attach::KProbe => fentry::Kind::FEntry,
            Attach::KRetProbe => fentry::Kind::FExit,
            Attach::RawTp => anyhow::bail!("raw tracepoint probe"),
        };
        let (prog, link) =
            obj.load_attach(&fentry_twin(name), kind, id, in_module.then_some(smc_btf))?;
        out.push(Traced {
            probe: idx,
            prog,
            _link: link,
        });
    }
    let kinds = p
        .programs
        .iter()
        .map(|(_, a)| {
            if *a == Attach::KRetProbe {
                "fexit"
            } else {
                "fentry"
            }
        })
        .collect::<Vec<_>>()
        .join("+");
    Ok((out, kinds))
}

/// Why each probe could (not) attach before loading anything: hooks that the
/// kernel does not have, members that did not resolve. `None` = attachable.
pub fn preflight(
    btf: &KernelBtf,
    offsets: &BTreeMap<&'static str, Result<u32, String>>,
) -> Vec<Option<String>> {
    PROBES
        .iter()
        .map(|p| {
            let missing: Vec<String> = p
                .needs
                .iter()
                .filter_map(|n| match offsets.get(n) {
                    Some(Ok(_)) => None,
                    Some(Err(e)) => Some(e.clone()),
                    None => Some(format!("{n}: not resolved")),
                })
                .collect();
            if !missing.is_empty() {
                return Some(format!("kernel lacks {}", missing.join("; ")));
            }
            let is_tp = p.programs.iter().all(|(_, a)| *a == Attach::RawTp);
            if !is_tp && !btf.has_func(p.hook) {
                return Some(format!("function {} not in this kernel's BTF", p.hook));
            }
            None
        })
        .collect()
}

pub fn load_and_attach(btf: &KernelBtf, cfg: &Config) -> Result<Loaded> {
    let offsets = btf.resolve_all();
    let verdicts = preflight(btf, &offsets);

    let mut flags = 0u32;
    if !cfg.filters.pids.is_empty() {
        flags |= FLT_PID;
    }
    if !cfg.filters.comms.is_empty() {
        flags |= FLT_COMM;
    }
    if !cfg.filters.ports.is_empty() {
        flags |= FLT_PORT;
    }
    if !cfg.filters.netns.is_empty() {
        flags |= FLT_NETNS;
    }
    if !cfg.conn_pairs.is_empty() {
        flags |= FLT_CONN;
    }

    // Values must outlive the loader (it keeps references).
    let off_values: Vec<(&'static str, u32)> = offsets
        .iter()
        .map(|(g, r)| (*g, *r.as_ref().unwrap_or(&0)))
        .collect();
    // Wake the reader at a quarter of the ring (at most 256 KiB) so a small
    // --buffer still gets drained before it fills between 50 ms polls.
    let wakeup_bytes: u64 = (cfg.ring_bytes as u64 / 4).min(256 << 10);
    let mut loader = EbpfLoader::new();
    // the per-task stashes are a BPF_MAP_TYPE_TASK_STORAGE, which aya has no type for
    loader.allow_unsupported_maps();
    for (g, v) in &off_values {
        loader.override_global(g, v, true);
    }
    loader
        .override_global("sock_key0", &cfg.sock_key[0], true)
        .override_global("sock_key1", &cfg.sock_key[1], true)
        .override_global("filter_flags", &flags, true)
        .override_global("payload_bytes", &cfg.payload_bytes, true)
        .override_global("wakeup_bytes", &wakeup_bytes, true)
        .map_max_entries("events", cfg.ring_bytes);
    let mut ebpf = loader
        .load(BPF_OBJ)
        .map_err(anyhow::Error::new)
        .context("loading the BPF object")?;

    fill_filters(&mut ebpf, &cfg.filters)?;
    {
        let mut m: BpfHashMap<&mut MapData, u32, u8> = map_mut(&mut ebpf, "filter_conns")?;
        for (l, r) in &cfg.conn_pairs {
            let pair = (*l as u32) << 16 | *r as u32;
            m.insert(pair, 1, 0)
                .map_err(anyhow::Error::new)
                .context("filling the --conn filter")?;
        }
    }

    let tracing = tracing_setup(&ebpf);
    let mut traced = Vec::new();
    let mut infos = Vec::with_capacity(PROBES.len());
    for (idx, (p, verdict)) in PROBES.iter().zip(verdicts).enumerate() {
        let attach_type = p
            .programs
            .iter()
            .map(|(_, a)| a.name())
            .collect::<Vec<_>>()
            .join("+");
        let verdict = if cfg.exclude.iter().any(|e| e == p.name) {
            Some("excluded (--exclude)".to_string())
        } else {
            verdict
        };
        let (mut hook, mut attach_type) = (p.hook.to_string(), attach_type);
        let error = match verdict {
            Some(why) => Some(why),
            None => {
                // The series' tracepoint first; else fentry/fexit; else the kprobes.
                let tp = preferred_tracepoint(p.name, |t| btf.has_tracepoint(t)).filter(|t| {
                    attach_probe(&mut ebpf, t.tracepoint, &[(t.program, Attach::RawTp)]).is_ok()
                });
                match tp {
                    Some(t) => {
                        hook = t.tracepoint.to_string();
                        attach_type = "raw_tp (tracepoint)".to_string();
                        None
                    }
                    None => {
                        // fentry/fexit where the kernel allows, else the kprobes.
                        let is_tp = p.programs.iter().all(|(_, a)| *a == Attach::RawTp);
                        let fentry = match &tracing {
                            Ok(t) if !is_tp => {
                                attach_tracing(btf, t, idx, p).map_err(|e| format!("{e:#}"))
                            }
                            Ok(_) => Err(String::new()),
                            Err(why) => Err(why.clone()),
                        };
                        match fentry {
                            Ok((progs, kinds)) => {
                                traced.extend(progs);
                                attach_type = kinds;
                                None
                            }
                            Err(why) => {
                                if !is_tp && !why.is_empty() {
                                    attach_type = format!("{attach_type} (fentry: {why})");
                                }
                                attach_probe(&mut ebpf, p.hook, p.programs)
                                    .err()
                                    .map(|e| format!("{e:#}"))
                            }
                        }
                    }
                }
            }
        };
        infos.push(ProbeInfo {
            name: p.name.to_string(),
            hook,
            attach_type,
            stage: p.stage.to_string(),
            attached: error.is_none(),
            error,
        });
    }
    Ok(Loaded {
        ebpf,
        probes: infos,
        traced,
    })
}

fn attach_probe(ebpf: &mut Ebpf, hook: &str, programs: &[(&str, Attach)]) -> Result<()> {
    // Return probes first: an entry probe without its return would only fill the stash map.
    let mut order: Vec<&(&str, Attach)> = programs.iter().collect();
    order.sort_by_key(|(_, a)| if *a == Attach::KRetProbe { 0 } else { 1 });
    for (name, how) in order {
        let prog = ebpf
            .program_mut(name)
            .with_context(|| format!("program {name} missing from the BPF object"))?;
        match how {
            Attach::KProbe | Attach::KRetProbe => {
                let kp: &mut KProbe = prog.try_into().map_err(anyhow::Error::new)?;
                kp.load()
                    .map_err(anyhow::Error::new)
                    .with_context(|| format!("verifier refused {name}"))?;
                kp.attach(hook, 0)
                    .map_err(anyhow::Error::new)
                    .with_context(|| format!("attaching {name} to {hook}"))?;
            }
            Attach::RawTp => {
                let tp: &mut RawTracePoint = prog.try_into().map_err(anyhow::Error::new)?;
                tp.load()
                    .map_err(anyhow::Error::new)
                    .with_context(|| format!("verifier refused {name}"))?;
                tp.attach(hook)
                    .map_err(anyhow::Error::new)
                    .with_context(|| format!("attaching {name} to raw tracepoint {hook}"))?;
            }
        }
    }
    Ok(())
}

fn fill_filters(ebpf: &mut Ebpf, f: &Filters) -> Result<()> {
    let one = 1u8;
    {
        let mut m: BpfHashMap<&mut MapData, u32, u8> = map_mut(ebpf, "filter_pids")?;
        for pid in &f.pids {
            m.insert(pid, one, 0)
                .map_err(anyhow::Error::new)
                .context("filling the pid filter")?;
        }
    }
    {
        let mut m: BpfHashMap<&mut MapData, [u8; 16], u8> = map_mut(ebpf, "filter_comms")?;
        for c in &f.comms {
            let mut key = [0u8; 16];
            let b = c.as_bytes();
            let n = b.len().min(15); // the kernel's comm is 15 chars + NUL
            key[..n].copy_from_slice(&b[..n]);
            m.insert(key, one, 0)
                .map_err(anyhow::Error::new)
                .context("filling the comm filter")?;
        }
    }
    {
        let mut m: BpfHashMap<&mut MapData, u16, u8> = map_mut(ebpf, "filter_ports")?;
        for p in &f.ports {
            m.insert(p, one, 0)
                .map_err(anyhow::Error::new)
                .context("filling the port filter")?;
        }
    }
    {
        let mut m: BpfHashMap<&mut MapData, u64, u8> = map_mut(ebpf, "filter_netns")?;
        for n in &f.netns {
            m.insert(n, one, 0)
                .map_err(anyhow::Error::new)
                .context("filling the netns filter")?;
        }
    }
    Ok(())
}

/// `recursion_misses` of one loaded program (BPF_OBJ_GET_INFO_BY_FD). aya 0.14's
/// ProgramInfo does not expose the field; the offset is that of the uapi
/// `struct bpf_prog_info` (stable ABI: fields are only ever appended).
fn prog_recursion_misses(fd: i32) -> u64 {
    const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    const RECURSION_MISSES_OFF: usize = 208;
    #[repr(C)]
    struct InfoAttr {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    let mut info = [0u64; 29]; // sizeof(struct bpf_prog_info) == 232 in 6.x
    let mut attr = InfoAttr {
        bpf_fd: fd as u32,
        info_len: std::mem::size_of_val(&info) as u32,
        info: info.as_mut_ptr() as u64,
    };
    // SAFETY: attr points to a buffer of info_len bytes that lives across the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            &mut attr as *mut InfoAttr,
            std::mem::size_of::<InfoAttr>(),
        )
    };
    if rc != 0 || (attr.info_len as usize) < RECURSION_MISSES_OFF + 8 {
        return 0;
    }
    info[RECURSION_MISSES_OFF / 8]
}

fn map_mut<'a, K: aya::Pod, V: aya::Pod>(
    ebpf: &'a mut Ebpf,
    name: &str,
) -> Result<BpfHashMap<&'a mut MapData, K, V>> {
    let m = ebpf
        .map_mut(name)
        .with_context(|| format!("map {name} missing from the BPF object"))?;
    BpfHashMap::try_from(m)
        .map_err(anyhow::Error::new)
        .with_context(|| format!("map {name}"))
}

impl Loaded {
    pub fn take_ring(&mut self) -> Result<RingBuf<MapData>> {
        let m = self
            .ebpf
            .take_map("events")
            .context("ring buffer map missing")?;
        RingBuf::try_from(m)
            .map_err(anyhow::Error::new)
            .context("ring buffer map")
    }

    /// Per-probe hit counts (summed over CPUs), in `PROBES` order.
    pub fn probe_hits(&self) -> Result<Vec<(String, u64)>> {
        let m = self.ebpf.map("hits").context("hits map missing")?;
        let arr: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(m).map_err(anyhow::Error::new)?;
        let mut out = Vec::with_capacity(PROBES.len());
        for (i, p) in PROBES.iter().enumerate() {
            let v = arr
                .get(&(i as u32), 0)
                .map_err(anyhow::Error::new)
                .context("reading probe hits")?;
            out.push((p.name.to_string(), v.iter().sum()));
        }
        Ok(out)
    }

    /// Per probe: calls the kernel did not run our program for because another
    /// BPF tracing program was already running on that CPU (e.g. a softirq
    /// interrupting one of our probes). Those events are lost without a ring
    /// buffer failure, so they are reported separately (`bpf_prog_info.recursion_misses`,
    /// kernel 5.12+; 0 where the kernel does not count them).
    pub fn recursion_misses(&self) -> Vec<(String, u64)> {
        PROBES
            .iter()
            .map(|p| {
                let n: u64 = p
                    .programs
                    .iter()
                    .filter_map(|(name, _)| self.ebpf.program(name))
                    .filter_map(|prog| prog.fd().ok())
                    .map(|fd| prog_recursion_misses(fd.as_fd().as_raw_fd()))
                    .sum();
                let f: u64 = self
                    .traced
                    .iter()
                    .filter(|t| PROBES[t.probe].name == p.name)
                    .map(|t| prog_recursion_misses(t.prog.as_raw_fd()))
                    .sum();
                (p.name.to_string(), n + f)
            })
            .collect()
    }

    /// Failed ring buffer reservations per possible CPU.
    pub fn lost_per_cpu(&self) -> Result<Vec<u64>> {
        let m = self.ebpf.map("lost").context("lost map missing")?;
        let arr: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(m).map_err(anyhow::Error::new)?;
        let v = arr
            .get(&0, 0)
            .map_err(anyhow::Error::new)
            .context("reading lost counters")?;
        Ok(v.iter().copied().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The filter flags are those of `smc_record.h` (the BPF program tests
    /// `filter_flags` against the C names), every one of them.
    #[test]
    fn filter_flags_match_smc_record_h() {
        let rust = [
            ("FLT_PID", FLT_PID),
            ("FLT_COMM", FLT_COMM),
            ("FLT_PORT", FLT_PORT),
            ("FLT_NETNS", FLT_NETNS),
            ("FLT_CONN", FLT_CONN),
        ];
        let src = crate::c_layout::header_source("smc_record.h");
        let mut names = crate::c_layout::defines(&src, "FLT_");
        names.sort();
        let mut want: Vec<String> = rust.iter().map(|(n, _)| n.to_string()).collect();
        want.sort();
        assert_eq!(names, want, "FLT_* of smc_record.h and loader.rs differ");
        let exprs: Vec<(String, String)> = rust
            .iter()
            .map(|(n, _)| (n.to_string(), n.to_string()))
            .collect();
        let c = crate::c_layout::c_values("smc_record.h", &exprs);
        for (n, v) in rust {
            assert_eq!(c[n], v as i64, "{n}");
        }
    }

    fn kernel(name: &str) -> Option<KernelBtf> {
        crate::offsets::test_btf::kernel(name)
    }

    /// Every probe's hook and members exist on both Debian kernels and the lab's 7.3.
    #[test]
    fn every_probe_is_attachable_on_debian_kernels() {
        for name in ["6.1", "6.12", "7.3"] {
            let Some(k) = kernel(name) else { continue };
            let offsets = k.resolve_all();
            let verdicts = preflight(&k, &offsets);
            for (p, v) in PROBES.iter().zip(&verdicts) {
                assert!(
                    v.is_none(),
                    "{name}: probe {} would not attach: {v:?}",
                    p.name
                );
            }
        }
    }

    /// Stock Debian kernels have the upstream SMC tracepoints but not the series' ones,
    /// so every probe keeps its kprobe there.
    #[test]
    fn series_tracepoints_only_where_the_kernel_has_them() {
        let Some(k) = kernel("6.12") else { return };
        assert!(k.has_tracepoint("smc_switch_to_fallback"));
        assert!(!k.has_tracepoint("smc_cdc_tx_done"));
        for p in PROBES {
            assert!(
                preferred_tracepoint(p.name, |t| k.has_tracepoint(t)).is_none(),
                "{}",
                p.name
            );
        }
        let t = preferred_tracepoint("cdc_tx_done", |t| t == "smc_cdc_tx_done").unwrap();
        assert_eq!(t.program, "cdc_tx_done_tp");
        assert!(preferred_tracepoint("cdc_recv", |_| true).is_none());
    }

    /// A member missing on the kernel disables exactly the probes that read it.
    #[test]
    fn missing_member_disables_only_its_probes() {
        let Some(k) = kernel("6.12") else { return };
        let mut offsets = k.resolve_all();
        offsets.insert(
            "off_conn_tx_curs_prep",
            Err("smc_connection.tx_curs_prep: no member".into()),
        );
        let verdicts = preflight(&k, &offsets);
        for (p, v) in PROBES.iter().zip(&verdicts) {
            if p.needs.contains(&"off_conn_tx_curs_prep") {
                let why = v
                    .as_deref()
                    .unwrap_or_else(|| panic!("{} should be disabled", p.name));
                assert!(why.contains("tx_curs_prep"), "{why}");
            } else {
                assert!(v.is_none(), "{} disabled without reason: {v:?}", p.name);
            }
        }
        assert!(verdicts.iter().filter(|v| v.is_some()).count() >= 4); // tx_copy + three tx_start
    }
}
