//! fentry/fexit programs on `smc.ko` functions, loaded without aya.
//!
//! Why this exists: aya 0.14 cannot load a `BPF_PROG_TYPE_TRACING` program
//! against a kernel *module* function (it never sets `attach_btf_obj_fd` and
//! has no split BTF), yet fentry/fexit are what the recorder wants there: each
//! program has its own recursion guard, so a softirq that interrupts one of our
//! programs still runs ours (kprobes share the per-CPU `bpf_prog_active` flag
//! and the kernel silently skips the nested one), and arguments come from the
//! trampoline instead of a breakpoint trap.
//!
//! aya keeps doing everything else: it parses the object, creates every map
//! (ring buffer, stashes, filters, counters) and the frozen `.rodata` with the
//! offsets. This module parses the same embedded object with `aya-obj`,
//! relocates its map references to the file descriptors of *those* maps (so
//! both program kinds share state), and then talks to bpf(2) directly:
//! `BPF_PROG_LOAD` with `expected_attach_type` fentry/fexit, `attach_btf_id` =
//! the function's id in `/sys/kernel/btf/smc` and `attach_btf_obj_fd` = the smc
//! module's BTF object, then `BPF_RAW_TRACEPOINT_OPEN` (no name) for the link.
//! Closing the link and program descriptors detaches them.

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use anyhow::{anyhow, bail, Context, Result};
use aya::maps::{Map, MapData};
use aya::Ebpf;
use aya_obj::Object;

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;
const BPF_BTF_GET_FD_BY_ID: libc::c_long = 19;
const BPF_BTF_GET_NEXT_ID: libc::c_long = 23;
const BPF_PROG_TYPE_TRACING: u32 = 26;

/// fentry or fexit (`enum bpf_attach_type` values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    FEntry = 24,
    FExit = 25,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::FEntry => "fentry",
            Kind::FExit => "fexit",
        }
    }
}

fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<i64> {
    // SAFETY: attr is a live, initialised repr(C) bpf_attr prefix of the given size;
    // the kernel reads (and for GET_INFO writes through pointers we own) only within it.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn owned(fd: i64) -> OwnedFd {
    // SAFETY: fd was just returned by bpf(2) as a new descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

/// The BTF object of kernel module `module` (`BPF_BTF_GET_NEXT_ID` over all
/// loaded BTF objects, matched by name and the kernel flag).
pub fn module_btf_fd(module: &str) -> Result<OwnedFd> {
    #[repr(C)]
    #[derive(Default)]
    struct IdAttr {
        id: u32,
        next_id: u32,
        open_flags: u32,
    }
    #[repr(C)]
    #[derive(Default)]
    struct BtfInfo {
        btf: u64,
        btf_size: u32,
        id: u32,
        name: u64,
        name_len: u32,
        kernel_btf: u32,
    }
    #[repr(C)]
    struct InfoAttr {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    let mut id = 0u32;
    loop {
        let mut a = IdAttr {
            id,
            ..Default::default()
        };
        match sys_bpf(BPF_BTF_GET_NEXT_ID, &mut a) {
            Ok(_) => id = a.next_id,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                bail!("no BTF object of module {module} is loaded")
            }
            Err(e) => return Err(e).context("BPF_BTF_GET_NEXT_ID"),
        }
        let mut a = IdAttr {
            id,
            ..Default::default()
        };
        let fd = match sys_bpf(BPF_BTF_GET_FD_BY_ID, &mut a) {
            Ok(fd) => owned(fd),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue, // went away meanwhile
            Err(e) => return Err(e).context("BPF_BTF_GET_FD_BY_ID"),
        };
        let mut name = [0u8; 64];
        let mut info = BtfInfo {
            name: name.as_mut_ptr() as u64,
            name_len: name.len() as u32,
            ..Default::default()
        };
        let mut ia = InfoAttr {
            bpf_fd: fd.as_raw_fd() as u32,
            info_len: std::mem::size_of::<BtfInfo>() as u32,
            info: &mut info as *mut BtfInfo as u64,
        };
        sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut ia)
            .context("BPF_OBJ_GET_INFO_BY_FD on a BTF object")?;
        let n = name.iter().position(|b| *b == 0).unwrap_or(name.len());
        if info.kernel_btf != 0 && &name[..n] == module.as_bytes() {
            return Ok(fd);
        }
    }
}

