//! Inputs the reader must refuse (with the right typed error and exit code)
//! and outputs the writer must refuse (symlinks, existing files), plus the
//! file mode and the one-line error messages users see.

mod common;

use std::os::unix::fs::PermissionsExt;

use smctrace_format::error::exit;
use smctrace_format::layout::{FileHeader, FILE_HEADER_LEN};
use smctrace_format::{FormatError, Reader, TrailerInput, Writer, WriterOptions};

fn open_err(path: &std::path::Path) -> FormatError {
    let e = Reader::open(path).expect_err("must not open");
    assert!(!e.to_string().contains('\n'), "error is not one line: {e}");
    assert!(
        e.to_string().contains(&path.display().to_string()),
        "error does not name the file: {e}"
    );
    e
}

#[test]
fn missing_empty_directory_and_foreign_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.smctrace");
    assert_eq!(open_err(&missing).exit_code(), exit::OPEN);

    let empty = dir.path().join("empty.smctrace");
    std::fs::write(&empty, b"").unwrap();
    let e = open_err(&empty);
    assert!(
        matches!(e, FormatError::NotARecording { .. }) && e.to_string().contains("empty"),
        "{e}"
    );

    let e = open_err(dir.path());
    assert!(
        matches!(e, FormatError::NotARecording { .. }) && e.to_string().contains("directory"),
        "{e}"
    );

    let text = dir.path().join("notes.txt");
    std::fs::write(&text, b"hello, this is not a recording at all").unwrap();
    let e = open_err(&text);
    assert!(e.to_string().contains("bad magic"), "{e}");
    assert_eq!(e.exit_code(), exit::NOT_A_RECORDING);

    let short = dir.path().join("short.smctrace");
    std::fs::write(&short, b"\x89SM").unwrap();
    assert_eq!(open_err(&short).exit_code(), exit::NOT_A_RECORDING);

    let magic_only = dir.path().join("magic.smctrace");
    std::fs::write(&magic_only, smctrace_format::layout::FILE_MAGIC).unwrap();
    assert_eq!(open_err(&magic_only).exit_code(), exit::CORRUPT_HEADER);
}

