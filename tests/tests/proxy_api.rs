//! The REST API of configurable-http-proxy, as a client (JupyterHub) sees
//! it: every scenario runs against CHP 5.3.0 (`name::chp`) and against
//! `jhub-proxy` (`name::jhub`) with the same flags.
//!
//! Expected values come from CHP's code (`lib/configproxy.js`,
//! `lib/store.js`, `lib/trie.js`) and were checked against the running
//! CHP; where its REST spec says otherwise, a comment says which one the
//! test follows (the code).

use jhub_tests::both_impls;
use jhub_tests::proxy::backend::{Backend, Echo};
use jhub_tests::proxy::http::Request;
use jhub_tests::proxy::{
    Impl, ProxyOptions, ProxyProcess, format_iso_ms, now_ms, parse_iso_ms, wait_clock_past,
};
use serde_json::{Value, json};

both_impls!(
    auth_required,
    no_token_configured_means_open_api,
    routes_table_shape,
    post_get_replace_delete,
    post_without_path_is_the_root_route,
    delete_missing_route,
    bad_bodies,
    other_methods_and_paths,
    key_normalization,
    inactive_since,
    last_activity_is_set_by_post,
    jupyterhub_command_line_and_calls,
);

/// Routes as a map without `last_activity`, for comparing data.
fn without_activity(route: &Value) -> Value {
    let mut route = route.clone();
    if let Some(map) = route.as_object_mut() {
        map.remove("last_activity");
    }
    route
}

