//! Node configuration: defaults, and the merge of config file ← environment
//! ← flags, with validation.
//!
//! Every setting has one name (`lease_ttl`) used in three places: the JSON
//! config file key, the environment variable (`DISTSCHED_LEASE_TTL`) and the
//! flag (`--lease-ttl`). [`SETTINGS`] lists them with their defaults; the
//! README's configuration table is written from it. Later sources override
//! earlier ones: defaults ← file ← environment ← flags.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use crate::balancer::Balancer;
use crate::error::{Error, Result};
use crate::executor::BUILTINS;
use crate::executor::http::{AllowedHost, parse_http_allow};
use crate::executor::shell::TaskEnv;
use crate::model::ident::{self, Name};

/// What a node runs: the scheduler role (leader election, dispatch, cron,
/// recovery), the worker role (heartbeat-registered executor pool), or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Scheduler and worker (the default).
    Both,
    /// Takes part in leader election only; runs no tasks.
    Scheduler,
    /// Runs tasks only; never leads.
    Worker,
}

impl Role {
    /// True if this role takes part in leader election.
    pub fn schedules(self) -> bool {
        matches!(self, Role::Both | Role::Scheduler)
    }

    /// True if this role runs tasks.
    pub fn works(self) -> bool {
        matches!(self, Role::Both | Role::Worker)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Both => "both",
            Role::Scheduler => "scheduler",
            Role::Worker => "worker",
        })
    }
}

/// A secret setting (`http_token`): its `Debug` output is redacted, so
/// printing a [`Config`] cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// One documented setting: its name, default (as text) and meaning.
pub struct Setting {
    /// Name in the config file; `DISTSCHED_` + upper case in the environment;
    /// `--` + kebab case as a flag.
    pub name: &'static str,
    /// The default, as it would be written.
    pub default: &'static str,
    /// What it does.
    pub help: &'static str,
}

/// Every setting a node reads, in the order the README lists them.
pub const SETTINGS: &[Setting] = &[
    Setting {
        name: "redis_url",
        default: "redis://127.0.0.1:6379",
        help: "Redis URL, `redis://[:password@]host:port/db`",
    },
    Setting {
        name: "namespace",
        default: "distsched",
        help: "key namespace; every key is `{namespace}:…` (one hash slot)",
    },
    Setting {
        name: "node_id",
        default: "<hostname>-<8 hex>",
        help: "this node's id; must be unique among live nodes",
    },
    Setting {
        name: "role",
        default: "both",
        help: "`both`, `scheduler` (leader election only) or `worker` (tasks only)",
    },
    Setting {
        name: "capacity",
        default: "10",
        help: "worker pool threads = most tasks queued + running on this node",
    },
    Setting {
        name: "tags",
        default: "",
        help: "comma-separated worker tags used for routing",
    },
    Setting {
        name: "weight",
        default: "1",
        help: "worker weight for the `weighted` balancer (1..=1000)",
    },
    Setting {
        name: "lease_ttl",
        default: "10s",
        help: "leader lease time to live",
    },
    Setting {
        name: "renew_interval",
        default: "3s",
        help: "how often the leader renews its lease (< lease_ttl / 2)",
    },
    Setting {
        name: "heartbeat_interval",
        default: "10s",
        help: "how often a node refreshes its registry entry",
    },
    Setting {
        name: "heartbeat_timeout",
        default: "30s",
        help: "registry entry TTL; a node silent this long is dead",
    },
    Setting {
        name: "recover_interval",
        default: "1s",
        help: "how often the leader's recoverer looks for dead nodes",
    },
    Setting {
        name: "redis_timeout",
        default: "5s",
        help: "connect/read/write timeout of non-blocking Redis calls",
    },
    Setting {
        name: "balancer",
        default: "least-tasks",
        help: "default balancer: least-tasks, round-robin, random, weighted, consistent-hash",
    },
    Setting {
        name: "exec",
        default: "",
        help: "declare a shell executor `NAME=COMMAND` (repeatable; one per line in the env; object in the file)",
    },
    Setting {
        name: "allow_adhoc_shell",
        default: "false",
        help: "offer the `shell` executor, which runs any argv a task names",
    },
    Setting {
        name: "task_env",
        default: "inherit",
        help: "environment of shell tasks: `inherit` (the node's minus DISTSCHED_* and secrets), `none`, or only the names listed (`PATH,HOME`)",
    },
    Setting {
        name: "builtin",
        default: "all",
        help: "built-in executors offered: `all` (noop, http, rpc), `none`, or a list (`noop,http`)",
    },
    Setting {
        name: "http_allow",
        default: "",
        help: "hosts the http and rpc executors may call, `host[:port],[v6]:port` (none: any; set: no redirects)",
    },
    Setting {
        name: "shutdown_grace",
        default: "30s",
        help: "how long running tasks may finish on shutdown before they are stopped",
    },
    Setting {
        name: "task_retention",
        default: "7d",
        help: "how long ended tasks and their logs are kept",
    },
    Setting {
        name: "http_addr",
        default: "",
        help: "serve /health, /ready, /metrics and the JSON API here: PORT or :PORT (127.0.0.1), IP:PORT (`--http`)",
    },
    Setting {
        name: "http_token",
        default: "",
        help: "bearer token every HTTP route but /health and /ready requires (none: no auth)",
    },
    Setting {
        name: "http_read_token",
        default: "",
        help: "second bearer token for GET routes only; writes with it get 403 (needs http_token)",
    },
    Setting {
        name: "http_insecure",
        default: "false",
        help: "allow http_addr beyond the loopback without http_token (anyone who reaches it may submit)",
    },
];

