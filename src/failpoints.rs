//! Fault injection for tests: TiKV's `fail` crate behind the cargo feature
//! `failpoints`, which only the test suite enables (`cargo test --features
//! failpoints`). Without the feature [`failpoint!`] expands to nothing and
//! the `fail` crate is not compiled.
//!
//! With the feature, failpoints are configured
//! - at node start from the `FAILPOINTS` environment variable (the `fail`
//!   crate's format: `name=actions;name2=actions`, e.g.
//!   `FAILPOINTS='component-fetcher=panic'`), read by [`setup_from_env`];
//! - while the node runs through the test-only HTTP routes `PUT
//!   /failpoints/NAME` (body: the actions, e.g. `panic`, `1*panic`, `off`)
//!   and `DELETE /failpoints/NAME` (behind `http_token` when one is set).
//!
//! The failpoints: `component-NAME` (each start and restart of supervised
//! component NAME, in `supervisor.rs`), `scheduler-loop` (each round of
//! the scheduler's loop, leading or not), `recoverer-loop` (each round of
//! the recoverer's loop), `finish-refuse` (`return(ID)`: a worker's `FINISH`
//! batch holding task ID's success is refused as a script error would be,
//! in `worker/reporter.rs`).
//! No thread owns this module; a failpoint fires in the thread that passes
//! it.

/// Evaluates failpoint `$name` (a `&str`) when the `failpoints` feature is
/// on; nothing otherwise.
macro_rules! failpoint {
    ($name:expr) => {
        #[cfg(feature = "failpoints")]
        fail::fail_point!($name);
    };
}
pub(crate) use failpoint;

/// Configures the failpoints named in `FAILPOINTS` (`name=actions;…`).
/// A malformed entry is a configuration error naming it.
#[cfg(feature = "failpoints")]
pub fn setup_from_env() -> crate::error::Result<()> {
    let Ok(spec) = std::env::var("FAILPOINTS") else {
        return Ok(());
    };
    for entry in spec.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((name, actions)) = entry.split_once('=') else {
            return Err(crate::error::Error::Config(format!(
                "FAILPOINTS: `{entry}` is not name=actions"
            )));
        };
        set(name.trim(), actions.trim())?;
    }
    Ok(())
}

/// Sets failpoint `name` to `actions` (the `fail` crate's syntax).
#[cfg(feature = "failpoints")]
pub fn set(name: &str, actions: &str) -> crate::error::Result<()> {
    fail::cfg(name, actions).map_err(|e| {
        crate::error::Error::Config(format!("failpoint `{name}`: bad actions `{actions}`: {e}"))
    })?;
    log::warn!("failpoint {name} set to `{actions}`");
    Ok(())
}

/// Removes failpoint `name`.
#[cfg(feature = "failpoints")]
pub fn remove(name: &str) {
    fail::remove(name);
    log::warn!("failpoint {name} removed");
}
