//! jhub's parts as drop-ins for JupyterHub's, with the real JupyterHub
//! 6.1.1 and `sudospawner.SudoSpawner` (PyPI `sudospawner` 1.0.0):
//!
//! - our `sudospawner` in place of the Python mediator
//!   (`c.SudoSpawner.sudospawner_path` set to our installed helper): it
//!   starts a real `jupyterhub-singleuser` (the installed
//!   `/etc/jhub/sudospawner.toml` names it) for a test user, and the hub
//!   stops it without leaving a process of that user behind;
//! - our `jhub-proxy` in place of configurable-http-proxy
//!   (`c.ConfigurableHTTPProxy.command`): the hub starts it with its usual
//!   flags, its login page and the user's server (HTTP and a kernel's
//!   websocket) are reached through it.
//!
//! The same scenario runs with the real configurable-http-proxy, so what
//! it checks is what JupyterHub users get today.
//!
//! And a browser's view of the same stack: headless Chromium logs a test
//! user in with a real password (PAM), starts the server from the home
//! page, and runs a notebook cell in JupyterLab, all through `jhub-proxy`
//! (`tests/browser/lab-flow.mjs`, the flow jhub's own pages must pass too).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jhub_tests::chromium::{LabFlow, lab_flow_available, run_lab_flow};
use jhub_tests::jupyterhub::{CHP_COMMAND, HubAuthenticator, HubOptions, RealHub};
use jhub_tests::privileged::{
    ALICE, TempPassword, claim_user, eventually, installed_config, live_processes, patience,
    proc_cmdline, proc_status, require_root, setup, uid_of,
};
use serde_json::{Value, json};
use tungstenite::Message;
use tungstenite::client::IntoClientRequest;

/// The installed proxy (sudoers/install.sh puts it there).
const JHUB_PROXY: &str = "/usr/local/bin/jhub-proxy";

#[test]
fn jupyterhub_spawns_and_stops_a_real_server_through_our_helper() {
    if !require_root(
        "jupyterhub_spawns_and_stops_a_real_server_through_our_helper",
        "that the real JupyterHub with sudospawner.SudoSpawner drives our helper: spawn, reach through the proxy, stop, nothing left",
    ) {
        return;
    }
    spawn_reach_stop(CHP_COMMAND, "node");
}

#[test]
fn jupyterhub_routes_through_jhub_proxy() {
    if !require_root(
        "jupyterhub_routes_through_jhub_proxy",
        "that the real JupyterHub runs jhub-proxy as its proxy: login page, a user's server and a kernel websocket through it",
    ) {
        return;
    }
    spawn_reach_stop(JHUB_PROXY, "jhub-proxy");
}

#[test]
fn browser_runs_a_notebook_on_jupyterhub_through_jhub_proxy() {
    if !require_root(
        "browser_runs_a_notebook_on_jupyterhub_through_jhub_proxy",
        "that a browser logs in to the real JupyterHub with a password, starts a server and runs a notebook cell in JupyterLab through jhub-proxy",
    ) {
        return;
    }
    if let Err(missing) = lab_flow_available() {
        panic!("the browser flow cannot run: {missing}");
    }
    setup();
    let _config = installed_config();
    let _alice = claim_user(ALICE);
    let before = live_processes(ALICE);
    let password = TempPassword::set(ALICE);
    // Declared before the hub, so dropped after it has stopped the server.
    let _files = LabFiles::snapshot(ALICE);

    let hub = RealHub::start(&HubOptions {
        proxy_command: vec![JHUB_PROXY.to_owned()],
        authenticator: HubAuthenticator::Pam {
            allowed_users: vec![ALICE.to_owned()],
        },
        ..HubOptions::default()
    });
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    let flow = LabFlow {
        base: hub.public_url.clone(),
        user: ALICE.to_owned(),
        password: format!("{}-wrong", password.password),
        screenshot: shots.join("jupyterhub-jhub-proxy-wrong-password.png"),
        timeout: Duration::from_secs(60).max(patience()),
    };

    // The password is checked: a wrong one stays on the login page.
    let refused = run_lab_flow(&flow).expect_err("a wrong password logged in");
    assert!(
        refused.contains("step 'login' failed") && refused.contains("the hub refused the login"),
        "a wrong password did not fail at the login: {refused}"
    );

    let screenshot = shots.join("jupyterhub-jhub-proxy-lab.png");
    let _stale = std::fs::remove_file(&screenshot);
    let flow = run_lab_flow(&LabFlow {
        password: password.password.clone(),
        screenshot: screenshot.clone(),
        timeout: Duration::from_secs(180).max(patience()),
        ..flow
    })
    .unwrap_or_else(|e| panic!("{e}\n---- JupyterHub log\n{}", hub.log()));
    eprintln!("lab flow steps (ms): {:?}", flow.timings_ms);

    assert_eq!(flow.output, "42", "the cell's output: {}", flow.json);
    assert!(
        flow.url
            .starts_with(&format!("{}/user/{ALICE}/", hub.public_url)),
        "the flow ended at {}, not in {ALICE}'s server",
        flow.url
    );
    assert_eq!(flow.screenshot, screenshot);
    let png = std::fs::read(&screenshot)
        .unwrap_or_else(|e| panic!("reading the screenshot {}: {e}", screenshot.display()));
    assert!(
        png.len() > 1000 && png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG ({} bytes)",
        screenshot.display(),
        png.len()
    );

    // The notebook is a real file in the user's home.
    let home = uid_home(ALICE);
    assert!(
        home.join(&flow.notebook).is_file(),
        "the flow's notebook {:?} is not in {}",
        flow.notebook,
        home.display()
    );
    let stop = hub.call("DELETE", &format!("/hub/api/users/{ALICE}/server"), None);
    assert!(
        stop.status == 204 || stop.status == 202,
        "stopping the server: {} {}",
        stop.status,
        stop.body
    );
    hub.wait_for_user(
        ALICE,
        "the server is stopped",
        Duration::from_secs(60),
        |m| m["servers"].as_object().is_some_and(|s| s.is_empty()),
    );
    eventually("no process of the user is left after the stop", || {
        live_processes(ALICE)
            .difference(&before)
            .next()
            .is_none()
            .then_some(())
    });
    let log = hub.log();
    assert!(
        !log.contains("Traceback"),
        "the hub logged a Python traceback:\n{log}"
    );
    assert!(
        !log.contains(&password.password),
        "the password reached the hub's log"
    );
}

