//! What the integration tests share: the binary under test, running it,
//! scratch directories and the lab fixtures.

#![allow(dead_code)] // each test crate uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

/// A fresh, empty scratch directory for one test (`suite`: the test file).
pub fn tmpdir(suite: &str, tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("smc-analyze-{suite}-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Run the binary with `args`, then the recordings `files`.
pub fn run(args: &[&str], files: &[PathBuf]) -> Output {
    Command::new(bin())
        .args(args)
        .args(files)
        .output()
        .expect("run smc-analyze")
}

/// A run's stdout then stderr, as text.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
