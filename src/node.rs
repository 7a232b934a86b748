//! A running node: starts the components its role needs and owns the order
//! in which they stop.
//!
//! Start: validate the config, open the HTTP socket if `http_addr` is set
//! (a taken port is an error here), PING Redis (an unreachable Redis is an
//! error here, not a silent retry loop), register in the registry (a live
//! node with the same id is an error), then spawn the threads, the `http`
//! ones last.
//!
//! Stop ([`NodeHandle::shutdown`]): the worker stops fetching and hands its
//! queued, unstarted tasks back to pending; leader work stops and the lease
//! is released, so a standby takes over dispatching at once rather than
//! after this node's running tasks drain (DESIGN §3 releases the lease last;
//! releasing it before the drain keeps the cluster dispatching during a
//! long grace period); running tasks get the shutdown grace; the registry
//! entry goes next, so the node stays visible while it still holds work.
//! The HTTP server answers until the end (`/ready` turns 503 as soon as
//! the shutdown begins, `/health` stays 200) and stops last.
//!
//! Every component runs supervised (`supervisor.rs`): one that panics is
//! restarted with backoff or, by its policy, stops the node through the
//! failure channel ([`NodeHandle::failure`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crossbeam_channel::Receiver;

use crate::component::Component;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::executor::http::HttpExecutor;
use crate::executor::rpc::RpcExecutor;
use crate::executor::shell::{ShellExecutor, parse_command};
use crate::executor::{Executor, Executors, FnExecutor, NoopExecutor, TaskContext};
use crate::heartbeat::Registration;
use crate::leader::{self, EpochSeen, Lease};
use crate::recoverer;
use crate::scheduler::{self, JobsFile};
use crate::store::Store;
use crate::supervisor::{ComponentHealth, Health, Supervision};
use crate::worker::{self, Worker};

/// Entry point for running a node in-process.
pub struct Node;

impl Node {
    /// Starts a node with `config` and the built-in executors. Returns once
    /// every thread runs.
    pub fn start(config: Config) -> Result<NodeHandle> {
        Node::builder(config).start()
    }

    /// A builder, to register Rust executors before starting.
    pub fn builder(config: Config) -> NodeBuilder {
        NodeBuilder {
            config,
            executors: Executors::default(),
            jobs: None,
        }
    }
}

/// Configures a node before it starts: [`Node::builder`].
pub struct NodeBuilder {
    config: Config,
    executors: Executors,
    jobs: Option<JobsFile>,
}

impl NodeBuilder {
    /// Keeps the stored jobs in step with `specs` whenever this node becomes
    /// leader: adds and updates them (a job whose schedule is unchanged
    /// keeps its next fire time); with `prune`, removes stored jobs not in
    /// `specs`. Every spec is validated at [`NodeBuilder::start`].
    pub fn jobs(mut self, specs: Vec<crate::model::job::JobSpec>, prune: bool) -> NodeBuilder {
        self.jobs = Some(JobsFile { specs, prune });
        self
    }

    /// Offers `executor` under `name` (replacing a built-in of that name).
    pub fn executor(mut self, name: &str, executor: impl Executor) -> NodeBuilder {
        self.executors.insert(name, executor);
        self
    }

    /// Offers a Rust closure under `name`: `Ok(data)` is a success,
    /// `Err(message)` a failed attempt.
    pub fn function<F>(self, name: &str, f: F) -> NodeBuilder
    where
        F: Fn(&mut TaskContext) -> std::result::Result<serde_json::Value, String>
            + Send
            + Sync
            + 'static,
    {
        self.executor(name, FnExecutor(f))
    }

    /// Starts the node.
    pub fn start(self) -> Result<NodeHandle> {
        let config = self.config;
        config.validate()?;
        if let Some(file) = &self.jobs {
            for spec in &file.specs {
                spec.validate()?;
            }
        }
        for name in self.executors.names() {
            crate::model::ident::check(crate::model::ident::Name::Executor, &name)
                .map_err(Error::Config)?;
        }
        #[cfg(feature = "failpoints")]
        crate::failpoints::setup_from_env()?;
        let store = Store::open(&config.redis_options(), &config.namespace)?;
        let executors = builtin_executors(&config, &store, self.executors)?;
        let listener = crate::http::bind(&config)?;
        store.ping()?;

        let running = Arc::new(AtomicUsize::new(0));
        let offered = if config.role.works() {
            executors.names()
        } else {
            Vec::new()
        };
        let seen = EpochSeen::default();
        let mut registration =
            Registration::new(&store, &config, offered, running.clone(), seen.clone());
        registration.register(&mut store.quiet_conn("register"), config.heartbeat_interval)?;
        let (fatal_tx, fatal) = crossbeam_channel::bounded(1);
        let health = Health::default();
        let supervision = Supervision::new(health.clone(), fatal_tx);
        let instance = registration.instance().to_string();
        let heartbeat = registration.start(config.heartbeat_interval, &supervision)?;

        let worker = if config.role.works() {
            Some(worker::start(
                &store,
                &config,
                &instance,
                executors,
                running,
                &supervision,
            )?)
        } else {
            None
        };
        let mut leader_work = Vec::new();
        let mut elector = None;
        let mut lease = None;
        if config.role.schedules() {
            let (component, l) = leader::start(&store, &config, &seen, &supervision)?;
            leader_work.extend(scheduler::start(
                &store,
                &config,
                &l,
                self.jobs.clone(),
                &supervision,
            )?);
            leader_work.push(recoverer::start(&store, &config, &l, &supervision)?);
            elector = Some(component);
            lease = Some(l);
        }
        let stopping = Arc::new(AtomicBool::new(false));
        let (http, http_addr) = match listener {
            Some(l) => {
                let (c, addr) = crate::http::start(
                    l,
                    &config,
                    &instance,
                    lease.clone(),
                    stopping.clone(),
                    &supervision,
                )?;
                (Some(c), Some(addr))
            }
            None => (None, None),
        };
        log::info!(
            "node {} started (role {}, capacity {}, redis {}, namespace {})",
            config.node_id,
            config.role,
            config.capacity,
            crate::config::redact_url(&config.redis_url),
            config.namespace
        );
        Ok(NodeHandle {
            id: config.node_id,
            lease,
            worker,
            leader_work,
            elector,
            heartbeat: Some(heartbeat),
            http,
            http_addr,
            stopping,
            fatal,
            health,
        })
    }
}

