//! Hostile input to the REST API: usernames that are not safe Unix
//! account names (options, paths, spaces, look-alike letters, control
//! characters, overlong or empty names) on every way of naming a user,
//! bodies over the hub's limit (declared or streamed), and malformed JSON.
//! Each is refused with a 4xx and a JSON message, and the database is
//! exactly as it was before (users, groups, tokens compared before and
//! after).
//!
//! `ALL` is not hostile: usernames are lowercased, as JupyterHub's
//! `normalize_username` does, so `ALL` is the user `all`, which sudoers'
//! case-sensitive `ALL` keyword can never mean (see `hub/src/names.rs`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use jhub_tests::hub::TestHub;
use serde_json::{Value, json};

/// The hub's body limit (`hub::api::MAX_BODY`).
const MAX_BODY: usize = 1024 * 1024;

fn hostile_names() -> Vec<(&'static str, String)> {
    vec![
        ("an option", "-u root".into()),
        ("a lone dash option", "-u".into()),
        ("a path", "../x".into()),
        ("a slash", "x/y".into()),
        ("a dot dir", "..".into()),
        ("a space", "a b".into()),
        ("Cyrillic a", "\u{430}dmin".into()),
        (
            "fullwidth letters",
            "\u{ff41}\u{ff44}\u{ff4d}\u{ff49}\u{ff4e}".into(),
        ),
        ("300 characters", "a".repeat(300)),
        ("33 characters", "a".repeat(33)),
        ("empty", String::new()),
        ("only spaces", "   ".into()),
        ("NUL", "jhtest\u{0}x".into()),
        ("a newline", "jhtest\nx".into()),
        ("a shell substitution", "$(id)".into()),
        ("a semicolon", "a;id".into()),
        ("a leading digit", "1abc".into()),
    ]
}

/// Percent-encodes everything but letters, digits, `-`, `_` and `~`,
/// for a path segment.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            // dots too, so that `..` reaches the hub as a name, not as a
            // path step
            if b.is_ascii_alphanumeric() || b"-_~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// What the database holds, as the API shows it to the service.
fn snapshot(hub: &TestHub) -> Value {
    let users = hub.api("GET", "/users", None);
    assert_eq!(users.status, 200, "{}", users.body);
    let groups = hub.api("GET", "/groups", None);
    assert_eq!(groups.status, 200, "{}", groups.body);
    let tokens = hub.api("GET", "/users/jhtest-user1/tokens", None);
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    json!({"users": users.json(), "groups": groups.json(), "tokens": tokens.json()})
}

/// A hub with one user (with a token) and one group, as the service sees
/// them.
fn seeded() -> TestHub {
    let hub = TestHub::start();
    hub.create_users(&["jhtest-user1"]);
    let a = hub.api(
        "POST",
        "/groups/jhtest-g1",
        Some(&json!({"users": ["jhtest-user1"]})),
    );
    assert_eq!(a.status, 201, "{}", a.body);
    hub.user_token("jhtest-user1", None);
    hub
}

fn assert_refused_name(a: &jhub_tests::jupyterhub::Answer, what: &str) {
    assert_eq!(a.status, 400, "{what}: {}", a.body);
    let message = a.json()["message"].as_str().unwrap_or_default().to_owned();
    assert!(
        message.starts_with("Invalid username") && message.contains("usernames must be"),
        "{what}: {message}"
    );
    assert!(message.len() < 400, "{what}: the message is bounded");
}

