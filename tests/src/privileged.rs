//! Running the installed helper as the hub would: as the `jupyterhub`
//! account, through `sudo -nH -u USER /usr/local/bin/sudospawner`, and
//! looking at what it did from the outside (`/proc`, the user's files).
//!
//! - [`helper`], [`helper_as`], [`helper_direct`]: one run of the real
//!   helper, with [`HelperRun`]'s assertions on the exact answer.
//! - [`installed_config`] and [`ConfigGuard`]: a shared hold on, or a
//!   temporary replacement of, the root-owned `/etc/jhub/sudospawner.toml`
//!   (the only way to choose the server program), restored on drop.
//! - [`claim_user`], [`live_processes`], [`assert_nothing_started`]: who runs
//!   what, for "nothing was started" checks.
//! - [`FAKE_SERVER`] and [`Server`]: a stand-in server the tests control by
//!   its flags, and a guard that kills a started server on drop.
//! - [`TempUser`] and [`TempGroup`]: throw-away accounts with a password
//!   and groups for one test (PAM logins), deleted on drop;
//!   [`TempPassword`]: a password on an existing test user for one test.
//!
//! Reaping: the helper's monitor process, once its server is gone, exits
//! and is reaped by whatever adopted it (the nearest child subreaper, or
//! PID 1). `tests/run` runs the suite under `tini -s` for machines whose
//! PID 1 does not reap. The tests do not make themselves subreapers (they
//! would then have to reap monitors without stealing `std::process`
//! children); they assert on the server pid, which the monitor reaps, and
//! treat a zombie as exited ([`live_processes`] skips zombies).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::unistd::User;
use shared::helper::{ErrorCode, HelperResponse, to_python_json};

/// The hub's service account.
pub const HUB_USER: &str = "jupyterhub";
/// A member of `jupyterhub-users`.
pub const ALICE: &str = "jhtest-alice";
/// Another member of `jupyterhub-users`.
pub const BOB: &str = "jhtest-bob";
/// A user outside `jupyterhub-users`: sudo must refuse the hub for them.
pub const OUTSIDER: &str = "jhtest-outsider";
/// Where the install script puts the helper.
pub const HELPER_PATH: &str = "/usr/local/bin/sudospawner";

/// The repository root (the parent of this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the repository")
        .to_path_buf()
}

/// True when the process runs as root. Otherwise prints, loudly, that
/// `test` was skipped and what it did not check, so a non-root run never
/// passes quietly; `tests/run` counts these lines in its summary.
pub fn require_root(test: &str, unchecked: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    // Straight to the stderr handle: the test harness captures what
    // `eprintln!` writes (and shows it only for failed tests), which would
    // hide the skip from the run's output and from `tests/run`'s summary.
    let _best_effort = writeln!(
        std::io::stderr().lock(),
        "SKIPPED (needs root): {test}: did not check {unchecked}"
    );
    false
}

/// Makes sure the system is set up for the privileged tests, once per test
/// binary: the installed helper is this tree's release build, the test
/// users exist (alice and bob in `jupyterhub-users`, the outsider not), and
/// the stand-in server [`FAKE_SERVER`] is installed.
///
/// Panics with a hint when the install script has not been run.
pub fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        assert!(
            Path::new(HELPER_PATH).exists() && User::from_name(HUB_USER).ok().flatten().is_some(),
            "{HELPER_PATH} or the {HUB_USER} account is missing: run `sudo ./sudoers/install.sh` first (tests/run does)"
        );
        let built = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target"))
            .join("release/sudospawner");
        if let Ok(built) = std::fs::read(&built) {
            let installed = std::fs::read(HELPER_PATH).expect("read the installed helper");
            assert!(
                built == installed,
                "{HELPER_PATH} is not the release build of this tree: run `sudo ./sudoers/install.sh` (tests/run does)"
            );
        }
        let add_user = repo_root().join("sudoers/add-user.sh");
        for user in [ALICE, BOB] {
            run_ok(Command::new(&add_user).arg(user));
        }
        if User::from_name(OUTSIDER).ok().flatten().is_none() {
            run_ok(Command::new("useradd").args(["-m", "-s", "/bin/bash", OUTSIDER]));
        }
        install_fake_server();
    });
}

