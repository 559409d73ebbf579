//! Hub-managed services and idle culling, with the whole stack (the built
//! hub as `jupyterhub`, the proxy it starts, real users and their real
//! `jupyterhub-singleuser` servers through sudo): a managed service gets
//! its token and environment and comes back after being killed; the
//! built-in `[culler]` and the real `jupyterhub-idle-culler` (from PyPI,
//! run by the hub as a managed service) stop an idle server and leave an
//! active one alone. Needs root (skips loudly otherwise).

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use jhub_tests::jupyterhub::free_port;
use jhub_tests::privileged::{HUB_USER, proc_status, repo_root, require_root, uid_of};
use jhub_tests::stack::{HomeUser, Stack, StackOptions, wait_until};
use serde_json::{Value, json};

/// The reference venv's Python, which has `jupyterhub-idle-culler`
/// (installed by `tests/setup-reference.sh`).
const REFERENCE_PYTHON: &str = "/opt/jhub-test/venv/bin/python3";

/// The echo service script, copied where the hub's account can read it.
fn echo_script() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let script = dir.path().join("service-echo.py");
    std::fs::copy(repo_root().join("tests/src/service-echo.py"), &script).expect("copy");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    (dir, script)
}

/// The echo service's answer through the proxy, once it answers.
fn echo(stack: &Stack) -> Option<Value> {
    let a = stack.public_get("/services/echo/", None);
    (a.status == 200).then(|| a.json())
}

/// The current time as the API takes it.
fn iso_now() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%S.%6NZ"])
        .output()
        .expect("date");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Whether a line of the hub's log (without colours) has every one of
/// `needles`.
fn log_has(stack: &Stack, needles: &[&str]) -> bool {
    let mut plain = String::new();
    let log = stack.hub.log();
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain.lines().any(|l| needles.iter().all(|n| l.contains(n)))
}

fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

#[test]
fn managed_service_gets_its_token_and_environment_and_is_restarted() {
    if !require_root(
        "managed_service_gets_its_token_and_environment_and_is_restarted",
        "a service process started by the hub running as its own account",
    ) {
        return;
    }
    let (_dir, script) = echo_script();
    let port = free_port();
    let mut stack = Stack::start(&StackOptions {
        extra: format!(
            "[[services]]\nname = \"echo\"\nurl = \"http://127.0.0.1:{port}\"\n\
             command = [\"/usr/bin/python3\", {script:?}]\ncwd = \"/tmp\"\n\
             environment = {{ JHTEST_GREETING = \"hello\" }}\n",
            script = script.display().to_string(),
        ),
        ..StackOptions::default()
    });
    let limit = Duration::from_secs(30);
    wait_until("the echo service answers through the proxy", limit, || {
        echo(&stack).is_some()
    });
    let answer = echo(&stack).expect("an answer");
    let env = &answer["env"];
    assert_eq!(env["JUPYTERHUB_SERVICE_NAME"], json!("echo"), "{answer}");
    assert_eq!(
        env["JUPYTERHUB_API_URL"],
        json!(format!("{}/hub/api", stack.hub.url))
    );
    assert_eq!(env["JUPYTERHUB_BASE_URL"], json!("/"));
    assert_eq!(env["JUPYTERHUB_SERVICE_PREFIX"], json!("/services/echo/"));
    assert_eq!(
        env["JUPYTERHUB_SERVICE_URL"],
        json!(format!("http://127.0.0.1:{port}"))
    );
    assert_eq!(env["JUPYTERHUB_CLIENT_ID"], json!("service-echo"));
    assert_eq!(
        env["JUPYTERHUB_OAUTH_CALLBACK_URL"],
        json!("/services/echo/oauth_callback")
    );
    assert_eq!(env["JHTEST_GREETING"], json!("hello"));
    assert_eq!(answer["cwd"], json!("/tmp"));
    assert_eq!(answer["path"], json!("/services/echo/"));

    // its generated token identifies it
    let token = env["JUPYTERHUB_API_TOKEN"].as_str().expect("a token");
    assert!(token.len() >= 32, "{token}");
    let me = stack.public_get("/hub/api/user", Some(token));
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["kind"], json!("service"));
    assert_eq!(me.json()["name"], json!("echo"));

    // run as the hub's account; the API shows command, pid and url
    let pid = answer["pid"].as_i64().expect("a pid") as i32;
    let uid = proc_status(pid, "Uid").expect("its status");
    assert!(
        uid.starts_with(&format!("{}\t", uid_of(HUB_USER))),
        "Uid: {uid}"
    );
    let model = stack.hub.api("GET", "/services", None).json();
    assert_eq!(model["echo"]["pid"], json!(pid), "{model}");
    assert_eq!(
        model["echo"]["command"],
        json!(["/usr/bin/python3", script.display().to_string()])
    );
    assert_eq!(
        model["echo"]["url"],
        json!(format!("http://127.0.0.1:{port}"))
    );
    assert!(
        stack
            .hub
            .log()
            .contains("service-echo: listening on 127.0.0.1"),
        "its output is in the hub's log"
    );

    // killed, it comes back with a new pid and answers again
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the service");
    wait_until("the echo service is back", limit, || {
        echo(&stack).is_some_and(|a| a["pid"] != json!(pid))
    });
    let again = echo(&stack).expect("an answer");
    let new_pid = again["pid"].as_i64().expect("a pid") as i32;
    wait_until("the API shows the new pid", limit, || {
        stack.hub.api("GET", "/services/echo", None).json()["pid"] == json!(new_pid)
    });
    assert_eq!(again["env"]["JUPYTERHUB_API_TOKEN"], json!(token));
    assert!(stack.hub.log().contains("service exited"));

    // a hub killed with SIGKILL cannot stop it; the next hub stops that
    // process and starts its own, so only one runs
    stack.hub.kill();
    let outlived = alive(new_pid);
    eprintln!("the service outlived the killed hub: {outlived}");
    stack.hub.start_again();
    wait_until("the previous service process stopped", limit, || {
        !alive(new_pid)
    });
    wait_until("the echo service is back under the new hub", limit, || {
        echo(&stack).is_some_and(|a| a["pid"] != json!(new_pid))
    });
    let current = echo(&stack).expect("an answer")["pid"]
        .as_i64()
        .expect("a pid") as i32;
    if outlived {
        assert!(stack.hub.log().contains("a previous hub left running"));
    }

    // the hub's shutdown stops it
    stack.hub.stop();
    assert!(!alive(current), "the service outlived the hub");
}

