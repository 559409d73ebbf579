//! The browser path end to end, in headless Chromium: a new user logs in
//! to jhub with their PAM password, starts their server from the home
//! page, lands in JupyterLab, creates a notebook and runs `print(6*7)`;
//! the kernel answers `42` over its websocket through the proxy. Once with
//! `jhub-proxy` and once with the real configurable-http-proxy as the
//! proxy the hub starts. A screenshot of the lab is saved and its path
//! printed. Needs root (skips loudly otherwise).
//!
//! Also here: two users at once, neither of whom reaches the other's
//! server, files or kernels.

use std::path::Path;
use std::time::Duration;

use jhub_tests::chromium::{LabFlow, lab_flow_available, run_lab_flow};
use jhub_tests::privileged::{as_user, patience, require_root};
use jhub_tests::stack::{HomeUser, ProxyKind, Stack, StackOptions, wait_until};
use serde_json::json;

fn lab_flow_through(kind: ProxyKind, label: &str) {
    if let Err(missing) = lab_flow_available() {
        panic!("the browser flow cannot run: {missing}");
    }
    let user = HomeUser::create("jhb");
    let stack = Stack::start(&StackOptions {
        proxy: kind,
        ..StackOptions::default()
    });
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    let screenshot = shots.join(format!("jhub-{label}-lab.png"));
    let _stale = std::fs::remove_file(&screenshot);

    // A wrong password stays on the login page.
    let refused = run_lab_flow(&LabFlow {
        base: stack.public.clone(),
        user: user.name.clone(),
        password: format!("{}-wrong", user.password),
        screenshot: shots.join(format!("jhub-{label}-wrong-password.png")),
        timeout: Duration::from_secs(60).max(patience()),
    })
    .expect_err("a wrong password logged in");
    assert!(refused.contains("step 'login' failed"), "{refused}");

    let flow = run_lab_flow(&LabFlow {
        base: stack.public.clone(),
        user: user.name.clone(),
        password: user.password.clone(),
        screenshot: screenshot.clone(),
        timeout: Duration::from_secs(180).max(patience()),
    })
    .unwrap_or_else(|e| panic!("{e}\n---- jhub log\n{}", stack.hub.log()));
    eprintln!("lab flow ({label}) steps (ms): {:?}", flow.timings_ms);
    eprintln!("screenshot of the lab ({label}): {}", screenshot.display());
    assert_eq!(flow.output, "42", "the cell's output: {}", flow.json);
    assert!(
        flow.url
            .starts_with(&format!("{}/user/{}/", stack.public, user.name)),
        "the flow ended at {}",
        flow.url
    );
    let png = std::fs::read(&screenshot).expect("the screenshot");
    assert!(png.len() > 1000 && png.starts_with(b"\x89PNG\r\n\x1a\n"));
    // The notebook is a real file in the user's home, owned by them.
    let notebook = user.home().join(&flow.notebook);
    let meta =
        std::fs::metadata(&notebook).unwrap_or_else(|e| panic!("{}: {e}", notebook.display()));
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta),
        jhub_tests::privileged::uid_of(&user.name)
    );
    assert!(matches!(stack.stop_server(&user.name), 202 | 204));
    wait_until("no process of the user", Duration::from_secs(30), || {
        user.processes().is_empty()
    });
}

#[test]
fn browser_runs_a_notebook_through_jhub_proxy() {
    if !require_root(
        "browser_runs_a_notebook_through_jhub_proxy",
        "a browser logging in with a PAM password and running a notebook cell through jhub",
    ) {
        return;
    }
    lab_flow_through(ProxyKind::Jhub, "jhub-proxy");
}

#[test]
fn browser_runs_a_notebook_through_chp() {
    if !require_root(
        "browser_runs_a_notebook_through_chp",
        "the same browser flow with the real configurable-http-proxy",
    ) {
        return;
    }
    lab_flow_through(ProxyKind::Chp, "chp");
}

#[test]
fn two_users_reach_only_their_own_server_files_and_kernels() {
    if !require_root(
        "two_users_reach_only_their_own_server_files_and_kernels",
        "two real users' servers side by side",
    ) {
        return;
    }
    let alice = HomeUser::create("jhb-a");
    let bob = HomeUser::create("jhb-b");
    let stack = Stack::start(&StackOptions::default());
    for u in [&alice, &bob] {
        stack.add_user(&u.name);
    }
    stack.start_server(&alice.name);
    stack.start_server(&bob.name);
    let alice_token = stack.token(&alice.name, None);
    let bob_token = stack.token(&bob.name, None);

    // bob writes a file and starts a kernel in his server
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let put = agent
        .put(format!(
            "{}/user/{}/api/contents/secret.txt",
            stack.public, bob.name
        ))
        .header("Authorization", format!("token {bob_token}"))
        .send_json(json!({"type": "file", "format": "text", "content": "bob's secret"}))
        .expect("PUT contents");
    assert!(
        put.status() == 201 || put.status() == 200,
        "{}",
        put.status()
    );
    let kernel = agent
        .post(format!("{}/user/{}/api/kernels", stack.public, bob.name))
        .header("Authorization", format!("token {bob_token}"))
        .send_json(json!({"name": "python3"}))
        .expect("start a kernel");
    assert_eq!(kernel.status(), 201);

    // alice's token reaches none of it
    for path in [
        "api/status",
        "api/contents/secret.txt",
        "api/kernels",
        "api/sessions",
        "files/secret.txt",
    ] {
        let a = stack.public_get(&format!("/user/{}/{path}", bob.name), Some(&alice_token));
        assert_eq!(a.status, 403, "alice on bob's {path}: {}", a.body);
        assert!(!a.body.contains("bob's secret"));
    }
    // while bob's own token does
    let own = stack.public_get(
        &format!("/user/{}/api/contents/secret.txt", bob.name),
        Some(&bob_token),
    );
    assert_eq!(own.status, 200, "{}", own.body);
    assert!(own.body.contains("bob's secret"));
    // and alice's server cannot open bob's file either: the servers run as
    // their users, and bob's home is his
    let read = as_user(&alice.name, "cat")
        .arg(bob.home().join("secret.txt"))
        .output()
        .expect("run cat as alice");
    assert!(!read.status.success(), "alice's account read bob's file");
    let a = stack.public_get(
        &format!(
            "/user/{}/api/contents/..%2F{}%2Fsecret.txt",
            alice.name, bob.name
        ),
        Some(&alice_token),
    );
    assert_ne!(
        a.status, 200,
        "alice's server served a file outside her home: {}",
        a.body
    );

    for u in [&alice, &bob] {
        assert_eq!(stack.stop_server(&u.name), 204);
    }
}
