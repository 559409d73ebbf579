//! Running the installed helper as the hub would: as the `jupyterhub`
//! account, through `sudo -nH -u USER /usr/local/bin/sudospawner`.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Once;

use nix::unistd::User;
use shared::helper::HelperResponse;

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
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ lives in the repository").to_path_buf()
}

/// True when the process runs as root. Otherwise prints, loudly, that
/// `test` was skipped and what it did not check, so a non-root run never
/// passes quietly; `tests/run` counts these lines in its summary.
pub fn require_root(test: &str, unchecked: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("SKIPPED (needs root): {test}: did not check {unchecked}");
    false
}

/// Makes sure the system is set up for the privileged tests, once per test
/// binary: the installed helper is this tree's release build, and the test
/// users exist (alice and bob in `jupyterhub-users`, the outsider not).
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
    });
}

/// Runs `command` and panics with its output unless it succeeds.
pub fn run_ok(command: &mut Command) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
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
    let account = User::from_name(user).ok().flatten().unwrap_or_else(|| panic!("no user {user}"));
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
