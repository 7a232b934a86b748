//! `scripts/build-static.sh` produces a statically linked, stripped release
//! binary under the size limit that `ldd` reports as static and that runs
//! `distsched --version`.
//!
//! The test really builds it (a release build with fat LTO: one to a few
//! minutes) with cargo, through the script, into its own target directory
//! next to this build's (`<target>/static-build`), so it neither waits for
//! nor disturbs the debug build, and a second run reuses that directory's
//! cache. It then checks the binary itself rather than trusting the
//! script's own checks. It needs an x86_64 Linux (glibc) host and fails,
//! saying so, anywhere else.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The size the README promises the binary stays under.
const MAX_BYTES: u64 = 6_000_000;

#[test]
fn static_binary_is_static_small_and_runs() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let info = Command::new(&rustc)
        .arg("-vV")
        .output()
        .expect("run rustc -vV");
    let host = String::from_utf8_lossy(&info.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .unwrap_or_default();
    assert_eq!(
        host, "x86_64-unknown-linux-gnu",
        "the static build targets x86_64-unknown-linux-gnu, but this host is `{host}`: \
         run this test on an x86_64 Linux (glibc) machine"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // CARGO_TARGET_TMPDIR is `<target>/tmp`; build beside it.
    let target_dir: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target tmp dir has a parent")
        .join("static-build");

    let started = Instant::now();
    let out = Command::new("bash")
        .arg(root.join("scripts/build-static.sh"))
        .current_dir(root)
        .env("CARGO_TARGET_DIR", &target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("run scripts/build-static.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "build-static.sh failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    eprintln!("static build took {:?}", started.elapsed());

    let last = stdout.lines().last().unwrap_or_default();
    let path = last
        .strip_prefix("static binary: ")
        .and_then(|rest| rest.split(" (").next())
        .unwrap_or_else(|| panic!("no `static binary: PATH (...)` line: {stdout}"));
    let bin = if Path::new(path).is_absolute() {
        PathBuf::from(path)
    } else {
        root.join(path)
    };
    assert!(
        bin.starts_with(&target_dir),
        "{} is not in the test's own target dir",
        bin.display()
    );

    let ldd = Command::new("ldd").arg(&bin).output().expect("run ldd");
    let ldd_text = format!(
        "{}{}",
        String::from_utf8_lossy(&ldd.stdout),
        String::from_utf8_lossy(&ldd.stderr)
    );
    assert!(
        ldd_text.contains("not a dynamic executable") || ldd_text.contains("statically linked"),
        "ldd does not call {} static: {ldd_text}",
        bin.display()
    );

    let version = Command::new(&bin)
        .arg("--version")
        .output()
        .expect("run the static binary");
    assert!(version.status.success(), "--version failed: {version:?}");
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("distsched {}", env!("CARGO_PKG_VERSION"))
    );

    let bytes = std::fs::metadata(&bin).expect("stat the binary").len();
    eprintln!("static binary: {} bytes", bytes);
    assert!(bytes < MAX_BYTES, "{bytes} bytes, over {MAX_BYTES}");
}