/// Runs `command` and panics with its output unless it succeeds.
pub fn run_ok(command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A `Command` that runs `program` as `user` (uid and primary gid from the
/// passwd entry, no supplementary groups), with a minimal environment.
pub fn as_user(user: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let account = User::from_name(user)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no user {user}"));
    let mut command = Command::new(program);
    command
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &account.dir)
        .env("USER", user)
        .env("LANG", "C.UTF-8")
        .current_dir("/")
        .uid(account.uid.as_raw())
        .gid(account.gid.as_raw());
    command
}

/// One run of the helper: its exit status, raw stdout, stderr, and the
/// parsed answer (None when stdout was not one JSON answer).
#[derive(Debug)]
pub struct HelperRun {
    /// The exit status of the whole `sudo ... sudospawner` command.
    pub status: ExitStatus,
    /// Everything on stdout, exactly.
    pub stdout: String,
    /// Everything on stderr (sudo's and the helper's).
    pub stderr: String,
    /// stdout parsed as an answer.
    pub response: Option<HelperResponse>,
}

/// Runs `sudo -nH -u target /usr/local/bin/sudospawner --logging=DEBUG` as
/// `caller`, writes `input` to its stdin and closes it.
pub fn helper_as(caller: &str, target: &str, input: &[u8]) -> HelperRun {
    let mut command = as_user(caller, "sudo");
    command.args(["-nH", "-u", target, HELPER_PATH, "--logging=DEBUG"]);
    run_with_input(command, input)
}

/// Runs the helper for `target` as the hub would.
pub fn helper(target: &str, input: &[u8]) -> HelperRun {
    helper_as(HUB_USER, target, input)
}

/// Runs `command` with `input` on stdin and collects a [`HelperRun`].
pub fn run_with_input(mut command: Command, input: &[u8]) -> HelperRun {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin is piped");
    // The helper may refuse before reading everything: a broken pipe is fine.
    let _written = stdin.write_all(input);
    drop(stdin);
    let out = child.wait_with_output().expect("wait for the helper");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    HelperRun {
        status: out.status,
        response: serde_json::from_str(&stdout).ok(),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl HelperRun {
    /// Asserts that the helper refused the request with `code`: the exit
    /// status [`ErrorCode::exit_code`] gives, stdout exactly one answer
    /// `{"ok": false, "error": ..., "code": ...}` written as Python's
    /// `json.dumps` writes it (nothing before or after it), and an error
    /// message containing `needle`.
    pub fn assert_refused(&self, code: ErrorCode, needle: &str) {
        let response = self
            .response
            .as_ref()
            .unwrap_or_else(|| panic!("stdout is not one JSON answer: {self:#?}"));
        assert!(!response.ok, "not refused: {self:#?}");
        assert_eq!(response.code, Some(code), "wrong code: {self:#?}");
        let error = response.error.as_deref().unwrap_or_default();
        assert!(
            error.contains(needle),
            "the error {error:?} does not mention {needle:?}"
        );
        assert_eq!(
            self.status.code(),
            Some(code.exit_code()),
            "wrong exit status: {self:#?}"
        );
        assert_eq!(
            self.stdout,
            to_python_json(response).expect("an answer serializes"),
            "stdout is not exactly one answer as Python writes it"
        );
    }

    /// Asserts that the helper succeeded (exit 0) and that stdout is exactly
    /// `expected`, byte for byte.
    pub fn assert_answer(&self, expected: &str) {
        assert_eq!(self.stdout, expected, "unexpected answer: {self:#?}");
        assert!(self.status.success(), "non-zero exit: {self:#?}");
    }

    /// The pid of a successful spawn, after checking the answer is exactly
    /// `{"ok": true, "pid": N}` and the exit status 0.
    pub fn spawned_pid(&self) -> i32 {
        let pid = match &self.response {
            Some(HelperResponse {
                ok: true,
                pid: Some(pid),
                ..
            }) => *pid,
            _ => panic!("the spawn failed: {self:#?}"),
        };
        self.assert_answer(&format!(r#"{{"ok": true, "pid": {pid}}}"#));
        i32::try_from(pid).expect("a pid fits in i32")
    }
}

/// Runs the installed helper directly as `user`, without sudo: what the
/// helper sees when someone other than sudo starts it.
pub fn helper_direct(user: &str, input: &[u8]) -> HelperRun {
    let mut command = as_user(user, HELPER_PATH);
    command.arg("--logging=DEBUG");
    run_with_input(command, input)
}

/// A golden fixture of the helper protocol, from
/// `shared/tests/fixtures/helper/` (round-tripped by `shared`'s tests).
pub fn helper_fixture(name: &str) -> String {
    let path = repo_root().join("shared/tests/fixtures/helper").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

// --- Polling ---------------------------------------------------------------

/// How long [`eventually`] waits: `JHUB_TEST_PATIENCE_MS`, default 10 s.
pub fn patience() -> Duration {
    std::env::var("JHUB_TEST_PATIENCE_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(10))
}

/// Polls `check` every 20 ms until it returns `Some`, for at most
/// [`patience`], and panics naming `what` if it never does. Only for
/// processes outside the test's control (a server dying after a signal, a
/// line reaching a log), never instead of a readiness signal.
pub fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + patience();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {:?} waiting for: {what}",
            patience()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

// --- /proc -----------------------------------------------------------------

/// What `/proc/PID/stat` says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// `R`, `S`, `T`, `Z`, ...
    pub state: char,
    /// The parent's pid.
    pub ppid: i32,
    /// The process group.
    pub pgrp: i32,
    /// The session.
    pub session: i32,
    /// Start time in clock ticks since boot: tells a process from a later
    /// one that reused its pid.
    pub start_time: u64,
}

/// `/proc/PID/stat`, or None when there is no such process.
pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name in parentheses may contain anything; the fields
    // after the last ')' start with the state (field 3).
    let fields: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        session: fields.get(3)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// One line of `/proc/PID/status`, without its `Name:` prefix, e.g.
/// `proc_status(pid, "Uid")` is `"1001\t1001\t1001\t1001"`.
pub fn proc_status(pid: i32, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(|v| v.trim().to_owned())
}

/// The environment a process was started with (`/proc/PID/environ`).
pub fn proc_environ(pid: i32) -> Option<BTreeMap<String, String>> {
    let bytes = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    Some(
        bytes
            .split(|b| *b == 0)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                let entry = String::from_utf8_lossy(entry);
                let (name, value) = entry.split_once('=').unwrap_or((&entry, ""));
                (name.to_owned(), value.to_owned())
            })
            .collect(),
    )
}

/// The command line of a process.
pub fn proc_cmdline(pid: i32) -> Option<Vec<String>> {
    let bytes = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        bytes
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

/// A process's open descriptors and what each points at.
pub fn proc_fds(pid: i32) -> Option<BTreeMap<i32, PathBuf>> {
    let mut fds = BTreeMap::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()? {
        let entry = entry.ok()?;
        let fd = entry.file_name().to_str()?.parse().ok()?;
        fds.insert(fd, std::fs::read_link(entry.path()).ok()?);
    }
    Some(fds)
}

/// The soft and hard values of one row of `/proc/PID/limits`, by its name
/// (`"Max open files"`), as the kernel writes them (`"unlimited"` or digits).
pub fn proc_limit(pid: i32, name: &str) -> Option<(String, String)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let rest = text.lines().find_map(|l| l.strip_prefix(name))?;
    let mut values = rest.split_whitespace();
    Some((values.next()?.to_owned(), values.next()?.to_owned()))
}

/// The uid of `user`.
pub fn uid_of(user: &str) -> u32 {
    User::from_name(user)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no user {user}"))
        .uid
        .as_raw()
}

/// Pids of the processes whose real uid is `user`'s, zombies excluded (an
/// exited process waiting for its parent runs nothing; see [`setup`] on
/// reaping).
pub fn live_processes(user: &str) -> BTreeSet<i32> {
    let uid = uid_of(user).to_string();
    let mut pids = BTreeSet::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let real_uid = proc_status(pid, "Uid");
        let is_users = real_uid
            .as_deref()
            .and_then(|u| u.split_whitespace().next())
            == Some(&uid);
        if is_users && proc_stat(pid).is_some_and(|s| s.state != 'Z') {
            pids.insert(pid);
        }
    }
    pids
}

/// Panics if `user` has a live process that was not in `before`, naming
/// each with its command line: the check that a refused request started
/// nothing. Hold [`claim_user`] for `user` around both snapshots.
pub fn assert_nothing_started(user: &str, before: &BTreeSet<i32>, context: &str) {
    let new: Vec<String> = live_processes(user)
        .difference(before)
        .map(|pid| format!("{pid} {:?}", proc_cmdline(*pid).unwrap_or_default()))
        .collect();
    assert!(
        new.is_empty(),
        "{context}: new processes of {user}: {new:?}"
    );
}

/// Whether `pid` is still the process `stat` described and has not exited
/// (a zombie has exited).
pub fn still_running(pid: i32, stat: &ProcStat) -> bool {
    proc_stat(pid).is_some_and(|now| now.start_time == stat.start_time && now.state != 'Z')
}

// --- Locks between tests ---------------------------------------------------
//
// Tests run in parallel threads, and test binaries may run side by side
// (other runners than `cargo test`), so what two tests must not do at once
// is ordered by flock(2) locks under /run/jhub-tests, which work between
// threads (each hold opens the file anew) and between processes alike.
// Order: the config lock first, then user claims in name order.

const LOCK_DIR: &str = "/run/jhub-tests";

/// A held flock(2) lock, released on drop.
#[derive(Debug)]
struct FileLock(#[allow(dead_code, reason = "held for its Drop")] Flock<File>);

fn file_lock(name: &str, exclusive: bool) -> FileLock {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(LOCK_DIR)
        .expect("create the lock directory");
    let path = Path::new(LOCK_DIR).join(name);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .mode(0o600)
        .open(&path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let how = if exclusive {
        FlockArg::LockExclusive
    } else {
        FlockArg::LockShared
    };
    FileLock(Flock::lock(file, how).unwrap_or_else(|(_, e)| panic!("lock {}: {e}", path.display())))
}

/// Exclusive use of `user`'s processes for one test: while held, no other
/// test starts or signals processes of `user`, so before/after snapshots of
/// [`live_processes`] mean something.
///
/// On drop it kills (SIGKILL) every live process of `user` that was not
/// there when it was claimed, so that a test that failed half-way, or a
/// helper that wrongly started a server, leaves the user as it was found.
#[derive(Debug)]
pub struct UserClaim {
    user: String,
    before: BTreeSet<i32>,
    _lock: FileLock,
}

/// Claims `user` for the calling test (see [`UserClaim`]).
pub fn claim_user(user: &str) -> UserClaim {
    let lock = file_lock(&format!("user-{user}.lock"), true);
    UserClaim {
        user: user.to_owned(),
        before: live_processes(user),
        _lock: lock,
    }
}

impl Drop for UserClaim {
    fn drop(&mut self) {
        for pid in live_processes(&self.user).difference(&self.before) {
            eprintln!(
                "cleanup: killing pid {pid} of {} {:?}, left by the test",
                self.user,
                proc_cmdline(*pid).unwrap_or_default()
            );
            // Best effort: the process may be exiting already.
            let _killed = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

// --- The helper's configuration --------------------------------------------

/// The helper's configuration file (root-owned; the helper refuses it
/// otherwise).
pub const CONFIG_PATH: &str = "/etc/jhub/sudospawner.toml";
/// Where [`ConfigGuard`] keeps the original while a test replaces it, so a
/// test run killed half-way is repaired by the next one.
const CONFIG_BACKUP: &str = "/etc/jhub/sudospawner.toml.jhub-test-original";
const CONFIG_LOCK: &str = "helper-config.lock";

/// A shared hold on the installed helper configuration: while held, no
/// [`ConfigGuard`] replaces it. Every test whose outcome depends on the
/// installed configuration holds one.
#[derive(Debug)]
pub struct InstalledConfig {
    _lock: FileLock,
}

/// Holds the installed configuration unchanged for the calling test.
pub fn installed_config() -> InstalledConfig {
    {
        // Briefly exclusive: a backup seen now was left by a run killed
        // before it restored the original, and only one test repairs it.
        let _exclusive = file_lock(CONFIG_LOCK, true);
        restore_stale_config();
    }
    InstalledConfig {
        _lock: file_lock(CONFIG_LOCK, false),
    }
}

/// Exclusive use of the helper configuration: replaces it for one test and
/// restores the original content, owner, mode, and its directory's owner
/// and mode on drop.
#[derive(Debug)]
pub struct ConfigGuard {
    _lock: FileLock,
    original: Vec<u8>,
    dir_meta: (u32, u32, u32),
}

impl ConfigGuard {
    /// Takes the configuration for the calling test and writes `text` to
    /// it, root:root 0644.
    pub fn replace(text: &str) -> Self {
        let lock = file_lock(CONFIG_LOCK, true);
        restore_stale_config();
        let original = std::fs::read(CONFIG_PATH).unwrap_or_else(|e| {
            panic!("read {CONFIG_PATH}: {e}; run `sudo ./sudoers/install.sh` first")
        });
        write_root_file(Path::new(CONFIG_BACKUP), &original, 0o600);
        let dir = std::fs::metadata("/etc/jhub").expect("stat /etc/jhub");
        let guard = Self {
            _lock: lock,
            original,
            dir_meta: (dir.uid(), dir.gid(), dir.mode() & 0o7777),
        };
        guard.write(text);
        guard
    }

    /// Replaces the configuration again with `text`, root:root 0644.
    pub fn write(&self, text: &str) {
        write_root_file(Path::new(CONFIG_PATH), text.as_bytes(), 0o644);
    }
}

impl Drop for ConfigGuard {
    fn drop(&mut self) {
        let (uid, gid, mode) = self.dir_meta;
        let dir = Path::new("/etc/jhub");
        // Best effort in Drop: a failure here must not hide the test's panic;
        // the backup file lets the next run repair it.
        let _chown = std::os::unix::fs::chown(dir, Some(uid), Some(gid));
        let _chmod = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode));
        write_root_file(Path::new(CONFIG_PATH), &self.original, 0o644);
        let _removed = std::fs::remove_file(CONFIG_BACKUP);
    }
}

fn restore_stale_config() {
    if let Ok(original) = std::fs::read(CONFIG_BACKUP) {
        eprintln!("restoring {CONFIG_PATH} from {CONFIG_BACKUP}, left by an interrupted test run");
        write_root_file(Path::new(CONFIG_PATH), &original, 0o644);
        // The directory as sudoers/install.sh makes it.
        let dir = Path::new(CONFIG_PATH).parent().expect("an absolute path");
        std::os::unix::fs::chown(dir, Some(0), Some(0)).expect("chown /etc/jhub");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
            .expect("chmod /etc/jhub");
        std::fs::remove_file(CONFIG_BACKUP).expect("remove the configuration backup");
    }
}

/// Writes `bytes` to `path` atomically (a temporary file beside it, then
/// rename, which also replaces a symbolic link rather than following it),
/// owned by root:root with `mode`.
pub fn write_root_file(path: &Path, bytes: &[u8], mode: u32) {
    let tmp = path.with_extension("jhub-test-tmp");
    let _stale = std::fs::remove_file(&tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .unwrap_or_else(|e| panic!("create {}: {e}", tmp.display()));
    file.write_all(bytes).expect("write the file");
    std::os::unix::fs::fchown(&file, Some(0), Some(0)).expect("chown root:root");
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .expect("chmod");
    drop(file);
    std::fs::rename(&tmp, path).unwrap_or_else(|e| panic!("rename to {}: {e}", path.display()));
}

// --- The stand-in server ---------------------------------------------------

/// Where [`setup`] installs the stand-in server (`tests/src/fake-server.py`),
/// root:root 0755 in a root-owned directory, for configurations that need a
/// server whose behaviour the test controls through its flags.
pub const FAKE_SERVER: &str = "/usr/local/lib/jhub-test/fake-server";

fn install_fake_server() {
    let dir = Path::new(FAKE_SERVER).parent().expect("an absolute path");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .expect("create the stand-in server's directory");
    std::os::unix::fs::chown(dir, Some(0), Some(0)).expect("chown its directory");
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod it");
    let script = include_str!("fake-server.py");
    if std::fs::read_to_string(FAKE_SERVER).ok().as_deref() != Some(script) {
        write_root_file(Path::new(FAKE_SERVER), script.as_bytes(), 0o755);
    }
}

/// A server the helper started, killed (SIGKILL, as root) on drop if it
/// still runs, so a failed test leaves nothing behind.
#[derive(Debug)]
pub struct Server {
    /// Its pid, from the helper's answer.
    pub pid: i32,
    /// What /proc said about it just after the answer.
    pub stat: ProcStat,
}

impl Server {
    /// Takes the server from a successful spawn answer; panics when `run`
    /// is not exactly `{"ok": true, "pid": N}` with exit 0, or when N is not
    /// a running process of `user`.
    pub fn from_answer(user: &str, run: &HelperRun) -> Self {
        let pid = run.spawned_pid();
        let stat = proc_stat(pid).unwrap_or_else(|| panic!("pid {pid} is not running"));
        let server = Self { pid, stat };
        assert!(
            live_processes(user).contains(&pid),
            "pid {pid} is not a live process of {user}"
        );
        server
    }

    /// Whether the server has not exited yet.
    pub fn running(&self) -> bool {
        still_running(self.pid, &self.stat)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.running() {
            let _killed = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            // Bounded, and without panicking: Drop may run during a panic.
            let deadline = Instant::now() + patience();
            while self.running() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

// --- Temporary sudoers rules -----------------------------------------------

/// A sudoers drop-in for one test, checked with `visudo -cf` before it is
/// put in place and removed on drop. (A run killed while one is in place
/// leaves it until the same test runs again, which replaces and removes it.)
#[derive(Debug)]
pub struct SudoersDropIn {
    path: PathBuf,
}

impl SudoersDropIn {
    /// Installs `rules` as `/etc/sudoers.d/NAME` (NAME without dots, which
    /// sudo would skip), mode 0440.
    pub fn install(name: &str, rules: &str) -> Self {
        assert!(
            !name.contains('.') && !name.contains('/'),
            "bad drop-in name {name:?}"
        );
        let path = Path::new("/etc/sudoers.d").join(name);
        // A name with a dot is ignored by sudo while it is being checked.
        let tmp = path.with_extension("jhub-test-tmp");
        write_root_file(&tmp, rules.as_bytes(), 0o440);
        run_ok(Command::new("visudo").arg("-cf").arg(&tmp));
        std::fs::rename(&tmp, &path).expect("put the drop-in in place");
        Self { path }
    }
}

impl Drop for SudoersDropIn {
    fn drop(&mut self) {
        let _removed = std::fs::remove_file(&self.path);
    }
}

// --- Throw-away accounts ---------------------------------------------------

/// A short random suffix (hex) that makes account and group names unique
/// per test and per run.
pub fn unique_suffix() -> String {
    use std::io::Read;
    let mut b = [0u8; 4];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .expect("/dev/urandom");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A Unix group made for one test (`groupadd`), deleted on drop.
#[derive(Debug)]
pub struct TempGroup {
    /// Its name.
    pub name: String,
}

impl TempGroup {
    /// Creates the group `PREFIX-XXXXXXXX`.
    pub fn create(prefix: &str) -> Self {
        let name = format!("{prefix}-{}", unique_suffix());
        run_ok(Command::new("groupadd").arg(&name));
        Self { name }
    }
}

impl Drop for TempGroup {
    fn drop(&mut self) {
        // Best effort: a leftover group only costs a line in /etc/group.
        let _gone = Command::new("groupdel").arg(&self.name).output();
    }
}

/// A login account made for one test (`useradd` without a home, a
/// password set with `chpasswd`), deleted on drop.
#[derive(Debug)]
pub struct TempUser {
    /// Its name.
    pub name: String,
    /// Its password.
    pub password: String,
}

impl TempUser {
    /// Creates the account `PREFIX-XXXXXXXX` with a random password, in
    /// the supplementary `groups` (its primary group is its own).
    pub fn create(prefix: &str, groups: &[&str]) -> Self {
        let mut args = Vec::new();
        if !groups.is_empty() {
            args = vec!["-G".to_owned(), groups.join(",")];
        }
        Self::make(prefix, &args)
    }

    /// Creates the account `PREFIX-XXXXXXXX` with a random password and
    /// `group` as its primary group (and no group of its own).
    pub fn create_with_primary(prefix: &str, group: &str) -> Self {
        Self::make(
            prefix,
            &["-N".to_owned(), "-g".to_owned(), group.to_owned()],
        )
    }

    fn make(prefix: &str, args: &[String]) -> Self {
        let name = format!("{prefix}-{}", unique_suffix());
        let mut useradd = Command::new("useradd");
        useradd.args(["-M", "-s", "/usr/sbin/nologin"]).args(args);
        run_ok(useradd.arg(&name));
        let user = Self {
            name,
            password: format!("Pw-{}-{}", unique_suffix(), unique_suffix()),
        };
        chpasswd(&user.name, &user.password);
        user
    }
}

/// A random password set on an existing account (`chpasswd`) for one
/// test, for PAM logins as a user who has a home and may get a server;
/// on drop the account's previous `/etc/shadow` password field (for the
/// test users, `!`: no password login) is put back with `usermod -p`.
#[derive(Debug)]
pub struct TempPassword {
    user: String,
    previous: String,
    /// The password that now logs the user in.
    pub password: String,
}

impl TempPassword {
    /// Sets a random password on `user`, remembering the old field.
    pub fn set(user: &str) -> Self {
        let shadow = std::fs::read_to_string("/etc/shadow").expect("read /etc/shadow");
        let previous = shadow
            .lines()
            .find_map(|line| {
                let mut fields = line.split(':');
                (fields.next() == Some(user)).then(|| fields.next().unwrap_or("!").to_owned())
            })
            .unwrap_or_else(|| panic!("{user} has no line in /etc/shadow"));
        let password = format!("Pw-{}-{}", unique_suffix(), unique_suffix());
        chpasswd(user, &password);
        Self {
            user: user.to_owned(),
            previous,
            password,
        }
    }
}

impl Drop for TempPassword {
    fn drop(&mut self) {
        // Best effort in Drop (it may run during a panic); the next
        // `set` overwrites whatever is left.
        let _restored = Command::new("usermod")
            .args(["-p", &self.previous, &self.user])
            .output();
    }
}

/// Sets `user`'s password through `chpasswd`'s stdin (never a command
/// line); panics if it fails.
fn chpasswd(user: &str, password: &str) {
    let mut chpasswd = Command::new("chpasswd")
        .stdin(Stdio::piped())
        .spawn()
        .expect("run chpasswd");
    chpasswd
        .stdin
        .take()
        .expect("piped")
        .write_all(format!("{user}:{password}\n").as_bytes())
        .expect("write to chpasswd");
    assert!(
        chpasswd.wait().expect("wait for chpasswd").success(),
        "chpasswd failed"
    );
}

impl Drop for TempUser {
    fn drop(&mut self) {
        // Best effort in Drop (it may run during a panic).
        let _gone = Command::new("userdel").arg(&self.name).output();
    }
}
