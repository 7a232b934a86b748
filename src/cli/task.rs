//! `distsched task submit|show|list|cancel|logs`.

use std::io::Read;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lexopt::Parser;

use distsched::ListFilter;
use distsched::config::format_duration;
use distsched::{Balancer, Status, Task, TaskSpec};

use super::time::{format_time, parse_time};
use super::{
    CliResult, Failure, Opt, duration_flag, exit, human_ms, next, number_flag, parse, print_json,
    print_table,
};

const HELP: &str = "\
usage: distsched task <command> [options]

commands:
  submit --exec NAME [options]   create a task; prints its id
  show ID                        one task: status, attempts, result
  list [--status S] [--job J] [--limit N]
  cancel ID                      cancel a pending, delayed or running task
  logs ID [--follow]             the task's log lines; --follow: keep printing
                                 new lines until the task ends

submit options:
  --exec NAME          executor: a declared shell command, http, rpc, shell, or a Rust function
  --payload JSON|-     payload JSON (`-` reads it from stdin; default null)
  --priority N         -1000..1000, higher first (default 0)
  --delay DUR          start no earlier than DUR from now
  --at TIME            start no earlier than TIME (RFC 3339, e.g. 2026-01-02T03:04:05Z, or Unix seconds)
  --timeout DUR        attempt timeout (default 5m)
  --expires DUR        not started within DUR of its ready time: cancelled (expired)
  --retries N          retries after a failure (default 3)
  --retry-delay DUR    first retry delay (default 10s)
  --backoff F          delay multiplier per retry (default 2.0)
  --key KEY            idempotency key: a repeat submit returns the first task
  --tags a,b           only workers carrying these tags
  --balancer B         least-tasks, round-robin, random, weighted, consistent-hash
  --route-key K        routing key for consistent-hash (default the task id)
  --id ID              explicit task id
  --wait               wait for the end; exit 0 success, 1 failed, 2 cancelled, 3 still running
  --wait-timeout DUR   how long --wait waits (default 5m plus the task timeout)

every command also takes --redis URL, --ns NAME, --json";

/// `distsched task ...`.
pub fn run(parser: &mut Parser) -> CliResult {
    let Some(sub) = next(parser)? else {
        outln!("{HELP}");
        return Ok(exit::USAGE);
    };
    let sub = match sub {
        Opt::Value(v) => v.to_string_lossy().into_owned(),
        Opt::Long(l) if l == "help" => "help".into(),
        Opt::Short('h') => "help".into(),
        other => return Err(other.unexpected("task")),
    };
    match sub.as_str() {
        "submit" => submit(parser),
        "show" => show(parser),
        "list" => list(parser),
        "cancel" => cancel(parser),
        "logs" => logs(parser),
        "help" => {
            outln!("{HELP}");
            Ok(exit::OK)
        }
        other => Err(Failure::usage(format!(
            "unknown task command `{other}` (expected submit, show, list, cancel or logs)"
        ))),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn submit(parser: &mut Parser) -> CliResult {
    let valued = [
        "exec",
        "payload",
        "priority",
        "delay",
        "at",
        "timeout",
        "expires",
        "retries",
        "retry-delay",
        "backoff",
        "key",
        "tags",
        "balancer",
        "route-key",
        "id",
        "wait-timeout",
    ];
    let args = parse(parser, "task submit", HELP, &valued, &["wait"])?;
    args.no_id("task submit")?;
    let executor = args
        .get("exec")
        .ok_or_else(|| Failure::usage("`distsched task submit` needs --exec NAME"))?;
    let mut spec = TaskSpec::new(executor);
    if let Some(p) = args.get("payload") {
        let text = if p == "-" {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| Failure::usage(format!("cannot read the payload from stdin: {e}")))?;
            s
        } else {
            p.to_string()
        };
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Failure::usage(format!("invalid --payload: not JSON ({e})")))?;
        spec.payload = json.to_string();
    }
    if let Some(p) = number_flag(&args, "priority", "a whole number from -1000 to 1000")? {
        spec.priority = p;
    }
    match (duration_flag(&args, "delay")?, args.get("at")) {
        (Some(_), Some(_)) => return Err(Failure::usage("give --delay or --at, not both")),
        (Some(d), None) => spec.delay = Some(d),
        (None, Some(at)) => spec.not_before_ms = Some(parse_time(at)?),
        (None, None) => {}
    }
    if let Some(t) = duration_flag(&args, "timeout")? {
        spec.timeout = t;
    }
    spec.expires = duration_flag(&args, "expires")?;
    if let Some(r) = number_flag(&args, "retries", "a whole number")? {
        spec.max_retries = r;
    }
    if let Some(d) = duration_flag(&args, "retry-delay")? {
        spec.retry_delay = d;
    }
    if let Some(b) = number_flag(&args, "backoff", "a number such as 2.0")? {
        spec.backoff = b;
    }
    spec.key = args.get("key").map(String::from);
    spec.tags = args.list("tags");
    spec.balancer = args.get("balancer").map(Balancer::parse).transpose()?;
    spec.route_key = args.get("route-key").map(String::from);
    spec.id = args.get("id").map(String::from);
    let wait_timeout =
        duration_flag(&args, "wait-timeout")?.unwrap_or(spec.timeout + Duration::from_secs(300));
    spec.validate()?;

    let mut client = args.common.client()?;
    let submitted = client.submit(&spec)?;
    if !args.has("wait") {
        if args.common.json {
            print_json(&submitted)?;
        } else {
            outln!("{}", submitted.id);
        }
        return Ok(exit::OK);
    }
    match client.wait(&submitted.id, wait_timeout)? {
        Some(task) => {
            print_task(&task, args.common.json)?;
            Ok(match task.status {
                Status::Success => exit::OK,
                Status::Cancelled => 2,
                _ => exit::FAILURE,
            })
        }
        None => {
            eprintln!(
                "distsched: task {} still not ended after {}",
                submitted.id,
                format_duration(wait_timeout)
            );
            Ok(3)
        }
    }
}

