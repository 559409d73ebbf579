//! The admin page (`/hub/admin`) and the token page (`/hub/token`)
//! against the built `jhub` with the dummy authenticator (no root
//! needed): who may see the admin page, what its table shows without
//! JavaScript, its forms, its script and the cookie-authenticated API it
//! drives; tokens made through the token page carry exactly the scopes
//! asked for, stop working when revoked or expired, and OAuth clients
//! holding a user's tokens can be revoked there.

use jhub_tests::browser::{Browser, encode_form, xsrf_in};
use jhub_tests::hub::{DUMMY_PASSWORD, Setup, TestHub};
use serde_json::{Value, json};

const ADMIN: &str = "jhtest-admin";

fn hub_with(extra_auth: &str, extra: &str) -> TestHub {
    TestHub::start_with(&Setup {
        authenticator: format!(
            "password = \"{DUMMY_PASSWORD}\"\nadmin_users = [\"{ADMIN}\"]\n{extra_auth}"
        ),
        extra: extra.to_owned(),
        ..Setup::default()
    })
}

/// The page's `data-xsrf` (the token its script sends in `X-XSRFToken`).
fn data_xsrf(html: &str) -> String {
    let at = html.find("data-xsrf=\"").expect("data-xsrf") + "data-xsrf=\"".len();
    html[at..].split('"').next().unwrap().to_owned()
}

/// `method /hub/api{path}` from a logged-in browser (its cookies), with
/// `xsrf` in `X-XSRFToken` when given.
fn cookie_api(
    b: &mut Browser,
    method: &str,
    path: &str,
    xsrf: Option<&str>,
    body: Option<Value>,
) -> (u16, String) {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(x) = xsrf {
        headers.push(("X-XSRFToken", x));
    }
    let page = b.request(
        method,
        &format!("/hub/api{path}"),
        &headers,
        body.map(|v| v.to_string().into_bytes()),
    );
    (page.status, page.body)
}

