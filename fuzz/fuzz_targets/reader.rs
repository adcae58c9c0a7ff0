// SPDX-License-Identifier: GPL-2.0
//! Fuzz target: the `.smctrace` reader on arbitrary bytes, the way the tools
//! use it — open (header, metadata, recovery walk, trailer), list every chunk,
//! decompress each, parse every record, and verify. The file is a hostile
//! input: nothing may panic, hang, or allocate beyond the format's limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smctrace_format::Reader;
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    // Reader::open maps a path; /dev/shm keeps the file in memory.
    let path = std::env::temp_dir().join(format!(
        "smctrace-fuzz-reader-{}.smctrace",
        std::process::id()
    ));
    {
        let mut f = std::fs::File::create(&path).expect("temp file");
        f.write_all(data).expect("write temp file");
    }
    if let Ok(r) = Reader::open(&path) {
        let _ = r.metadata();
        let _ = r.trailer().map(|t| t.lost_per_cpu.iter().sum::<u64>());
        let _ = r.recovery();
        let _ = r.stats();
        for c in r.chunks() {
            let Ok(c) = c else { continue };
            if let Ok(d) = r.decode(&c) {
                for rec in d.records() {
                    match rec {
                        Ok(ev) => {
                            let _ = ev.hdr();
                        }
                        Err(_) => break,
                    }
                }
            }
        }
        let _ = r.verify();
        let _ = smc_analyze::input::info(&path);
    }
});
