//! The `shell` executor: runs a program with an argv, never through a shell
//! string, and maps its exit status to an [`Outcome`].
//!
//! Owns the child process of one attempt: spawning it in its own process
//! group, feeding it the payload, collecting a tail of its output, enforcing
//! the timeout and cancel by signalling the whole group, and reaping it.
//! [`ShellExecutor::execute`] runs on one of the worker's pool threads and
//! blocks it until the command is over; it starts three short-lived helper
//! threads per attempt (stdin writer, stdout and stderr readers).
//!
//! Two flavours:
//! - a *declared* command ([`ShellExecutor::command`], from `--exec
//!   NAME=COMMAND` on the worker): the argv is fixed by the operator and the
//!   task payload is only data;
//! - *ad hoc* commands ([`ShellExecutor::adhoc`], only when the worker runs
//!   with `--allow-adhoc-shell`): the payload names the argv.
//!
//! The contract with the program:
//! - the payload JSON text, followed by a newline, is written to stdin, which
//!   is then closed (a program that does not read stdin is fine);
//! - environment: `DISTSCHED_PAYLOAD` (the same text; left unset, with a
//!   note in the task log, when longer than [`MAX_ENV_PAYLOAD`] bytes, since
//!   the OS refuses to start a program with a variable over 128 KiB: stdin
//!   always has the whole payload), `DISTSCHED_TASK_ID`, `DISTSCHED_ATTEMPT`,
//!   `DISTSCHED_JOB` (empty when the task has no job); of the worker's own
//!   environment, what [`TaskEnv`] lets through (setting `task_env`): never
//!   a `DISTSCHED_*` variable (those are the node's settings, such as its
//!   Redis URL and HTTP token), nor any variable whose value contains one of
//!   the node's secrets (see [`ShellExecutor::with_secrets`]);
//! - exit 0 is a success, any other exit code a failure with that code, death
//!   by signal N a failure with code 128+N;
//! - the last line of stdout that parses as JSON becomes `result.data`;
//! - the last [`TAIL_LINES`] lines / [`TAIL_BYTES`] bytes of each of stdout and
//!   stderr go to the task log, with a note of how many earlier lines were
//!   dropped; on a worker, while the command runs, the lines read so far
//!   are handed over every [`STREAM_EVERY`] (within the same tails, with a
//!   note of lines lost between two hand-overs) and reach the log about
//!   once a second, and only the rest is logged at the end;
//! - a stdout line `::progress N` or `::progress N text` (N a percent) is
//!   not output: it sets the task's progress.
//!
//! Process-group policy: on timeout or cancel the group gets SIGTERM, then
//! SIGKILL after a grace ([`KILL_GRACE`]). When the program exits on its own,
//! whatever is left of its group (background jobs it started and did not
//! wait for) is SIGKILLed too: such stray grandchildren would otherwise keep
//! the output pipes open and hang the pool thread, and a task must not leave
//! processes behind. A program that must outlive its task has to leave the
//! group itself (`setsid`), and must then also close the pipes it inherited.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};
use serde::Deserialize;

use super::{Executor, Outcome, TaskContext, TaskResult};

mod argv;
mod output;
mod process;

pub use argv::parse_command;
use argv::show_argv;
use output::{Pipes, Streamed, cut};
use process::{Ending, describe_exit, signal_group};

/// How long a timed-out or cancelled command gets between SIGTERM and
/// SIGKILL (default for [`ShellExecutor::with_kill_grace`]).
pub const KILL_GRACE: Duration = Duration::from_secs(3);
/// Most lines of each of stdout and stderr kept in the task log (the last
/// ones).
pub const TAIL_LINES: usize = 100;
/// Most bytes of each of stdout and stderr kept (the last ones); also the
/// longest single line read, longer lines are cut.
pub const TAIL_BYTES: usize = 64 * 1024;
/// Longest payload also passed in `DISTSCHED_PAYLOAD`, in bytes (Linux
/// refuses any single variable over 128 KiB, and all of them together over a
/// quarter of the stack limit).
pub const MAX_ENV_PAYLOAD: usize = 100 * 1024;

