//! Redis access: connections that reconnect with backoff (to the master a
//! Sentinel set names, see `endpoint.rs`), the key builder ([`keys`]), the
//! Lua scripts ([`scripts`]), their typed argument builders ([`calls`]),
//! the fenced-write path and the optional `WAIT` for replicas.
//!
//! A reply that says the server is no longer the writable master
//! (`READONLY`, `NOREPLICAS`, `MASTERDOWN`, `LOADING`, `UNBLOCKED`) counts
//! as a lost connection: it is dropped and the next call finds the master
//! again.
//!
//! Each thread owns its own [`Conn`]; a blocking loop (BLPOP/BRPOP) gets a
//! dedicated one whose read timeout is the block time plus a margin, so the
//! client never gives up on a command that Redis will still complete.

pub mod calls;
mod endpoint;
pub mod keys;
pub mod scripts;

use std::time::Duration;

use redis::{Script, ScriptInvocation};

pub use keys::Keys;

use crate::error::{Error, Result};
use endpoint::{Endpoint, MasterAddr};

/// How to reach Redis and when a write counts as done: what nodes and
/// clients share. [`RedisOptions::new`] gives the defaults of a node.
#[derive(Clone)]
pub struct RedisOptions {
    /// `redis://`, `rediss://`, `redis-sentinel://` or `rediss-sentinel://`
    /// URL. Default `redis://127.0.0.1:6379`.
    pub url: String,
    /// Connect timeout and timeout of every non-blocking call (and of each
    /// sentinel asked). Default 5 s.
    pub timeout: Duration,
    /// Password of the sentinels of a sentinel URL (the URL's own password
    /// is the master's). Default none.
    pub sentinel_password: Option<String>,
    /// Replicas that must acknowledge (`WAIT`) a lease acquire, a cron
    /// firing and a submit before they count as done. Default 0: no `WAIT`.
    pub wait_replicas: u32,
    /// How long such a `WAIT` waits. Default 1 s.
    pub wait_timeout: Duration,
}

impl RedisOptions {
    /// Options for `url` with the defaults above.
    pub fn new(url: &str) -> RedisOptions {
        RedisOptions {
            url: url.into(),
            timeout: Duration::from_secs(5),
            sentinel_password: None,
            wait_replicas: 0,
            wait_timeout: Duration::from_secs(1),
        }
    }

    /// Checks the URL (and the sentinel credentials) without connecting.
    pub fn check(&self) -> std::result::Result<(), String> {
        Endpoint::parse(&self.url, self.sentinel_password.as_deref()).map(drop)
    }
}

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisOptions")
            .field("url", &crate::config::redact_url(&self.url))
            .field("timeout", &self.timeout)
            .field(
                "sentinel_password",
                &self.sentinel_password.as_ref().map(|_| "<redacted>"),
            )
            .field("wait_replicas", &self.wait_replicas)
            .field("wait_timeout", &self.wait_timeout)
            .finish()
    }
}

/// How a Redis deployment is reached: the endpoint for the URL plus the
/// namespace's keys. Cheap to clone; opens no connection by itself.
#[derive(Clone)]
pub struct Store {
    endpoint: Endpoint,
    /// The namespace's key builder.
    pub keys: Keys,
    timeout: Duration,
    wait: Option<(u32, Duration)>,
}

impl Store {
    /// A store for `url` and namespace `ns`. `timeout` bounds connecting and
    /// every non-blocking call.
    pub fn new(url: &str, ns: &str, timeout: Duration) -> Result<Store> {
        let mut options = RedisOptions::new(url);
        options.timeout = timeout;
        Store::open(&options, ns)
    }

    /// A store for `options` and namespace `ns`.
    pub fn open(options: &RedisOptions, ns: &str) -> Result<Store> {
        install_tls_provider();
        let endpoint = Endpoint::parse(&options.url, options.sentinel_password.as_deref())
            .map_err(|e| {
                Error::Config(format!(
                    "invalid redis_url `{}`: {e}",
                    crate::config::redact_url(&options.url)
                ))
            })?;
        Ok(Store {
            endpoint,
            keys: Keys::new(ns),
            timeout: options.timeout,
            wait: (options.wait_replicas > 0)
                .then_some((options.wait_replicas, options.wait_timeout)),
        })
    }