#[test]
fn hostile_usernames_are_refused_everywhere_and_change_nothing() {
    let hub = seeded();
    let before = snapshot(&hub);
    for (what, name) in hostile_names() {
        // POST /users/{name} (an empty name is a missing path segment:
        // there is no such endpoint)
        let a = hub
            .send(
                "POST",
                &format!("/hub/api/users/{}", enc(&name)),
                Some(&hub.token),
                &[],
                None,
            )
            .unwrap();
        if name.is_empty() {
            assert_eq!(a.status, 404, "{what}: {}", a.body);
            assert_eq!(a.json(), json!({"status": 404, "message": "Not Found"}));
        } else {
            assert_refused_name(&a, &format!("POST /users/{{name}} with {what}"));
        }
        // POST /users, alone and beside a good name: all or nothing
        for usernames in [json!([name]), json!(["jhtest-fine", name])] {
            let a = hub.api("POST", "/users", Some(&json!({ "usernames": usernames })));
            assert_refused_name(&a, &format!("POST /users with {what}"));
        }
        // PATCH rename
        let a = hub.api(
            "PATCH",
            "/users/jhtest-user1",
            Some(&json!({ "name": name })),
        );
        assert_refused_name(&a, &format!("rename to {what}"));
        // a group with that name as a member
        let a = hub.api(
            "POST",
            "/groups/jhtest-g1/users",
            Some(&json!({ "users": [name] })),
        );
        assert_eq!(a.status, 400, "add {what} to a group: {}", a.body);
        assert!(
            a.json()["message"]
                .as_str()
                .unwrap()
                .starts_with("No such user"),
            "{}",
            a.body
        );
        assert_eq!(snapshot(&hub), before, "after {what}");
    }
    // two bad names are named together
    let a = hub.api(
        "POST",
        "/users",
        Some(&json!({"usernames": ["-u root", "../x"]})),
    );
    assert_eq!(a.status, 400, "{}", a.body);
    let message = a.json()["message"].as_str().unwrap().to_owned();
    assert!(
        message.starts_with("Invalid usernames: ")
            && message.contains("\"-u root\"")
            && message.contains("\"../x\""),
        "{message}"
    );
    // a control character is shown escaped, never raw
    let a = hub.api("POST", "/users", Some(&json!({"usernames": ["a\u{7}b"]})));
    assert!(
        a.json()["message"].as_str().unwrap().contains("\\u{7}"),
        "{}",
        a.body
    );
    assert_eq!(snapshot(&hub), before);
}

#[test]
fn all_is_lowercased_to_an_ordinary_user() {
    let hub = seeded();
    let a = hub.api("POST", "/users/ALL", None);
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.json()["name"], "all");
    assert_eq!(hub.api("GET", "/users/all", None).status, 200);
    // the same name in any case is the same user
    assert_eq!(
        hub.api("POST", "/users", Some(&json!({"usernames": ["All"]})))
            .status,
        409
    );
    let a = hub.api(
        "PATCH",
        "/users/jhtest-user1",
        Some(&json!({"name": "ALL"})),
    );
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(
        a.json()["message"],
        "User all already exists, username must be unique"
    );
    // surrounding whitespace goes too
    let a = hub.api(
        "POST",
        "/users",
        Some(&json!({"usernames": [" JHTest-Spaced "]})),
    );
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.json()[0]["name"], "jhtest-spaced");
}

#[test]
fn renames_keep_tokens_groups_and_roles() {
    let hub = seeded();
    let token = hub.user_token("jhtest-user1", None);
    let a = hub.api(
        "PATCH",
        "/users/jhtest-user1",
        Some(&json!({"name": " JHTest-Renamed "})),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["name"], "jhtest-renamed");
    assert_eq!(a.json()["groups"], json!(["jhtest-g1"]));
    assert_eq!(hub.api("GET", "/users/jhtest-user1", None).status, 404);
    let me = hub.api_as(Some(&token), "GET", "/user", None);
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["name"], "jhtest-renamed");
    assert_eq!(
        hub.api("GET", "/groups/jhtest-g1", None).json()["users"],
        json!(["jhtest-renamed"])
    );
    // only name and admin can be changed
    for body in [
        json!({"groups": []}),
        json!({"roles": ["admin"]}),
        json!({"name": 5}),
        json!({"admin": "yes"}),
        json!({"bogus": 1}),
        json!(["jhtest-x"]),
        json!("jhtest-x"),
    ] {
        let a = hub.api("PATCH", "/users/jhtest-renamed", Some(&body));
        assert_eq!(a.status, 400, "{body}: {}", a.body);
    }
    let a = hub.api(
        "PATCH",
        "/users/jhtest-ghost",
        Some(&json!({"admin": false})),
    );
    assert_eq!(a.status, 404, "{}", a.body);
}