/// How long the output readers may take to see end-of-file once the whole
/// process group is dead. Only a process that left the group (`setsid`) while
/// holding the pipes can make them wait; it is then abandoned, not waited
/// for.
const PIPE_GRACE: Duration = Duration::from_secs(1);
/// Most bytes of the last stderr line quoted in a failure's message (the
/// message is a summary; the log has the output).
const MESSAGE_STDERR: usize = 256;
/// How often the lines a running command printed are handed over to the
/// live log (on a worker; its `live` thread writes them about once a
/// second).
pub const STREAM_EVERY: Duration = Duration::from_millis(500);
/// First and longest sleep between two polls of the child: short commands
/// finish in about a millisecond, long ones cost at most 100 wake-ups a
/// second.
const POLL_FIRST: Duration = Duration::from_millis(1);
const POLL_MAX: Duration = Duration::from_millis(10);

/// Shortest secret looked for in the values of the worker's environment
/// ([`ShellExecutor::with_secrets`]): a shorter one would match ordinary
/// values (a password `abc` is in `/usr/lib/abc`), and is weak anyway.
pub const MIN_SECRET: usize = 6;

/// Which of the worker's environment variables a task's program gets
/// (setting `task_env`). Whatever the choice, `DISTSCHED_*` variables and
/// variables holding a node secret are withheld, and the task's own
/// `DISTSCHED_TASK_ID`, `DISTSCHED_ATTEMPT`, `DISTSCHED_JOB` and
/// `DISTSCHED_PAYLOAD` are set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TaskEnv {
    /// The worker's environment minus what is always withheld. The
    /// default (`inherit`).
    #[default]
    Inherit,
    /// An empty environment plus these variables of the worker's, where
    /// set (`PATH,HOME,LANG`; `none` for no variable at all).
    Allow(Vec<String>),
}

impl TaskEnv {
    /// Parses `inherit`, `none`, or a comma-separated list of variable
    /// names (`[A-Za-z_][A-Za-z0-9_]*`, not `DISTSCHED_*`).
    pub fn parse(text: &str) -> Result<TaskEnv, String> {
        const HINT: &str = "expected inherit, none, or variable names like PATH,HOME,LANG";
        match text.trim() {
            "inherit" => return Ok(TaskEnv::Inherit),
            "none" => return Ok(TaskEnv::Allow(Vec::new())),
            "" => return Err(HINT.into()),
            _ => {}
        }
        let mut names: Vec<String> = Vec::new();
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let mut bytes = name.bytes();
            let valid = bytes
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(format!("`{name}` is not a variable name; {HINT}"));
            }
            if name.starts_with("DISTSCHED_") {
                return Err(format!(
                    "`{name}`: DISTSCHED_* variables are never passed to tasks (their own are always set)"
                ));
            }
            if !names.iter().any(|n| n == name) {
                names.push(name.to_string());
            }
        }
        Ok(TaskEnv::Allow(names))
    }
}

impl std::fmt::Display for TaskEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TaskEnv::Inherit => f.write_str("inherit"),
            TaskEnv::Allow(names) if names.is_empty() => f.write_str("none"),
            TaskEnv::Allow(names) => f.write_str(&names.join(",")),
        }
    }
}

/// Runs a command for each task. See the [module docs](self) for the
/// contract with the program.
#[derive(Debug, Clone)]
pub struct ShellExecutor {
    /// The declared argv, or `None` for ad hoc commands taken from the
    /// payload.
    argv: Option<Vec<String>>,
    kill_grace: Duration,
    env: TaskEnv,
    /// Values no variable passed to a task may contain (at least
    /// [`MIN_SECRET`] bytes each).
    secrets: Vec<String>,
}

