//! Roles and scopes through the REST API, as JupyterHub 6 applies them:
//! the built-in roles (`user`, `admin`, `server`, `token`), roles from the
//! configuration (for users, groups and services, with owner-relative
//! filters), each scope filter (`!user=`, `!group=`, `!server=`,
//! `!service=`), tokens whose scopes are intersected with their owner's,
//! and the error codes: 403 for a missing, invalid, expired or
//! under-scoped token, 404 where the token's scope covers only other
//! resources (so a resource it may not see looks like one that does not
//! exist), and JupyterHub's 400 for a token asking for more than its
//! owner has.

use jhub_tests::hub::{SERVICE, Setup, TestHub, run_jhub};
use jhub_tests::jupyterhub::Answer;
use serde_json::{Value, json};

/// Users (and an admin) made by the configuration, so that hubs whose
/// service token is narrow still have people to look at.
const PEOPLE: &str = r#"
[[roles]]
name = "admin"
users = ["jhtest-admin"]

[[roles]]
name = "jhtest-people"
scopes = []
users = ["jhtest-a", "jhtest-b", "jhtest-c"]
"#;

const NOT_VISIBLE: &str = "No access to resources or resources not found";

/// A hub whose service token has `scopes`, with [`PEOPLE`] and `extra`
/// in its configuration.
fn start(scopes: &[&str], extra: &str) -> TestHub {
    TestHub::start_with(&Setup {
        service_scopes: scopes.iter().map(|s| s.to_string()).collect(),
        extra: format!("{PEOPLE}\n{extra}"),
        ..Setup::default()
    })
}

/// The same with the harness's default service scopes (users, groups,
/// tokens, the hub, the proxy, services; not admin).
fn start_full(extra: &str) -> TestHub {
    TestHub::start_with(&Setup {
        extra: format!("{PEOPLE}\n{extra}"),
        ..Setup::default()
    })
}

/// A token for `user` from `jhub token` (works whatever the service may
/// do); `scopes` empty means the default (everything the user has).
fn cli_token(hub: &TestHub, user: &str, scopes: &[&str]) -> String {
    let config = hub.dir.path().join("jhub.toml");
    let mut args = vec!["--config", config.to_str().unwrap(), "token", user];
    let joined = scopes.join(",");
    if !scopes.is_empty() {
        args.extend(["--scopes", &joined]);
    }
    let (code, out, err) = run_jhub(&args);
    assert_eq!(code, 0, "jhub token {user}: {err}");
    out.trim().to_owned()
}

fn call(hub: &TestHub, token: &str, method: &str, path: &str, body: Option<Value>) -> Answer {
    hub.api_as(Some(token), method, path, body.as_ref())
}

fn assert_status(a: &Answer, status: u16, what: &str) {
    assert_eq!(a.status, status, "{what}: {}", a.body);
}

fn assert_not_visible(a: &Answer, what: &str) {
    assert_status(a, 404, what);
    assert_eq!(
        a.json(),
        json!({"status": 404, "message": NOT_VISIBLE}),
        "{what}"
    );
}

fn assert_needs(a: &Answer, scopes: &str, what: &str) {
    assert_status(a, 403, what);
    assert_eq!(
        a.json()["message"],
        format!("Action is not authorized with current scopes; requires any of [{scopes}]"),
        "{what}"
    );
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|m| m["name"].as_str().expect("a name").to_owned())
        .collect()
}

