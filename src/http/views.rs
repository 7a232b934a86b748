//! The routes the dashboard's pages use beyond the basic JSON API, on the
//! `http-N` handler threads: what the caller's token allows (`/access`,
//! answered without a token), the bounded
//! task search (`/search`), failures grouped by error (`/failures`),
//! per-minute history (`/history`), a page of jobs with next fire times
//! and firings (`/joblist`), a job's next fire times, a log tail from a
//! line number, and the actions "run again", "enable" and "disable".
//!
//! Every query parameter is checked: an unknown name, a value out of its
//! bounds or a malformed cursor is a 400 that names the parameter. The
//! costly reads go through the refresh floor (`cache.rs`).

use super::routes::query_pairs;
use super::{Access, Handler, Reply};
use crate::client::{
    HISTORY_MINUTES_MAX, JOB_PAGE_MAX, LOG_CHUNK_MAX, NEXT_FIRES_MAX, SEARCH_WINDOW_MAX, TaskQuery,
};
use crate::model::task::Status;
use serde_json::json;

/// Most tasks one `/search` page returns.
pub const SEARCH_LIMIT_MAX: usize = 1000;

/// Decoded query parameters, checked against the names a route takes.
struct Params(Vec<(String, String)>);

impl Params {
    /// The pairs of `query`; 400 for bad encoding or a name not in `names`.
    fn parse(query: &str, names: &[&str]) -> Result<Params, Reply> {
        let mut out = Vec::new();
        for (name, value) in query_pairs(query) {
            let (Some(name), Some(value)) = (name, value) else {
                return Err(Reply::error(400, "bad percent-encoding in the query"));
            };
            if !names.contains(&name.as_str()) {
                return Err(Reply::error(
                    400,
                    &format!(
                        "unknown query parameter `{name}` (expected {})",
                        names.join(", ")
                    ),
                ));
            }
            out.push((name, value));
        }
        Ok(Params(out))
    }

    /// The last non-empty value of `name`.
    fn text(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .rev()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.clone())
    }

    /// `name` as a number in `range`, `default` when absent; 400 otherwise.
    fn number(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<u64>,
        default: u64,
    ) -> Result<u64, Reply> {
        let Some(v) = self.text(name) else {
            return Ok(default);
        };
        match v.parse::<u64>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(Reply::error(
                400,
                &format!(
                    "invalid {name} `{v}`: expected {} to {}",
                    range.start(),
                    range.end()
                ),
            )),
        }
    }
}

/// Answers the dashboard routes; `None` when `seg`/`method` is not one of
/// them (the caller goes on with the rest of the API).
pub(super) fn route(
    h: &mut Handler,
    seg: &[&str],
    method: &str,
    query: &str,
    target: &str,
) -> Option<Reply> {
    let read = matches!(method, "GET" | "HEAD");
    let reply = match (seg, read, method) {
        (["search"], true, _) => {
            let ctx = h.ctx;
            ctx.cache.get_or(target, || search(h, query))
        }
        (["failures"], true, _) => {
            let ctx = h.ctx;
            ctx.cache.get_or(target, || failures(h, query))
        }
        (["history"], true, _) => {
            let ctx = h.ctx;
            ctx.cache.get_or(target, || history(h, query))
        }
        (["joblist"], true, _) => {
            let ctx = h.ctx;
            ctx.cache.get_or(target, || job_list(h, query))
        }
        (["jobs", id, "next"], true, _) => next_fires(h, id, query),
        (["jobs", id, action @ ("enable" | "disable")], _, "POST") => {
            match h.api.set_job_enabled(id, *action == "enable") {
                Ok(()) => Reply::json(200, &json!({"id": id, "enabled": *action == "enable"})),
                Err(e) => Reply::from_error(&e),
            }
        }
        (["tasks", id, "rerun"], _, "POST") => match h.api.rerun(id) {
            Ok(s) => {
                let location = format!("/tasks/{}", s.id);
                Reply::json(
                    201,
                    &json!({"id": s.id, "created": s.created, "rerun_of": id}),
                )
                .with_header("Location", location)
            }
            Err(e) => Reply::from_error(&e),
        },
        (["tasks", id, "logs"], true, _) if !query.is_empty() => logs_since(h, id, query),
        (["search" | "failures" | "history" | "joblist"], ..) | (["jobs", _, "next"], ..) => {
            not_allowed("GET, HEAD")
        }
        (["jobs", _, "enable" | "disable"] | ["tasks", _, "rerun"], ..) => not_allowed("POST"),
        _ => return None,
    };
    Some(reply)
}

/// `GET /access`: what the caller's token allows (`none`, `read`,
/// `full`), whether the node wants a token, and the refresh floor.
pub(super) fn access(h: &Handler, access: Access) -> Reply {
    let name = match access {
        Access::None => "none",
        Access::Read => "read",
        Access::Full => "full",
    };
    Reply::json(
        200,
        &json!({
            "access": name,
            "token": h.ctx.token.is_some(),
            "refresh_floor_ms": super::REFRESH_FLOOR.as_millis() as u64,
        }),
    )
}

