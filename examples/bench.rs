//! The benchmark driver behind `scripts/bench.sh`: submits no-op tasks,
//! waits for a cluster to drain them, and measures submit→start latency.
//! It uses the library's `Client` and key builder, plus a plain `redis`
//! connection for cheap counters; the nodes are separate processes.
//!
//! ```text
//! cargo run --release --example bench -- submit  --redis URL --ns NS --count N [--batch 500]
//! cargo run --release --example bench -- drain   --redis URL --ns NS --count N [--timeout 5m] [--cmdstats]
//! cargo run --release --example bench -- latency --redis URL --ns NS --count N [--warmup 5] [--timeout 10s]
//! cargo run --release --example bench -- cron    --redis URL --ns NS --jobs 20 --seconds 15s [--timeout 60s]
//! cargo run --release --example bench -- put-jobs --redis URL --ns NS --count N
//! cargo run --release --example bench -- ticks   --redis URL --ns NS --firings 10 [--redis-pid PID] [--timeout 60s]
//! cargo run --release --example bench -- leader-wait --redis URL --ns NS --not NODE --since-ms T [--timeout 30s]
//! ```
//!
//! Every figure is one `name=value` line on stdout (for scripts); notes
//! and progress go to stderr.
//!
//! - `submit`: N `noop` tasks with `Client::submit_many`, `--batch` per
//!   pipelined round trip. Prints `submitted`, `submit_s` and
//!   `submit_rate_tasks_per_s` (driver clock).
//! - `drain`: decides "done" in two steps. While running it only polls
//!   three counters in one pipelined round trip every `--poll` (20 ms):
//!   `ZCARD` of `{ns}:pending` (and of every park in `{ns}:parks`),
//!   `{ns}:delayed` (retries) and `{ns}:running`
//!   (dispatched, queued on a worker or running). A task leaves the last of
//!   them in the same script call that ends it, so when all three are 0 and
//!   the `{ns}:tasks` index holds at least N ids, no task can still run.
//!   Then it reads every task once (`ZRANGE {ns}:tasks` in pages of 1,000,
//!   pipelined `HMGET status started_ms ended_ms worker`) and checks that N
//!   of them succeeded; anything else is an error. Throughput is N over
//!   max(ended_ms) − min(started_ms): Redis server times, so the driver's
//!   polling interval does not enter the figure. The namespace must hold
//!   only this run's tasks. With `--cmdstats` it also prints Redis'
//!   `INFO commandstats` at the moment the counters reached 0 (reset them
//!   with `CONFIG RESETSTAT` before the workers start), per task.
//! - `latency`: N tasks one at a time, each submitted after the previous
//!   ended (`Client::wait`), after `--warmup` unrecorded ones. Prints
//!   p50/p99/max of started_ms − created_ms (submit→start),
//!   dispatched_ms − created_ms and ended_ms − created_ms, all Redis
//!   server times in whole milliseconds (so ±1 ms of rounding), and the
//!   driver's own submit call → `wait` returned time in microseconds.
//! - `cron`: adds `--jobs` per-second jobs (`* * * * * *`, executor `noop`,
//!   ids `cron-000`…), lets them fire for `--seconds`, removes them, waits
//!   until every task they created has ended, and reads each one. A cron
//!   task's id is `{job}@{slot ms}` and its hash holds `slot_ms`: prints
//!   p50/p99/max of created_ms − slot_ms (the firing itself),
//!   dispatched_ms − slot_ms and started_ms − slot_ms (Redis times, whole
//!   ms), the number of firings and of slots missed between a job's first
//!   and last firing.
//! - `put-jobs`: stores `--count` jobs with a far-future schedule
//!   (`0 0 1 1 *`, ids `far-00000`…) with `Client::put_job` on 4
//!   connections; prints `put_s`.
//! - `ticks`: adds a per-second job `tick` (the namespace's node must be
//!   running), waits until its second firing has settled (its task ended),
//!   resets `INFO commandstats` and the slow log (logging every command),
//!   waits `--firings` more settled firings, then prints the node's Redis
//!   work per firing: every command (including those run inside Lua; the
//!   driver's own polling is counted and subtracted exactly), EVALSHA calls
//!   and server µs, and from the slow log the calls and µs of the firing
//!   scripts (`DUE_JOBS` + `FIRE`) alone. The same measurement as
//!   `tests/cron.rs` `work_per_firing_is_the_same_with_10k_jobs`. With
//!   `--redis-pid` also the CPU clock ticks redis-server used meanwhile.
//!   The slow log settings are restored to Redis' defaults afterwards.
//! - `leader-wait`: polls the lease every 5 ms until a node other than
//!   `--not` holds it; prints the new leader, its epoch, and
//!   `failover_ms` = its `elected_ms` (Redis time, written by the acquire
//!   script) − `--since-ms` (when the caller signalled the old leader, Unix
//!   ms), so the polling interval and this process' start-up do not enter
//!   the figure; `observed_ms` is when this poller saw it.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use distsched::config::parse_duration;
use distsched::internal::{Keys, scripts};
use distsched::{Client, JobSpec, Status, TaskSpec};

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

