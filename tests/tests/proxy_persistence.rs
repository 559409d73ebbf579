//! `jhub-proxy --routes-file PATH`: the routing table survives the proxy
//! stopping, gracefully or not, and starting again. CHP has no such flag
//! (its table lives in memory only), so these run against `jhub-proxy`
//! alone.

use std::path::Path;

use jhub_tests::proxy::backend::{Backend, Echo};
use jhub_tests::proxy::{Impl, ProxyProcess, eventually};
use serde_json::{Map, Value, json};

fn without_activity(route: &Value) -> Value {
    let mut route = route.clone();
    if let Some(map) = route.as_object_mut() {
        map.remove("last_activity");
    }
    route
}

/// Asserts that `table` has exactly the routes of `expected`, with the same
/// data (`last_activity` aside).
fn assert_same_routes(table: &Map<String, Value>, expected: &Map<String, Value>) {
    let mut keys: Vec<&String> = table.keys().collect();
    keys.sort();
    let mut want: Vec<&String> = expected.keys().collect();
    want.sort();
    assert_eq!(keys, want);
    for (key, route) in expected {
        assert_eq!(
            without_activity(&table[key]),
            without_activity(route),
            "route {key}"
        );
    }
}

/// The file's text, empty when it does not exist (yet).
fn file_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Routes added (and one deleted) through the API are back, with their
/// data, after a SIGKILL and a restart on the same file, and they route.
/// The writes may lag the API answers (the proxy may coalesce them), so
/// the kill waits until the file names the routes and no longer names the
/// deleted one; after that, a crash must not lose them.
#[test]
fn jhub_routes_file_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("routes.json");
    let file_arg = file.to_str().unwrap();
    let (a, b) = (Backend::start("a"), Backend::start("b"));

    let mut first = ProxyProcess::start(Impl::Jhub, &["--routes-file", file_arg]);
    first.add_route(
        "/user/a",
        json!({"target": a.url(), "user": "a", "extra": {"n": [1, 2]}}),
    );
    first.add_target("/user/b", &format!("{}/prefix", b.url()));
    first.add_target("/gone-route", &a.url());
    assert_eq!(
        first.api("DELETE", "/api/routes/gone-route", None).status,
        204
    );
    let before = first.routes();
    eventually("the routes file to hold the table", || {
        let text = file_text(&file);
        (text.contains("/user/a") && text.contains("/user/b") && !text.contains("/gone-route"))
            .then_some(())
    });
    first.kill();

    let second = ProxyProcess::start(Impl::Jhub, &["--routes-file", file_arg]);
    assert_same_routes(&second.routes(), &before);
    let seen = Echo::from_json(&second.get("/user/a/x").json());
    assert_eq!(
        (seen.backend.as_str(), seen.path.as_str()),
        ("a", "/user/a/x")
    );
    let seen = Echo::from_json(&second.get("/user/b/y").json());
    assert_eq!(
        (seen.backend.as_str(), seen.path.as_str()),
        ("b", "/prefix/user/b/y")
    );
    assert_eq!(second.get("/gone-route/x").status, 404);
}

/// A SIGTERM right after the API answered: nothing may be lost, however
/// the writes are scheduled.
#[test]
fn jhub_routes_file_saved_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("routes.json");
    let file_arg = file.to_str().unwrap();
    let a = Backend::start("a");

    let mut first = ProxyProcess::start(Impl::Jhub, &["--routes-file", file_arg]);
    for i in 0..50 {
        first.add_route(&format!("/user/u{i}"), json!({"target": a.url(), "i": i}));
    }
    assert_eq!(first.api("DELETE", "/api/routes/user/u7", None).status, 204);
    let before = first.routes();
    first.terminate();

    let second = ProxyProcess::start(Impl::Jhub, &["--routes-file", file_arg]);
    assert_same_routes(&second.routes(), &before);
    let seen = Echo::from_json(&second.get("/user/u49/x").json());
    assert_eq!(seen.backend, "a");
}

/// Without the file the proxy starts empty and creates it; a route posted
/// again after a restart replaces the stored one.
#[test]
fn jhub_routes_file_created_and_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state").join("routes.json");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let file_arg = file.to_str().unwrap();
    let a = Backend::start("a");

    let mut first = ProxyProcess::start(Impl::Jhub, &["--routes-file", file_arg]);
    assert!(first.routes().is_empty());
    first.add_route("/user/a", json!({"target": a.url(), "v": 1}));
    first.terminate();
    assert!(file.exists(), "{} was created", file.display());

    let mut second = ProxyProcess::start(Impl::Jhub, &["--routes-file", file_arg]);
    assert_eq!(second.routes()["/user/a"]["v"], 1);
    second.add_route("/user/a", json!({"target": a.url(), "v": 2}));
    second.terminate();

    let third = ProxyProcess::start(Impl::Jhub, &["--routes-file", file_arg]);
    let route = third.route("/user/a").expect("the route");
    assert_eq!(without_activity(&route), json!({"target": a.url(), "v": 2}));
}
