//! The admin page in headless Chromium (`tests/browser/admin-flow.mjs`).
//!
//! With the whole stack (PAM, the helper, jhub-proxy; needs root, skips
//! loudly otherwise): an admin logs in, adds a new user (a real Unix
//! account) from the admin page, starts that user's server from the
//! table, which shows it running while the real process runs as that
//! user, stops it, and the table shows it stopped with no process of the
//! user left; started again, "Stop all servers" stops it; a non-admin
//! gets 403 for `/hub/admin`.
//!
//! With the native authenticator (no root needed): the admin page lists
//! an account waiting for approval, and the Authorize button it leads to
//! works in the browser (the account can log in); then the page's script
//! creates a group, adds and removes the account as a member, deletes the
//! group, makes the account an admin, renames it and deletes it, each
//! checked through the API.

use std::path::Path;
use std::time::Duration;

use jhub_tests::browser_flow::run_flow;
use jhub_tests::chromium::lab_flow_available;
use jhub_tests::hub::{LOGIN_COOKIE, Setup, TestHub};
use jhub_tests::privileged::{patience, require_root, uid_of};
use jhub_tests::stack::{HomeUser, Stack, StackOptions, wait_until};

fn shots() -> std::path::PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots")
}

#[test]
fn admin_adds_a_user_and_starts_and_stops_their_server_in_chromium() {
    if !require_root(
        "admin_adds_a_user_and_starts_and_stops_their_server_in_chromium",
        "the admin page starting and stopping a real user's server in a browser",
    ) {
        return;
    }
    if let Err(missing) = lab_flow_available() {
        panic!("the browser flow cannot run: {missing}");
    }
    let admin = HomeUser::create("jha");
    let newcomer = HomeUser::create("jhn");
    let other = HomeUser::create("jho");
    let stack = Stack::start(&StackOptions {
        admins: vec![admin.name.clone()],
        ..StackOptions::default()
    });
    assert!(
        !stack.hub.usernames().contains(&newcomer.name),
        "the new user exists before the admin adds them"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let go = dir.path().to_owned();
    let screenshot = shots().join("jhub-admin-servers.png");
    let args: Vec<String> = [
        "--mode",
        "servers",
        "--base",
        &stack.public,
        "--admin",
        &admin.name,
        "--new-user",
        &newcomer.name,
        "--other",
        &other.name,
        "--go-dir",
        &go.display().to_string(),
        "--screenshot",
        &screenshot.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut checked_pid = None;
    let result = run_flow(
        "admin-flow.mjs",
        &args,
        &[
            ("ADMIN_FLOW_ADMIN_PASSWORD", admin.password.as_str()),
            ("ADMIN_FLOW_OTHER_PASSWORD", other.password.as_str()),
        ],
        Duration::from_secs(180).max(patience()),
        |event| {
            if event["event"] == "running" {
                // the table says running: so do the API and the system
                let model = stack.server(&newcomer.name);
                assert_eq!(model["ready"], true, "{model}");
                let pid = stack.server_pid(&newcomer.name);
                let meta = std::fs::metadata(format!("/proc/{pid}"))
                    .unwrap_or_else(|e| panic!("server process {pid}: {e}"));
                assert_eq!(
                    std::os::unix::fs::MetadataExt::uid(&meta),
                    uid_of(&newcomer.name),
                    "the server does not run as the new user"
                );
                assert!(newcomer.processes().contains(&pid));
                checked_pid = Some(pid);
                std::fs::write(go.join("running"), b"go").expect("the go-ahead file");
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n---- jhub log\n{}", stack.hub.log()));
    eprintln!("admin flow: {result}");
    assert!(checked_pid.is_some(), "the flow never reported running");
    assert_eq!(result["other_status"], 403, "{result}");
    // stopped: the API says so and no process of the user is left
    let model = stack.server(&newcomer.name);
    assert!(
        model.is_null() || model["ready"] == false,
        "the server still runs: {model}"
    );
    wait_until(
        "no process of the new user",
        Duration::from_secs(30),
        || newcomer.processes().is_empty(),
    );
    let users = stack.hub.usernames();
    assert!(users.contains(&newcomer.name), "{users:?}");
}

const ADMIN: &str = "jhtest-admin";
const ADMIN_PASSWORD: &str = "jhtest-admin-pw-1";
const PENDING: &str = "jhtest-pending";
const PENDING_PASSWORD: &str = "jhtest-pending-pw-1";

fn signup(hub: &TestHub, name: &str, password: &str) {
    let mut b = hub.browser();
    let xsrf = b.xsrf("/hub/signup");
    let page = b.post_form(
        "/hub/signup",
        &[
            ("username", name),
            ("signup_password", password),
            ("signup_password_confirmation", password),
            ("_xsrf", &xsrf),
        ],
    );
    assert_eq!(page.status, 200, "{page:?}");
}

#[test]
fn admin_approves_a_native_signup_in_chromium() {
    if let Err(missing) = lab_flow_available() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED admin_approves_a_native_signup_in_chromium: {missing}");
            return;
        }
        panic!("the browser flow cannot run: {missing}");
    }
    let hub = TestHub::start_with(&Setup {
        authenticator_class: "native".into(),
        authenticator: format!("admin_users = [\"{ADMIN}\"]\n"),
        ..Setup::default()
    });
    signup(&hub, ADMIN, ADMIN_PASSWORD);
    signup(&hub, PENDING, PENDING_PASSWORD);
    let refused = hub.browser().login(PENDING, PENDING_PASSWORD);
    assert_eq!(
        refused.status, 403,
        "logged in before approval: {refused:?}"
    );

    let screenshot = shots().join("jhub-admin-approve.png");
    let dir = tempfile::tempdir().expect("tempdir");
    let go = dir.path().to_owned();
    let args: Vec<String> = [
        "--mode",
        "approve",
        "--base",
        &hub.url,
        "--admin",
        ADMIN,
        "--pending",
        PENDING,
        "--go-dir",
        &go.display().to_string(),
        "--screenshot",
        &screenshot.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut member_seen = false;
    let mut renamed_seen = false;
    let approved = |hub: &TestHub| {
        let page = hub.browser().login(PENDING, PENDING_PASSWORD);
        (300..400).contains(&page.status) && page.set_cookie(LOGIN_COOKIE).is_some()
    };
    let result = run_flow(
        "admin-flow.mjs",
        &args,
        &[("ADMIN_FLOW_ADMIN_PASSWORD", ADMIN_PASSWORD)],
        Duration::from_secs(90).max(patience()),
        |event| {
            if event["event"] == "member-added" {
                assert!(approved(&hub), "the approved account cannot log in");
                let group = hub.api("GET", "/groups/jhtest-group", None).json();
                assert_eq!(group["users"], serde_json::json!([PENDING]), "{group}");
                member_seen = true;
                std::fs::write(go.join("member-added"), b"go").expect("the go-ahead file");
            }
            if event["event"] == "renamed" {
                let user = hub.api("GET", &format!("/users/{PENDING}-renamed"), None);
                assert_eq!(user.status, 200, "{}", user.body);
                assert_eq!(user.json()["admin"], true, "{}", user.body);
                renamed_seen = true;
                std::fs::write(go.join("renamed"), b"go").expect("the go-ahead file");
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n---- jhub log\n{}", hub.log()));
    eprintln!("approve flow: {result}");
    assert!(member_seen, "the flow never added the member");
    assert!(renamed_seen, "the flow never renamed the user");
    // the groups, rename and delete steps went through the API
    assert_eq!(hub.api("GET", "/groups/jhtest-group", None).status, 404);
    for name in [PENDING.to_owned(), format!("{PENDING}-renamed")] {
        let user = hub.api("GET", &format!("/users/{name}"), None);
        assert_eq!(user.status, 404, "{name}: {}", user.body);
    }
}
