//! How a connection finds the writable master: one server named by a
//! `redis://` / `rediss://` URL, or a Sentinel set named by a
//! `redis-sentinel://` / `rediss-sentinel://` URL (the form Lettuce uses).
//!
//! Nothing here runs on a thread of its own: [`Endpoint::connect`] runs on
//! whichever thread opens a [`Conn`](super::Conn), at every (re)connect.
//!
//! - A server URL is resolved again on every connect (the `redis` crate
//!   calls `to_socket_addrs` each time), so a managed service that fails
//!   over by moving a DNS name is followed at the next reconnect.
//! - A Sentinel URL asks the sentinels in turn for the master's address,
//!   each bounded by the connect timeout (a sentinel that accepts and never
//!   answers costs one timeout, not a hang), connects to the address named
//!   and checks `ROLE` is `master` before any command runs: a sentinel with
//!   a stale view, or a demoted master, is skipped. The sentinel that
//!   answered moves to the front of the list, so a dead or silent one is
//!   not asked first again. A reconnect never uses a remembered address:
//!   it asks, because the last known master is exactly what a failover
//!   invalidates.
//! - A connection that outlived a failover (idle, or blocked in a call
//!   while its master was frozen) would go on writing to a resumed old
//!   master that still says `master` until Sentinel demotes it, seconds
//!   later: those writes are lost. So before a call every connection
//!   compares its master with the sentinels' current answer, which one
//!   thread of the process refreshes at most every [`MASTER_CHECK`] over a
//!   kept sentinel connection, and reconnects when they differ.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::{ConnectionInfo, IntoConnectionInfo};

use crate::error::{Error, Result};

/// Default sentinel port, when a host of a sentinel URL names none.
const SENTINEL_PORT: u16 = 26379;

/// Most sentinels one URL may list.
const MAX_SENTINELS: usize = 16;

/// How often a process asks the sentinels whether its connections still
/// go to the master (once for all of them). After a check that no
/// sentinel answered, ten times as long.
pub(crate) const MASTER_CHECK: Duration = Duration::from_secs(1);

/// A master's host (as the sentinels name it) and port.
pub(crate) type MasterAddr = (String, u16);

/// The last master the sentinels named, and when.
#[derive(Default)]
struct Watch {
    master: Option<MasterAddr>,
    next_check: Option<Instant>,
    /// A thread is asking: the others use the last answer meanwhile.
    busy: bool,
    /// A connection to the sentinel that answered last, kept for the checks.
    sentinel: Option<redis::Connection>,
}

/// Where connections go. Cheap to clone.
#[derive(Clone)]
pub(crate) enum Endpoint {
    /// One server (or a DNS name that a managed service moves).
    Server(Box<redis::Client>),
    /// A master found through sentinels.
    Sentinel(Arc<Sentinels>),
}

/// A parsed sentinel URL plus the order the sentinels are asked in.
pub(crate) struct Sentinels {
    /// The master's name the sentinels monitor (the URL's `#fragment`).
    master: String,
    /// The sentinels, the one that answered last first.
    order: Mutex<Vec<(String, ConnectionInfo)>>,
    /// `redis` or `rediss`: how the master is reached.
    scheme: &'static str,
    /// The URL's `user:password@` part, as written (percent-encoded).
    userinfo: String,
    /// The database number.
    db: i64,
    /// The sentinels' last answer, for [`Endpoint::still_master`].
    watch: Mutex<Watch>,
}