fn show(parser: &mut Parser) -> CliResult {
    let args = parse(parser, "task show", HELP, &[], &[])?;
    let task = args.common.client()?.task(args.id("task show")?)?;
    print_task(&task, args.common.json)?;
    Ok(exit::OK)
}

fn print_task(task: &Task, json: bool) -> CliResult<()> {
    if json {
        return print_json(task);
    }
    let time = |ms: Option<u64>| ms.map(format_time).unwrap_or_else(|| "-".into());
    let mut rows: Vec<(&str, String)> = vec![
        ("id", task.id.clone()),
        ("status", task.status.to_string()),
        ("executor", task.executor.clone()),
        ("job", task.job.clone().unwrap_or_else(|| "-".into())),
        ("priority", task.priority.to_string()),
        (
            "attempt",
            format!(
                "{} (failures {}, retries allowed {})",
                task.attempt, task.failures, task.max_retries
            ),
        ),
        ("worker", task.worker.clone().unwrap_or_else(|| "-".into())),
        ("created", time(Some(task.created_ms))),
        ("ready", time(task.ready_ms)),
        ("started", time(task.started_ms)),
        ("ended", time(task.ended_ms)),
        ("payload", task.payload.to_string()),
    ];
    if let Some(t) = task.next_attempt_ms {
        rows.push(("next attempt", format_time(t)));
    }
    if let Some(t) = task.expires_ms {
        rows.push(("expires", format_time(t)));
    }
    if let Some(r) = &task.wait_reason {
        rows.push(("waiting", r.clone()));
    }
    if let Some(p) = &task.progress {
        let text = if p.text.is_empty() {
            String::new()
        } else {
            format!(" {}", p.text)
        };
        rows.push((
            "progress",
            format!("{}%{text} (at {})", p.percent, format_time(p.at_ms)),
        ));
    }
    if let Some(r) = &task.rerun_of {
        rows.push(("rerun of", r.clone()));
    }
    if let Some(r) = &task.result {
        rows.push(("result", serde_json::to_string(r).unwrap_or_default()));
    }
    if let Some(e) = &task.error {
        rows.push(("error", e.clone()));
    }
    for (k, v) in rows {
        outln!("{k:<13}{v}");
    }
    if !task.attempts.is_empty() {
        outln!("attempts:");
        for a in &task.attempts {
            let started = a.started_ms.map(format_time).unwrap_or_else(|| "-".into());
            outln!(
                "  #{:<3} {:<16} {} → {}  {}  {}",
                a.attempt,
                a.worker,
                started,
                format_time(a.ended_ms),
                a.outcome,
                a.message
            );
        }
    }
    Ok(())
}

