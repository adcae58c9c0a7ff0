//! Writes a `.smctrace` file through a shared memory map that grows in
//! preallocated extents, so appending a chunk is a memcpy and a killed
//! recorder leaves everything it appended in the page cache.
//!
//! Crash behaviour (see SPEC.md, "Crash recovery"): a chunk's body is copied
//! before its header, so a process killed mid-append leaves either a whole
//! chunk or zeros; extents are reserved with `posix_fallocate`, so a full disk
//! is an error from [`Writer::append`] rather than a SIGBUS on a page fault.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use memmap2::MmapMut;

use crate::chunk::{self, EncodedChunk};
use crate::error::FormatError;
use crate::layout::{
    self, ChunkHeader, FileHeader, Footer, CHUNK_F_ZSTD, CHUNK_TRAILER, FILE_HEADER_LEN,
    MAX_METADATA_LEN, MAX_TRAILER_RAW, VERSION_MAJOR, VERSION_MINOR,
};
use crate::meta::{ChunkIndexEntry, Metadata, Snapshot, Trailer};

/// How [`Writer::create`] treats its path and grows the file.
#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// Replace an existing regular file (never a symlink). Default: refuse.
    pub overwrite: bool,
    /// Growth step of the file and its mapping, in bytes (rounded up to 64 KiB).
    pub extent_bytes: u64,
    /// zstd level of the trailer.
    pub trailer_zstd_level: i32,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            overwrite: false,
            extent_bytes: 8 << 20,
            trailer_zstd_level: 3,
        }
    }
}

/// What the recorder knows only at the end.
#[derive(Clone, Debug, Default)]
pub struct TrailerInput {
    pub probe_hits: Vec<(String, u64)>,
    pub lost_per_cpu: Vec<u64>,
    pub end_monotonic_ns: u64,
    pub end_snapshot: Option<Snapshot>,
}

/// Result of a clean close.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteSummary {
    pub path: PathBuf,
    /// Final file length.
    pub bytes: u64,
    /// Event chunks written.
    pub chunks: u64,
    pub events: u64,
}

/// Page size assumed for the `MADV_DONTNEED` ranges (x86-64). On a system
/// with larger pages a misaligned range is refused by madvise (EINVAL) and
/// only the memory saving is lost.
const PAGE: u64 = 4096;
/// Complete pages behind the write position are released in steps of this
/// many bytes.
const RELEASE_STEP: u64 = 1 << 20;

pub struct Writer {
    path: PathBuf,
    file: File,
    map: Option<MmapMut>,
    cap: u64,
    off: u64,
    extent: u64,
    /// File offset (page-aligned) below which the mapping's pages have been
    /// handed back with `MADV_DONTNEED`: keeps RssFile flat (see [`Writer::release_behind`]).
    released: u64,
    trailer_level: i32,
    index: Vec<ChunkIndexEntry>,
    events: u64,
    finished: bool,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("path", &self.path)
            .field("off", &self.off)
            .field("cap", &self.cap)
            .finish()
    }
}

