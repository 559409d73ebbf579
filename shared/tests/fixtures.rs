//! Golden fixtures of the helper protocol, round-tripped through the shared
//! types, so that the hub, the helper and the tests cannot drift from what
//! the real JupyterHub 6.1.1 sends and the Python mediator answers.
//!
//! The files in `fixtures/helper/` were written by `generate.py` beside them,
//! from the real `sudospawner.SudoSpawner` (requests) and the real
//! `sudospawner` 1.0.0 mediator (answers), byte for byte. Answers must come
//! back out of [`to_python_json`] identical; requests must parse and keep
//! every field.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;
use shared::helper::{ErrorCode, HelperRequest, HelperResponse, to_python_json};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/helper")
}

fn fixture(name: &str) -> String {
    let path = dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Every answer fixture and the value it must parse to.
fn answers() -> Vec<(&'static str, HelperResponse)> {
    vec![
        ("answer.spawned.json", HelperResponse::spawned(4242)),
        ("answer.alive-true.json", HelperResponse::signalled(true)),
        ("answer.alive-false.json", HelperResponse::signalled(false)),
        (
            "answer.failure.json",
            HelperResponse::failure(
                ErrorCode::EnvNotAllowed,
                "environment variables not allowed: LD_PRELOAD, PYTHONPATH",
            ),
        ),
        (
            "answer.failure-non-ascii.json",
            HelperResponse::failure(
                ErrorCode::InvalidRequest,
                "arguments must be flags (--name or --name=value), got \"café\"",
            ),
        ),
        (
            "answer.mediator-failure.json",
            HelperResponse {
                ok: false,
                pid: None,
                alive: None,
                error: Some("Exited with status: 1".into()),
                code: None,
            },
        ),
    ]
}

/// Every request fixture and the value it must parse to.
fn kill_requests() -> Vec<(&'static str, HelperRequest)> {
    [
        ("request.kill-poll.json", 0),
        ("request.kill-sigint.json", 2),
        ("request.kill-sigterm.json", 15),
        ("request.kill-sigkill.json", 9),
    ]
    .into_iter()
    .map(|(name, signal)| (name, HelperRequest::Kill { pid: 4242, signal }))
    .collect()
}

const SPAWN_REQUEST: &str = "request.spawn.jupyterhub-6.1.1.json";

#[test]
fn answers_round_trip_byte_for_byte() {
    for (name, expected) in answers() {
        let text = fixture(name);
        let parsed: HelperResponse =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(parsed, expected, "{name}");
        assert_eq!(to_python_json(&parsed).unwrap(), text, "{name}");
        assert!(text.is_ascii(), "{name}: Python's json.dumps writes ASCII");
    }
}

#[test]
fn kill_requests_parse_as_jupyterhub_writes_them() {
    for (name, expected) in kill_requests() {
        let text = fixture(name);
        let parsed: HelperRequest =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(parsed, expected, "{name}");
        // Serializing again keeps every field (the key order may differ).
        let again: Value = serde_json::from_str(&to_python_json(&parsed).unwrap()).unwrap();
        assert_eq!(
            again,
            serde_json::from_str::<Value>(&text).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn the_jupyterhub_spawn_request_parses_and_keeps_every_field() {
    let text = fixture(SPAWN_REQUEST);
    let parsed: HelperRequest = serde_json::from_str(&text).unwrap();
    let HelperRequest::Spawn { args, env } = &parsed else {
        panic!("not a spawn: {parsed:?}")
    };
    assert_eq!(args, &["--debug"]);
    // What JupyterHub 6.1.1's Spawner.get_env and LocalProcessSpawner.user_env
    // send (LANG and PATH through LocalProcessSpawner.env_keep).
    let names: BTreeSet<&str> = env.keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> = [
        "LANG",
        "PATH",
        "JUPYTERHUB_API_TOKEN",
        "JPY_API_TOKEN",
        "JUPYTERHUB_CLIENT_ID",
        "JUPYTERHUB_COOKIE_HOST_PREFIX_ENABLED",
        "JUPYTERHUB_HOST",
        "JUPYTERHUB_OAUTH_CALLBACK_URL",
        "JUPYTERHUB_OAUTH_SCOPES",
        "JUPYTERHUB_OAUTH_ACCESS_SCOPES",
        "JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES",
        "JUPYTERHUB_USER",
        "JUPYTERHUB_SERVER_NAME",
        "JUPYTERHUB_API_URL",
        "JUPYTERHUB_ACTIVITY_URL",
        "JUPYTERHUB_BASE_URL",
        "JUPYTERHUB_SERVICE_PREFIX",
        "JUPYTERHUB_SERVICE_URL",
        "JUPYTERHUB_PUBLIC_URL",
        "JUPYTERHUB_PUBLIC_HUB_URL",
        "JUPYTERHUB_DEFAULT_URL",
        "USER",
        "HOME",
        "SHELL",
    ]
    .into();
    assert_eq!(names, expected);
    assert_eq!(env["JUPYTERHUB_USER"], "jhtest-alice");
    assert_eq!(
        env["JUPYTERHUB_OAUTH_ACCESS_SCOPES"],
        r#"["access:servers!server=jhtest-alice/", "access:servers!user=jhtest-alice"]"#
    );
    let again: Value = serde_json::from_str(&to_python_json(&parsed).unwrap()).unwrap();
    assert_eq!(again, serde_json::from_str::<Value>(&text).unwrap());
}

#[test]
fn every_fixture_is_checked() {
    let mut known: BTreeSet<String> = answers()
        .into_iter()
        .map(|(n, _)| n.to_owned())
        .chain(kill_requests().into_iter().map(|(n, _)| n.to_owned()))
        .collect();
    known.insert(SPAWN_REQUEST.to_owned());
    let present: BTreeSet<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    assert_eq!(
        present, known,
        "a fixture without a test, or a test without its fixture"
    );
}
