//! The `jhub` command line: configuration errors, the cookie secret's
//! permissions, `--generate-config`, `jhub token`, `jhub upgrade-db`, and
//! persistence across restarts.

use std::os::unix::fs::PermissionsExt;

use jhub_tests::hub::{TestHub, run_jhub};
use jhub_tests::jupyterhub::free_port;
use serde_json::json;

fn config_arg(hub: &TestHub) -> String {
    hub.dir.path().join("jhub.toml").display().to_string()
}

#[test]
fn unknown_key_stops_start_up_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jhub.toml");
    std::fs::write(&path, "[hub]\nhub_bind_urll = \"http://127.0.0.1:1\"\n").unwrap();
    let (code, _, err) = run_jhub(&["--config", path.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(
        err.contains("hub.hub_bind_urll") && err.contains("hub_bind_url"),
        "{err}"
    );
    let (code, _, err) = run_jhub(&["--config", path.to_str().unwrap(), "--hub.bogus=1"]);
    assert_ne!(code, 0, "{err}");
    // a missing explicit file is an error
    let (code, _, err) = run_jhub(&["--config", "/nonexistent/jhub.toml"]);
    assert_ne!(code, 0);
    assert!(err.contains("/nonexistent/jhub.toml"), "{err}");
}

#[test]
fn readable_cookie_secret_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("cookie_secret");
    std::fs::write(&secret, "ab".repeat(32)).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, _, err) = run_jhub(&[
        &format!("--hub.cookie_secret_file={}", secret.display()),
        &format!("--hub.db_url=sqlite://{}/jhub.sqlite", dir.path().display()),
        &format!("--hub.hub_bind_url=http://127.0.0.1:{}", free_port()),
        "--config",
        "/dev/null",
    ]);
    assert_ne!(code, 0);
    assert!(
        err.contains("cookie secret") && err.contains("0644"),
        "{err}"
    );
}

#[test]
fn generated_config_is_a_valid_config() {
    let (code, out, _) = run_jhub(&["--generate-config"]);
    assert_eq!(code, 0);
    assert!(out.contains("[hub]") && out.contains("# hub_bind_url"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jhub.toml");
    std::fs::write(&path, &out).unwrap();
    // the generated file plus flags for a private directory: a token for a
    // configured admin proves the file was accepted and applied
    let (code, token, err) = run_jhub(&[
        "--config",
        path.to_str().unwrap(),
        &format!("--hub.db_url=sqlite://{}/jhub.sqlite", dir.path().display()),
        &format!(
            "--hub.cookie_secret_file={}/cookie_secret",
            dir.path().display()
        ),
        "--authenticator.admin_users=[\"jhtest-admin\"]",
        "token",
        "jhtest-admin",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(token.trim().len(), 64, "{token}");
}

#[test]
fn token_command() {
    let hub = TestHub::start();
    hub.create_users(&["jhtest-user1"]);
    let (code, out, err) = run_jhub(&["--config", &config_arg(&hub), "token", "jhtest-user1"]);
    assert_eq!(code, 0, "{err}");
    let token = out.trim();
    let me = hub.api_as(Some(token), "GET", "/user", None);
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["name"], "jhtest-user1");
    let (code, out, err) = run_jhub(&[
        "--config",
        &config_arg(&hub),
        "token",
        "jhtest-user1",
        "--scopes",
        "read:users:name!user=jhtest-user1",
    ]);
    assert_eq!(code, 0, "{err}");
    let me = hub.api_as(Some(out.trim()), "GET", "/user", None).json();
    // tokens always carry their owner's identify scopes, as in JupyterHub
    assert_eq!(
        me["scopes"],
        json!([
            "read:users:groups!user=jhtest-user1",
            "read:users:name!user=jhtest-user1"
        ])
    );
    let (code, _, err) = run_jhub(&["--config", &config_arg(&hub), "token", "jhtest-nobody"]);
    assert_ne!(code, 0);
    assert!(err.contains("No such user: jhtest-nobody"), "{err}");
}

#[test]
fn restart_keeps_users_and_tokens() {
    let mut hub = TestHub::start();
    hub.create_users(&["jhtest-user1"]);
    let token = hub.user_token("jhtest-user1", None);
    hub.restart();
    assert_eq!(hub.usernames(), ["jhtest-user1"]);
    let me = hub.api_as(Some(&token), "GET", "/user", None);
    assert_eq!(me.status, 200, "{}", me.body);
    // the service token from the config still works (stored once)
    assert_eq!(hub.api("GET", "/user", None).json()["token_id"], "a1");
}

#[test]
fn upgrade_db_backs_up_first() {
    let mut hub = TestHub::start();
    hub.create_users(&["jhtest-user1"]);
    hub.stop();
    let (code, _, err) = run_jhub(&["--config", &config_arg(&hub), "upgrade-db"]);
    assert_eq!(code, 0, "{err}");
    let backups: Vec<_> = std::fs::read_dir(hub.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("jhub.sqlite.bak-")
        })
        .collect();
    assert_eq!(backups.len(), 1, "{err}");
    assert!(backups[0].metadata().unwrap().len() > 0);
}
