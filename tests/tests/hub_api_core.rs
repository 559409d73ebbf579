//! The hub's REST API core against the built `jhub`: users, tokens,
//! groups, services, scopes (403 versus 404), pagination, hostile input.

use jhub_tests::hub::{SERVICE, Setup, TestHub};
use serde_json::{Value, json};

#[test]
fn root_info_and_whoami() {
    let hub = TestHub::start();
    let a = hub.api_as(None, "GET", "/", None);
    assert_eq!(a.status, 200);
    assert!(a.json()["version"].is_string());
    let info = hub.api("GET", "/info", None);
    assert_eq!(info.status, 200, "{}", info.body);
    assert!(
        info.json()["authenticator"]["class"]
            .as_str()
            .unwrap()
            .contains("Dummy")
    );
    let me = hub.api("GET", "/user", None).json();
    assert_eq!(me["kind"], "service");
    assert_eq!(me["name"], SERVICE);
    assert_eq!(me["token_id"], "a1");
    let scopes: Vec<&str> = me["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        scopes.contains(&"admin:users") && scopes.contains(&"read:users:name"),
        "{scopes:?}"
    );
    assert!(!scopes.contains(&"admin:servers"), "{scopes:?}");
    let health = hub.send("GET", "/hub/health", None, &[], None).unwrap();
    assert_eq!(health.status, 200);
}

#[test]
fn missing_bad_and_expired_tokens_are_403() {
    let hub = TestHub::start();
    for token in [None, Some("not-a-token-at-all")] {
        let a = hub.api_as(token, "GET", "/users", None);
        assert_eq!(a.status, 403, "{}", a.body);
        assert_eq!(
            a.json(),
            json!({"status": 403, "message": "Missing or invalid credentials."})
        );
    }
    // ?token= is not accepted on the API, as in JupyterHub 6
    let a = hub
        .send(
            "GET",
            &format!("/hub/api/users?token={}", hub.token),
            None,
            &[],
            None,
        )
        .unwrap();
    assert_eq!(a.status, 403);
    // Bearer works as well as token
    let a = hub
        .send(
            "GET",
            "/hub/api/user",
            None,
            &[("Authorization", &format!("Bearer {}", hub.token))],
            None,
        )
        .unwrap();
    assert_eq!(a.status, 200);
    // an expired token
    hub.create_users(&["jhtest-user1"]);
    let a = hub.api(
        "POST",
        "/users/jhtest-user1/tokens",
        Some(&json!({"expires_in": 1})),
    );
    assert_eq!(a.status, 201, "{}", a.body);
    let t = a.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(hub.api_as(Some(&t), "GET", "/user", None).status, 200);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert_eq!(hub.api_as(Some(&t), "GET", "/user", None).status, 403);
}

#[test]
fn users_lifecycle() {
    let hub = TestHub::start();
    let a = hub.api(
        "POST",
        "/users",
        Some(&json!({"usernames": ["jhtest-user1", "JHTest-User2 "]})),
    );
    assert_eq!(a.status, 201, "{}", a.body);
    let models = a.json();
    assert_eq!(models[1]["name"], "jhtest-user2");
    for key in [
        "kind",
        "name",
        "admin",
        "roles",
        "groups",
        "server",
        "pending",
        "created",
        "last_activity",
    ] {
        assert!(models[0].get(key).is_some(), "{key} in {}", models[0]);
    }
    assert_eq!(models[0]["roles"], json!(["user"]));
    assert_eq!(
        hub.api(
            "POST",
            "/users",
            Some(&json!({"usernames": ["jhtest-user1"]}))
        )
        .status,
        409
    );
    assert_eq!(hub.api("POST", "/users/jhtest-user1", None).status, 409);
    let a = hub.api("POST", "/users/jhtest-user3", None);
    assert_eq!(a.status, 201, "{}", a.body);
    // only admins make admins
    let a = hub.api("POST", "/users/jhtest-user4", Some(&json!({"admin": true})));
    assert_eq!(a.status, 403, "{}", a.body);
    let a = hub.api("GET", "/users/jhtest-user1", None);
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["name"], "jhtest-user1");
    assert_eq!(hub.api("GET", "/users/jhtest-nobody", None).status, 404);
    // rename
    let a = hub.api(
        "PATCH",
        "/users/jhtest-user3",
        Some(&json!({"name": "jhtest-user5"})),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["name"], "jhtest-user5");
    assert_eq!(
        hub.api("PATCH", "/users/jhtest-user5", Some(&json!({"bogus": 1})))
            .status,
        400
    );
    assert_eq!(
        hub.api(
            "PATCH",
            "/users/jhtest-user5",
            Some(&json!({"name": "../x"}))
        )
        .status,
        400
    );
    // delete
    assert_eq!(hub.api("DELETE", "/users/jhtest-user5", None).status, 204);
    assert_eq!(hub.api("DELETE", "/users/jhtest-user5", None).status, 404);
    assert_eq!(hub.usernames(), ["jhtest-user1", "jhtest-user2"]);
    // filters
    let a = hub.api("GET", "/users?name_filter=USER2", None);
    assert_eq!(a.json().as_array().unwrap().len(), 1);
    assert_eq!(
        hub.api("GET", "/users?state=inactive", None)
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        hub.api("GET", "/users?state=active", None).json(),
        json!([])
    );
    assert_eq!(hub.api("GET", "/users?state=bogus", None).status, 400);
    assert_eq!(
        hub.api("GET", "/users?sort=-name", None).json()[0]["name"],
        "jhtest-user2"
    );
    assert_eq!(hub.api("GET", "/users?limit=x", None).status, 400);
}