/// A node's configuration. Build it with [`Config::default`] and the
/// setters, or with [`Config::set`] from text; check it with
/// [`Config::validate`] (done by `Node::start`). Its `Debug` output
/// redacts the Redis password and the tokens.
#[derive(Clone)]
pub struct Config {
    /// Redis URL. Default `redis://127.0.0.1:6379`.
    pub redis_url: String,
    /// Key namespace. Default `distsched`.
    pub namespace: String,
    /// Node id. Default `<hostname>-<8 random hex digits>`.
    pub node_id: String,
    /// Role. Default [`Role::Both`].
    pub role: Role,
    /// Worker pool size and most tasks held at once. Default 10.
    pub capacity: usize,
    /// Worker tags used for routing. Default none.
    pub tags: Vec<String>,
    /// Weight for the weighted balancer. Default 1.
    pub weight: u32,
    /// Leader lease TTL. Default 10 s.
    pub lease_ttl: Duration,
    /// Leader lease renew interval. Default 3 s.
    pub renew_interval: Duration,
    /// Heartbeat interval. Default 10 s.
    pub heartbeat_interval: Duration,
    /// Registry entry TTL: a node silent this long is dead. Default 30 s.
    pub heartbeat_timeout: Duration,
    /// Recoverer tick. Default 1 s.
    pub recover_interval: Duration,
    /// Timeout of non-blocking Redis calls. Default 5 s.
    pub redis_timeout: Duration,
    /// Balancer the leader uses for tasks that name none. Default
    /// least-tasks.
    pub balancer: Balancer,
    /// Declared shell executors: name → command line (split into argv, no
    /// shell). Default none.
    pub exec: Vec<(String, String)>,
    /// Offer the ad hoc `shell` executor. Default false.
    pub allow_adhoc_shell: bool,
    /// Which of the node's environment variables shell tasks get. Default
    /// [`TaskEnv::Inherit`]: all but `DISTSCHED_*` and secret-holding ones.
    pub task_env: TaskEnv,
    /// The built-in executors offered, from [`BUILTINS`]. Default all of
    /// them (`noop`, `http`, `rpc`). Declared commands and ad hoc `shell`
    /// follow `exec` and `allow_adhoc_shell` instead.
    pub builtin: Vec<String>,
    /// Hosts the `http` and `rpc` executors may call. Default empty: any
    /// host, redirects followed; when set, redirects are not followed.
    pub http_allow: Vec<AllowedHost>,
    /// Shutdown grace for running tasks. Default 30 s.
    pub shutdown_grace: Duration,
    /// Retention of ended tasks and logs. Default 7 days.
    pub task_retention: Duration,
    /// Where the HTTP server listens. Default none: no server.
    pub http_addr: Option<SocketAddr>,
    /// Bearer token the HTTP API requires (not `/health`, `/ready`).
    /// Default none: no authentication.
    pub http_token: Option<Secret>,
    /// Bearer token for the read-only routes (`GET`, `HEAD`); a write with
    /// it gets 403. Needs `http_token`. Default none.
    pub http_read_token: Option<Secret>,
    /// Let `http_addr` listen beyond the loopback without `http_token`.
    /// Default false: such a node refuses to start.
    pub http_insecure: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            redis_url: "redis://127.0.0.1:6379".into(),
            namespace: "distsched".into(),
            node_id: default_node_id(),
            role: Role::Both,
            capacity: 10,
            tags: Vec::new(),
            weight: 1,
            lease_ttl: Duration::from_secs(10),
            renew_interval: Duration::from_secs(3),
            heartbeat_interval: Duration::from_secs(10),
            heartbeat_timeout: Duration::from_secs(30),
            recover_interval: Duration::from_secs(1),
            redis_timeout: Duration::from_secs(5),
            balancer: Balancer::LeastTasks,
            exec: Vec::new(),
            allow_adhoc_shell: false,
            task_env: TaskEnv::Inherit,
            builtin: BUILTINS.iter().map(|b| b.to_string()).collect(),
            http_allow: Vec::new(),
            shutdown_grace: Duration::from_secs(30),
            task_retention: Duration::from_secs(7 * 86400),
            http_addr: None,
            http_token: None,
            http_read_token: None,
            http_insecure: false,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("redis_url", &redact_url(&self.redis_url))
            .field("namespace", &self.namespace)
            .field("node_id", &self.node_id)
            .field("role", &self.role)
            .field("capacity", &self.capacity)
            .field("tags", &self.tags)
            .field("weight", &self.weight)
            .field("lease_ttl", &self.lease_ttl)
            .field("renew_interval", &self.renew_interval)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("heartbeat_timeout", &self.heartbeat_timeout)
            .field("recover_interval", &self.recover_interval)
            .field("redis_timeout", &self.redis_timeout)
            .field("balancer", &self.balancer)
            .field("exec", &self.exec)
            .field("allow_adhoc_shell", &self.allow_adhoc_shell)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("task_retention", &self.task_retention)
            .field("http_addr", &self.http_addr)
            .field("http_token", &self.http_token)
            .field("http_read_token", &self.http_read_token)
            .field("http_insecure", &self.http_insecure)
            .field("task_env", &self.task_env)
            .field("builtin", &self.builtin)
            .field("http_allow", &self.http_allow)
            .finish_non_exhaustive()
    }
}

