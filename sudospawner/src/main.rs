//! `sudospawner`: the only jhub code that acts as another user.
//!
//! # Trust model
//!
//! - **Who calls it**: the hub's service account (`jupyterhub`, or
//!   `hub_user` in the configuration), through
//!   `sudo -nH -u NAME /usr/local/bin/sudospawner [--logging=LEVEL]`, which
//!   the sudoers drop-in allows for members of `jupyterhub-users` only. The
//!   helper checks sudo's `SUDO_USER`/`SUDO_UID` and refuses any other
//!   caller. It is not setuid and never holds root: run as root, it refuses.
//! - **As whom it runs**: the target user NAME, with sudo's reset
//!   environment. Everything it starts runs as NAME and nobody else.
//! - **What it trusts**: nothing from the caller. The request on stdin is
//!   bounded (1 MiB), parsed strictly (unknown keys, wrong types and trailing
//!   data are refused), and checked completely before any side effect. What
//!   to run comes only from root: `/etc/jhub/sudospawner.toml` (refused
//!   unless it and its directories are root-owned and not group/world
//!   writable), else `sudospawner-singleuser` or `jupyterhub-singleuser`
//!   beside this binary.
//! - **What it does**, the complete list:
//!   - `spawn`: start the configured server with the caller's flags
//!     (`--name[=value]` only) and an allow-listed environment (`JUPYTERHUB_*`,
//!     `JPY_*`, `LANG`, `LC_*`, plus the configuration's `env_allow`);
//!     `PATH`, `HOME`, `USER`, `LOGNAME` and `SHELL` are the helper's own. The
//!     server runs in NAME's home, in its own session, with the configured
//!     resource limits, stdin from /dev/null and output appended to
//!     `~/.jhub/logs/`.
//!   - `kill`: send one of a few signals (0 polls) to a pid above 1; the
//!     kernel lets NAME signal only NAME's processes.
//! - **What the caller can do with it**: run the configured notebook server
//!   as any member of `jupyterhub-users`, with options of its choosing, which
//!   is what JupyterHub's admin can do too. Never as root or as a
//!   non-member, never another program.
//!
//! Exactly one JSON object goes to stdout, `{"ok": true, ...}` or
//! `{"ok": false, "error": ..., "code": ...}`; logs go to stderr as lines
//! starting `sudospawner:`, with environment names but never values. Exit
//! codes follow [`ErrorCode::exit_code`].
//!
//! The helper is single-threaded by construction (no threads, no async
//! runtime), the precondition of the `fork` in [`sys`], the only module
//! allowed `unsafe`.

mod config;
mod request;
mod seccomp;
mod spawn;
#[allow(unsafe_code)]
mod sys;

use std::io::{self, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, User, getuid};
use shared::helper::{ErrorCode, HelperResponse, to_python_json};

use crate::request::{Account, Plan};
use crate::seccomp::Policy;

/// A refused or failed request: what the caller gets as `{"ok": false}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperError {
    /// The stable reason.
    pub code: ErrorCode,
    /// What went wrong, for a person.
    pub message: String,
}

impl HelperError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Log levels as the Python mediator's `--logging=LEVEL` (tornado) names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Debug,
    Info,
    Warning,
    Error,
    None,
}

/// Writes `sudospawner:` lines to stderr at or above a level.
#[derive(Debug, Clone, Copy)]
pub struct Logger {
    level: Level,
}

impl Logger {
    fn at(&self, level: Level, args: std::fmt::Arguments<'_>) {
        if level >= self.level && self.level != Level::None {
            eprintln!("sudospawner: {args}");
        }
    }

    /// Logs details for debugging (environment names, never values).
    pub fn debug(&self, args: std::fmt::Arguments<'_>) {
        self.at(Level::Debug, args);
    }

    /// Logs what the helper does.
    pub fn info(&self, args: std::fmt::Arguments<'_>) {
        self.at(Level::Info, args);
    }