#[test]
fn pagination() {
    let hub = TestHub::start();
    let names: Vec<String> = (0..5).map(|i| format!("jhtest-p{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    hub.create_users(&refs);
    let accept = [("Accept", "application/jupyterhub-pagination+json")];
    let a = hub
        .send(
            "GET",
            "/hub/api/users?limit=2&offset=1",
            Some(&hub.token),
            &accept,
            None,
        )
        .unwrap();
    let page = a.json();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["items"][0]["name"], "jhtest-p1");
    assert_eq!(page["_pagination"]["total"], 5);
    assert_eq!(page["_pagination"]["next"]["offset"], 3);
    let next = page["_pagination"]["next"]["url"].as_str().unwrap();
    assert!(
        next.contains("/hub/api/users?") && next.contains("offset=3"),
        "{next}"
    );
    let last = hub
        .send(
            "GET",
            "/hub/api/users?limit=2&offset=4",
            Some(&hub.token),
            &accept,
            None,
        )
        .unwrap()
        .json();
    assert_eq!(last["_pagination"]["next"], Value::Null);
    // without the media type: a plain list
    assert!(hub.api("GET", "/users?limit=2", None).json().is_array());
    let groups = hub
        .send("GET", "/hub/api/groups", Some(&hub.token), &accept, None)
        .unwrap()
        .json();
    assert_eq!(groups["_pagination"]["total"], 0);
}

#[test]
fn hostile_usernames_are_refused_and_change_nothing() {
    let hub = TestHub::start();
    hub.create_users(&["jhtest-user1"]);
    let before = hub.usernames();
    let long = "a".repeat(300);
    for name in [
        "-u root",
        "../x",
        "a b",
        "jhtest-\u{430}lice",
        "",
        &long,
        "x/y",
        "$(id)",
    ] {
        let a = hub.api("POST", "/users", Some(&json!({"usernames": [name]})));
        assert_eq!(a.status, 400, "{name:?}: {}", a.body);
        assert!(
            a.json()["message"]
                .as_str()
                .unwrap()
                .contains("usernames must be"),
            "{}",
            a.body
        );
        // one bad name refuses the whole request
        let a = hub.api(
            "POST",
            "/users",
            Some(&json!({"usernames": ["jhtest-ok", name]})),
        );
        assert_eq!(a.status, 400, "{}", a.body);
    }
    let a = hub
        .send("POST", "/hub/api/users/a%20b", Some(&hub.token), &[], None)
        .unwrap();
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(hub.usernames(), before);
    // ALL is lowercased: it cannot be sudoers' ALL keyword
    let a = hub.api("POST", "/users", Some(&json!({"usernames": ["ALL"]})));
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.json()[0]["name"], "all");
}