/// `url` with its `user:password@` part replaced by `***@`, for every
/// place a Redis or HTTP URL is printed or logged.
pub fn redact_url(url: &str) -> String {
    crate::executor::http::redact(url)
}

/// `<hostname>-<8 hex>`: unique per process start, readable in listings.
fn default_node_id() -> String {
    // A host name with characters a node id may not have (or too long)
    // still gives a valid default.
    let host: String = hostname()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(100)
        .collect();
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}", &rand[..8])
}

/// The machine's host name (`/proc/sys/kernel/hostname`, then `$HOSTNAME`).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

impl Config {
    /// Sets one setting from text, as read from a file, the environment or a
    /// flag. `source` names where the value came from, for the error line.
    pub fn set(&mut self, name: &str, value: &str, source: &str) -> Result<()> {
        let bad =
            |what: &str| Error::Config(format!("invalid {name} `{value}` (from {source}): {what}"));
        // The name check's message already quotes the value, escaped.
        let bad_name = |what: &str| Error::Config(format!("{what} ({name} from {source})"));
        match name {
            "redis_url" => {
                redis::Client::open(value).map_err(|e| {
                    Error::Config(format!(
                        "invalid redis_url `{}` (from {source}): {e}",
                        redact_url(value)
                    ))
                })?;
                self.redis_url = value.into();
            }
            "namespace" => {
                ident::check(Name::Namespace, value).map_err(|e| bad_name(&e))?;
                self.namespace = value.into();
            }
            "node_id" => {
                ident::check(Name::NodeId, value).map_err(|e| bad_name(&e))?;
                self.node_id = value.into();
            }
            "role" => {
                self.role = match value {
                    "both" => Role::Both,
                    "scheduler" => Role::Scheduler,
                    "worker" => Role::Worker,
                    _ => return Err(bad("expected both, scheduler or worker")),
                }
            }
            "capacity" => {
                self.capacity = value
                    .parse()
                    .ok()
                    .filter(|&n| (1..=10_000).contains(&n))
                    .ok_or_else(|| bad("expected a whole number from 1 to 10000"))?
            }
            "tags" => {
                let tags: Vec<String> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(String::from)
                    .collect();
                for tag in &tags {
                    ident::check(Name::Tag, tag).map_err(|e| bad_name(&e))?;
                }
                self.tags = tags;
            }
            "weight" => {
                self.weight = value
                    .parse()
                    .ok()
                    .filter(|&n| (1..=1000).contains(&n))
                    .ok_or_else(|| bad("expected a whole number from 1 to 1000"))?
            }
            "balancer" => {
                self.balancer = Balancer::parse(value).map_err(|e| bad(&e.to_string()))?
            }
            "exec" => {
                // One `NAME=COMMAND`; the empty default declares nothing.
                if value.trim().is_empty() {
                    return Ok(());
                }
                let (name, command) = value
                    .split_once('=')
                    .ok_or_else(|| bad("expected NAME=COMMAND"))?;
                let name = name.trim();
                ident::check(Name::Executor, name).map_err(|e| bad_name(&e))?;
                if command.trim().is_empty() {
                    return Err(bad("the command is empty"));
                }
                self.exec.retain(|(n, _)| n != name);
                self.exec
                    .push((name.to_string(), command.trim().to_string()));
            }
            "allow_adhoc_shell" => self.allow_adhoc_shell = parse_bool(value).map_err(&bad)?,
            "http_insecure" => self.http_insecure = parse_bool(value).map_err(&bad)?,
            "task_env" => self.task_env = TaskEnv::parse(value).map_err(|e| bad(&e))?,
            "builtin" => self.builtin = parse_builtin(value).map_err(|e| bad(&e))?,
            "http_allow" => self.http_allow = parse_http_allow(value).map_err(|e| bad(&e))?,
            "http_addr" => self.http_addr = parse_http_addr(value).map_err(|e| bad(&e))?,
            "http_token" | "http_read_token" => {
                if !value.is_empty()
                    && (value.len() > 256 || !value.bytes().all(|b| b.is_ascii_graphic()))
                {
                    // A secret: the message does not repeat it.
                    return Err(Error::Config(format!(
                        "invalid {name} (from {source}): use 1-256 visible ASCII characters (no spaces)"
                    )));
                }
                let token = (!value.is_empty()).then(|| Secret(value.to_string()));
                if name == "http_token" {
                    self.http_token = token;
                } else {
                    self.http_read_token = token;
                }
            }
            "lease_ttl" | "renew_interval" | "heartbeat_interval" | "heartbeat_timeout"
            | "recover_interval" | "redis_timeout" | "shutdown_grace" | "task_retention" => {
                let d = parse_duration(value).map_err(|e| bad(&e))?;
                *self.duration_mut(name) = d;
            }
            _ => {
                return Err(Error::Config(format!(
                    "unknown setting `{name}` (from {source})"
                )));
            }
        }
        Ok(())
    }

