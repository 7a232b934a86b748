#!/usr/bin/env bash
# distsched's benchmark, side by side with BullMQ, against ONE private
# redis-server in ONE run; prints a markdown table (issue 8).
#
# Parts (--only takes a comma list; default all of them):
#   throughput  no-op tasks/s with 1 and 2 worker processes (capacity 10
#               each; distsched also runs one scheduler-only leader node);
#               --count tasks (20,000) are queued first, then the workers
#               start and register, then the leader; rate = count / (first
#               start → last end), from the
#               tasks' own Redis timestamps. BullMQ: Queue.addBulk the same
#               count, then Worker processes of concurrency 10 (processedOn →
#               finishedOn). Each is run --repeats times (5), distsched and
#               BullMQ in turn; the table shows the medians and their
#               ratio, the details every run.
#   latency     submit→start p50/p99 of single no-op tasks on an idle cluster
#               (leader + 1 worker), one after the other (--latency-samples);
#               BullMQ: queue.add, waitUntilFinished, processedOn − timestamp.
#   cron        20 per-second jobs (`* * * * * *`) firing for --cron-seconds
#               (15 s: 300 firings) on a leader + 2 workers: how late each
#               task was created, and started, after its slot time.
#   failover    3 nodes with --lease-ttl 3s --renew-interval 1s: kill -9 of
#               the leader → a new leader elected, and SIGTERM of the leader
#               → a new leader (the lease is released), --runs times each
#               (5): median and max. From the signal to the new leader's
#               `elected_ms` (written by its acquire script).
#   idle        3 nodes (default settings) idle for --idle-seconds (30 s): per
#               node CPU % (/proc/PID/stat), RSS (/proc/PID/status VmRSS),
#               and Redis commands/s (INFO commandstats total calls delta,
#               including commands run inside Lua, / seconds / 3; and per
#               node from MONITOR, each connection mapped to its process with
#               `ss`). The same for one idle BullMQ Worker (concurrency 10).
#   scaling     throughput with 1, 2 and 4 worker processes (the throughput
#               runs are reused), and the leader's Redis work per cron firing
#               with 10 and with 10,000 registered jobs (9 / 9,999 far-future
#               jobs + 1 per-second job; INFO commandstats and SLOWLOG deltas
#               over --tick-firings firings, as tests/cron.rs measures it).
#
# usage: scripts/bench.sh [--only PARTS] [--quick] [--no-bullmq] [--count N]
#          [--latency-samples N] [--cron-seconds N] [--runs N]
#          [--idle-seconds N] [--tick-firings N] [--repeats N] [--results FILE]
#   --quick         a smoke run: 2,000 tasks, 100 latency samples, 5 s of
#                   cron (100 firings), 3 failover runs, 10 s idle, 5 firings,
#                   3 repeats
#   --no-bullmq     distsched only (otherwise npm must work: the script
#                   fails when it cannot install BullMQ)
#   --results FILE  also write every raw figure there as name=value lines
#
# BullMQ and ioredis are installed with `npm ci` from scripts/bench/
# (package.json + package-lock.json, pinned) into the temporary folder.
# Port 6379 is never used; everything started is stopped on exit, every
# wait has a deadline.
set -euo pipefail

CALLER_PWD="$PWD"
ARGV=("$@")
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

# Section headers carry the time since the start (seconds).
header() {
    printf '\n==> [%ss] %s\n' "$SECONDS" "$*"
}

usage() {
    # The comment block at the top of this file.
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
}