impl Writer {
    /// Create the file (mode 0600, never through a symlink, never over an
    /// existing file unless `opts.overwrite`) and write header + metadata.
    pub fn create(
        path: &Path,
        meta: &Metadata,
        opts: WriterOptions,
    ) -> Result<Writer, FormatError> {
        let meta_bytes =
            rkyv::to_bytes::<rkyv::rancor::Error>(meta).map_err(|e| FormatError::InvalidInput {
                reason: format!("metadata cannot be archived: {e}"),
            })?;
        if meta_bytes.len() > MAX_METADATA_LEN {
            return Err(FormatError::InvalidInput {
                reason: format!(
                    "metadata is {} bytes, more than the {} byte limit",
                    meta_bytes.len(),
                    MAX_METADATA_LEN
                ),
            });
        }
        let refused = |reason: String| FormatError::OutputRefused {
            path: path.to_path_buf(),
            reason,
        };
        if let Ok(st) = std::fs::symlink_metadata(path) {
            if st.file_type().is_symlink() {
                return Err(refused("it is a symbolic link".into()));
            }
            if !opts.overwrite {
                return Err(refused(
                    "it already exists (ask to overwrite explicitly)".into(),
                ));
            }
            if !st.file_type().is_file() {
                return Err(refused("it exists and is not a regular file".into()));
            }
        }
        let mut oo = OpenOptions::new();
        oo.read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
        if opts.overwrite {
            oo.create(true).truncate(true);
        } else {
            oo.create_new(true);
        }
        let file = oo.open(path).map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => refused("it is a symbolic link".into()),
            Some(libc::EEXIST) => refused("it already exists (ask to overwrite explicitly)".into()),
            _ => FormatError::Io {
                path: path.to_path_buf(),
                op: "create",
                offset: None,
                source: e,
            },
        })?;
        // Whatever raced in between the check above and the open: only a regular file.
        match file.metadata() {
            Ok(m) if m.is_file() => {}
            Ok(_) => return Err(refused("it is not a regular file".into())),
            Err(e) => {
                return Err(FormatError::Io {
                    path: path.to_path_buf(),
                    op: "stat",
                    offset: None,
                    source: e,
                })
            }
        }
        // An overwritten file keeps its old mode otherwise.
        // SAFETY: fchmod takes no pointers, only a descriptor and a mode; the
        // descriptor belongs to `file`, which is open and owned here for the
        // whole call, so it cannot be closed or reused meanwhile. Failure is
        // reported through the return value and errno, read right after.
        if unsafe { libc::fchmod(file.as_raw_fd(), 0o600) } != 0 {
            return Err(FormatError::Io {
                path: path.to_path_buf(),
                op: "chmod 0600",
                offset: None,
                source: std::io::Error::last_os_error(),
            });
        }

        let header_len = FILE_HEADER_LEN + layout::pad8(meta_bytes.len());
        let header = FileHeader {
            major: VERSION_MAJOR,
            minor: VERSION_MINOR,
            header_len: header_len as u32,
            meta_len: meta_bytes.len() as u32,
            meta_crc: crc32c::crc32c(&meta_bytes),
            flags: 0,
        };
        let extent = opts.extent_bytes.max(1).div_ceil(64 << 10) * (64 << 10);
        let mut w = Writer {
            path: path.to_path_buf(),
            file,
            map: None,
            cap: 0,
            off: 0,
            extent,
            released: 0,
            trailer_level: opts.trailer_zstd_level,
            index: Vec::new(),
            events: 0,
            finished: false,
        };
        let res = w
            .put(FILE_HEADER_LEN, &meta_bytes)
            .and_then(|_| w.put(0, &header.encode()));
        if let Err(e) = res {
            // Nothing useful was written: do not leave a stub file behind.
            w.finished = true;
            drop(w);
            let _ = std::fs::remove_file(path);
            return Err(e);
        }
        w.off = header_len as u64;
        Ok(w)
    }

    /// Append one encoded event chunk.
    pub fn append(&mut self, chunk: &EncodedChunk) -> Result<(), FormatError> {
        let offset = self.off;
        let b = chunk.as_bytes();
        // Body first, header last: a process killed in between leaves zeros
        // where the header goes, which readers take as the end of the data.
        self.put(layout::CHUNK_HEADER_LEN, &b[layout::CHUNK_HEADER_LEN..])?;
        self.put(0, &b[..layout::CHUNK_HEADER_LEN])?;
        self.off += b.len() as u64;
        self.index.push(ChunkIndexEntry {
            offset,
            seq: chunk.seq(),
            event_count: chunk.event_count(),
            first_ts: chunk.first_ts(),
            last_ts: chunk.last_ts(),
        });
        self.events += chunk.event_count() as u64;
        self.release_behind();
        Ok(())
    }

    /// Drop this process's page-table mappings of the complete pages behind
    /// the write position once more than [`RELEASE_STEP`] bytes piled up, so
    /// a long recording's mapped-file resident set stays bounded (about
    /// `RELEASE_STEP`) instead of growing up to the mapping's size. On a
    /// shared file mapping `MADV_DONTNEED` keeps the data: the dirty state
    /// moves to the page cache, which writes it back as before, so what a
    /// SIGKILL leaves on disk is unchanged. A failing madvise only costs
    /// memory, never data, so it is ignored.
    fn release_behind(&mut self) {
        let upto = self.off & !(PAGE - 1);
        if upto < self.released + RELEASE_STEP {
            return;
        }
        if let Some(map) = &self.map {
            let end = upto.min(map.len() as u64 & !(PAGE - 1));
            if end > self.released {
                // SAFETY: the range lies inside our live mapping and is
                // page-aligned; nothing holds references into it (all
                // access goes through `put`, which re-faults pages as needed).
                unsafe {
                    libc::madvise(
                        map.as_ptr().add(self.released as usize) as *mut libc::c_void,
                        (end - self.released) as usize,
                        libc::MADV_DONTNEED,
                    );
                }
                self.released = end;
            }
        }
    }

    /// File length so far (header, metadata and appended chunks).
    pub fn bytes_written(&self) -> u64 {
        self.off
    }

    /// Event chunks appended so far.
    pub fn chunks_written(&self) -> u64 {
        self.index.len() as u64
    }

    /// Events in the chunks appended so far.
    pub fn events_written(&self) -> u64 {
        self.events
    }

    /// Ask the kernel to write dirty pages back now (msync MS_ASYNC): bounds
    /// what a host crash can lose without blocking the caller.
    pub fn flush_async(&self) -> Result<(), FormatError> {
        if let Some(m) = &self.map {
            m.flush_async().map_err(|e| self.io("msync", None, e))?;
        }
        Ok(())
    }

    /// Write the trailer and footer, truncate to the real length, fsync.
    pub fn finish(mut self, input: TrailerInput) -> Result<WriteSummary, FormatError> {
        let trailer = Trailer {
            chunk_index: std::mem::take(&mut self.index),
            probe_hits: input.probe_hits,
            lost_per_cpu: input.lost_per_cpu,
            end_monotonic_ns: input.end_monotonic_ns,
            end_snapshot: input.end_snapshot,
            clean_close: true,
            total_events: self.events,
        };
        let chunks = trailer.chunk_index.len() as u64;
        let raw = rkyv::to_bytes::<rkyv::rancor::Error>(&trailer).map_err(|e| {
            FormatError::InvalidInput {
                reason: format!("trailer cannot be archived: {e}"),
            }
        })?;
        if raw.len() > MAX_TRAILER_RAW {
            return Err(FormatError::InvalidInput {
                reason: format!(
                    "trailer is {} bytes, more than the {} byte limit",
                    raw.len(),
                    MAX_TRAILER_RAW
                ),
            });
        }
        let body = zstd::bulk::compress(&raw, self.trailer_level).map_err(|e| {
            FormatError::InvalidInput {
                reason: format!("trailer compression failed: {e}"),
            }
        })?;
        let first = trailer.chunk_index.first().map(|c| c.first_ts).unwrap_or(0);
        let last = trailer
            .chunk_index
            .iter()
            .map(|c| c.last_ts)
            .max()
            .unwrap_or(0);
        let th = ChunkHeader {
            chunk_type: CHUNK_TRAILER,
            flags: CHUNK_F_ZSTD,
            seq: chunks,
            first_ts: first,
            last_ts: last,
            event_count: 0,
            raw_len: raw.len() as u32,
            ..Default::default()
        };
        let tc = chunk::build(th, body);
        let trailer_offset = self.off;
        let tb = tc.as_bytes();
        self.put(layout::CHUNK_HEADER_LEN, &tb[layout::CHUNK_HEADER_LEN..])?;
        self.put(0, &tb[..layout::CHUNK_HEADER_LEN])?;
        self.off += tb.len() as u64;
        let footer = Footer {
            trailer_offset,
            trailer_len: tb.len() as u64,
        };
        self.put(0, &footer.encode())?;
        self.off += layout::FOOTER_LEN as u64;

        if let Some(m) = self.map.take() {
            m.flush().map_err(|e| self.io("msync", None, e))?;
        }
        self.file
            .set_len(self.off)
            .map_err(|e| self.io("truncate", Some(self.off), e))?;
        self.file
            .sync_all()
            .map_err(|e| self.io("fsync", None, e))?;
        if let Some(dir) = self.path.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        self.finished = true;
        Ok(WriteSummary {
            path: self.path.clone(),
            bytes: self.off,
            chunks,
            events: self.events,
        })
    }

    fn io(&self, op: &'static str, offset: Option<u64>, source: std::io::Error) -> FormatError {
        FormatError::Io {
            path: self.path.clone(),
            op,
            offset,
            source,
        }
    }

    /// Copy `data` to file offset `self.off + at`, growing the file first.
    fn put(&mut self, at: usize, data: &[u8]) -> Result<(), FormatError> {
        let start = self.off + at as u64;
        let end = start + data.len() as u64;
        if end > self.cap {
            self.reserve(end)?;
        }
        if self.map.as_ref().is_none_or(|m| (m.len() as u64) < end) {
            self.remap()?;
        }
        let Some(map) = self.map.as_mut() else {
            return Err(self.io(
                "mmap",
                None,
                std::io::Error::other("the file is not mapped"),
            ));
        };
        map[start as usize..end as usize].copy_from_slice(data);
        Ok(())
    }

    /// Make the file at least `need` bytes long with its blocks allocated:
    /// a whole extent if the disk has room, else just what is needed now.
    fn reserve(&mut self, need: u64) -> Result<(), FormatError> {
        let full = (self.cap + self.extent).max(need.div_ceil(self.extent) * self.extent);
        let tight = need.div_ceil(4096) * 4096;
        let mut last = 0;
        for new_cap in [full, tight] {
            let fd = self.file.as_raw_fd();
            // SAFETY: plain syscall on a descriptor this writer owns.
            let rc = unsafe {
                libc::posix_fallocate(
                    fd,
                    self.cap as libc::off_t,
                    (new_cap - self.cap) as libc::off_t,
                )
            };
            match rc {
                0 => {
                    self.cap = new_cap;
                    return Ok(());
                }
                libc::EOPNOTSUPP | libc::EINVAL => {
                    // File systems without fallocate: a sparse extension.
                    self.file
                        .set_len(new_cap)
                        .map_err(|e| self.io("extend file", Some(new_cap), e))?;
                    self.cap = new_cap;
                    return Ok(());
                }
                e => last = e,
            }
        }
        Err(self.io(
            "reserve space (posix_fallocate)",
            Some(self.cap),
            std::io::Error::from_raw_os_error(last),
        ))
    }

    fn remap(&mut self) -> Result<(), FormatError> {
        self.map = None;
        // A new mapping starts with nothing resident.
        self.released = self.off & !(PAGE - 1);
        // SAFETY: the file is ours (created O_EXCL or truncated), opened
        // read-write; other processes only read it.
        let map = unsafe { MmapMut::map_mut(&self.file) }.map_err(|e| self.io("mmap", None, e))?;
        self.map = Some(map);
        Ok(())
    }
}

impl Drop for Writer {
    /// A writer dropped without [`Writer::finish`] (error path) cuts the
    /// file to what it wrote; readers then recover it as "not closed cleanly".
    fn drop(&mut self) {
        if !self.finished {
            if let Some(m) = self.map.take() {
                let _ = m.flush();
            }
            let _ = self.file.set_len(self.off);
        }
    }
}