impl Endpoint {
    /// Parses `url`. `sentinel_password` authenticates to the sentinels of
    /// a sentinel URL (the URL's own password is the master's).
    pub fn parse(url: &str, sentinel_password: Option<&str>) -> Result<Endpoint, String> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(
                "expected redis://, rediss://, redis-sentinel:// or rediss-sentinel://".into(),
            );
        };
        let scheme = match scheme {
            "redis-sentinel" => "redis",
            "rediss-sentinel" => "rediss",
            _ => {
                return url
                    .into_connection_info()
                    .and_then(|info| redis::Client::open(lean(info)))
                    .map(|c| Endpoint::Server(Box::new(c)))
                    .map_err(|e| e.to_string());
            }
        };
        Sentinels::parse(scheme, rest, sentinel_password).map(|s| Endpoint::Sentinel(Arc::new(s)))
    }

    /// Opens a connection to the writable master (the setup handshake
    /// bounded by `timeout`), with the master's address for a Sentinel set.
    pub fn connect(&self, timeout: Duration) -> Result<(redis::Connection, Option<MasterAddr>)> {
        match self {
            Endpoint::Server(client) => Ok((client.get_connection_with_timeout(timeout)?, None)),
            Endpoint::Sentinel(s) => s.connect(timeout).map(|(c, a)| (c, Some(a))),
        }
    }

    /// False when the sentinels now name another master than `addr`: a
    /// connection to `addr` that survived the failover (it was idle, or
    /// blocked in a call while the master was frozen) must be dropped, or
    /// its writes go to a zombie master that Sentinel demotes later. The
    /// sentinels are asked at most every [`MASTER_CHECK`] per process; an
    /// unanswered check keeps the connection.
    pub fn still_master(&self, addr: &MasterAddr, timeout: Duration) -> bool {
        match self {
            Endpoint::Server(_) => true,
            Endpoint::Sentinel(s) => s.current(timeout).is_none_or(|m| &m == addr),
        }
    }

    /// The password the master connection uses, if any (a secret tasks
    /// must not see).
    pub fn password(&self) -> Option<String> {
        match self {
            Endpoint::Server(client) => client
                .get_connection_info()
                .redis_settings()
                .password()
                .map(str::to_string),
            Endpoint::Sentinel(s) => s
                .master_info("127.0.0.1", 6379)
                .ok()
                .and_then(|i| i.redis_settings().password().map(str::to_string)),
        }
    }
}

