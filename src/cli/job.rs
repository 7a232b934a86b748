//! `distsched job add|list|show|rm|enable|disable|trigger`.

use std::time::Duration;

use lexopt::Parser;

use distsched::internal::Schedule;
use distsched::{Concurrency, JobSpec, JobStatus, Misfire};

use super::time::format_time;
use super::{
    Args, CliResult, Failure, Opt, duration_flag, exit, next, number_flag, parse, print_json,
    print_table,
};

const HELP: &str = "\
usage: distsched job <command> [options]

commands:
  add ID --exec NAME [options]   define a job (cron-scheduled, or on demand without --cron)
  list                           every job: schedule, next fire time, firings, skips
  show ID                        one job with its recent firings and skips
  rm ID                          remove a job (its tasks run on)
  enable ID | disable ID         start or stop firing on schedule
  trigger ID [--payload JSON]    run the job now, outside its schedule; prints the task id

add options:
  --exec NAME            executor of its tasks
  --cron EXPR            5-field, 6-field (with seconds) or @hourly/@daily/... (UTC unless --tz)
  --tz ZONE              IANA time zone of the cron expression, e.g. Europe/London
  --payload JSON         payload of every task (default null)
  --timeout DUR          task timeout (default 5m)
  --retries N            retries after a failure (default 3)
  --retry-delay DUR      first retry delay (default 10s)
  --backoff F            retry delay multiplier (default 2.0)
  --priority N           -1000..1000, higher first (default 0)
  --tags a,b             only workers carrying these tags
  --balancer B           least-tasks, round-robin, random, weighted, consistent-hash
  --route-key K          routing key for consistent-hash
  --expires DUR          its tasks not started within DUR of their slot: cancelled
  --misfire P            fire_once (default), skip, fire_all: slots missed while no leader ran
  --misfire-threshold D  a slot older than this counts as missed (default 60s)
  --fire-all-cap N       most missed slots fire_all fires (default 100)
  --concurrency C        allow (default), forbid (skip while one runs), replace (cancel it)
  --disabled             store it disabled
  --replace              update the job if it exists (default: an existing id is an error)

every command also takes --redis URL, --ns NAME, --json";

