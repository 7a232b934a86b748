//! Unit tests of the config: parsing, validation, redaction, README table.

use super::*;
use std::time::Duration;

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
    let readme = include_str!("../../README.md");
    for s in SETTINGS {
        assert!(
            readme.contains(&format!("| `{}` | ", s.name)),
            "README's configuration table lacks `{}`",
            s.name
        );
    }
}
