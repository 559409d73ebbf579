//! The installed `sudospawner` helper, driven through real sudo as the
//! `jupyterhub` account, with the installed configuration as it is
//! (`/etc/jhub/sudospawner.toml`, running the real
//! `/opt/jhub/venv/bin/jupyterhub-singleuser`).
//!
//! Every refusal is checked as the hub sees it (exit status, the exact
//! answer on stdout, its code and message) and for what it did not do: no
//! new process of the user, no write to the user's server log, no signal
//! delivered. Tests that rewrite the configuration live in
//! `privileged_config.rs`; these hold it unchanged with
//! [`installed_config`].

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use jhub_tests::privileged::*;
use serde_json::json;
use shared::helper::{ErrorCode, MAX_REQUEST_BYTES};

/// The server program the installed configuration names.
const REAL_SERVER: &str = "/opt/jhub/venv/bin/jupyterhub-singleuser";

fn kill_request(pid: i64, signal: i64) -> Vec<u8> {
    format!(r#"{{"action": "kill", "pid": {pid}, "signal": {signal}}}"#).into_bytes()
}

fn spawn_request(args: &[&str], env: &[(&str, &str)]) -> Vec<u8> {
    let env: serde_json::Map<String, serde_json::Value> =
        env.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    serde_json::to_vec(&json!({"action": "spawn", "args": args, "env": env})).unwrap()
}

/// A process started by the test itself (not through the helper), killed
/// and reaped on drop: something live to signal.
struct Sleeper(Child);

impl Sleeper {
    fn new(mut command: Command) -> Self {
        let child = command
            .arg("600")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sleep");
        Self(child)
    }

    fn of(user: &str) -> Self {
        Self::new(as_user(user, "/bin/sleep"))
    }

    fn of_root() -> Self {
        Self::new(Command::new("/bin/sleep"))
    }

    fn pid(&self) -> i32 {
        self.0.id() as i32
    }

    /// Running, and not stopped.
    fn assert_untouched(&mut self, context: &str) {
        assert!(
            self.0.try_wait().unwrap().is_none(),
            "{context}: pid {} was ended",
            self.pid()
        );
        let state = proc_stat(self.pid()).map(|s| s.state);
        assert!(
            matches!(state, Some('S' | 'R')),
            "{context}: pid {} is in state {state:?}",
            self.pid()
        );
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        // Best-effort cleanup; the process may already be gone.
        let _killed = self.0.kill();
        let _reaped = self.0.wait();
    }
}

fn server_log(user: &str) -> PathBuf {
    home(user).join(".jhub/logs/server.log")
}

fn home(user: &str) -> PathBuf {
    nix::unistd::User::from_name(user)
        .unwrap()
        .unwrap_or_else(|| panic!("no user {user}"))
        .dir
}

/// The length of the user's server log, which the helper appends to as
/// the first step of a spawn it accepted.
fn log_len(user: &str) -> Option<u64> {
    std::fs::metadata(server_log(user)).ok().map(|m| m.len())
}

/// Runs `input` through the helper for alice and asserts the refusal, and
/// that it started nothing: no new process of alice's, nothing appended to
/// her server log. The caller holds [`claim_user`] for alice.
fn assert_refused_quietly(input: &[u8], code: ErrorCode, needle: &str, context: &str) {
    let before = live_processes(ALICE);
    let log_before = log_len(ALICE);
    let run = helper(ALICE, input);
    eprintln!("{context}: {}", run.stdout);
    run.assert_refused(code, needle);
    assert_nothing_started(ALICE, &before, context);
    assert_eq!(
        log_len(ALICE),
        log_before,
        "{context}: the server log was written"
    );
}

#[test]
fn kill_polls_and_signals_the_users_own_process() {
    if !require_root(
        "kill_polls_and_signals_the_users_own_process",
        "that signal 0 reports a live process of the user and SIGTERM ends it",
    ) {
        return;
    }
    setup();
    let _config = installed_config();
    let _alice = claim_user(ALICE);
    let mut sleeper = Sleeper::of(ALICE);
    let pid = i64::from(sleeper.pid());

    let run = helper(ALICE, &kill_request(pid, 0));
    run.assert_answer(&helper_fixture("answer.alive-true.json"));
    sleeper.assert_untouched("signal 0");

    let run = helper(ALICE, &kill_request(pid, 15));
    run.assert_answer(r#"{"ok": true, "alive": true}"#);
    let status = sleeper.0.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(15),
        "not ended by SIGTERM: {status:?}"
    );

    let run = helper(ALICE, &kill_request(pid, 0));
    run.assert_answer(&helper_fixture("answer.alive-false.json"));
}

#[test]
fn kill_of_a_gone_pid_answers_not_alive() {
    if !require_root(
        "kill_of_a_gone_pid_answers_not_alive",
        "the answer for a pid that no longer exists",
    ) {
        return;
    }
    setup();
    let _config = installed_config();
    let mut gone = Command::new("/bin/true").spawn().unwrap();
    let pid = i64::from(gone.id());
    gone.wait().unwrap();
    for signal in [0, 2, 15, 9] {
        let run = helper(ALICE, &kill_request(pid, signal));
        run.assert_answer(&helper_fixture("answer.alive-false.json"));
    }
}

#[test]
fn kill_never_reaches_another_users_or_roots_process() {
    if !require_root(
        "kill_never_reaches_another_users_or_roots_process",
        "that the helper cannot signal processes of other users or root",
    ) {
        return;
    }
    setup();
    let _config = installed_config();
    let _alice = claim_user(ALICE);
    let _bob = claim_user(BOB);
    let mut alices = Sleeper::of(ALICE);
    let mut roots = Sleeper::of_root();
    let me = i64::from(std::process::id());

    for (target, pid, what) in [
        (BOB, alices.pid(), "alice's process, as bob"),
        (ALICE, roots.pid(), "root's process, as alice"),
    ] {
        for signal in [0, 15, 9] {
            // Like the Python mediator: not the user's means not alive.
            let run = helper(target, &kill_request(i64::from(pid), signal));
            run.assert_answer(r#"{"ok": true, "alive": false}"#);
            assert!(
                run.stderr.contains("permission denied"),
                "{what}: the refusal is not logged: {}",
                run.stderr
            );
        }
    }
    let run = helper(ALICE, &kill_request(me, 9));
    run.assert_answer(r#"{"ok": true, "alive": false}"#);
    alices.assert_untouched("after bob's signals");
    roots.assert_untouched("after alice's signals");
}

#[test]
fn kill_refuses_pids_and_signals_outside_the_policy() {
    if !require_root(
        "kill_refuses_pids_and_signals_outside_the_policy",
        "that pid 1, 0, negative pids and signals such as SIGSTOP are refused",
    ) {
        return;
    }
    setup();
    let _config = installed_config();
    let _alice = claim_user(ALICE);
    let mut sleeper = Sleeper::of(ALICE);
    let pid = i64::from(sleeper.pid());
    for (pid, signal, needle) in [
        (1, 0, "pid must be a process id above 1, got 1"),
        (1, 9, "above 1, got 1"),
        (0, 9, "above 1, got 0"),
        // kill(-1, 9) as alice would end every process of hers.
        (-1, 9, "above 1, got -1"),
        (-pid, 15, &format!("above 1, got -{pid}")),
        (1 << 40, 0, "above 1"),
        (pid, 19, "signal must be one of [0, 1, 2, 9, 15], got 19"),
        (pid, 64, "got 64"),
        (pid, -1, "got -1"),
    ] {
        let context = format!("pid {pid} signal {signal}");
        let run = helper(ALICE, &kill_request(pid, signal));
        run.assert_refused(ErrorCode::InvalidRequest, needle);
        sleeper.assert_untouched(&context);
    }
    assert!(proc_stat(1).is_some_and(|s| s.state != 'T'));
}

#[test]
fn malformed_requests_are_refused_and_start_nothing() {
    if !require_root(
        "malformed_requests_are_refused_and_start_nothing",
        "refusals of bad JSON, unknown actions, wrong types and unknown keys",
    ) {
        return;
    }
    setup();
    let _config = installed_config();
    let _alice = claim_user(ALICE);
    use ErrorCode::{InvalidJson, InvalidRequest};
    let cases: &[(&str, ErrorCode, &str)] = &[
        ("", InvalidJson, "EOF while parsing"),
        ("not json", InvalidJson, "expected one JSON object"),
        (r#"{"action": "spawn""#, InvalidJson, "EOF"),
        (
            r#"{"action": "kill", "pid": 2, "signal": 0} {"action": "spawn", "args": [], "env": {}}"#,
            InvalidJson,
            "trailing characters",
        ),
        ("[1]", InvalidRequest, "must be a JSON object"),
        ("null", InvalidRequest, "must be a JSON object"),
        (
            r#"{"action": "exec", "args": ["/bin/sh"]}"#,
            InvalidRequest,
            "unknown variant `exec`, expected `spawn` or `kill`",
        ),
        (r#"{"args": [], "env": {}}"#, InvalidRequest, "action"),
        (
            r#"{"action": "spawn", "args": [], "env": {}, "cmd": ["/bin/sh"]}"#,
            InvalidRequest,
            "unknown field `cmd`",
        ),
        (
            r#"{"action": "spawn", "args": [], "env": {}, "program": "/bin/sh"}"#,
            InvalidRequest,
            "unknown field `program`",
        ),
        (
            r#"{"action": "kill", "pid": 2, "signal": 0, "user": "root"}"#,
            InvalidRequest,
            "unknown field `user`",
        ),
        (
            r#"{"action": "spawn", "args": "--debug", "env": {}}"#,
            InvalidRequest,
            "invalid type",
        ),
        (
            r#"{"action": "spawn", "args": [], "env": {"JUPYTERHUB_X": 1}}"#,
            InvalidRequest,
            "invalid type: integer `1`, expected a string",
        ),
        (
            r#"{"action": "spawn", "args": [], "env": []}"#,
            InvalidRequest,
            "invalid type",
        ),
        (
            r#"{"action": "spawn", "args": []}"#,
            InvalidRequest,
            "missing field `env`",
        ),
        (
            r#"{"action": "kill", "pid": "2", "signal": 0}"#,
            InvalidRequest,
            "invalid type: string \"2\", expected i64",
        ),
        (
            r#"{"action": "kill", "pid": 2.5, "signal": 0}"#,
            InvalidRequest,
            "floating point",
        ),
        (
            r#"{"action": "kill", "pid": 2}"#,
            InvalidRequest,
            "missing field `signal`",
        ),
        (
            r#"{"action": "kill", "pid": 2, "pid": 3, "signal": 0}"#,
            InvalidRequest,
            "duplicate field `pid`",
        ),
        (
            r#"{"action": "spawn", "args": [], "env": {"JUPYTERHUB_X": "a\u0000b"}}"#,
            InvalidRequest,
            "NUL",
        ),
        (
            r#"{"action": "spawn", "args": [], "env": {"A=B": "x"}}"#,
            InvalidRequest,
            "is not an environment variable name",
        ),
    ];
    for (input, code, needle) in cases {
        assert_refused_quietly(input.as_bytes(), *code, needle, input);
    }
}

#[test]
fn oversized_input_is_refused_at_exactly_one_mebibyte() {
    if !require_root(
        "oversized_input_is_refused_at_exactly_one_mebibyte",
        "that stdin above 1 MiB is refused unread and 1 MiB exactly is accepted",
    ) {
        return;
    }
    setup();
    let _config = installed_config();
    let _alice = claim_user(ALICE);
    // A valid spawn that is too large: refused before it is parsed.
    let mut big = br#"{"action": "spawn", "args": [], "env": {"JUPYTERHUB_X": ""#.to_vec();
    big.resize(MAX_REQUEST_BYTES + 1 - 3, b'a');
    big.extend_from_slice(br#""}}"#);
    assert_eq!(big.len(), MAX_REQUEST_BYTES + 1);
    assert_refused_quietly(
        &big,
        ErrorCode::InputTooLarge,
        "request larger than 1048576 bytes",
        "1 MiB + 1",
    );
    // Much more than the limit: the helper stops reading, still answers.
    let mut huge = big.clone();
    huge.resize(8 * MAX_REQUEST_BYTES, b' ');
    assert_refused_quietly(&huge, ErrorCode::InputTooLarge, "larger than", "8 MiB");

    // The limit itself is allowed: a kill request padded to 1 MiB.
    let mut fits = kill_request(i64::from(i32::MAX), 0);
    fits.resize(MAX_REQUEST_BYTES, b' ');
    helper(ALICE, &fits).assert_answer(r#"{"ok": true, "alive": false}"#);
}

#[test]
fn disallowed_environment_is_refused_and_named_without_values() {
    if !require_root(
        "disallowed_environment_is_refused_and_named_without_values",
        "that LD_PRELOAD, PYTHONPATH and other names outside the allow-list refuse a spawn",
    ) {
        return;
    }
    setup();
    let _config = installed_config();
    let _alice = claim_user(ALICE);
    let secret = "/tmp/do-not-log-this-value";
    let ok = [("JUPYTERHUB_API_TOKEN", "t"), ("LANG", "C.UTF-8")];
    let run_case = |extra: &[(&str, &str)], named: &str| {
        let env: Vec<(&str, &str)> = ok.iter().chain(extra).copied().collect();
        let input = spawn_request(&[], &env);
        let before = live_processes(ALICE);
        let log_before = log_len(ALICE);
        let run = helper(ALICE, &input);
        run.assert_refused(
            ErrorCode::EnvNotAllowed,
            &format!("environment variables not allowed: {named}"),
        );
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "a value was echoed: {run:#?}"
        );
        assert_nothing_started(ALICE, &before, named);
        assert_eq!(log_len(ALICE), log_before, "{named}: the log was written");
        run
    };
    let run = run_case(
        &[("LD_PRELOAD", secret), ("PYTHONPATH", secret)],
        "LD_PRELOAD, PYTHONPATH",
    );
    assert_eq!(run.stdout, helper_fixture("answer.failure.json"));
    for name in [
        "LD_LIBRARY_PATH",
        "PYTHONHOME",
        "PYTHONSTARTUP",
        "BASH_ENV",
        "ENV",
        "PERL5OPT",
        "NODE_OPTIONS",
        "JUPYTER_CONFIG_DIR",
        "JUPYTER_PATH",
        "CONFIGPROXY_AUTH_TOKEN",
        "SUDO_USER",
        "jupyterhub_lowercase",
    ] {
        run_case(&[(name, secret)], name);
    }
}

#[test]
fn server_arguments_must_be_flags() {
    if !require_root(
        "server_arguments_must_be_flags",
        "that a spawn cannot pass a program, a script or a bare word as an argument",
    ) {
        return;
    }
    setup();
    let _config = installed_config();
    let _alice = claim_user(ALICE);
    for args in [
        &["/bin/sh"][..],
        &["-c", "id"],
        &["--debug", "/bin/sh"],
        &["--"],
        &["-"],
        &["notebook.ipynb"],
        &[""],
    ] {
        let first_bad = args
            .iter()
            .find(|a| !a.starts_with("--") || a.len() < 3)
            .unwrap();
        assert_refused_quietly(
            &spawn_request(args, &[]),
            ErrorCode::InvalidRequest,
            &format!("arguments must be flags (--name or --name=value), got {first_bad:?}"),
            &format!("{args:?}"),
        );
    }
    let many: Vec<&str> = std::iter::repeat_n("--x", 257).collect();
    assert_refused_quietly(
        &spawn_request(&many, &[]),
        ErrorCode::InvalidRequest,
        "at most 256 arguments",
        "257 arguments",
    );
}

#[test]
fn a_spawn_for_another_user_is_refused() {
    if !require_root(
        "a_spawn_for_another_user_is_refused",
        "that JUPYTERHUB_USER must name the user the helper runs as",
    ) {
        return;
    }
    setup();
    let _config = installed_config();
    let _alice = claim_user(ALICE);
    assert_refused_quietly(
        &spawn_request(&[], &[("JUPYTERHUB_USER", BOB)]),
        ErrorCode::UserMismatch,
        &format!("JUPYTERHUB_USER is {BOB:?} but this helper runs as {ALICE:?}"),
        "JUPYTERHUB_USER=bob for alice",
    );
}

#[test]
fn the_helper_refuses_to_run_as_root() {
    if !require_root(
        "the_helper_refuses_to_run_as_root",
        "that the helper run as root refuses before reading its request",
    ) {
        return;
    }
    setup();
    let _config = installed_config();
    let root_log = PathBuf::from("/root/.jhub/logs/server.log");
    let log_before = std::fs::metadata(&root_log).ok().map(|m| m.len());
    let servers_before = processes_running(REAL_SERVER);
    for input in [
        spawn_request(&[], &[]),
        kill_request(i64::from(i32::MAX), 0),
    ] {
        let run = helper_direct("root", &input);
        run.assert_refused(ErrorCode::RefusedRoot, "refusing to run as root");
    }
    assert_eq!(
        std::fs::metadata(&root_log).ok().map(|m| m.len()),
        log_before
    );
    assert!(
        processes_running(REAL_SERVER).is_subset(&servers_before),
        "a server was started"
    );
}

/// Pids of live processes whose command line mentions `program`.
fn processes_running(program: &str) -> BTreeSet<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            proc_cmdline(*pid).is_some_and(|c| c.iter().any(|a| a == program))
                && proc_stat(*pid).is_some_and(|s| s.state != 'Z')
        })
        .collect()
}

#[test]
fn only_the_hub_account_may_call_the_helper() {
    if !require_root(
        "only_the_hub_account_may_call_the_helper",
        "that callers other than jupyterhub through sudo are refused (wrong_caller)",
    ) {
        return;
    }
    setup();
    let _config = installed_config();
    let _alice = claim_user(ALICE);
    let spawn = spawn_request(&[], &[]);

    // The user runs it herself, without sudo.
    let before = live_processes(ALICE);
    let run = helper_direct(ALICE, &spawn);
    run.assert_refused(ErrorCode::WrongCaller, "not run through sudo");
    assert_nothing_started(ALICE, &before, "alice without sudo");

    // Root, through sudo: sudo allows it, the helper does not.
    let mut command = Command::new("sudo");
    command
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .args(["-nH", "-u", ALICE, HELPER_PATH]);
    let run = run_with_input(command, &spawn);
    run.assert_refused(
        ErrorCode::WrongCaller,
        r#"only "jupyterhub" may run this helper; it was run by "root""#,
    );
    assert_nothing_started(ALICE, &before, "root through sudo");

    // Another account that an admin (wrongly) allowed in sudoers.
    {
        let _rule = SudoersDropIn::install(
            "jhub-test-wrong-caller",
            &format!("{OUTSIDER} ALL=({ALICE}) NOPASSWD: {HELPER_PATH}\n"),
        );
        let run = helper_as(OUTSIDER, ALICE, &spawn);
        run.assert_refused(
            ErrorCode::WrongCaller,
            &format!("it was run by {OUTSIDER:?}"),
        );
        assert_nothing_started(ALICE, &before, "the outsider through sudo");
    }
    // With the rule gone, sudo itself refuses the outsider.
    let run = helper_as(OUTSIDER, ALICE, &spawn);
    assert!(!run.status.success() && run.stdout.is_empty(), "{run:#?}");
    assert!(run.stderr.contains("sudo:"), "{run:#?}");
    assert_nothing_started(ALICE, &before, "the outsider without the rule");
}

#[test]
fn sudo_refuses_targets_outside_jupyterhub_users() {
    if !require_root(
        "sudo_refuses_targets_outside_jupyterhub_users",
        "that the hub cannot run the helper as a user outside jupyterhub-users, root or itself",
    ) {
        return;
    }
    setup();
    let _config = installed_config();
    let _outsider = claim_user(OUTSIDER);
    for target in [OUTSIDER, "root", HUB_USER] {
        let before = live_processes(target);
        let run = helper(target, &spawn_request(&[], &[]));
        // sudo's refusal: its own message, no JSON, a non-zero exit. (For
        // the hub's own account sudo says "not allowed" instead of asking.)
        assert_eq!(run.status.code(), Some(1), "{target}: {run:#?}");
        assert_eq!(run.stdout, "", "{target}");
        assert!(
            run.stderr.contains("sudo: a password is required")
                || run.stderr.contains(&format!(
                    "Sorry, user {HUB_USER} is not allowed to execute '{HELPER_PATH} --logging=DEBUG' as {target}"
                )),
            "{target}: {}",
            run.stderr
        );
        assert!(
            !run.stderr.contains("sudospawner:"),
            "the helper ran: {run:#?}"
        );
        if target == OUTSIDER {
            assert_nothing_started(target, &before, target);
        }
    }
}

#[test]
fn unknown_helper_arguments_are_usage_errors() {
    if !require_root(
        "unknown_helper_arguments_are_usage_errors",
        "that the helper's own command line takes nothing but --logging=LEVEL",
    ) {
        return;
    }
    setup();
    let _config = installed_config();
    let _alice = claim_user(ALICE);
    let before = live_processes(ALICE);
    for (arg, needle) in [
        (
            "/bin/sh",
            "unknown argument \"/bin/sh\"; expected --logging=LEVEL",
        ),
        (
            "--config=/tmp/evil.toml",
            "unknown argument \"--config=/tmp/evil.toml\"",
        ),
        ("--logging=LOUD", "unknown log level \"LOUD\""),
    ] {
        let mut command = as_user(HUB_USER, "sudo");
        command.args(["-nH", "-u", ALICE, HELPER_PATH, arg]);
        let run = run_with_input(command, &spawn_request(&[], &[]));
        run.assert_refused(ErrorCode::Usage, needle);
        assert_nothing_started(ALICE, &before, arg);
    }
    // The upstream flag passes.
    let mut command = as_user(HUB_USER, "sudo");
    command.args(["-nH", "-u", ALICE, HELPER_PATH, "--logging=INFO"]);
    run_with_input(command, &kill_request(i64::from(i32::MAX), 0))
        .assert_answer(r#"{"ok": true, "alive": false}"#);
}

#[test]
fn real_singleuser_runs_from_the_config_whatever_the_caller_sends() {
    if !require_root(
        "real_singleuser_runs_from_the_config_whatever_the_caller_sends",
        "that the configured jupyterhub-singleuser runs (not one on the caller's PATH) and that its failure without the hub's environment reaches its log",
    ) {
        return;
    }
    setup();
    let _config = installed_config();
    let _alice = claim_user(ALICE);
    let config = std::fs::read_to_string(CONFIG_PATH).unwrap();
    assert!(
        config.contains(&format!("command = [\"{REAL_SERVER}\"]")),
        "this test expects the installed configuration to run {REAL_SERVER}:\n{config}"
    );

    // A directory the caller controls, with its own jupyterhub-singleuser.
    let evil = tempfile::Builder::new()
        .prefix("jhub-test-evil")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(evil.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let marker = evil.path().join("ran");
    let impostor = evil.path().join("jupyterhub-singleuser");
    std::fs::write(
        &impostor,
        format!("#!/bin/sh\ntouch {}\nexec sleep 600\n", marker.display()),
    )
    .unwrap();
    std::fs::set_permissions(&impostor, std::fs::Permissions::from_mode(0o755)).unwrap();
    let evil_path = evil.path().to_str().unwrap();

    let log_start = log_len(ALICE).unwrap_or(0);
    let before = live_processes(ALICE);
    let run = helper(
        ALICE,
        &spawn_request(
            &["--debug"],
            &[
                ("PATH", evil_path),
                ("HOME", evil_path),
                ("USER", "root"),
                ("SHELL", &impostor.display().to_string()),
                ("LOGNAME", "root"),
                ("LANG", "C.UTF-8"),
            ],
        ),
    );
    // jupyterhub-singleuser needs JUPYTERHUB_SERVICE_URL and the rest of the
    // hub's environment, and exits with a KeyError once its extensions
    // load: on this machine that takes longer than the helper's first
    // second, so the spawn answers a pid that dies soon after. A machine
    // fast enough to fail within the first second gets server_exited with
    // the same lines; both are the real program failing visibly.
    match &run.response {
        Some(r) if r.ok => {
            let server = Server::from_answer(ALICE, &run);
            eventually(
                "the real server to exit without the hub's environment",
                || (!server.running()).then_some(()),
            );
            let run = helper(ALICE, &kill_request(i64::from(server.pid), 0));
            run.assert_answer(r#"{"ok": true, "alive": false}"#);
        }
        _ => run.assert_refused(
            ErrorCode::ServerExited,
            "Missing required environment $JUPYTERHUB_SERVICE_URL",
        ),
    }
    assert!(
        run.stderr
            .contains(&format!("spawning {REAL_SERVER} for {ALICE}")),
        "{run:#?}"
    );
    let log = std::fs::read(server_log(ALICE)).unwrap();
    let log = String::from_utf8_lossy(&log[log_start as usize..]).into_owned();
    assert!(
        log.contains(&format!("sudospawner: started {REAL_SERVER} as pid")),
        "{log}"
    );
    assert!(
        log.contains("Missing required environment $JUPYTERHUB_SERVICE_URL"),
        "{log}"
    );
    assert!(!marker.exists(), "the caller's program ran");
    eventually("alice's processes to be back to what they were", || {
        live_processes(ALICE).is_subset(&before).then_some(())
    });
}
