//! The library's one error type.
//!
//! Every fallible public function returns [`Error`]. The binary maps the
//! variants to exit codes (see `main.rs`): [`Error::Config`] → 64,
//! [`Error::Unavailable`] → 69, everything else → 1.

use std::fmt;

/// Everything that can go wrong in distsched.
#[derive(Debug)]
pub enum Error {
    /// A setting, flag or input value is invalid. The message names it.
    Config(String),
    /// Redis cannot be reached (connection refused, timed out, dropped).
    Unavailable(String),
    /// Redis answered with an error (script error, wrong type, auth, ...).
    Redis(redis::RedisError),
    /// A fenced leader write was refused: the caller no longer holds the
    /// lease with the epoch it presented. The caller must stop leader work.
    Fenced,
    /// The node id is registered by another live process.
    NodeIdInUse {
        /// The contested node id.
        id: String,
        /// How long the other registration still has to live, in ms.
        ttl_ms: i64,
    },
    /// A named thing (task, job, node) does not exist.
    NotFound(String),
    /// An operating-system error (spawning a thread, reading a file).
    Io(std::io::Error),
    /// A stored record could not be decoded.
    Json(serde_json::Error),
    /// A stored job record cannot be read (not JSON, or fields of a newer
    /// version), so the job cannot be used until it is replaced or removed.
    BrokenJob {
        /// The job id.
        id: String,
        /// Why its record cannot be read.
        message: String,
    },
    /// A write reached the master but fewer replicas than `wait_replicas`
    /// acknowledged it within `wait_timeout`: a failover now could lose it.
    /// Retry (with the same idempotency key, for a submit).
    NotReplicated {
        /// Replicas that acknowledged.
        acked: u32,
        /// Replicas required.
        wanted: u32,
    },
    /// A component thread of the node panicked or ended and its policy
    /// stops the node (see the README's supervision table).
    ComponentFailed {
        /// The component's thread name.
        component: String,
        /// `panicked: …` or `ended unexpectedly`.
        reason: String,
    },
}

/// Shorthand for `Result<T, distsched::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True when the error means "Redis is not reachable right now", as
    /// opposed to a bad request: callers retry these with backoff.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(msg) => write!(f, "{msg}"),
            Error::Unavailable(msg) => write!(f, "Redis unreachable: {msg}"),
            Error::Redis(e) => write!(f, "Redis error: {e}"),
            Error::Fenced => write!(f, "fenced: this node no longer holds the leader lease"),
            Error::NodeIdInUse { id, ttl_ms } => write!(
                f,
                "node id `{id}` is registered by another live node (its entry expires in {ttl_ms} ms); choose another --id or wait"
            ),
            Error::NotFound(what) => write!(f, "{what} not found"),
            Error::Io(e) => write!(f, "{e}"),
            Error::Json(e) => write!(f, "bad stored record: {e}"),
            Error::BrokenJob { id, message } => write!(
                f,
                "job {id} cannot be used: {message}; replace it (job add {id} --replace ...) or remove it (job rm {id})"
            ),
            Error::NotReplicated { acked, wanted } => write!(
                f,
                "not acknowledged by enough replicas ({acked} of {wanted} within redis_wait_timeout); a failover could lose it: retry"
            ),
            Error::ComponentFailed { component, reason } => {
                write!(f, "component {component} {reason}; the node stops")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Redis(e) => Some(e),
            Error::Io(e) => Some(e),
            Error::Json(e) => Some(e),
            _ => None,
        }
    }
}

impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Self {
        if e.code() == Some("FENCED") {
            Error::Fenced
        } else if e.code().is_some_and(|c| NOT_MASTER.contains(&c)) {
            Error::Unavailable(format!("{e} (not the writable master; reconnecting)"))
        } else if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_unrecoverable_error()
        {
            Error::Unavailable(e.to_string())
        } else {
            Error::Redis(e)
        }
    }
}

/// Error codes that mean the server is not (or no longer) the writable
/// master: a replica (`READONLY`), a master without enough replicas
/// (`NOREPLICAS`, `min-replicas-to-write`), a replica cut off from its
/// master (`MASTERDOWN`), a server loading its data (`LOADING`), a blocked
/// call ended by a role change (`UNBLOCKED`).
const NOT_MASTER: &[&str] = &[
    "READONLY",
    "NOREPLICAS",
    "MASTERDOWN",
    "LOADING",
    "UNBLOCKED",
];

impl From<redis::ParsingError> for Error {
    fn from(e: redis::ParsingError) -> Self {
        Error::Redis(e.into())
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Json(e)
    }
}