#[test]
fn malformed_and_oversized_bodies() {
    let hub = TestHub::start();
    let before = hub.usernames();
    let a = hub
        .send(
            "POST",
            "/hub/api/users",
            Some(&hub.token),
            &[],
            Some(b"{\"usernames\": [".to_vec()),
        )
        .unwrap();
    assert_eq!(a.status, 400);
    assert_eq!(
        a.json(),
        json!({"status": 400, "message": "Invalid JSON in body of request"})
    );
    let names: Vec<String> = (0..100_000).map(|i| format!("jhtest-b{i}")).collect();
    let big = json!({"usernames": names}).to_string().into_bytes();
    assert!(big.len() > 1024 * 1024);
    let a = hub
        .send("POST", "/hub/api/users", Some(&hub.token), &[], Some(big))
        .unwrap();
    assert_eq!(a.status, 413, "{}", a.body);
    assert_eq!(a.json()["status"], 413);
    assert_eq!(hub.api("POST", "/users", Some(&json!(["x"]))).status, 400);
    assert_eq!(
        hub.api("POST", "/users", Some(&json!({"usernames": "jhtest-x"})))
            .status,
        400
    );
    assert_eq!(hub.usernames(), before);
    // unknown API paths answer JSON 404s
    let a = hub.api("GET", "/nonexistent", None);
    assert_eq!(a.status, 404);
    assert_eq!(a.json()["status"], 404);
}

#[test]
fn scope_filters_give_404_for_others_and_403_without_scope() {
    let setup = Setup {
        service_scopes: vec![
            "read:users!user=jhtest-seen".into(),
            "list:users!user=jhtest-seen".into(),
        ],
        extra: "[[roles]]\nname = \"jhtest-maker\"\nscopes = [\"admin:users\", \"tokens\"]\n\
                users = [\"jhtest-maker\"]\n"
            .into(),
        ..Setup::default()
    };
    let hub = TestHub::start_with(&setup);
    // the maker user (from [[roles]]) creates users with its own token
    let maker = {
        let (code, out, err) = jhub_tests::hub::run_jhub(&[
            "--config",
            hub.dir.path().join("jhub.toml").to_str().unwrap(),
            "token",
            "jhtest-maker",
        ]);
        assert_eq!(code, 0, "{err}");
        out.trim().to_owned()
    };
    let a = hub.api_as(
        Some(&maker),
        "POST",
        "/users",
        Some(&json!({"usernames": ["jhtest-seen", "jhtest-hidden"]})),
    );
    assert_eq!(a.status, 201, "{}", a.body);

    assert_eq!(hub.api("GET", "/users/jhtest-seen", None).status, 200);
    let a = hub.api("GET", "/users/jhtest-hidden", None);
    assert_eq!(a.status, 404, "{}", a.body);
    assert_eq!(
        a.json()["message"],
        "No access to resources or resources not found"
    );
    // a nonexistent user looks the same
    assert_eq!(hub.api("GET", "/users/jhtest-ghost", None).status, 404);
    // the listing is filtered
    let list = hub.api("GET", "/users", None).json();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["name"], "jhtest-seen");
    // no scope at all for these: 403
    let a = hub.api("GET", "/groups", None);
    assert_eq!(a.status, 403);
    assert_eq!(
        a.json()["message"],
        "Action is not authorized with current scopes; requires any of [list:groups]"
    );
    assert_eq!(
        hub.api("POST", "/users", Some(&json!({"usernames": ["jhtest-z"]})))
            .status,
        403
    );
    assert_eq!(hub.api("GET", "/info", None).status, 403);

    // a user's own token: self, not others
    let own = hub.user_token_as(&maker, "jhtest-seen", None);
    assert_eq!(
        hub.api_as(Some(&own), "GET", "/users/jhtest-seen", None)
            .status,
        200
    );
    assert_eq!(
        hub.api_as(Some(&own), "GET", "/users/jhtest-hidden", None)
            .status,
        404
    );
    assert_eq!(hub.api_as(Some(&own), "GET", "/users", None).status, 403);
    let me = hub.api_as(Some(&own), "GET", "/user", None).json();
    assert_eq!(me["name"], "jhtest-seen");
    assert_eq!(me["servers"], json!({}));
    // tokens can't exceed the owner's scopes
    let a = hub.api_as(
        Some(&own),
        "POST",
        "/users/jhtest-seen/tokens",
        Some(&json!({"scopes": ["admin:users"]})),
    );
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(
        a.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("Not assigning requested scopes")
    );
    let a = hub.api_as(
        Some(&own),
        "POST",
        "/users/jhtest-seen/tokens",
        Some(&json!({"scopes": ["nonsense"]})),
    );
    assert_eq!(a.status, 400);
    let a = hub.api_as(Some(&own), "POST", "/users/jhtest-hidden/tokens", None);
    assert_eq!(a.status, 403);
    // a narrowed token reads only what it was given
    let narrow = hub.user_token_as(
        &own,
        "jhtest-seen",
        Some(&["read:users:name!user=jhtest-seen"]),
    );
    let model = hub
        .api_as(Some(&narrow), "GET", "/users/jhtest-seen", None)
        .json();
    assert!(
        model.get("name").is_some() && model.get("created").is_none(),
        "{model}"
    );
}

