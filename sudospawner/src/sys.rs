//! The helper's only `unsafe` code: fork, the pre-exec hook, pidfd_open,
//! close_range and `_exit`. Each block states the precondition it relies on.
//!
//! The precondition for all of them is that the helper is single-threaded:
//! it never spawns a thread and links no async runtime, so after `fork` the
//! child's copy of memory holds no lock that another thread was holding.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::sys::resource::{Resource, setrlimit};
use nix::unistd::{ForkResult, setsid};

use crate::config::Limits;

/// Forks the helper.
pub fn fork() -> io::Result<ForkResult> {
    // SAFETY: the helper is single-threaded (module docs), so the child may
    // go on running ordinary Rust code, allocation included, after the fork.
    unsafe { nix::unistd::fork() }.map_err(io::Error::from)
}

/// Ends the current process at once, without running exit handlers or
/// unwinding: what a forked child does so that nothing of the parent's state
/// (buffered stdout above all) is flushed twice.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` takes an integer and does not return; it touches no
    // memory of this process.
    unsafe { libc::_exit(code) }
}

/// A pidfd for `pid`, which becomes readable when the process ends.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open(2) takes a pid and flags and passes no memory; it
    // returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(io::Error::other)?;
    // SAFETY: the kernel just returned this descriptor to us and nothing else
    // owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Arranges for the server, between fork and exec, to start a session of its
/// own, take its resource limits, and lose every descriptor above stderr.
pub fn prepare_server(command: &mut Command, limits: Limits) {
    let address_space = limits.address_space.map(|s| s.0);
    let processes = limits.processes;
    let open_files = limits.open_files;
    let hook = move || -> io::Result<()> {
        setsid()?;
        if let Some(n) = address_space {
            setrlimit(Resource::RLIMIT_AS, n, n)?;
        }
        if let Some(n) = processes {
            setrlimit(Resource::RLIMIT_NPROC, n, n)?;
        }
        if let Some(n) = open_files {
            setrlimit(Resource::RLIMIT_NOFILE, n, n)?;
        }
        cloexec_above_stderr()
    };
    // SAFETY: the hook runs in the forked child before exec. It captures only
    // integers, allocates nothing, and makes only async-signal-safe system
    // calls (setsid, setrlimit, close_range); errors are plain errno values.
    unsafe {
        command.pre_exec(hook);
    }
}

/// Closes every descriptor above stderr that the helper inherited. Called
/// first in [`crate::run`], before the helper opens anything: whatever the
/// caller left open (a direct run, or sudo with `closefrom_override` and
/// `-C`) would otherwise stay open in the monitor, which lives as long as
/// the server.
pub fn close_inherited_fds() -> io::Result<()> {
    // SAFETY: close_range(2) passes no memory. It runs before the helper
    // opens any descriptor, so no object in this process owns one above
    // stderr: nothing is left holding a closed descriptor.
    let rc = unsafe { libc::close_range(3, libc::c_uint::MAX, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Marks every descriptor above stderr close-on-exec, so the server inherits
/// none of them whatever the helper's caller left open.
fn cloexec_above_stderr() -> io::Result<()> {
    // SAFETY: close_range(2) with CLOSE_RANGE_CLOEXEC only sets a flag on
    // descriptors; it passes no memory.
    let rc = unsafe {
        libc::close_range(
            3,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_int,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