/// The user names in the admin table's rows, in order.
fn table_users(html: &str) -> Vec<String> {
    html.split("<tr data-user=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_owned())
        .collect()
}

#[test]
fn admin_page_lists_users_for_admins_and_refuses_others() {
    let hub = hub_with("", "");
    hub.create_users(&["jhtest-bob", "jhtest-carol", "jhtest-dave"]);
    let mut admin = hub.login(ADMIN, DUMMY_PASSWORD);

    let page = admin.get("/hub/admin");
    assert_eq!(page.status, 200, "{}\n{}", page.body, hub.log());
    let listed = table_users(&page.body);
    for name in [ADMIN, "jhtest-bob", "jhtest-carol", "jhtest-dave"] {
        assert!(
            listed.contains(&name.to_owned()),
            "{name} not in {listed:?}"
        );
    }
    // the server-rendered table: states, start forms, sort links, the script
    assert!(page.body.contains("state-stopped"), "{}", page.body);
    assert!(
        page.body
            .contains("action=\"/hub/spawn/jhtest-bob?next=%2Fhub%2Fadmin\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("id=\"sort-name\""));
    assert!(
        page.body
            .contains("<script src=\"/hub/static/js/admin.js?v=")
    );
    // the header links: Token for everyone, Admin for admins
    let home = admin.get("/hub/home");
    assert!(home.body.contains("href=\"/hub/token\""), "{}", home.body);
    assert!(home.body.contains("href=\"/hub/admin\""), "{}", home.body);

    // sorting, search and pagination without JavaScript
    let desc = admin.get("/hub/admin?sort=-name");
    let names = table_users(&desc.body);
    let mut sorted = names.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(names, sorted);
    let found = admin.get("/hub/admin?name_filter=car");
    assert_eq!(table_users(&found.body), vec!["jhtest-carol".to_owned()]);
    let first = admin.get("/hub/admin?sort=name&limit=2");
    assert_eq!(
        table_users(&first.body),
        vec![ADMIN.to_owned(), "jhtest-bob".to_owned()]
    );
    assert!(first.body.contains("Users 1–2 of 4"), "{}", first.body);
    assert!(
        first
            .body
            .contains("id=\"next-page\" href=\"/hub/admin?sort=name&amp;offset=2&amp;limit=2\""),
        "{}",
        first.body
    );
    let second = admin.get("/hub/admin?sort=name&offset=2&limit=2");
    assert_eq!(
        table_users(&second.body),
        vec!["jhtest-carol".to_owned(), "jhtest-dave".to_owned()]
    );

    // the script: shipped in the binary, cached
    let js = admin.get("/hub/static/js/admin.js");
    assert_eq!(js.status, 200);
    assert!(js.body.contains("X-XSRFToken"));

    // the add-users form (without JavaScript)
    let xsrf = xsrf_in(&page.body).unwrap();
    let added = admin.post_form(
        "/hub/admin/users",
        &[
            ("usernames", "jhtest-erin\njhtest-frank, jhtest-bob"),
            ("admin", "1"),
            ("_xsrf", &xsrf),
        ],
    );
    assert_eq!(
        (added.status, added.location.as_deref()),
        (303, Some("/hub/admin")),
        "{added:?}"
    );
    let erin = hub.api("GET", "/users/jhtest-erin", None).json();
    assert_eq!(erin["admin"], json!(true), "{erin}");
    let bob = hub.api("GET", "/users/jhtest-bob", None).json();
    assert_eq!(
        bob["admin"],
        json!(false),
        "an existing user was changed: {bob}"
    );
    let refused = admin.post_form("/hub/admin/users", &[("usernames", "jhtest-x")]);
    assert_eq!(refused.status, 403, "no XSRF token: {refused:?}");

    // the API the script drives, with the page's XSRF token
    let token = data_xsrf(&page.body);
    let (status, body) = cookie_api(
        &mut admin,
        "PATCH",
        "/users/jhtest-bob",
        Some(&token),
        Some(json!({"admin": true})),
    );
    assert_eq!(status, 200, "{body}");
    let (status, _) = cookie_api(
        &mut admin,
        "PATCH",
        "/users/jhtest-bob",
        None,
        Some(json!({"admin": false})),
    );
    assert_eq!(
        status, 403,
        "a cookie without the XSRF header changed a user"
    );
    let (status, body) = cookie_api(&mut admin, "GET", "/users?limit=2&sort=name", None, None);
    assert_eq!(status, 200, "{body}");

    // not an admin: a 403 page, no Admin link, and the admin API refused
    let mut carol = hub.login("jhtest-carol", DUMMY_PASSWORD);
    let page = carol.get("/hub/admin");
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("Only admins"), "{}", page.body);
    let home = carol.get("/hub/home");
    assert!(home.body.contains("href=\"/hub/token\""));
    assert!(!home.body.contains("href=\"/hub/admin\""), "{}", home.body);
    let xsrf = xsrf_in(&home.body).unwrap();
    let refused = carol.post_form(
        "/hub/admin/users",
        &[("usernames", "jhtest-mallory"), ("_xsrf", &xsrf)],
    );
    assert_eq!(refused.status, 403);
    let refused = carol.post_form("/hub/admin/stop-all", &[("_xsrf", &xsrf)]);
    assert_eq!(refused.status, 403);
    let (status, _) = cookie_api(&mut carol, "GET", "/users", None, None);
    assert_eq!(status, 403);
    let page = carol.get("/hub/token");
    let token = data_xsrf_or_form(&page.body);
    let (status, _) = cookie_api(
        &mut carol,
        "POST",
        "/users",
        Some(&token),
        Some(json!({"usernames": ["jhtest-mallory"]})),
    );
    assert_eq!(status, 403);
    assert!(!hub.usernames().contains(&"jhtest-mallory".to_owned()));
}

fn data_xsrf_or_form(html: &str) -> String {
    xsrf_in(html).expect("an _xsrf field")
}

/// Posts the token form with `fields` (plus its `_xsrf`); the page.
fn request_token(b: &mut Browser, fields: &[(&str, &str)]) -> jhub_tests::browser::Page {
    let xsrf = b.xsrf("/hub/token");
    let mut all = fields.to_vec();
    all.push(("_xsrf", &xsrf));
    b.post_form("/hub/token", &all)
}