    fn duration_mut(&mut self, name: &str) -> &mut Duration {
        match name {
            "lease_ttl" => &mut self.lease_ttl,
            "renew_interval" => &mut self.renew_interval,
            "heartbeat_interval" => &mut self.heartbeat_interval,
            "heartbeat_timeout" => &mut self.heartbeat_timeout,
            "recover_interval" => &mut self.recover_interval,
            "shutdown_grace" => &mut self.shutdown_grace,
            "task_retention" => &mut self.task_retention,
            _ => &mut self.redis_timeout,
        }
    }

    /// Applies a JSON config file: an object whose keys are setting names.
    /// Values are strings, numbers, booleans, or arrays of strings (joined
    /// with commas, for `tags`). Unknown keys are an error, so typos show.
    pub fn apply_file(&mut self, path: &Path) -> Result<()> {
        let shown = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("cannot read config file {shown}: {e}")))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::Config(format!("config file {shown} is not valid JSON: {e}")))?;
        let serde_json::Value::Object(map) = value else {
            return Err(Error::Config(format!(
                "config file {shown} must hold a JSON object"
            )));
        };
        let source = format!("config file {shown}");
        for (key, v) in map {
            if key == "exec" {
                // `{"name": "command"}` or `["name=command", ...]`.
                let entries: Vec<String> = match v {
                    serde_json::Value::Object(entries) => entries
                        .iter()
                        .map(|(n, c)| format!("{n}={}", c.as_str().unwrap_or_default()))
                        .collect(),
                    serde_json::Value::Array(items) => items
                        .iter()
                        .map(|i| i.as_str().unwrap_or_default().to_string())
                        .collect(),
                    serde_json::Value::String(one) => vec![one],
                    other => {
                        return Err(Error::Config(format!(
                            "invalid exec `{other}` (from {source}): expected {{\"name\": \"command\"}} or a list of \"name=command\""
                        )));
                    }
                };
                for entry in entries {
                    self.set("exec", &entry, &source)?;
                }
                continue;
            }
            let text = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                serde_json::Value::Array(items) => items
                    .iter()
                    .map(|i| {
                        i.as_str()
                            .map(String::from)
                            .unwrap_or_else(|| i.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                other => {
                    return Err(Error::Config(format!(
                        "invalid {key} `{other}` (from {source}): expected a string, number or list"
                    )));
                }
            };
            self.set(&key, &text, &source)?;
        }
        Ok(())
    }

    /// Applies every `DISTSCHED_<SETTING>` environment variable that names a
    /// known setting. Other `DISTSCHED_*` variables (such as the ones the
    /// shell executor sets for its children) are ignored.
    pub fn apply_env(&mut self) -> Result<()> {
        for setting in SETTINGS {
            let var = env_name(setting.name);
            if let Ok(value) = std::env::var(&var) {
                if setting.name == "exec" {
                    // Several declarations, one per line.
                    for line in value.lines() {
                        self.set("exec", line, &var)?;
                    }
                } else {
                    self.set(setting.name, &value, &var)?;
                }
            }
        }
        Ok(())
    }

    /// Checks the relations between settings. `Node::start` calls it.
    pub fn validate(&self) -> Result<()> {
        let rule = |ok: bool, msg: String| if ok { Ok(()) } else { Err(Error::Config(msg)) };
        rule(
            self.lease_ttl >= Duration::from_millis(100),
            format!(
                "invalid lease_ttl {:?}: must be at least 100ms",
                self.lease_ttl
            ),
        )?;
        rule(
            self.renew_interval * 2 <= self.lease_ttl && !self.renew_interval.is_zero(),
            format!(
                "invalid renew_interval {:?}: must be non-zero and at most half of lease_ttl ({:?})",
                self.renew_interval, self.lease_ttl
            ),
        )?;
        rule(
            self.heartbeat_interval < self.heartbeat_timeout && !self.heartbeat_interval.is_zero(),
            format!(
                "invalid heartbeat_interval {:?}: must be non-zero and shorter than heartbeat_timeout ({:?})",
                self.heartbeat_interval, self.heartbeat_timeout
            ),
        )?;
        rule(
            !self.recover_interval.is_zero(),
            "invalid recover_interval: must be non-zero".into(),
        )?;
        rule(
            !self.redis_timeout.is_zero(),
            "invalid redis_timeout: must be non-zero".into(),
        )?;
        rule(
            self.task_retention >= Duration::from_secs(1),
            "invalid task_retention: must be at least 1s".into(),
        )?;
        rule(
            self.http_read_token.is_none() || self.http_token.is_some(),
            "invalid http_read_token: set http_token too (otherwise writes would need no token at all)".into(),
        )?;
        rule(
            self.http_read_token.is_none() || self.http_read_token != self.http_token,
            "invalid http_read_token: must differ from http_token".into(),
        )?;
        match self.http_addr {
            Some(addr)
                if !addr.ip().is_loopback() && self.http_token.is_none() && !self.http_insecure =>
            {
                Err(Error::Config(format!(
                    "refusing to serve HTTP on {addr} beyond the loopback without http_token: set --http-token (or DISTSCHED_HTTP_TOKEN), or pass --http-insecure to accept that anyone who reaches it may submit tasks"
                )))
            }
            _ => Ok(()),
        }
    }
}