const USAGE: &str = "usage:
  bench submit  --redis URL --ns NS --count N [--batch 500]
  bench drain   --redis URL --ns NS --count N [--timeout 5m] [--poll 20ms] [--cmdstats]
  bench latency --redis URL --ns NS --count N [--warmup 5] [--timeout 10s]
  bench cron    --redis URL --ns NS --jobs N --seconds DUR [--timeout 60s]
  bench put-jobs --redis URL --ns NS --count N
  bench ticks   --redis URL --ns NS --firings N [--redis-pid PID] [--timeout 60s]
  bench leader-wait --redis URL --ns NS --not NODE --since-ms T [--timeout 30s]";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Command {
    Submit,
    Drain,
    Latency,
    Cron,
    PutJobs,
    Ticks,
    LeaderWait,
}

#[derive(Debug)]
struct Args {
    command: Command,
    redis: String,
    ns: String,
    count: usize,
    batch: usize,
    timeout: Option<Duration>,
    poll: Duration,
    warmup: usize,
    cmdstats: bool,
    jobs: usize,
    seconds: Duration,
    firings: u64,
    redis_pid: Option<u32>,
    not: String,
    since_ms: u64,
}

fn parse_args() -> Result<Args, String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_env();
    let command = match parser.next().map_err(|e| e.to_string())? {
        Some(Value(v)) => match v.to_string_lossy().as_ref() {
            "submit" => Command::Submit,
            "drain" => Command::Drain,
            "latency" => Command::Latency,
            "cron" => Command::Cron,
            "put-jobs" => Command::PutJobs,
            "ticks" => Command::Ticks,
            "leader-wait" => Command::LeaderWait,
            other => return Err(format!("unknown command `{other}`")),
        },
        Some(Long("help")) | Some(Short('h')) => return Err(String::new()),
        _ => return Err("missing command".into()),
    };
    let mut args = Args {
        command,
        redis: String::new(),
        ns: String::new(),
        count: 0,
        batch: 500,
        timeout: None,
        poll: Duration::from_millis(20),
        warmup: 5,
        cmdstats: false,
        jobs: 20,
        seconds: Duration::from_secs(15),
        firings: 10,
        redis_pid: None,
        not: String::new(),
        since_ms: 0,
    };
    let number = |v: String, name: &str| {
        v.parse::<usize>()
            .map_err(|_| format!("--{name}: expected a number, got `{v}`"))
    };
    let duration = |v: String, name: &str| parse_duration(&v).map_err(|e| format!("--{name}: {e}"));
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Long("redis") => args.redis = value(&mut parser)?,
            Long("ns") => args.ns = value(&mut parser)?,
            Long("count") => args.count = number(value(&mut parser)?, "count")?,
            Long("batch") => args.batch = number(value(&mut parser)?, "batch")?.max(1),
            Long("warmup") => args.warmup = number(value(&mut parser)?, "warmup")?,
            Long("timeout") => args.timeout = Some(duration(value(&mut parser)?, "timeout")?),
            Long("poll") => args.poll = duration(value(&mut parser)?, "poll")?,
            Long("cmdstats") => args.cmdstats = true,
            Long("jobs") => args.jobs = number(value(&mut parser)?, "jobs")?,
            Long("seconds") => args.seconds = duration(value(&mut parser)?, "seconds")?,
            Long("firings") => args.firings = number(value(&mut parser)?, "firings")? as u64,
            Long("redis-pid") => {
                args.redis_pid = Some(number(value(&mut parser)?, "redis-pid")? as u32)
            }
            Long("not") => args.not = value(&mut parser)?,
            Long("since-ms") => args.since_ms = number(value(&mut parser)?, "since-ms")? as u64,
            Long("help") | Short('h') => return Err(String::new()),
            other => return Err(other.unexpected().to_string()),
        }
    }
    if args.redis.is_empty() || args.ns.is_empty() {
        return Err("--redis and --ns are required".into());
    }
    let needs_count = matches!(
        args.command,
        Command::Submit | Command::Drain | Command::Latency | Command::PutJobs
    );
    if needs_count && args.count == 0 {
        return Err("--count must be at least 1".into());
    }
    if args.command == Command::Cron && args.jobs == 0 {
        return Err("--jobs must be at least 1".into());
    }
    if args.command == Command::Ticks && args.firings == 0 {
        return Err("--firings must be at least 1".into());
    }
    if args.command == Command::LeaderWait && (args.not.is_empty() || args.since_ms == 0) {
        return Err("leader-wait needs --not and --since-ms".into());
    }
    Ok(args)
}

