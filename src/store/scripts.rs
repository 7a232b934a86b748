//! Every Lua script distsched runs, in this one place; [`super::calls`]
//! builds their arguments.
//!
//! Scripts are loaded once per process and run with `redis::Script`, which
//! sends EVALSHA and falls back to loading the script on NOSCRIPT (after a
//! Redis restart, say). Leader writes are built as the fence prelude
//! (`lua/fence.lua`) followed by the shared helpers (`lua/lib.lua`) and the
//! body, so no leader write can skip the
//! owner + epoch check; see [`super::Fence`].

use std::sync::LazyLock;

use redis::Script;

use super::keys::DERIVED;
use crate::executor::MAX_TASK_LOG_BYTES;

const FENCE: &str = include_str!("lua/fence.lua");
const LIB: &str = include_str!("lua/lib.lua");

/// The constants `lib.lua` takes from Rust, so each has one definition:
/// the log byte cap and the kinds of key scripts build at run time.
fn lib_constants() -> String {
    let kinds: Vec<String> = DERIVED
        .iter()
        .map(|(name, kind)| format!("{name} = '{kind}'"))
        .collect();
    format!(
        "local LOG_BYTES = {MAX_TASK_LOG_BYTES}\nlocal KIND = {{{}}}",
        kinds.join(", ")
    )
}

fn plain(body: &str) -> Script {
    Script::new(&format!("{}\n{}\n{body}", lib_constants(), lib_for(body)))
}

fn fenced(body: &str) -> Script {
    Script::new(&format!(
        "{FENCE}\n{}\n{}\n{body}",
        lib_constants(),
        lib_for(body)
    ))
}

/// The part of `lib.lua` that `body` uses: its head (the namespace prefix
/// and `P`) and the functions `body` names, with the functions those name,
/// in the file's order. Redis runs a script's whole text on every call and
/// creates a closure per `local function`: a script that carried the whole
/// library would pay for some 30 of them per call (measured: SUBMIT 28 µs
/// with the old 10-function library, 40 µs with all of this one).
fn lib_for(body: &str) -> String {
    let (head, units) = lib_units();
    let mut used = vec![false; units.len()];
    let mut texts: Vec<&str> = vec![body];
    while let Some(text) = texts.pop() {
        for (i, (name, unit)) in units.iter().enumerate() {
            if !used[i] && mentions(text, name) {
                used[i] = true;
                texts.push(unit);
            }
        }
    }
    let mut out = head.to_string();
    for (i, (_, unit)) in units.iter().enumerate() {
        if used[i] {
            out.push_str(unit);
        }
    }
    out
}

/// `lib.lua` as its head (everything before the first function) and its
/// top-level functions, each `(name, text with the comment above it)`. A
/// function runs from a line `local function NAME(` to the next line that
/// is exactly `end`; text between functions that belongs to none (section
/// banners) is left out.
fn lib_units() -> (&'static str, Vec<(&'static str, String)>) {
    static UNITS: LazyLock<(&'static str, Vec<(&'static str, String)>)> = LazyLock::new(|| {
        let lines: Vec<&str> = LIB.split_inclusive('\n').collect();
        let mut units = Vec::new();
        let mut head_end = None;
        let mut i = 0;
        while i < lines.len() {
            let Some(rest) = lines[i].strip_prefix("local function ") else {
                i += 1;
                continue;
            };
            let name = rest.split('(').next().unwrap_or("").trim();
            let mut from = i;
            while from > 0 && lines[from - 1].starts_with("--") {
                from -= 1;
            }
            head_end.get_or_insert(from);
            let mut to = i;
            while to < lines.len() && lines[to].trim_end() != "end" {
                to += 1;
            }
            units.push((name, lines[from..=to.min(lines.len() - 1)].concat()));
            i = to + 1;
        }
        let head_len: usize = lines[..head_end.unwrap_or(lines.len())]
            .iter()
            .map(|l| l.len())
            .sum();
        (&LIB[..head_len], units)
    });
    (UNITS.0, UNITS.1.clone())
}