trait AsUser {
    fn user_token_as(&self, token: &str, user: &str, scopes: Option<&[&str]>) -> String;
}

impl AsUser for TestHub {
    fn user_token_as(&self, token: &str, user: &str, scopes: Option<&[&str]>) -> String {
        let body = match scopes {
            Some(s) => json!({"scopes": s}),
            None => json!({}),
        };
        let a = self.api_as(
            Some(token),
            "POST",
            &format!("/users/{user}/tokens"),
            Some(&body),
        );
        assert_eq!(a.status, 201, "{}", a.body);
        a.json()["token"].as_str().unwrap().to_owned()
    }
}

#[test]
fn tokens_api() {
    let hub = TestHub::start();
    hub.create_users(&["jhtest-user1"]);
    let a = hub.api(
        "POST",
        "/users/jhtest-user1/tokens",
        Some(&json!({"scopes": ["read:users!user=jhtest-user1"], "note": "jhtest note", "expires_in": 3600})),
    );
    assert_eq!(a.status, 201, "{}", a.body);
    let t = a.json();
    assert_eq!(t["kind"], "api_token");
    assert_eq!(t["user"], "jhtest-user1");
    assert_eq!(t["note"], "jhtest note");
    assert!(t["expires_at"].is_string());
    assert_eq!(t["oauth_client"], "JupyterHub");
    let id = t["id"].as_str().unwrap().to_owned();
    let token = t["token"].as_str().unwrap().to_owned();
    let list = hub.api("GET", "/users/jhtest-user1/tokens", None).json();
    assert_eq!(list["api_tokens"].as_array().unwrap().len(), 1);
    assert!(list["api_tokens"][0].get("token").is_none());
    let one = hub.api("GET", &format!("/users/jhtest-user1/tokens/{id}"), None);
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["id"], id.as_str());
    assert_eq!(
        hub.api("GET", "/users/jhtest-user1/tokens/a999", None)
            .status,
        404
    );
    assert_eq!(
        hub.api("GET", "/users/jhtest-user1/tokens/zz", None).status,
        404
    );
    assert_eq!(
        hub.api(
            "POST",
            "/users/jhtest-user1/tokens",
            Some(&json!({"expires_in": "x"}))
        )
        .status,
        400
    );
    // the deprecated lookup
    let who = hub.api("GET", &format!("/authorizations/token/{token}"), None);
    assert_eq!(who.status, 200, "{}", who.body);
    assert_eq!(who.json()["name"], "jhtest-user1");
    assert_eq!(
        hub.api("GET", "/authorizations/token/nonexistent-token", None)
            .status,
        404
    );
    assert_eq!(
        hub.api("DELETE", &format!("/users/jhtest-user1/tokens/{id}"), None)
            .status,
        204
    );
    assert_eq!(hub.api_as(Some(&token), "GET", "/user", None).status, 403);
}