/// Every endpoint that reads a body, with a path that exists.
fn body_endpoints() -> Vec<(&'static str, &'static str)> {
    vec![
        ("POST", "/users"),
        ("POST", "/users/jhtest-new"),
        ("PATCH", "/users/jhtest-user1"),
        ("POST", "/users/jhtest-user1/tokens"),
        ("POST", "/groups"),
        ("POST", "/groups/jhtest-g2"),
        ("POST", "/groups/jhtest-g1/users"),
        ("DELETE", "/groups/jhtest-g1/users"),
        ("PUT", "/groups/jhtest-g1/properties"),
    ]
}

#[test]
fn malformed_json_is_400_and_changes_nothing() {
    let hub = seeded();
    let before = snapshot(&hub);
    for (method, path) in body_endpoints() {
        for body in [
            &b"{\"usernames\": ["[..],
            b"not json",
            b"{\"users\": [\"jhtest-user1\"]} trailing",
            b"\xff\xfe{}",
            b"{\"a\": 1,}",
        ] {
            let a = hub
                .send(
                    method,
                    &format!("/hub/api{path}"),
                    Some(&hub.token),
                    &[("Content-Type", "application/json")],
                    Some(body.to_vec()),
                )
                .unwrap();
            assert_eq!(
                a.status,
                400,
                "{method} {path} {}: {}",
                String::from_utf8_lossy(body),
                a.body
            );
            assert_eq!(
                a.json(),
                json!({"status": 400, "message": "Invalid JSON in body of request"}),
                "{method} {path}"
            );
        }
        // deeply nested JSON is refused, not a crash
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let a = hub
            .send(
                method,
                &format!("/hub/api{path}"),
                Some(&hub.token),
                &[],
                Some(deep.into_bytes()),
            )
            .unwrap();
        assert_eq!(a.status, 400, "{method} {path} deep: {}", a.body);
    }
    // valid JSON of the wrong shape
    for (method, path, body) in [
        ("POST", "/users", json!(["jhtest-x"])),
        ("POST", "/users", json!({"usernames": "jhtest-x"})),
        ("POST", "/users", json!({"usernames": [1]})),
        ("POST", "/users", json!({"usernames": []})),
        (
            "POST",
            "/users",
            json!({"usernames": ["jhtest-x"], "admin": "no"}),
        ),
        (
            "POST",
            "/users",
            json!({"usernames": ["jhtest-x"], "bogus": 1}),
        ),
        ("POST", "/users/jhtest-new", json!([])),
        ("POST", "/users/jhtest-new", json!({"admin": 1})),
        ("POST", "/groups", json!({"groups": "jhtest-g"})),
        ("POST", "/groups", json!({"groups": []})),
        (
            "POST",
            "/groups/jhtest-g2",
            json!({"users": "jhtest-user1"}),
        ),
        ("POST", "/groups/jhtest-g1/users", json!({})),
        ("POST", "/groups/jhtest-g1/users", json!({"users": [1]})),
        ("DELETE", "/groups/jhtest-g1/users", json!(null)),
        ("PUT", "/groups/jhtest-g1/properties", json!([1, 2])),
        ("PUT", "/groups/jhtest-g1/properties", json!("x")),
        ("POST", "/shutdown", json!({"proxy": "yes"})),
        ("POST", "/shutdown", json!({"servers": 1})),
    ] {
        let a = hub.api(method, path, Some(&body));
        assert_eq!(a.status, 400, "{method} {path} {body}: {}", a.body);
        assert_eq!(a.json()["status"], 400);
    }
    assert_eq!(snapshot(&hub), before);
}