/// The name the kernel (and bpftool, which has no BTF for these programs) shows:
/// it keeps 15 characters, so a long `<kprobe program>_fe` keeps its `_fe`
/// suffix and loses characters of the base instead (`hs_client_enter_fe` ->
/// `hs_client_en_fe`), never colliding with its kprobe twin's truncated name.
pub fn kernel_name(name: &str) -> String {
    if name.len() <= 15 {
        return name.to_string();
    }
    match name.strip_suffix("_fe") {
        Some(base) => format!("{}_fe", &base[..12.min(base.len())]),
        None => name[..15].to_string(),
    }
}

/// The data aya's maps were created with, by variant (only the kinds the
/// recorder's object declares).
fn map_data(m: &Map) -> Option<&MapData> {
    match m {
        Map::Array(d)
        | Map::HashMap(d)
        | Map::LruHashMap(d)
        | Map::PerCpuArray(d)
        | Map::PerCpuHashMap(d)
        | Map::PerCpuLruHashMap(d)
        | Map::RingBuf(d)
        | Map::Unsupported(d) => Some(d),
        _ => None,
    }
}

/// The recorder's object, parsed a second time and relocated against the maps
/// aya created, ready to load any of its tracing programs.
pub struct TracingObject {
    obj: Object,
    license: CString,
}

impl TracingObject {
    /// `bytes` must be the object `ebpf` was loaded from.
    pub fn new(bytes: &[u8], ebpf: &Ebpf) -> Result<TracingObject> {
        let mut obj = Object::parse(bytes)
            .map_err(|e| anyhow!("{e}"))
            .context("parsing the BPF object for fentry")?;
        let mut fds: HashMap<String, RawFd> = HashMap::new();
        for (name, m) in ebpf.maps() {
            let d = map_data(m).with_context(|| format!("map {name}: unexpected type"))?;
            fds.insert(name.to_string(), d.fd().as_fd().as_raw_fd());
        }
        let mut triples = Vec::new();
        for (name, m) in &obj.maps {
            let fd = *fds
                .get(name)
                .with_context(|| format!("map {name} of the object was not created by aya"))?;
            triples.push((name.as_str(), fd, m));
        }
        let text_sections: HashSet<usize> = obj.functions.keys().map(|(s, _)| *s).collect();
        let mut relocated = obj.clone();
        relocated
            .relocate_maps(triples.into_iter(), &text_sections)
            .map_err(|e| anyhow!("{e}"))
            .context("relocating map references")?;
        relocated
            .relocate_calls(&text_sections)
            .map_err(|e| anyhow!("{e}"))
            .context("relocating calls")?;
        obj = relocated;
        let license = obj.license.clone();
        Ok(TracingObject { obj, license })
    }