/// The built-ins `builtin` lists (`noop`, `http`, `rpc`; the HTTP ones
/// limited to `http_allow`), declared shell commands, ad hoc `shell` when
/// allowed (both with the `task_env` policy and the node's secrets), under
/// the executors the embedding program registered.
fn builtin_executors(config: &Config, store: &Store, custom: Executors) -> Result<Executors> {
    let mut all = Executors::default();
    for name in &config.builtin {
        match name.as_str() {
            "noop" => all.insert("noop", NoopExecutor),
            "http" => all.insert("http", HttpExecutor::with_allow(config.http_allow.clone())),
            "rpc" => all.insert("rpc", RpcExecutor::with_allow(config.http_allow.clone())),
            // `Config::set` admits only BUILTINS.
            other => return Err(Error::Config(format!("unknown built-in `{other}`"))),
        }
    }
    let secrets = node_secrets(config, store);
    let shell = |executor: ShellExecutor| {
        executor
            .with_env(config.task_env.clone())
            .with_secrets(secrets.clone())
    };
    if config.allow_adhoc_shell {
        all.insert("shell", shell(ShellExecutor::adhoc()));
    }
    for (name, command) in &config.exec {
        let argv = parse_command(command)
            .map_err(|e| Error::Config(format!("invalid exec `{name}={command}`: {e}")))?;
        all.insert(name.clone(), shell(ShellExecutor::command(argv)));
    }
    all.extend(custom);
    Ok(all)
}

/// The values a task's environment must not carry: the Redis password (as
/// the URL decodes it), the sentinels' password and the HTTP token.
fn node_secrets(config: &Config, store: &Store) -> Vec<String> {
    let mut secrets = Vec::new();
    if let Some(password) = store.password() {
        secrets.push(password);
    }
    if let Some(password) = &config.sentinel_password {
        secrets.push(password.0.clone());
    }
    if let Some(token) = &config.http_token {
        secrets.push(token.0.clone());
    }
    secrets
}

/// A running node. Dropping it shuts it down too, but call
/// [`NodeHandle::shutdown`] to choose the moment.
pub struct NodeHandle {
    id: String,
    lease: Option<Lease>,
    worker: Option<Worker>,
    leader_work: Vec<Component>,
    elector: Option<Component>,
    heartbeat: Option<Component>,
    http: Option<Component>,
    http_addr: Option<SocketAddr>,
    stopping: Arc<AtomicBool>,
    fatal: Receiver<Error>,
    health: Health,
}

impl NodeHandle {
    /// Receives an error when the node cannot go on and must be shut down:
    /// a component whose supervision policy is to stop the node panicked
    /// or ended ([`Error::ComponentFailed`]), or another process took over
    /// this node's id while this one was frozen. Select on it next to your
    /// own shutdown trigger (the binary shuts down and exits 1).
    pub fn failure(&self) -> &Receiver<Error> {
        &self.fatal
    }

    /// Every supervised component with its state, restarts and last error
    /// (what `/health` shows).
    pub fn health(&self) -> Vec<ComponentHealth> {
        self.health.snapshot()
    }

    /// This node's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// True while this node holds the leader lease.
    pub fn is_leader(&self) -> bool {
        self.lease.as_ref().is_some_and(Lease::is_leader)
    }

    /// The fencing epoch of the current term, if this node leads.
    pub fn epoch(&self) -> Option<u64> {
        self.lease.as_ref()?.fence().map(|f| f.epoch)
    }

    /// Where the HTTP server listens (the port chosen when `http_addr` had
    /// port 0), if it runs.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Stops every thread in order and joins them (see the module docs).
    pub fn shutdown(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(w) = self.worker.as_mut() {
            w.stop_fetching();
        }
        for c in self.leader_work.drain(..) {
            c.stop();
        }
        if let Some(c) = self.elector.take() {
            c.stop();
        }
        if let Some(w) = self.worker.take() {
            w.drain();
        }
        if let Some(c) = self.heartbeat.take() {
            c.stop();
        }
        if let Some(c) = self.http.take() {
            c.stop();
        }
        log::info!("node {} stopped", self.id);
    }
}

impl Drop for NodeHandle {
    fn drop(&mut self) {
        if self.heartbeat.is_some() {
            self.stop_all();
        }
    }
}
