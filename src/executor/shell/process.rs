//! Process-group control of one attempt, on the pool thread that runs it:
//! waiting for the program while watching the deadline and the cancel
//! flag, SIGTERM then SIGKILL to the whole group, exit status mapping.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::thread;
use std::time::Instant;

use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};

use super::{POLL_FIRST, POLL_MAX, STREAM_EVERY, ShellExecutor};
use crate::executor::TaskContext;

pub(super) enum Ending {
    Exited,
    TimedOut,
    Cancelled,
}

impl ShellExecutor {
    /// Waits for the program to exit, stopping its group on cancel or at the
    /// deadline; on a worker, runs `stream` every [`STREAM_EVERY`] to hand
    /// the output read so far over to the live log.
    pub(super) fn wait(
        &self,
        ctx: &mut TaskContext,
        pid: Pid,
        mut stream: impl FnMut(&mut TaskContext),
    ) -> Ending {
        let mut nap = POLL_FIRST;
        let live = ctx.is_live();
        let mut next_stream = Instant::now() + STREAM_EVERY;
        loop {
            if has_exited(pid) {
                return Ending::Exited;
            }
            if live && Instant::now() >= next_stream {
                stream(ctx);
                next_stream = Instant::now() + STREAM_EVERY;
            }
            if ctx.is_cancelled() {
                self.terminate(pid);
                return Ending::Cancelled;
            }
            let left = ctx.remaining();
            if left.is_zero() {
                self.terminate(pid);
                return Ending::TimedOut;
            }
            thread::sleep(nap.min(left));
            nap = (nap * 2).min(POLL_MAX);
        }
    }

    /// SIGTERM to the group, then up to the kill grace for the program to
    /// exit. The caller SIGKILLs the group afterwards in every case.
    pub(super) fn terminate(&self, pid: Pid) {
        signal_group(pid, Signal::TERM);
        let until = Instant::now() + self.kill_grace;
        let mut nap = POLL_FIRST;
        while !has_exited(pid) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            thread::sleep(nap.min(left));
            nap = (nap * 2).min(POLL_MAX);
        }
    }
}

/// `(code, message)` for an exit status: the exit code, or 128 + signal.
pub(super) fn describe_exit(status: ExitStatus) -> (i64, String) {
    match (status.code(), status.signal()) {
        (Some(code), _) => (i64::from(code), format!("exit {code}")),
        (None, Some(signal)) => (
            128 + i64::from(signal),
            format!("killed by signal {signal}"),
        ),
        (None, None) => (-1, format!("ended with {status}")),
    }
}

/// True once the child has exited. Uses `waitid(WNOWAIT)` rather than
/// `try_wait`: the child stays unreaped (a zombie), so its pid, which is also
/// its process group id, cannot be handed to another process before we have
/// signalled the group for the last time.
pub(super) fn has_exited(pid: Pid) -> bool {
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    loop {
        match rustix::process::waitid(WaitId::Pid(pid), options) {
            Ok(status) => return status.is_some(),
            Err(rustix::io::Errno::INTR) => continue,
            // ECHILD and the like: nothing left to wait for.
            Err(_) => return true,
        }
    }
}

/// Signals the whole group; a group that is already gone (ESRCH) is fine.
pub(super) fn signal_group(pid: Pid, signal: Signal) {
    let _ = rustix::process::kill_process_group(pid, signal);
}