impl ShellExecutor {
    /// A declared command: every task runs `argv` (program first); the
    /// payload cannot change it. Kill grace [`KILL_GRACE`].
    ///
    /// An empty `argv` is accepted here but makes every task fail; use
    /// [`parse_command`] to build one from operator text.
    pub fn command(argv: Vec<String>) -> ShellExecutor {
        ShellExecutor {
            argv: Some(argv),
            kill_grace: KILL_GRACE,
            env: TaskEnv::Inherit,
            secrets: Vec::new(),
        }
    }

    /// Ad hoc commands: the payload is `{"argv": ["prog", "arg", ...],
    /// "input": <any JSON, optional>}` and `input` (or `null`) is what the
    /// program gets on stdin and in `DISTSCHED_PAYLOAD`. This runs whatever a
    /// submitter asks for, so a worker only offers it when started with
    /// `--allow-adhoc-shell`. Kill grace [`KILL_GRACE`].
    pub fn adhoc() -> ShellExecutor {
        ShellExecutor {
            argv: None,
            kill_grace: KILL_GRACE,
            env: TaskEnv::Inherit,
            secrets: Vec::new(),
        }
    }

    /// Sets how long a timed-out or cancelled command gets between SIGTERM
    /// and SIGKILL (default [`KILL_GRACE`]).
    pub fn with_kill_grace(mut self, grace: Duration) -> ShellExecutor {
        self.kill_grace = grace;
        self
    }

    /// Sets which of the worker's variables the program gets (default
    /// [`TaskEnv::Inherit`]).
    pub fn with_env(mut self, env: TaskEnv) -> ShellExecutor {
        self.env = env;
        self
    }

    /// Sets the node's secrets (its Redis password, HTTP token; default
    /// none): a variable whose value contains one is not passed on, whatever
    /// its name (`REDIS_URL=redis://:pw@...`), and the log names it. This is
    /// a cheap second line behind withholding `DISTSCHED_*`: one substring
    /// search per variable and secret at each start. Secrets shorter than
    /// [`MIN_SECRET`] bytes are ignored.
    pub fn with_secrets(mut self, secrets: Vec<String>) -> ShellExecutor {
        self.secrets = secrets
            .into_iter()
            .filter(|s| s.len() >= MIN_SECRET)
            .collect();
        self
    }

    /// The declared argv, or `None` for an ad hoc executor.
    pub fn argv(&self) -> Option<&[String]> {
        self.argv.as_deref()
    }

    /// The grace between SIGTERM and SIGKILL.
    pub fn kill_grace(&self) -> Duration {
        self.kill_grace
    }

    /// The argv and stdin text of one attempt.
    fn invocation(&self, ctx: &TaskContext) -> Result<(Vec<String>, String), String> {
        let (argv, input) = match &self.argv {
            Some(argv) => (argv.clone(), ctx.payload.clone()),
            None => adhoc_invocation(&ctx.payload)?,
        };
        if argv.first().is_none_or(|program| program.is_empty()) {
            return Err("empty command".into());
        }
        Ok((argv, input))
    }
}

/// The shape of an ad hoc payload. Unknown fields are rejected so that a
/// typo (`args`) fails loudly instead of running something else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdhocPayload {
    argv: Vec<String>,
    #[serde(default)]
    input: serde_json::Value,
}

fn adhoc_invocation(payload: &str) -> Result<(Vec<String>, String), String> {
    const SHAPE: &str = r#"expected {"argv": ["prog", "arg", ...], "input": <any JSON, optional>}"#;
    let value: serde_json::Value = serde_json::from_str(payload)
        .map_err(|e| format!("ad hoc shell payload is not JSON: {e}; {SHAPE}"))?;
    if value.is_null() {
        return Err(format!("ad hoc shell task has no payload; {SHAPE}"));
    }
    let parsed: AdhocPayload = serde_json::from_value(value)
        .map_err(|e| format!("invalid ad hoc shell payload: {e}; {SHAPE}"))?;
    if parsed.argv.first().is_none_or(|program| program.is_empty()) {
        return Err(format!("ad hoc shell payload has an empty argv; {SHAPE}"));
    }
    Ok((parsed.argv, parsed.input.to_string()))
}