/// No token, a wrong token, the right token in another scheme: 403 with an
/// empty body, and nothing changes. The right token (`token <t>`, the
/// scheme JupyterHub uses) is accepted.
fn auth_required(imp: Impl) {
    let p = ProxyProcess::start(imp, &[]);
    let token = p.token().unwrap().to_owned();
    let post = |auth: Option<&str>| {
        let mut request = Request::new("POST", "/api/routes/user/x")
            .header("Content-Type", "application/json")
            .body(r#"{"target": "http://127.0.0.1:9"}"#);
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        p.api_raw(&request)
    };
    for auth in [
        None,
        Some("token wrong"),
        Some("token "),
        Some(token.as_str()),
    ] {
        let get = {
            let mut request = Request::get("/api/routes");
            if let Some(auth) = auth {
                request = request.header("Authorization", auth);
            }
            p.api_raw(&request)
        };
        assert_eq!(get.status, 403, "GET with Authorization {auth:?}");
        assert_eq!(get.text(), "", "a 403 has an empty body");
        let post = post(auth);
        assert_eq!(post.status, 403, "POST with Authorization {auth:?}");
        let delete = {
            let mut request = Request::new("DELETE", "/api/routes/user/x");
            if let Some(auth) = auth {
                request = request.header("Authorization", auth);
            }
            p.api_raw(&request)
        };
        assert_eq!(delete.status, 403, "DELETE with Authorization {auth:?}");
    }
    assert!(p.routes().is_empty(), "refused requests changed nothing");

    let ok = post(Some(&format!("token {token}")));
    assert_eq!(ok.status, 201);
    // CHP matches /token\s+(\S+)/: any run of blanks after the word.
    let ok = p
        .api_raw(&Request::get("/api/routes").header("Authorization", &format!("token   {token}")));
    assert_eq!(ok.status, 200);
    assert!(ok.json().get("/user/x").is_some());
}

/// Without `CONFIGPROXY_AUTH_TOKEN` the API needs no token (CHP only warns).
fn no_token_configured_means_open_api(imp: Impl) {
    let p = ProxyProcess::start_with(
        imp,
        &[],
        ProxyOptions {
            token: None,
            ..ProxyOptions::default()
        },
    );
    let response = p.api_raw(&Request::get("/api/routes"));
    assert_eq!(response.status, 200);
    assert_eq!(response.json(), json!({}));
}

/// `GET /api/routes`: 200, `Content-Type: application/json`, an object
/// keyed by route. The `--default-target` route is listed as `/` (the REST
/// spec says the table excludes the default route; CHP's code adds it as
/// an ordinary route, and the test follows the code).
fn routes_table_shape(imp: Impl) {
    let before = now_ms();
    let p = ProxyProcess::start(imp, &["--default-target", "http://127.0.0.1:9/hub"]);
    let response = p.api("GET", "/api/routes", None);
    assert_eq!(response.status, 200);
    assert!(
        response
            .header("content-type")
            .is_some_and(|v| v.starts_with("application/json")),
        "content-type {:?}",
        response.header("content-type")
    );
    let table = response.json();
    let table = table.as_object().expect("an object");
    assert_eq!(table.keys().collect::<Vec<_>>(), ["/"], "{table:?}");
    let root = &table["/"];
    let mut fields: Vec<&str> = root
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort();
    assert_eq!(fields, ["last_activity", "target"], "{root}");
    assert_eq!(root["target"], "http://127.0.0.1:9/hub");
    let stamp = root["last_activity"].as_str().expect("a string");
    let ms = parse_iso_ms(stamp).unwrap_or_else(|| {
        panic!("last_activity {stamp:?} is not YYYY-MM-DDTHH:MM:SS.mmmZ (Date.toISOString)")
    });
    assert!(
        ms >= before - 1 && ms <= now_ms(),
        "last_activity {stamp} is the start time"
    );
}

/// POST creates (201, empty body), GET shows the data as posted plus
/// `last_activity`, a second POST replaces the data (old keys are gone),
/// DELETE answers 204, and the route is gone (404 on GET).
fn post_get_replace_delete(imp: Impl) {
    let p = ProxyProcess::start(imp, &[]);
    let data = json!({
        "target": "http://127.0.0.1:9/x",
        "user": "alice",
        "server_name": "",
        "extra": {"nested": [1, 2, {"k": null}], "flag": true},
    });
    let response = p.api("POST", "/api/routes/user/alice", Some(&data));
    assert_eq!(response.status, 201);
    assert_eq!(response.text(), "");

    let response = p.api("GET", "/api/routes/user/alice", None);
    assert_eq!(response.status, 200);
    assert!(
        response
            .header("content-type")
            .is_some_and(|v| v.starts_with("application/json"))
    );
    let route = response.json();
    assert_eq!(without_activity(&route), data);
    assert!(parse_iso_ms(route["last_activity"].as_str().unwrap()).is_some());
    let table = p.routes();
    assert_eq!(table.len(), 1, "{table:?}");
    assert_eq!(table["/user/alice"], route);

    let replacement = json!({"target": "http://127.0.0.1:9/y", "other": 1});
    p.add_route("/user/alice", replacement.clone());
    let route = p.route("/user/alice").unwrap();
    assert_eq!(
        without_activity(&route),
        replacement,
        "POST replaces the data"
    );

    let response = p.api("DELETE", "/api/routes/user/alice", None);
    assert_eq!(response.status, 204);
    assert_eq!(response.text(), "");
    let response = p.api("GET", "/api/routes/user/alice", None);
    assert_eq!(response.status, 404);
    assert_eq!(
        response.text(),
        "",
        "a missing route is a 404 with an empty body"
    );
    assert!(p.routes().is_empty());
}

/// `POST /api/routes` (no path) and `POST /api/routes/` create the root
/// route `/`.
fn post_without_path_is_the_root_route(imp: Impl) {
    let p = ProxyProcess::start(imp, &[]);
    let response = p.api(
        "POST",
        "/api/routes",
        Some(&json!({"target": "http://127.0.0.1:9/a"})),
    );
    assert_eq!(response.status, 201);
    assert_eq!(p.routes()["/"]["target"], "http://127.0.0.1:9/a");
    let response = p.api(
        "POST",
        "/api/routes/",
        Some(&json!({"target": "http://127.0.0.1:9/b"})),
    );
    assert_eq!(response.status, 201);
    let table = p.routes();
    assert_eq!(table.len(), 1);
    assert_eq!(table["/"]["target"], "http://127.0.0.1:9/b");
    // GET /api/routes/ is the whole table, not the root route.
    let response = p.api("GET", "/api/routes/", None);
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["/"]["target"], "http://127.0.0.1:9/b");
}

/// DELETE of a route that does not exist: 404, empty body (CHP checks
/// before removing). Deleting a longer or shorter path than a route's does
/// not touch it.
fn delete_missing_route(imp: Impl) {
    let p = ProxyProcess::start(imp, &[]);
    p.add_target("/user/a", "http://127.0.0.1:9");
    for missing in ["/user/zz", "/user/a/b", "/user"] {
        let response = p.api("DELETE", &format!("/api/routes{missing}"), None);
        assert_eq!(response.status, 404, "DELETE {missing}");
        assert_eq!(response.text(), "");
    }
    assert!(p.route("/user/a").is_some());
    assert_eq!(p.api("DELETE", "/api/routes/user/a", None).status, 204);
    assert_eq!(p.api("DELETE", "/api/routes/user/a", None).status, 404);
}

