#!/usr/bin/env bash
# What one refresh of each dashboard page costs Redis, counted with
# MONITOR on a private redis-server (never the one on 6379).
#
# Starts a node with the HTTP API, fills it (TASKS tasks, a few failures
# with distinct messages, JOBS cron jobs, one task with a long log), finds
# the HTTP handlers' Redis connections, then for each page sends exactly
# the requests one refresh of it sends and counts the Redis commands those
# connections ran: sent by the node, and run inside its scripts (MONITOR
# shows those as "lua"). Background work of the node's other threads
# (heartbeats, the leader's renewals) is not counted.
#
# usage: scripts/dashboard-cost.sh [--tasks N] [--jobs N]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

tasks=2000
jobs=60
while (($#)); do
    case "$1" in
        --tasks) tasks="$2"; shift 2 ;;
        --jobs) jobs="$2"; shift 2 ;;
        -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (try --help)" ;;
    esac
done

ensure_redis
command -v curl >/dev/null 2>&1 || die "curl is needed"
install_cleanup_trap
cargo build -q
bin=target/debug/distsched

dir="$(mktemp -d)"
track_dir "$dir"
rport="$(free_port)"
start_redis "$rport" "$dir/redis"
hport="$(free_port)"
ns=cost
RUST_LOG=warn "$bin" node --id cost-node --redis "$REDIS_URL" --ns "$ns" \
    --http "$hport" --allow-adhoc-shell --capacity 10 >"$dir/node.log" 2>&1 &
track_pid $!
base="http://127.0.0.1:$hport"
wait_until 20 curl -sf "$base/leader" || die "the node did not start (see $dir/node.log)"

api() { curl -s "$@"; }
post() { curl -s -H 'Content-Type: application/json' -d "$2" "$base$1"; }
cli() { "$bin" --redis "$REDIS_URL" --ns "$ns" "$@"; }

info "filling: $tasks tasks, $jobs jobs"
# One script call per 500 tasks: the example bench's submit_many would do,
# the CLI per task is slow; a shell loop through the HTTP API is enough.
for ((i = 0; i < tasks; i++)); do
    post /tasks "{\"executor\":\"noop\",\"payload\":{\"n\":$i}}" >/dev/null
done
for ((i = 0; i < 20; i++)); do
    post /tasks "{\"executor\":\"shell\",\"max_retries\":0,\"payload\":{\"argv\":[\"sh\",\"-c\",\"echo disk $i full >&2; exit $((i % 3 + 1))\"]}}" >/dev/null
done
for ((i = 0; i < jobs; i++)); do
    post /jobs "{\"id\":\"job-$i\",\"executor\":\"noop\",\"cron\":\"*/$((i % 50 + 10)) * * * * *\"}" >/dev/null
done
long="$(post /tasks '{"executor":"shell","max_retries":0,"payload":{"argv":["seq","1","150"]}}' | sed 's/.*"id":"\([^"]*\)".*/\1/')"
wait_until 60 sh -c "[ \"\$(curl -s '$base/stats' | grep -o '\"pending\":0,\"delayed\":0,\"queued\":0,\"running\":0')\" ]" ||
    die "the tasks did not drain"
wait_until 30 sh -c "curl -s '$base/tasks/$long' | grep -q '\"success\"'" || die "the long task did not end"

# monitor FILE CMD...: MONITOR while CMD runs, into FILE.
monitor() {
    local file="$1"
    shift
    redis-cli -p "$rport" monitor >"$file" &
    local mon=$!
    # MONITOR answers OK once it is on.
    wait_until 5 grep -q OK "$file" || true
    "$@" >/dev/null
    # The last command MONITOR shows is this marker's.
    redis-cli -p "$rport" echo dashboard-cost-marker >/dev/null
    wait_until 5 grep -q dashboard-cost-marker "$file" || true
    kill "$mon" 2>/dev/null || true
    wait "$mon" 2>/dev/null || true
}

# The handlers' connections: each serves one request at a time, with its
# own connection; ask for odd task ids until every handler showed its own.
probe() {
    local i
    for ((i = 0; i < 40; i++)); do api "$base/tasks/cost-probe-$i" >/dev/null; done
}
monitor "$dir/probe.txt" probe
handlers="$(grep -o '\[0 [0-9.:]*\] "HGETALL" "{'"$ns"'}:task:cost-probe' "$dir/probe.txt" |
    awk '{print $2}' | tr -d ']' | sort -u | tr '\n' ' ')"
[[ -n "$handlers" ]] || die "no handler connection found"

# count NAME URL...: the commands one refresh (these requests) costs.
count() {
    local name="$1"
    shift
    refresh() { local u; for u in "$@"; do api "$base/$u" >/dev/null; done; }
    # The costly reads are served from memory for 2 s: wait that out first.
    sleep 2.1
    monitor "$dir/page.txt" refresh "$@"
    awk -v handlers="$handlers" -v name="$name" '
        BEGIN { n = split(handlers, h, " "); for (i = 1; i <= n; i++) mine[h[i]] = 1 }
        / \[0 lua\] / { if (ours) { lua++ } ; next }
        {
            addr = $3; sub(/\]$/, "", addr)
            ours = (addr in mine)
            if (ours) sent++
        }
        END { printf "| %s | %d | %d | %d |\n", name, sent + lua, sent, lua }
    ' "$dir/page.txt"
}

task="$(api "$base/search?limit=1" | sed 's/.*"tasks":\[{"id":"\([^"]*\)".*/\1/')"
printf '\n%s tasks, %s jobs, 1 worker\n\n' "$tasks" "$jobs"
printf '| page (one refresh) | Redis commands | sent | run in scripts |\n|---|---|---|---|\n'
count "Overview, first load (24 h chart)" "stats" "history?minutes=1440"
count "Overview" "stats" "history?minutes=3"
count "Tasks (no filter, 50 rows)" "search?limit=50"
count "Tasks, payload search (whole window)" "search?limit=50&payload=no-such-text"
count "Task detail" "tasks/$task" "tasks/$task/logs?after=0&limit=1000"
count "Task detail, live tail (no new line)" "tasks/$long" "tasks/$long/logs?after=152&limit=1000"
count "Jobs (50 per page)" "joblist?limit=50&fires=5&firings=5"
count "Job detail" "jobs/job-1" "jobs/job-1/next?count=10" "search?job=job-1&limit=20&window=1000"
count "Workers" "workers" "stats"
count "Failures (window 10,000)" "failures"
