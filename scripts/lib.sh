# shellcheck shell=bash
# Shared helpers for distsched's shell scripts. Source it, do not run it:
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# What it gives:
#   header TEXT             a section header on stdout
#   info/warn/die TEXT      messages on stderr (die exits 1)
#   as_root CMD...          CMD as root (sudo only when not root already)
#   ensure_redis            redis-server and redis-cli on PATH, installing
#                           Debian's redis-server package if missing
#   ensure_chromium         chromium and chromedriver on PATH, installing
#                           Debian's chromium and chromium-driver packages
#                           if missing (tests/dashboard.rs drives them)
#   free_port               a free TCP port on 127.0.0.1 (never 6379)
#   start_redis PORT DIR    a private, throw-away redis-server in the
#                           background; waits until it answers PING;
#                           sets REDIS_PID and REDIS_URL
#   now_ms                  wall-clock time in milliseconds
#   wait_until SECS CMD...  runs CMD every 20 ms until it succeeds;
#                           returns 1 if SECS pass first
#   track_pid PID           kill PID when the script exits
#   untrack_pid PID         forget PID (after it was reaped)
#   track_dir DIR           remove DIR when the script exits
#   wait_exit PID [SECS]    waits up to SECS (default 10) for PID (a child)
#                           to exit, without signalling it; returns its
#                           exit status, or 124 (still running) on timeout
#   stop_pid PID [SECS]     SIGTERM, wait up to SECS (default 10), SIGKILL
#   lib_cleanup [RC]        what the EXIT trap runs: stop every tracked
#                           process (newest first), remove tracked dirs
#                           (kept, and named on stderr, when RC is a
#                           failure (1..127) so their logs can be read;
#                           removed after an interrupt)
#   install_cleanup_trap    traps EXIT, INT, TERM and HUP to lib_cleanup
#   run_deadline SECS CMD...  runs CMD in the background (tracked) and waits
#                           for it; a watchdog stops it after SECS; returns
#                           its exit status
#
# Only processes this script started (tracked by pid) are ever signalled;
# the shared Redis on port 6379 is never touched.

if [[ -n "${DISTSCHED_LIB_SH:-}" ]]; then
    return 0
fi
DISTSCHED_LIB_SH=1

_LIB_PIDS=()
_LIB_DIRS=()

header() {
    printf '\n==> %s\n' "$*"
}

info() {
    printf '%s\n' "$*" >&2
}

warn() {
    printf 'warning: %s\n' "$*" >&2
}

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run: $* (and sudo is not installed)"
    fi
}

# Installs Debian's redis-server package (it brings redis-cli too) unless
# both programs are already on PATH. Works without a terminal (CI).
ensure_redis() {
    if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
        return 0
    fi
    info "redis-server/redis-cli not found: installing Debian's redis-server package"
    command -v apt-get >/dev/null 2>&1 ||
        die "redis-server is missing and apt-get is not available: install Redis (>= 6.2) by hand"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q ||
        die "apt-get update failed"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends redis-server ||
        die "apt-get install redis-server failed"
    # The package may start a system-wide instance on 6379; the scripts never
    # use it, so it is left alone.
    command -v redis-server >/dev/null 2>&1 || die "redis-server still not on PATH after install"
    command -v redis-cli >/dev/null 2>&1 || die "redis-cli still not on PATH after install"
}

# Installs Debian's openssl package unless `openssl` is on PATH (the TLS
# test makes its certificates with it).
ensure_openssl() {
    command -v openssl >/dev/null 2>&1 && return 0
    info "openssl not found: installing Debian's openssl package"
    command -v apt-get >/dev/null 2>&1 || die "openssl is missing and apt-get is not available"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q || die "apt-get update failed"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends openssl ||
        die "apt-get install openssl failed"
}

# Installs Debian's chromium and chromium-driver packages unless both
# programs are on PATH (the dashboard tests drive a headless Chromium
# through WebDriver). Never downloads a browser build of its own.
ensure_chromium() {
    if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
        return 0
    fi
    info "chromium/chromedriver not found: installing Debian's chromium and chromium-driver packages"
    command -v apt-get >/dev/null 2>&1 ||
        die "chromium is missing and apt-get is not available: install chromium and chromedriver by hand"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q || die "apt-get update failed"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        chromium chromium-driver || die "apt-get install chromium chromium-driver failed"
    command -v chromedriver >/dev/null 2>&1 || die "chromedriver still not on PATH after install"
}

# True if something listens on 127.0.0.1:PORT.
_port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Prints a free TCP port on 127.0.0.1, never 6379. Asks the kernel for an
# ephemeral port when python3 is there, else probes random high ports.
free_port() {
    local port tries
    for ((tries = 0; tries < 50; tries++)); do
        if command -v python3 >/dev/null 2>&1; then
            port="$(python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()')" || port=""
        else
            port=$((20000 + RANDOM % 30000))
        fi
        if [[ -n "$port" && "$port" != 6379 ]] && ! _port_in_use "$port"; then
            printf '%s\n' "$port"
            return 0
        fi
    done
    die "could not find a free TCP port"
}

now_ms() {
    if [[ -n "${EPOCHREALTIME:-}" ]]; then
        # Bash 5: seconds.microseconds (the separator follows the locale).
        local t="${EPOCHREALTIME//[!0-9]/}"
        printf '%s\n' "$((10#$t / 1000))"
    else
        date +%s%3N
    fi
}

