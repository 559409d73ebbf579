//! The helper's seccomp policies, as data.
//!
//! Each policy is an allow-list of system calls; any other call kills the
//! process (`SECCOMP_RET_KILL_PROCESS`). Programs are compiled before any
//! fork and applied with `seccompiler::apply_filter`, which also sets
//! `PR_SET_NO_NEW_PRIVS` on the calling process.
//!
//! | policy | applied in | allows, beyond [`BASE`] |
//! | --- | --- | --- |
//! | [`Policy::Kill`] | the helper, on the `kill` path, after the request is checked and before the signal is sent | `kill` |
//! | [`Policy::Parent`] | the helper, on the `spawn` path, right after forking the monitor: it then only reads the monitor's answer and writes its own | `read`, `wait4`, `waitid` |
//! | [`Policy::Monitor`] | the monitor (the server's parent), after it answered: it then only reaps children until the server is gone | `wait4`, `waitid` |
//!
//! The server itself gets no filter: seccomp filters and no_new_privs are
//! inherited across fork and exec, which is why every policy here is applied
//! only after the server has been started, never in a process that will still
//! exec it. (A server policy applied in the pre-exec hook would, through
//! no_new_privs, also stop setuid programs such as `sudo` or `passwd` from
//! working in the user's terminals.)
//!
//! [`BASE`] is what any Rust code needs to finish: memory management for
//! the answer's formatting, writing it, signal-mask handling during exit, and
//! exiting.

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};
use shared::helper::ErrorCode;

use crate::HelperError;

/// A seccomp policy of the helper's; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// The `kill` action.
    Kill,
    /// The helper after forking the monitor.
    Parent,
    /// The monitor after it answered.
    Monitor,
}

/// Calls every policy allows.
const BASE: &[i64] = &[
    libc::SYS_write,
    libc::SYS_writev,
    libc::SYS_close,
    libc::SYS_brk,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_madvise,
    libc::SYS_futex,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigreturn,
    libc::SYS_sigaltstack,
    libc::SYS_exit,
    libc::SYS_exit_group,
];

impl Policy {
    /// The calls this policy allows beyond [`BASE`].
    fn extra(self) -> &'static [i64] {
        match self {
            Policy::Kill => &[libc::SYS_kill],
            Policy::Parent => &[libc::SYS_read, libc::SYS_wait4, libc::SYS_waitid],
            Policy::Monitor => &[libc::SYS_wait4, libc::SYS_waitid],
        }
    }

    /// Every call this policy allows.
    pub fn allowed(self) -> impl Iterator<Item = i64> {
        BASE.iter().chain(self.extra()).copied()
    }

    /// Compiles the policy for the architecture the helper was built for.
    pub fn compile(self) -> Result<BpfProgram, HelperError> {
        let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(internal)?;
        let rules = self.allowed().map(|nr| (nr, Vec::new())).collect();
        let filter = SeccompFilter::new(
            rules,
            SeccompAction::KillProcess,
            SeccompAction::Allow,
            arch,
        )
        .map_err(internal)?;
        BpfProgram::try_from(filter).map_err(internal)
    }
}

/// Applies a compiled policy to the calling process, irrevocably.
pub fn apply(program: &BpfProgram) -> Result<(), HelperError> {
    seccompiler::apply_filter(program).map_err(internal)
}

fn internal(e: impl std::fmt::Display) -> HelperError {
    HelperError::new(
        ErrorCode::Internal,
        format!("cannot set up the seccomp filter: {e}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_policy_compiles() {
        for policy in [Policy::Kill, Policy::Parent, Policy::Monitor] {
            assert!(!policy.compile().unwrap().is_empty());
        }
    }

    #[test]
    fn policies_allow_no_way_to_run_or_open_anything() {
        let forbidden = [
            libc::SYS_execve,
            libc::SYS_execveat,
            libc::SYS_fork,
            libc::SYS_vfork,
            libc::SYS_clone,
            libc::SYS_clone3,
            libc::SYS_open,
            libc::SYS_openat,
            libc::SYS_ptrace,
            libc::SYS_socket,
            libc::SYS_setuid,
            libc::SYS_prctl,
        ];
        for policy in [Policy::Kill, Policy::Parent, Policy::Monitor] {
            for nr in forbidden {
                assert!(
                    !policy.allowed().any(|a| a == nr),
                    "{policy:?} allows syscall {nr}"
                );
            }
        }
        assert!(!Policy::Monitor.allowed().any(|a| a == libc::SYS_kill));
        assert!(!Policy::Parent.allowed().any(|a| a == libc::SYS_kill));
    }
}