/// Parses `builtin`: `all`, `none`, or a comma-separated list of names
/// from [`BUILTINS`]; unknown names are an error (a typo must not silently
/// take an executor away, nor `shell` suggest it governs ad hoc commands).
pub fn parse_builtin(text: &str) -> std::result::Result<Vec<String>, String> {
    let hint = format!("expected all, none, or a list of {}", BUILTINS.join(", "));
    match text.trim() {
        "all" => return Ok(BUILTINS.iter().map(|b| b.to_string()).collect()),
        "none" => return Ok(Vec::new()),
        "" => return Err(hint),
        _ => {}
    }
    let mut names: Vec<String> = Vec::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !BUILTINS.contains(&name) {
            let why = match name {
                "shell" => "`shell` is governed by allow_adhoc_shell".to_string(),
                _ => format!("unknown built-in `{name}`"),
            };
            return Err(format!("{why}; {hint}"));
        }
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    Ok(names)
}

/// Parses `http_addr`: empty (no server), `PORT` or `:PORT` (loopback,
/// 127.0.0.1), `localhost:PORT`, or `IP:PORT` / `[IPv6]:PORT` as given. Only
/// an explicit address such as `0.0.0.0:8080` listens beyond this host.
pub fn parse_http_addr(text: &str) -> std::result::Result<Option<SocketAddr>, String> {
    const HINT: &str = "expected PORT, :PORT, localhost:PORT or IP:PORT";
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let loopback = |port: &str| {
        port.parse::<u16>()
            .map(|p| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p))
            .map_err(|_| format!("bad port `{port}`; {HINT}"))
    };
    let addr = if let Some(port) = text.strip_prefix(':') {
        loopback(port)?
    } else if let Some(port) = text.strip_prefix("localhost:") {
        loopback(port)?
    } else if text.bytes().all(|b| b.is_ascii_digit()) {
        loopback(text)?
    } else {
        text.parse::<SocketAddr>()
            .map_err(|_| format!("not an address; {HINT}"))?
    };
    Ok(Some(addr))
}

