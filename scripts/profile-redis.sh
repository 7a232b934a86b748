#!/usr/bin/env bash
# Where redis-server's CPU goes while distsched drains a backlog: the
# profile behind the README's "Where the Redis time goes".
#
# Builds the redis-server version installed here from Debian's source
# tarball with symbols and frame pointers (once; kept in
# <target>/redis-prof/), runs `scripts/bench.sh --only throughput
# --no-bullmq --count N` with that redis-server first on PATH, records
# `perf record -g` of the redis-server during the first drain (1 worker
# node, capacity 10), and prints the share of samples under the frames that
# matter: scripts, the commands they run, the Lua VM, the connection.
# The raw `perf script` output is kept for a closer look.
#
# usage: scripts/profile-redis.sh [--count N]   (default 60,000 tasks)
#
# Needs perf (Debian's linux-perf, installed when missing) and the
# kernel's permission to sample (root, or perf_event_paranoid <= 1).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

count=60000
while (($#)); do
    case "$1" in
        --count)
            [[ "${2:-}" =~ ^[0-9]+$ ]] || die "--count takes a whole number"
            count="$2"
            shift 2
            ;;
        -h | --help)
            sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *) die "unknown argument: $1 (try --help)" ;;
    esac
done

install_cleanup_trap
ensure_redis
if ! command -v perf >/dev/null 2>&1; then
    info "perf not found: installing Debian's linux-perf package"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends linux-perf ||
        die "apt-get install linux-perf failed"
fi
perf record -q -e cpu-clock -o /dev/null true 2>/dev/null ||
    die "perf cannot sample here (run as root, or lower /proc/sys/kernel/perf_event_paranoid)"

version="$(redis-server --version | sed -n 's/.* v=\([0-9.]*\).*/\1/p')"
[[ -n "$version" ]] || die "cannot read the redis-server version"
prof="${CARGO_TARGET_DIR:-target}/redis-prof"
server="$prof/bin/redis-server"
if [[ ! -x "$server" ]]; then
    header "build: redis-server $version with symbols (once)"
    mkdir -p "$prof/bin"
    url="http://deb.debian.org/debian/pool/main/r/redis/redis_${version}.orig.tar.gz"
    curl -fsSL -o "$prof/redis.tar.gz" "$url" ||
        die "cannot download $url (the profile builds the installed version from Debian's source)"
    rm -rf "$prof/src" && mkdir -p "$prof/src"
    tar -xzf "$prof/redis.tar.gz" -C "$prof/src" --strip-components=1
    make -C "$prof/src" -j"$(nproc)" OPTIMIZATION=-O2 CFLAGS=-fno-omit-frame-pointer \
        >"$prof/build.log" 2>&1 || die "the redis build failed (log: $prof/build.log)"
    cp "$prof/src/src/redis-server" "$server"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/distsched-profile.XXXXXX")"
track_dir "$work"
header "bench: --only throughput --no-bullmq --count $count, redis-server from $prof/bin"
PATH="$(cd "$prof/bin" && pwd):$PATH" bash scripts/bench.sh --only throughput --no-bullmq \
    --count "$count" >"$work/bench.log" 2>&1 &
bench=$!
track_pid "$bench"
# Each wait also ends when the benchmark has failed.
bench_failed() {
    kill -0 "$bench" 2>/dev/null && return 1
    tail -n 5 "$work/bench.log" >&2
    die "the benchmark failed (log: $work/bench.log)"
}
redis_pid=""
wait_for_redis() {
    redis_pid="$(sed -n 's/^redis-server .*, pid \([0-9]*\) at .*/\1/p' "$work/bench.log")"
    [[ -n "$redis_pid" ]] || ! kill -0 "$bench" 2>/dev/null
}
wait_until 300 wait_for_redis || die "the benchmark did not start its redis-server (log: $work/bench.log)"
[[ -n "$redis_pid" ]] || bench_failed
drain_pid=""
find_drain() {
    drain_pid="$(pgrep -f 'examples/bench drain' | head -n 1 || true)"
    [[ -n "$drain_pid" ]] || ! kill -0 "$bench" 2>/dev/null
}
wait_until 600 find_drain || die "the first drain never started (log: $work/bench.log)"
[[ -n "$drain_pid" ]] || bench_failed
perf record -q -e cpu-clock -F 4000 -g -p "$redis_pid" -o "$work/perf.data" 2>/dev/null &
perf_pid=$!
drain_gone() { ! kill -0 "$drain_pid" 2>/dev/null; }
wait_until 600 drain_gone || die "the drain did not end"
kill -INT "$perf_pid"
wait "$perf_pid" || true
wait_exit "$bench" 600 >/dev/null || die "the benchmark failed (log: $work/bench.log)"
untrack_pid "$bench"
grep -E '^\| (no-op throughput, 1|distsched, 1 worker node: (Redis commands|EVALSHA|CPU))' "$work/bench.log" || true

out="${CARGO_TARGET_DIR:-target}/redis-profile.txt"
perf script -i "$work/perf.data" -F ip,sym 2>/dev/null >"$out"
header "redis-server samples during the 1-worker drain (share of all samples under each frame)"
awk '
    function flush() {
        if (!n) return
        total++
        lua = 0; call = 0
        for (i = 1; i <= n; i++) {
            f = frame[i]
            sub(/\.(constprop|isra|part)\..*/, "", f)
            if (f == "luaCallFunction") lua = 1
            if (f == "luaRedisGenericCommand") call = 1
            if (!(f in seen)) { seen[f] = 1; hits[f]++ }
        }
        if (lua && !call) hits["(Lua outside redis.call)"]++
        delete seen
        n = 0
    }
    NF == 0 { flush(); next }
    { frame[++n] = $2 }
    END {
        flush()
        split("evalGenericCommand luaRedisGenericCommand scriptCall (Lua-outside-redis.call) " \
              "hmgetCommand hsetCommand zremCommand zaddGenericCommand expireGenericCommand " \
              "zrangeGenericCommand genericHgetallCommand luaCreateArray redisProtocolToLuaType_Array " \
              "luaReplyToRedisReply luaC_step readQueryFromClient processMultibulkBuffer " \
              "beforeSleep _writevToClient", names, " ")
        printf "%d samples\n", total
        for (i = 1; i in names; i++) {
            name = names[i]
            gsub(/-/, " ", name)
            printf "%6.1f %%  %s\n", 100 * hits[name] / (total ? total : 1), name
        }
    }' "$out"
echo "raw samples (perf script -F ip,sym) in $out"
