//! Starting the server, and the monitor process that stays its parent.
//!
//! ```text
//! sudo ── sudospawner (answers, exits) ──fork──► monitor (new session, subreaper)
//!                                                  └─spawn─► server (own session, limits)
//! ```
//!
//! The helper forks a *monitor*, which detaches from the hub's pipes (stdin
//! from /dev/null, stdout and stderr to the user's log), starts the server
//! and watches it through a pidfd for one second. If the server is still
//! running, the monitor tells the helper its pid over a pipe and from then on
//! only reaps: it is the server's parent, and a child subreaper for whatever
//! the server leaves behind, so no process of the user's becomes a zombie
//! even on a system whose init does not reap orphans. If the server exits in
//! its first second, the monitor reaps it and answers with its exit status
//! and the last lines of its log.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::resource::{Resource, getrlimit};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};
use shared::helper::{ErrorCode, HelperResponse};

use crate::config::Limits;
use crate::request::SpawnPlan;
use crate::seccomp::{self, Policy};
use crate::{HelperError, Logger, sys};

/// How long the server must stay up before the helper calls it started.
const FIRST_SECOND: Duration = Duration::from_secs(1);

/// How much of the log an early exit reports.
const TAIL_LINES: usize = 20;
const TAIL_BYTES: u64 = 4096;

/// Starts the server described by `plan` and returns its pid once it has
/// lived for [`FIRST_SECOND`].
pub fn spawn(plan: &SpawnPlan, log: &Logger) -> Result<i64, HelperError> {
    let log_file = open_log(&plan.log_path)?;
    let start_offset = log_file.metadata().map(|m| m.len()).unwrap_or(0);
    let devnull = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| internal("open /dev/null", e))?;
    let (answer_rx, answer_tx) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| internal("create a pipe", e.into()))?;
    let parent_policy = Policy::Parent.compile()?;
    let monitor_policy = Policy::Monitor.compile()?;
    log.info(format_args!(
        "spawning {} for {}",
        plan.program.display(),
        plan.env["USER"]
    ));
    log.debug(format_args!(
        "environment names: {}",
        plan.env.keys().cloned().collect::<Vec<_>>().join(" ")
    ));

    match sys::fork().map_err(|e| internal("fork", e))? {
        ForkResult::Child => {
            drop(answer_rx);
            let code = catch_unwind(AssertUnwindSafe(|| {
                monitor(
                    plan,
                    log_file,
                    devnull,
                    start_offset,
                    answer_tx,
                    &monitor_policy,
                )
            }))
            .unwrap_or(70);
            sys::exit_now(code)
        }
        ForkResult::Parent { child } => {
            drop(answer_tx);
            drop(log_file);
            drop(devnull);
            seccomp::apply(&parent_policy)?;
            let mut answer = Vec::new();
            let read = File::from(answer_rx)
                .take(64 * 1024)
                .read_to_end(&mut answer);
            let response: Option<HelperResponse> =
                read.ok().and_then(|_| serde_json::from_slice(&answer).ok());
            match response {
                Some(HelperResponse {
                    ok: true,
                    pid: Some(pid),
                    ..
                }) => Ok(pid),
                other => {
                    // The monitor exits right after a failed start: reap it.
                    let _reaped = waitpid(child, None);
                    Err(match other {
                        Some(HelperResponse {
                            error: Some(error),
                            code,
                            ..
                        }) => HelperError::new(code.unwrap_or(ErrorCode::SpawnFailed), error),
                        _ => HelperError::new(
                            ErrorCode::Internal,
                            "the server's monitor process ended without an answer",
                        ),
                    })
                }
            }
        }
    }
}

/// The monitor: runs in the forked child and never returns to `main`.
/// Returns its exit code.
fn monitor(
    plan: &SpawnPlan,
    log_file: File,
    devnull: File,
    start_offset: u64,
    answer_tx: OwnedFd,
    monitor_policy: &seccompiler::BpfProgram,
) -> i32 {
    let started =
        detach(&log_file, &devnull).and_then(|()| start_and_watch(plan, &log_file, start_offset));
    let response = match &started {
        Ok(pid) => HelperResponse::spawned(i64::from(*pid)),
        Err(e) => HelperResponse::failure(e.code, e.message.clone()),
    };
    let mut pipe = File::from(answer_tx);
    // If the helper is gone there is nobody to tell; the server runs on.
    let _told = serde_json::to_writer(&mut pipe, &response);
    drop(pipe);
    let Ok(server) = started else { return 1 };
    if seccomp::apply(monitor_policy).is_err() {
        eprintln!("sudospawner: monitor: cannot apply its seccomp filter; reaping without it");
    }
    reap_until_alone(server)
}

/// Leaves the hub's session and pipes: a session of our own, stdin from
/// /dev/null, stdout and stderr into the user's log. Also becomes a child
/// subreaper, so orphans the server leaves are reaped here.
fn detach(log_file: &File, devnull: &File) -> Result<(), HelperError> {
    let step = |what: &str, r: nix::Result<()>| r.map_err(|e| internal(what, e.into()));
    step("setsid", nix::unistd::setsid().map(drop))?;
    step(
        "become a subreaper",
        nix::sys::prctl::set_child_subreaper(true),
    )?;
    step("redirect stdin", nix::unistd::dup2_stdin(devnull.as_fd()))?;
    step(
        "redirect stdout",
        nix::unistd::dup2_stdout(log_file.as_fd()),
    )?;
    step(
        "redirect stderr",
        nix::unistd::dup2_stderr(log_file.as_fd()),
    )
}