fn list(parser: &mut Parser) -> CliResult {
    let args = parse(parser, "task list", HELP, &["status", "job", "limit"], &[])?;
    args.no_id("task list")?;
    let filter = ListFilter {
        status: args.get("status").map(Status::parse).transpose()?,
        job: args.get("job").map(String::from),
        limit: number_flag(&args, "limit", "a whole number")?.unwrap_or(100),
    };
    let tasks = args.common.client()?.list(&filter)?;
    if args.common.json {
        print_json(&tasks)?;
        return Ok(exit::OK);
    }
    let now = now_ms();
    let rows: Vec<Vec<String>> = tasks
        .iter()
        .map(|t| {
            vec![
                t.id.clone(),
                t.status.to_string(),
                t.executor.clone(),
                t.priority.to_string(),
                t.attempt.to_string(),
                t.worker.clone().unwrap_or_else(|| "-".into()),
                human_ms(now.saturating_sub(t.created_ms) as i64),
            ]
        })
        .collect();
    print_table(
        &[
            "ID", "STATUS", "EXECUTOR", "PRIORITY", "ATTEMPT", "WORKER", "AGE",
        ],
        &rows,
    );
    Ok(exit::OK)
}

fn cancel(parser: &mut Parser) -> CliResult {
    let args = parse(parser, "task cancel", HELP, &[], &[])?;
    let id = args.id("task cancel")?;
    let before = args.common.client()?.cancel(id)?;
    let cancelled = !before.is_terminal();
    if args.common.json {
        print_json(&serde_json::json!({"id": id, "was": before, "cancelled": cancelled}))?;
    } else if cancelled {
        outln!("cancelled {id} (was {before})");
    } else {
        outln!("{id} had already ended ({before}); nothing to cancel");
    }
    Ok(exit::OK)
}

fn logs(parser: &mut Parser) -> CliResult {
    let args = parse(parser, "task logs", HELP, &[], &["follow"])?;
    if args.has("follow") {
        return follow(&args);
    }
    let lines = args.common.client()?.logs(args.id("task logs")?)?;
    if args.common.json {
        print_json(&lines)?;
    } else {
        for line in lines {
            outln!("{line}");
        }
    }
    Ok(exit::OK)
}

/// `task logs --follow`: prints the log, then new lines as they come (a
/// running task's output reaches its log about once a second), until the
/// task ends; exits 0 then. Waits on the task's completion notice between
/// reads, so it reads about once a second and returns as soon as the task
/// ends. `--json`: one JSON string per line.
fn follow(args: &super::Args) -> CliResult {
    let id = args.id("task logs")?;
    let mut client = args.common.client()?;
    let mut next = 0u64;
    loop {
        let chunk = client.logs_since(id, next, 1000)?;
        if chunk.first > next {
            let note = format!("({} lines dropped by the log cap)", chunk.first - next);
            print_line(&note, args.common.json)?;
        }
        for line in &chunk.lines {
            print_line(line, args.common.json)?;
        }
        next = chunk.next;
        if next < chunk.total {
            continue;
        }
        if chunk.status.is_terminal() {
            return Ok(exit::OK);
        }
        client.wait(id, Duration::from_secs(1))?;
    }
}

fn print_line(line: &str, json: bool) -> CliResult<()> {
    if json {
        let text = serde_json::to_string(line)
            .map_err(|e| Failure::usage(format!("cannot encode JSON: {e}")))?;
        outln!("{text}");
    } else {
        outln!("{line}");
    }
    Ok(())
}
