#!/usr/bin/env bash
# distsched's benchmark: no-op task throughput and submit→start latency
# against one private redis-server, printed as a markdown table.
#
# For each cluster size in --workers (default "1 2"), in a fresh namespace:
#   1. start one `--role scheduler` node (the leader; it runs no tasks) and
#      wait until it leads;
#   2. submit --count no-op tasks (default 20,000) with `bench submit`
#      (Client::submit_many, 500 per pipelined round trip): nothing runs yet,
#      no node offers a worker slot;
#   3. reset Redis' command statistics, start the N `--role worker` nodes
#      (capacity 10 each) and let `bench drain` wait until every task has
#      succeeded; throughput = count / (last end − first start), Redis times;
#   4. on the now idle cluster, `bench latency` runs --latency-samples single
#      tasks one after the other: p50/p99/max of submit→start (Redis times,
#      whole ms) and of the driver's submit→done round trip;
#   5. stop the nodes.
# Then it prints the table, the core count, the Redis version, and per run
# where the time went: Redis commands and round trips per task (INFO
# commandstats, including commands run inside Lua), and the CPU time of
# redis-server, the leader and the workers during the drain (/proc).
#
# usage: scripts/bench.sh [--count N] [--latency-samples N] [--workers "1 2"]
#                          [--quick] [--results FILE]
#   --quick         a smoke run: 2,000 tasks and 100 latency samples
#   --results FILE  also write every raw figure there as name=value lines
#                   (prefixed w1., w2., ... by cluster size)
#
# Port 6379 is never used; everything started is stopped on exit.
set -euo pipefail

CALLER_PWD="$PWD"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

usage() {
    sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'
}

