//! Build script: the dashboard's ETag.
//!
//! The dashboard's files (`src/http/ui/`) are embedded in the binary with
//! `include_str!`/`include_bytes!`; their ETag is a 64-bit FNV-1a hash of
//! all of them, computed here once per build and handed to the crate as
//! the `DISTSCHED_UI_ETAG` environment variable, so serving a file costs
//! no hashing and the tag changes exactly when a file does.

use std::path::Path;

const UI: &str = "src/http/ui";

fn main() {
    println!("cargo:rerun-if-changed={UI}");
    let mut names: Vec<_> = std::fs::read_dir(UI)
        .unwrap_or_else(|e| panic!("read {UI}: {e}"))
        .map(|entry| entry.expect("dir entry").file_name())
        .collect();
    names.sort();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for name in names {
        let path = Path::new(UI).join(&name);
        println!("cargo:rerun-if-changed={}", path.display());
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        for byte in name.as_encoded_bytes().iter().chain(&[0]).chain(&bytes) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    println!("cargo:rustc-env=DISTSCHED_UI_ETAG=\"{hash:016x}\"");
}