/// The token shown once on the page.
fn shown_token(html: &str) -> String {
    let at = html
        .find("<code id=\"new-token\">")
        .expect("a new token on the page")
        + "<code id=\"new-token\">".len();
    html[at..].split('<').next().unwrap().to_owned()
}

fn whoami(hub: &TestHub, token: &str) -> (u16, Value) {
    let a = hub.api_as(Some(token), "GET", "/user", None);
    (
        a.status,
        serde_json::from_str(&a.body).unwrap_or(Value::Null),
    )
}

fn token_id_of(html: &str, note: &str) -> String {
    let row = html
        .split("<tr data-token-id=\"")
        .skip(1)
        .find(|r| r.contains(&format!("<td class=\"note\">{note}</td>")))
        .unwrap_or_else(|| panic!("no token with note {note}: {html}"));
    row.split('"').next().unwrap().to_owned()
}

#[test]
fn tokens_from_the_token_page_have_the_chosen_scopes_and_end() {
    let hub = hub_with("", "");
    hub.create_users(&["jhtest-tok"]);
    let mut b = hub.login("jhtest-tok", DUMMY_PASSWORD);

    let page = b.get("/hub/token");
    assert_eq!(page.status, 200, "{}", page.body);
    for choice in [
        "value=\"\"",
        "value=\"3600\"",
        "value=\"86400\"",
        "value=\"604800\"",
    ] {
        assert!(page.body.contains(choice), "{choice}: {}", page.body);
    }

    // exactly the chosen scopes
    let chosen = [
        "read:users:name!user=jhtest-tok",
        "read:users:activity!user=jhtest-tok",
    ];
    let made = request_token(
        &mut b,
        &[
            ("note", "jhtest scoped"),
            ("expires_in", "3600"),
            ("scopes", &chosen.join(", ")),
        ],
    );
    assert_eq!(made.status, 200, "{}", made.body);
    let token = shown_token(&made.body);
    let (status, me) = whoami(&hub, &token);
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["name"], json!("jhtest-tok"));
    let mut scopes: Vec<String> = me["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    scopes.sort();
    // plus the identify scopes every token of a user has, as JupyterHub's
    let mut wanted: Vec<String> = chosen.iter().map(|s| s.to_string()).collect();
    wanted.push("read:users:groups!user=jhtest-tok".into());
    wanted.sort();
    assert_eq!(scopes, wanted, "{me}");
    // that token cannot do more: it cannot list the user's tokens
    let listed = hub.api_as(Some(&token), "GET", "/users/jhtest-tok/tokens", None);
    assert_eq!(listed.status, 403, "{}", listed.body);
    // its expiry, about an hour away, shows in the API and on the page
    let models = hub.api("GET", "/users/jhtest-tok/tokens", None).json();
    let model = models["api_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["note"] == json!("jhtest scoped"))
        .cloned()
        .expect("the token in the API");
    assert!(model["expires_at"].is_string(), "{model}");
    let page = b.get("/hub/token");
    assert!(!page.body.contains(&token), "the token is shown again");
    let id = token_id_of(&page.body, "jhtest scoped");
    assert_eq!(model["id"], json!(id));

    // empty scopes: all of the user's own
    let made = request_token(
        &mut b,
        &[("note", "jhtest all"), ("expires_in", ""), ("scopes", "")],
    );
    let all = shown_token(&made.body);
    let (status, me) = whoami(&hub, &all);
    assert_eq!(status, 200);
    let scopes = me["scopes"].to_string();
    assert!(scopes.contains("tokens!user=jhtest-tok"), "{me}");
    let listed = hub.api_as(Some(&all), "GET", "/users/jhtest-tok/tokens", None);
    assert_eq!(listed.status, 200, "{}", listed.body);

    // more than the user has: refused, with the reason on the page
    let refused = request_token(
        &mut b,
        &[("note", "jhtest admin"), ("scopes", "admin:users")],
    );
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body.contains("id=\"token-error\""),
        "{}",
        refused.body
    );
    assert!(!refused.body.contains("id=\"new-token\""));

    // revoked: stops working
    let xsrf = b.xsrf("/hub/token");
    let revoked = b.post_form("/hub/token/revoke", &[("token_id", &id), ("_xsrf", &xsrf)]);
    assert_eq!(revoked.status, 303, "{revoked:?}");
    assert_eq!(whoami(&hub, &token).0, 403);
    assert_eq!(whoami(&hub, &all).0, 200, "another token was revoked too");
    let again = b.post_form("/hub/token/revoke", &[("token_id", &id), ("_xsrf", &xsrf)]);
    assert_eq!(again.status, 404);
    let forged = b.post_form("/hub/token/revoke", &[("token_id", "a1")]);
    assert_eq!(forged.status, 403, "no XSRF token");

    // another user's token cannot be revoked from here
    hub.create_users(&["jhtest-other"]);
    let other = hub.user_token("jhtest-other", None);
    let (_, other_me) = whoami(&hub, &other);
    let other_id = other_me["token_id"].as_str().unwrap().to_owned();
    let refused = b.post_form(
        "/hub/token/revoke",
        &[("token_id", &other_id), ("_xsrf", &xsrf)],
    );
    assert_eq!(refused.status, 404);
    assert_eq!(whoami(&hub, &other).0, 200);

    // a short lifetime (any number of seconds is accepted by the form's
    // handler; the page offers hours and up)
    let made = request_token(&mut b, &[("note", "jhtest short"), ("expires_in", "2")]);
    let short = shown_token(&made.body);
    assert_eq!(whoami(&hub, &short).0, 200);
    std::thread::sleep(std::time::Duration::from_millis(3100));
    assert_eq!(whoami(&hub, &short).0, 403, "an expired token still works");
    let page = b.get("/hub/token");
    assert!(!page.body.contains("jhtest short"), "{}", page.body);
}

