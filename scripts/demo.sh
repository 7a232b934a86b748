#!/usr/bin/env bash
# A live demo of distsched: leader election with numbers, then tasks.
#
# Starts a private redis-server on a free port, builds the release binary,
# starts three nodes (node-1..3, short leases so the demo is quick; each
# also declares a shell executor `hello`), shows `distsched leader` and
# `distsched workers`, then:
#
#   crash failover     kill -9 the leader; time until another node leads
#                      (bounded by the lease TTL the dead leader still had)
#   graceful handover  SIGTERM the new leader; time until another node leads
#                      (the lease is released on shutdown: well under a second)
#
# and restarts the stopped nodes. With --runs N the two measurements are
# repeated N times (all three nodes registered again before each round) and
# the median and max of each are printed. Then it submits 30 `noop` tasks
# and 3 `hello` shell tasks, waits for them, shows how they spread over the
# three workers, one task with `task show` and its `task logs`; then adds a
# per-second cron job, kills the leader with kill -9 while it fires, and
# shows that every slot got exactly one task. Everything
# it started (nodes, Redis, temp dir) is cleaned up on exit, also on failure
# or Ctrl-C (the temp dir with the logs is kept on failure).
#
# usage: scripts/demo.sh [--runs N]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

usage() {
    sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'
}

