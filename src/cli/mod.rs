//! The `distsched` command line: parsing, dispatch and printing only. The
//! work is done by the library.
//!
//! `lexopt` does the parsing: it is tiny, dependency-free and makes every
//! flag an explicit match arm, which suits a CLI whose settings are also read
//! from files and the environment through one table (`config::SETTINGS`).

/// `println!` that ends the process quietly when stdout is closed (as in
/// `distsched task list | head`) instead of panicking on the broken pipe.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout(), $($arg)*).is_err() {
            std::process::exit(0);
        }
    }};
}

mod cluster;
mod job;
mod node;
mod stats;
mod task;
mod time;

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use lexopt::{Arg, Parser, ValueExt};

use distsched::Error;
use distsched::config::parse_duration;

/// Exit codes (sysexits where one fits).
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// A runtime failure (a Redis error, a taken node id, ...).
    pub const FAILURE: u8 = 1;
    /// Bad flags, bad values, bad config file.
    pub const USAGE: u8 = 64;
    /// Redis unreachable.
    pub const UNAVAILABLE: u8 = 69;
}

/// A CLI failure: what to print and which exit code to return.
pub struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: exit::USAGE,
            message: message.into(),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let code = match &e {
            Error::Config(_) => exit::USAGE,
            Error::Unavailable(_) => exit::UNAVAILABLE,
            _ => exit::FAILURE,
        };
        Failure {
            code,
            message: e.to_string(),
        }
    }
}

impl From<lexopt::Error> for Failure {
    fn from(e: lexopt::Error) -> Self {
        Failure::usage(e.to_string())
    }
}

type CliResult<T = u8> = Result<T, Failure>;

const USAGE: &str = "\
distsched — distributed cron and task scheduler backed by Redis

usage: distsched <command> [options]

commands:
  node       run a node (scheduler, worker, or both) until SIGTERM/SIGINT
  leader     show who leads: node, epoch, lease time left (exit 1: no leader)
  workers    list live nodes from the registry
  stats      cluster summary: leader, workers, tasks by place, rates over the last minute
  task       submit, show, list, cancel tasks and read their logs
  job        add, list, show, remove, enable, disable, trigger cron jobs