    /// The master's password, if the URL has one (a secret tasks must not
    /// see).
    pub fn password(&self) -> Option<String> {
        self.endpoint.password()
    }

    /// A new lazily connecting [`Conn`]; `name` labels its log lines.
    pub fn conn(&self, name: &'static str) -> Conn {
        Conn {
            endpoint: self.endpoint.clone(),
            conn: None,
            master: None,
            timeout: self.timeout,
            name,
            failures: 0,
            quiet: false,
        }
    }

    /// A [`Conn`] for one-shot calls whose caller reports errors itself: it
    /// logs nothing.
    pub fn quiet_conn(&self, name: &'static str) -> Conn {
        let mut conn = self.conn(name);
        conn.quiet = true;
        conn
    }

    /// Connects and PINGs once: the start-up check that turns "Redis is down"
    /// into one clear error instead of a node that retries silently.
    pub fn ping(&self) -> Result<()> {
        let mut conn = self.quiet_conn("ping");
        conn.run(|c| redis::cmd("PING").query::<String>(c))?;
        Ok(())
    }

    /// With `wait_replicas` N set: `WAIT N timeout` on `conn`, after the
    /// write that must survive a failover. [`Error::NotReplicated`] when
    /// fewer replicas acknowledged in time: the write is on the master
    /// but may be lost if it fails over now. Without it: nothing.
    pub fn wait_replicas(&self, conn: &mut Conn) -> Result<()> {
        let Some((wanted, timeout)) = self.wait else {
            return Ok(());
        };
        let acked = conn.run_blocking(timeout, |c| {
            redis::cmd("WAIT")
                .arg(wanted)
                .arg(timeout.as_millis() as u64)
                .query::<u32>(c)
        })?;
        if acked < wanted {
            return Err(Error::NotReplicated { acked, wanted });
        }
        Ok(())
    }

    /// True when writes wait for replicas (`wait_replicas` > 0).
    pub fn waits(&self) -> bool {
        self.wait.is_some()
    }
}

/// Makes ring the process's rustls crypto provider, for `rediss://` URLs,
/// unless the program installed one already (an embedding program may).
/// Server certificates are checked against the system's roots, or the PEM
/// file named by `SSL_CERT_FILE` (how a private CA is trusted).
fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// One Redis connection that reconnects on demand. After an I/O error the
/// connection is dropped and the next call opens a new one; callers wait
/// [`Conn::backoff`] between failed attempts.
pub struct Conn {
    endpoint: Endpoint,
    conn: Option<redis::Connection>,
    /// The master `conn` goes to, for a Sentinel set.
    master: Option<MasterAddr>,
    timeout: Duration,
    name: &'static str,
    failures: u32,
    /// One-shot calls report errors to their caller instead of logging a
    /// "retrying" line that no retry follows.
    quiet: bool,
}

