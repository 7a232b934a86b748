//! The registry: every metric the process records, as one static
//! ([`METRICS`]), and how it is written out ([`Metrics::encode`]). Where
//! each one is recorded is said on its field; the README lists them all.

use super::{Counter, DURATION_BUCKETS, Encoder, Gauge, Histogram, Kind, LATENCY_BUCKETS};

/// Outcomes of one attempt, as `Outcome::kind` names them; the index into
/// [`Metrics::attempts`].
pub const OUTCOMES: [&str; 4] = ["success", "failed", "timeout", "cancelled"];

/// HTTP status codes the server answers with; the index into
/// [`Metrics::http_responses`] (the last slot counts any other code).
pub const HTTP_CODES: [u16; 11] = [200, 201, 400, 401, 404, 405, 409, 413, 500, 503, 0];

/// Every metric this process records (see the README's metrics list).
pub struct Metrics {
    /// Times this node won the leader lease.
    pub leader_elections: Counter,
    /// Times this node stopped leading before a clean release (lease lost,
    /// renew too late, fenced write refused).
    pub leader_stepdowns: Counter,
    /// Tasks the leader moved onto worker queues.
    pub dispatched: Counter,
    /// Planned assignments the commit refused (task cancelled, worker gone,
    /// draining or full by then); they stay pending for the next tick.
    pub dispatch_refused: Counter,
    /// Scheduler ticks (firing + dispatch) that failed with an error.
    pub dispatch_errors: Counter,
    /// Ready (submitted, due, or retry time) → dispatched, seconds.
    pub dispatch_latency: Histogram,
    /// Dispatched → started on the worker, seconds.
    pub queue_wait: Histogram,
    /// Cron firings that created a task.
    pub cron_firings: Counter,
    /// Executor run time of an attempt, seconds.
    pub task_duration: Histogram,
    /// Attempts that ended on this worker, by outcome ([`OUTCOMES`]).
    pub attempts: [Counter; 4],
    /// Failed attempts that were scheduled for a retry.
    pub retries: Counter,
    /// Tasks that ended `failed` (no retries left) on this worker's report.
    pub failures: Counter,
    /// Attempts stopped by their timeout on this worker.
    pub timeouts: Counter,
    /// Results rejected because the attempt had been reassigned (zombie).
    pub stale_results: Counter,
    /// Tasks this worker's reports took from `pending` into freed slots.
    pub refills: Counter,
    /// Tasks a dead node held in its queue, handed back to pending.
    pub recovered_requeued: Counter,
    /// Running tasks of a dead or overdue worker counted as failed attempts.
    pub recovered_failed_over: Counter,
    /// Nodes the recoverer found dead and removed from the registry.
    pub dead_nodes: Counter,
    /// Ended tasks the recoverer dropped to keep `task_retention_count`.
    pub tasks_trimmed: Counter,
    /// Tasks the recoverer cancelled: not started by their deadline.
    pub tasks_expired: Counter,
    /// Heartbeat round trip (registry refresh), seconds.
    pub heartbeat_latency: Histogram,
    /// Heartbeats that failed (Redis unreachable or an error).
    pub heartbeat_failures: Counter,
    /// Redis connections dropped: I/O errors, timeouts, not-master replies.
    pub redis_connection_errors: Counter,
    /// Connections dropped because the sentinels named another master.
    pub redis_master_moves: Counter,
    /// Times this node, as leader, paused leader work to renew through a
    /// fresh connection (`Lease::suspend`).
    pub leader_pauses: Counter,
    /// Tasks running on this node's pool right now.
    pub tasks_running: Gauge,
    /// HTTP requests being handled right now.
    pub http_in_flight: Gauge,
    /// HTTP responses by status code ([`HTTP_CODES`]).
    pub http_responses: [Counter; HTTP_CODES.len()],
}

