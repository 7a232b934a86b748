#!/usr/bin/env bash
# distsched's full check, as CI runs it (`.ci/run` execs this script):
#
#   1. cargo fmt --check
#   2. cargo clippy --all-targets -- -D warnings
#      cargo clippy --all-targets --features failpoints -- -D warnings
#   3. cargo test --all-targets --no-fail-fast
#                                    (unit, integration, examples, benches)
#      cargo test --features failpoints --test supervision --test faults
#                                    (fault injection; needs the feature)
#   4. cargo test --doc              (doc tests; --all-targets skips them)
#
# It installs what is missing first: redis-server/redis-cli (the tests start
# their own private servers; never the shared one on 6379), chromium and
# chromedriver (the dashboard tests' headless browser, Debian's packages)
# and the rustfmt and clippy components. Every step runs even if an earlier
# one failed, so one run shows every problem; the exit status is non-zero
# if any failed.
# Works unattended (CI=true, no stdin).
#
# usage: scripts/test.sh [--fail-fast]   (--fail-fast: stop at the first failed step)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

fail_fast=0
for arg in "$@"; do
    case "$arg" in
        --fail-fast) fail_fast=1 ;;
        -h | --help)
            sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *) die "unknown argument: $arg (try --help)" ;;
    esac
done

exec </dev/null
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-auto}"

header "setup: tools"
ensure_redis
ensure_openssl
ensure_chromium
command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust with rustup"
missing=()
cargo fmt --version >/dev/null 2>&1 || missing+=(rustfmt)
cargo clippy --version >/dev/null 2>&1 || missing+=(clippy)
if ((${#missing[@]})); then
    command -v rustup >/dev/null 2>&1 ||
        die "cargo ${missing[*]} missing and rustup not found: install the ${missing[*]} component(s)"
    info "installing Rust components: ${missing[*]}"
    rustup component add "${missing[@]}"
fi
printf '%s\n' "$(rustc --version)" "$(cargo --version)" "$(cargo fmt --version)" \
    "$(cargo clippy --version)" "$(redis-server --version)" "$(chromedriver --version)"

failed=()
passed=()
results=() # "ok      name (secs)" / "FAILED  name (secs)", in step order
start_all=$(now_ms)

# run_step NAME CMD...: a header, the command, its time; records the result.
run_step() {
    local name="$1"
    shift
    header "$name: $*"
    local t0 rc=0
    t0=$(now_ms)
    "$@" || rc=$?
    local secs
    secs=$(awk -v ms="$(($(now_ms) - t0))" 'BEGIN { printf "%.1f", ms / 1000 }')
    if ((rc == 0)); then
        printf -- '--> %s: ok (%ss)\n' "$name" "$secs"
        passed+=("$name")
        results+=("ok      $name (${secs}s)")
    else
        printf -- '--> %s: FAILED with exit code %s (%ss)\n' "$name" "$rc" "$secs"
        failed+=("$name")
        results+=("FAILED  $name (${secs}s, exit code $rc)")
        if ((fail_fast)); then
            kill "${static_pid:-}" 2>/dev/null || true
            summary
            exit 1
        fi
    fi
}

summary() {
    local secs
    secs=$(awk -v ms="$(($(now_ms) - start_all))" 'BEGIN { printf "%.0f", ms / 1000 }')
    header "summary (${secs}s)"
    local r
    for r in "${results[@]}"; do printf '  %s\n' "$r"; done
}

# rustfmt colours its diff even into a pipe unless told not to.
fmt_color=never
[[ -t 1 ]] && fmt_color=auto

# tests/static_build.rs builds the static binary (fat LTO, 1.5-2 min from
# scratch) into <target>/static-build. Start that build now, beside the
# other steps: most integration tests wait on timers, not the CPU, so the
# suite's wall time barely grows; the test then finds the build done (or
# waits on cargo's lock for the rest) and checks the binary itself.
static_dir="${CARGO_TARGET_DIR:-target}/static-build"
mkdir -p "$static_dir"
CARGO_TARGET_DIR="$static_dir" nice -n 10 bash scripts/build-static.sh \
    >"$static_dir/prebuild.log" 2>&1 &
static_pid=$!

run_step format cargo fmt --all --check -- --color "$fmt_color"
run_step clippy cargo clippy --all-targets -- -D warnings
run_step clippy-failpoints cargo clippy --all-targets --features failpoints -- -D warnings
# --no-fail-fast: a failing unit test must not hide the integration tests.
run_step tests cargo test --all-targets --no-fail-fast
# The supervision tests need a node binary with failpoints compiled in (the
# test target requires the feature, so the step above skips it).
run_step tests-failpoints cargo test --features failpoints --test supervision --test faults --no-fail-fast
run_step doctests cargo test --doc

wait "$static_pid" 2>/dev/null || true
summary
if ((${#failed[@]})); then
    printf 'test.sh: %d of %d steps failed: %s\n' "${#failed[@]}" \
        "$((${#failed[@]} + ${#passed[@]}))" "${failed[*]}"
    exit 1
fi
printf 'test.sh: all %d steps ok\n' "${#passed[@]}"