/// Bodies CHP refuses with 400 and a text reason: not JSON (including an
/// empty body), no `target`, a `target` that is not a string, JSON `null`
/// (CHP reads it as `{}`). Nothing is added.
fn bad_bodies(imp: Impl) {
    let p = ProxyProcess::start(imp, &[]);
    let post = |body: &str| {
        p.api_raw(
            &p.authorized(Request::new("POST", "/api/routes/user/bad"))
                .header("Content-Type", "application/json")
                .body(body),
        )
    };
    for body in ["{bad", "", "[1,", "not json"] {
        let response = post(body);
        assert_eq!(response.status, 400, "body {body:?}: {}", response.text());
        // CHP: "Body not valid JSON: <the parser's message>".
        assert!(
            response.text().starts_with("Body not valid JSON"),
            "body {body:?} answered {:?}",
            response.text()
        );
    }
    for body in [
        "{}",
        "null",
        r#"{"target": 5}"#,
        r#"{"target": null}"#,
        r#"{"target": ["http://127.0.0.1:9"]}"#,
        r#"{"Target": "http://127.0.0.1:9"}"#,
    ] {
        let response = post(body);
        assert_eq!(response.status, 400, "body {body:?}: {}", response.text());
        assert_eq!(
            response.text(),
            "Must specify 'target' as string",
            "body {body:?}"
        );
    }
    assert!(p.routes().is_empty(), "nothing was added");
}

/// A method the API does not have on `/api/routes...`: 405. A path outside
/// `/api/routes`: 404.
fn other_methods_and_paths(imp: Impl) {
    let p = ProxyProcess::start(imp, &[]);
    for method in ["PUT", "PATCH"] {
        let response = p.api(
            method,
            "/api/routes/user/a",
            Some(&json!({"target": "http://x"})),
        );
        assert_eq!(response.status, 405, "{method}");
    }
    for path in ["/api/other", "/api", "/", "/api/routesx"] {
        let response = p.api("GET", path, None);
        assert_eq!(response.status, 404, "GET {path}");
    }
    assert!(p.routes().is_empty());
}

/// Route keys: a trailing slash is dropped, a missing leading slash can't
/// happen in a URL path, and the path is percent-decoded (`%20` → space,
/// `%2F` → `/`) before it becomes the key, for POST, GET and DELETE alike.
fn key_normalization(imp: Impl) {
    let p = ProxyProcess::start(imp, &[]);
    let t = "http://127.0.0.1:9";
    p.add_target("/user/a/", t);
    p.add_target("/user/b%20c", t);
    p.add_target("/user%2Fd", t);
    p.add_target("/user/%C3%A9t%C3%A9", t);
    let keys: Vec<String> = p.routes().keys().cloned().collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["/user/a", "/user/b c", "/user/d", "/user/été"],
        "keys {keys:?}"
    );

    for (get, key) in [
        ("/user/a", "/user/a"),
        ("/user/a/", "/user/a"),
        ("/user/b%20c", "/user/b c"),
        ("/user/b%20c/", "/user/b c"),
        ("/user%2Fd", "/user/d"),
        ("/user/d", "/user/d"),
    ] {
        let route = p
            .route(get)
            .unwrap_or_else(|| panic!("GET /api/routes{get} finds {key}"));
        assert_eq!(route["target"], t, "GET {get}");
    }
    assert!(
        p.route("/user/b").is_none(),
        "no prefix matching in the API"
    );
    assert_eq!(p.api("DELETE", "/api/routes/user/a/", None).status, 204);
    assert_eq!(p.api("DELETE", "/api/routes/user%2Fd", None).status, 204);
    assert_eq!(p.api("DELETE", "/api/routes/user/b%20c/", None).status, 204);
    let keys: Vec<String> = p.routes().keys().cloned().collect();
    assert_eq!(keys, ["/user/été"]);
}

