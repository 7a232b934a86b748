#!/usr/bin/env bash
# Builds a statically linked, stripped release binary of distsched:
#
#   RUSTFLAGS='-C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs' \
#       cargo build --profile static --locked --target x86_64-unknown-linux-gnu
#
# (glibc, linked statically, as a static PIE whose relative relocations are
# packed (RELR, glibc >= 2.36, binutils >= 2.38): 0.8 MB less than plain
# RELA, and ASLR is kept, unlike a non-PIE build; `--target` keeps build
# scripts and proc macros, which run on the host, dynamically linked; the
# `static` profile is the release profile optimised for size, see
# Cargo.toml), then checks it: `ldd` must call it static, `distsched
# --version` must run, no symbol table may be left, and it must be under
# the size limit. Prints its path and size; the last line is
#
#   static binary: PATH (BYTES bytes, X.Y MB)
#
# The profile strips symbols (Cargo.toml). Honours CARGO_TARGET_DIR
# (default ./target). Installs Debian's libc6-dev when the static C library
# is missing. DNS in a static glibc binary goes through getaddrinfo, which
# loads NSS modules at run time: IP literals and `localhost` always work,
# host names through `files dns` on usual systems (the linker warns).
#
# usage: scripts/build-static.sh [--max-bytes N]   (default 6000000)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

TARGET=x86_64-unknown-linux-gnu
max_bytes=6000000
while (($#)); do
    case "$1" in
        --max-bytes)
            [[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || die "--max-bytes needs a number of bytes"
            max_bytes="$2"
            shift 2
            ;;
        -h | --help)
            sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *) die "unknown argument: $1 (try --help)" ;;
    esac
done

command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust with rustup"
host=$(rustc -vV | sed -n 's/^host: //p')
if [[ "$host" != "$TARGET" ]]; then
    die "this script builds for $TARGET, but the host is ${host:-unknown}: a static glibc build needs an x86_64 Linux host"
fi

libc_a=$(cc -print-file-name=libc.a 2>/dev/null || true)
if [[ "$libc_a" != /* || ! -f "$libc_a" ]]; then
    info "static C library (libc.a) missing: installing libc6-dev"
    as_root apt-get install -y libc6-dev >/dev/null ||
        die "could not install libc6-dev (needed for a static glibc build)"
fi

header "cargo build --profile static --target $TARGET (crt-static)"
RUSTFLAGS='-C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs' \
    cargo build --profile static --locked --target "$TARGET" --bin distsched

target_dir="${CARGO_TARGET_DIR:-target}"
bin="$target_dir/$TARGET/static/distsched"
[[ -x "$bin" ]] || die "cargo reported success but $bin is missing"

header "checks"
ldd_out=$(ldd "$bin" 2>&1 || true)
if ! grep -qiE 'not a dynamic executable|statically linked' <<<"$ldd_out"; then
    die "ldd does not report $bin as static: $ldd_out"
fi
info "ldd: $(head -n1 <<<"$ldd_out" | sed 's/^[[:space:]]*//')"
version=$("$bin" --version) || die "$bin --version failed"
info "runs: $version"
if command -v readelf >/dev/null 2>&1 && readelf -S "$bin" | grep -q '\.symtab'; then
    die "$bin still has a symbol table (the static profile should strip it)"
fi
bytes=$(stat -c %s "$bin")
size=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1000000 }')
if ((bytes > max_bytes)); then
    die "$bin is $bytes bytes, over the limit of $max_bytes"
fi
printf 'static binary: %s (%s bytes, %s MB)\n' "$bin" "$bytes" "$size"
