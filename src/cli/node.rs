//! `distsched node`: build the configuration (defaults ← config file ←
//! environment ← flags), start the node, and stop it on SIGTERM/SIGINT.

use std::path::PathBuf;

use lexopt::Parser;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use distsched::config::SETTINGS;
use distsched::{Config, JobSpec, Node};

use super::{CliResult, Failure, Opt, exit, next, value};

fn help() -> String {
    let mut text = String::from(
        "usage: distsched node [options]\n\n\
         Runs a node until SIGTERM or SIGINT (a second signal exits at once).\n\n\
         options (each also settable as DISTSCHED_<NAME> or in the config file):\n  \
         --config FILE       JSON config file (env DISTSCHED_CONFIG)\n  \
         --jobs FILE         JSON jobs to keep stored while this node leads\n  \
         --prune-jobs        with --jobs: also remove stored jobs the file lacks\n  \
         --id ID             alias of --node-id\n  \
         --redis URL         alias of --redis-url\n  \
         --ns NAME           alias of --namespace\n  \
         --http ADDR         alias of --http-addr\n",
    );
    for s in SETTINGS {
        let value = if SWITCHES.contains(&s.name) { "" } else { " V" };
        let flag = format!("--{}{value}", s.name.replace('_', "-"));
        text.push_str(&format!("  {flag:<22}{} (default {})\n", s.help, s.default));
    }
    text
}

/// Boolean settings whose flag takes no value: `--http-insecure` alone
/// means true.
const SWITCHES: &[&str] = &["allow_adhoc_shell", "http_insecure"];

/// `distsched node`.
pub fn run(parser: &mut Parser) -> CliResult {
    let mut config_file = std::env::var_os("DISTSCHED_CONFIG").map(PathBuf::from);
    let mut flags: Vec<(String, String, String)> = Vec::new();
    let mut jobs_file: Option<PathBuf> = None;
    let mut prune_jobs = false;
    while let Some(opt) = next(parser)? {
        let long = match &opt {
            Opt::Long(l) => l.as_str(),
            Opt::Short('h') => "help",
            _ => return Err(opt.unexpected("node")),
        };
        let name = match long {
            "help" => {
                outln!("{}", help());
                return Ok(exit::OK);
            }
            "config" => {
                config_file = Some(value(parser, "--config")?.into());
                continue;
            }
            "jobs" => {
                jobs_file = Some(PathBuf::from(value(parser, "--jobs")?));
                continue;
            }
            "prune-jobs" => {
                prune_jobs = true;
                continue;
            }
            "id" => "node_id".to_string(),
            "redis" => "redis_url".to_string(),
            "ns" => "namespace".to_string(),
            "http" => "http_addr".to_string(),
            _ => long.replace('-', "_"),
        };
        if !SETTINGS.iter().any(|s| s.name == name) {
            return Err(opt.unexpected("node"));
        }
        let flag = format!("--{long}");
        // A switch: `--allow-adhoc-shell` alone means true.
        let v = if SWITCHES.contains(&name.as_str()) {
            "true".to_string()
        } else {
            value(parser, &flag)?
        };
        flags.push((name, v, flag));
    }

    let mut config = Config::default();
    if let Some(path) = &config_file {
        config.apply_file(path)?;
    }
    config.apply_env()?;
    for (name, v, flag) in &flags {
        config.set(name, v, flag)?;
    }
    config.validate()?;

    init_logging();
    let signals =
        Signals::new([SIGTERM, SIGINT]).map_err(|e| Failure::from(distsched::Error::Io(e)))?;
    let mut builder = Node::builder(config);
    if let Some(path) = &jobs_file {
        builder = builder.jobs(read_jobs_file(path)?, prune_jobs);
    } else if prune_jobs {
        return Err(Failure::usage("--prune-jobs needs --jobs FILE"));
    }
    let node = builder.start()?;
    let signalled = forward_signals(signals);
    crossbeam_channel::select! {
        recv(signalled) -> sig => {
            if let Ok(sig) = sig {
                log::info!("signal {sig} received: shutting down (send again to exit at once)");
            }
            node.shutdown();
            Ok(exit::OK)
        }
        recv(node.failure()) -> err => {
            let message = err.map(|e| e.to_string()).unwrap_or_else(|_| "node failed".into());
            node.shutdown();
            Err(Failure { code: exit::FAILURE, message })
        }
    }
}

/// Reads a jobs file: a JSON array of job definitions, or `{"jobs": [...]}`.
fn read_jobs_file(path: &std::path::Path) -> CliResult<Vec<JobSpec>> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::usage(format!("cannot read jobs file {shown}: {e}")))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Failure::usage(format!("jobs file {shown} is not valid JSON: {e}")))?;
    let list = match value {
        serde_json::Value::Array(items) => items,
        serde_json::Value::Object(mut map) => match map.remove("jobs") {
            Some(serde_json::Value::Array(items)) => items,
            _ => {
                return Err(Failure::usage(format!(
                    "jobs file {shown} must hold an array of jobs or {{\"jobs\": [...]}}"
                )));
            }
        },
        _ => {
            return Err(Failure::usage(format!(
                "jobs file {shown} must hold an array of jobs"
            )));
        }
    };
    let mut specs: Vec<JobSpec> = Vec::with_capacity(list.len());
    for (i, item) in list.into_iter().enumerate() {
        let spec: JobSpec = serde_json::from_value(item)
            .map_err(|e| Failure::usage(format!("jobs file {shown}, job #{}: {e}", i + 1)))?;
        spec.validate()
            .map_err(|e| Failure::usage(format!("jobs file {shown}, job `{}`: {e}", spec.id)))?;
        if specs.iter().any(|s| s.id == spec.id) {
            return Err(Failure::usage(format!(
                "jobs file {shown}: job `{}` appears twice",
                spec.id
            )));
        }
        specs.push(spec);
    }
    Ok(specs)
}

/// Forwards the first SIGTERM/SIGINT on a channel; a second signal (during
/// a slow shutdown) exits at once.
fn forward_signals(mut signals: Signals) -> crossbeam_channel::Receiver<i32> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let mut forever = signals.forever();
        if let Some(sig) = forever.next() {
            let _ = tx.send(sig);
        }
        if forever.next().is_some() {
            log::warn!("second signal: exiting without a clean shutdown");
            std::process::exit(130);
        }
    });
    rx
}

/// `RUST_LOG` if set, else info for distsched and warn for the rest. One
/// line per event: `[2026-12-02T06:48:08.977Z INFO  target] message`. The
/// timestamp comes from chrono (already a dependency), not env_logger's
/// `humantime` feature, which brings a second date library into the binary.
fn init_logging() {
    use std::io::Write;
    let env = env_logger::Env::default().default_filter_or("warn,distsched=info");
    let _ = env_logger::Builder::from_env(env)
        .format(|buf, record| {
            writeln!(
                buf,
                "[{} {:<5} {}] {}",
                chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                record.level(),
                record.target(),
                record.args()
            )
        })
        .try_init();
}
