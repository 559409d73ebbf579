//! The installed `sudospawner` helper, driven through real sudo as the
//! `jupyterhub` account, with `/etc/jhub/sudospawner.toml` replaced for the
//! test: the only way to choose the server program is to be root and write
//! that file, so each test here takes it exclusively with [`ConfigGuard`]
//! (an flock shared with every test that relies on the installed file),
//! writes what it needs, and the guard restores the original on drop.
//!
//! Most tests run the stand-in server [`FAKE_SERVER`] (root-owned, installed
//! by `setup`) and look at it from outside, through `/proc`: who it runs as,
//! where, with which descriptors, limits and environment, and how it ends.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use jhub_tests::privileged::*;
use serde_json::{Value, json};
use shared::helper::ErrorCode;

/// The limits the stand-in's configuration sets, chosen to differ from any
/// default so that seeing them proves the helper set them.
const ADDRESS_SPACE: u64 = 2 << 30;
const PROCESSES: u64 = 3000;
const OPEN_FILES: u64 = 321;
/// A name the stand-in's configuration adds to the allow-list.
const EXTRA_ALLOWED: &str = "JHUB_TEST_ALLOWED";

fn fake_config() -> String {
    format!(
        r#"hub_user = "{HUB_USER}"
command = ["{FAKE_SERVER}", "--set-by-config"]
env_allow = ["{EXTRA_ALLOWED}"]
[limits]
address_space = {ADDRESS_SPACE}
processes = {PROCESSES}
open_files = {OPEN_FILES}
"#
    )
}