/// `distsched job ...`.
pub fn run(parser: &mut Parser) -> CliResult {
    let sub = match next(parser)? {
        Some(Opt::Value(v)) => v.to_string_lossy().into_owned(),
        Some(Opt::Long(l)) if l == "help" => "help".into(),
        Some(Opt::Short('h')) | None => "help".into(),
        Some(other) => return Err(other.unexpected("job")),
    };
    match sub.as_str() {
        "add" => add(parser),
        "list" => list(parser),
        "show" => show(parser),
        "rm" => rm(parser),
        "enable" => set_enabled(parser, true),
        "disable" => set_enabled(parser, false),
        "trigger" => trigger(parser),
        "help" => {
            outln!("{HELP}");
            Ok(exit::OK)
        }
        other => Err(Failure::usage(format!(
            "unknown job command `{other}` (expected add, list, show, rm, enable, disable or trigger)"
        ))),
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

fn add(parser: &mut Parser) -> CliResult {
    let valued = [
        "exec",
        "cron",
        "tz",
        "payload",
        "timeout",
        "retries",
        "retry-delay",
        "backoff",
        "priority",
        "tags",
        "balancer",
        "route-key",
        "misfire",
        "misfire-threshold",
        "fire-all-cap",
        "concurrency",
        "expires",
    ];
    let args = parse(parser, "job add", HELP, &valued, &["disabled", "replace"])?;
    let id = args.id("job add")?;
    let exec = args
        .get("exec")
        .ok_or_else(|| Failure::usage("`distsched job add` needs --exec NAME"))?;
    let mut spec = JobSpec::new(id, exec);
    spec.cron = args.get("cron").map(String::from);
    spec.timezone = args.get("tz").map(String::from);
    if let Some(p) = args.get("payload") {
        spec.payload = serde_json::from_str(p)
            .map_err(|e| Failure::usage(format!("invalid --payload: not JSON ({e})")))?;
    }
    if let Some(t) = duration_flag(&args, "timeout")? {
        spec.timeout_ms = ms(t);
    }
    if let Some(r) = number_flag(&args, "retries", "a whole number")? {
        spec.max_retries = r;
    }
    if let Some(d) = duration_flag(&args, "retry-delay")? {
        spec.retry_delay_ms = ms(d);
    }
    if let Some(b) = number_flag(&args, "backoff", "a number such as 2.0")? {
        spec.backoff = b;
    }
    if let Some(p) = number_flag(&args, "priority", "a whole number from -1000 to 1000")? {
        spec.priority = p;
    }
    spec.tags = args.list("tags");
    spec.balancer = args.get("balancer").map(String::from);
    spec.route_key = args.get("route-key").map(String::from);
    if let Some(m) = args.get("misfire") {
        spec.misfire = Misfire::parse(m)?;
    }
    if let Some(t) = duration_flag(&args, "misfire-threshold")? {
        spec.misfire_threshold_ms = ms(t);
    }
    if let Some(c) = number_flag(&args, "fire-all-cap", "a whole number")? {
        spec.fire_all_cap = c;
    }
    spec.expires_ms = duration_flag(&args, "expires")?.map(ms);
    if let Some(c) = args.get("concurrency") {
        spec.concurrency = Concurrency::parse(c)?;
    }
    spec.enabled = !args.has("disabled");
    spec.validate()?;

    let mut client = args.common.client()?;
    let created = if args.has("replace") {
        client.put_job(&spec)?
    } else {
        client.add_job(&spec)?;
        true
    };
    let status = client.job(&spec.id)?;
    if args.common.json {
        print_json(&status)?;
    } else {
        let verb = if created { "added" } else { "updated" };
        let next = status.next_fire_ms.map_or("on demand".to_string(), |t| {
            format!("next {}", format_time(t as u64))
        });
        outln!("{verb} job {} ({next})", spec.id);
    }
    Ok(exit::OK)
}

fn list(parser: &mut Parser) -> CliResult {
    let args = parse(parser, "job list", HELP, &[], &[])?;
    args.no_id("job list")?;
    let jobs = args.common.client()?.jobs()?;
    if args.common.json {
        print_json(&jobs)?;
        return Ok(exit::OK);
    }
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            let unknown = || "?".to_string();
            let s = j.spec.as_ref();
            vec![
                j.id.clone(),
                s.map_or_else(unknown, |s| s.executor.clone()),
                s.map_or_else(unknown, |s| s.cron.clone().unwrap_or_else(|| "-".into())),
                s.map_or_else(unknown, |s| {
                    s.timezone.clone().unwrap_or_else(|| "UTC".into())
                }),
                s.map_or_else(unknown, |s| if s.enabled { "yes" } else { "no" }.into()),
                j.next_fire_ms.map_or("-".into(), |t| format_time(t as u64)),
                j.fired.to_string(),
                j.skips.to_string(),
                j.error
                    .as_ref()
                    .map_or("-".into(), |e| short(&format!("{}: {}", e.kind, e.message))),
            ]
        })
        .collect();
    print_table(
        &[
            "ID", "EXECUTOR", "CRON", "TZ", "ENABLED", "NEXT", "FIRED", "SKIPS", "ERROR",
        ],
        &rows,
    );
    Ok(exit::OK)
}

fn show(parser: &mut Parser) -> CliResult {
    let args = parse(parser, "job show", HELP, &[], &[])?;
    let job = args.common.client()?.job(args.id("job show")?)?;
    if args.common.json {
        print_json(&job)?;
    } else {
        print_job(&job);
    }
    Ok(exit::OK)
}

/// `text` cut to 60 characters for a table cell.
fn short(text: &str) -> String {
    if text.chars().count() <= 60 {
        return text.to_string();
    }
    let cut: String = text.chars().take(59).collect();
    format!("{cut}…")
}

