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
//!   not asked first again. There is no cached master: every reconnect
//!   asks, because the last known master is exactly what a failover
//!   invalidates.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::{ConnectionInfo, IntoConnectionInfo};

use crate::error::{Error, Result};

/// Default sentinel port, when a host of a sentinel URL names none.
const SENTINEL_PORT: u16 = 26379;

/// Most sentinels one URL may list.
const MAX_SENTINELS: usize = 16;

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
                return redis::Client::open(url)
                    .map(|c| Endpoint::Server(Box::new(c)))
                    .map_err(|e| e.to_string());
            }
        };
        Sentinels::parse(scheme, rest, sentinel_password).map(|s| Endpoint::Sentinel(Arc::new(s)))
    }

    /// Opens a connection to the writable master (the setup handshake
    /// bounded by `timeout`).
    pub fn connect(&self, timeout: Duration) -> Result<redis::Connection> {
        match self {
            Endpoint::Server(client) => Ok(client.get_connection_with_timeout(timeout)?),
            Endpoint::Sentinel(s) => s.connect(timeout),
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
    }

    fn connect(&self, timeout: Duration) -> Result<redis::Connection> {
        let order = self.order.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut failures = Vec::new();
        // A master address that failed is not tried again in this round: a
        // frozen master that every sentinel still names (the failover has
        // not happened yet) costs one timeout, not one per sentinel.
        let mut tried: Vec<(String, u16)> = Vec::new();
        for (addr, info) in &order {
            let found = ask(info, &self.master, timeout).and_then(|(host, port)| {
                if tried.contains(&(host.clone(), port)) {
                    return Err(Error::Unavailable(format!("names {host}:{port} again")));
                }
                tried.push((host.clone(), port));
                self.open_master(&host, port, timeout)
            });
            match found {
                Ok(conn) => {
                    let mut order = self.order.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(i) = order.iter().position(|(a, _)| a == addr) {
                        let first = order.remove(i);
                        order.insert(0, first);
                    }
                    return Ok(conn);
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

/// Asks one sentinel for the master's address.
fn ask(info: &ConnectionInfo, master: &str, timeout: Duration) -> Result<(String, u16)> {
    let mut conn = redis::Client::open(info.clone())?.get_connection_with_timeout(timeout)?;
    conn.set_read_timeout(Some(timeout))?;
    conn.set_write_timeout(Some(timeout))?;
    let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg(master)
        .query(&mut conn)?;
    addr.ok_or_else(|| Error::Unavailable(format!("does not know a master named `{master}`")))
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