runs=1
while (($#)); do
    case "$1" in
        --runs)
            (($# >= 2)) || die "--runs needs a value"
            runs="$2"
            shift 2
            ;;
        --runs=*)
            runs="${1#--runs=}"
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
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer (got '$runs')"

NODES=(node-1 node-2 node-3)
NODE_ARGS=(--lease-ttl 3s --renew-interval 1s --heartbeat-interval 1s --heartbeat-timeout 4s)
POLL=0.02 # seconds between two `distsched leader --json` polls
declare -A NODE_PID=()

install_cleanup_trap
ensure_redis

# The demo's settings are its own: drop any DISTSCHED_* from the caller's
# environment (a config file, a namespace, a Redis URL).
while read -r var; do
    unset "$var"
done < <(compgen -e | grep '^DISTSCHED_' || true)

header "build: cargo build --release"
cargo build --release
BIN="${CARGO_TARGET_DIR:-target}/release/distsched"
[[ -x "$BIN" ]] || die "no binary at $BIN after the build"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/distsched-demo.XXXXXX")"
track_dir "$TMP"

header "redis: private server"
start_redis "$(free_port)" "$TMP"
export DISTSCHED_REDIS_URL="$REDIS_URL"
echo "redis-server pid $REDIS_PID at $REDIS_URL (no persistence)"
echo "node logs in $TMP (removed on exit)"

# The `hello` shell executor every node declares: argv, no shell string
# interpolation of the payload; the payload arrives on stdin, the task's id
# and attempt in the environment, and the last JSON line on stdout becomes
# the result's data.
cat >"$TMP/hello.sh" <<'SH'
payload="$(cat)"
echo "hello from distsched: task $DISTSCHED_TASK_ID, attempt $DISTSCHED_ATTEMPT, payload $payload"
printf '{"greeted": %s, "pid": %d}\n' "$payload" "$$"
SH
NODE_ARGS+=(--exec "hello=sh '$TMP/hello.sh'")

# Prints the last lines of every node log, then fails.
fail() {
    local id
    for id in "${NODES[@]}"; do
        if [[ -f "$TMP/$id.log" ]]; then
            printf '\n--- last lines of %s.log ---\n' "$id" >&2
            tail -n 15 "$TMP/$id.log" >&2 || true
        fi
    done
    die "$*"
}

# The value of a top-level scalar field in pretty-printed JSON on stdin.
json_field() {
    sed -n "s/^ *\"$1\": *\"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\} *\$/\1/p" | head -n 1
}

start_node() {
    local id="$1"
    printf '\n[%s] starting %s\n' "$(date +%T)" "$id" >>"$TMP/$id.log"
    "$BIN" node --id "$id" "${NODE_ARGS[@]}" >>"$TMP/$id.log" 2>&1 &
    NODE_PID[$id]=$!
    track_pid "${NODE_PID[$id]}"
    echo "started $id (pid ${NODE_PID[$id]})"
}

# True when every node in NODES is in the registry with the pid we started
# it with (so a restarted node counts only once its new process is in).
all_registered() {
    local json pairs=() id
    for id in "${NODES[@]}"; do
        [[ -n "${NODE_PID[$id]:-}" ]] || return 1
        pairs+=("$id=${NODE_PID[$id]}")
    done
    json="$("$BIN" workers --json 2>/dev/null)" || return 1
    printf '%s' "$json" | python3 -c '
import json, sys
live = {n["id"]: n["pid"] for n in json.load(sys.stdin)}
want = dict(p.split("=", 1) for p in sys.argv[1:])
sys.exit(0 if all(str(live.get(i)) == pid for i, pid in want.items()) else 1)
' "${pairs[@]}"
}

# Fails (with the logs) if a node we started has exited on its own.
check_alive() {
    local id
    for id in "${NODES[@]}"; do
        if [[ -n "${NODE_PID[$id]:-}" ]] && _pid_gone "${NODE_PID[$id]}"; then
            fail "$id (pid ${NODE_PID[$id]}) exited unexpectedly"
        fi
    done
}

# wait_registered SECS: until all_registered, failing at once if a node dies.
wait_registered() {
    local deadline=$(($(now_ms) + $1 * 1000))
    until all_registered; do
        check_alive
        (($(now_ms) < deadline)) || fail "not all of ${NODES[*]} registered within $1 s"
        sleep 0.05
    done
}

# True when ID has no live registry entry (a kill -9'd node's entry lives
# until its heartbeat timeout; its id cannot be reused before that).
unregistered() {
    local json
    json="$("$BIN" workers --json 2>/dev/null)" || return 1
    ! grep -q "\"id\": \"$1\"" <<<"$json"
}

# wait_for_leader SECS [NOT]: polls `distsched leader --json` every $POLL s
# until some node other than NOT leads. Sets LEADER, LEADER_EPOCH and
# LEADER_SEEN_MS (when it was seen). Returns 1 if SECS pass first.
wait_for_leader() {
    local secs="$1" not="${2:-}" json node deadline
    deadline=$(($(now_ms) + secs * 1000))
    while :; do
        if json="$("$BIN" leader --json 2>/dev/null)"; then
            LEADER_SEEN_MS=$(now_ms)
            node="$(json_field node <<<"$json")"
            if [[ -n "$node" && "$node" != "$not" ]]; then
                LEADER="$node"
                LEADER_EPOCH="$(json_field epoch <<<"$json")"
                return 0
            fi
        fi
        (($(now_ms) < deadline)) || return 1
        sleep "$POLL"
    done
}

# kill -9 a node and reap it at once (quietly: no "Killed" job notice).
kill9_node() {
    local id="$1" pid="${NODE_PID[$1]}"
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null || true
    untrack_pid "$pid"
    unset "NODE_PID[$id]"
}

# Waits for a node we sent SIGTERM to exit by itself (SIGKILL after 15 s);
# prints its exit status (0 = clean shutdown).
reap_node() {
    local id="$1" pid="${NODE_PID[$1]}" rc=0
    wait_exit "$pid" 15 || rc=$?
    if ((rc == 124)); then
        warn "$id still running 15s after SIGTERM: sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    untrack_pid "$pid"
    unset "NODE_PID[$id]"
    echo "$id exited with status $rc$( ((rc == 0)) && echo ' (clean shutdown)')"
}

# Restarts every node in NODES that is not running, then waits until all
# three are registered with their new pids and somebody leads.
restart_stopped() {
    local id
    for id in "${NODES[@]}"; do
        [[ -z "${NODE_PID[$id]:-}" ]] || continue
        if ! unregistered "$id"; then
            echo "waiting for $id's old registry entry to expire (heartbeat timeout)"
            wait_until 15 unregistered "$id" || fail "$id's old registry entry did not expire"
        fi
        start_node "$id"
    done
    wait_registered 20
    wait_for_leader 20 || fail "no leader within 20s"
    echo "all ${#NODES[@]} nodes registered; $LEADER leads (epoch $LEADER_EPOCH)"
}

header "cluster: starting ${#NODES[@]} nodes (${NODE_ARGS[*]})"
for id in "${NODES[@]}"; do
    start_node "$id"
done
t0=$(now_ms)
wait_registered 20
wait_for_leader 20 || fail "no leader within 20s"
echo "all ${#NODES[@]} nodes registered, $LEADER elected, $((LEADER_SEEN_MS - t0)) ms after the last start"

header "distsched leader"
"$BIN" leader || true
header "distsched workers"
"$BIN" workers

crash=()
graceful=()
for ((round = 1; round <= runs; round++)); do
    tag=""
    ((runs == 1)) || tag=" (round $round/$runs)"

    header "crash failover$tag: kill -9 the leader"
    old="$LEADER"
    ttl_left="$("$BIN" leader --json 2>/dev/null | json_field ttl_ms)" || true
    t0=$(now_ms)
    kill9_node "$old"
    wait_for_leader 30 "$old" || fail "no new leader within 30s of killing $old"
    dt=$((LEADER_SEEN_MS - t0))
    crash+=("$dt")
    echo "killed $old (its lease had ${ttl_left:-?} ms left); $LEADER leads after $dt ms (epoch $LEADER_EPOCH)"
    "$BIN" leader || true

    header "graceful handover$tag: SIGTERM the new leader"
    old="$LEADER"
    t0=$(now_ms)
    kill -TERM "${NODE_PID[$old]}"
    wait_for_leader 30 "$old" || fail "no new leader within 30s of stopping $old"
    dt=$((LEADER_SEEN_MS - t0))
    graceful+=("$dt")
    echo "stopped $old; $LEADER leads after $dt ms (epoch $LEADER_EPOCH)"
    reap_node "$old"
    "$BIN" leader || true

    header "restart the stopped nodes$tag"
    restart_stopped
done

header "distsched workers (after the restarts)"
"$BIN" workers

# stats LABEL MS...: one summary line (median, max, all values).
stats() {
    local label="$1"
    shift
    printf '%s\n' "$@" | sort -n | awk -v label="$label" '
        { v[NR] = $1 }
        END {
            med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            all = v[1]; for (i = 2; i <= NR; i++) all = all " " v[i]
            printf "%-19s median %6.0f ms   max %6d ms   (sorted: %s)\n", label, med, v[NR], all
        }'
}

header "summary: $runs run(s), lease TTL 3s, renew 1s, poll every $(awk -v s="$POLL" 'BEGIN { print s * 1000 }') ms"
stats "crash failover" "${crash[@]}"
stats "graceful handover" "${graceful[@]}"

header "tasks: 30 noop + 3 hello (shell) tasks on the ${#NODES[@]}-node cluster"
check_alive
t0=$(now_ms)
noop_ids=()
for ((i = 1; i <= 30; i++)); do
    noop_ids+=("$("$BIN" task submit --exec noop)") || fail "task submit failed"
done
hello_ids=()
for name in alice bob carol; do
    hello_ids+=("$("$BIN" task submit --exec hello --payload "\"$name\"")") || fail "task submit failed"
done
all_ids=("${noop_ids[@]}" "${hello_ids[@]}")
echo "submitted ${#noop_ids[@]} noop and ${#hello_ids[@]} hello tasks with \`distsched task submit\` ($(($(now_ms) - t0)) ms)"

# True when every task in all_ids has ended. Prints a status count.
all_ended() {
    "$BIN" task list --json --limit 1000 2>/dev/null | python3 -c '
import collections, json, sys
want = set(sys.argv[1:])
tasks = [t for t in json.load(sys.stdin) if t["id"] in want]
count = collections.Counter(t["status"] for t in tasks)
print(" ".join(f"{s}={n}" for s, n in sorted(count.items())))
ended = sum(n for s, n in count.items() if s in ("success", "failed", "cancelled"))
sys.exit(0 if ended == len(want) else 1)
' "${all_ids[@]}"
}
wait_until 30 all_ended || fail "not every task ended within 30s: $(all_ended || true)"
echo "all ${#all_ids[@]} ended $(($(now_ms) - t0)) ms after the first submit: $(all_ended)"

header "where they ran: distsched task list --json, counted by worker"
"$BIN" task list --json --limit 1000 | python3 -c '
import collections, json, sys
want = set(sys.argv[1:])
rows = collections.defaultdict(collections.Counter)
for t in json.load(sys.stdin):
    if t["id"] in want:
        rows[t["worker"] or "-"][t["executor"]] += 1
        rows[t["worker"] or "-"][t["status"]] += 1
print("%-8s %5s %6s %8s" % ("WORKER", "NOOP", "HELLO", "SUCCESS"))
for w in sorted(rows):
    c = rows[w]
    print("%-8s %5d %6d %8d" % (w, c["noop"], c["hello"], c["success"]))
' "${all_ids[@]}"

header "distsched task show ${hello_ids[0]}"
"$BIN" task show "${hello_ids[0]}"
header "distsched task logs ${hello_ids[0]}"
"$BIN" task logs "${hello_ids[0]}"

header "cron: a per-second job keeps firing once per slot while the leader is killed"
check_alive
"$BIN" job add tick --exec noop --cron "* * * * * *" >/dev/null || fail "job add failed"
echo "added job tick (cron \"* * * * * *\", every second)"

# fired_at_least N: true once the job has N tasks.
fired_at_least() {
    local n
    n="$("$BIN" task list --job tick --json --limit 1000 2>/dev/null |
        python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')" || return 1
    ((n >= $1))
}
wait_until 20 fired_at_least 5 || fail "the job did not fire 5 times within 20s"
old="$LEADER"
kill9_node "$old"
t0=$(now_ms)
wait_for_leader 30 "$old" || fail "no new leader within 30s of killing $old"
echo "killed the leader $old; $LEADER leads after $((LEADER_SEEN_MS - t0)) ms (epoch $LEADER_EPOCH)"
fired_now="$("$BIN" task list --job tick --json --limit 1000 | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')"
wait_until 20 fired_at_least "$((fired_now + 5))" || fail "the job did not keep firing after the failover"
"$BIN" job disable tick >/dev/null
"$BIN" job show tick | sed -n '1,12p'
"$BIN" task list --job tick --json --limit 1000 | python3 -c '
import collections, json, sys
slots = collections.Counter(int(t["id"].rsplit("@", 1)[1]) for t in json.load(sys.stdin))
first, last = min(slots), max(slots)
window = range(first, last + 1, 1000)
missing = [s for s in window if s not in slots]
twice = [s for s, n in slots.items() if n > 1]
print(f"{len(window)} slots from the first firing to the last: "
      f"{len(slots)} tasks, missing {len(missing)}, fired twice {len(twice)}")
sys.exit(1 if missing or twice else 0)
' || fail "a slot was missed or fired twice"
restart_stopped

header "cleanup"
t0=$(now_ms)
lib_cleanup 0
echo "stopped the nodes and redis-server, removed $TMP ($(($(now_ms) - t0)) ms)"