count=20000
samples=300
workers_list="1 2"
CAPACITY=10
count_set=0
samples_set=0
quick=0
results_out=""
while (($#)); do
    case "$1" in
        --count | --latency-samples | --workers | --results)
            (($# >= 2)) || die "$1 needs a value"
            case "$1" in
                --count) count="$2" count_set=1 ;;
                --latency-samples) samples="$2" samples_set=1 ;;
                --workers) workers_list="$2" ;;
                --results) [[ "$2" == /* ]] && results_out="$2" || results_out="$CALLER_PWD/$2" ;;
            esac
            shift 2
            ;;
        --quick)
            quick=1
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            usage >&2
            exit 64
            ;;
    esac
done
if ((quick)); then
    ((count_set)) || count=2000
    ((samples_set)) || samples=100
fi
[[ "$count" =~ ^[1-9][0-9]*$ ]] || die "--count must be a positive integer (got '$count')"
[[ "$samples" =~ ^[1-9][0-9]*$ ]] || die "--latency-samples must be a positive integer (got '$samples')"
for n in $workers_list; do
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "--workers takes positive integers (got '$n')"
done

install_cleanup_trap
ensure_redis

# The benchmark's settings are its own.
while read -r var; do
    unset "$var"
done < <(compgen -e | grep '^DISTSCHED_' || true)

header "build: cargo build --release --bin distsched --example bench"
cargo build --release --bin distsched --example bench
TARGET="${CARGO_TARGET_DIR:-target}/release"
BIN="$TARGET/distsched"
DRIVER="$TARGET/examples/bench"
[[ -x "$BIN" && -x "$DRIVER" ]] || die "missing $BIN or $DRIVER after the build"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/distsched-bench.XXXXXX")"
track_dir "$TMP"
RESULTS="$TMP/results.txt"
: >"$RESULTS"

header "redis: private server"
PORT="$(free_port)"
start_redis "$PORT" "$TMP"
REDIS_VERSION="$(redis-cli -p "$PORT" info server | sed -n 's/^redis_version:\([^[:space:]]*\).*/\1/p')"
CORES="$(nproc)"
CLK_TCK="$(getconf CLK_TCK)"
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "redis-server $REDIS_VERSION, pid $REDIS_PID at $REDIS_URL; $CORES cores; load average $LOAD_BEFORE"

rcli() {
    redis-cli -p "$PORT" "$@"
}

# Figures: ROWS holds "figure|value" for the main table, DETAILS for the
# per-run breakdown; both print in the order they were added.
ROWS=()
DETAILS=()
row() {
    ROWS+=("$1|$2")
}
detail() {
    DETAILS+=("$1|$2")
}

# get FILE NAME: the value of NAME=value in FILE (the driver's output).
get() {
    sed -n "s/^$2=//p" "$1" | head -n 1
}

# CPU time (user + system) of PID so far, in clock ticks.
cpu_ticks() {
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || {
        echo 0
        return
    }
    # Fields after the command name (which may hold spaces): state is 3rd,
    # utime 14th, stime 15th of the whole line.
    awk '{ print $12 + $13 }' <<<"${stat##*) }"
}

ticks_to_s() {
    awk -v t="$1" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }'
}

# start_node NAME ARGS...: a node in the background, its log in $TMP.
# Sets NODE_PID.
start_node() {
    local name="$1"
    shift
    "$BIN" node --id "$name" --redis "$REDIS_URL" "$@" >>"$TMP/$name.log" 2>&1 &
    NODE_PID=$!
    track_pid "$NODE_PID"
}

stop_node() {
    stop_pid "$1" 15 || true
    untrack_pid "$1"
}

leads() {
    "$BIN" leader --json --redis "$REDIS_URL" --ns "$1" 2>/dev/null | grep -q "\"node\": \"$2\""
}

# bench_distsched N: one run with N worker nodes (see the header).
bench_distsched() {
    local n="$1" ns label out i
    ns="bench-$n-$$-$RANDOM"
    label="distsched, $n worker node$( ((n == 1)) || echo s)"
    header "$label: $count tasks, capacity $CAPACITY each, plus a scheduler-only leader (namespace $ns)"

    start_node "$ns-leader" --ns "$ns" --role scheduler
    local leader_pid="$NODE_PID"
    wait_until 20 leads "$ns" "$ns-leader" || die "the leader did not take the lease within 20s (log: $TMP/$ns-leader.log)"

    out="$TMP/$ns.submit"
    "$DRIVER" submit --redis "$REDIS_URL" --ns "$ns" --count "$count" | tee "$out"
    local submit_rate
    submit_rate="$(get "$out" submit_rate_tasks_per_s)"

    rcli config resetstat >/dev/null
    local redis0 leader0
    redis0="$(cpu_ticks "$REDIS_PID")"
    leader0="$(cpu_ticks "$leader_pid")"
    local worker_pids=()
    for ((i = 1; i <= n; i++)); do
        start_node "$ns-w$i" --ns "$ns" --role worker --capacity "$CAPACITY"
        worker_pids+=("$NODE_PID")
    done

    out="$TMP/$ns.drain"
    "$DRIVER" drain --redis "$REDIS_URL" --ns "$ns" --count "$count" --timeout 10m --cmdstats >"$out" ||
        die "drain failed (logs in $TMP)"
    local redis_t leader_t workers_t=0 per_worker=()
    redis_t=$(($(cpu_ticks "$REDIS_PID") - redis0))
    leader_t=$(($(cpu_ticks "$leader_pid") - leader0))
    for i in "${worker_pids[@]}"; do
        local t
        t="$(cpu_ticks "$i")"
        workers_t=$((workers_t + t))
        per_worker+=("$(ticks_to_s "$t")")
    done
    grep -v '^cmd\.' "$out"
    echo "commands per task (calls, incl. inside Lua): $(sed -n 's/^cmd\.\([^.]*\)\.calls_per_task=/\1=/p' "$out" | paste -sd ' ')"
    local tput span
    tput="$(get "$out" throughput_tasks_per_s)"
    span="$(get "$out" span_ms)"

    out="$TMP/$ns.latency"
    "$DRIVER" latency --redis "$REDIS_URL" --ns "$ns" --count "$samples" | tee "$out"

    for ((i = ${#worker_pids[@]} - 1; i >= 0; i--)); do
        stop_node "${worker_pids[i]}"
    done
    stop_node "$leader_pid"

    local f="$TMP/$ns.latency" d="$TMP/$ns.drain"
    row "$label: no-op throughput ($count tasks queued first)" "$tput tasks/s"
    row "$label: submit→start p50 / p99 / max ($samples tasks, idle)" \
        "$(get "$f" submit_to_start_ms_p50) / $(get "$f" submit_to_start_ms_p99) / $(get "$f" submit_to_start_ms_max) ms"
    row "$label: submit→end p50 / p99" \
        "$(get "$f" submit_to_end_ms_p50) / $(get "$f" submit_to_end_ms_p99) ms"
    row "$label: driver submit→done p50 / p99" \
        "$(get "$f" driver_submit_to_done_ms_p50) / $(get "$f" driver_submit_to_done_ms_p99) ms"
    row "$label: bulk submit rate (submit_many ×500)" "$submit_rate tasks/s"

    detail "$label: drain span (first start → last end)" "$span ms"
    detail "$label: tasks per worker" "$(sed -n "s/^worker\.$ns-//p" "$d" | paste -sd ' ')"
    detail "$label: Redis commands per task (incl. inside Lua)" "$(get "$d" cmd_total_per_task)"
    detail "$label: client round trips per task (EVALSHA + blocking pops)" "$(get "$d" round_trips_per_task)"
    detail "$label: top commands per task" \
        "$(sed -n 's/^cmd\.\([^.]*\)\.calls_per_task=\(.*\)/\1 \2/p' "$d" | head -n 6 | awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2 }')"
    detail "$label: EVALSHA per task / mean µs per call" \
        "$(get "$d" cmd.evalsha.calls_per_task) / $(get "$d" cmd.evalsha.usec_per_call)"
    detail "$label: CPU s during the drain: redis / leader / workers" \
        "$(ticks_to_s "$redis_t") / $(ticks_to_s "$leader_t") / $(ticks_to_s "$workers_t") (${per_worker[*]})"
    detail "$label: CPU ms per 1,000 tasks: redis / leader / workers" \
        "$(awk -v r="$redis_t" -v l="$leader_t" -v w="$workers_t" -v hz="$CLK_TCK" -v n="$count" \
            'BEGIN { k = 1000 * 1000 / hz / n; printf "%.0f / %.0f / %.0f", r * k, l * k, w * k }')"
    {
        echo "# $label"
        sed "s/^/w$n./" "$TMP/$ns.submit" "$TMP/$ns.drain" "$TMP/$ns.latency"
        echo "w$n.cpu_ticks_redis=$redis_t"
        echo "w$n.cpu_ticks_leader=$leader_t"
        echo "w$n.cpu_ticks_workers=$workers_t"
    } >>"$RESULTS"
}

# More systems (BullMQ side by side, issue 8) add a function like
# bench_distsched that appends to ROWS/DETAILS, and a call here.
for n in $workers_list; do
    bench_distsched "$n"
done

# table TITLE ROWS...: a markdown table of "figure|value" rows.
table() {
    local title="$1" r
    shift
    printf '\n%s\n\n| figure | value |\n|---|---|\n' "$title"
    for r in "$@"; do
        printf '| %s | %s |\n' "${r%%|*}" "${r#*|}"
    done
}

header "results"
echo "machine: $CORES cores ($(nproc --all) online), $(uname -sr); redis-server $REDIS_VERSION (private, no persistence)"
echo "cluster: 1 scheduler-only leader node + N worker nodes (--role worker --capacity $CAPACITY), one process each"
echo "command: scripts/bench.sh --count $count --latency-samples $samples --workers \"$workers_list\""
echo "load average (1/5/15 min): $LOAD_BEFORE before, $(cut -d' ' -f1-3 /proc/loadavg) after (the figures are only as quiet as the machine)"
table "### Figures" "${ROWS[@]}"
table "### Where the time went (during the drain)" "${DETAILS[@]}"
echo
if [[ -n "$results_out" ]]; then
    cp "$RESULTS" "$results_out"
    echo "raw figures written to $results_out"
fi
echo "Latencies from Redis times are whole milliseconds (±1 ms); the driver's"
echo "round trip includes the submit call, the run and the wait for the result."