fn kill_request(pid: i32, signal: i64) -> Vec<u8> {
    format!(r#"{{"action": "kill", "pid": {pid}, "signal": {signal}}}"#).into_bytes()
}

fn spawn_request(args: &[&str], env: &[(&str, &str)]) -> Vec<u8> {
    let env: serde_json::Map<String, Value> =
        env.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    serde_json::to_vec(&json!({"action": "spawn", "args": args, "env": env})).unwrap()
}

fn home(user: &str) -> PathBuf {
    nix::unistd::User::from_name(user).unwrap().unwrap().dir
}

fn server_log(user: &str) -> PathBuf {
    home(user).join(".jhub/logs/server.log")
}

fn log_len(user: &str) -> u64 {
    std::fs::metadata(server_log(user))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// What was appended to the user's server log since `start`.
fn log_since(user: &str, start: u64) -> String {
    let bytes = std::fs::read(server_log(user)).unwrap_or_default();
    String::from_utf8_lossy(bytes.get(start as usize..).unwrap_or_default()).into_owned()
}

fn id(args: &[&str]) -> String {
    run_ok(Command::new("id").args(args)).trim().to_owned()
}

/// Waits until the stand-in server says it is ready in its log (it prints
/// that after its own start-up), and returns the log since `start`.
fn wait_ready(user: &str, start: u64) -> String {
    eventually("the stand-in server to report ready in its log", || {
        let log = log_since(user, start);
        log.contains("fake-server: ready").then_some(log)
    })
}

/// Spawns through the helper as the hub would and returns the running
/// server, checking the answer is exactly `{"ok": true, "pid": N}`.
fn spawn(user: &str, input: &[u8]) -> (Server, HelperRun) {
    let run = helper(user, input);
    (Server::from_answer(user, &run), run)
}

#[test]
fn spawned_server_runs_as_the_user_detached_and_confined() {
    if !require_root(
        "spawned_server_runs_as_the_user_detached_and_confined",
        "the spawned server's ids, groups, cwd, session, descriptors, limits and environment (from the real JupyterHub 6.1.1 request)",
    ) {
        return;
    }
    setup();
    let _config = ConfigGuard::replace(&fake_config());
    let _alice = claim_user(ALICE);
    let start = log_len(ALICE);
    // The request exactly as JupyterHub 6.1.1's SudoSpawner writes it.
    let request = helper_fixture("request.spawn.jupyterhub-6.1.1.json");
    let (server, run) = spawn(ALICE, request.as_bytes());
    let pid = server.pid;
    let log = wait_ready(ALICE, start);

    // Who: the user's uid, primary gid and supplementary groups, all four
    // ids (real, effective, saved, filesystem).
    let uid = id(&["-u", ALICE]);
    let gid = id(&["-g", ALICE]);
    assert_eq!(
        proc_status(pid, "Uid").unwrap(),
        [uid.as_str(); 4].join("\t")
    );
    assert_eq!(
        proc_status(pid, "Gid").unwrap(),
        [gid.as_str(); 4].join("\t")
    );
    let groups = |s: &str| {
        let mut g: Vec<String> = s.split_whitespace().map(str::to_owned).collect();
        g.sort();
        g
    };
    assert_eq!(
        groups(&proc_status(pid, "Groups").unwrap()),
        groups(&id(&["-G", ALICE]))
    );
    // The server's own `id` says the same as the user database.
    assert!(
        log.contains(&format!("fake-server: id: {}\n", id(&[ALICE]))),
        "{log}"
    );

    // Where: the user's home, in a session and process group of its own,
    // below the monitor (which runs as the user too, in its own session).
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap(),
        home(ALICE)
    );
    assert!(log.contains(&format!("fake-server: cwd: {}\n", home(ALICE).display())));
    let stat = server.stat;
    assert_eq!((stat.session, stat.pgrp), (pid, pid), "{stat:?}");
    let monitor = stat.ppid;
    let monitor_stat = proc_stat(monitor).unwrap();
    assert_eq!(monitor_stat.session, monitor, "{monitor_stat:?}");
    assert_eq!(
        proc_status(monitor, "Uid").unwrap(),
        [uid.as_str(); 4].join("\t")
    );
    assert_eq!(proc_cmdline(monitor).unwrap()[0], HELPER_PATH);
    // The monitor, which only reaps from now on, is under its seccomp
    // policy (mode 2: filter); the server is not (below).
    eventually("the monitor's seccomp filter", || {
        (proc_status(monitor, "Seccomp")? == "2").then_some(())
    });
    assert_eq!(proc_status(monitor, "NoNewPrivs").unwrap(), "1");

    // What: the configured program with the configured flag, then the
    // caller's, and nothing else.
    assert_eq!(
        proc_cmdline(pid).unwrap(),
        [
            "/usr/bin/python3",
            "-IS",
            FAKE_SERVER,
            "--set-by-config",
            "--debug"
        ]
    );

    // Descriptors: stdin from /dev/null, stdout and stderr to the user's
    // log, nothing inherited beyond them.
    let log_path = server_log(ALICE);
    let expected_fds: BTreeMap<i32, PathBuf> = [
        (0, PathBuf::from("/dev/null")),
        (1, log_path.clone()),
        (2, log_path.clone()),
    ]
    .into();
    assert_eq!(proc_fds(pid).unwrap(), expected_fds);
    // The log and its directories are the user's alone.
    for (path, mode) in [
        (home(ALICE).join(".jhub"), 0o700),
        (home(ALICE).join(".jhub/logs"), 0o700),
        (log_path.clone(), 0o600),
    ] {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o7777, mode, "{}", path.display());
        assert_eq!(meta.uid().to_string(), uid, "{}", path.display());
    }

    // Limits: the configuration's, soft and hard.
    for (name, value) in [
        ("Max address space", ADDRESS_SPACE),
        ("Max processes", PROCESSES),
        ("Max open files", OPEN_FILES),
    ] {
        let v = value.to_string();
        assert_eq!(proc_limit(pid, name).unwrap(), (v.clone(), v), "{name}");
    }
    // No seccomp filter and no no_new_privs: setuid programs (sudo, passwd)
    // keep working in the user's terminals.
    assert_eq!(proc_status(pid, "Seccomp").unwrap(), "0");
    assert_eq!(proc_status(pid, "NoNewPrivs").unwrap(), "0");

    // Environment: everything JupyterHub sent that the allow-list admits,
    // PATH, HOME, USER, SHELL and LOGNAME from the helper, nothing else
    // (nothing of sudo's, nothing of the hub's).
    let sent: BTreeMap<String, String> =
        match serde_json::from_str::<Value>(&request).unwrap()["env"].clone() {
            Value::Object(env) => env
                .into_iter()
                .map(|(k, v)| (k, v.as_str().unwrap().to_owned()))
                .collect(),
            other => panic!("{other}"),
        };
    let mut expected: BTreeMap<String, String> = sent
        .iter()
        .filter(|(k, _)| !["PATH", "HOME", "USER", "SHELL"].contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in [
        (
            "PATH",
            "/usr/local/lib/jhub-test:/usr/local/bin:/usr/bin:/bin",
        ),
        ("HOME", &home(ALICE).display().to_string()),
        ("USER", ALICE),
        ("LOGNAME", ALICE),
        ("SHELL", "/bin/bash"),
    ] {
        expected.insert(k.into(), v.into());
    }
    assert_eq!(proc_environ(pid).unwrap(), expected);

    // The token never reaches a log.
    let token = &sent["JUPYTERHUB_API_TOKEN"];
    assert!(!run.stderr.contains(token.as_str()), "{}", run.stderr);
    assert!(!log_since(ALICE, start).contains(&format!("={token}")));
}

#[test]
fn the_caller_cannot_set_path_home_user_shell_or_other_names() {
    if !require_root(
        "the_caller_cannot_set_path_home_user_shell_or_other_names",
        "that the server's PATH, HOME, USER, SHELL and LOGNAME are the helper's and env_allow is honoured",
    ) {
        return;
    }
    setup();
    let _config = ConfigGuard::replace(&fake_config());
    let _alice = claim_user(ALICE);
    let (server, _run) = spawn(
        ALICE,
        &spawn_request(
            &[],
            &[
                ("PATH", "/tmp/evil"),
                ("HOME", "/tmp"),
                ("USER", "root"),
                ("SHELL", "/tmp/evil/sh"),
                ("LOGNAME", "root"),
                (EXTRA_ALLOWED, "yes"),
                ("LC_ALL", "C.UTF-8"),
                ("JPY_API_TOKEN", "t"),
            ],
        ),
    );
    let env = proc_environ(server.pid).unwrap();
    let expected: BTreeMap<String, String> = [
        (
            "PATH",
            "/usr/local/lib/jhub-test:/usr/local/bin:/usr/bin:/bin",
        ),
        ("HOME", &home(ALICE).display().to_string()),
        ("USER", ALICE),
        ("LOGNAME", ALICE),
        ("SHELL", "/bin/bash"),
        (EXTRA_ALLOWED, "yes"),
        ("LC_ALL", "C.UTF-8"),
        ("JPY_API_TOKEN", "t"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(env, expected);
    drop(server);

    // A name neither built in nor configured is still refused.
    let before = live_processes(ALICE);
    let run = helper(
        ALICE,
        &spawn_request(&[], &[(EXTRA_ALLOWED, "yes"), ("JHUB_TEST_OTHER", "x")]),
    );
    run.assert_refused(
        ErrorCode::EnvNotAllowed,
        "environment variables not allowed: JHUB_TEST_OTHER",
    );
    assert_nothing_started(ALICE, &before, "JHUB_TEST_OTHER");
}

#[test]
fn a_server_lives_until_signalled_and_is_reaped() {
    if !require_root(
        "a_server_lives_until_signalled_and_is_reaped",
        "that a spawned server answers signal 0, ends on SIGTERM and is reaped, leaving nothing",
    ) {
        return;
    }
    setup();
    let _config = ConfigGuard::replace(&fake_config());
    let _alice = claim_user(ALICE);
    let before = live_processes(ALICE);
    let start = log_len(ALICE);
    let (server, _run) = spawn(ALICE, &spawn_request(&["--mode=sleep"], &[]));
    let pid = server.pid;
    let monitor = server.stat.ppid;
    let monitor_stat = proc_stat(monitor).unwrap();
    wait_ready(ALICE, start);
    assert_eq!(
        live_processes(ALICE)
            .difference(&before)
            .copied()
            .collect::<BTreeSet<_>>(),
        [monitor, pid].into(),
        "the monitor and the server, nothing else"
    );

    let alive_true = helper_fixture("answer.alive-true.json");
    let alive_false = helper_fixture("answer.alive-false.json");
    for _ in 0..3 {
        helper(ALICE, &kill_request(pid, 0)).assert_answer(&alive_true);
    }
    assert!(server.running());

    helper(ALICE, &kill_request(pid, 15)).assert_answer(&alive_true);
    // Poll as the hub does until the helper reports it gone. A zombie
    // would still answer alive (kill(2) succeeds on it), so this also
    // says the monitor reaped it; /proc agrees.
    eventually("the helper to report the server not alive", || {
        let run = helper(ALICE, &kill_request(pid, 0));
        (run.stdout != alive_true).then_some(run)
    })
    .assert_answer(&alive_false);
    assert!(
        proc_stat(pid).is_none_or(|s| s.start_time != server.stat.start_time),
        "the server is still in /proc: {:?}",
        proc_stat(pid)
    );
    // The monitor exits once it has nothing left to reap (a zombie until
    // whoever adopted it reaps it; see the harness docs).
    eventually("the monitor to exit", || {
        (!still_running(monitor, &monitor_stat)).then_some(())
    });
    eventually(
        "alice's live processes to be back to what they were",
        || (live_processes(ALICE) == before).then_some(()),
    );
    let log = log_since(ALICE, start);
    assert!(
        log.contains(&format!(
            "sudospawner: server pid {pid} was killed by SIGTERM"
        )),
        "{log}"
    );
}

#[test]
fn another_users_server_cannot_be_signalled() {
    if !require_root(
        "another_users_server_cannot_be_signalled",
        "that the helper run for alice cannot signal bob's server",
    ) {
        return;
    }
    setup();
    let _config = ConfigGuard::replace(&fake_config());
    let _alice = claim_user(ALICE);
    let _bob = claim_user(BOB);
    let (bobs, _run) = spawn(BOB, &spawn_request(&[], &[]));
    for signal in [0, 2, 9, 15] {
        helper(ALICE, &kill_request(bobs.pid, signal))
            .assert_answer(r#"{"ok": true, "alive": false}"#);
    }
    assert!(bobs.running(), "alice's helper ended bob's server");
    helper(BOB, &kill_request(bobs.pid, 0)).assert_answer(r#"{"ok": true, "alive": true}"#);
    helper(BOB, &kill_request(bobs.pid, 9)).assert_answer(r#"{"ok": true, "alive": true}"#);
    eventually("bob's server to end on SIGKILL", || {
        (!bobs.running()).then_some(())
    });
}

#[test]
fn server_output_never_reaches_the_answer() {
    if !require_root(
        "server_output_never_reaches_the_answer",
        "that a server flooding stdout and stderr with JSON cannot corrupt the helper's answer",
    ) {
        return;
    }
    setup();
    let _config = ConfigGuard::replace(&fake_config());
    let _alice = claim_user(ALICE);
    let start = log_len(ALICE);
    let (server, run) = spawn(ALICE, &spawn_request(&["--mode=noisy"], &[]));
    // spawn() checked stdout is exactly {"ok": true, "pid": N}.
    assert!(!run.stderr.contains("noise"), "{}", run.stderr);
    let log = wait_ready(ALICE, start);
    assert!(
        log.matches(r#"{"ok": false, "error": "noise"}"#).count() >= 2 * 2048,
        "the noise did not reach the log"
    );
    drop(server);
}

#[test]
fn a_server_that_exits_in_its_first_second_is_reported() {
    if !require_root(
        "a_server_that_exits_in_its_first_second_is_reported",
        "that a server ending within its first second gives server_exited with the last lines of its log",
    ) {
        return;
    }
    setup();
    let _config = ConfigGuard::replace(&fake_config());
    let _alice = claim_user(ALICE);
    for code in [3, 0] {
        let before = live_processes(ALICE);
        let run = helper(
            ALICE,
            &spawn_request(
                &["--mode=exit", &format!("--exit-code={code}"), "--lines=30"],
                &[],
            ),
        );
        run.assert_refused(
            ErrorCode::ServerExited,
            &format!(
                "{FAKE_SERVER} exited with status {code} within its first second; last lines of {}:\n",
                server_log(ALICE).display()
            ),
        );
        // The last 20 lines of the log, and not the ones before them.
        let error = run.response.as_ref().unwrap().error.clone().unwrap();
        let lines: Vec<&str> = error.lines().collect();
        assert!(lines.contains(&"fake-server: line 30"), "{error}");
        assert!(lines.contains(&"fake-server: line 11"), "{error}");
        assert!(!lines.contains(&"fake-server: line 10"), "{error}");
        // Nothing is left: the monitor reaped the server, the helper the
        // monitor.
        assert_nothing_started(ALICE, &before, &format!("exit {code}"));
    }
}

#[test]
fn the_real_server_failing_at_once_is_reported_with_its_log() {
    if !require_root(
        "the_real_server_failing_at_once_is_reported_with_its_log",
        "that the real jupyterhub-singleuser failing at start (here: under a tiny address-space limit) gives server_exited with its own last lines",
    ) {
        return;
    }
    setup();
    let program = "/opt/jhub/venv/bin/jupyterhub-singleuser";
    let _config = ConfigGuard::replace(&format!(
        "command = [\"{program}\"]\n[limits]\naddress_space = \"32M\"\n"
    ));
    let _alice = claim_user(ALICE);
    let before = live_processes(ALICE);
    let run = helper(
        ALICE,
        &spawn_request(&[], &[("JUPYTERHUB_USER", ALICE), ("LANG", "C.UTF-8")]),
    );
    run.assert_refused(
        ErrorCode::ServerExited,
        &format!("{program} exited with status 1"),
    );
    run.assert_refused(ErrorCode::ServerExited, "MemoryError");
    assert_nothing_started(ALICE, &before, "the real server under 32M");
}

#[test]
fn limits_above_the_users_hard_limit_are_refused() {
    if !require_root(
        "limits_above_the_users_hard_limit_are_refused",
        "that a configured limit the user could not take is refused rather than silently lowered",
    ) {
        return;
    }
    setup();
    let _config = ConfigGuard::replace(&format!(
        "command = [\"{FAKE_SERVER}\"]\n[limits]\nopen_files = {}\n",
        u64::MAX / 2
    ));
    let _alice = claim_user(ALICE);
    let before = live_processes(ALICE);
    let run = helper(ALICE, &spawn_request(&[], &[]));
    run.assert_refused(ErrorCode::BadConfig, "limits.open_files");
    run.assert_refused(ErrorCode::BadConfig, "is above this user's hard limit");
    assert_nothing_started(ALICE, &before, "open_files above the hard limit");
}

#[test]
fn without_a_configured_command_the_server_is_only_looked_for_beside_the_helper() {
    if !require_root(
        "without_a_configured_command_the_server_is_only_looked_for_beside_the_helper",
        "that an empty command means jupyterhub-singleuser in the helper's own directory, never one on PATH",
    ) {
        return;
    }
    setup();
    let beside = Path::new(HELPER_PATH).with_file_name("jupyterhub-singleuser");
    assert!(
        !beside.exists(),
        "{} exists; this test expects it not to",
        beside.display()
    );
    let _config = ConfigGuard::replace("command = []\n");
    let _alice = claim_user(ALICE);
    let before = live_processes(ALICE);
    let run = helper(
        ALICE,
        &spawn_request(&[], &[("PATH", "/opt/jhub/venv/bin:/usr/bin:/bin")]),
    );
    run.assert_refused(
        ErrorCode::SpawnFailed,
        &format!(
            "cannot start {}: No such file or directory",
            beside.display()
        ),
    );
    assert_nothing_started(ALICE, &before, "no command configured");
}

#[test]
fn a_config_anyone_but_root_can_change_is_refused() {
    if !require_root(
        "a_config_anyone_but_root_can_change_is_refused",
        "that the helper refuses a configuration (or its directory) that is not root-owned or is group/world writable, a symlinked or invalid one",
    ) {
        return;
    }
    setup();
    let guard = ConfigGuard::replace(&fake_config());
    let _alice = claim_user(ALICE);
    let config = Path::new(CONFIG_PATH);
    let dir = Path::new("/etc/jhub");
    let hub_uid = uid_of(HUB_USER);
    let alice_uid = uid_of(ALICE);
    let chmod = |p: &Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    let chown = |p: &Path, uid: u32| std::os::unix::fs::chown(p, Some(uid), None).unwrap();
    let link_target = "/etc/jhub/sudospawner-test-target.toml";

    type Setup<'a> = Box<dyn Fn() + 'a>;
    let cases: Vec<(&str, Setup, ErrorCode, String)> = vec![
        (
            "group-writable file",
            Box::new(|| chmod(config, 0o664)),
            ErrorCode::InsecureConfig,
            format!("refusing to run: {CONFIG_PATH} is writable by group or others"),
        ),
        (
            "world-writable file",
            Box::new(|| chmod(config, 0o646)),
            ErrorCode::InsecureConfig,
            format!("{CONFIG_PATH} is writable by group or others"),
        ),
        (
            "file owned by the user",
            Box::new(|| chown(config, alice_uid)),
            ErrorCode::InsecureConfig,
            format!("{CONFIG_PATH} is not owned by root"),
        ),
        (
            "file owned by the hub account",
            Box::new(|| chown(config, hub_uid)),
            ErrorCode::InsecureConfig,
            format!("{CONFIG_PATH} is not owned by root"),
        ),
        (
            "directory owned by the hub account",
            Box::new(|| chown(dir, hub_uid)),
            ErrorCode::InsecureConfig,
            "refusing to run: /etc/jhub is not owned by root".into(),
        ),
        (
            "world-writable directory",
            Box::new(|| chmod(dir, 0o777)),
            ErrorCode::InsecureConfig,
            "/etc/jhub is writable by group or others".into(),
        ),
        (
            "symbolic link to a root-owned file",
            Box::new(|| {
                write_root_file(Path::new(link_target), fake_config().as_bytes(), 0o644);
                std::fs::remove_file(config).unwrap();
                std::os::unix::fs::symlink(link_target, config).unwrap();
            }),
            ErrorCode::BadConfig,
            format!("cannot open {CONFIG_PATH}"),
        ),
        (
            "unknown key",
            Box::new(|| guard.write(&format!("{}\nprogram = \"/bin/sh\"\n", fake_config()))),
            ErrorCode::BadConfig,
            "unknown field `program`".into(),
        ),
        (
            "relative command",
            Box::new(|| guard.write("command = [\"sh\"]\n")),
            ErrorCode::BadConfig,
            "command must start with an absolute path, got \"sh\"".into(),
        ),
        (
            "env_allow opening LD_PRELOAD",
            Box::new(|| guard.write("env_allow = [\"LD_*\"]\n")),
            ErrorCode::BadConfig,
            "would allow LD_".into(),
        ),
    ];
    for (what, make_insecure, code, needle) in cases {
        make_insecure();
        let before = live_processes(ALICE);
        let log_before = log_len(ALICE);
        for input in [spawn_request(&[], &[]), kill_request(i32::MAX, 0)] {
            let run = helper(ALICE, &input);
            eprintln!("{what}: {}", run.stdout);
            run.assert_refused(code, &needle);
        }
        assert_nothing_started(ALICE, &before, what);
        assert_eq!(
            log_len(ALICE),
            log_before,
            "{what}: the server log was written"
        );
        // Back to a good configuration and directory for the next case.
        chown(dir, 0);
        chmod(dir, 0o755);
        guard.write(&fake_config());
    }
    let _removed = std::fs::remove_file(link_target);
    // The good configuration is accepted: the refusals were the cases'.
    helper(ALICE, &kill_request(i32::MAX, 0)).assert_answer(r#"{"ok": true, "alive": false}"#);
}

#[test]
fn answers_are_byte_identical_to_the_python_mediators() {
    if !require_root(
        "answers_are_byte_identical_to_the_python_mediators",
        "the helper's stdout against the golden answers written by the Python mediator",
    ) {
        return;
    }
    setup();
    let _config = ConfigGuard::replace(&fake_config());
    let _alice = claim_user(ALICE);
    let (server, run) = spawn(ALICE, &spawn_request(&[], &[]));
    assert_eq!(
        run.stdout,
        helper_fixture("answer.spawned.json").replace("4242", &server.pid.to_string())
    );
    helper(ALICE, &kill_request(server.pid, 0))
        .assert_answer(&helper_fixture("answer.alive-true.json"));
    drop(server);
    let run = helper(ALICE, &spawn_request(&["café"], &[]));
    assert_eq!(run.stdout, helper_fixture("answer.failure-non-ascii.json"));
    assert_eq!(run.status.code(), Some(2));
    let run = helper(
        ALICE,
        &spawn_request(&[], &[("LD_PRELOAD", "x"), ("PYTHONPATH", "y")]),
    );
    assert_eq!(run.stdout, helper_fixture("answer.failure.json"));
}

#[test]
fn descriptors_the_caller_leaks_never_reach_the_server() {
    if !require_root(
        "descriptors_the_caller_leaks_never_reach_the_server",
        "that descriptors the caller passes through sudo (closefrom_override, sudo -C) are closed before the server runs",
    ) {
        return;
    }
    setup();
    let _config = ConfigGuard::replace(&fake_config());
    let _alice = claim_user(ALICE);
    // Let the hub's account keep descriptors open across sudo, as a
    // careless sudoers configuration would.
    let _rule = SudoersDropIn::install(
        "jhub-test-closefrom",
        &format!("Defaults:{HUB_USER} closefrom_override\n"),
    );
    let mut command = as_user(HUB_USER, "/bin/sh");
    command.args([
        "-c",
        r#"exec 3</etc/hostname 4</etc/hostname 5</etc/hostname; exec sudo -C 6 -nH -u "$1" "$2" --logging=DEBUG"#,
        "sh",
        ALICE,
        HELPER_PATH,
    ]);
    let run = run_with_input(command, &spawn_request(&[], &[]));
    let server = Server::from_answer(ALICE, &run);
    let fds = proc_fds(server.pid).unwrap();
    assert_eq!(
        fds.keys().copied().collect::<Vec<_>>(),
        [0, 1, 2],
        "the server inherited {fds:?}"
    );
    // Nor does the monitor, which lives as long as the server (an earlier
    // helper kept all three open in it).
    let monitor = proc_fds(server.stat.ppid).unwrap();
    assert!(
        !monitor.values().any(|p| p == Path::new("/etc/hostname")),
        "the monitor kept the caller's descriptors: {monitor:?}"
    );
    drop(server);
}

#[test]
fn each_server_logs_to_a_private_file_of_its_own() {
    if !require_root(
        "each_server_logs_to_a_private_file_of_its_own",
        "that a named server logs to ~/.jhub/logs/server-NAME.log and that loose log directories are tightened to 0700",
    ) {
        return;
    }
    setup();
    let _config = ConfigGuard::replace(&fake_config());
    let _alice = claim_user(ALICE);
    let jhub = home(ALICE).join(".jhub");
    let logs = jhub.join("logs");
    // Directories the user (or an older version) left open to everyone.
    run_ok(as_user(ALICE, "/bin/mkdir").args(["-p"]).arg(&logs));
    for dir in [&jhub, &logs] {
        run_ok(as_user(ALICE, "/bin/chmod").arg("0777").arg(dir));
    }
    let (server, _run) = spawn(
        ALICE,
        &spawn_request(&[], &[("JUPYTERHUB_SERVER_NAME", "gpu box/../x")]),
    );
    let log = logs.join("server-gpu_box_.._x.log");
    let fds = proc_fds(server.pid).unwrap();
    assert_eq!((&fds[&1], &fds[&2]), (&log, &log));
    for (path, mode) in [(&jhub, 0o700), (&logs, 0o700), (&log, 0o600)] {
        let meta = std::fs::symlink_metadata(path).unwrap();
        assert_eq!(meta.mode() & 0o7777, mode, "{}", path.display());
        assert_eq!(meta.uid(), uid_of(ALICE), "{}", path.display());
    }
}