const TRUSTED: &str = "jhtest-trusted";
const TRUSTED_CLIENT: &str = "service-jhtest-trusted-app";
const TRUSTED_SECRET: &str = "jhtest-trusted-service-token";
const TRUSTED_CALLBACK: &str = "http://127.0.0.1:9/jhtest/callback";

#[test]
fn oauth_clients_holding_tokens_are_listed_and_revoked() {
    let services = format!(
        r#"
[[services]]
name = "{TRUSTED}"
api_token = "{TRUSTED_SECRET}"
oauth_client_id = "{TRUSTED_CLIENT}"
oauth_redirect_uri = "{TRUSTED_CALLBACK}"
oauth_no_confirm = true

[[roles]]
name = "jhtest-service-users"
scopes = ["access:services!service={TRUSTED}"]
users = ["jhtest-alice"]
"#
    );
    let hub = hub_with("", &services);
    let mut b = hub.login("jhtest-alice", DUMMY_PASSWORD);
    let query = encode_form(&[
        ("client_id", TRUSTED_CLIENT),
        ("redirect_uri", TRUSTED_CALLBACK),
        ("response_type", "code"),
        ("state", "s"),
    ]);
    let page = b.get(&format!("/hub/api/oauth2/authorize?{query}"));
    let location = page.location.clone().unwrap_or_default();
    assert!(location.starts_with(TRUSTED_CALLBACK), "{page:?}");
    let code = location
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    let body = encode_form(&[
        ("client_id", TRUSTED_CLIENT),
        ("client_secret", TRUSTED_SECRET),
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", TRUSTED_CALLBACK),
    ]);
    let answer = hub
        .send(
            "POST",
            "/hub/api/oauth2/token",
            None,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            Some(body.into_bytes()),
        )
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    let access = answer.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(whoami(&hub, &access).0, 200);

    let page = b.get("/hub/token");
    assert!(
        page.body
            .contains(&format!("<tr data-client-id=\"{TRUSTED_CLIENT}\">")),
        "{}",
        page.body
    );
    // the OAuth token is not among the API tokens
    assert!(!page.body.contains("id=\"api-tokens\""), "{}", page.body);
    let xsrf = xsrf_in(&page.body).unwrap();
    let revoked = b.post_form(
        "/hub/token/revoke",
        &[("client_id", TRUSTED_CLIENT), ("_xsrf", &xsrf)],
    );
    assert_eq!(revoked.status, 303, "{revoked:?}");
    assert_eq!(
        whoami(&hub, &access).0,
        403,
        "the client's token still works"
    );
    let page = b.get("/hub/token");
    assert!(page.body.contains("No application holds a token of yours."));
}