    /// Logs a refusal or failure.
    pub fn error(&self, args: std::fmt::Arguments<'_>) {
        self.at(Level::Error, args);
    }
}

const USAGE: &str = "usage: sudo -nH -u USER sudospawner [--logging=LEVEL] < request.json
Starts or signals USER's notebook server for the jhub hub; see the jhub README.";

/// What the command line asks for.
enum Invocation {
    Serve(Logger),
    Print(String),
}

fn parse_args(args: impl Iterator<Item = std::ffi::OsString>) -> Result<Invocation, HelperError> {
    let mut level = Level::Info;
    for arg in args {
        let arg = arg
            .to_str()
            .ok_or_else(|| usage("arguments must be UTF-8"))?
            .to_owned();
        match arg.as_str() {
            "--help" | "-h" => return Ok(Invocation::Print(USAGE.into())),
            "--version" | "-V" => {
                return Ok(Invocation::Print(format!(
                    "sudospawner {}",
                    env!("CARGO_PKG_VERSION")
                )));
            }
            _ => {}
        }
        let value = arg.strip_prefix("--logging=").ok_or_else(|| {
            usage(&format!(
                "unknown argument {arg:?}; expected --logging=LEVEL"
            ))
        })?;
        level = match value.to_ascii_lowercase().as_str() {
            "debug" => Level::Debug,
            "info" => Level::Info,
            "warn" | "warning" => Level::Warning,
            "error" | "critical" => Level::Error,
            "none" => Level::None,
            _ => return Err(usage(&format!("unknown log level {value:?}"))),
        };
    }
    Ok(Invocation::Serve(Logger { level }))
}

fn usage(message: &str) -> HelperError {
    HelperError::new(ErrorCode::Usage, message)
}

/// Checks that sudo ran the helper for the hub's account.
fn check_caller(hub_user: &str) -> Result<(), HelperError> {
    let wrong = |m: String| HelperError::new(ErrorCode::WrongCaller, m);
    let sudo_user = std::env::var("SUDO_USER")
        .map_err(|_| wrong(format!("not run through sudo; the hub runs it as `sudo -nH -u USER sudospawner` as {hub_user:?}")))?;
    let expected = User::from_name(hub_user)
        .ok()
        .flatten()
        .ok_or_else(|| wrong(format!("the hub user {hub_user:?} does not exist")))?;
    let sudo_uid = std::env::var("SUDO_UID")
        .ok()
        .and_then(|u| u.parse::<u32>().ok());
    if sudo_user != hub_user || sudo_uid != Some(expected.uid.as_raw()) {
        return Err(wrong(format!(
            "only {hub_user:?} may run this helper; it was run by {sudo_user:?}"
        )));
    }
    Ok(())
}

fn current_account() -> Result<Account, HelperError> {
    let uid = getuid();
    let user = User::from_uid(uid).ok().flatten().ok_or_else(|| {
        HelperError::new(
            ErrorCode::SpawnFailed,
            format!("uid {uid} has no passwd entry"),
        )
    })?;
    Ok(Account {
        name: user.name,
        home: user.dir,
        shell: user.shell,
    })
}

fn run(log: &Logger) -> Result<HelperResponse, HelperError> {
    sys::close_inherited_fds().map_err(|e| {
        HelperError::new(
            ErrorCode::Internal,
            format!("cannot close inherited descriptors: {e}"),
        )
    })?;
    if getuid().is_root() || nix::unistd::geteuid().is_root() {
        return Err(HelperError::new(
            ErrorCode::RefusedRoot,
            "refusing to run as root: the hub runs this helper as the target user (sudo -u USER)",
        ));
    }
    let config = config::load()?;
    check_caller(&config.hub_user)?;
    let account = current_account()?;
    let helper_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(PathBuf::from))
        .ok_or_else(|| {
            HelperError::new(
                ErrorCode::Internal,
                "cannot find the helper's own directory",
            )
        })?;
    let request = request::read(io::stdin().lock())?;
    match request::plan(request, &config, &account, &helper_dir)? {
        Plan::Kill { pid, signal } => signal_process(pid, signal, log),
        Plan::Spawn(plan) => spawn::spawn(&plan, log).map(HelperResponse::spawned),
    }
}

