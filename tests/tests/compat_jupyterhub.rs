//! Our `sudospawner` as a drop-in for the Python mediator: the real
//! JupyterHub 6.1.1 with `sudospawner.SudoSpawner` (PyPI `sudospawner`
//! 1.0.0), `c.SudoSpawner.sudospawner_path` set to our installed helper, and
//! the real configurable-http-proxy, starts a real `jupyterhub-singleuser`
//! (the installed `/etc/jhub/sudospawner.toml` names it) for a test user,
//! reaches it through the proxy, and stops it without leaving a process of
//! that user behind.

use std::time::Duration;

use jhub_tests::jupyterhub::{HubOptions, RealHub};
use jhub_tests::privileged::{
    ALICE, claim_user, eventually, installed_config, live_processes, proc_cmdline, proc_status,
    require_root, setup, uid_of,
};
use serde_json::json;

#[test]
fn jupyterhub_spawns_and_stops_a_real_server_through_our_helper() {
    if !require_root(
        "jupyterhub_spawns_and_stops_a_real_server_through_our_helper",
        "that the real JupyterHub with sudospawner.SudoSpawner drives our helper: spawn, reach through the proxy, stop, nothing left",
    ) {
        return;
    }
    setup();
    let _config = installed_config();
    let _alice = claim_user(ALICE);
    let before = live_processes(ALICE);

    let hub = RealHub::start(&HubOptions::default());

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