impl Conn {
    /// Runs `f` on the connection, connecting first if needed. Errors that
    /// mean the connection is broken drop it, and are logged once per outage
    /// (the first failure at warn, the recovery at info).
    pub fn run<T>(&mut self, f: impl FnOnce(&mut Link<'_>) -> redis::RedisResult<T>) -> Result<T> {
        self.run_blocking(Duration::ZERO, f)
    }

    /// Like [`Conn::run`] for a command that blocks up to `block` in Redis:
    /// the read timeout is stretched to `block` plus the normal timeout.
    pub fn run_blocking<T>(
        &mut self,
        block: Duration,
        f: impl FnOnce(&mut Link<'_>) -> redis::RedisResult<T>,
    ) -> Result<T> {
        let read_timeout = block + self.timeout;
        let result = self.connect().and_then(|c| {
            c.set_read_timeout(Some(read_timeout))
                .map_err(Error::from)?;
            f(&mut Link(c)).map_err(Error::from)
        });
        self.settle(result)
    }

    fn connect(&mut self) -> Result<&mut redis::Connection> {
        if self.conn.is_some()
            && let Some(master) = &self.master
            && !self.endpoint.still_master(master, self.timeout)
        {
            log::info!(
                "{}: the sentinels name a new master (not {}:{}); reconnecting",
                self.name,
                master.0,
                master.1
            );
            crate::metrics::METRICS.redis_master_moves.inc();
            self.conn = None;
        }
        if self.conn.is_none() {
            let (c, master) = self.endpoint.connect(self.timeout)?;
            c.set_write_timeout(Some(self.timeout))?;
            self.conn = Some(c);
            self.master = master;
        }
        Ok(self.conn.as_mut().expect("connected above"))
    }

    fn settle<T>(&mut self, result: Result<T>) -> Result<T> {
        match &result {
            Ok(_) => {
                if self.failures > 0 {
                    log::info!("{}: Redis connection restored", self.name);
                }
                self.failures = 0;
            }
            Err(Error::Unavailable(msg)) => {
                if self.conn.take().is_some() {
                    crate::metrics::METRICS.redis_connection_errors.inc();
                }
                if self.failures == 0 && !self.quiet {
                    log::warn!(
                        "{}: Redis unreachable ({msg}); retrying with backoff",
                        self.name
                    );
                }
                self.failures = self.failures.saturating_add(1);
            }
            Err(_) => {}
        }
        result
    }

    /// How long to wait before the next attempt after a failure: 50 ms
    /// doubling to a 2 s cap, with ±25 % jitter so nodes do not reconnect in
    /// lock step.
    pub fn backoff(&self) -> Duration {
        let exp = self.failures.saturating_sub(1).min(6);
        let base = Duration::from_millis(50 * (1 << exp)).min(Duration::from_secs(2));
        base.mul_f64(0.75 + 0.5 * crate::random_unit())
    }

    /// True while the last call failed because Redis was unreachable.
    pub fn is_down(&self) -> bool {
        self.failures > 0
    }
}

/// The connection a [`Conn::run`] closure gets. Single commands and scripts
/// go straight through; a pipeline gives up at its first failed read. The
/// `redis` crate's own pipeline reads every reply even after a read timed
/// out, so a frozen server (SIGSTOP, a stalled VM) held a pipeline of N
/// commands N read timeouts: minutes, for a batch.
pub struct Link<'a>(&'a mut redis::Connection);

impl redis::ConnectionLike for Link<'_> {
    fn req_packed_command(&mut self, cmd: &[u8]) -> redis::RedisResult<redis::Value> {
        self.0.req_packed_command(cmd)
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> redis::RedisResult<Vec<redis::Value>> {
        self.0.send_packed_command(cmd)?;
        let mut replies = Vec::with_capacity(count);
        let mut queue_error = None;
        for i in 0..offset + count {
            // An I/O error ends the call: the connection is dropped anyway.
            match self.0.recv_response()? {
                // A command a transaction refused to queue (MULTI is reply 0).
                redis::Value::ServerError(e) if i < offset => {
                    queue_error.get_or_insert(e);
                }
                reply if i >= offset => replies.push(reply),
                _ => {}
            }
        }
        if let Some(e) = queue_error {
            return Err(e.into());
        }
        Ok(replies)
    }

    fn get_db(&self) -> i64 {
        self.0.get_db()
    }

    fn check_connection(&mut self) -> bool {
        self.0.check_connection()
    }

    fn is_open(&self) -> bool {
        self.0.is_open()
    }
}

/// The caller of a leader write: the node id and the epoch it was elected
/// with. Every fenced script checks both against Redis before writing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The leader's node id.
    pub node: String,
    /// The fencing epoch of its current term.
    pub epoch: u64,
}

impl Fence {
    /// Starts an invocation of a fenced `script`: the three fence keys and two
    /// fence arguments come first, so the body's own keys start at `KEYS[4]`
    /// and its arguments at `ARGV[3]`.
    pub fn invoke<'a>(&self, script: &'a Script, keys: &Keys) -> ScriptInvocation<'a> {
        let mut inv = script.prepare_invoke();
        inv.key(keys.leader())
            .key(keys.epoch())
            .key(keys.fence_rejected())
            .arg(&self.node)
            .arg(self.epoch);
        inv
    }
}
