//! Redis access: connections that reconnect with backoff, the key builder
//! ([`keys`]), the Lua scripts ([`scripts`]), their typed argument builders
//! ([`calls`]) and the fenced-write path.
//!
//! Each thread owns its own [`Conn`]; a blocking loop (BLPOP/BRPOP) gets a
//! dedicated one whose read timeout is the block time plus a margin, so the
//! client never gives up on a command that Redis will still complete.

pub mod calls;
pub mod keys;
pub mod scripts;

use std::time::Duration;

use redis::{Script, ScriptInvocation};

pub use keys::Keys;

use crate::error::{Error, Result};

/// How a Redis deployment is reached: a client for the URL plus the
/// namespace's keys. Cheap to clone; opens no connection by itself.
#[derive(Clone)]
pub struct Store {
    client: redis::Client,
    /// The namespace's key builder.
    pub keys: Keys,
    timeout: Duration,
}

impl Store {
    /// A store for `url` and namespace `ns`. `timeout` bounds connecting and
    /// every non-blocking call.
    pub fn new(url: &str, ns: &str, timeout: Duration) -> Result<Store> {
        install_tls_provider();
        let client = redis::Client::open(url).map_err(|e| {
            Error::Config(format!(
                "invalid redis_url `{}`: {e}",
                crate::config::redact_url(url)
            ))
        })?;
        Ok(Store {
            client,
            keys: Keys::new(ns),
            timeout,
        })
    }

    /// A new lazily connecting [`Conn`]; `name` labels its log lines.
    pub fn conn(&self, name: &'static str) -> Conn {
        Conn {
            client: self.client.clone(),
            conn: None,
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
    client: redis::Client,
    conn: Option<redis::Connection>,
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
    pub fn run<T>(
        &mut self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T> {
        self.run_blocking(Duration::ZERO, f)
    }

    /// Like [`Conn::run`] for a command that blocks up to `block` in Redis:
    /// the read timeout is stretched to `block` plus the normal timeout.
    pub fn run_blocking<T>(
        &mut self,
        block: Duration,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T> {
        let read_timeout = block + self.timeout;
        let result = self.connect().and_then(|c| {
            c.set_read_timeout(Some(read_timeout))
                .map_err(Error::from)?;
            f(c).map_err(Error::from)
        });
        self.settle(result)
    }

    fn connect(&mut self) -> Result<&mut redis::Connection> {
        if self.conn.is_none() {
            let c = self.client.get_connection_with_timeout(self.timeout)?;
            c.set_write_timeout(Some(self.timeout))?;
            self.conn = Some(c);
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
                self.conn = None;
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
