//! Errors of the SMC netlink client.
//!
//! Every failure is a typed value whose `Display` is one line naming the operation that
//! failed and why, so `smcctl` (and the recorder, which stores it in `Snapshot.error`) can
//! show it as is.

use std::io;

/// What went wrong talking to the kernel's SMC interfaces.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The generic netlink family is not registered: the smc module is not loaded.
    #[error("SMC generic netlink family {0} not found (is the smc module loaded?)")]
    FamilyNotFound(&'static str),
    /// sock_diag has no handler for AF_SMC: smc_diag is not loaded.
    #[error("{0}: smc_diag not available (is the smc_diag module loaded?)")]
    DiagNotFound(&'static str),
    /// The kernel refused a privileged command.
    #[error("{0}: needs CAP_NET_ADMIN (run as root)")]
    PermissionDenied(&'static str),
    /// The kernel answered the request with an error code.
    #[error("{op}: kernel returned error: {err}")]
    Kernel { op: &'static str, err: io::Error },
    /// Opening, sending on or receiving from the netlink socket failed.
    #[error("{op}: netlink socket error: {err}")]
    Socket { op: &'static str, err: io::Error },
    /// A reply from the kernel could not be decoded.
    #[error("{op}: malformed reply from kernel: {msg}")]
    Decode { op: &'static str, msg: String },
    /// A caller-supplied argument is not acceptable (checked before asking the kernel).
    #[error("{0}")]
    InvalidArgument(String),
}

impl Error {
    /// Maps a kernel error code for operation `op` to the most telling variant.
    pub(crate) fn from_errno(op: &'static str, errno: i32) -> Error {
        match errno {
            libc::EPERM | libc::EACCES => Error::PermissionDenied(op),
            _ => Error::Kernel {
                op,
                err: io::Error::from_raw_os_error(errno),
            },
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