/// The process's metrics.
pub static METRICS: Metrics = Metrics {
    leader_elections: Counter::new(),
    leader_stepdowns: Counter::new(),
    dispatched: Counter::new(),
    dispatch_refused: Counter::new(),
    dispatch_errors: Counter::new(),
    dispatch_latency: Histogram::new(LATENCY_BUCKETS),
    queue_wait: Histogram::new(LATENCY_BUCKETS),
    cron_firings: Counter::new(),
    task_duration: Histogram::new(DURATION_BUCKETS),
    attempts: [const { Counter::new() }; 4],
    retries: Counter::new(),
    failures: Counter::new(),
    timeouts: Counter::new(),
    stale_results: Counter::new(),
    refills: Counter::new(),
    recovered_requeued: Counter::new(),
    recovered_failed_over: Counter::new(),
    dead_nodes: Counter::new(),
    tasks_trimmed: Counter::new(),
    tasks_expired: Counter::new(),
    heartbeat_latency: Histogram::new(LATENCY_BUCKETS),
    heartbeat_failures: Counter::new(),
    redis_connection_errors: Counter::new(),
    redis_master_moves: Counter::new(),
    leader_pauses: Counter::new(),
    tasks_running: Gauge::new(),
    http_in_flight: Gauge::new(),
    http_responses: [const { Counter::new() }; HTTP_CODES.len()],
};

impl Metrics {
    /// Counts one attempt that ended with `kind` (`Outcome::kind`).
    pub fn attempt_ended(&self, kind: &str) {
        if let Some(i) = OUTCOMES.iter().position(|&o| o == kind) {
            self.attempts[i].inc();
        }
        if kind == "timeout" {
            self.timeouts.inc();
        }
    }

    /// Counts one HTTP response with status `code`.
    pub fn http_response(&self, code: u16) {
        let last = HTTP_CODES.len() - 1;
        let i = HTTP_CODES[..last]
            .iter()
            .position(|&c| c == code)
            .unwrap_or(last);
        self.http_responses[i].inc();
    }