options for every command:
  --redis URL   Redis URL (env DISTSCHED_REDIS_URL; default redis://127.0.0.1:6379);
                redis-sentinel://[:pass@]host[:port][,host[:port]...][/db]#master for Sentinel
  --ns NAME     key namespace (env DISTSCHED_NAMESPACE; default distsched)
  --json        print JSON instead of a table
  -h, --help    help for the command
  -V, --version print the version

environment for every command: DISTSCHED_REDIS_TIMEOUT, DISTSCHED_SENTINEL_PASSWORD,
  DISTSCHED_REDIS_WAIT_REPLICAS, DISTSCHED_REDIS_WAIT_TIMEOUT (as for a node: a submit
  not acknowledged by that many replicas exits 1; retry it with the same --key)

exit codes: 0 ok, 1 failure, 64 usage error, 69 Redis unreachable";

/// Runs the CLI with the process arguments; returns the exit code.
pub fn run() -> ExitCode {
    let mut parser = Parser::from_env();
    let code = match dispatch(&mut parser) {
        Ok(code) => code,
        Err(f) => {
            eprintln!("distsched: {}", f.message);
            f.code
        }
    };
    ExitCode::from(code)
}

fn dispatch(parser: &mut Parser) -> CliResult {
    match parser.next()? {
        Some(Arg::Value(cmd)) => {
            let cmd = cmd.string()?;
            match cmd.as_str() {
                "node" => node::run(parser),
                "leader" => cluster::leader(parser),
                "workers" => cluster::workers(parser),
                "stats" => stats::run(parser),
                "task" => task::run(parser),
                "job" => job::run(parser),
                "help" => {
                    outln!("{USAGE}");
                    Ok(exit::OK)
                }
                other => Err(Failure::usage(format!(
                    "unknown command `{other}` (try `distsched --help`)"
                ))),
            }
        }
        Some(Arg::Long("help") | Arg::Short('h')) | None => {
            outln!("{USAGE}");
            Ok(exit::OK)
        }
        Some(Arg::Long("version") | Arg::Short('V')) => {
            outln!("distsched {}", env!("CARGO_PKG_VERSION"));
            Ok(exit::OK)
        }
        Some(arg) => Err(arg.unexpected().into()),
    }
}

/// A parsed argument that no longer borrows the parser, so the parser can
/// be asked for the option's value while the option is matched.
pub enum Opt {
    /// `--name`
    Long(String),
    /// `-c`
    Short(char),
    /// A positional value.
    Value(OsString),
}

impl Opt {
    fn from(arg: Arg<'_>) -> Opt {
        match arg {
            Arg::Long(l) => Opt::Long(l.to_string()),
            Arg::Short(c) => Opt::Short(c),
            Arg::Value(v) => Opt::Value(v),
        }
    }

    /// The "unexpected argument" error for this argument.
    fn unexpected(&self, command: &str) -> Failure {
        match self {
            Opt::Long(l) => Failure::usage(format!(
                "unknown option `--{l}` for `distsched {command}` (see --help)"
            )),
            Opt::Short(c) => Failure::usage(format!(
                "unknown option `-{c}` for `distsched {command}` (see --help)"
            )),
            Opt::Value(v) => Failure::usage(format!(
                "unexpected argument `{}` for `distsched {command}`",
                v.to_string_lossy()
            )),
        }
    }
}

/// The next argument of `parser`, owned.
fn next(parser: &mut Parser) -> CliResult<Option<Opt>> {
    Ok(parser.next()?.map(Opt::from))
}

/// Settings a client command reads from the environment besides the URL
/// and the namespace.
const CLIENT_SETTINGS: [&str; 4] = [
    "redis_timeout",
    "sentinel_password",
    "redis_wait_replicas",
    "redis_wait_timeout",
];

/// Options every client command takes.
pub struct Common {
    redis_url: String,
    namespace: String,
    json: bool,
}

impl Common {
    fn from_env() -> Common {
        let env = |name: &str, default: &str| {
            std::env::var(distsched::config::env_name(name)).unwrap_or_else(|_| default.into())
        };
        Common {
            redis_url: env("redis_url", "redis://127.0.0.1:6379"),
            namespace: env("namespace", "distsched"),
            json: false,
        }
    }

    /// Takes `arg` if it is a common option; returns false otherwise.
    fn take(&mut self, opt: &Opt, parser: &mut Parser) -> CliResult<bool> {
        let Opt::Long(name) = opt else {
            return Ok(false);
        };
        match name.as_str() {
            "redis" => self.redis_url = value(parser, "--redis")?,
            "ns" => self.namespace = value(parser, "--ns")?,
            "json" => self.json = true,
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn client(&self) -> CliResult<distsched::Client> {
        // The node's Redis settings that a client shares, from the same
        // environment variables (checked by the same parser).
        let mut config = distsched::Config::default();
        config.set(
            "redis_url",
            &self.redis_url,
            "--redis or DISTSCHED_REDIS_URL",
        )?;
        for name in CLIENT_SETTINGS {
            let var = distsched::config::env_name(name);
            if let Ok(value) = std::env::var(&var) {
                config.set(name, &value, &var)?;
            }
        }
        let mut client = distsched::Client::open_with(&config.redis_options(), &self.namespace)?;
        client.ping()?;
        Ok(client)
    }
}

/// The value of a flag as UTF-8 text, with the flag named on error.
///
/// A separate value that looks like a long flag (`--exec --wait`) is refused:
/// it is almost always a forgotten value, and taking it would, say, submit a
/// task for an executor named `--wait`. Such a value can still be given
/// attached: `--flag=--value`.
fn value(parser: &mut Parser, flag: &str) -> CliResult<String> {
    let raw: OsString = match parser.optional_value() {
        Some(attached) => attached,
        None => {
            let raw = parser
                .value()
                .map_err(|_| Failure::usage(format!("{flag} needs a value")))?;
            if let Some(text) = raw.to_str()
                && text.len() > 2
                && text.starts_with("--")
            {
                return Err(Failure::usage(format!(
                    "{flag} needs a value, got the option `{text}` (write {flag}={text} if that is the value)"
                )));
            }
            raw
        }
    };
    raw.into_string()
        .map_err(|_| Failure::usage(format!("{flag}: value is not valid UTF-8")))
}

/// Prints `value` as pretty JSON on stdout.
fn print_json(value: &impl serde::Serialize) -> CliResult<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Failure::usage(format!("cannot encode JSON: {e}")))?;
    outln!("{text}");
    Ok(())
}

/// Prints rows as left-aligned columns under a header.
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        outln!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// `1234` ms → `1.2s`, `45` → `45ms`, `125000` → `2m5s`.
fn human_ms(ms: i64) -> String {
    if ms < 0 {
        "-".into()
    } else if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}m{}s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

/// Parses `--flag value` pairs and one optional positional id.
pub struct Args {
    common: Common,
    id: Option<String>,
    flags: Vec<(String, Option<String>)>,
}

fn parse(
    parser: &mut Parser,
    command: &str,
    help: &str,
    valued: &[&str],
    bare: &[&str],
) -> CliResult<Args> {
    let mut args = Args {
        common: Common::from_env(),
        id: None,
        flags: Vec::new(),
    };
    while let Some(opt) = next(parser)? {
        if args.common.take(&opt, parser)? {
            continue;
        }
        match &opt {
            Opt::Long(l) if l == "help" => {
                outln!("{help}");
                std::process::exit(0);
            }
            Opt::Long(l) if valued.contains(&l.as_str()) => {
                let v = value(parser, &format!("--{l}"))?;
                args.flags.push((l.clone(), Some(v)));
            }
            Opt::Long(l) if bare.contains(&l.as_str()) => args.flags.push((l.clone(), None)),
            Opt::Value(v) if args.id.is_none() => {
                args.id = Some(v.to_string_lossy().into_owned());
            }
            _ => return Err(opt.unexpected(command)),
        }
    }
    Ok(args)
}

impl Args {
    fn get(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    /// A comma-separated flag (`--tags a,b`) as its non-empty items.
    fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|t| {
                t.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn has(&self, name: &str) -> bool {
        self.flags.iter().any(|(n, _)| n == name)
    }

    /// Refuses a positional argument for commands that take none.
    fn no_id(&self, command: &str) -> CliResult<()> {
        match &self.id {
            Some(v) => Err(Failure::usage(format!(
                "unexpected argument `{v}` for `distsched {command}`"
            ))),
            None => Ok(()),
        }
    }

    fn id(&self, command: &str) -> CliResult<&str> {
        self.id
            .as_deref()
            .ok_or_else(|| Failure::usage(format!("`distsched {command}` needs an id")))
    }
}

fn duration_flag(args: &Args, name: &str) -> CliResult<Option<Duration>> {
    args.get(name)
        .map(|v| {
            parse_duration(v).map_err(|e| Failure::usage(format!("invalid --{name} `{v}`: {e}")))
        })
        .transpose()
}

fn number_flag<T: std::str::FromStr>(args: &Args, name: &str, what: &str) -> CliResult<Option<T>> {
    args.get(name)
        .map(|v| {
            v.parse()
                .map_err(|_| Failure::usage(format!("invalid --{name} `{v}`: expected {what}")))
        })
        .transpose()
}
