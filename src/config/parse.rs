//! Parsers and formatters of setting values, shared by the config and the
//! CLI: durations, addresses, booleans, built-in lists, env names, and the
//! URL redaction every printed URL goes through.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::executor::BUILTINS;

/// `url` with its `user:password@` part replaced by `***@`, for every
/// place a Redis or HTTP URL is printed or logged.
pub fn redact_url(url: &str) -> String {
    crate::executor::http::redact(url)
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