#[test]
fn groups_api() {
    let hub = TestHub::start();
    hub.create_users(&["jhtest-user1", "jhtest-user2"]);
    let a = hub.api(
        "POST",
        "/groups/jhtest-g1",
        Some(&json!({"users": ["jhtest-user1"]})),
    );
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(
        a.json(),
        json!({"kind": "group", "name": "jhtest-g1", "roles": [], "users": ["jhtest-user1"], "properties": {}})
    );
    assert_eq!(hub.api("POST", "/groups/jhtest-g1", None).status, 409);
    let a = hub.api(
        "POST",
        "/groups",
        Some(&json!({"groups": ["jhtest-g2", "jhtest-g3"]})),
    );
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.json().as_array().unwrap().len(), 2);
    let a = hub.api(
        "POST",
        "/groups/jhtest-g1/users",
        Some(&json!({"users": ["jhtest-user2"]})),
    );
    assert_eq!(a.json()["users"], json!(["jhtest-user1", "jhtest-user2"]));
    let a = hub.api(
        "DELETE",
        "/groups/jhtest-g1/users",
        Some(&json!({"users": ["jhtest-user1"]})),
    );
    assert_eq!(a.json()["users"], json!(["jhtest-user2"]));
    let a = hub.api(
        "POST",
        "/groups/jhtest-g1/users",
        Some(&json!({"users": ["jhtest-nobody"]})),
    );
    assert_eq!(a.status, 400);
    let a = hub.api(
        "PUT",
        "/groups/jhtest-g1/properties",
        Some(&json!({"k": 1})),
    );
    assert_eq!(a.json()["properties"], json!({"k": 1}));
    assert_eq!(
        hub.api("GET", "/users/jhtest-user2", None).json()["groups"],
        json!(["jhtest-g1"])
    );
    assert_eq!(
        hub.api("GET", "/groups", None)
            .json()
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(hub.api("DELETE", "/groups/jhtest-g2", None).status, 204);
    let a = hub.api("GET", "/groups/jhtest-g2", None);
    assert_eq!(a.status, 404);
    assert_eq!(a.json()["message"], "No such group: jhtest-g2");
}

#[test]
fn services_proxy_metrics_shutdown() {
    let hub = TestHub::start();
    let a = hub.api("GET", "/services", None);
    assert_eq!(a.status, 200);
    let s = &a.json()[SERVICE];
    assert_eq!(s["kind"], "service");
    // roles need read:roles:services, which this token lacks
    assert!(s.get("roles").is_none(), "{s}");
    assert_eq!(s["display"], true);
    assert_eq!(
        hub.api("GET", &format!("/services/{SERVICE}"), None).json()["name"],
        SERVICE
    );
    assert_eq!(hub.api("GET", "/services/jhtest-none", None).status, 404);
    // no proxy is running: a clear error, not a hang
    let a = hub.api("GET", "/proxy", None);
    assert_eq!(a.status, 503, "{}", a.body);
    assert!(a.json()["message"].as_str().unwrap().contains("proxy"));
    let m = hub
        .send("GET", "/hub/metrics", Some(&hub.token), &[], None)
        .unwrap();
    assert_eq!(m.status, 200);
    assert!(m.body.contains("jupyterhub_total_users"), "{}", m.body);
    assert_eq!(
        hub.send("GET", "/hub/metrics", None, &[], None)
            .unwrap()
            .status,
        403
    );
    let mut hub = hub;
    let a = hub.api("POST", "/shutdown", None);
    assert_eq!(a.status, 202);
    assert_eq!(a.json()["message"], "Shutting down Hub");
    let status = hub.wait_exit().expect("the hub stops after /shutdown");
    assert!(status.success(), "{status}");
}

#[test]
fn info_fields_are_strings_as_the_spec_says() {
    let hub = TestHub::start();
    let info = hub.api("GET", "/info", None);
    assert_eq!(info.status, 200, "{}", info.body);
    let info = info.json();
    assert_eq!(
        info["version"],
        hub.api_as(None, "GET", "/", None).json()["version"]
    );
    // no Python here; the field stays a string, as clients expect
    assert!(
        info["python"]
            .as_str()
            .is_some_and(|p| p.contains("not a Python")),
        "{info}"
    );
    assert!(
        info["sys_executable"]
            .as_str()
            .is_some_and(|p| p.ends_with("jhub")),
        "{info}"
    );
    for part in ["spawner", "authenticator"] {
        assert!(info[part]["class"].is_string(), "{info}");
        assert!(info[part]["version"].is_string(), "{info}");
    }
    // the version is public, with CORS, as in JupyterHub
    let root = hub.send("GET", "/hub/api/", None, &[], None).unwrap();
    assert_eq!(root.status, 200);
    assert!(root.json()["version"].is_string());
}

