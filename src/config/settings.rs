//! The table of every setting a node reads: name, default and meaning, in
//! the order the README lists them (a unit test keeps the README in step).

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
        help: "Redis URL: `redis://[:password@]host:port/db`, `rediss://…` (TLS), or Sentinel `redis-sentinel://[:password@]host[:port][,host[:port]…][/db]#master` (`rediss-sentinel://` for TLS)",
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
        help: "connect/read/write timeout of non-blocking Redis calls (and of each sentinel asked)",
    },
    Setting {
        name: "sentinel_password",
        default: "",
        help: "password of the sentinels of a Sentinel URL (the URL's own password is the master's)",
    },
    Setting {
        name: "redis_wait_replicas",
        default: "0",
        help: "replicas that must acknowledge (WAIT) a lease acquire, a cron firing and a submit (0: no WAIT)",
    },
    Setting {
        name: "redis_wait_timeout",
        default: "1s",
        help: "how long such a WAIT waits; a submit not acknowledged in time fails (exit 1, HTTP 503)",
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
        name: "task_retention_count",
        default: "100000",
        help: "the most ended tasks kept, with their logs (oldest dropped first, whatever their age)",
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
