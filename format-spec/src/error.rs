//! Typed errors of the format crate. Each variant carries enough context
//! (path, file offset, chunk number) to be shown to the user as one line, and
//! maps to a distinct process exit code so scripts can tell classes apart.

use std::path::PathBuf;

/// Exit codes per error class (documented in docs/format.md).
pub mod exit {
    pub const OPEN: i32 = 20;
    pub const NOT_A_RECORDING: i32 = 21;
    pub const UNSUPPORTED_VERSION: i32 = 22;
    pub const CORRUPT_HEADER: i32 = 23;
    pub const CORRUPT_CHUNK: i32 = 24;
    pub const IO: i32 = 25;
    pub const OUTPUT_REFUSED: i32 = 26;
    pub const INVALID_INPUT: i32 = 27;
}

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The file could not be opened or stat'ed (missing, permission, ...).
    #[error("{}: cannot open: {source}", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },

    /// Not a `.smctrace` file: wrong magic, empty, a directory, too short.
    #[error("{}: not an smctrace recording: {reason}", path.display())]
    NotARecording { path: PathBuf, reason: String },

    /// Written by a newer, incompatible major version of the format.
    #[error("{}: format version {major}.{minor} is not supported (this build reads major version {supported})", path.display())]
    UnsupportedVersion {
        path: PathBuf,
        major: u16,
        minor: u16,
        supported: u16,
    },

    /// The file header or the metadata it carries is damaged.
    #[error("{}: corrupt header at offset {offset}: {reason}", path.display())]
    CorruptHeader {
        path: PathBuf,
        offset: u64,
        reason: String,
    },

    /// A chunk (or the trailer) is damaged; `index` is its position in the
    /// file counting from 0, `seq` its sequence number if the header was intact.
    #[error("{}: corrupt chunk {index}{} at offset {offset}: {reason}", path.display(), seq.map(|s| format!(" (seq {s})")).unwrap_or_default())]
    CorruptChunk {
        path: PathBuf,
        index: u64,
        seq: Option<u64>,
        offset: u64,
        reason: String,
    },

    /// Reading or writing failed.
    #[error("{}: {op} failed{}: {source}", path.display(), offset.map(|o| format!(" at offset {o}")).unwrap_or_default())]
    Io {
        path: PathBuf,
        op: &'static str,
        offset: Option<u64>,
        source: std::io::Error,
    },

    /// The writer refused its output path (exists, is a symlink, ...).
    #[error("{}: refusing to write: {reason}", path.display())]
    OutputRefused { path: PathBuf, reason: String },

    /// The caller handed the writer something the format cannot hold.
    #[error("invalid input: {reason}")]
    InvalidInput { reason: String },
}

impl FormatError {
    /// Distinct process exit code per error class.
    pub fn exit_code(&self) -> i32 {
        match self {
            FormatError::Open { .. } => exit::OPEN,
            FormatError::NotARecording { .. } => exit::NOT_A_RECORDING,
            FormatError::UnsupportedVersion { .. } => exit::UNSUPPORTED_VERSION,
            FormatError::CorruptHeader { .. } => exit::CORRUPT_HEADER,
            FormatError::CorruptChunk { .. } => exit::CORRUPT_CHUNK,
            FormatError::Io { .. } => exit::IO,
            FormatError::OutputRefused { .. } => exit::OUTPUT_REFUSED,
            FormatError::InvalidInput { .. } => exit::INVALID_INPUT,
        }
    }
}