#[test]
fn errors_are_json_as_jupyterhub_sends_them() {
    let hub = TestHub::start();
    let not_found = json!({"status": 404, "message": "Not Found"});
    for path in [
        "/nonexistent",
        "/users/jhtest-ghost",
        "/users/",
        "/groups/x/y/z",
    ] {
        let a = hub.api("GET", path, None);
        assert_eq!(a.status, 404, "{path}: {}", a.body);
        assert_eq!(a.json(), not_found, "{path}");
    }
    let a = hub.api("DELETE", "/users/jhtest-ghost", None);
    assert_eq!(a.json(), not_found);
    // a method the endpoint lacks
    let a = hub.api("PUT", "/users", None);
    assert_eq!(a.status, 405, "{}", a.body);
    assert_eq!(
        a.json(),
        json!({"status": 405, "message": "Method Not Allowed"})
    );
    // a path that does not decode: 400, still JSON
    let a = hub
        .send("GET", "/hub/api/users/%FF%FE", Some(&hub.token), &[], None)
        .unwrap();
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.json()["status"], 400);
    assert!(a.json()["message"].is_string());
}

#[test]
fn proxy_routes_and_resync() {
    use jhub_tests::hub::PROXY_TOKEN;
    use jhub_tests::proxy::{Impl, ProxyOptions, ProxyProcess};
    let proxy = ProxyProcess::start_with(
        Impl::Jhub,
        &[],
        ProxyOptions {
            token: Some(PROXY_TOKEN.to_owned()),
            env: Vec::new(),
        },
    );
    let hub = TestHub::start_with(&Setup {
        proxy_api_url: Some(format!("http://{}", proxy.api_addr())),
        extra: "[[services]]\nname = \"jhtest-web\"\nurl = \"http://127.0.0.1:9\"\n".into(),
        ..Setup::default()
    });
    // the hub added its routes at start: "/" to itself, and the service
    let routes = jhub_tests::privileged::eventually("the hub's routes", || {
        let a = hub.api("GET", "/proxy", None);
        assert_eq!(a.status, 200, "{}", a.body);
        let routes = a.json();
        (routes.as_object()?.len() == 2).then_some(routes)
    });
    // JupyterHub's shape: keyed by routespec (ending in '/'), the data
    // without the `jupyterhub` mark the hub's routes carry in the proxy
    assert_eq!(routes["/"]["routespec"], "/", "{routes}");
    assert_eq!(routes["/"]["target"], hub.url.as_str(), "{routes}");
    assert_eq!(routes["/"]["data"]["hub"], true, "{routes}");
    let service = &routes["/services/jhtest-web/"];
    assert_eq!(service["routespec"], "/services/jhtest-web/", "{routes}");
    assert_eq!(service["target"], "http://127.0.0.1:9");
    assert_eq!(service["data"]["service"], "jhtest-web");
    assert!(service["data"].get("jupyterhub").is_none(), "{routes}");
    assert_eq!(
        proxy.routes()["/services/jhtest-web"]["jupyterhub"],
        true,
        "the proxy's own table marks the hub's routes"
    );
    // routes the hub did not add are not the hub's
    proxy.add_target("/jhtest-foreign", "http://127.0.0.1:9");
    let a = hub.api("GET", "/proxy", None).json();
    assert_eq!(a.as_object().unwrap().len(), 2, "{a}");
    // pagination of the routing table
    let page = hub
        .send(
            "GET",
            "/hub/api/proxy?limit=1",
            Some(&hub.token),
            &[("Accept", "application/jupyterhub-pagination+json")],
            None,
        )
        .unwrap()
        .json();
    assert_eq!(page["items"].as_object().unwrap().len(), 1, "{page}");
    assert_eq!(page["_pagination"]["total"], 2);
    assert_eq!(page["_pagination"]["next"]["offset"], 1);
    // a route lost by the proxy comes back with POST /proxy
    let deleted = proxy.api("DELETE", "/api/routes/", None);
    assert_eq!(deleted.status, 204);
    let a = hub.api("GET", "/proxy", None);
    assert!(a.json().get("/").is_none(), "{}", a.body);
    let a = hub.api("POST", "/proxy", None);
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        hub.api("GET", "/proxy", None).json()["/"]["target"],
        hub.url.as_str()
    );
    // the proxy scope is needed for both
    hub.create_users(&["jhtest-user1"]);
    let t = hub.user_token("jhtest-user1", None);
    for method in ["GET", "POST"] {
        let a = hub.api_as(Some(&t), method, "/proxy", None);
        assert_eq!(a.status, 403, "{method}: {}", a.body);
    }
}