fn scopes_of(model: &Value) -> Vec<String> {
    model["scopes"]
        .as_array()
        .unwrap_or_else(|| panic!("no scopes in {model}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// Every implemented endpoint that needs a token, with a body where it
/// takes one.
fn authenticated_endpoints() -> Vec<(&'static str, &'static str, Option<Value>)> {
    vec![
        ("GET", "/info", None),
        ("GET", "/user", None),
        ("GET", "/users", None),
        ("POST", "/users", Some(json!({"usernames": ["jhtest-new"]}))),
        ("GET", "/users/jhtest-a", None),
        ("POST", "/users/jhtest-new", None),
        ("PATCH", "/users/jhtest-a", Some(json!({"admin": true}))),
        ("DELETE", "/users/jhtest-a", None),
        ("GET", "/users/jhtest-a/tokens", None),
        ("POST", "/users/jhtest-a/tokens", Some(json!({}))),
        ("GET", "/users/jhtest-a/tokens/a1", None),
        ("DELETE", "/users/jhtest-a/tokens/a1", None),
        ("GET", "/groups", None),
        ("POST", "/groups", Some(json!({"groups": ["jhtest-g"]}))),
        ("GET", "/groups/jhtest-g", None),
        ("POST", "/groups/jhtest-g", None),
        ("DELETE", "/groups/jhtest-g", None),
        (
            "POST",
            "/groups/jhtest-g/users",
            Some(json!({"users": ["jhtest-a"]})),
        ),
        (
            "DELETE",
            "/groups/jhtest-g/users",
            Some(json!({"users": ["jhtest-a"]})),
        ),
        ("PUT", "/groups/jhtest-g/properties", Some(json!({"k": 1}))),
        ("GET", "/services", None),
        ("GET", "/services/jhtest-svc", None),
        ("GET", "/proxy", None),
        ("POST", "/proxy", None),
        ("GET", "/authorizations/token/whatever", None),
        ("POST", "/shutdown", None),
    ]
}

#[test]
fn missing_invalid_expired_and_deleted_tokens_are_403() {
    let hub = start_full("");
    let before = hub.usernames();
    let missing = json!({"status": 403, "message": "Missing or invalid credentials."});
    for (method, path, body) in authenticated_endpoints() {
        for header in [
            None,
            Some("token not-a-token-at-all"),
            Some("Basic amh0ZXN0OnB3"),
            Some("token"),
            Some("bearer "),
        ] {
            let headers: Vec<(&str, &str)> = header.iter().map(|h| ("Authorization", *h)).collect();
            let a = hub
                .send(
                    method,
                    &format!("/hub/api{path}"),
                    None,
                    &headers,
                    body.as_ref().map(|b| b.to_string().into_bytes()),
                )
                .unwrap();
            assert_eq!(a.status, 403, "{method} {path} with {header:?}: {}", a.body);
            assert_eq!(a.json(), missing, "{method} {path} with {header:?}");
        }
    }
    // the version needs no token
    assert_eq!(hub.api_as(None, "GET", "/", None).status, 200);
    assert_eq!(hub.usernames(), before, "refused requests changed nothing");

    // an expired token is no token at all, as in JupyterHub
    let a = hub.api(
        "POST",
        "/users/jhtest-a/tokens",
        Some(&json!({"expires_in": 1, "note": "short-lived"})),
    );
    assert_status(&a, 201, "short-lived token");
    let short = a.json()["token"].as_str().unwrap().to_owned();
    let short_id = a.json()["id"].as_str().unwrap().to_owned();
    assert_status(&call(&hub, &short, "GET", "/user", None), 200, "fresh");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    for (method, path, body) in [
        ("GET", "/user", None),
        ("GET", "/users/jhtest-a", None),
        ("POST", "/users/jhtest-a/tokens", Some(json!({}))),
    ] {
        let a = call(&hub, &short, method, path, body);
        assert_eq!(a.status, 403, "expired token, {method} {path}: {}", a.body);
        assert_eq!(a.json(), missing);
    }
    // the deprecated lookup does not find it either, and the listing
    // drops it
    assert_status(
        &hub.api("GET", &format!("/authorizations/token/{short}"), None),
        404,
        "expired token lookup",
    );
    let list = hub.api("GET", "/users/jhtest-a/tokens", None).json();
    assert!(
        !list["api_tokens"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == short_id.as_str()),
        "{list}"
    );

    // a deleted token, and the token of a deleted user
    let t = hub.user_token("jhtest-b", None);
    let b_tokens = hub.api("GET", "/users/jhtest-b/tokens", None).json();
    let b_id = b_tokens["api_tokens"][0]["id"].as_str().unwrap().to_owned();
    assert_status(&call(&hub, &t, "GET", "/user", None), 200, "b's token");
    assert_status(
        &hub.api("DELETE", &format!("/users/jhtest-b/tokens/{b_id}"), None),
        204,
        "delete b's token",
    );
    assert_eq!(call(&hub, &t, "GET", "/user", None).json(), missing);
    let t = hub.user_token("jhtest-c", None);
    assert_status(&hub.api("DELETE", "/users/jhtest-c", None), 204, "delete c");
    assert_eq!(call(&hub, &t, "GET", "/user", None).json(), missing);
}

#[test]
fn under_scoped_tokens_get_403_and_other_resources_404() {
    let hub = start_full("");
    // a token that can only read one user's name
    let narrow = hub.user_token("jhtest-a", Some(&["read:users:name!user=jhtest-a"]));
    assert_status(
        &call(&hub, &narrow, "GET", "/users/jhtest-a", None),
        200,
        "own name",
    );
    // a scope held for other resources: 404, the same as a resource that
    // does not exist
    assert_not_visible(
        &call(&hub, &narrow, "GET", "/users/jhtest-b", None),
        "another user",
    );
    assert_not_visible(
        &call(&hub, &narrow, "GET", "/users/jhtest-ghost", None),
        "a user that does not exist",
    );
    // scopes not held at all: 403 naming what is needed
    assert_needs(
        &call(&hub, &narrow, "GET", "/users", None),
        "list:users",
        "list users",
    );
    assert_needs(
        &call(
            &hub,
            &narrow,
            "POST",
            "/users",
            Some(json!({"usernames": ["jhtest-x"]})),
        ),
        "admin:users",
        "create users",
    );
    assert_needs(
        &call(&hub, &narrow, "DELETE", "/users/jhtest-a", None),
        "delete:users",
        "delete self",
    );
    assert_needs(
        &call(
            &hub,
            &narrow,
            "PATCH",
            "/users/jhtest-a",
            Some(json!({"admin": true})),
        ),
        "admin:users",
        "patch self",
    );
    assert_needs(
        &call(&hub, &narrow, "GET", "/users/jhtest-a/tokens", None),
        "read:tokens",
        "list own tokens",
    );
    assert_needs(
        &call(&hub, &narrow, "GET", "/info", None),
        "read:hub",
        "info",
    );
    assert_needs(
        &call(&hub, &narrow, "GET", "/groups", None),
        "list:groups",
        "groups",
    );
    assert_needs(
        &call(&hub, &narrow, "GET", "/groups/jhtest-g", None),
        "read:groups, read:groups:name, read:roles:groups",
        "one group",
    );
    assert_needs(
        &call(&hub, &narrow, "GET", "/services", None),
        "list:services",
        "services",
    );
    assert_needs(
        &call(&hub, &narrow, "GET", "/proxy", None),
        "proxy",
        "proxy",
    );
    assert_needs(
        &call(&hub, &narrow, "POST", "/shutdown", None),
        "shutdown",
        "shutdown",
    );
    // without the tokens scope on its owner a token cannot make tokens
    let a = call(
        &hub,
        &narrow,
        "POST",
        "/users/jhtest-a/tokens",
        Some(json!({})),
    );
    assert_status(&a, 403, "token without tokens scope");
    assert_eq!(
        a.json()["message"],
        "User jhtest-a not found or no permissions to generate tokens"
    );
    // what the narrow token reads is only what its scope grants
    let model = call(&hub, &narrow, "GET", "/users/jhtest-a", None).json();
    let mut keys: Vec<&str> = model
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        ["admin", "groups", "kind", "name", "user_info"],
        "{model}"
    );
}

#[test]
fn user_filter() {
    let hub = start(
        &[
            "read:users!user=jhtest-a",
            "list:users!user=jhtest-a",
            "delete:users!user=jhtest-b",
            "admin:users!user=jhtest-c",
        ],
        "",
    );
    let a = hub.api("GET", "/users/jhtest-a", None);
    assert_status(&a, 200, "a");
    assert_eq!(a.json()["name"], "jhtest-a");
    assert!(a.json()["created"].is_string(), "{}", a.body);
    assert_not_visible(&hub.api("GET", "/users/jhtest-admin", None), "admin");
    assert_not_visible(&hub.api("GET", "/users/jhtest-nobody", None), "nobody");
    // listing: only the users the filters name (admin:users!user=c
    // implies list:users!user=c)
    assert_eq!(
        names(&hub.api("GET", "/users", None).json()),
        ["jhtest-a", "jhtest-c"]
    );
    assert_eq!(
        names(&hub.api("GET", "/users?name_filter=-c", None).json()),
        ["jhtest-c"]
    );
    // delete:users for b (and c, through admin:users), not for a
    assert_not_visible(&hub.api("DELETE", "/users/jhtest-a", None), "delete a");
    assert_status(&hub.api("DELETE", "/users/jhtest-b", None), 204, "delete b");
    // admin:users for c only
    assert_not_visible(
        &hub.api("PATCH", "/users/jhtest-a", Some(&json!({"admin": false}))),
        "patch a",
    );
    assert_status(
        &hub.api("PATCH", "/users/jhtest-c", Some(&json!({"admin": false}))),
        200,
        "patch c",
    );
    let a = hub.api("POST", "/users/jhtest-c", None);
    assert_status(&a, 409, "create c again");
    assert_not_visible(&hub.api("POST", "/users/jhtest-new", None), "create new");
    // creating several users needs admin:users on everyone
    assert_needs(
        &hub.api("POST", "/users", Some(&json!({"usernames": ["jhtest-c2"]}))),
        "admin:users",
        "create many",
    );
    assert_needs(
        &hub.api("GET", "/users/jhtest-a/tokens", None),
        "read:tokens",
        "tokens of a",
    );
}

#[test]
fn group_filter() {
    let g1 = "jhtest-g1";
    let hub = start(
        &[
            "read:users!group=jhtest-g1",
            "list:users!group=jhtest-g1",
            "groups!group=jhtest-g1",
        ],
        "",
    );
    let admin = cli_token(&hub, "jhtest-admin", &[]);
    for (group, member) in [(g1, "jhtest-a"), ("jhtest-g2", "jhtest-b")] {
        let a = call(
            &hub,
            &admin,
            "POST",
            &format!("/groups/{group}"),
            Some(json!({"users": [member]})),
        );
        assert_status(&a, 201, group);
    }
    // users: the members of g1
    assert_status(&hub.api("GET", "/users/jhtest-a", None), 200, "member");
    assert_not_visible(&hub.api("GET", "/users/jhtest-b", None), "non-member");
    assert_eq!(names(&hub.api("GET", "/users", None).json()), ["jhtest-a"]);
    // groups: g1 only
    assert_eq!(names(&hub.api("GET", "/groups", None).json()), [g1]);
    let a = hub.api("GET", &format!("/groups/{g1}"), None);
    assert_status(&a, 200, "g1");
    assert_eq!(a.json()["users"], json!(["jhtest-a"]));
    assert_not_visible(&hub.api("GET", "/groups/jhtest-g2", None), "g2");
    assert_not_visible(&hub.api("GET", "/groups/jhtest-none", None), "no group");
    // membership is looked up at request time: adding c makes c visible
    let a = hub.api(
        "POST",
        &format!("/groups/{g1}/users"),
        Some(&json!({"users": ["jhtest-c"]})),
    );
    assert_status(&a, 200, "add c");
    assert_eq!(a.json()["users"], json!(["jhtest-a", "jhtest-c"]));
    assert_status(&hub.api("GET", "/users/jhtest-c", None), 200, "c now");
    assert_eq!(
        names(&hub.api("GET", "/users", None).json()),
        ["jhtest-a", "jhtest-c"]
    );
    assert_not_visible(
        &hub.api(
            "POST",
            "/groups/jhtest-g2/users",
            Some(&json!({"users": ["jhtest-c"]})),
        ),
        "add to g2",
    );
    // properties of g1, not of g2
    let a = hub.api(
        "PUT",
        &format!("/groups/{g1}/properties"),
        Some(&json!({"course": "jhtest-101"})),
    );
    assert_status(&a, 200, "g1 properties");
    assert_eq!(a.json()["properties"], json!({"course": "jhtest-101"}));
    assert_not_visible(
        &hub.api("PUT", "/groups/jhtest-g2/properties", Some(&json!({}))),
        "g2 properties",
    );
    // `groups` does not delete or create groups
    assert_needs(
        &hub.api("DELETE", &format!("/groups/{g1}"), None),
        "delete:groups",
        "delete g1",
    );
    assert_needs(
        &hub.api("POST", "/groups/jhtest-g3", None),
        "admin:groups",
        "create g3",
    );
    // removing a from g1 hides a again
    let a = hub.api(
        "DELETE",
        &format!("/groups/{g1}/users"),
        Some(&json!({"users": ["jhtest-a"]})),
    );
    assert_status(&a, 200, "remove a");
    assert_eq!(a.json()["users"], json!(["jhtest-c"]));
    assert_not_visible(&hub.api("GET", "/users/jhtest-a", None), "a after removal");
}

#[test]
fn server_filter() {
    let hub = start(
        &[
            "read:servers!server=jhtest-a/",
            "list:users!server=jhtest-a/",
            "tokens",
        ],
        "",
    );
    // a server filter on list:users is not widened to all users: a bare
    // 403, as JupyterHub answers
    let a = hub.api("GET", "/users", None);
    assert_status(&a, 403, "list with a server filter");
    assert_eq!(a.json(), json!({"status": 403, "message": "Forbidden"}));
    // a server filter does not cover its owner's user model
    assert_not_visible(&hub.api("GET", "/users/jhtest-a", None), "a's model");
    // tokens: a server scope meets its owner's user scope; another
    // user's server is not the owner's to give
    let a = hub.api(
        "POST",
        "/users/jhtest-a/tokens",
        Some(&json!({"scopes": ["access:servers!server=jhtest-a/"]})),
    );
    assert_status(&a, 201, "own server");
    let scopes = scopes_of(&a.json());
    assert!(
        scopes.contains(&"access:servers!server=jhtest-a/".to_owned()),
        "{scopes:?}"
    );
    let a = hub.api(
        "POST",
        "/users/jhtest-a/tokens",
        Some(&json!({"scopes": ["access:servers!server=jhtest-b/"]})),
    );
    assert_status(&a, 400, "another user's server");
    assert_eq!(
        a.json()["message"],
        "Not assigning requested scopes access:servers!server=jhtest-b/ not held by User jhtest-a"
    );
    // a token with only a server scope still identifies its owner, and
    // sees no servers of the owner's user model
    let t = hub.user_token("jhtest-a", Some(&["read:servers!server=jhtest-a/"]));
    let me = call(&hub, &t, "GET", "/user", None).json();
    assert_eq!(me["name"], "jhtest-a");
    // tokens carry their owner's identify scopes, as in JupyterHub
    assert_eq!(
        scopes_of(&me),
        [
            "read:servers!server=jhtest-a/",
            "read:users:groups!user=jhtest-a",
            "read:users:name!user=jhtest-a"
        ]
    );
    let model = call(&hub, &t, "GET", "/users/jhtest-a", None);
    assert_status(&model, 200, "a's own model through identify scopes");
    assert!(model.json().get("servers").is_none(), "{}", model.body);
    assert_not_visible(
        &call(&hub, &t, "GET", "/users/jhtest-b", None),
        "b through a's token",
    );
}

#[test]
fn service_filter() {
    let extra = r#"
[[services]]
name = "jhtest-other"
url = "http://127.0.0.1:9"

[[roles]]
name = "jhtest-svc-self"
scopes = ["read:services!service", "list:services!service"]
services = ["jhtest-svc"]
"#;
    let hub = start(&["read:services:name!service=jhtest-other"], extra);
    // `!service` in a role means the service holding the role
    let a = hub.api("GET", "/services", None);
    assert_status(&a, 200, "services");
    let listed: Vec<String> = a.json().as_object().unwrap().keys().cloned().collect();
    assert_eq!(listed, [SERVICE], "{}", a.body);
    let own = hub.api("GET", &format!("/services/{SERVICE}"), None);
    assert_status(&own, 200, "own service");
    assert!(own.json().get("url").is_some(), "{}", own.body);
    // the other service: its name only
    let other = hub.api("GET", "/services/jhtest-other", None);
    assert_status(&other, 200, "other service");
    let mut keys: Vec<String> = other.json().as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["admin", "kind", "name"], "{}", other.body);
    assert_not_visible(
        &hub.api("GET", "/services/jhtest-ghost", None),
        "no such service",
    );
    let me = hub.api("GET", "/user", None).json();
    assert_eq!(me["kind"], "service");
    let scopes = scopes_of(&me);
    assert!(
        scopes.contains(&format!("read:services!service={SERVICE}"))
            && scopes.contains(&"read:services:name!service=jhtest-other".to_owned()),
        "{scopes:?}"
    );
    // a user may see no services at all
    let t = hub_user_token(&hub, "jhtest-a");
    assert_needs(
        &call(&hub, &t, "GET", "/services", None),
        "list:services",
        "user lists services",
    );
    assert_needs(
        &call(&hub, &t, "GET", &format!("/services/{SERVICE}"), None),
        "read:services, read:services:name, read:roles:services",
        "user reads a service",
    );
}

fn hub_user_token(hub: &TestHub, user: &str) -> String {
    cli_token(hub, user, &[])
}

#[test]
fn builtin_roles() {
    let hub = start_full("");
    // `user`: the user's own resources
    let a_token = hub.user_token("jhtest-a", None);
    let me = call(&hub, &a_token, "GET", "/user", None).json();
    // `user`, and the configuration's role that made the account
    assert_eq!(me["roles"], json!(["user", "jhtest-people"]));
    assert_eq!(me["admin"], false);
    assert!(
        scopes_of(&me).contains(&"tokens!user=jhtest-a".to_owned()),
        "{me}"
    );
    assert_status(
        &call(&hub, &a_token, "GET", "/users/jhtest-a", None),
        200,
        "self",
    );
    assert_status(
        &call(&hub, &a_token, "GET", "/users/jhtest-a/tokens", None),
        200,
        "own tokens",
    );
    assert_not_visible(&call(&hub, &a_token, "GET", "/users/jhtest-b", None), "b");
    assert_needs(
        &call(&hub, &a_token, "GET", "/users", None),
        "list:users",
        "list",
    );
    let a = call(
        &hub,
        &a_token,
        "POST",
        "/users/jhtest-b/tokens",
        Some(json!({})),
    );
    assert_status(&a, 403, "token for b");
    assert_eq!(
        a.json()["message"],
        "User jhtest-b not found or no permissions to generate tokens"
    );
    let a = call(
        &hub,
        &a_token,
        "POST",
        "/users/jhtest-a/tokens",
        Some(json!({})),
    );
    assert_status(&a, 201, "own token");
    assert_eq!(a.json()["note"], "Requested via api");

    // `admin`: everything
    let admin = hub.user_token("jhtest-admin", None);
    let me = call(&hub, &admin, "GET", "/user", None).json();
    assert_eq!(me["admin"], true);
    assert!(
        me["roles"].as_array().unwrap().contains(&json!("admin")),
        "{me}"
    );
    for path in [
        "/users",
        "/groups",
        "/services",
        "/info",
        "/users/jhtest-a/tokens",
    ] {
        assert_status(&call(&hub, &admin, "GET", path, None), 200, path);
    }
    // only admins make admins; a's existing inherit token follows a's
    // roles as they change
    assert_needs(
        &call(&hub, &a_token, "GET", "/info", None),
        "read:hub",
        "a before promotion",
    );
    let a = hub.api("PATCH", "/users/jhtest-a", Some(&json!({"admin": true})));
    assert_status(&a, 403, "non-admin service grants admin");
    assert_eq!(
        a.json()["message"],
        "Only admins can grant admin permissions"
    );
    let a = call(
        &hub,
        &admin,
        "PATCH",
        "/users/jhtest-a",
        Some(json!({"admin": true})),
    );
    assert_status(&a, 200, "admin grants admin");
    assert_eq!(a.json()["admin"], true);
    let roles = a.json()["roles"].clone();
    assert!(
        roles.as_array().unwrap().contains(&json!("admin"))
            && roles.as_array().unwrap().contains(&json!("user")),
        "{roles}"
    );
    assert_status(
        &call(&hub, &a_token, "GET", "/info", None),
        200,
        "a promoted",
    );
    // a non-admin may not touch an admin
    let a = hub.api("PATCH", "/users/jhtest-a", Some(&json!({"admin": false})));
    assert_status(&a, 403, "non-admin modifies admin");
    assert_eq!(a.json()["message"], "Only admins can modify other admins");
    assert_status(
        &call(
            &hub,
            &admin,
            "PATCH",
            "/users/jhtest-a",
            Some(json!({"admin": false})),
        ),
        200,
        "demote",
    );
    assert_needs(
        &call(&hub, &a_token, "GET", "/info", None),
        "read:hub",
        "a demoted",
    );

    // `server`: activity on the user's own resources, and identification
    let a = hub.api(
        "POST",
        "/users/jhtest-b/tokens",
        Some(&json!({"roles": ["server"]})),
    );
    assert_status(&a, 201, "server-role token");
    assert_eq!(a.json()["roles"], json!([]), "tokens keep no roles");
    let server = a.json()["token"].as_str().unwrap().to_owned();
    let me = call(&hub, &server, "GET", "/user", None).json();
    assert!(
        scopes_of(&me).contains(&"users:activity!user=jhtest-b".to_owned()),
        "{me}"
    );
    let model = call(&hub, &server, "GET", "/users/jhtest-b", None);
    assert_status(&model, 200, "server token reads its user");
    assert!(
        model.json().get("last_activity").is_some(),
        "{}",
        model.body
    );
    assert!(model.json().get("created").is_none(), "{}", model.body);
    assert_not_visible(&call(&hub, &server, "GET", "/users/jhtest-a", None), "a");
    assert_needs(
        &call(&hub, &server, "GET", "/users/jhtest-b/tokens", None),
        "read:tokens",
        "server token lists tokens",
    );

    // `token`: the default, the owner's scopes
    let a = hub.api(
        "POST",
        "/users/jhtest-b/tokens",
        Some(&json!({"roles": ["token"]})),
    );
    assert_status(&a, 201, "token-role token");
    let by_role = a.json()["token"].as_str().unwrap().to_owned();
    let default = hub.user_token("jhtest-b", None);
    assert_eq!(
        scopes_of(&call(&hub, &by_role, "GET", "/user", None).json()),
        scopes_of(&call(&hub, &default, "GET", "/user", None).json())
    );
    // roles and scopes at once, or an unknown role: 400
    let a = hub.api(
        "POST",
        "/users/jhtest-b/tokens",
        Some(&json!({"roles": ["token"], "scopes": ["read:users"]})),
    );
    assert_status(&a, 400, "roles and scopes");
    assert_eq!(
        a.json()["message"],
        "Can only assign one of scopes or roles when creating tokens."
    );
    let a = hub.api(
        "POST",
        "/users/jhtest-b/tokens",
        Some(&json!({"roles": ["jhtest-nonexistent"]})),
    );
    assert_status(&a, 400, "unknown role");
    assert_eq!(a.json()["message"], "No such role: jhtest-nonexistent");
    // a role the owner does not have: JupyterHub answers 400
    let a = hub.api(
        "POST",
        "/users/jhtest-b/tokens",
        Some(&json!({"roles": ["admin"]})),
    );
    assert_status(&a, 400, "admin role for a non-admin");
    assert!(
        a.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("Not assigning requested scopes "),
        "{}",
        a.body
    );
}

#[test]
fn custom_roles_and_token_scopes_follow_the_owner() {
    let extra = r#"
[[roles]]
name = "jhtest-auditor"
description = "Reads every user and the hub"
scopes = ["read:users", "list:users", "read:hub"]
users = ["jhtest-c"]

[[roles]]
name = "jhtest-readers"
scopes = ["list:users", "read:users"]
groups = ["jhtest-readers"]
"#;
    let hub = start_full(extra);
    // a user's role from the configuration, as a token role
    let a = hub.api(
        "POST",
        "/users/jhtest-c/tokens",
        Some(&json!({"roles": ["jhtest-auditor"]})),
    );
    assert_status(&a, 201, "auditor token");
    let auditor = a.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(
        names(&call(&hub, &auditor, "GET", "/users", None).json()).len(),
        4
    );
    assert_status(&call(&hub, &auditor, "GET", "/info", None), 200, "info");
    assert_needs(
        &call(
            &hub,
            &auditor,
            "POST",
            "/users",
            Some(json!({"usernames": ["jhtest-x"]})),
        ),
        "admin:users",
        "auditor creates",
    );
    // the token role is the role's scopes, not the owner's other ones
    assert_needs(
        &call(&hub, &auditor, "GET", "/users/jhtest-c/tokens", None),
        "read:tokens",
        "auditor token lists tokens",
    );
    // a has no such role
    let a = hub.api(
        "POST",
        "/users/jhtest-a/tokens",
        Some(&json!({"roles": ["jhtest-auditor"]})),
    );
    assert_status(&a, 400, "a asks for the auditor role");

    // a group's role: a's token asks for what a holds through the group
    let admin = cli_token(&hub, "jhtest-admin", &[]);
    let add = call(
        &hub,
        &admin,
        "POST",
        "/groups/jhtest-readers/users",
        Some(json!({"users": ["jhtest-a"]})),
    );
    assert_status(&add, 200, "join readers");
    let a = hub.api(
        "POST",
        "/users/jhtest-a/tokens",
        Some(&json!({"scopes": ["list:users", "read:users"], "note": "jhtest reader"})),
    );
    assert_status(&a, 201, "reader token");
    let reader = a.json()["token"].as_str().unwrap().to_owned();
    let reader_id = a.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        names(&call(&hub, &reader, "GET", "/users", None).json()).len(),
        4
    );
    // leaving the group takes the scopes from the token too: its scopes
    // are intersected with its owner's at each request
    let remove = call(
        &hub,
        &admin,
        "DELETE",
        "/groups/jhtest-readers/users",
        Some(json!({"users": ["jhtest-a"]})),
    );
    assert_status(&remove, 200, "leave readers");
    assert_needs(
        &call(&hub, &reader, "GET", "/users", None),
        "list:users",
        "after leaving",
    );
    assert_status(
        &call(&hub, &reader, "GET", "/users/jhtest-a", None),
        200,
        "self through what remains",
    );
    assert_not_visible(
        &call(&hub, &reader, "GET", "/users/jhtest-b", None),
        "b after leaving",
    );
    let model = hub
        .api("GET", &format!("/users/jhtest-a/tokens/{reader_id}"), None)
        .json();
    let scopes = scopes_of(&model);
    assert!(!scopes.contains(&"list:users".to_owned()), "{scopes:?}");
    assert!(
        scopes.contains(&"read:users!user=jhtest-a".to_owned()),
        "{scopes:?}"
    );
    // asking for more than the owner has is refused with JupyterHub's
    // status and message
    let a = hub.api(
        "POST",
        "/users/jhtest-a/tokens",
        Some(&json!({"scopes": ["list:users"]})),
    );
    assert_status(&a, 400, "more than the owner has");
    assert_eq!(
        a.json()["message"],
        "Not assigning requested scopes list:users,read:users:name not held by User jhtest-a"
    );
    for (scopes, message) in [
        (
            json!(["jhtest-nonsense"]),
            "Scope 'jhtest-nonsense' for token does not exist",
        ),
        (json!(["all"]), "Draft scope 'all' is now called 'inherit'"),
    ] {
        let a = hub.api(
            "POST",
            "/users/jhtest-a/tokens",
            Some(&json!({ "scopes": scopes })),
        );
        assert_status(&a, 400, "bad scope");
        assert_eq!(a.json()["message"], message);
    }
    let a = hub.api(
        "POST",
        "/users/jhtest-a/tokens",
        Some(&json!({"scopes": ["read:users!bogus=x"]})),
    );
    assert_status(&a, 400, "bad filter");
}