/// Keeps `user`'s default server active by reporting activity every
/// second, until the flag is cleared.
fn keep_active(stack: &Stack, user: &str) -> (Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let on = Arc::new(AtomicBool::new(true));
    let flag = on.clone();
    let url = stack.hub.url.clone();
    let token = stack.hub.token.clone();
    let user = user.to_owned();
    let handle = std::thread::spawn(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        while flag.load(Ordering::SeqCst) {
            let now = iso_now();
            let body = json!({"last_activity": now, "servers": {"": {"last_activity": now}}});
            let r = agent
                .post(format!("{url}/hub/api/users/{user}/activity"))
                .header("Authorization", format!("token {token}"))
                .send_json(&body);
            assert!(
                r.as_ref().is_ok_and(|r| r.status() == 200),
                "activity: {r:?}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    (on, handle)
}

/// Starts an idle and an active server; the idle one is culled, the
/// active one is kept while it reports activity and culled after. A line
/// of the hub's log has `culled` and the idle user's name.
fn idle_server_culled_active_kept(extra: &str, what: &str, culled: &str) {
    let idle = HomeUser::create("jhc-i");
    let busy = HomeUser::create("jhc-b");
    let stack = Stack::start(&StackOptions {
        extra: extra.to_owned(),
        ..StackOptions::default()
    });
    stack.add_user(&idle.name);
    stack.add_user(&busy.name);
    stack.start_server(&busy.name);
    let (on, keeper) = keep_active(&stack, &busy.name);
    stack.start_server(&idle.name);

    let limit = Duration::from_secs(60);
    wait_until(&format!("{what} stops the idle server"), limit, || {
        stack.server(&idle.name)["ready"] != json!(true)
    });
    wait_until("the idle server is stopped", limit, || {
        stack.server(&idle.name)["stopped"] == json!(true)
    });
    assert_eq!(
        stack.server(&busy.name)["ready"],
        json!(true),
        "{what} stopped the active server too\n{}",
        stack.hub.log()
    );
    assert!(
        log_has(&stack, &[culled, &format!("/{}/", idle.name)])
            || log_has(&stack, &[culled, &format!("={}", idle.name)]),
        "no {culled:?} for {} in the hub's log:\n{}",
        idle.name,
        stack.hub.log()
    );
    // a few more rounds: the active one stays
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(stack.server(&busy.name)["ready"], json!(true));

    // once it goes quiet, it is culled too
    on.store(false, Ordering::SeqCst);
    keeper.join().expect("the activity thread");
    wait_until(
        &format!("{what} stops the server that went quiet"),
        limit,
        || stack.server(&busy.name)["stopped"] == json!(true),
    );
    // a graceful stop, which stops the managed services (dropping the
    // stack kills the hub as a crash would, and they would outlive it)
    let mut stack = stack;
    stack.hub.stop();
}

#[test]
fn builtin_culler_stops_idle_servers_only() {
    if !require_root(
        "builtin_culler_stops_idle_servers_only",
        "culling of real servers started through sudo",
    ) {
        return;
    }
    idle_server_culled_active_kept(
        "[culler]\nenabled = true\ntimeout = 5\ncull_every = 1\n",
        "the built-in culler",
        "culling server",
    );
}

#[test]
fn jupyterhub_idle_culler_as_managed_service() {
    if !require_root(
        "jupyterhub_idle_culler_as_managed_service",
        "the real jupyterhub-idle-culler culling real servers",
    ) {
        return;
    }
    assert!(
        std::path::Path::new(REFERENCE_PYTHON).exists(),
        "{REFERENCE_PYTHON} is missing: run `sudo bash tests/setup-reference.sh`"
    );
    // the scopes its README lists for culling servers
    idle_server_culled_active_kept(
        &format!(
            "[[services]]\nname = \"idle-culler\"\n\
             command = [{REFERENCE_PYTHON:?}, \"-m\", \"jupyterhub_idle_culler\", \
             \"--timeout=5\", \"--cull-every=2\"]\n\n\
             [[roles]]\nname = \"idle-culler\"\n\
             scopes = [\"list:users\", \"read:users:activity\", \"read:servers\", \
             \"delete:servers\"]\nservices = [\"idle-culler\"]\n"
        ),
        "jupyterhub-idle-culler",
        "user=idle-culler method=DELETE",
    );
}