/// Parses a boolean setting: `true`/`1`/`yes` or `false`/`0`/`no`.
pub fn parse_bool(text: &str) -> std::result::Result<bool, &'static str> {
    match text {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err("expected true or false"),
    }
}

/// `lease_ttl` → `DISTSCHED_LEASE_TTL`.
pub fn env_name(setting: &str) -> String {
    format!("DISTSCHED_{}", setting.to_ascii_uppercase())
}

/// Parses `500ms`, `10s`, `1.5s`, `5m`, `1h`, `2d`, or sums such as `1m30s`.
/// A bare number is refused: a unit must be written.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    const HINT: &str = "expected a duration like 500ms, 10s, 5m, 1h";
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(HINT.into());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("missing unit; {HINT}"))?;
        let (num, tail) = rest.split_at(split);
        let value: f64 = num.parse().map_err(|_| HINT.to_string())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => return Err(format!("unknown unit `{unit}`; {HINT}")),
        };
        total += value * scale;
        rest = tail;
    }
    if !total.is_finite() || total > 10.0 * 365.0 * 86400.0 {
        return Err("too long".into());
    }
    Ok(Duration::from_secs_f64(total))
}

/// Formats a duration the way [`parse_duration`] reads it (`1.5s`, `250ms`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) || ms == 0 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else {
        format!("{}s", ms / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        for bad in ["", "10", "abc", "10x", "s", "-1s", "1..2s", "99999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad} should be refused");
        }
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(300)), "5m");
        assert_eq!(format_duration(Duration::from_secs(10)), "10s");
    }

    #[test]
    fn set_and_validate() {
        let mut c = Config::default();
        c.set("capacity", "4", "test").unwrap();
        assert_eq!(c.capacity, 4);
        assert!(c.set("capacity", "0", "test").is_err());
        assert!(c.set("role", "boss", "test").is_err());
        assert!(c.set("nope", "1", "test").is_err());
        c.set("tags", "a, b,,c", "test").unwrap();
        assert_eq!(c.tags, ["a", "b", "c"]);
        c.set("renew_interval", "6s", "test").unwrap();
        assert!(c.validate().is_err(), "renew must be at most ttl/2");
        c.set("lease_ttl", "12s", "test").unwrap();
        c.validate().unwrap();
        let err = Config::default()
            .set("lease_ttl", "10", "--lease-ttl")
            .unwrap_err();
        assert!(err.to_string().contains("lease_ttl"), "{err}");
        assert!(err.to_string().contains("--lease-ttl"), "{err}");
    }

    #[test]
    fn every_setting_is_settable_from_its_default() {
        for s in SETTINGS {
            if s.default.starts_with('<') {
                continue;
            }
            Config::default()
                .set(s.name, s.default, "defaults")
                .unwrap_or_else(|e| panic!("{}: {e}", s.name));
        }
    }

    #[test]
    fn exec_commands_keep_their_semicolons() {
        let mut c = Config::default();
        c.set("exec", "rec=sh -c 'echo a; sleep 1'", "--exec")
            .unwrap();
        c.set("exec", "two=/bin/two --x", "--exec").unwrap();
        assert_eq!(
            c.exec,
            [
                ("rec".to_string(), "sh -c 'echo a; sleep 1'".to_string()),
                ("two".to_string(), "/bin/two --x".to_string())
            ]
        );
        assert!(c.set("exec", "no-equals-sign", "--exec").is_err());
        assert!(c.set("exec", "bad name=x", "--exec").is_err());
    }

    #[test]
    fn http_settings() {
        let loopback = |p: u16| Some(SocketAddr::from(([127, 0, 0, 1], p)));
        assert_eq!(parse_http_addr("8080"), Ok(loopback(8080)));
        assert_eq!(parse_http_addr(":8080"), Ok(loopback(8080)));
        assert_eq!(parse_http_addr("localhost:9"), Ok(loopback(9)));
        assert_eq!(
            parse_http_addr("0.0.0.0:80"),
            Ok(Some(SocketAddr::from(([0, 0, 0, 0], 80))))
        );
        assert_eq!(parse_http_addr("[::1]:80").map(|a| a.is_some()), Ok(true));
        assert_eq!(parse_http_addr(""), Ok(None));
        for bad in ["0.0.0.0", "host:80", ":99999", "80a", "::"] {
            assert!(parse_http_addr(bad).is_err(), "{bad} should be refused");
        }
        let mut c = Config::default();
        c.set("http_token", "s3cr3t-Token", "test").unwrap();
        assert_eq!(c.http_token, Some(Secret("s3cr3t-Token".into())));
        assert!(
            !format!("{c:?}").contains("s3cr3t"),
            "Debug redacts the token"
        );
        let err = c
            .set("http_token", "has space", "--http-token")
            .unwrap_err();
        assert!(err.to_string().contains("http_token"), "{err}");
        assert!(!err.to_string().contains("has space"), "{err}");
        c.set("http_token", "", "test").unwrap();
        assert_eq!(c.http_token, None);
        c.set("redis_url", "redis://app:pa55w0rd@10.0.0.5:6379/2", "test")
            .unwrap();
        c.set("http_read_token", "r3ad-T0ken", "test").unwrap();
        let shown = format!("{c:?}");
        assert!(shown.contains("redis://***@10.0.0.5:6379/2"), "{shown}");
        assert!(
            !shown.contains("pa55w0rd") && !shown.contains("r3ad"),
            "{shown}"
        );
        let err = c
            .set("redis_url", "redis://app:pa55w0rd@[::1", "--redis")
            .unwrap_err();
        assert!(!err.to_string().contains("pa55w0rd"), "{err}");
    }

    #[test]
    fn executor_exposure_settings() {
        let mut c = Config::default();
        assert_eq!(c.builtin, BUILTINS);
        c.set("builtin", "none", "test").unwrap();
        assert!(c.builtin.is_empty());
        c.set("builtin", "http, noop,http", "test").unwrap();
        assert_eq!(c.builtin, ["http", "noop"]);
        for bad in ["", "curl", "noop,shell", "all,noop"] {
            let err = c.set("builtin", bad, "--builtin").unwrap_err().to_string();
            assert!(
                err.contains("builtin") && err.contains("--builtin"),
                "{err}"
            );
        }
        let err = c.set("builtin", "shell", "t").unwrap_err().to_string();
        assert!(err.contains("allow_adhoc_shell"), "{err}");

        c.set("http_allow", "a.example,[::1]:8080", "test").unwrap();
        assert_eq!(c.http_allow.len(), 2);
        assert!(c.set("http_allow", "a b", "--http-allow").is_err());
        c.set("http_allow", "", "test").unwrap();
        assert!(c.http_allow.is_empty());

        assert_eq!(c.task_env, TaskEnv::Inherit);
        c.set("task_env", "PATH,HOME", "test").unwrap();
        assert_eq!(
            c.task_env,
            TaskEnv::Allow(vec!["PATH".into(), "HOME".into()])
        );
        let err = c.set("task_env", "PATH,1X", "--task-env").unwrap_err();
        assert!(err.to_string().contains("task_env"), "{err}");
    }

    #[test]
    fn readme_documents_every_setting() {
        let readme = include_str!("../README.md");
        for s in SETTINGS {
            assert!(
                readme.contains(&format!("| `{}` | ", s.name)),
                "README's configuration table lacks `{}`",
                s.name
            );
        }
    }
}