/// `?inactive_since=T` (and its camelCase twin `inactiveSince`) lists the
/// routes whose `last_activity` is strictly before `T`; an unparsable `T`
/// is a 400 naming it.
fn inactive_since(imp: Impl) {
    let p = ProxyProcess::start(imp, &[]);
    p.add_target("/old", "http://127.0.0.1:9");
    let old = p.last_activity("/old");
    wait_clock_past(old);
    p.add_target("/new", "http://127.0.0.1:9");
    let new = p.last_activity("/new");
    assert!(new > old);

    let listed = |query: &str| -> Vec<String> {
        let response = p.api("GET", &format!("/api/routes?{query}"), None);
        assert_eq!(response.status, 200, "?{query}: {}", response.text());
        let mut keys: Vec<String> = response
            .json()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    };
    let empty: [&str; 0] = [];
    assert_eq!(listed("inactive_since=2000-01-01T00:00:00.000Z"), empty);
    assert_eq!(
        listed(&format!("inactive_since={}", format_iso_ms(old))),
        empty,
        "strictly before"
    );
    assert_eq!(
        listed(&format!("inactive_since={}", format_iso_ms(old + 1))),
        ["/old"]
    );
    assert_eq!(
        listed(&format!("inactive_since={}", format_iso_ms(new + 1))),
        ["/new", "/old"]
    );
    assert_eq!(
        listed(&format!("inactiveSince={}", format_iso_ms(old + 1))),
        ["/old"]
    );
    // Other ISO 8601 spellings a client may send: an offset instead of Z
    // (percent-encoded '+'), microseconds, no fraction.
    assert_eq!(
        listed(&format!(
            "inactive_since={}%2B00:00",
            format_iso_ms(new + 1).trim_end_matches('Z')
        )),
        ["/new", "/old"]
    );
    assert_eq!(
        listed("inactive_since=2999-01-01T00:00:00.000000%2B00:00"),
        ["/new", "/old"]
    );
    assert_eq!(
        listed("inactive_since=2999-01-01T00:00:00Z"),
        ["/new", "/old"]
    );
    // An empty value is no filter.
    assert_eq!(listed("inactive_since="), ["/new", "/old"]);

    let response = p.api("GET", "/api/routes?inactive_since=garbage", None);
    assert_eq!(response.status, 400);
    assert_eq!(
        response.text(),
        "Invalid datestamp 'garbage' must be ISO8601."
    );
}

/// POST stamps `last_activity` with the time of the POST, even when the
/// body carries one of its own; each POST stamps it again.
fn last_activity_is_set_by_post(imp: Impl) {
    let p = ProxyProcess::start(imp, &[]);
    let before = now_ms();
    p.add_route(
        "/user/a",
        json!({"target": "http://127.0.0.1:9", "last_activity": "2000-01-01T00:00:00.000Z"}),
    );
    let first = p.last_activity("/user/a");
    assert!(
        first >= before - 1 && first <= now_ms(),
        "stamped at POST time"
    );
    wait_clock_past(first);
    p.add_target("/user/a", "http://127.0.0.1:9");
    assert!(
        p.last_activity("/user/a") > first,
        "a second POST stamps again"
    );
    // Reading the table is not activity.
    let stamp = p.last_activity("/user/a");
    p.routes();
    p.route("/user/a");
    assert_eq!(p.last_activity("/user/a"), stamp);
}

/// The command line JupyterHub 6 builds (`--error-target <hub>/hub/error
/// --log-level <level>`, the level in any case) and the calls it makes:
/// routes keyed by the URL-escaped path with `{"jupyterhub": true, ...}`,
/// read back unescaped, proxied, deleted (a second DELETE's 404 is what it
/// tolerates), and error pages fetched from the hub.
fn jupyterhub_command_line_and_calls(imp: Impl) {
    let (hub, user) = (Backend::start("hub"), Backend::start("user"));
    for level in ["info", "DEBUG", "warn"] {
        let p = ProxyProcess::start(
            imp,
            &[
                "--error-target",
                &format!("{}/hub/error", hub.url()),
                "--log-level",
                level,
            ],
        );
        p.add_route("/", json!({"jupyterhub": true, "target": hub.url()}));
        p.add_route(
            "/user/a%20b%40c",
            json!({"user": "a b@c", "server_name": "", "jupyterhub": true, "target": user.url()}),
        );
        let table = p.routes();
        let route = &table["/user/a b@c"];
        assert_eq!(route["user"], "a b@c", "--log-level {level}");
        assert_eq!(route["jupyterhub"], true);

        let seen = Echo::from_json(&p.get("/user/a%20b%40c/lab?reset").json());
        assert_eq!(
            (seen.backend.as_str(), seen.path.as_str()),
            ("user", "/user/a%20b%40c/lab?reset")
        );
        assert_eq!(Echo::from_json(&p.get("/hub/home").json()).backend, "hub");

        assert_eq!(
            p.api("DELETE", "/api/routes/", None).status,
            204,
            "DELETE the root route"
        );
        let response = p.get("/nothing");
        assert_eq!(response.status, 404);
        let seen = Echo::from_json(&response.json());
        assert_eq!(seen.path, "/hub/error/404?url=%2Fnothing");
        assert_eq!(
            p.api("DELETE", "/api/routes/user/a%20b%40c", None).status,
            204
        );
        assert_eq!(
            p.api("DELETE", "/api/routes/user/a%20b%40c", None).status,
            404
        );
    }
}