/// Sends `signal` to `pid` under the kill policy. Like the Python mediator,
/// a pid that is gone or not the user's answers `alive: false`.
fn signal_process(pid: i32, signal: i32, log: &Logger) -> Result<HelperResponse, HelperError> {
    let signal = match signal {
        0 => None,
        n => Some(
            Signal::try_from(n)
                .map_err(|e| HelperError::new(ErrorCode::InvalidRequest, e.to_string()))?,
        ),
    };
    seccomp::apply(&Policy::Kill.compile()?)?;
    let alive = match kill(Pid::from_raw(pid), signal) {
        Ok(()) => true,
        Err(Errno::ESRCH) => false,
        Err(Errno::EPERM) => {
            log.error(format_args!(
                "permission denied signalling pid {pid}: assuming the server is gone and its pid was reused"
            ));
            false
        }
        Err(e) => {
            log.error(format_args!(
                "signalling pid {pid} failed ({e}); assuming the server is gone"
            ));
            false
        }
    };
    log.debug(format_args!("pid {pid} alive: {alive}"));
    Ok(HelperResponse::signalled(alive))
}

fn answer(response: &HelperResponse) -> i32 {
    let text = to_python_json(response).unwrap_or_else(|_| {
        r#"{"ok": false, "error": "cannot encode the answer", "code": "internal"}"#.to_owned()
    });
    let mut out = io::stdout().lock();
    if out
        .write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        return ErrorCode::Internal.exit_code();
    }
    match response.code {
        Some(code) if !response.ok => code.exit_code(),
        _ => 0,
    }
}

fn main() {
    let log = match parse_args(std::env::args_os().skip(1)) {
        Ok(Invocation::Print(text)) => {
            println!("{text}");
            return;
        }
        Ok(Invocation::Serve(log)) => log,
        Err(e) => {
            eprintln!("sudospawner: {}\n{USAGE}", e.message);
            std::process::exit(answer(&HelperResponse::failure(e.code, e.message)));
        }
    };
    let result = catch_unwind(AssertUnwindSafe(|| run(&log))).unwrap_or_else(|_| {
        Err(HelperError::new(
            ErrorCode::Internal,
            "internal error (a bug in sudospawner; see its stderr)",
        ))
    });
    let response = result.unwrap_or_else(|e| {
        log.error(format_args!(
            "{} ({})",
            e.message,
            serde_json::to_string(&e.code).unwrap_or_default()
        ));
        HelperResponse::failure(e.code, e.message)
    });
    std::process::exit(answer(&response));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Result<Invocation, HelperError> {
        parse_args(a.iter().map(std::ffi::OsString::from))
    }

    #[test]
    fn upstream_logging_flag_is_accepted() {
        for level in ["INFO", "DEBUG", "warning", "ERROR", "critical", "none"] {
            assert!(
                matches!(
                    args(&[&format!("--logging={level}")]),
                    Ok(Invocation::Serve(_))
                ),
                "{level}"
            );
        }
        assert!(matches!(
            args(&[]),
            Ok(Invocation::Serve(Logger { level: Level::Info }))
        ));
    }

    #[test]
    fn other_arguments_are_usage_errors() {
        for bad in [
            &["--logging=LOUD"][..],
            &["/bin/sh"],
            &["--config=/tmp/x.toml"],
            &["--logging"],
        ] {
            assert_eq!(
                args(bad).err().map(|e| e.code),
                Some(ErrorCode::Usage),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn unknown_uid_is_reported() {
        // Whatever account runs the tests has a passwd entry.
        assert!(current_account().is_ok());
    }
}