impl Sentinels {
    /// `rest` is the URL after `scheme-sentinel://`:
    /// `[[user]:password@]host[:port][,host[:port]…][/db]#master`.
    fn parse(
        scheme: &'static str,
        rest: &str,
        password: Option<&str>,
    ) -> Result<Sentinels, String> {
        let (rest, master) = rest
            .split_once('#')
            .ok_or("a sentinel URL names its master after `#` (…#mymaster)")?;
        if master.is_empty() || master.len() > 128 || !master.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err("the master name after `#` must be 1-128 visible ASCII characters".into());
        }
        if rest.contains('?') {
            return Err("a sentinel URL takes no `?` parameters".into());
        }
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let db = match path {
            "" => 0,
            p => p
                .parse::<i64>()
                .ok()
                .filter(|d| (0..=1_000_000).contains(d))
                .ok_or_else(|| format!("bad database number `{p}`"))?,
        };
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((u, h)) => (format!("{u}@"), h),
            None => (String::new(), authority),
        };
        let mut order = Vec::new();
        for host in hosts.split(',') {
            if host.is_empty() {
                return Err("empty sentinel address in the host list".into());
            }
            let with_port = if has_port(host) {
                host.to_string()
            } else {
                format!("{host}:{SENTINEL_PORT}")
            };
            let info = format!("{scheme}://{with_port}")
                .into_connection_info()
                .map_err(|e| format!("bad sentinel address `{host}`: {e}"))?;
            let info = match password {
                Some(p) => {
                    let settings = info.redis_settings().clone().set_password(p);
                    info.set_redis_settings(settings)
                }
                None => info,
            };
            let info = lean(info);
            order.push((with_port, info));
        }
        if order.len() > MAX_SENTINELS {
            return Err(format!("at most {MAX_SENTINELS} sentinels"));
        }
        let sentinels = Sentinels {
            master: master.to_string(),
            order: Mutex::new(order),
            scheme,
            userinfo,
            db,
            watch: Mutex::default(),
        };
        // The credentials are checked now, not at the first failover.
        sentinels
            .master_info("127.0.0.1", 6379)
            .map_err(|e| format!("bad credentials: {e}"))?;
        Ok(sentinels)
    }

    /// The connection settings of a master at `host:port`: the URL's
    /// credentials, database and TLS choice, parsed by the `redis` crate.
    fn master_info(&self, host: &str, port: u16) -> redis::RedisResult<ConnectionInfo> {
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        format!(
            "{}://{}{host}:{port}/{}",
            self.scheme, self.userinfo, self.db
        )
        .into_connection_info()
        .map(lean)
    }

    fn connect(&self, timeout: Duration) -> Result<(redis::Connection, MasterAddr)> {
        let order = lock(&self.order).clone();
        let mut failures = Vec::new();
        // A master address that failed is not tried again in this round: a
        // frozen master that every sentinel still names (the failover has
        // not happened yet) costs one timeout, not one per sentinel.
        let mut tried: Vec<MasterAddr> = Vec::new();
        for (addr, info) in &order {
            let found = open_sentinel(info, timeout)
                .and_then(|mut c| query_master(&mut c, &self.master))
                .and_then(|master| {
                    if tried.contains(&master) {
                        return Err(Error::Unavailable(format!(
                            "names {}:{} again",
                            master.0, master.1
                        )));
                    }
                    tried.push(master.clone());
                    self.open_master(&master.0, master.1, timeout)
                        .map(|c| (c, master))
                });
            match found {
                Ok((conn, master)) => {
                    self.answered(addr);
                    let mut watch = lock(&self.watch);
                    watch.master = Some(master.clone());
                    watch.next_check = Some(Instant::now() + MASTER_CHECK);
                    return Ok((conn, master));
                }
                Err(e) => failures.push(format!("sentinel {addr}: {e}")),
            }
        }
        Err(Error::Unavailable(format!(
            "no writable master `{}` found: {}",
            self.master,
            failures.join("; ")
        )))
    }

    /// Moves the sentinel at `addr` to the front of the order.
    fn answered(&self, addr: &str) {
        let mut order = lock(&self.order);
        if let Some(i) = order.iter().position(|(a, _)| a == addr) {
            let first = order.remove(i);
            order.insert(0, first);
        }
    }

    /// Moves the first sentinel to the back of the order.
    fn demote_first(&self) {
        let mut order = lock(&self.order);
        if order.len() > 1 {
            let first = order.remove(0);
            order.push(first);
        }
    }

    /// The master the sentinels name now: the last answer while it is
    /// fresh (or while another thread asks), else one sentinel asked.
    fn current(&self, timeout: Duration) -> Option<MasterAddr> {
        let kept = {
            let mut watch = lock(&self.watch);
            if watch.busy || watch.next_check.is_some_and(|t| Instant::now() < t) {
                return watch.master.clone();
            }
            watch.busy = true;
            watch.sentinel.take()
        };
        let mut answer = None;
        let mut kept_conn = None;
        if let Some(mut c) = kept
            && let Ok(m) = query_master(&mut c, &self.master)
        {
            answer = Some(m);
            kept_conn = Some(c);
        }
        if answer.is_none() {
            // Cloned first: `answered` takes the lock again.
            let order = lock(&self.order).clone();
            for (addr, info) in order {
                let Ok(mut c) = open_sentinel(&info, timeout) else {
                    continue;
                };
                if let Ok(m) = query_master(&mut c, &self.master) {
                    self.answered(&addr);
                    answer = Some(m);
                    kept_conn = Some(c);
                    break;
                }
            }
        }
        // A new master is believed only once it says so (ROLE): a sentinel
        // with a stale view (a minority partition) must not make every
        // connection leave the real master each second.
        let known = lock(&self.watch).master.clone();
        if let Some(m) = &answer
            && known.as_ref() != Some(m)
            && self.open_master(&m.0, m.1, timeout).is_err()
        {
            answer = None;
            // Ask the others next time.
            kept_conn = None;
            self.demote_first();
        }
        let mut watch = lock(&self.watch);
        watch.busy = false;
        watch.sentinel = kept_conn;
        let wait = if answer.is_some() {
            MASTER_CHECK
        } else {
            MASTER_CHECK * 10
        };
        watch.next_check = Some(Instant::now() + wait);
        if answer.is_some() {
            watch.master = answer;
        }
        watch.master.clone()
    }

    /// Connects to the master a sentinel named and checks it is one.
    fn open_master(&self, host: &str, port: u16, timeout: Duration) -> Result<redis::Connection> {
        let info = self.master_info(host, port).map_err(|e| {
            Error::Unavailable(format!("sentinel named a bad address {host}:{port}: {e}"))
        })?;
        let mut conn = redis::Client::open(info)?.get_connection_with_timeout(timeout)?;
        conn.set_read_timeout(Some(timeout))?;
        let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut conn)?;
        match role.first() {
            Some(redis::Value::BulkString(r)) if r == b"master" => Ok(conn),
            _ => Err(Error::Unavailable(format!(
                "{host}:{port} is named master but is not one (ROLE)"
            ))),
        }
    }
}