impl Executor for ShellExecutor {
    fn execute(&self, ctx: &mut TaskContext) -> Outcome {
        let (argv, input) = match self.invocation(ctx) {
            Ok(invocation) => invocation,
            Err(message) => {
                ctx.log(format!("shell: {message}"));
                return Outcome::fail(-1, message);
            }
        };
        if ctx.is_cancelled() {
            return Outcome::Cancelled;
        }
        if ctx.remaining().is_zero() {
            return timed_out(ctx, serde_json::Value::Null);
        }
        self.run(ctx, argv, input)
    }
}

/// How the wait for the program ended.
impl ShellExecutor {
    fn run(&self, ctx: &mut TaskContext, argv: Vec<String>, input: String) -> Outcome {
        let started = Instant::now();
        let mut command = Command::new(&argv[0]);
        // First, since `env_clear` would also drop the task's own variables.
        self.environment(ctx, &mut command);
        command
            .args(&argv[1..])
            .env("DISTSCHED_TASK_ID", &ctx.task_id)
            .env("DISTSCHED_ATTEMPT", ctx.attempt.to_string())
            .env("DISTSCHED_JOB", ctx.job.as_deref().unwrap_or(""))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Own group, so a timeout or cancel reaches everything it starts.
            .process_group(0);
        if input.len() <= MAX_ENV_PAYLOAD {
            command.env("DISTSCHED_PAYLOAD", &input);
        } else {
            ctx.log(format!(
                "shell: payload of {} bytes is only on stdin (DISTSCHED_PAYLOAD is limited to {MAX_ENV_PAYLOAD})",
                input.len()
            ));
        }
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                let message = format!("cannot run {:?}: {e}", argv[0]);
                ctx.log(format!("shell: {message}"));
                return Outcome::fail(127, message);
            }
        };
        let pid = Pid::from_child(&child);
        ctx.log(format!("shell: started {} (pid {pid})", show_argv(&argv)));

        let pipes = Pipes::start(&mut child, input);
        let mut streamed = Streamed::default();
        let ending = match &pipes {
            Ok(pipes) => self.wait(ctx, pid, |ctx| pipes.stream(ctx, &mut streamed)),
            // Without its readers the program could block on a full pipe:
            // stop it.
            Err(_) => {
                self.terminate(pid);
                Ending::Exited
            }
        };
        // The leader is still unreaped here, so the group id cannot have
        // been reused: this reaches only what the command left behind.
        signal_group(pid, Signal::KILL);
        let status = child.wait();
        let elapsed = started.elapsed();

        let pipes = match pipes {
            Ok(pipes) => pipes,
            Err(e) => {
                let message = format!("cannot start output readers: {e}");
                ctx.log(format!("shell: {message}"));
                return Outcome::fail(-1, message);
            }
        };
        let output = pipes.finish();
        output.log_to(ctx, streamed);

        let data = output.stdout.last_json.clone().unwrap_or_default();
        match ending {
            Ending::Cancelled => {
                ctx.log(format!("shell: cancelled after {} ms", elapsed.as_millis()));
                Outcome::Cancelled
            }
            Ending::TimedOut => timed_out(ctx, data),
            Ending::Exited => {
                let status = match status {
                    Ok(status) => status,
                    Err(e) => {
                        let message = format!("cannot reap pid {pid}: {e}");
                        ctx.log(format!("shell: {message}"));
                        return Outcome::fail(-1, message);
                    }
                };
                let (code, mut message) = describe_exit(status);
                ctx.log(format!("shell: {message} after {} ms", elapsed.as_millis()));
                if code != 0
                    && status.signal().is_none()
                    && let Some(last) = output.stderr.last_line()
                {
                    message = format!("{message}: {}", cut(last, MESSAGE_STDERR));
                }
                let result = TaskResult {
                    code,
                    message,
                    data,
                };
                if code == 0 {
                    Outcome::Success(result)
                } else {
                    Outcome::Failed(result)
                }
            }
        }
    }

    /// Applies the environment policy to `command`: `DISTSCHED_*` and
    /// secret-holding variables of the worker are withheld, and with an
    /// allowlist only the named ones are copied into an empty environment.
    /// The worker's environment is read at each start, not once, so that
    /// an embedding program's later `set_var` cannot slip past the policy.
    fn environment(&self, ctx: &mut TaskContext, command: &mut Command) {
        let mut withheld: Vec<String> = Vec::new();
        let mut passes = |name: &std::ffi::OsStr, value: &std::ffi::OsStr| {
            if name.as_encoded_bytes().starts_with(b"DISTSCHED_") {
                return false;
            }
            let value = value.as_encoded_bytes();
            let leaks = self
                .secrets
                .iter()
                .any(|secret| value.windows(secret.len()).any(|w| w == secret.as_bytes()));
            if leaks {
                withheld.push(name.to_string_lossy().into_owned());
            }
            !leaks
        };
        match &self.env {
            TaskEnv::Inherit => {
                for (name, value) in std::env::vars_os() {
                    if !passes(&name, &value) {
                        command.env_remove(&name);
                    }
                }
            }
            TaskEnv::Allow(names) => {
                command.env_clear();
                for name in names {
                    if let Some(value) = std::env::var_os(name)
                        && passes(name.as_ref(), &value)
                    {
                        command.env(name, value);
                    }
                }
            }
        }
        if !withheld.is_empty() {
            ctx.log(format!(
                "shell: not passed to the task (the value holds a node secret): {}",
                withheld.join(", ")
            ));
        }
    }
}