/// True when `text` names `word` as a whole identifier.
fn mentions(text: &str, word: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

/// Take the leader lease (SET NX PX + INCR epoch). Not fenced: it is how a
/// node gets its epoch.
pub static ACQUIRE: LazyLock<Script> = LazyLock::new(|| plain(include_str!("lua/acquire.lua")));

/// Extend the lease if the caller still holds it with its epoch.
pub static RENEW: LazyLock<Script> = LazyLock::new(|| plain(include_str!("lua/renew.lua")));

/// Give the lease up and wake a standby.
pub static RELEASE: LazyLock<Script> = LazyLock::new(|| plain(include_str!("lua/release.lua")));

/// Register or refresh a registry entry.
pub static HEARTBEAT: LazyLock<Script> = LazyLock::new(|| plain(include_str!("lua/heartbeat.lua")));

/// Remove this node's registry entry.
pub static DEREGISTER: LazyLock<Script> =
    LazyLock::new(|| plain(include_str!("lua/deregister.lua")));

/// Fenced: drop dead nodes from the index and record the leader's tick.
pub static RECOVER_TICK: LazyLock<Script> =
    LazyLock::new(|| fenced(include_str!("lua/recover_tick.lua")));

/// Create a task.
pub static SUBMIT: LazyLock<Script> = LazyLock::new(|| plain(include_str!("lua/submit.lua")));

/// Fenced: promote due delayed tasks; read workers, the pending head and
/// the heads of the parks that workers have free slots for.
pub static DISPATCH_READ: LazyLock<Script> =
    LazyLock::new(|| fenced(include_str!("lua/dispatch_read.lua")));

/// Fenced: move assigned tasks onto worker queues, park tasks that cannot
/// be placed, put parks back into pending.
pub static DISPATCH_COMMIT: LazyLock<Script> =
    LazyLock::new(|| fenced(include_str!("lua/dispatch_commit.lua")));

/// Worker: claim queued items and mark them running.
pub static START: LazyLock<Script> = LazyLock::new(|| plain(include_str!("lua/start.lua")));

/// Worker: record attempt outcomes (batched), retry or end the tasks.
pub static FINISH: LazyLock<Script> = LazyLock::new(|| plain(include_str!("lua/finish.lua")));

/// Cancel a task wherever it is.
pub static CANCEL: LazyLock<Script> = LazyLock::new(|| plain(include_str!("lua/cancel.lua")));

/// Worker shutdown: mark draining and hand queued items back to pending.
pub static REQUEUE: LazyLock<Script> = LazyLock::new(|| plain(include_str!("lua/requeue.lua")));

/// Mark a task as waited on and read it.
pub static WAIT_MARK: LazyLock<Script> = LazyLock::new(|| plain(include_str!("lua/wait_mark.lua")));

/// Read the cluster summary (`stats`, `/metrics`).
pub static STATS: LazyLock<Script> = LazyLock::new(|| plain(include_str!("lua/stats.lua")));

/// Store a job definition and (re)schedule it.
pub static JOB_PUT: LazyLock<Script> = LazyLock::new(|| plain(include_str!("lua/job_put.lua")));

/// Remove a job.
pub static JOB_RM: LazyLock<Script> = LazyLock::new(|| plain(include_str!("lua/job_rm.lua")));

/// Read the jobs due now.
pub static DUE_JOBS: LazyLock<Script> = LazyLock::new(|| plain(include_str!("lua/due_jobs.lua")));

/// Fenced: fire due jobs, exactly once per slot.
pub static FIRE: LazyLock<Script> = LazyLock::new(|| fenced(include_str!("lua/fire.lua")));

/// Fenced: set or clear a job's broken mark, and move a broken job's next
/// fire time to its retry time.
pub static JOB_MARK: LazyLock<Script> = LazyLock::new(|| fenced(include_str!("lua/job_mark.lua")));

/// Read one chunk of the dashboard's task search (filters over the newest
/// entries of the task index).
pub static SEARCH: LazyLock<Script> = LazyLock::new(|| plain(include_str!("lua/search.lua")));

/// Read a task's log lines from an absolute line number on (live tails).
pub static LOG_SINCE: LazyLock<Script> = LazyLock::new(|| plain(include_str!("lua/log_since.lua")));

/// Worker: write running attempts' log lines and progress (the `live`
/// thread, about once a second).
pub static LIVE: LazyLock<Script> = LazyLock::new(|| plain(include_str!("lua/live.lua")));

/// Every script by name, for the tests that check them all
/// (`tests/script_keys.rs`).
pub fn all() -> Vec<(&'static str, &'static Script)> {
    let all: [(&'static str, &'static LazyLock<Script>); 23] = [
        ("ACQUIRE", &ACQUIRE),
        ("RENEW", &RENEW),
        ("RELEASE", &RELEASE),
        ("HEARTBEAT", &HEARTBEAT),
        ("DEREGISTER", &DEREGISTER),
        ("RECOVER_TICK", &RECOVER_TICK),
        ("SUBMIT", &SUBMIT),
        ("DISPATCH_READ", &DISPATCH_READ),
        ("DISPATCH_COMMIT", &DISPATCH_COMMIT),
        ("START", &START),
        ("FINISH", &FINISH),
        ("CANCEL", &CANCEL),
        ("REQUEUE", &REQUEUE),
        ("WAIT_MARK", &WAIT_MARK),
        ("STATS", &STATS),
        ("JOB_PUT", &JOB_PUT),
        ("JOB_RM", &JOB_RM),
        ("DUE_JOBS", &DUE_JOBS),
        ("FIRE", &FIRE),
        ("JOB_MARK", &JOB_MARK),
        ("SEARCH", &SEARCH),
        ("LOG_SINCE", &LOG_SINCE),
        ("LIVE", &LIVE),
    ];
    all.into_iter()
        .map(|(name, s)| (name, LazyLock::force(s)))
        .collect()
}

/// `body` after the shared helpers it names (`lib.lua`), not fenced: how
/// tests call a helper (the capability rule, the park-key parser) directly.
pub fn with_lib(body: &str) -> Script {
    plain(body)
}