/// Starts the server and waits up to [`FIRST_SECOND`] for it to exit.
fn start_and_watch(
    plan: &SpawnPlan,
    log_file: &File,
    start_offset: u64,
) -> Result<i32, HelperError> {
    check_limits(plan.limits)?;
    let output = |f: &File| {
        f.try_clone()
            .map(Stdio::from)
            .map_err(|e| internal("duplicate the log", e))
    };
    let mut command = Command::new(&plan.program);
    command
        .args(&plan.args)
        .env_clear()
        .envs(&plan.env)
        .current_dir(&plan.home)
        .stdin(Stdio::null())
        .stdout(output(log_file)?)
        .stderr(output(log_file)?);
    sys::prepare_server(&mut command, plan.limits);
    let child = command.spawn().map_err(|e| {
        HelperError::new(
            ErrorCode::SpawnFailed,
            format!("cannot start {}: {e}", plan.program.display()),
        )
    })?;
    let pid = i32::try_from(child.id())
        .map_err(|e| internal("read the server's pid", io::Error::other(e)))?;
    eprintln!(
        "sudospawner: started {} as pid {pid}",
        plan.program.display()
    );

    let pidfd = sys::pidfd_open(pid).map_err(|e| internal("open a pidfd", e))?;
    let deadline = Instant::now() + FIRST_SECOND;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(pid);
        }
        let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => break,
            Err(e) => return Err(internal("watch the server", e.into())),
        }
    }

    let status = match waitpid(Pid::from_raw(pid), None) {
        Ok(WaitStatus::Exited(_, code)) => format!("exited with status {code}"),
        Ok(WaitStatus::Signaled(_, signal, _)) => format!("was killed by {signal}"),
        Ok(other) => format!("ended ({other:?})"),
        Err(e) => format!("ended (status unknown: {e})"),
    };
    Err(HelperError::new(
        ErrorCode::ServerExited,
        format!(
            "{} {status} within its first second; last lines of {}:\n{}",
            plan.program.display(),
            plan.log_path.display(),
            log_tail(&plan.log_path, start_offset)
        ),
    ))
}

/// Refuses limits above what sudo left as hard limits: the server could not
/// take them, and silently running it with less would mislead the admin.
fn check_limits(limits: Limits) -> Result<(), HelperError> {
    let wanted = [
        (
            "address_space",
            Resource::RLIMIT_AS,
            limits.address_space.map(|s| s.0),
        ),
        ("processes", Resource::RLIMIT_NPROC, limits.processes),
        ("open_files", Resource::RLIMIT_NOFILE, limits.open_files),
    ];
    for (name, resource, value) in wanted {
        let Some(value) = value else { continue };
        let (_, hard) =
            getrlimit(resource).map_err(|e| internal("read a resource limit", e.into()))?;
        if value > hard {
            return Err(HelperError::new(
                ErrorCode::BadConfig,
                format!("limits.{name} = {value} is above this user's hard limit {hard}"),
            ));
        }
    }
    Ok(())
}

/// The monitor's life after a successful start: reap every child until none
/// is left (the server, and any orphan of its that the subreaper inherited).
fn reap_until_alone(server: i32) -> i32 {
    loop {
        match waitpid(None, None) {
            Ok(WaitStatus::Exited(pid, code)) if pid.as_raw() == server => {
                eprintln!("sudospawner: server pid {server} exited with status {code}");
            }
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid.as_raw() == server => {
                eprintln!("sudospawner: server pid {server} was killed by {signal}");
            }
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return 0,
        }
    }
}

/// Creates `~/.jhub/logs` (0700) and opens the log for appending (0600).
fn open_log(path: &Path) -> Result<File, HelperError> {
    let fail = |what: &str, e: io::Error| {
        HelperError::new(
            ErrorCode::SpawnFailed,
            format!("cannot {what} {}: {e}", path.display()),
        )
    };
    if let Some(dir) = path.parent() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| fail("create the directory of", e))?;
        // `mode` only applies to directories it created; tighten old ones too.
        for d in [dir, dir.parent().unwrap_or(dir)] {
            fs::set_permissions(d, fs::Permissions::from_mode(0o700))
                .map_err(|e| fail("set the mode of the directory of", e))?;
        }
    }
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| fail("open the log", e))?;
    writeln!(file, "sudospawner: starting the server").map_err(|e| fail("write the log", e))?;
    Ok(file)
}

/// The last [`TAIL_LINES`] lines written to the log since `offset`.
fn log_tail(path: &Path, offset: u64) -> String {
    let read = || -> io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(offset.max(len.saturating_sub(TAIL_BYTES))))?;
        let mut bytes = Vec::new();
        file.take(TAIL_BYTES).read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
        }
        Err(e) => format!("(cannot read the log: {e})"),
    }
}

fn internal(what: &str, e: io::Error) -> HelperError {
    HelperError::new(ErrorCode::Internal, format!("cannot {what}: {e}"))
}