fn timed_out(ctx: &mut TaskContext, data: serde_json::Value) -> Outcome {
    let message = format!("timed out after {:?}", ctx.timeout);
    ctx.log(format!("shell: {message}"));
    Outcome::TimedOut(TaskResult {
        code: -1,
        message,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        parse_command(text).unwrap()
    }

    #[test]
    fn parse_command_splits_and_quotes() {
        assert_eq!(words("  echo  hello\tworld "), ["echo", "hello", "world"]);
        assert_eq!(
            words("sh -c 'echo $HOME; exit 3'"),
            ["sh", "-c", "echo $HOME; exit 3"]
        );
        assert_eq!(
            words(r#"printf "a \"b\" \\ \n""#),
            ["printf", r#"a "b" \ \n"#]
        );
        assert_eq!(words(r"a\ b '' x'y z'"), ["a b", "", "xy z"]);
    }

    #[test]
    fn parse_command_rejects_bad_input() {
        assert!(parse_command("").is_err());
        assert!(parse_command("   \t ").is_err());
        assert!(parse_command("echo 'oops").is_err());
        assert!(parse_command("echo \"oops").is_err());
        assert!(parse_command("echo oops\\").is_err());
    }

    #[test]
    fn task_env_parses_and_refuses_bad_names() {
        assert_eq!(TaskEnv::parse("inherit"), Ok(TaskEnv::Inherit));
        assert_eq!(TaskEnv::parse("none"), Ok(TaskEnv::Allow(vec![])));
        assert_eq!(
            TaskEnv::parse(" PATH, HOME,,_X1,PATH"),
            Ok(TaskEnv::Allow(vec![
                "PATH".into(),
                "HOME".into(),
                "_X1".into()
            ]))
        );
        assert_eq!(
            TaskEnv::parse("PATH,HOME").unwrap().to_string(),
            "PATH,HOME"
        );
        for bad in ["", "1PATH", "PA-TH", "PATH=1", "A B", "DISTSCHED_REDIS_URL"] {
            let err = TaskEnv::parse(bad).unwrap_err();
            assert!(!err.contains('\n'), "{bad}: {err}");
        }
    }
}