    /// Load program `name` as `kind` on BTF function `btf_id` of the BTF object
    /// `btf_obj` (None: vmlinux) and attach it. Returns (program, link).
    pub fn load_attach(
        &self,
        name: &str,
        kind: Kind,
        btf_id: u32,
        btf_obj: Option<&OwnedFd>,
    ) -> Result<(OwnedFd, OwnedFd)> {
        let prog = self
            .obj
            .programs
            .get(name)
            .with_context(|| format!("program {name} missing from the BPF object"))?;
        let func = self
            .obj
            .functions
            .get(&prog.function_key())
            .with_context(|| format!("program {name}: no code"))?;
        let insns = &func.instructions;

        #[repr(C)]
        #[derive(Default)]
        struct LoadAttr {
            prog_type: u32,
            insn_cnt: u32,
            insns: u64,
            license: u64,
            log_level: u32,
            log_size: u32,
            log_buf: u64,
            kern_version: u32,
            prog_flags: u32,
            prog_name: [u8; 16],
            prog_ifindex: u32,
            expected_attach_type: u32,
            prog_btf_fd: u32,
            func_info_rec_size: u32,
            func_info: u64,
            func_info_cnt: u32,
            line_info_rec_size: u32,
            line_info: u64,
            line_info_cnt: u32,
            attach_btf_id: u32,
            attach_btf_obj_fd: u32,
            core_relo_cnt: u32,
            fd_array: u64,
        }
        let mut attr = LoadAttr {
            prog_type: BPF_PROG_TYPE_TRACING,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: self.license.as_ptr() as u64,
            expected_attach_type: kind as u32,
            attach_btf_id: btf_id,
            attach_btf_obj_fd: btf_obj.map(|f| f.as_raw_fd() as u32).unwrap_or(0),
            ..Default::default()
        };
        for (d, s) in attr.prog_name.iter_mut().zip(kernel_name(name).bytes()) {
            *d = s;
        }
        let prog_fd = match sys_bpf(BPF_PROG_LOAD, &mut attr) {
            Ok(fd) => owned(fd),
            Err(e) => {
                // Again with the verifier log, for the error message.
                let mut log = vec![0u8; 1 << 20];
                attr.log_level = 1;
                attr.log_size = log.len() as u32;
                attr.log_buf = log.as_mut_ptr() as u64;
                let again = sys_bpf(BPF_PROG_LOAD, &mut attr);
                if let Ok(fd) = again {
                    owned(fd)
                } else {
                    let n = log.iter().position(|b| *b == 0).unwrap_or(log.len());
                    let text = String::from_utf8_lossy(&log[..n]);
                    let tail: Vec<&str> = text.lines().rev().take(2).collect();
                    let tail: Vec<&str> = tail.into_iter().rev().collect();
                    bail!(
                        "loading {name} as {}: {e}{}",
                        kind.name(),
                        if tail.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", tail.join(" / "))
                        }
                    );
                }
            }
        };
        #[repr(C)]
        struct OpenAttr {
            name: u64,
            prog_fd: u32,
            _pad: u32,
        }
        let mut oa = OpenAttr {
            name: 0,
            prog_fd: prog_fd.as_raw_fd() as u32,
            _pad: 0,
        };
        let link = sys_bpf(BPF_RAW_TRACEPOINT_OPEN, &mut oa)
            .with_context(|| format!("attaching {name} ({})", kind.name()))?;
        Ok((prog_fd, owned(link)))
    }
}

#[cfg(test)]
mod tests {
    use super::kernel_name;

    #[test]
    fn kernel_names_keep_the_fentry_suffix() {
        assert_eq!(kernel_name("rx_wake_fe"), "rx_wake_fe");
        assert_eq!(kernel_name("hs_client_enter_fe"), "hs_client_en_fe");
        assert_eq!(kernel_name("hs_client_enter"), "hs_client_enter");
        assert_eq!(kernel_name("smcd_cdc_send_enter"), "smcd_cdc_send_e");
        // every twin's kernel name differs from every kprobe program's truncated name
        let src = include_str!("../../recorder-ebpf/smc_record.bpf.c");
        let progs: Vec<&str> = crate::probes::PROBES
            .iter()
            .flat_map(|p| {
                p.programs
                    .iter()
                    .filter(|(_, a)| *a != crate::probes::Attach::RawTp)
                    .map(|(n, _)| *n)
            })
            .collect();
        for p in &progs {
            let twin = kernel_name(&crate::loader::fentry_twin(p));
            assert!(twin.len() <= 15 && twin.ends_with("_fe"), "{twin}");
            for q in &progs {
                assert_ne!(twin, q.chars().take(15).collect::<String>(), "{p} vs {q}");
            }
            assert!(src.contains(&format!("TRACING({p}_fe)")), "{p}");
        }
    }
}