fn not_allowed(allow: &'static str) -> Reply {
    Reply::error(405, &format!("method not allowed here (allowed: {allow})"))
        .with_header("Allow", allow)
}

fn result<T: serde::Serialize>(r: crate::Result<T>) -> Reply {
    match r {
        Ok(v) => Reply::json(200, &v),
        Err(e) => Reply::from_error(&e),
    }
}

/// `GET /search`: the bounded task search.
fn search(h: &mut Handler, query: &str) -> Reply {
    const NAMES: &[&str] = &[
        "status",
        "job",
        "executor",
        "worker",
        "id",
        "payload",
        "error",
        "error_group",
        "cursor",
        "limit",
        "window",
    ];
    let run = || -> Result<TaskQuery, Reply> {
        let p = Params::parse(query, NAMES)?;
        let status = p
            .text("status")
            .map(|s| Status::parse(&s))
            .transpose()
            .map_err(|e| Reply::from_error(&e))?;
        Ok(TaskQuery {
            status,
            job: p.text("job"),
            executor: p.text("executor"),
            worker: p.text("worker"),
            id_prefix: p.text("id"),
            payload: p.text("payload"),
            error: p.text("error"),
            error_group: p.text("error_group"),
            ended_after_ms: None,
            cursor: p.text("cursor"),
            limit: p.number("limit", 1..=SEARCH_LIMIT_MAX as u64, 50)? as usize,
            window: p.number(
                "window",
                1..=SEARCH_WINDOW_MAX as u64,
                SEARCH_WINDOW_MAX as u64,
            )? as usize,
        })
    };
    match run() {
        Ok(q) => {
            for (name, v) in [("payload", &q.payload), ("error", &q.error)] {
                if v.as_ref().is_some_and(|v| v.len() > 256) {
                    return Reply::error(400, &format!("invalid {name}: at most 256 bytes"));
                }
            }
            result(h.api.search(&q))
        }
        Err(reply) => reply,
    }
}

/// `GET /failures`: failed tasks of the last hour and day by error.
fn failures(h: &mut Handler, query: &str) -> Reply {
    let window = Params::parse(query, &["window"]).and_then(|p| {
        p.number(
            "window",
            1..=SEARCH_WINDOW_MAX as u64,
            SEARCH_WINDOW_MAX as u64,
        )
    });
    match window {
        Ok(w) => result(h.api.failures(w as usize)),
        Err(reply) => reply,
    }
}

/// `GET /history`: per-minute counters.
fn history(h: &mut Handler, query: &str) -> Reply {
    let minutes = Params::parse(query, &["minutes"])
        .and_then(|p| p.number("minutes", 1..=HISTORY_MINUTES_MAX as u64, 60));
    match minutes {
        Ok(m) => result(h.api.history(m as usize)),
        Err(reply) => reply,
    }
}

/// `GET /joblist`: a page of jobs.
fn job_list(h: &mut Handler, query: &str) -> Reply {
    let parsed = Params::parse(query, &["cursor", "limit", "fires", "firings"]).and_then(|p| {
        Ok((
            p.number("cursor", 0..=u64::MAX, 0)?,
            p.number("limit", 1..=JOB_PAGE_MAX as u64, 50)? as usize,
            p.number("fires", 0..=NEXT_FIRES_MAX as u64, 5)? as usize,
            p.number("firings", 0..=50, 5)? as usize,
        ))
    });
    match parsed {
        Ok((cursor, limit, fires, firings)) => {
            result(h.api.job_page(cursor, limit, fires, firings))
        }
        Err(reply) => reply,
    }
}

/// `GET /jobs/{id}/next`: next fire times.
fn next_fires(h: &mut Handler, id: &str, query: &str) -> Reply {
    let count = Params::parse(query, &["count"])
        .and_then(|p| p.number("count", 1..=NEXT_FIRES_MAX as u64, 5));
    match count {
        Ok(n) => match h.api.next_fires(id, n as usize) {
            Ok(next) => Reply::json(200, &json!({"id": id, "next": next})),
            Err(e) => Reply::from_error(&e),
        },
        Err(reply) => reply,
    }
}

/// `GET /tasks/{id}/logs?after=N&limit=M`: lines from number `after` on.
fn logs_since(h: &mut Handler, id: &str, query: &str) -> Reply {
    let parsed = Params::parse(query, &["after", "limit"]).and_then(|p| {
        Ok((
            p.number("after", 0..=u64::MAX >> 1, 0)?,
            p.number("limit", 1..=LOG_CHUNK_MAX as u64, LOG_CHUNK_MAX as u64)? as usize,
        ))
    });
    match parsed {
        Ok((after, limit)) => result(h.api.logs_since(id, after, limit)),
        Err(reply) => reply,
    }
}