# wait_until SECS CMD...: runs CMD (output discarded) every 20 ms until it
# succeeds. Returns 1 when SECS seconds pass first.
wait_until() {
    local secs="$1"
    shift
    local deadline=$(($(now_ms) + secs * 1000))
    until "$@" >/dev/null 2>&1; do
        if (($(now_ms) >= deadline)); then
            return 1
        fi
        sleep 0.02
    done
}

track_pid() {
    _LIB_PIDS+=("$1")
}

untrack_pid() {
    local p kept=()
    for p in "${_LIB_PIDS[@]}"; do
        [[ "$p" == "$1" ]] || kept+=("$p")
    done
    _LIB_PIDS=("${kept[@]}")
}

track_dir() {
    _LIB_DIRS+=("$1")
}

wait_exit() {
    local pid="$1" secs="${2:-10}" rc=0
    wait_until "$secs" _pid_gone "$pid" || return 124
    wait "$pid" 2>/dev/null || rc=$?
    return "$rc"
}

# stop_pid PID [SECS]: SIGTERM, wait up to SECS for it to exit, then SIGKILL.
# Reaps PID if it is a child of this shell. Returns PID's exit status when it
# is known (a child), else 0.
stop_pid() {
    local pid="$1" secs="${2:-10}" rc=0
    kill -0 "$pid" 2>/dev/null || {
        wait "$pid" 2>/dev/null || rc=$?
        return "$rc"
    }
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_until "$secs" _pid_gone "$pid"; then
        warn "pid $pid did not stop within ${secs}s of SIGTERM: sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || rc=$?
    return "$rc"
}

# True once PID has exited (a zombie child counts as exited).
_pid_gone() {
    local line
    kill -0 "$1" 2>/dev/null || return 0
    [[ -r "/proc/$1/status" ]] || return 1
    while IFS= read -r line; do
        if [[ "$line" == State:* ]]; then
            [[ "$line" == *Z* ]]
            return
        fi
    done 2>/dev/null <"/proc/$1/status"
    return 0
}

# start_redis PORT DIR: a private redis-server (no persistence, loopback
# only) in the background, its log in DIR/redis.log. Waits until it answers
# PING (10 s deadline). Sets REDIS_PID and REDIS_URL; tracks the pid.
start_redis() {
    local port="$1" dir="$2"
    [[ "$port" != 6379 ]] || die "start_redis: refusing port 6379 (the shared Redis)"
    mkdir -p "$dir"
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$dir" --daemonize no --logfile "" >"$dir/redis.log" 2>&1 &
    REDIS_PID=$!
    track_pid "$REDIS_PID"
    # shellcheck disable=SC2034 # for the caller
    REDIS_URL="redis://127.0.0.1:$port"
    local deadline=$(($(now_ms) + 10000))
    until [[ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" == PONG ]]; do
        if ! kill -0 "$REDIS_PID" 2>/dev/null; then
            tail -n 20 "$dir/redis.log" >&2 || true
            die "redis-server on port $port exited during start-up (log above)"
        fi
        if (($(now_ms) >= deadline)); then
            tail -n 20 "$dir/redis.log" >&2 || true
            die "redis-server on port $port did not answer PING within 10s"
        fi
        sleep 0.02
    done
}

lib_cleanup() {
    local rc="${1:-0}" i
    # Newest first: nodes stop (and deregister) before their Redis goes.
    for ((i = ${#_LIB_PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${_LIB_PIDS[i]}" 10 || true
    done
    _LIB_PIDS=()
    for i in "${_LIB_DIRS[@]}"; do
        [[ -n "$i" && -d "$i" ]] || continue
        if ((rc == 0 || rc >= 128)); then
            rm -rf -- "$i"
        else
            info "kept $i (logs) because of the failure"
        fi
    done
    _LIB_DIRS=()
}

install_cleanup_trap() {
    trap 'rc=$?; trap - EXIT; lib_cleanup "$rc"; exit "$rc"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
}

# run_deadline SECS CMD...: runs CMD (a program, not a shell function) in
# the background, tracked so the EXIT trap stops it, and waits for it; a
# watchdog sends it SIGTERM after SECS (SIGKILL 10 s later) with a warning.
# Nothing polls meanwhile (it adds no load to what CMD measures). Returns
# CMD's exit status (143 or 137 when the watchdog stopped it). Redirect the
# call to capture CMD's output.
run_deadline() {
    local secs="$1" pid dog rc=0
    shift
    "$@" &
    pid=$!
    track_pid "$pid"
    (
        trap 'kill "$s" 2>/dev/null; exit 0' TERM
        sleep "$secs" &
        s=$!
        wait "$s"
        printf 'warning: %s still running after %ss: stopping it\n' "$1" "$secs" >&2
        kill -TERM "$pid" 2>/dev/null
        sleep 10 &
        s=$!
        wait "$s"
        kill -KILL "$pid" 2>/dev/null
    ) &
    dog=$!
    track_pid "$dog"
    wait "$pid" || rc=$?
    untrack_pid "$pid"
    kill -TERM "$dog" 2>/dev/null || true
    wait "$dog" 2>/dev/null || true
    untrack_pid "$dog"
    return "$rc"
}