    /// Writes every metric of this registry into `enc`.
    pub fn encode(&self, enc: &mut Encoder) {
        let counters: [(&str, &str, &Counter); 16] = [
            (
                "leader_elections_total",
                "Times this node won the leader lease.",
                &self.leader_elections,
            ),
            (
                "leader_stepdowns_total",
                "Times this node stopped leading without a clean release (lease lost or fenced).",
                &self.leader_stepdowns,
            ),
            (
                "dispatched_total",
                "Tasks this node, as leader, moved onto worker queues.",
                &self.dispatched,
            ),
            (
                "cron_firings_total",
                "Cron firings this node, as leader, turned into tasks.",
                &self.cron_firings,
            ),
            (
                "task_retries_total",
                "Failed attempts on this worker that were scheduled for a retry.",
                &self.retries,
            ),
            (
                "task_failures_total",
                "Tasks that ended failed (no retries left) on this worker's report.",
                &self.failures,
            ),
            (
                "task_timeouts_total",
                "Attempts on this worker stopped by their timeout.",
                &self.timeouts,
            ),
            (
                "stale_results_total",
                "Results rejected because the attempt had been reassigned (zombie worker).",
                &self.stale_results,
            ),
            (
                "worker_refills_total",
                "Tasks this worker's result reports took from pending into the slots they freed.",
                &self.refills,
            ),
            (
                "dead_nodes_total",
                "Nodes this node, as leader, found dead and removed from the registry.",
                &self.dead_nodes,
            ),
            (
                "tasks_trimmed_total",
                "Ended tasks this node, as leader, dropped (with their logs) to keep task_retention_count.",
                &self.tasks_trimmed,
            ),
            (
                "tasks_expired_total",
                "Tasks this node, as leader, cancelled because they did not start by their deadline (expires).",
                &self.tasks_expired,
            ),
            (
                "heartbeat_failures_total",
                "Heartbeats that failed (Redis unreachable or an error).",
                &self.heartbeat_failures,
            ),
            (
                "redis_connection_errors_total",
                "Redis connections this process dropped: I/O errors, timeouts, replies saying the server is not the writable master.",
                &self.redis_connection_errors,
            ),
            (
                "redis_master_moves_total",
                "Redis connections dropped because the sentinels named another master (a failover seen).",
                &self.redis_master_moves,
            ),
            (
                "leader_pauses_total",
                "Times this node, as leader, paused leader work after a Redis error to renew through a fresh connection.",
                &self.leader_pauses,
            ),
        ];
        for (name, help, v) in counters {
            enc.single(
                &format!("distsched_{name}"),
                Kind::Counter,
                help,
                v.get() as f64,
            );
        }
        labelled(
            enc,
            "distsched_dispatch_failed_total",
            "Failed dispatches: assignments refused at commit (retried next tick), and scheduler ticks that failed.",
            "reason",
            &[
                ("refused", &self.dispatch_refused),
                ("error", &self.dispatch_errors),
            ],
        );
        labelled(
            enc,
            "distsched_recovered_tasks_total",
            "Tasks of dead or overdue workers recovered by this node as leader, by action.",
            "action",
            &[
                ("requeued", &self.recovered_requeued),
                ("failed_over", &self.recovered_failed_over),
            ],
        );
        let attempts: Vec<(&str, &Counter)> =
            OUTCOMES.iter().copied().zip(&self.attempts).collect();
        labelled(
            enc,
            "distsched_task_attempts_total",
            "Attempts that ended on this worker, by outcome.",
            "outcome",
            &attempts,
        );
        let codes: Vec<String> = HTTP_CODES
            .iter()
            .map(|c| {
                if *c == 0 {
                    "other".into()
                } else {
                    c.to_string()
                }
            })
            .collect();
        let responses: Vec<(&str, &Counter)> = codes
            .iter()
            .map(String::as_str)
            .zip(&self.http_responses)
            .collect();
        labelled(
            enc,
            "distsched_http_responses_total",
            "HTTP responses by status code.",
            "code",
            &responses,
        );
        for (name, help, h) in [
            (
                "dispatch_latency_seconds",
                "Ready (submitted, due or retry time) to dispatched, observed by the worker that starts the task (Redis clock).",
                &self.dispatch_latency,
            ),
            (
                "queue_wait_seconds",
                "Dispatched to started on the worker (Redis clock).",
                &self.queue_wait,
            ),
            (
                "task_duration_seconds",
                "Executor run time of one attempt on this worker.",
                &self.task_duration,
            ),
            (
                "heartbeat_latency_seconds",
                "Round trip of one registry heartbeat.",
                &self.heartbeat_latency,
            ),
        ] {
            enc.histogram(&format!("distsched_{name}"), help, &h.snapshot());
        }
        for (name, help, g) in [
            (
                "tasks_running",
                "Tasks running on this node's worker pool.",
                &self.tasks_running,
            ),
            (
                "http_requests_in_flight",
                "HTTP requests being handled.",
                &self.http_in_flight,
            ),
        ] {
            enc.single(
                &format!("distsched_{name}"),
                Kind::Gauge,
                help,
                g.get() as f64,
            );
        }
    }
}

/// A counter family with one label, one sample per value.
fn labelled(enc: &mut Encoder, name: &str, help: &str, label: &str, values: &[(&str, &Counter)]) {
    enc.family(name, Kind::Counter, help);
    for (value, c) in values {
        enc.sample(name, &[(label, value)], c.get() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_codes() {
        let m = &METRICS;
        let before = m.attempts[2].get();
        m.attempt_ended("timeout");
        assert_eq!(m.attempts[2].get(), before + 1);
        m.http_response(418);
        assert!(m.http_responses[HTTP_CODES.len() - 1].get() >= 1);
        let mut enc = Encoder::new();
        m.encode(&mut enc);
        let text = enc.finish();
        assert!(text.contains("distsched_http_responses_total{code=\"other\"}"));
        assert!(text.contains("# TYPE distsched_task_duration_seconds histogram"));
    }
}