/// `user`'s home directory.
fn uid_home(user: &str) -> PathBuf {
    nix::unistd::User::from_name(user)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no user {user}"))
        .dir
}

/// What a browser session in JupyterLab leaves in a user's home: the
/// notebooks it made (`Untitled*.ipynb`), their checkpoints, and the saved
/// workspace (which would reopen them next time). On drop, those that
/// were not there at the snapshot are removed, so every run starts from
/// the same home, whether the test passed or not.
struct LabFiles {
    dirs: Vec<(PathBuf, BTreeSet<OsString>)>,
}

impl LabFiles {
    fn snapshot(user: &str) -> Self {
        let home = uid_home(user);
        let dirs = [home.clone(), home.join(".jupyter/lab/workspaces")]
            .into_iter()
            .map(|dir| {
                let names = Self::names(&dir);
                (dir, names)
            })
            .collect();
        Self { dirs }
    }

    fn names(dir: &Path) -> BTreeSet<OsString> {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.file_name()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for LabFiles {
    fn drop(&mut self) {
        for (i, (dir, before)) in self.dirs.iter().enumerate() {
            for name in Self::names(dir).difference(before) {
                let text = name.to_string_lossy();
                let ours = i > 0 || text.ends_with(".ipynb") || text == ".ipynb_checkpoints";
                if ours {
                    let path = dir.join(name);
                    // Best effort in Drop (it may run during a panic).
                    let _removed = if path.is_dir() {
                        std::fs::remove_dir_all(&path)
                    } else {
                        std::fs::remove_file(&path)
                    };
                }
            }
        }
    }
}

/// Runs JupyterHub with `proxy` as `c.ConfigurableHTTPProxy.command`
/// and checks, through it: the login page, a spawned server's API and
/// JupyterLab page, a kernel's websocket, and a clean stop.
fn spawn_reach_stop(proxy: &str, proxy_process: &str) {
    setup();
    let _config = installed_config();
    let _alice = claim_user(ALICE);
    let before = live_processes(ALICE);

    let hub = RealHub::start(&HubOptions {
        proxy_command: vec![proxy.to_owned()],
        ..HubOptions::default()
    });

    // The proxy that answers is the one configured.
    let pid = eventually("the proxy writes its pid file", || hub.proxy_pid());
    let cmdline = proc_cmdline(pid).unwrap_or_default();
    assert!(
        cmdline
            .first()
            .is_some_and(|exe| exe.ends_with(proxy_process)),
        "the proxy process {pid} is {cmdline:?}, not {proxy_process}"
    );

    // The login page, served by the hub through the proxy.
    let login = hub.call("GET", "/hub/login", None);
    assert_eq!(login.status, 200, "GET /hub/login: {}", login.body);
    assert!(
        login.body.contains("<form") && login.body.contains("password"),
        "/hub/login is not JupyterHub's login form:\n{}",
        login.body
    );
    let created = hub.call("POST", &format!("/hub/api/users/{ALICE}"), None);
    assert!(
        created.status == 201 || created.status == 409,
        "creating the user: {} {}",
        created.status,
        created.body
    );
    let spawn = hub.call(
        "POST",
        &format!("/hub/api/users/{ALICE}/server"),
        Some(&json!({})),
    );
    assert!(
        spawn.status == 201 || spawn.status == 202,
        "starting the server: {} {}\n{}",
        spawn.status,
        spawn.body,
        hub.log()
    );
    let model = hub.wait_for_user(
        ALICE,
        "the server becomes ready",
        Duration::from_secs(120),
        |m| m["servers"][""]["ready"] == json!(true),
    );
    let url = model["servers"][""]["url"]
        .as_str()
        .expect("server url")
        .to_owned();
    assert_eq!(url, format!("/user/{ALICE}/"));

    // What runs now is the real server, as the user.
    let started: Vec<i32> = live_processes(ALICE).difference(&before).copied().collect();
    let server = started
        .iter()
        .copied()
        .find(|pid| {
            proc_cmdline(*pid)
                .is_some_and(|c| c.iter().any(|a| a.ends_with("jupyterhub-singleuser")))
        })
        .unwrap_or_else(|| {
            panic!("no jupyterhub-singleuser among {ALICE}'s new processes {started:?}")
        });
    let uid = uid_of(ALICE).to_string();
    let uids = proc_status(server, "Uid").expect("server status");
    assert!(
        uids.split_whitespace().all(|u| u == uid),
        "the server runs with uids {uids}, not {ALICE}'s {uid}"
    );

    // The server answers through the proxy, for a token allowed to reach it.
    let status = hub.call("GET", &format!("{url}api/status"), None);
    assert_eq!(status.status, 200, "GET {url}api/status: {}", status.body);
    let status = status.json();
    assert!(
        status.get("last_activity").is_some() && status.get("started").is_some(),
        "not a Jupyter server's status: {status}"
    );
    let lab = hub.call("GET", &format!("{url}lab"), None);
    assert_eq!(lab.status, 200, "GET {url}lab: {}", lab.body);
    assert!(
        lab.body.contains("JupyterLab"),
        "{url}lab is not JupyterLab's page"
    );

    // A kernel, and its websocket through the proxy.
    let kernel = hub.call("POST", &format!("{url}api/kernels"), Some(&json!({})));
    assert_eq!(kernel.status, 201, "starting a kernel: {}", kernel.body);
    let kernel_id = kernel.json()["id"].as_str().expect("kernel id").to_owned();
    let reply = kernel_info(&hub, &format!("{url}api/kernels/{kernel_id}/channels"));
    assert_eq!(
        reply["content"]["status"], "ok",
        "kernel_info_reply through the proxy: {reply}"
    );
    assert_eq!(
        reply["content"]["language_info"]["name"], "python",
        "kernel_info_reply through the proxy: {reply}"
    );

    // Stopping it through JupyterHub ends every process the server had.
    let stop = hub.call("DELETE", &format!("/hub/api/users/{ALICE}/server"), None);
    assert!(
        stop.status == 204 || stop.status == 202,
        "stopping the server: {} {}",
        stop.status,
        stop.body
    );
    hub.wait_for_user(
        ALICE,
        "the server is stopped",
        Duration::from_secs(60),
        |m| m["servers"].as_object().is_some_and(|s| s.is_empty()),
    );
    let gone = hub.call("GET", &format!("{url}api/status"), None);
    assert_ne!(
        gone.status, 200,
        "the stopped server still answers: {}",
        gone.body
    );
    eventually("no process of the user is left after the stop", || {
        let left: Vec<String> = live_processes(ALICE)
            .difference(&before)
            .map(|pid| format!("{pid} {:?}", proc_cmdline(*pid).unwrap_or_default()))
            .collect();
        left.is_empty().then_some(())
    });
    let log = hub.log();
    assert!(
        !log.contains("Traceback"),
        "the hub logged a Python traceback:\n{log}"
    );
}

/// Sends `kernel_info_request` on a kernel's websocket through the proxy
/// (Jupyter's JSON websocket protocol) and returns the reply.
fn kernel_info(hub: &RealHub, path: &str) -> Value {
    let addr = hub.public_url.trim_start_matches("http://");
    let mut request = format!("ws://{addr}{path}")
        .into_client_request()
        .expect("websocket request");
    request.headers_mut().insert(
        "Authorization",
        format!("token {}", hub.token).parse().expect("header"),
    );
    let stream = TcpStream::connect(addr).expect("connect to the proxy");
    stream
        .set_read_timeout(Some(patience().max(Duration::from_secs(30))))
        .expect("timeout");
    let (mut ws, _) = tungstenite::client(request, stream)
        .unwrap_or_else(|e| panic!("websocket {path} through the proxy: {e}\n{}", hub.log()));
    let msg_id = "jhub-test-kernel-info";
    let request = json!({
        "channel": "shell",
        "header": {
            "msg_id": msg_id,
            "msg_type": "kernel_info_request",
            "session": "jhub-test",
            "username": ALICE,
            "date": "2026-01-01T00:00:00Z",
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": {},
        "buffers": [],
    });
    ws.send(Message::text(request.to_string()))
        .expect("send kernel_info_request");
    // Status and iopub messages come too; bounded by the read timeout and
    // a message count.
    for _ in 0..200 {
        match ws.read() {
            Ok(Message::Text(text)) => {
                let message: Value = serde_json::from_str(text.as_str()).expect("kernel message");
                if message["msg_type"] == "kernel_info_reply"
                    && message["parent_header"]["msg_id"] == msg_id
                {
                    let _ = ws.close(None);
                    return message;
                }
            }
            Ok(_) => {}
            Err(e) => panic!("reading the kernel websocket: {e}\n{}", hub.log()),
        }
    }
    panic!("no kernel_info_reply in 200 messages");
}