/// `info` without the `CLIENT SETINFO` pair the `redis` crate sends on
/// connect: its handshake reads each reply with the connect timeout, so a
/// server that accepts and never answers (a frozen master, a silent
/// sentinel) held a connect two timeouts; now one, in the first command.
fn lean(info: ConnectionInfo) -> ConnectionInfo {
    let settings = info.redis_settings().clone().set_skip_set_lib_name();
    info.set_redis_settings(settings)
}

/// A connection to one sentinel, every call bounded by `timeout`.
fn open_sentinel(info: &ConnectionInfo, timeout: Duration) -> Result<redis::Connection> {
    let conn = redis::Client::open(info.clone())?.get_connection_with_timeout(timeout)?;
    conn.set_read_timeout(Some(timeout))?;
    conn.set_write_timeout(Some(timeout))?;
    Ok(conn)
}

/// Asks a sentinel for the master's address.
fn query_master(conn: &mut redis::Connection, master: &str) -> Result<MasterAddr> {
    let addr: Option<MasterAddr> = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg(master)
        .query(conn)?;
    addr.ok_or_else(|| Error::Unavailable(format!("does not know a master named `{master}`")))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// True when `host` ends in `:port` (an IPv6 literal is bracketed).
fn has_port(host: &str) -> bool {
    match host.rfind(':') {
        Some(i) => !host[i..].contains(']'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentinels(url: &str) -> Arc<Sentinels> {
        match Endpoint::parse(url, None) {
            Ok(Endpoint::Sentinel(s)) => s,
            Ok(Endpoint::Server(_)) => panic!("{url}: parsed as a server URL"),
            Err(e) => panic!("{url}: {e}"),
        }
    }

    #[test]
    fn parses_sentinel_urls() {
        let s = sentinels("redis-sentinel://:p%40ss@a:1,b,[::1]:3/2#mymaster");
        assert_eq!(s.master, "mymaster");
        assert_eq!(s.db, 2);
        assert_eq!(s.scheme, "redis");
        let order = s.order.lock().unwrap();
        let addrs: Vec<&str> = order.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(addrs, ["a:1", "b:26379", "[::1]:3"]);
        // The URL's password is the master's, decoded; sentinels get none.
        assert_eq!(order[0].1.redis_settings().password(), None);
        let master = s.master_info("10.0.0.5", 6380).unwrap();
        assert_eq!(master.redis_settings().password(), Some("p@ss"));
        assert_eq!(master.redis_settings().db(), 2);
        let tls = sentinels("rediss-sentinel://h#m");
        assert_eq!(tls.scheme, "rediss");
    }

    #[test]
    fn sentinel_password_goes_to_the_sentinels() {
        let Ok(Endpoint::Sentinel(s)) = Endpoint::parse("redis-sentinel://h#m", Some("sp")) else {
            panic!("not parsed");
        };
        let order = s.order.lock().unwrap();
        assert_eq!(order[0].1.redis_settings().password(), Some("sp"));
        assert_eq!(
            s.master_info("h", 1).unwrap().redis_settings().password(),
            None
        );
    }

    #[test]
    fn refuses_bad_sentinel_urls() {
        for (url, want) in [
            ("redis-sentinel://a:1", "names its master"),
            ("redis-sentinel://a:1#", "master name"),
            ("redis-sentinel://a:1#my master", "master name"),
            ("redis-sentinel://a,,b#m", "empty sentinel address"),
            ("redis-sentinel://a:99999#m", "bad sentinel address"),
            ("redis-sentinel://a/x#m", "bad database"),
            ("redis-sentinel://a?protocol=resp3#m", "no `?`"),
            ("unix-sentinel://a#m", "URL"),
            ("nothing", "expected redis://"),
        ] {
            let err = match Endpoint::parse(url, None) {
                Ok(_) => panic!("{url}: accepted"),
                Err(e) => e,
            };
            assert!(err.contains(want), "{url}: {err}");
        }
    }
}
