//! The `distsched` binary: parse the command line, run it, map errors to
//! exit codes (0 ok, 1 failure, 64 usage, 69 Redis unreachable).
#![forbid(unsafe_code)]

mod cli;

fn main() -> std::process::ExitCode {
    cli::run()
}