ALL_PARTS="throughput,latency,cron,failover,idle,scaling"
only="$ALL_PARTS"
count=20000
samples=300
cron_seconds=15
runs=5
idle_seconds=30
tick_firings=10
repeats=5
CRON_JOBS=20
CAPACITY=10
quick=0
bullmq=1
results_out=""
declare -A SET=()
while (($#)); do
    case "$1" in
        --only | --count | --latency-samples | --cron-seconds | --runs | --idle-seconds | --tick-firings | --repeats | --results)
            (($# >= 2)) || die "$1 needs a value"
            case "$1" in
                --only) only="$2" ;;
                --count) count="$2" ;;
                --latency-samples) samples="$2" ;;
                --cron-seconds) cron_seconds="$2" ;;
                --runs) runs="$2" ;;
                --idle-seconds) idle_seconds="$2" ;;
                --tick-firings) tick_firings="$2" ;;
                --repeats) repeats="$2" ;;
                --results) [[ "$2" == /* ]] && results_out="$2" || results_out="$CALLER_PWD/$2" ;;
            esac
            SET[$1]=1
            shift 2
            ;;
        --quick)
            quick=1
            shift
            ;;
        --no-bullmq)
            bullmq=0
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
    [[ -n "${SET[--count]:-}" ]] || count=2000
    [[ -n "${SET[--latency-samples]:-}" ]] || samples=100
    [[ -n "${SET[--cron-seconds]:-}" ]] || cron_seconds=5
    [[ -n "${SET[--runs]:-}" ]] || runs=3
    [[ -n "${SET[--idle-seconds]:-}" ]] || idle_seconds=10
    [[ -n "${SET[--tick-firings]:-}" ]] || tick_firings=5
    [[ -n "${SET[--repeats]:-}" ]] || repeats=3
fi
for v in count samples cron_seconds runs idle_seconds tick_firings repeats; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "--${v//_/-} must be a positive integer (got '${!v}')"
done
declare -A PART=()
IFS=',' read -r -a parts <<<"$only"
for p in "${parts[@]}"; do
    [[ ",$ALL_PARTS," == *",$p,"* ]] || die "--only: unknown part '$p' (parts: $ALL_PARTS)"
    PART[$p]=1
done
want() {
    [[ -n "${PART[$1]:-}" ]]
}
need_bullmq=0
if ((bullmq)) && { want throughput || want latency || want idle || want scaling; }; then
    need_bullmq=1
fi

install_cleanup_trap
ensure_redis

# The benchmark's settings are its own.
while read -r var; do
    unset "$var"
done < <(compgen -e | grep '^DISTSCHED_' || true)

if ((need_bullmq)); then
    { command -v node && command -v npm; } >/dev/null 2>&1 ||
        die "BullMQ needs node and npm, not found on PATH: install Node.js 20 and npm (Debian: apt-get install nodejs npm), or run with --no-bullmq"
fi

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

BMQ="$TMP/bullmq"
BULLMQ_VERSION="-"
NODE_VERSION="-"
if ((need_bullmq)); then
    header "bullmq: npm ci into $BMQ (scripts/bench/package.json, pinned)"
    mkdir -p "$BMQ"
    cp scripts/bench/package.json scripts/bench/package-lock.json scripts/bench/bullmq.mjs "$BMQ/"
    if ! (cd "$BMQ" && run_deadline 600 npm ci --no-audit --no-fund --ignore-scripts --loglevel=error) >"$TMP/npm.log" 2>&1; then
        tail -n 30 "$TMP/npm.log" >&2 || true
        die "npm ci of BullMQ failed (output above); fix npm's access to its registry, or run with --no-bullmq"
    fi
    run_deadline 60 node "$BMQ/bullmq.mjs" version >"$TMP/bullmq.version" ||
        die "the BullMQ driver does not run: $(cat "$TMP/bullmq.version")"
    BULLMQ_VERSION="$(sed -n 's/^bullmq=//p' "$TMP/bullmq.version")"
    NODE_VERSION="$(sed -n 's/^node=//p' "$TMP/bullmq.version")"
    echo "bullmq $BULLMQ_VERSION, ioredis $(sed -n 's/^ioredis=//p' "$TMP/bullmq.version"), node $NODE_VERSION"
fi

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

# Figures: ROWS holds "figure|distsched|BullMQ|ratio|target" for the main
# table, DETAILS "figure|value" for the breakdown; both in insertion order.
ROWS=()
DETAILS=()
row() {
    ROWS+=("$1|$2|${3:--}|${4:--}|${5:--}")
}
detail() {
    DETAILS+=("$1|$2")
}

# get FILE NAME: the value of NAME=value in FILE (a driver's output).
get() {
    sed -n "s/^$2=//p" "$1" | head -n 1
}

# raw PREFIX FILE...: appends FILE's name=value lines to the results file.
raw() {
    local prefix="$1"
    shift
    sed "s/^/$prefix./" "$@" >>"$RESULTS"
}

# ratio A B: A / B with two decimals, or - when either is missing.
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f×", a / b; else print "-" }'
}

# CPU time (user + system) of PID so far, in clock ticks.
cpu_ticks() {
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || {
        echo 0
        return
    }
    # Fields after the command name (which may hold spaces): utime and
    # stime are the 12th and 13th.
    awk '{ print $12 + $13 }' <<<"${stat##*) }"
}

ticks_to_s() {
    awk -v t="$1" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }'
}

# RSS of PID in MB (VmRSS).
rss_mb() {
    awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo "-"
}

# Median of the arguments (integers).
median() {
    printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

max_of() {
    printf '%s\n' "$@" | sort -n | tail -n 1
}

# start_node NAME ARGS...: a distsched node in the background, its log in
# $TMP. Sets NODE_PID.
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

# registered NS ID...: true when every ID is in the namespace's registry.
registered() {
    local ns="$1" json id
    shift
    json="$("$BIN" workers --json --redis "$REDIS_URL" --ns "$ns" 2>/dev/null)" || return 1
    for id in "$@"; do
        grep -q "\"id\": \"$id\"" <<<"$json" || return 1
    done
}

# wait_registered NS SECS ID...
wait_registered() {
    local ns="$1" secs="$2"
    shift 2
    wait_until "$secs" registered "$ns" "$@" || die "not all of $* registered within ${secs}s (logs in $TMP)"
}

flush() {
    rcli flushall >/dev/null
}

# --- throughput ------------------------------------------------------------

# Medians (TPUT_*) and every run, space-separated (TPUT_*_RUNS), by
# worker count.
declare -A TPUT_D=() TPUT_B=() TPUT_D_RUNS=() TPUT_B_RUNS=()
REP=1
# A throughput run's details and raw figures are kept from the last
# repetition only; the runs' rates all are.
tdetail() {
    if ((REP == repeats)); then detail "$@"; fi
}
# median N...: the middle value (the mean of the two middle ones for an
# even count), rounded.
median() {
    printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 }
        END { if (NR % 2) printf "%.0f", v[(NR + 1) / 2]; else printf "%.0f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# bench_distsched N: N worker nodes drain --count tasks queued first.
bench_distsched() {
    local n="$1" ns label out i
    ns="tput-$n"
    label="distsched, $n worker node$( ((n == 1)) || echo s)"
    header "$label: $count tasks, capacity $CAPACITY each, plus a scheduler-only leader (namespace $ns; run $REP of $repeats)"

    out="$TMP/$ns.submit"
    run_deadline 600 "$DRIVER" submit --redis "$REDIS_URL" --ns "$ns" --count "$count" >"$out" ||
        die "submit failed (logs in $TMP)"
    cat "$out"

    # Every worker registered before the leader starts dispatching, so a
    # slow process start does not leave one worker out of the drain.
    local worker_pids=() names=()
    for ((i = 1; i <= n; i++)); do
        start_node "$ns-w$i" --ns "$ns" --role worker --capacity "$CAPACITY"
        worker_pids+=("$NODE_PID")
        names+=("$ns-w$i")
    done
    wait_registered "$ns" 20 "${names[@]}"

    rcli config resetstat >/dev/null
    local redis0 leader0
    redis0="$(cpu_ticks "$REDIS_PID")"
    start_node "$ns-leader" --ns "$ns" --role scheduler
    local leader_pid="$NODE_PID"
    leader0=0

    out="$TMP/$ns.drain"
    run_deadline 660 "$DRIVER" drain --redis "$REDIS_URL" --ns "$ns" --count "$count" --timeout 10m --cmdstats >"$out" ||
        die "drain failed (logs in $TMP)"
    local redis_t leader_t workers_t=0 per_worker=() t
    redis_t=$(($(cpu_ticks "$REDIS_PID") - redis0))
    leader_t=$(($(cpu_ticks "$leader_pid") - leader0))
    for i in "${worker_pids[@]}"; do
        t="$(cpu_ticks "$i")"
        workers_t=$((workers_t + t))
        per_worker+=("$(ticks_to_s "$t")")
    done
    grep -v '^cmd\.' "$out"

    for ((i = ${#worker_pids[@]} - 1; i >= 0; i--)); do
        stop_node "${worker_pids[i]}"
    done
    stop_node "$leader_pid"
    flush

    local d="$TMP/$ns.drain"
    TPUT_D_RUNS[$n]+=" $(get "$d" throughput_tasks_per_s)"
    ((REP == repeats)) || return 0
    tdetail "$label: drain span (first start → last end)" "$(get "$d" span_ms) ms"
    tdetail "$label: bulk submit rate (submit_many ×500)" "$(get "$TMP/$ns.submit" submit_rate_tasks_per_s) tasks/s"
    tdetail "$label: tasks per worker" "$(sed -n "s/^worker\.$ns-//p" "$d" | paste -sd ' ')"
    tdetail "$label: Redis commands per task (incl. inside Lua) / client round trips per task" \
        "$(get "$d" cmd_total_per_task) / $(get "$d" round_trips_per_task)"
    tdetail "$label: top commands per task" \
        "$(sed -n 's/^cmd\.\([^.]*\)\.calls_per_task=\(.*\)/\1 \2/p' "$d" | head -n 6 | awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2 }')"
    tdetail "$label: EVALSHA per task / mean µs per call" \
        "$(get "$d" cmd.evalsha.calls_per_task) / $(get "$d" cmd.evalsha.usec_per_call)"
    tdetail "$label: CPU ms per 1,000 tasks: redis / leader / workers" \
        "$(awk -v r="$redis_t" -v l="$leader_t" -v w="$workers_t" -v hz="$CLK_TCK" -v n="$count" \
            'BEGIN { k = 1000 * 1000 / hz / n; printf "%.0f / %.0f / %.0f", r * k, l * k, w * k }') (workers: ${per_worker[*]} s)"
    {
        echo "# $label"
        raw "d.w$n" "$TMP/$ns.submit" "$TMP/$ns.drain"
        echo "d.w$n.cpu_ticks_redis=$redis_t"
        echo "d.w$n.cpu_ticks_leader=$leader_t"
        echo "d.w$n.cpu_ticks_workers=$workers_t"
    } >>"$RESULTS"
}

# bench_bullmq N: N worker processes (concurrency 10) drain --count jobs.
bench_bullmq() {
    local n="$1" label out redis0 redis_t
    label="BullMQ, $n worker process$( ((n == 1)) || echo es)"
    header "$label: $count jobs added first, concurrency $CAPACITY each (prefix bmq-$n; run $REP of $repeats)"
    out="$TMP/bullmq-$n.tput"
    redis0="$(cpu_ticks "$REDIS_PID")"
    run_deadline 720 node "$BMQ/bullmq.mjs" throughput --url "$REDIS_URL" --prefix "bmq-$n" \
        --jobs "$count" --workers "$n" --concurrency "$CAPACITY" --timeout 600 >"$out" ||
        die "the BullMQ throughput run failed (output in $out)"
    redis_t=$(($(cpu_ticks "$REDIS_PID") - redis0))
    grep -v '^cmd\.' "$out"
    flush
    TPUT_B_RUNS[$n]+=" $(get "$out" throughput_jobs_per_s)"
    ((REP == repeats)) || return 0
    detail "$label: drain span (first processedOn → last finishedOn)" "$(get "$out" span_ms) ms"
    detail "$label: addBulk rate (×1000)" "$(get "$out" add_rate_jobs_per_s) jobs/s"
    detail "$label: Redis commands per job (incl. inside Lua) / client round trips per job" \
        "$(get "$out" cmd_total_per_job) / $(get "$out" round_trips_per_job)"
    detail "$label: redis-server CPU ms per 1,000 jobs (add + drain)" \
        "$(awk -v r="$redis_t" -v hz="$CLK_TCK" -v n="$count" 'BEGIN { printf "%.0f", r * 1000 * 1000 / hz / n }')"
    raw "b.w$n" "$out"
}

sizes=""
if want scaling; then
    sizes="1 2 4"
elif want throughput; then
    sizes="1 2"
fi
# distsched and BullMQ take turns, so a slow spell of the machine hits both.
for ((REP = 1; REP <= repeats; REP++)); do
    for n in $sizes; do
        bench_distsched "$n"
        if ((need_bullmq)); then
            bench_bullmq "$n"
        fi
    done
done
REP=$repeats
for n in $sizes; do
    # shellcheck disable=SC2086 # the runs are a space-separated list
    TPUT_D[$n]="$(median ${TPUT_D_RUNS[$n]})"
    detail "distsched, $n worker node$( ((n == 1)) || echo s): throughput of each run (tasks/s)" "${TPUT_D_RUNS[$n]# }"
    echo "d.w$n.throughput_runs=${TPUT_D_RUNS[$n]# }" >>"$RESULTS"
    if ((need_bullmq)); then
        # shellcheck disable=SC2086
        TPUT_B[$n]="$(median ${TPUT_B_RUNS[$n]})"
        detail "BullMQ, $n worker process$( ((n == 1)) || echo es): throughput of each run (jobs/s)" "${TPUT_B_RUNS[$n]# }"
        echo "b.w$n.throughput_runs=${TPUT_B_RUNS[$n]# }" >>"$RESULTS"
    fi
done
if want throughput; then
    for n in 1 2; do
        row "no-op throughput, $n worker process$( ((n == 1)) || echo es) × capacity $CAPACITY ($count queued first; median of $repeats runs)" \
            "${TPUT_D[$n]} tasks/s" "${TPUT_B[$n]:--}${TPUT_B[$n]:+ jobs/s}" \
            "$(ratio "${TPUT_D[$n]}" "${TPUT_B[$n]:-}")" "≥ 2× BullMQ"
    done
fi

# --- latency ---------------------------------------------------------------

if want latency; then
    ns="latency"
    header "distsched latency: $samples single no-op tasks on an idle leader + 1 worker (namespace $ns)"
    start_node "$ns-leader" --ns "$ns" --role scheduler
    lat_leader="$NODE_PID"
    wait_until 20 leads "$ns" "$ns-leader" || die "the leader did not take the lease within 20s"
    start_node "$ns-w1" --ns "$ns" --role worker --capacity "$CAPACITY"
    lat_worker="$NODE_PID"
    wait_registered "$ns" 20 "$ns-w1"
    f="$TMP/$ns.latency"
    run_deadline 600 "$DRIVER" latency --redis "$REDIS_URL" --ns "$ns" --count "$samples" >"$f" ||
        die "bench latency failed (logs in $TMP)"
    cat "$f"
    stop_node "$lat_worker"
    stop_node "$lat_leader"
    flush
    raw d "$f"
    b="$TMP/bullmq.latency"
    if ((need_bullmq)); then
        header "BullMQ latency: $samples single no-op jobs on an idle worker process (concurrency $CAPACITY)"
        run_deadline 600 node "$BMQ/bullmq.mjs" latency --url "$REDIS_URL" --prefix bmq-lat \
            --samples "$samples" --concurrency "$CAPACITY" >"$b" ||
            die "the BullMQ latency run failed (output in $b)"
        cat "$b"
        flush
        raw b "$b"
    else
        : >"$b"
    fi
    pair() {
        local v1 v2
        v1="$(get "$1" "$2_p50")"
        v2="$(get "$1" "$2_p99")"
        [[ -n "$v1" ]] && echo "$v1 / $v2 ms" || echo "-"
    }
    row "submit→start p50 / p99 ($samples single tasks, idle cluster; Redis/job timestamps, whole ms)" \
        "$(pair "$f" submit_to_start_ms)" "$(pair "$b" add_to_start_ms)" "-" "p99 ≤ 5 ms"
    row "submit→end p50 / p99" "$(pair "$f" submit_to_end_ms)" "$(pair "$b" add_to_end_ms)"
    row "client round trip submit→result seen, p50 / p99" \
        "$(pair "$f" driver_submit_to_done_ms)" "$(pair "$b" driver_add_to_done_ms)"
    detail "distsched submit→dispatch p50 / p99 / max" \
        "$(get "$f" submit_to_dispatch_ms_p50) / $(get "$f" submit_to_dispatch_ms_p99) / $(get "$f" submit_to_dispatch_ms_max) ms"
    detail "distsched submit→start max; BullMQ add→start max" \
        "$(get "$f" submit_to_start_ms_max) ms; $(get "$b" add_to_start_ms_max) ms"
fi

# --- cron ------------------------------------------------------------------

if want cron; then
    ns="cron"
    header "cron lateness: $CRON_JOBS per-second jobs for ${cron_seconds}s on a leader + 2 workers (namespace $ns)"
    start_node "$ns-leader" --ns "$ns" --role scheduler
    cron_pids=("$NODE_PID")
    wait_until 20 leads "$ns" "$ns-leader" || die "the leader did not take the lease within 20s"
    for i in 1 2; do
        start_node "$ns-w$i" --ns "$ns" --role worker --capacity "$CAPACITY"
        cron_pids+=("$NODE_PID")
    done
    wait_registered "$ns" 20 "$ns-w1" "$ns-w2"
    f="$TMP/$ns.cron"
    run_deadline $((cron_seconds + 120)) "$DRIVER" cron --redis "$REDIS_URL" --ns "$ns" \
        --jobs "$CRON_JOBS" --seconds "${cron_seconds}s" --timeout 60s >"$f" ||
        die "bench cron failed (logs in $TMP)"
    cat "$f"
    for ((i = ${#cron_pids[@]} - 1; i >= 0; i--)); do
        stop_node "${cron_pids[i]}"
    done
    flush
    raw d "$f"
    late() {
        echo "$(get "$f" "$1_p50") / $(get "$f" "$1_p99") / $(get "$f" "$1_max") ms"
    }
    row "cron: task created after its slot, p50 / p99 / max ($(get "$f" firings) firings of $CRON_JOBS per-second jobs)" \
        "$(late created_late_ms)" "-" "-" "p99 < 10 ms"
    row "cron: task started after its slot, p50 / p99 / max" "$(late started_late_ms)"
    detail "cron: dispatched after its slot, p50 / p99 / max" "$(late dispatched_late_ms)"
    detail "cron: slots missed / tasks not successful" "$(get "$f" missed_slots) / $(get "$f" not_success)"
fi

# --- failover --------------------------------------------------------------

if want failover; then
    ns="failover"
    FO_ARGS=(--ns "$ns" --lease-ttl 3s --renew-interval 1s --heartbeat-interval 1s --heartbeat-timeout 4s)
    header "failover: 3 nodes (${FO_ARGS[*]:2}), $runs runs each"
    declare -A FO_PID=()
    fo_next=0
    fo_start() {
        fo_next=$((fo_next + 1))
        start_node "$ns-$fo_next" "${FO_ARGS[@]}"
        FO_PID[$ns-$fo_next]="$NODE_PID"
        FO_LAST="$ns-$fo_next"
    }
    # fo_wait NOT SINCE_MS: the driver waits for a leader other than NOT;
    # sets FO_LEADER and FO_MS (signal → elected_ms).
    fo_wait() {
        local out="$TMP/failover.wait"
        run_deadline 40 "$DRIVER" leader-wait --redis "$REDIS_URL" --ns "$ns" --not "$1" --since-ms "$2" --timeout 30s >"$out" ||
            die "no leader other than $1 within 30s (logs in $TMP)"
        FO_LEADER="$(get "$out" leader)"
        FO_MS="$(get "$out" failover_ms)"
        FO_SEEN="$(get "$out" observed_ms)"
    }
    for _ in 1 2 3; do
        fo_start
    done
    fo_wait none "$(now_ms)"
    wait_registered "$ns" 20 "${!FO_PID[@]}"
    echo "3 nodes registered; $FO_LEADER leads"
    crash=()
    ttl_left=()
    graceful=()
    for ((round = 1; round <= runs; round++)); do
        # At a random point of the renew interval (1 s): right after the
        # previous step the lease would always be nearly full.
        sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.3f", 0.2 + r / 32768 }')"
        old="$FO_LEADER"
        ttl="$("$BIN" leader --json --redis "$REDIS_URL" --ns "$ns" 2>/dev/null | sed -n 's/^ *"ttl_ms": *\([0-9]*\).*/\1/p')" || true
        t0="$(now_ms)"
        kill -KILL "${FO_PID[$old]}"
        wait "${FO_PID[$old]}" 2>/dev/null || true
        untrack_pid "${FO_PID[$old]}"
        unset "FO_PID[$old]"
        fo_wait "$old" "$t0"
        crash+=("$FO_MS")
        ttl_left+=("${ttl:-0}")
        echo "round $round: kill -9 $old (lease had ${ttl:-?} ms left): $FO_LEADER elected after $FO_MS ms (seen after $FO_SEEN ms)"
        fo_start
        wait_registered "$ns" 20 "$FO_LAST"

        old="$FO_LEADER"
        t0="$(now_ms)"
        kill -TERM "${FO_PID[$old]}"
        fo_wait "$old" "$t0"
        graceful+=("$FO_MS")
        echo "round $round: SIGTERM $old: $FO_LEADER elected after $FO_MS ms (seen after $FO_SEEN ms)"
        rc=0
        wait_exit "${FO_PID[$old]}" 20 || rc=$?
        if ((rc == 124)); then
            warn "$old still running 20s after SIGTERM: sending SIGKILL"
            kill -KILL "${FO_PID[$old]}" 2>/dev/null || true
            wait "${FO_PID[$old]}" 2>/dev/null || true
        elif ((rc != 0)); then
            warn "$old exited with status $rc after SIGTERM"
        fi
        untrack_pid "${FO_PID[$old]}"
        unset "FO_PID[$old]"
        fo_start
        wait_registered "$ns" 20 "$FO_LAST"
    done
    for id in "${!FO_PID[@]}"; do
        stop_node "${FO_PID[$id]}"
    done
    flush
    {
        echo "d.failover.crash_ms=${crash[*]}"
        echo "d.failover.crash_ttl_left_ms=${ttl_left[*]}"
        echo "d.failover.graceful_ms=${graceful[*]}"
    } >>"$RESULTS"
    row "crash failover: kill -9 of the leader → new leader elected, median / max of $runs (--lease-ttl 3s --renew-interval 1s)" \
        "$(median "${crash[@]}") / $(max_of "${crash[@]}") ms" "-" "-" "≈ the lease left"
    row "graceful handover: SIGTERM of the leader → new leader elected, median / max of $runs" \
        "$(median "${graceful[@]}") / $(max_of "${graceful[@]}") ms"
    detail "crash failover: each run (ms) / the dead leader's lease left at the kill (ms)" "${crash[*]} / ${ttl_left[*]}"
    over=()
    for ((i = 0; i < ${#crash[@]}; i++)); do
        over+=($((crash[i] - ttl_left[i])))
    done
    detail "crash failover minus the lease left (takeover after expiry): median / max" "$(median "${over[@]}") / $(max_of "${over[@]}") ms"
    detail "graceful handover: each run (ms)" "${graceful[*]}"
fi

# --- idle ------------------------------------------------------------------

# idle_window SECS NAME=PID...: resets the command statistics, records
# MONITOR and each process' CPU ticks for SECS seconds, then sets per NAME
# IDLE_CPU (%), IDLE_RSS (MB), IDLE_TOP (client commands/s, from MONITOR),
# IDLE_ALL (commands/s including those run inside Lua, from MONITOR), and
# IDLE_TOTAL (all commands/s, INFO commandstats).
declare -A IDLE_CPU=() IDLE_RSS=() IDLE_TOP=() IDLE_ALL=()
IDLE_TOTAL=0
idle_window() {
    local secs="$1" np name pid mon="$TMP/monitor.txt" total
    shift
    local -A t0=()
    rcli config resetstat >/dev/null
    redis-cli -p "$PORT" monitor >"$mon" 2>/dev/null &
    local mon_pid=$!
    track_pid "$mon_pid"
    for np in "$@"; do
        t0[${np%%=*}]="$(cpu_ticks "${np#*=}")"
    done
    sleep "$secs"
    for np in "$@"; do
        name="${np%%=*}"
        pid="${np#*=}"
        IDLE_CPU[$name]="$(awk -v t="$(($(cpu_ticks "$pid") - t0[$name]))" -v hz="$CLK_TCK" -v s="$secs" \
            'BEGIN { printf "%.2f", 100 * t / hz / s }')"
        IDLE_RSS[$name]="$(rss_mb "$pid")"
    done
    kill -TERM "$mon_pid" 2>/dev/null || true
    wait "$mon_pid" 2>/dev/null || true
    untrack_pid "$mon_pid"
    # Everything but our CONFIG RESETSTAT and MONITOR.
    total="$(rcli info commandstats | awk -F'[:,=]' '/^cmdstat_/ && $1 != "cmdstat_config|resetstat" && $1 != "cmdstat_monitor" { n += $3 } END { print n + 0 }')"
    IDLE_TOTAL="$(awk -v n="$total" -v s="$secs" 'BEGIN { printf "%.2f", n / s }')"
    # Client address → pid of each connection, then MONITOR lines per
    # client; the `lua` lines that follow a script call are its own.
    ss -tnpH dst "127.0.0.1:$PORT" 2>/dev/null |
        sed -n 's/^[^ ]* *[0-9]* *[0-9]* *\([0-9.:]*\) .*pid=\([0-9]*\),.*/\1 \2/p' >"$TMP/addr2pid" || true
    local counts
    counts="$(awk -v map="$TMP/addr2pid" '
        BEGIN { while ((getline l < map) > 0) { split(l, a, " "); pid[a[1]] = a[2] } }
        NF >= 3 && $2 ~ /^\[/ {
            addr = $3; sub(/\]$/, "", addr)
            if (addr == "lua") { if (cur != "") lua[cur]++; next }
            cur = (addr in pid) ? pid[addr] : "other"; top[cur]++
        }
        END { for (p in top) print p, top[p], lua[p] + 0 }' "$mon")"
    for np in "$@"; do
        name="${np%%=*}"
        pid="${np#*=}"
        read -r _ top lua < <(awk -v p="$pid" '$1 == p' <<<"$counts"; echo "$pid 0 0") || true
        IDLE_TOP[$name]="$(awk -v n="$top" -v s="$secs" 'BEGIN { printf "%.2f", n / s }')"
        IDLE_ALL[$name]="$(awk -v n="$top" -v l="$lua" -v s="$secs" 'BEGIN { printf "%.2f", (n + l) / s }')"
    done
    echo "MONITOR lines of other connections (short-lived ones): $(awk '$1 == "other" { n = $2 + $3 } END { print n + 0 }' <<<"$counts")"
}

if want idle; then
    ns="idle"
    header "idle: 3 nodes with default settings, ${idle_seconds}s (namespace $ns)"
    idle_pids=()
    for i in 1 2 3; do
        start_node "$ns-$i" --ns "$ns"
        idle_pids+=("$NODE_PID")
    done
    wait_registered "$ns" 30 "$ns-1" "$ns-2" "$ns-3"
    leader="$("$BIN" leader --json --redis "$REDIS_URL" --ns "$ns" | sed -n 's/^ *"node": *"\([^"]*\)".*/\1/p')"
    [[ -n "$leader" ]] || die "no leader among the idle nodes"
    sleep 3 # start-up traffic over
    nps=()
    for i in 1 2 3; do
        nps+=("$ns-$i=${idle_pids[i - 1]}")
    done
    idle_window "$idle_seconds" "${nps[@]}"
    d_total="$IDLE_TOTAL"
    standby=()
    for i in 1 2 3; do
        name="$ns-$i"
        role="standby"
        [[ "$name" == "$leader" ]] && role="leader"
        [[ "$role" == standby ]] && standby+=("$name")
        line="$role: CPU ${IDLE_CPU[$name]} %, RSS ${IDLE_RSS[$name]} MB, ${IDLE_ALL[$name]} commands/s (${IDLE_TOP[$name]} sent by the client)"
        echo "$name $line"
        detail "idle: distsched node $name" "$line"
        {
            echo "d.idle.$name.role=$role"
            echo "d.idle.$name.cpu_pct=${IDLE_CPU[$name]}"
            echo "d.idle.$name.rss_mb=${IDLE_RSS[$name]}"
            echo "d.idle.$name.commands_per_s=${IDLE_ALL[$name]}"
            echo "d.idle.$name.client_commands_per_s=${IDLE_TOP[$name]}"
        } >>"$RESULTS"
    done
    echo "all commands (INFO commandstats): $d_total/s for 3 nodes"
    echo "d.idle.total_commands_per_s=$d_total" >>"$RESULTS"
    for pid in "${idle_pids[@]}"; do
        stop_node "$pid"
    done
    flush
    l="$leader"
    s1="${standby[0]}"
    s2="${standby[1]}"
    b_cpu="-" b_rss="-" b_cmd="-" b_top="-" pct="" mb=""
    if ((need_bullmq)); then
        header "idle: one BullMQ Worker (concurrency $CAPACITY), ${idle_seconds}s"
        node "$BMQ/bullmq.mjs" worker --url "$REDIS_URL" --prefix bmq-idle --concurrency "$CAPACITY" >"$TMP/bullmq-idle.out" 2>&1 &
        bpid=$!
        track_pid "$bpid"
        wait_until 30 grep -q ready "$TMP/bullmq-idle.out" || die "the BullMQ worker was not ready within 30s: $(cat "$TMP/bullmq-idle.out")"
        sleep 3
        idle_window "$idle_seconds" "bullmq=$bpid"
        pct=" %" mb=" MB"
        b_cpu="${IDLE_CPU[bullmq]}"
        b_rss="${IDLE_RSS[bullmq]}"
        b_cmd="$IDLE_TOTAL"
        b_top="${IDLE_TOP[bullmq]}"
        echo "BullMQ worker: CPU $b_cpu %, RSS $b_rss MB, $b_cmd commands/s ($b_top sent by the client)"
        stop_node "$bpid"
        flush
        {
            echo "b.idle.cpu_pct=$b_cpu"
            echo "b.idle.rss_mb=$b_rss"
            echo "b.idle.commands_per_s=$b_cmd"
            echo "b.idle.client_commands_per_s=$b_top"
        } >>"$RESULTS"
    fi
    row "idle CPU per process over ${idle_seconds}s: leader / standbys (BullMQ: one Worker)" \
        "${IDLE_CPU[$l]} / ${IDLE_CPU[$s1]}, ${IDLE_CPU[$s2]} %" "$b_cpu$pct" "-" "< 0.5 %"
    row "idle RSS per process: leader / standbys" \
        "${IDLE_RSS[$l]} / ${IDLE_RSS[$s1]}, ${IDLE_RSS[$s2]} MB" "$b_rss$mb" "-" "< 15 MB"
    row "idle Redis commands/s per node, incl. inside Lua (INFO commandstats of the 3 nodes ÷ 3)" \
        "$(awk -v t="$d_total" 'BEGIN { printf "%.2f", t / 3 }')" "$b_cmd" "-" "< 20 /s"
    row "the same per process (MONITOR): leader / standbys" \
        "${IDLE_ALL[$l]} / ${IDLE_ALL[$s1]}, ${IDLE_ALL[$s2]}" "${IDLE_ALL[bullmq]:--}"
    row "idle client commands/s (round trips, MONITOR): leader / standbys" \
        "${IDLE_TOP[$l]} / ${IDLE_TOP[$s1]}, ${IDLE_TOP[$s2]}" "$b_top"
fi

# --- scaling ---------------------------------------------------------------

if want scaling; then
    row "scaling: no-op throughput with 1 / 2 / 4 worker processes (tasks/s, medians)" \
        "${TPUT_D[1]} / ${TPUT_D[2]} / ${TPUT_D[4]}" \
        "${TPUT_B[1]:--} / ${TPUT_B[2]:--} / ${TPUT_B[4]:--}" \
        "$(ratio "${TPUT_D[1]}" "${TPUT_B[1]:-}") / $(ratio "${TPUT_D[2]}" "${TPUT_B[2]:-}") / $(ratio "${TPUT_D[4]}" "${TPUT_B[4]:-}")"
    for jobs in 10 10000; do
        ns="ticks-$jobs"
        header "scheduler cost per firing with $jobs registered jobs ($((jobs - 1)) far-future + 1 per-second; namespace $ns)"
        if ((jobs > 1)); then
            run_deadline 600 "$DRIVER" put-jobs --redis "$REDIS_URL" --ns "$ns" --count $((jobs - 1)) >"$TMP/$ns.put" ||
                die "put-jobs failed"
            cat "$TMP/$ns.put"
        fi
        start_node "$ns-1" --ns "$ns"
        tick_pid="$NODE_PID"
        wait_until 20 leads "$ns" "$ns-1" || die "$ns-1 did not take the lease within 20s"
        f="$TMP/$ns.ticks"
        run_deadline $((tick_firings + 120)) "$DRIVER" ticks --redis "$REDIS_URL" --ns "$ns" \
            --firings "$tick_firings" --redis-pid "$REDIS_PID" --timeout 60s >"$f" ||
            die "bench ticks failed (logs in $TMP)"
        grep -v '^cmd\.' "$f"
        stop_node "$tick_pid"
        flush
        raw "d.ticks$jobs" "$f"
        row "scheduler work per cron firing with $jobs registered jobs: DUE_JOBS+FIRE calls / µs (SLOWLOG); all the node's Redis commands / EVALSHA µs" \
            "$(get "$f" fire_scripts_calls_per_firing) / $(get "$f" fire_scripts_usec_per_firing) µs; $(get "$f" cmd_total_per_firing) / $(get "$f" evalsha_usec_per_firing) µs" \
            "-" "-" "the same for 10 and 10,000"
        detail "$jobs jobs: firings measured / redis-server CPU ms per firing" \
            "$(get "$f" firings) / $(awk -v t="$(get "$f" redis_cpu_ticks)" -v hz="$CLK_TCK" -v n="$(get "$f" firings)" 'BEGIN { printf "%.1f", t * 1000 / hz / n }')"
        detail "$jobs jobs: top commands per firing" \
            "$(sed -n 's/^cmd\.\([^.]*\)\.calls_per_firing=\(.*\)/\1 \2/p' "$f" | head -n 6 | awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2 }')"
    done
fi

# --- report ----------------------------------------------------------------

LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"
command_line="scripts/bench.sh${ARGV[*]:+ ${ARGV[*]}}"
header "results"
echo "command: $command_line"
echo "machine: $CORES cores ($(nproc --all) online), $(uname -sr); redis-server $REDIS_VERSION (private, no persistence)"
if ((need_bullmq)); then
    echo "BullMQ $BULLMQ_VERSION on Node $NODE_VERSION (ioredis $(sed -n 's/^ioredis=//p' "$TMP/bullmq.version"))"
else
    echo "BullMQ: not run (--no-bullmq or no part that needs it)"
fi
echo "parts: $only; distsched clusters: one scheduler-only leader node + N worker nodes (--role worker --capacity $CAPACITY), one process each"
echo "load average (1/5/15 min): $LOAD_BEFORE before, $LOAD_AFTER after (the figures are only as quiet as the machine)"
{
    echo "command=$command_line"
    echo "cores=$CORES"
    echo "redis=$REDIS_VERSION"
    echo "bullmq=$BULLMQ_VERSION"
    echo "node=$NODE_VERSION"
    echo "load_before=$LOAD_BEFORE"
    echo "load_after=$LOAD_AFTER"
} >>"$RESULTS"

bullmq_head="BullMQ"
if ((need_bullmq)); then
    bullmq_head="BullMQ $BULLMQ_VERSION"
fi
printf '\n### Figures\n\n| figure | distsched | %s | distsched / BullMQ | target (issue 8) |\n|---|---|---|---|---|\n' "$bullmq_head"
for r in "${ROWS[@]}"; do
    IFS='|' read -r c1 c2 c3 c4 c5 <<<"$r"
    printf '| %s | %s | %s | %s | %s |\n' "$c1" "$c2" "$c3" "$c4" "$c5"
done
if ((${#DETAILS[@]})); then
    printf '\n### Details\n\n| figure | value |\n|---|---|\n'
    for r in "${DETAILS[@]}"; do
        printf '| %s | %s |\n' "${r%%|*}" "${r#*|}"
    done
fi
echo
if [[ -n "$results_out" ]]; then
    cp "$RESULTS" "$results_out"
    echo "raw figures written to $results_out"
fi
echo "Latencies from Redis or job timestamps are whole milliseconds (±1 ms)."
