//! The `.smctrace` recording format (see `SPEC.md` beside this crate): the one
//! place that knows the bytes on disk. The recorder writes through it, the
//! analyzer reads through it; nothing else parses a recording.
//!
//! Not for: interpreting events (that is the analyzer's model) or talking to
//! the kernel (recorder, smc-netlink).
//!
//! Writing (the recorder compresses chunks on its own thread with
//! [`encode_chunk`] and hands them to the [`Writer`]) and reading:
//!
//! ```
//! use smctrace_format::{encode_chunk, event, Metadata, Reader, TrailerInput, Writer, WriterOptions};
//! # let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("rec.smctrace");
//! let meta = Metadata { host: "lab-a".into(), ..Default::default() };
//! let mut w = Writer::create(&path, &meta, WriterOptions::default())?;
//! let (records, n) = smctrace_format::synth::PingPong::default().build(10);
//! w.append(&encode_chunk(0, &records, n as u32, 0, 0, 3)?)?;
//! w.finish(TrailerInput::default())?;
//!
//! let r = Reader::open(&path)?;
//! assert!(r.recovery().clean_close);
//! let mut sends = 0;
//! for chunk in r.chunks() {
//!     let chunk = r.decode(&chunk?)?; // a damaged chunk is an Err here; the next one may be fine
//!     for ev in chunk.records() {
//!         if let event::EventRef::SendMsg(s) = ev.expect("well-formed record") {
//!             sends += 1;
//!             assert_eq!(s.ret, 4096);
//!         }
//!     }
//! }
//! assert_eq!(sends, 10 * 4 * 2);
//! # Ok::<(), smctrace_format::FormatError>(())
//! ```

pub mod chunk;
pub mod columnar;
pub mod error;
pub mod event;
pub mod layout;
pub mod meta;
pub mod reader;
pub mod stream;
/// Test-only: behind the `synth` feature (this crate's own tests turn it on).
#[cfg(any(test, feature = "synth"))]
pub mod synth;
pub mod writer;

pub use chunk::{
    encode_chunk, ChunkBuilder, ChunkCodec, ChunkEncoder, ChunkInfo, DecodedChunk, EncodedChunk,
};
pub use error::FormatError;
pub use meta::{
    ChunkIndexEntry, ClockRef, FallbackCount, Filters, LinkSnapshot, Metadata, ProbeInfo, Snapshot,
    SockSnapshot, Trailer,
};
pub use reader::{CorruptChunk, FileStats, Reader, Recovery};
pub use writer::{TrailerInput, WriteSummary, Writer, WriterOptions};