fn print_job(job: &JobStatus) {
    if let Some(e) = &job.error {
        let since = e
            .since_ms
            .map(|t| format!(" (since {})", format_time(t as u64)))
            .unwrap_or_default();
        outln!("{:<13}{} error{since}: {}", "error", e.kind, e.message);
        outln!(
            "{:<13}skipped; the scheduler retries it every {} s",
            "",
            distsched::BROKEN_RETRY.as_secs()
        );
    }
    let Some(s) = &job.spec else {
        outln!("{:<13}{}", "id", job.id);
        outln!("{:<13}(the stored record cannot be read)", "definition");
        print_history(job);
        return;
    };
    let rows = [
        ("id", s.id.clone()),
        ("executor", s.executor.clone()),
        (
            "cron",
            s.cron.clone().unwrap_or_else(|| "- (on demand)".into()),
        ),
        (
            "time zone",
            s.timezone.clone().unwrap_or_else(|| "UTC".into()),
        ),
        ("enabled", s.enabled.to_string()),
        (
            "next fire",
            job.next_fire_ms
                .map_or("-".into(), |t| format_time(t as u64)),
        ),
        (
            "misfire",
            format!(
                "{} (threshold {} ms, fire_all cap {})",
                s.misfire.as_str(),
                s.misfire_threshold_ms,
                s.fire_all_cap
            ),
        ),
        ("concurrency", s.concurrency.as_str().into()),
        ("payload", s.payload.to_string()),
        (
            "retries",
            format!(
                "{} (delay {} ms, backoff {})",
                s.max_retries, s.retry_delay_ms, s.backoff
            ),
        ),
        ("timeout", format!("{} ms", s.timeout_ms)),
        ("fired", job.fired.to_string()),
        ("skipped", job.skips.to_string()),
    ];
    for (k, v) in rows {
        outln!("{k:<13}{v}");
    }
    if let (Some(expr), Some(mut t)) = (&s.cron, job.next_fire_ms)
        && let Ok(schedule) = Schedule::parse(expr, s.timezone.as_deref())
    {
        let mut upcoming = vec![format_time(t as u64)];
        for _ in 0..4 {
            let Some(n) = schedule.next_after(t) else {
                break;
            };
            upcoming.push(format_time(n as u64));
            t = n;
        }
        outln!("upcoming     {}", upcoming.join(", "));
    }
    print_history(job);
}

fn print_history(job: &JobStatus) {
    if !job.history.is_empty() {
        outln!("history (newest first):");
        for h in &job.history {
            // Entries start with the Redis time of the event in ms.
            let (at, what) = h.split_once(' ').unwrap_or(("", h));
            let at = at.parse::<u64>().map(format_time).unwrap_or_default();
            outln!("  {at}  {what}");
        }
    }
}

fn rm(parser: &mut Parser) -> CliResult {
    let args = parse(parser, "job rm", HELP, &[], &[])?;
    let id = args.id("job rm")?;
    args.common.client()?.remove_job(id)?;
    if args.common.json {
        print_json(&serde_json::json!({"removed": id}))?;
    } else {
        outln!("removed job {id}");
    }
    Ok(exit::OK)
}

fn set_enabled(parser: &mut Parser, enabled: bool) -> CliResult {
    let command = if enabled { "job enable" } else { "job disable" };
    let args: Args = parse(parser, command, HELP, &[], &[])?;
    let id = args.id(command)?;
    let mut client = args.common.client()?;
    client.set_job_enabled(id, enabled)?;
    let job = client.job(id)?;
    if args.common.json {
        print_json(&job)?;
    } else {
        outln!("job {id} {}", if enabled { "enabled" } else { "disabled" });
    }
    Ok(exit::OK)
}

fn trigger(parser: &mut Parser) -> CliResult {
    let args = parse(parser, "job trigger", HELP, &["payload"], &[])?;
    let id = args
        .id
        .clone()
        .ok_or_else(|| Failure::usage("`distsched job trigger` needs a job id"))?;
    let payload = args
        .get("payload")
        .map(|p| {
            serde_json::from_str(p)
                .map_err(|e| Failure::usage(format!("invalid --payload: not JSON ({e})")))
        })
        .transpose()?;
    let submitted = args.common.client()?.trigger_job(&id, payload.as_ref())?;
    if args.common.json {
        print_json(&submitted)?;
    } else {
        outln!("{}", submitted.id);
    }
    Ok(exit::OK)
}
