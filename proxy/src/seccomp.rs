//! The seccomp filter installed once every socket is bound (and the pid
//! file written), before the async runtime starts its threads, so every
//! thread of the process inherits it.
//!
//! Why a deny-list on a default-allow policy: the proxy is one process that
//! does network I/O through tokio, resolves names through glibc (whose
//! NSS modules vary by host), reads error pages and writes the routes
//! file, on x86_64 and aarch64 kernels of different ages. An allow-list
//! exact enough to be worth having would break on the next glibc or tokio
//! release in ways only seen in production. What a compromised proxy could
//! use to escalate, though, is a short and stable list: starting programs,
//! creating processes, debugging others, and administering the kernel.
//! Those are refused with `EPERM`:
//!
//! - program execution: `execve`, `execveat`;
//! - new processes: `fork`, `vfork`, and `clone` *without* `CLONE_THREAD`
//!   (threads, which tokio's blocking pool needs, still work); `clone3` is
//!   answered `ENOSYS`, because its flags sit in memory a filter cannot
//!   read, and glibc then falls back to `clone`;
//! - other processes' memory: `ptrace`, `process_vm_readv`,
//!   `process_vm_writev`, `kcmp`, `pidfd_getfd`;
//! - identity: the `set*uid`, `set*gid`, `setgroups` family;
//! - namespaces and mounts: `unshare`, `setns`, `mount`, `umount2`,
//!   `pivot_root`, `chroot`, the new mount API (`open_tree`, `move_mount`,
//!   `fsopen`, `fsconfig`, `fsmount`, `fspick`, `mount_setattr`);
//! - kernel administration: module loading (`init_module`,
//!   `finit_module`, `delete_module`), `kexec_load`, `kexec_file_load`,
//!   `reboot`, `swapon`, `swapoff`, `acct`, `quotactl`, `syslog`,
//!   `settimeofday`, `clock_settime`, `clock_adjtime`, `adjtimex`,
//!   `sethostname`, `setdomainname`, `vhangup`;
//! - kernel attack surface: `bpf`, `perf_event_open`, `userfaultfd`,
//!   `keyctl`, `add_key`, `request_key`, `personality`,
//!   `open_by_handle_at`, `name_to_handle_at`, `fanotify_init`,
//!   `lookup_dcookie`; on x86_64 also `iopl`, `ioperm`, `uselib`.
//!
//! The filter also sets `no_new_privs`. `--no-seccomp` skips it.

use std::collections::BTreeMap;

use nix::libc;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Why the filter could not be built or installed.
#[derive(Debug)]
pub struct SeccompError(pub String);

impl std::fmt::Display for SeccompError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "seccomp: {}", self.0)
    }
}

impl std::error::Error for SeccompError {}

/// Syscalls refused unconditionally with `EPERM`.
fn denied() -> Vec<i64> {
    let mut v = vec![
        libc::SYS_execve,
        libc::SYS_execveat,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_kcmp,
        libc::SYS_pidfd_getfd,
        libc::SYS_setuid,
        libc::SYS_setgid,
        libc::SYS_setreuid,
        libc::SYS_setregid,
        libc::SYS_setresuid,
        libc::SYS_setresgid,
        libc::SYS_setfsuid,
        libc::SYS_setfsgid,
        libc::SYS_setgroups,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_open_tree,
        libc::SYS_move_mount,
        libc::SYS_fsopen,
        libc::SYS_fsconfig,
        libc::SYS_fsmount,
        libc::SYS_fspick,
        libc::SYS_mount_setattr,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_reboot,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_acct,
        libc::SYS_quotactl,
        libc::SYS_syslog,
        libc::SYS_settimeofday,
        libc::SYS_clock_settime,
        libc::SYS_clock_adjtime,
        libc::SYS_adjtimex,
        libc::SYS_sethostname,
        libc::SYS_setdomainname,
        libc::SYS_vhangup,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_personality,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        libc::SYS_fanotify_init,
        libc::SYS_lookup_dcookie,
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([
        libc::SYS_fork,
        libc::SYS_vfork,
        libc::SYS_iopl,
        libc::SYS_ioperm,
        libc::SYS_uselib,
    ]);
    v
}

fn arch() -> Result<TargetArch, SeccompError> {
    std::env::consts::ARCH
        .try_into()
        .map_err(|e| SeccompError(format!("unsupported architecture: {e:?}")))
}

/// The two programs: the `EPERM` deny-list (with the `clone` rule), and
/// the `ENOSYS` answer for `clone3`. They are separate because a
/// seccompiler filter has a single match action.
pub fn programs() -> Result<[BpfProgram; 2], SeccompError> {
    let arch = arch()?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        denied().into_iter().map(|nr| (nr, Vec::new())).collect();
    // clone(flags, ...): flags is the first argument on x86_64 and
    // aarch64; refuse it when CLONE_THREAD is not set.
    let no_thread = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64),
        0,
    )
    .map_err(|e| SeccompError(e.to_string()))?;
    rules.insert(
        libc::SYS_clone,
        vec![SeccompRule::new(vec![no_thread]).map_err(|e| SeccompError(e.to_string()))?],
    );
    let deny = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(|e| SeccompError(e.to_string()))?;
    let clone3 = SeccompFilter::new(
        [(libc::SYS_clone3, Vec::new())].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(|e| SeccompError(e.to_string()))?;
    Ok([
        deny.try_into()
            .map_err(|e: seccompiler::BackendError| SeccompError(e.to_string()))?,
        clone3
            .try_into()
            .map_err(|e: seccompiler::BackendError| SeccompError(e.to_string()))?,
    ])
}

/// Builds and installs the filter on the calling thread (threads created
/// afterwards inherit it).
pub fn install() -> Result<(), SeccompError> {
    for program in programs()? {
        seccompiler::apply_filter(&program).map_err(|e| SeccompError(e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_compile() {
        let [deny, clone3] = programs().expect("programs");
        assert!(!deny.is_empty());
        assert!(!clone3.is_empty());
        let list = denied();
        assert!(list.contains(&libc::SYS_execve));
        assert!(!list.contains(&libc::SYS_clone), "clone is conditional");
        assert!(!list.contains(&libc::SYS_clone3), "clone3 gets ENOSYS");
    }

    #[test]
    fn filter_applies_in_a_child_thread() {
        // Installing on a scratch thread leaves the test harness alone;
        // the thread then cannot exec, but can still start threads.
        let handle = std::thread::spawn(|| {
            install().expect("install");
            let exec = std::process::Command::new("/bin/true").status();
            let thread_ok = std::thread::spawn(|| 7).join().ok() == Some(7);
            (exec.is_err(), thread_ok)
        });
        let (exec_failed, thread_ok) = handle.join().expect("join");
        assert!(exec_failed, "exec must be refused");
        assert!(thread_ok, "threads must still work");
    }
}