#[test]
fn oversized_bodies_are_413_and_change_nothing() {
    let hub = seeded();
    let before = snapshot(&hub);
    // a valid JSON document one byte over the limit (padded with
    // whitespace), declared with Content-Length
    let padded = |doc: Value, len: usize| {
        let mut text = doc.to_string();
        text.push_str(&" ".repeat(len - text.len()));
        text
    };
    let big = padded(
        json!({"usernames": ["jhtest-big"], "users": ["jhtest-user1"], "groups": ["jhtest-big"]}),
        MAX_BODY + 1,
    );
    for (method, path) in body_endpoints() {
        let a = hub
            .send(
                method,
                &format!("/hub/api{path}"),
                Some(&hub.token),
                &[],
                Some(big.clone().into_bytes()),
            )
            .unwrap();
        assert_eq!(a.status, 413, "{method} {path}: {}", a.body);
        assert_eq!(
            a.json(),
            json!({"status": 413, "message": format!("Request body is larger than {MAX_BODY} bytes")})
        );
    }
    // the body is read before anything else, as JupyterHub reads it:
    // without a token, and on endpoints that take no body, it is still 413
    for (method, path, token) in [
        ("POST", "/users", None),
        ("GET", "/users", Some(hub.token.as_str())),
        ("POST", "/nonexistent", Some(hub.token.as_str())),
    ] {
        let a = hub
            .send(
                method,
                &format!("/hub/api{path}"),
                token,
                &[],
                Some(big.clone().into_bytes()),
            )
            .unwrap();
        assert_eq!(a.status, 413, "{method} {path}: {}", a.body);
    }
    // exactly at the limit is read (and refused for what it says)
    let at_limit = padded(json!({"usernames": ["-u root"]}), MAX_BODY);
    let a = hub
        .send(
            "POST",
            "/hub/api/users",
            Some(&hub.token),
            &[],
            Some(at_limit.into_bytes()),
        )
        .unwrap();
    assert_eq!(a.status, 400, "{}", a.body);
    // the same without a length: a chunked stream past the limit
    let (status, body) = chunked_post(&hub, "/hub/api/users", MAX_BODY + 64 * 1024);
    assert_eq!(status, 413, "{body}");
    assert!(
        body.contains("\"status\":413") || body.contains("\"status\": 413"),
        "{body}"
    );
    assert_eq!(snapshot(&hub), before);
}

/// POSTs `size` bytes of a JSON document (a list of usernames) in 16 KiB
/// chunks without a Content-Length; the status and body of the answer.
fn chunked_post(hub: &TestHub, path: &str, size: usize) -> (u16, String) {
    let addr = hub.url.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&addr).expect("connect to the hub");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: token {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n",
        hub.token
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut document = b"{\"usernames\": [".to_vec();
    let mut i = 0;
    while document.len() < size {
        document.extend_from_slice(format!("\"jhtest-{i:07}\",").as_bytes());
        i += 1;
    }
    document.extend_from_slice(b"\"jhtest-last\"]}");
    // The hub may answer and close before it has read everything: a
    // failed write is expected then, and the answer is still there to
    // read.
    for chunk in document.chunks(16 * 1024) {
        let framed = [
            format!("{:x}\r\n", chunk.len()).into_bytes(),
            chunk.to_vec(),
            b"\r\n".to_vec(),
        ]
        .concat();
        if stream.write_all(&framed).is_err() {
            break;
        }
    }
    let _end_may_fail = stream.write_all(b"0\r\n\r\n");
    let mut answer = Vec::new();
    let _reset_after_answer = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

#[test]
fn extreme_pagination_values_are_handled() {
    let hub = seeded();
    let accept = [("Accept", "application/jupyterhub-pagination+json")];
    for list in ["/users", "/groups"] {
        for query in [
            "offset=9223372036854775807",
            "offset=-9223372036854775807&limit=-5",
            "offset=9223372036854775806&limit=9223372036854775807",
            "limit=0",
        ] {
            let a = hub
                .send(
                    "GET",
                    &format!("/hub/api{list}?{query}"),
                    Some(&hub.token),
                    &accept,
                    None,
                )
                .unwrap();
            assert_eq!(a.status, 200, "{list}?{query}: {}", a.body);
            let page = a.json();
            assert!(page["items"].is_array(), "{page}");
            assert!(
                page["_pagination"]["limit"].as_i64().unwrap() >= 1,
                "{page}"
            );
        }
        for query in [
            "offset=abc",
            "limit=1.5",
            "limit=1e3",
            "offset=99999999999999999999",
        ] {
            let a = hub.api("GET", &format!("{list}?{query}"), None);
            assert_eq!(a.status, 400, "{list}?{query}: {}", a.body);
            assert_eq!(
                a.json()["message"],
                "Invalid argument type, offset and limit must be integers"
            );
        }
    }
}