fn rewrite_header(path: &std::path::Path, f: impl FnOnce(&mut FileHeader)) {
    let mut bytes = std::fs::read(path).unwrap();
    let mut h = FileHeader::decode(bytes[..FILE_HEADER_LEN].try_into().unwrap());
    f(&mut h);
    bytes[..FILE_HEADER_LEN].copy_from_slice(&h.encode());
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn future_major_version_is_refused_but_a_newer_minor_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let b = common::build(dir.path(), "v.smctrace", 2, 20, true);
    rewrite_header(&b.path, |h| h.minor = 7);
    let r = Reader::open(&b.path).unwrap();
    assert_eq!(r.version(), (1, 7));
    rewrite_header(&b.path, |h| h.major = 2);
    let e = open_err(&b.path);
    assert!(
        matches!(e, FormatError::UnsupportedVersion { major: 2, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("2.7"), "{e}");
    assert_eq!(e.exit_code(), exit::UNSUPPORTED_VERSION);
}

#[test]
fn damaged_header_or_metadata_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let b = common::build(dir.path(), "m.smctrace", 2, 20, true);
    let orig = std::fs::read(&b.path).unwrap();

    // Header checksum.
    let mut bytes = orig.clone();
    bytes[13] ^= 0x40;
    std::fs::write(&b.path, &bytes).unwrap();
    let e = open_err(&b.path);
    assert!(e.to_string().contains("checksum"), "{e}");
    assert_eq!(e.exit_code(), exit::CORRUPT_HEADER);

    // Metadata of absurd length (header checksum valid).
    std::fs::write(&b.path, &orig).unwrap();
    rewrite_header(&b.path, |h| {
        h.meta_len = 1 << 30;
        h.header_len = (1 << 30) + 64;
    });
    let e = open_err(&b.path);
    assert!(e.to_string().contains("limit"), "{e}");

    // Metadata bytes that pass the CRC but not rkyv validation.
    std::fs::write(&b.path, &orig).unwrap();
    let mut bytes = orig.clone();
    let h = FileHeader::decode(bytes[..FILE_HEADER_LEN].try_into().unwrap());
    let meta = FILE_HEADER_LEN..FILE_HEADER_LEN + h.meta_len as usize;
    for (i, x) in bytes[meta.clone()].iter_mut().enumerate() {
        *x = (i as u8).wrapping_mul(37) ^ 0xff;
    }
    let crc = crc32c::crc32c(&bytes[meta]);
    std::fs::write(&b.path, &bytes).unwrap();
    rewrite_header(&b.path, |h| h.meta_crc = crc);
    let e = open_err(&b.path);
    assert!(e.to_string().contains("metadata does not validate"), "{e}");
    assert_eq!(e.exit_code(), exit::CORRUPT_HEADER);
}

#[test]
fn writer_refuses_symlinks_and_existing_files_and_writes_0600() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("victim");
    std::fs::write(&target, b"precious").unwrap();
    let link = dir.path().join("link.smctrace");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let dangling = dir.path().join("dangling.smctrace");
    std::os::unix::fs::symlink(dir.path().join("not-there"), &dangling).unwrap();
    for overwrite in [false, true] {
        for p in [&link, &dangling] {
            let e = Writer::create(
                p,
                &common::meta(),
                WriterOptions {
                    overwrite,
                    ..Default::default()
                },
            )
            .unwrap_err();
            assert!(
                matches!(e, FormatError::OutputRefused { .. })
                    && e.to_string().contains("symbolic link"),
                "{e}"
            );
            assert_eq!(e.exit_code(), exit::OUTPUT_REFUSED);
        }
    }
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    assert!(!dir.path().join("not-there").exists());

    let e = Writer::create(&target, &common::meta(), WriterOptions::default()).unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");

    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
    let w = Writer::create(
        &target,
        &common::meta(),
        WriterOptions {
            overwrite: true,
            ..Default::default()
        },
    )
    .unwrap();
    w.finish(TrailerInput::default()).unwrap();
    assert_eq!(
        std::fs::metadata(&target).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(Reader::open(&target).unwrap().recovery().clean_close);

    let fresh = dir.path().join("fresh.smctrace");
    let w = Writer::create(&fresh, &common::meta(), WriterOptions::default()).unwrap();
    assert_eq!(
        std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777,
        0o600
    );
    w.finish(TrailerInput::default()).unwrap();

    let e = Writer::create(
        dir.path(),
        &common::meta(),
        WriterOptions {
            overwrite: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.exit_code(), exit::OUTPUT_REFUSED, "{e}");
}

#[test]
fn oversized_input_is_refused_by_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let mut meta = common::meta();
    meta.extra.push(("huge".into(), "x".repeat(17 << 20)));
    let e = Writer::create(
        &dir.path().join("big.smctrace"),
        &meta,
        WriterOptions::default(),
    )
    .unwrap_err();
    assert_eq!(e.exit_code(), exit::INVALID_INPUT, "{e}");
    assert!(
        !dir.path().join("big.smctrace").exists(),
        "a refused recording left a file behind"
    );
    let e = smctrace_format::encode_chunk(0, &vec![0u8; (64 << 20) + 8], 1, 0, 0, 1).unwrap_err();
    assert!(e.to_string().contains("chunk limit"), "{e}");
}

#[test]
fn exit_codes_are_distinct_per_class() {
    let codes = [
        exit::OPEN,
        exit::NOT_A_RECORDING,
        exit::UNSUPPORTED_VERSION,
        exit::CORRUPT_HEADER,
        exit::CORRUPT_CHUNK,
        exit::IO,
        exit::OUTPUT_REFUSED,
        exit::INVALID_INPUT,
    ];
    let mut s = codes.to_vec();
    s.sort();
    s.dedup();
    assert_eq!(s.len(), codes.len());
    assert!(codes.iter().all(|&c| c > 2 && c < 126));
}

#[test]
fn reader_and_encoded_chunks_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Reader>();
    send::<smctrace_format::EncodedChunk>();
    send::<Writer>();
    send_sync::<FormatError>();
}
