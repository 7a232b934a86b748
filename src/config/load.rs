//! Setting a [`Config`] from text (config file, environment, flags) and
//! checking the relations between settings.

use std::path::Path;
use std::time::Duration;

use super::{
    Config, Role, SETTINGS, Secret, env_name, parse_bool, parse_builtin, parse_duration,
    parse_http_addr, redact_url,
};
use crate::balancer::Balancer;
use crate::error::{Error, Result};
use crate::executor::http::parse_http_allow;
use crate::executor::shell::TaskEnv;
use crate::model::ident::{self, Name};

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
                crate::store::RedisOptions::new(value)
                    .check()
                    .map_err(|e| {
                        Error::Config(format!(
                            "invalid redis_url `{}` (from {source}): {e}",
                            redact_url(value)
                        ))
                    })?;
                self.redis_url = value.into();
            }
            "sentinel_password" => {
                if value.len() > 512 || value.contains(['\r', '\n']) {
                    // A secret: the message does not repeat it.
                    return Err(Error::Config(format!(
                        "invalid sentinel_password (from {source}): at most 512 bytes, one line"
                    )));
                }
                self.sentinel_password = (!value.is_empty()).then(|| Secret(value.to_string()));
            }
            "redis_wait_replicas" => {
                self.redis_wait_replicas = value
                    .parse()
                    .ok()
                    .filter(|&n| n <= 100)
                    .ok_or_else(|| bad("expected a whole number from 0 to 100"))?
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
            "task_retention_count" => {
                self.task_retention_count = value
                    .parse()
                    .ok()
                    .filter(|&n| (1..=1_000_000_000).contains(&n))
                    .ok_or_else(|| bad("expected a whole number from 1 to 1000000000"))?
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
            | "recover_interval" | "redis_timeout" | "redis_wait_timeout" | "shutdown_grace"
            | "task_retention" => {
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
            "redis_wait_timeout" => &mut self.redis_wait_timeout,
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
            self.redis_wait_replicas == 0
                || (!self.redis_wait_timeout.is_zero()
                    && self.redis_wait_timeout <= self.renew_interval),
            format!(
                "invalid redis_wait_timeout {:?}: must be non-zero and at most renew_interval ({:?}) when redis_wait_replicas is set",
                self.redis_wait_timeout, self.renew_interval
            ),
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