#[test]
fn token_endpoints() {
    let hub = start_full("");
    let a = hub.api(
        "POST",
        "/users/jhtest-a/tokens",
        Some(&json!({
            "scopes": ["read:users!user=jhtest-a"],
            "note": "jhtest note",
            "expires_in": 3600,
        })),
    );
    assert_status(&a, 201, "create");
    let t = a.json();
    let mut keys: Vec<&str> = t.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "created",
            "expires_at",
            "id",
            "kind",
            "last_activity",
            "note",
            "oauth_client",
            "roles",
            "scopes",
            "session_id",
            "token",
            "user"
        ]
    );
    assert_eq!(t["note"], "jhtest note");
    assert_eq!(t["user"], "jhtest-a");
    assert_eq!(t["last_activity"], Value::Null);
    let created = t["created"].as_str().unwrap();
    let expires = t["expires_at"].as_str().unwrap();
    assert!(expires > created, "{expires} after {created}");
    // roughly an hour later: the hour digit moved (or the day did)
    assert_ne!(&expires[..13], &created[..13], "{expires} vs {created}");
    let id = t["id"].as_str().unwrap().to_owned();
    let token = t["token"].as_str().unwrap().to_owned();
    assert_eq!(
        scopes_of(&t),
        [
            "read:users!user=jhtest-a",
            "read:users:activity!user=jhtest-a",
            "read:users:groups!user=jhtest-a",
            "read:users:name!user=jhtest-a"
        ]
    );
    // the default note says who asked
    let other = hub.api("POST", "/users/jhtest-a/tokens", None);
    assert_status(&other, 201, "no body");
    assert_eq!(
        other.json()["note"],
        format!("Requested via api by service {SERVICE}")
    );
    assert_eq!(other.json()["expires_at"], Value::Null);
    // list and get; the token itself is never shown again
    let list = hub.api("GET", "/users/jhtest-a/tokens", None).json();
    let listed = list["api_tokens"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{list}");
    assert!(listed.iter().all(|m| m.get("token").is_none()), "{list}");
    let one = hub.api("GET", &format!("/users/jhtest-a/tokens/{id}"), None);
    assert_status(&one, 200, "get");
    assert_eq!(one.json()["id"], id.as_str());
    // use records activity
    assert_status(
        &call(&hub, &token, "GET", "/users/jhtest-a", None),
        200,
        "use",
    );
    let one = hub
        .api("GET", &format!("/users/jhtest-a/tokens/{id}"), None)
        .json();
    assert!(one["last_activity"].is_string(), "{one}");
    // the same id under another user is not found
    let a = hub.api("GET", &format!("/users/jhtest-b/tokens/{id}"), None);
    assert_status(&a, 404, "wrong owner");
    assert_eq!(
        a.json()["message"],
        format!("No such token {id} for user jhtest-b")
    );
    for bad in ["a999", "zz", "a", "1", "a-1"] {
        assert_status(
            &hub.api("GET", &format!("/users/jhtest-a/tokens/{bad}"), None),
            404,
            bad,
        );
    }
    let a = hub.api("GET", "/users/jhtest-ghost/tokens", None);
    assert_status(&a, 404, "no such user");
    assert_eq!(a.json()["message"], "No such user: jhtest-ghost");
    let a = hub.api("POST", "/users/jhtest-ghost/tokens", Some(&json!({})));
    assert_status(&a, 403, "token for nobody");
    assert_eq!(
        a.json()["message"],
        "Service jhtest-ghost not found or no permissions to generate tokens"
    );
    // bad bodies and values
    for (body, message) in [
        (json!([1]), "Body must be a JSON dict or empty"),
        (
            json!({"expires_in": 0}),
            "expires_in must be a positive integer or null, not 0",
        ),
        (
            json!({"expires_in": -5}),
            "expires_in must be a positive integer or null, not -5",
        ),
        (
            json!({"expires_in": "x"}),
            "token expires_in must be null or integer, not \"x\"",
        ),
        (
            json!({"expires_in": 1.5}),
            "token expires_in must be null or integer, not 1.5",
        ),
        (
            json!({"expires_in": i64::MAX}),
            "expires_in is too large: 9223372036854775807 seconds",
        ),
        (
            json!({"scopes": "read:users"}),
            "token scopes must be null or a list of strings, not \"read:users\"",
        ),
        (
            json!({"roles": [1]}),
            "token roles must be null or a list of strings, not [1]",
        ),
        (
            json!({"note": 5}),
            "token note must be null or a string, not 5",
        ),
        (
            json!({"note": "n".repeat(1024)}),
            "token note must be at most 1023 characters",
        ),
    ] {
        let a = hub.api("POST", "/users/jhtest-a/tokens", Some(&body));
        assert_status(&a, 400, &body.to_string());
        assert_eq!(a.json()["message"], message, "{body}");
    }
    let count = hub.api("GET", "/users/jhtest-a/tokens", None).json()["api_tokens"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(count, 2, "refused requests made no tokens");
    // the deprecated lookup identifies the owner
    let who = hub.api("GET", &format!("/authorizations/token/{token}"), None);
    assert_status(&who, 200, "lookup");
    assert_eq!(who.json()["name"], "jhtest-a");
    let gone = hub.api("POST", "/authorizations/token", Some(&json!({})));
    assert_status(&gone, 404, "removed endpoint");
    assert!(
        gone.json()["message"]
            .as_str()
            .unwrap()
            .contains("/hub/api/users/:user/tokens"),
        "{}",
        gone.body
    );
    // delete
    assert_status(
        &hub.api("DELETE", &format!("/users/jhtest-a/tokens/{id}"), None),
        204,
        "delete",
    );
    assert_status(
        &hub.api("DELETE", &format!("/users/jhtest-a/tokens/{id}"), None),
        404,
        "delete again",
    );
    assert_status(
        &call(&hub, &token, "GET", "/user", None),
        403,
        "deleted token",
    );
    assert_status(
        &hub.api("GET", &format!("/authorizations/token/{token}"), None),
        404,
        "lookup of a deleted token",
    );
}
