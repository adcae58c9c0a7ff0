//! Least privilege while recording: once the probes are loaded and attached,
//! the output file is created and the start snapshot is taken, smc-record
//! needs no capability until it closes the recording. So the effective set is
//! emptied for the whole recording (and for every thread started after it),
//! and the permitted set is cut down to what the close needs:
//!
//! - `CAP_BPF` (or `CAP_SYS_ADMIN` where CAP_BPF is not held): reading the
//!   per-CPU hit and lost counters with `bpf(BPF_MAP_LOOKUP_ELEM)`; kernels
//!   before 6.5 check it on every bpf() call when
//!   `kernel.unprivileged_bpf_disabled` is set (Debian's default);
//! - `CAP_NET_ADMIN`: the end snapshot (SMC generic netlink and smc_diag check
//!   the capability of the task that sends each request, so a socket opened
//!   early does not carry it).
//!
//! [`raise_for_close`] makes those two effective again for the close. The
//! ring buffer is read through its mapped pages and the file through its open
//! descriptor: neither needs a capability. Two raw syscalls (capget/capset)
//! are all this takes, so no capabilities crate is pulled in.

use anyhow::{anyhow, Result};

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;
/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const CAP_V3: u32 = 0x2008_0522;

#[repr(C)]
struct Header {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The calling thread's (effective, permitted) sets as 64-bit masks.
fn get() -> Result<(u64, u64)> {
    let mut h = Header {
        version: CAP_V3,
        pid: 0,
    };
    let mut d = [Data::default(); 2];
    // SAFETY: a v3 header and two data words, as capget(2) requires.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut h as *mut Header, d.as_mut_ptr()) };
    if rc != 0 {
        return Err(anyhow!("capget: {}", std::io::Error::last_os_error()));
    }
    let join = |lo: u32, hi: u32| lo as u64 | (hi as u64) << 32;
    Ok((
        join(d[0].effective, d[1].effective),
        join(d[0].permitted, d[1].permitted),
    ))
}

fn set(effective: u64, permitted: u64) -> Result<()> {
    let mut h = Header {
        version: CAP_V3,
        pid: 0,
    };
    let d = [
        Data {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: 0,
        },
        Data {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: 0,
        },
    ];
    // SAFETY: a v3 header and two data words, as capset(2) requires.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut h as *mut Header, d.as_ptr()) };
    if rc != 0 {
        return Err(anyhow!("capset: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

fn bit(c: u32) -> u64 {
    1u64 << c
}

/// What the close needs, out of what is permitted now.
fn kept(permitted: u64) -> u64 {
    let bpf = if permitted & bit(CAP_BPF) != 0 {
        bit(CAP_BPF)
    } else {
        permitted & bit(CAP_SYS_ADMIN)
    };
    bpf | (permitted & bit(CAP_NET_ADMIN))
}

/// Empty the effective set and keep only [`kept`] permitted. Call it on the
/// main thread before any other thread is started: capabilities are per thread,
/// and new threads inherit the caller's. Returns the permitted set kept.
pub fn drop_while_recording() -> Result<u64> {
    let (_, permitted) = get()?;
    let keep = kept(permitted);
    set(0, keep)?;
    Ok(keep)
}

/// Make the kept capabilities effective again (on the calling thread) for
/// reading the counters and taking the end snapshot.
pub fn raise_for_close() -> Result<()> {
    let (_, permitted) = get()?;
    set(permitted, permitted)
}

/// Run `f` with the kept capabilities effective on the calling thread, then
/// empty the effective set again: for the counters and snapshots a rotation
/// or a flight dump needs in the middle of a recording.
pub fn with_raised<T>(f: impl FnOnce() -> T) -> Result<T> {
    let (_, permitted) = get()?;
    set(permitted, permitted)?;
    let out = f();
    set(0, permitted)?;
    Ok(out)
}

/// The calling thread's effective set.
#[cfg(test)]
fn effective() -> Result<u64> {
    get().map(|(e, _)| e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_bpf_and_net_admin_only() {
        let all = u64::MAX >> 23; // caps 0..40
        assert_eq!(kept(all), bit(CAP_BPF) | bit(CAP_NET_ADMIN));
        // no CAP_BPF (an old kernel's root): CAP_SYS_ADMIN stands in for it
        assert_eq!(
            kept(bit(CAP_SYS_ADMIN) | bit(CAP_NET_ADMIN) | 1),
            bit(CAP_SYS_ADMIN) | bit(CAP_NET_ADMIN)
        );
        assert_eq!(kept(bit(CAP_BPF) | bit(38)), bit(CAP_BPF));
        assert_eq!(kept(0), 0);
    }

    #[test]
    fn drop_and_raise_on_a_thread() {
        // On a thread of its own: the test harness's other threads keep theirs.
        std::thread::spawn(|| {
            let (_, before) = get().unwrap();
            let keep = drop_while_recording().unwrap();
            assert_eq!(keep, kept(before));
            assert_eq!(effective().unwrap(), 0);
            let (_, p) = get().unwrap();
            assert_eq!(p, keep);
            // a dropped capability cannot come back
            assert!(set(before, before).is_err() || before == keep);
            assert_eq!(with_raised(|| effective().unwrap()).unwrap(), keep);
            assert_eq!(effective().unwrap(), 0, "with_raised lowers again");
            raise_for_close().unwrap();
            assert_eq!(effective().unwrap(), keep);
        })
        .join()
        .unwrap();
    }
}
