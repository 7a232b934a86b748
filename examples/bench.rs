//! The benchmark driver behind `scripts/bench.sh`: submits no-op tasks,
//! waits for a cluster to drain them, and measures submit→start latency.
//! It uses the library's `Client` and key builder, plus a plain `redis`
//! connection for cheap counters; the nodes are separate processes.
//!
//! ```text
//! cargo run --release --example bench -- submit  --redis URL --ns NS --count N [--batch 500]
//! cargo run --release --example bench -- drain   --redis URL --ns NS --count N [--timeout 5m] [--cmdstats]
//! cargo run --release --example bench -- latency --redis URL --ns NS --count N [--warmup 5] [--timeout 10s]
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

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use distsched::config::parse_duration;
use distsched::store::Keys;
use distsched::{Client, Status, TaskSpec};

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

const USAGE: &str = "usage:
  bench submit  --redis URL --ns NS --count N [--batch 500]
  bench drain   --redis URL --ns NS --count N [--timeout 5m] [--poll 20ms] [--cmdstats]
  bench latency --redis URL --ns NS --count N [--warmup 5] [--timeout 10s]";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Command {
    Submit,
    Drain,
    Latency,
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
}

fn parse_args() -> Result<Args, String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_env();
    let command = match parser.next().map_err(|e| e.to_string())? {
        Some(Value(v)) => match v.to_string_lossy().as_ref() {
            "submit" => Command::Submit,
            "drain" => Command::Drain,
            "latency" => Command::Latency,
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
            Long("help") | Short('h') => return Err(String::new()),
            other => return Err(other.unexpected().to_string()),
        }
    }
    if args.redis.is_empty() || args.ns.is_empty() {
        return Err("--redis and --ns are required".into());
    }
    if args.count == 0 {
        return Err("--count must be at least 1".into());
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

/// Prints `INFO commandstats` as per-task figures: `cmd.NAME.calls_per_task`
/// and `cmd.NAME.usec_per_call` per command (commands run inside Lua scripts
/// are counted too, and a script's time includes theirs), then the totals.
fn print_cmdstats(text: &str, tasks: usize) {
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
    let per = |n: f64| n / tasks.max(1) as f64;
    let mut total = 0;
    let mut top_level = 0;
    for (name, calls, usec) in &rows {
        total += calls;
        // What a client sends itself; everything else on the hot path runs
        // inside a script.
        if matches!(
            name.as_str(),
            "evalsha" | "eval" | "blpop" | "blmpop" | "brpop" | "script_load"
        ) {
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
