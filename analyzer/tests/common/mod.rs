//! What the integration tests share: the binary under test and the lab fixtures.

#![allow(dead_code)] // each test crate uses its own subset

use std::path::{Path, PathBuf};

/// The smc-analyze binary cargo built for these tests.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_smc-analyze")
}

/// The `*.smctrace` files of a directory, in file-name order (the reference host first).
pub fn recordings(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "smctrace"))
        .collect();
    v.sort();
    v
}

/// Both peers' recordings of the lab fixture `fixtures/<name>/`.
pub fn fixture(name: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(name);
    let v = recordings(&dir);
    assert_eq!(v.len(), 2, "{}: expected two recordings", dir.display());
    v
}