/// The value of the option just read.
fn value(parser: &mut lexopt::Parser) -> Result<String, String> {
    let v = parser.value().map_err(|e| e.to_string())?;
    v.into_string()
        .map_err(|_| "argument is not UTF-8".to_string())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("bench: {e}\n{USAGE}");
            return ExitCode::from(64);
        }
    };
    let result = match args.command {
        Command::Submit => submit(&args),
        Command::Drain => drain(&args),
        Command::Latency => latency(&args),
        Command::Cron => cron(&args),
        Command::PutJobs => put_jobs(&args),
        Command::Ticks => ticks(&args),
        Command::LeaderWait => leader_wait(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn submit(args: &Args) -> BoxResult<()> {
    let mut client = Client::open(&args.redis, &args.ns)?;
    client.ping()?;
    let spec = TaskSpec::new("noop");
    let batch = vec![spec; args.batch.min(args.count)];
    let t0 = Instant::now();
    let mut created = 0usize;
    let mut left = args.count;
    while left > 0 {
        let n = left.min(batch.len());
        created += client
            .submit_many(&batch[..n])?
            .iter()
            .filter(|s| s.created)
            .count();
        left -= n;
    }
    let secs = t0.elapsed().as_secs_f64();
    if created != args.count {
        return Err(format!("only {created} of {} tasks were created", args.count).into());
    }
    println!("submitted={created}");
    println!("submit_s={secs:.3}");
    println!(
        "submit_rate_tasks_per_s={:.0}",
        created as f64 / secs.max(1e-9)
    );
    Ok(())
}

fn redis_conn(url: &str) -> BoxResult<redis::Connection> {
    let client = redis::Client::open(url)?;
    Ok(client.get_connection_with_timeout(Duration::from_secs(5))?)
}

fn drain(args: &Args) -> BoxResult<()> {
    let keys = Keys::new(&args.ns);
    let mut con = redis_conn(&args.redis)?;
    let timeout = args.timeout.unwrap_or(Duration::from_secs(300));
    let t0 = Instant::now();
    let mut last_note = t0;
    loop {
        let (pending, delayed, running, indexed): (usize, usize, usize, usize) = redis::pipe()
            .zcard(keys.pending())
            .zcard(keys.delayed())
            .zcard(keys.running())
            .zcard(keys.tasks())
            .query(&mut con)?;
        // Tasks submitted before any worker could take them wait in a park.
        let parks: Vec<String> = redis::cmd("SMEMBERS").arg(keys.parks()).query(&mut con)?;
        let mut pipe = redis::pipe();
        for park in &parks {
            pipe.zcard(park);
        }
        let parked: Vec<usize> = if parks.is_empty() {
            Vec::new()
        } else {
            pipe.query(&mut con)?
        };
        let pending = pending + parked.iter().sum::<usize>();
        if pending + delayed + running == 0 && indexed >= args.count {
            break;
        }
        if t0.elapsed() >= timeout {
            return Err(format!(
                "not drained after {timeout:?}: pending {pending}, delayed {delayed}, running {running}, indexed {indexed}"
            )
            .into());
        }
        if last_note.elapsed() >= Duration::from_secs(2) {
            eprintln!(
                "drain: {:.0}s: pending {pending}, running {running}, delayed {delayed}",
                t0.elapsed().as_secs_f64()
            );
            last_note = Instant::now();
        }
        std::thread::sleep(args.poll);
    }
    let observed_s = t0.elapsed().as_secs_f64();
    // Before the scan below adds its own commands.
    let cmdstats = if args.cmdstats {
        let text: String = redis::cmd("INFO").arg("commandstats").query(&mut con)?;
        Some(text)
    } else {
        None
    };

    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_worker: BTreeMap<String, usize> = BTreeMap::new();
    let (mut first_start, mut last_end) = (u64::MAX, 0u64);
    let mut offset = 0usize;
    const PAGE: usize = 1000;
    loop {
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(keys.tasks())
            .arg(offset)
            .arg(offset + PAGE - 1)
            .query(&mut con)?;
        if ids.is_empty() {
            break;
        }
        offset += ids.len();
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("HMGET")
                .arg(keys.task(id))
                .arg("status")
                .arg("started_ms")
                .arg("ended_ms")
                .arg("worker");
        }
        type Row = (Option<String>, Option<u64>, Option<u64>, Option<String>);
        let rows: Vec<Row> = pipe.query(&mut con)?;
        for (status, started, ended, worker) in rows {
            let status = status.unwrap_or_else(|| "missing".into());
            if status == Status::Success.as_str() {
                if let (Some(s), Some(e)) = (started, ended) {
                    first_start = first_start.min(s);
                    last_end = last_end.max(e);
                }
                *per_worker.entry(worker.unwrap_or_default()).or_default() += 1;
            }
            *statuses.entry(status).or_default() += 1;
        }
    }
    let success = statuses.get("success").copied().unwrap_or(0);
    if success != args.count || offset != args.count {
        return Err(format!(
            "expected {} successful tasks in namespace `{}`, found {offset} tasks: {statuses:?}",
            args.count, args.ns
        )
        .into());
    }
    let span_ms = last_end.saturating_sub(first_start).max(1);
    println!("tasks={success}");
    println!("first_start_ms={first_start}");
    println!("last_end_ms={last_end}");
    println!("span_ms={span_ms}");
    println!(
        "throughput_tasks_per_s={:.0}",
        success as f64 * 1000.0 / span_ms as f64
    );
    println!("drain_observed_s={observed_s:.3}");
    for (worker, n) in &per_worker {
        println!("worker.{worker}={n}");
    }
    if let Some(text) = cmdstats {
        print_cmdstats(&text, success);
    }
    Ok(())
}

/// `INFO commandstats` as (name, calls, usec) rows, most called first;
/// subcommands are named `config_resetstat` and so on.
fn parse_cmdstats(text: &str) -> Vec<(String, u64, f64)> {
    let mut rows: Vec<(String, u64, f64)> = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("cmdstat_") else {
            continue;
        };
        let Some((name, fields)) = rest.split_once(':') else {
            continue;
        };
        let field = |key: &str| {
            fields
                .split(',')
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        rows.push((name.replace('|', "_"), field("calls") as u64, field("usec")));
    }
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    rows
}

/// What a client sends itself; everything else on the hot path runs inside
/// a script.
fn is_top_level(name: &str) -> bool {
    matches!(
        name,
        "evalsha" | "eval" | "blpop" | "blmpop" | "brpop" | "script_load"
    )
}

/// Prints `INFO commandstats` as per-task figures: `cmd.NAME.calls_per_task`
/// and `cmd.NAME.usec_per_call` per command (commands run inside Lua scripts
/// are counted too, and a script's time includes theirs), then the totals.
fn print_cmdstats(text: &str, tasks: usize) {
    let rows = parse_cmdstats(text);
    let per = |n: f64| n / tasks.max(1) as f64;
    let mut total = 0;
    let mut top_level = 0;
    for (name, calls, usec) in &rows {
        total += calls;
        if is_top_level(name) {
            top_level += calls;
        }
        println!("cmd.{name}.calls_per_task={:.3}", per(*calls as f64));
        println!(
            "cmd.{name}.usec_per_call={:.2}",
            usec / (*calls).max(1) as f64
        );
    }
    println!("cmd_total_per_task={:.2}", per(total as f64));
    println!("round_trips_per_task={:.3}", per(top_level as f64));
}

/// Nearest-rank percentile of sorted values.
fn percentile<T: Copy>(sorted: &[T], p: f64) -> T {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn latency(args: &Args) -> BoxResult<()> {
    let mut client = Client::open(&args.redis, &args.ns)?;
    client.ping()?;
    let timeout = args.timeout.unwrap_or(Duration::from_secs(10));
    let spec = TaskSpec::new("noop");
    let mut start = Vec::with_capacity(args.count);
    let mut dispatch = Vec::with_capacity(args.count);
    let mut end = Vec::with_capacity(args.count);
    let mut round_trip = Vec::with_capacity(args.count);
    for i in 0..args.warmup + args.count {
        let t0 = Instant::now();
        let id = client.submit(&spec)?.id;
        let task = client
            .wait(&id, timeout)?
            .ok_or_else(|| format!("task {id} did not end within {timeout:?}"))?;
        let elapsed = t0.elapsed();
        if task.status != Status::Success {
            return Err(format!("task {id} ended {}", task.status).into());
        }
        if i < args.warmup {
            continue;
        }
        let since_created = |t: Option<u64>| t.unwrap_or(0).saturating_sub(task.created_ms);
        start.push(since_created(task.started_ms));
        dispatch.push(since_created(task.dispatched_ms));
        end.push(since_created(task.ended_ms));
        round_trip.push(elapsed.as_micros() as u64);
    }
    println!("samples={}", args.count);
    for (name, values) in [
        ("submit_to_start_ms", &mut start),
        ("submit_to_dispatch_ms", &mut dispatch),
        ("submit_to_end_ms", &mut end),
    ] {
        values.sort_unstable();
        println!("{name}_p50={}", percentile(values, 50.0));
        println!("{name}_p99={}", percentile(values, 99.0));
        println!("{name}_max={}", values[values.len() - 1]);
    }
    round_trip.sort_unstable();
    let ms = |us: u64| us as f64 / 1000.0;
    let name = "driver_submit_to_done_ms";
    println!("{name}_p50={:.3}", ms(percentile(&round_trip, 50.0)));
    println!("{name}_p99={:.3}", ms(percentile(&round_trip, 99.0)));
    println!("{name}_max={:.3}", ms(round_trip[round_trip.len() - 1]));
    Ok(())
}

/// Wall-clock time, Unix ms (compared with Redis times: same machine).
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Prints `{name}_p50`, `_p99` and `_max` of `values` (sorted here).
fn print_percentiles(name: &str, values: &mut [u64]) {
    if values.is_empty() {
        println!("{name}_p50=-");
        println!("{name}_p99=-");
        println!("{name}_max=-");
        return;
    }
    values.sort_unstable();
    println!("{name}_p50={}", percentile(values, 50.0));
    println!("{name}_p99={}", percentile(values, 99.0));
    println!("{name}_max={}", values[values.len() - 1]);
}

const EVERY_SECOND: &str = "* * * * * *";

fn cron(args: &Args) -> BoxResult<()> {
    let keys = Keys::new(&args.ns);
    let mut client = Client::open(&args.redis, &args.ns)?;
    client.ping()?;
    let mut con = redis_conn(&args.redis)?;
    let timeout = args.timeout.unwrap_or(Duration::from_secs(60));
    let ids: Vec<String> = (0..args.jobs).map(|j| format!("cron-{j:03}")).collect();
    for id in &ids {
        client.add_job(&JobSpec::new(id, "noop").with_cron(EVERY_SECOND))?;
    }
    eprintln!(
        "cron: {} per-second jobs added; firing for {:?}",
        ids.len(),
        args.seconds
    );
    std::thread::sleep(args.seconds);
    for id in &ids {
        client.remove_job(id)?;
    }
    // Every task of these jobs, then wait until each has ended.
    let is_ours = |task: &str| {
        task.split_once('@')
            .is_some_and(|(job, _)| ids.iter().any(|i| i == job))
    };
    let all: Vec<String> = redis::cmd("ZRANGE")
        .arg(keys.tasks())
        .arg(0)
        .arg(-1)
        .query(&mut con)?;
    let tasks: Vec<String> = all.into_iter().filter(|t| is_ours(t)).collect();
    if tasks.is_empty() {
        return Err("no cron task was created".into());
    }
    let t0 = Instant::now();
    type Row = (
        Option<String>,
        Option<u64>,
        Option<u64>,
        Option<u64>,
        Option<u64>,
    );
    let rows: Vec<Row> = loop {
        let mut pipe = redis::pipe();
        for id in &tasks {
            pipe.cmd("HMGET")
                .arg(keys.task(id))
                .arg("status")
                .arg("slot_ms")
                .arg("created_ms")
                .arg("dispatched_ms")
                .arg("started_ms");
        }
        let rows: Vec<Row> = pipe.query(&mut con)?;
        let ended = |r: &Row| {
            r.0.as_deref()
                .and_then(|s| Status::parse(s).ok())
                .is_some_and(Status::is_terminal)
        };
        if rows.iter().all(ended) {
            break rows;
        }
        if t0.elapsed() >= timeout {
            let open = rows.iter().filter(|r| !ended(r)).count();
            return Err(format!("{open} cron tasks still not ended after {timeout:?}").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (mut created, mut dispatched, mut started) = (Vec::new(), Vec::new(), Vec::new());
    let mut slots: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut not_success = 0usize;
    for (id, (status, slot, c, d, s)) in tasks.iter().zip(&rows) {
        // `slot_ms` is in the hash; the id carries it too.
        let Some(slot) =
            slot.or_else(|| id.rsplit_once('@').and_then(|(_, s)| s.parse::<u64>().ok()))
        else {
            return Err(format!("cron task {id} has no slot").into());
        };
        if status.as_deref() != Some(Status::Success.as_str()) {
            not_success += 1;
        }
        let late = |t: &Option<u64>| t.map(|t| t.saturating_sub(slot));
        created.extend(late(c));
        dispatched.extend(late(d));
        started.extend(late(s));
        let job = id.split_once('@').map(|(j, _)| j).unwrap_or("");
        slots.entry(job).or_default().push(slot);
    }
    let mut missed = 0u64;
    for v in slots.values_mut() {
        v.sort_unstable();
        for w in v.windows(2) {
            missed += ((w[1] - w[0]) / 1000).saturating_sub(1);
        }
    }
    println!("jobs={}", ids.len());
    println!("firings={}", tasks.len());
    println!("not_success={not_success}");
    println!("missed_slots={missed}");
    print_percentiles("created_late_ms", &mut created);
    print_percentiles("dispatched_late_ms", &mut dispatched);
    print_percentiles("started_late_ms", &mut started);
    Ok(())
}

fn put_jobs(args: &Args) -> BoxResult<()> {
    const THREADS: usize = 4;
    let t0 = Instant::now();
    let results: Vec<Result<usize, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|part| {
                s.spawn(move || -> distsched::Result<usize> {
                    let mut c = Client::open(&args.redis, &args.ns)?;
                    let mut n = 0;
                    for i in (part..args.count).step_by(THREADS) {
                        let spec =
                            JobSpec::new(format!("far-{i:05}"), "noop").with_cron("0 0 1 1 *");
                        n += usize::from(c.put_job(&spec)?);
                    }
                    Ok(n)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err("a put thread panicked".to_string()),
            })
            .collect()
    });
    let mut created = 0;
    for r in results {
        created += r?;
    }
    let secs = t0.elapsed().as_secs_f64();
    if created != args.count {
        return Err(format!("only {created} of {} jobs were new", args.count).into());
    }
    println!("jobs_put={created}");
    println!("put_s={secs:.3}");
    Ok(())
}

/// CPU time (user + system) of `pid` so far, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name (which may hold spaces): utime and stime are
    // the 12th and 13th fields.
    let rest = &stat[stat.rfind(") ")? + 2..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Commands `ticks` sent itself.
#[derive(Debug, Default, Clone, Copy)]
struct Sent {
    hmget: u64,
    hget: u64,
}

fn ticks(args: &Args) -> BoxResult<()> {
    const SETTLE: u64 = 2;
    let keys = Keys::new(&args.ns);
    let mut client = Client::open(&args.redis, &args.ns)?;
    client.ping()?;
    let mut con = redis_conn(&args.redis)?;
    let timeout = args.timeout.unwrap_or(Duration::from_secs(60));
    client.add_job(&JobSpec::new("tick", "noop").with_cron(EVERY_SECOND))?;
    let state = keys.job_state("tick");
    // Commands this driver sends between RESETSTAT and INFO, subtracted
    // from the node's figures.
    let mut sent = Sent::default();
    // Waits until at least `n` firings happened and the latest one's task
    // has ended; returns the firing count.
    let settled = |n: u64, con: &mut redis::Connection, sent: &mut Sent| -> BoxResult<u64> {
        let t0 = Instant::now();
        loop {
            let (fired, last): (Option<u64>, Option<String>) = redis::cmd("HMGET")
                .arg(&state)
                .arg("fired")
                .arg("last_task")
                .query(con)?;
            sent.hmget += 1;
            if let (Some(fired), Some(last)) = (fired, last)
                && fired >= n
            {
                let status: Option<String> = redis::cmd("HGET")
                    .arg(keys.task(&last))
                    .arg("status")
                    .query(con)?;
                sent.hget += 1;
                if status.as_deref() == Some(Status::Success.as_str()) {
                    return Ok(fired);
                }
            }
            if t0.elapsed() >= timeout {
                return Err(format!("firing {n} of `tick` not settled within {timeout:?}").into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let start = settled(SETTLE, &mut con, &mut sent)?;
    redis::pipe()
        .cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-log-slower-than")
        .arg(0)
        .ignore()
        .cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-max-len")
        .arg(100_000)
        .ignore()
        .cmd("SLOWLOG")
        .arg("RESET")
        .ignore()
        .cmd("CONFIG")
        .arg("RESETSTAT")
        .ignore()
        .query::<()>(&mut con)?;
    let cpu0 = args.redis_pid.and_then(cpu_ticks);
    let before = sent;
    let t0 = Instant::now();
    let end = settled(start + args.firings, &mut con, &mut sent)?;
    let window_s = t0.elapsed().as_secs_f64();
    let cpu1 = args.redis_pid.and_then(cpu_ticks);
    let (own_hmget, own_hget) = (sent.hmget - before.hmget, sent.hget - before.hget);
    let text: String = redis::cmd("INFO").arg("commandstats").query(&mut con)?;
    let log: Vec<Vec<redis::Value>> = redis::cmd("SLOWLOG").arg("GET").arg(-1).query(&mut con)?;
    redis::pipe()
        .cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-log-slower-than")
        .arg(10_000)
        .ignore()
        .cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-max-len")
        .arg(128)
        .ignore()
        .cmd("SLOWLOG")
        .arg("RESET")
        .ignore()
        .query::<()>(&mut con)?;
    client.remove_job("tick")?;

    let firings = end - start;
    let per = |n: f64| n / firings.max(1) as f64;
    let mut total = 0u64;
    let (mut evalsha_calls, mut evalsha_usec) = (0u64, 0.0);
    let mut rows: Vec<(String, u64)> = Vec::new();
    for (name, calls, usec) in parse_cmdstats(&text) {
        let own = match name.as_str() {
            "hmget" => own_hmget,
            "hget" => own_hget,
            "config_resetstat" => 1,
            _ => 0,
        };
        let calls = calls.saturating_sub(own);
        if calls == 0 {
            continue;
        }
        total += calls;
        if name == "evalsha" {
            (evalsha_calls, evalsha_usec) = (calls, usec);
        }
        rows.push((name, calls));
    }
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    for (name, calls) in &rows {
        println!("cmd.{name}.calls_per_firing={:.2}", per(*calls as f64));
    }
    let fire_shas = [
        scripts::DUE_JOBS.get_hash().to_string(),
        scripts::FIRE.get_hash().to_string(),
    ];
    let (mut fire_calls, mut fire_usec) = (0u64, 0u64);
    for entry in &log {
        let usec: u64 = entry
            .get(2)
            .and_then(|v| redis::from_redis_value(v.clone()).ok())
            .unwrap_or(0);
        let argv: Vec<String> = entry
            .get(3)
            .and_then(|v| redis::from_redis_value(v.clone()).ok())
            .unwrap_or_default();
        if argv
            .first()
            .is_some_and(|a| a.eq_ignore_ascii_case("evalsha"))
            && argv.get(1).is_some_and(|sha| fire_shas.contains(sha))
        {
            fire_calls += 1;
            fire_usec += usec;
        }
    }
    println!("firings={firings}");
    println!("window_s={window_s:.2}");
    println!("cmd_total_per_firing={:.1}", per(total as f64));
    println!("evalsha_calls_per_firing={:.1}", per(evalsha_calls as f64));
    println!("evalsha_usec_per_firing={:.0}", per(evalsha_usec));
    println!(
        "fire_scripts_calls_per_firing={:.1}",
        per(fire_calls as f64)
    );
    println!("fire_scripts_usec_per_firing={:.0}", per(fire_usec as f64));
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        println!("redis_cpu_ticks={}", b.saturating_sub(a));
    }
    Ok(())
}

fn leader_wait(args: &Args) -> BoxResult<()> {
    let mut client = Client::open(&args.redis, &args.ns)?;
    let timeout = args.timeout.unwrap_or(Duration::from_secs(30));
    let t0 = Instant::now();
    loop {
        // A failed poll (Redis busy) is retried until the deadline.
        if let Ok(Some(status)) = client.leader()
            && status.node != args.not
        {
            let seen = unix_ms();
            let elected = if status.elected_ms > 0 {
                status.elected_ms
            } else {
                seen
            };
            println!("leader={}", status.node);
            println!("epoch={}", status.epoch);
            println!("elected_ms={elected}");
            println!("failover_ms={}", elected.saturating_sub(args.since_ms));
            println!("observed_ms={}", seen.saturating_sub(args.since_ms));
            return Ok(());
        }
        if t0.elapsed() >= timeout {
            return Err(format!("no leader other than {} within {timeout:?}", args.not).into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
