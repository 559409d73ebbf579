//! Restarts: the hub killed with SIGKILL while servers run comes back,
//! re-adopts the servers that still run (their kernels too) and records
//! the ones that died meanwhile as stopped; a proxy killed with SIGKILL is
//! started again by the hub and its table refilled. Needs root.

use std::time::Duration;

use jhub_tests::privileged::require_root;
use jhub_tests::stack::{HomeUser, ProxyKind, Stack, StackOptions, wait_until};
use serde_json::{Value, json};

fn kernels(stack: &Stack, user: &str, token: &str) -> Vec<String> {
    let a = stack.public_get(&format!("/user/{user}/api/kernels"), Some(token));
    assert_eq!(a.status, 200, "{}", a.body);
    let list: Value = serde_json::from_str(&a.body).expect("JSON");
    list.as_array()
        .expect("a list")
        .iter()
        .map(|k| k["id"].as_str().expect("id").to_owned())
        .collect()
}

fn start_kernel(stack: &Stack, user: &str, token: &str) -> String {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut r = agent
        .post(format!("{}/user/{user}/api/kernels", stack.public))
        .header("Authorization", format!("token {token}"))
        .send_json(json!({"name": "python3"}))
        .expect("start a kernel");
    let body = r.body_mut().read_to_string().unwrap_or_default();
    assert_eq!(r.status(), 201, "{body}");
    serde_json::from_str::<Value>(&body).expect("JSON")["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

#[test]
fn hub_killed_and_restarted_keeps_live_servers() {
    if !require_root(
        "hub_killed_and_restarted_keeps_live_servers",
        "servers of real users surviving a hub crash",
    ) {
        return;
    }
    let alice = HomeUser::create("jhr-a");
    let bob = HomeUser::create("jhr-b");
    let mut stack = Stack::start(&StackOptions::default());
    stack.add_user(&alice.name);
    stack.add_user(&bob.name);
    stack.start_server(&alice.name);
    stack.start_server(&bob.name);
    let alice_token = stack.token(&alice.name, None);
    let kernel = start_kernel(&stack, &alice.name, &alice_token);
    let alice_pid = stack.server_pid(&alice.name);
    let bob_pid = stack.server_pid(&bob.name);
    let proxy_pid = stack.proxy_pid().expect("the proxy's pid");

    // The hub crashes; while it is down, bob's server dies too.
    stack.hub.kill();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(bob_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill bob's server");
    wait_until("bob's server gone", Duration::from_secs(10), || {
        jhub_tests::privileged::proc_stat(bob_pid).is_none_or(|s| s.state == 'Z')
    });
    // Users keep working while the hub is down: the proxy still routes.
    assert_eq!(
        kernels(&stack, &alice.name, &alice_token),
        vec![kernel.clone()]
    );

    stack.hub.start_again();
    assert_eq!(
        stack.proxy_pid(),
        Some(proxy_pid),
        "the proxy is adopted, not replaced"
    );
    let m = stack.server(&alice.name);
    assert_eq!(m["ready"], json!(true), "alice's server is re-adopted: {m}");
    assert_eq!(stack.server_pid(&alice.name), alice_pid);
    assert_eq!(
        kernels(&stack, &alice.name, &alice_token),
        vec![kernel],
        "the kernel lives on"
    );
    let m = stack.server(&bob.name);
    assert_eq!(
        m["stopped"],
        json!(true),
        "bob's dead server is stopped: {m}"
    );
    wait_until("bob's route removed", Duration::from_secs(10), || {
        stack.routes().get(format!("/user/{}", bob.name)).is_none()
    });
    assert!(
        stack
            .routes()
            .get(format!("/user/{}", alice.name))
            .is_some()
    );
    assert!(stack.hub.log().contains("adopting a running server"));

    // The adopted server stops as any other.
    assert_eq!(stack.stop_server(&alice.name), 204);
    wait_until("no process of alice", Duration::from_secs(15), || {
        alice.processes().is_empty()
    });
}

fn proxy_killed_is_replaced_and_refilled(kind: ProxyKind) {
    let carol = HomeUser::create("jhr-c");
    let stack = Stack::start(&StackOptions {
        proxy: kind,
        ..StackOptions::default()
    });
    stack.add_user(&carol.name);
    stack.start_server(&carol.name);
    let token = stack.token(&carol.name, None);
    let status = format!("/user/{}/api/status", carol.name);
    assert_eq!(stack.public_get(&status, Some(&token)).status, 200);
    let old = stack.proxy_pid().expect("the proxy's pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(old),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the proxy");
    // a new proxy, with an empty table, refilled within the check
    // interval (1 s here) plus its start
    wait_until(
        "a new proxy routes carol again",
        Duration::from_secs(30),
        || {
            stack.proxy_pid().is_some_and(|p| p != old)
                && stack.public_get(&status, Some(&token)).status == 200
        },
    );
    assert!(stack.routes().get("/").is_some(), "{}", stack.routes());
    assert_eq!(stack.stop_server(&carol.name), 204);
}

#[test]
fn jhub_proxy_killed_is_replaced_and_refilled() {
    if !require_root(
        "jhub_proxy_killed_is_replaced_and_refilled",
        "the whole stack",
    ) {
        return;
    }
    proxy_killed_is_replaced_and_refilled(ProxyKind::Jhub);
}

#[test]
fn chp_killed_is_replaced_and_refilled() {
    if !require_root(
        "chp_killed_is_replaced_and_refilled",
        "the whole stack with CHP",
    ) {
        return;
    }
    proxy_killed_is_replaced_and_refilled(ProxyKind::Chp);
}

fn external_proxy_restarted_empty_heals(imp: jhub_tests::proxy::Impl) {
    let dana = HomeUser::create("jhr-d");
    let mut stack = Stack::start(&StackOptions {
        proxy: ProxyKind::External(imp),
        ..StackOptions::default()
    });
    stack.add_user(&dana.name);
    stack.start_server(&dana.name);
    let token = stack.token(&dana.name, None);
    let status = format!("/user/{}/api/status", dana.name);
    assert_eq!(stack.public_get(&status, Some(&token)).status, 200);
    // the proxy comes back with an empty table; within the check
    // interval (1 s here) the hub has put its routes back
    stack.restart_external_proxy();
    wait_until(
        "the restarted proxy routes dana again",
        Duration::from_secs(15),
        || stack.public_get(&status, Some(&token)).status == 200,
    );
    assert!(stack.routes().get("/").is_some(), "{}", stack.routes());
    assert_eq!(stack.stop_server(&dana.name), 204);
    wait_until("dana's route removed", Duration::from_secs(10), || {
        stack.routes().get(format!("/user/{}", dana.name)).is_none()
    });
}

#[test]
fn external_chp_restarted_empty_heals() {
    if !require_root(
        "external_chp_restarted_empty_heals",
        "the stack with an external CHP",
    ) {
        return;
    }
    external_proxy_restarted_empty_heals(jhub_tests::proxy::Impl::Chp);
}

#[test]
fn external_jhub_proxy_restarted_empty_heals() {
    if !require_root(
        "external_jhub_proxy_restarted_empty_heals",
        "the stack with an external jhub-proxy",
    ) {
        return;
    }
    external_proxy_restarted_empty_heals(jhub_tests::proxy::Impl::Jhub);
}
