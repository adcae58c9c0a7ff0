//! The `.smctrace` recording format (see `SPEC.md` beside this crate): the one
//! place that knows the bytes on disk. The recorder writes through it, the
//! analyzer reads through it; nothing else parses a recording.

pub mod event;
