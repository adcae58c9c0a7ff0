//! The `.smctrace` recording format (see `SPEC.md` beside this crate): the one
//! place that knows the bytes on disk. The recorder writes through it, the
//! analyzer reads through it; nothing else parses a recording.
//!
//! Not for: interpreting events (that is the analyzer's model) or talking to
//! the kernel (recorder, smc-netlink).

pub mod chunk;
pub mod error;
pub mod event;
pub mod layout;
pub mod meta;
pub mod reader;
pub mod synth;
pub mod writer;

pub use chunk::{encode_chunk, ChunkBuilder, ChunkInfo, DecodedChunk, EncodedChunk};
pub use error::FormatError;
pub use meta::{
    ChunkIndexEntry, ClockRef, FallbackCount, Filters, LinkSnapshot, Metadata, ProbeInfo, SockSnapshot, Snapshot, Trailer,
};
pub use reader::{CorruptChunk, FileStats, Reader, Recovery};
pub use writer::{TrailerInput, WriteSummary, Writer, WriterOptions};
