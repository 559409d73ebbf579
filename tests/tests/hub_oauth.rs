//! The hub's OAuth2 provider against the built `jhub` (dummy
//! authenticator, no root needed): the test plays both the browser and
//! the OAuth client of a service configured with JupyterHub's
//! `oauth_*` keys, through the code flow `HubOAuth` (and so
//! `jupyterhub-singleuser`) runs: authorize, code, token, `GET
//! /hub/api/user`.

use jhub_tests::browser::{Browser, Page, encode_form, xsrf_in};
use jhub_tests::hub::{DUMMY_PASSWORD, Setup, TestHub, write_config};
use serde_json::Value;
use sha2::{Digest, Sha256};

const AUTHORIZE: &str = "/hub/api/oauth2/authorize";
const TOKEN: &str = "/hub/api/oauth2/token";

/// A service behind the proxy: OAuth through its `url`, default client id
/// and redirect URI; users need a role to get in.
const WEB: &str = "jhtest-web";
const WEB_SECRET: &str = "jhtest-web-service-token";
const WEB_CLIENT: &str = "service-jhtest-web";
const WEB_CALLBACK: &str = "/services/jhtest-web/oauth_callback";

/// An external service trusted to skip the confirmation page.
const TRUSTED: &str = "jhtest-trusted";
const TRUSTED_SECRET: &str = "jhtest-trusted-service-token";
const TRUSTED_CLIENT: &str = "service-jhtest-trusted-app";
const TRUSTED_CALLBACK: &str = "http://127.0.0.1:9/jhtest/callback";

fn services(with_web: bool) -> String {
    let web = if with_web {
        format!(
            r#"
[[services]]
name = "{WEB}"
api_token = "{WEB_SECRET}"
url = "http://127.0.0.1:9"
"#
        )
    } else {
        String::new()
    };
    format!(
        r#"{web}
[[services]]
name = "{TRUSTED}"
api_token = "{TRUSTED_SECRET}"
oauth_client_id = "{TRUSTED_CLIENT}"
oauth_redirect_uri = "{TRUSTED_CALLBACK}"
oauth_no_confirm = true

[[roles]]
name = "jhtest-service-users"
scopes = ["access:services!service={WEB}", "access:services!service={TRUSTED}"]
users = ["jhtest-alice"]
"#
    )
}

fn setup(with_web: bool) -> Setup {
    Setup {
        authenticator: format!(
            "password = \"{DUMMY_PASSWORD}\"\nadmin_users = [\"jhtest-admin\"]\n"
        ),
        extra: services(with_web),
        ..Setup::default()
    }
}

fn start() -> TestHub {
    TestHub::start_with(&setup(true))
}

fn authorize_url(client: &str, redirect_uri: &str, extra: &[(&str, &str)]) -> String {
    let mut fields = vec![
        ("client_id", client),
        ("redirect_uri", redirect_uri),
        ("response_type", "code"),
        ("state", "jhtest-state"),
    ];
    fields.extend_from_slice(extra);
    format!("{AUTHORIZE}?{}", encode_form(&fields))
}

fn param(url: &str, name: &str) -> Option<String> {
    let (_, query) = url.split_once('?')?;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| decode(v))
    })
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii");
                out.push(u8::from_str_radix(hex, 16).expect("hex"));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).expect("utf-8")
}

fn assert_redirect_to(page: &Page, prefix: &str) -> String {
    let to = page.location.clone().unwrap_or_default();
    assert!(
        (300..400).contains(&page.status) && to.starts_with(prefix),
        "expected a redirect to {prefix}...: {page:?}"
    );
    to
}

/// `POST /hub/api/oauth2/token` as `HubOAuth.token_for_code` sends it.
fn exchange(hub: &TestHub, fields: &[(&str, &str)]) -> (u16, Value) {
    let a = hub
        .send(
            "POST",
            TOKEN,
            None,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            Some(encode_form(fields).into_bytes()),
        )
        .expect("token request");
    let body = serde_json::from_str(&a.body).unwrap_or(Value::Null);
    (a.status, body)
}

fn web_exchange(hub: &TestHub, code: &str) -> (u16, Value) {
    exchange(
        hub,
        &[
            ("client_id", WEB_CLIENT),
            ("client_secret", WEB_SECRET),
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", WEB_CALLBACK),
        ],
    )
}

fn whoami(hub: &TestHub, token: &str) -> (u16, Value) {
    let a = hub.api_as(Some(token), "GET", "/user", None);
    let body = serde_json::from_str(&a.body).unwrap_or(Value::Null);
    (a.status, body)
}

fn scopes_of(model: &Value) -> Vec<String> {
    model["scopes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Confirms the "Authorize access" page `page` (at `url`); the answer.
fn confirm(b: &mut Browser, url: &str, page: &Page) -> Page {
    let xsrf = xsrf_in(&page.body).expect("the form's _xsrf");
    let scopes: Vec<String> = page
        .body
        .split("name=\"scopes\" value=\"")
        .skip(1)
        .map(|rest| {
            rest.split('"')
                .next()
                .unwrap_or_default()
                .replace("&amp;", "&")
        })
        .collect();
    let mut fields: Vec<(&str, &str)> = scopes.iter().map(|s| ("scopes", s.as_str())).collect();
    fields.push(("_xsrf", &xsrf));
    b.post_form(url, &fields)
}

#[test]
fn service_login_through_the_code_flow() {
    let hub = start();
    let mut b = hub.browser();
    let url = authorize_url(WEB_CLIENT, WEB_CALLBACK, &[]);

    // not logged in: the login page, which comes back here
    let to_login = assert_redirect_to(&b.get(&url), "/hub/login?next=");
    assert_eq!(param(&to_login, "next").as_deref(), Some(url.as_str()));
    let form = b.get(&to_login);
    let xsrf = xsrf_in(&form.body).expect("login form");
    let logged_in = b.post_form(
        &to_login,
        &[
            ("username", "jhtest-alice"),
            ("password", DUMMY_PASSWORD),
            ("_xsrf", &xsrf),
        ],
    );
    let back = assert_redirect_to(&logged_in, AUTHORIZE);
    assert_eq!(back, url);

    // a service: the user confirms first
    let page = b.get(&back);
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.body.contains("Authorize access"), "{}", page.body);
    assert!(
        page.body.contains("JupyterHub service jhtest-web"),
        "{}",
        page.body
    );
    // the form is XSRF-checked
    let refused = b.post_form(&url, &[("scopes", "access:services!service=jhtest-web")]);
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(refused.location.is_none());
    let answer = confirm(&mut b, &url, &page);
    let callback = assert_redirect_to(&answer, &format!("{WEB_CALLBACK}?"));
    assert_eq!(param(&callback, "state").as_deref(), Some("jhtest-state"));
    let code = param(&callback, "code").expect("a code");

    // the client's side: a wrong secret, then the right one
    let (status, err) = exchange(
        &hub,
        &[
            ("client_id", WEB_CLIENT),
            ("client_secret", "not-the-secret"),
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", WEB_CALLBACK),
        ],
    );
    assert_eq!(
        (status, err["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let (status, reply) = web_exchange(&hub, &code);
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["token_type"], "Bearer");
    assert!(
        reply["expires_in"].as_u64().is_some_and(|s| s > 0),
        "{reply}"
    );
    let token = reply["access_token"].as_str().expect("a token").to_owned();
    // the code works once only
    let (status, err) = web_exchange(&hub, &code);
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    // what HubAuth asks the hub about the token
    let (status, me) = whoami(&hub, &token);
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["name"], "jhtest-alice");
    assert_eq!(me["kind"], "user");
    assert_eq!(
        scopes_of(&me),
        [
            "access:services!service=jhtest-web",
            "read:users:groups!user=jhtest-alice",
            "read:users:name!user=jhtest-alice",
        ]
    );

    // authorized once, the same client needs no confirmation again
    let again = b.get(&url);
    assert_redirect_to(&again, &format!("{WEB_CALLBACK}?code="));

    // logout revokes the tokens of the browser session
    b.get("/hub/logout");
    assert_eq!(whoami(&hub, &token).0, 403);
}

#[test]
fn access_needs_the_access_scope() {
    let hub = start();
    let url = authorize_url(WEB_CLIENT, WEB_CALLBACK, &[]);
    // a user without a role that grants access to the service
    let mut bob = hub.login("jhtest-bob", DUMMY_PASSWORD);
    let page = bob.get(&url);
    assert_eq!(page.status, 403, "{page:?}");
    assert!(page.location.is_none());
    assert!(
        page.body.contains("You do not have permission"),
        "{}",
        page.body
    );
    // an admin holds access:services
    let mut admin = hub.login("jhtest-admin", DUMMY_PASSWORD);
    let page = admin.get(&url);
    assert_eq!(page.status, 200, "{page:?}");
    let answer = confirm(&mut admin, &url, &page);
    let callback = assert_redirect_to(&answer, &format!("{WEB_CALLBACK}?"));
    let (status, reply) = web_exchange(&hub, &param(&callback, "code").unwrap());
    assert_eq!(status, 200, "{reply}");
    let (_, me) = whoami(&hub, reply["access_token"].as_str().unwrap());
    assert_eq!(me["name"], "jhtest-admin");
    assert!(
        scopes_of(&me).contains(&"access:services!service=jhtest-web".to_owned()),
        "{me}"
    );
}

fn base64url(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[test]
fn trusted_service_with_pkce() {
    let hub = start();
    let mut alice = hub.login("jhtest-alice", DUMMY_PASSWORD);
    let verifier = "jhtest-pkce-verifier-0123456789abcdef0123456789";
    let challenge = base64url(&Sha256::digest(verifier.as_bytes()));
    let url = authorize_url(
        TRUSTED_CLIENT,
        TRUSTED_CALLBACK,
        &[
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    // oauth_no_confirm: straight back to the (absolute) redirect URI
    let callback = assert_redirect_to(&alice.get(&url), &format!("{TRUSTED_CALLBACK}?code="));
    let code = param(&callback, "code").unwrap();
    let fields = |verifier: &'static str| {
        vec![
            ("client_id", TRUSTED_CLIENT),
            ("client_secret", TRUSTED_SECRET),
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", TRUSTED_CALLBACK),
            ("code_verifier", verifier),
        ]
    };
    let (status, err) = exchange(&hub, &fields("not-the-verifier"));
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, reply) = exchange(&hub, &fields(verifier));
    assert_eq!(status, 200, "{reply}");
    let (_, me) = whoami(&hub, reply["access_token"].as_str().unwrap());
    assert!(
        scopes_of(&me).contains(&"access:services!service=jhtest-trusted".to_owned()),
        "{me}"
    );
}

#[test]
fn foreign_redirects_and_unknown_clients_are_refused() {
    let hub = start();
    let mut alice = hub.login("jhtest-alice", DUMMY_PASSWORD);
    for url in [
        authorize_url(WEB_CLIENT, "https://evil.example/steal", &[]),
        authorize_url(WEB_CLIENT, "/services/jhtest-trusted/oauth_callback", &[]),
        authorize_url("service-nobody", WEB_CALLBACK, &[]),
        authorize_url("jupyterhub", "/hub/oauth_callback", &[]),
    ] {
        let page = alice.get(&url);
        assert_eq!(page.status, 400, "{url}: {page:?}");
        assert!(page.location.is_none(), "{url}: {page:?}");
    }
    // other errors go back to the registered URI, never to another
    let page = alice.get(&format!(
        "{AUTHORIZE}?client_id={WEB_CLIENT}&response_type=token&state=s1"
    ));
    let back = assert_redirect_to(&page, &format!("{WEB_CALLBACK}?"));
    assert_eq!(
        param(&back, "error").as_deref(),
        Some("unsupported_response_type")
    );
    assert_eq!(param(&back, "state").as_deref(), Some("s1"));
}

#[test]
fn a_service_taken_out_of_the_config_loses_its_client_and_tokens() {
    let mut hub = start();
    let mut alice = hub.login("jhtest-alice", DUMMY_PASSWORD);
    let url = authorize_url(WEB_CLIENT, WEB_CALLBACK, &[]);
    let page = alice.get(&url);
    let callback = assert_redirect_to(&confirm(&mut alice, &url, &page), WEB_CALLBACK);
    let (_, reply) = web_exchange(&hub, &param(&callback, "code").unwrap());
    let token = reply["access_token"].as_str().unwrap().to_owned();
    assert_eq!(whoami(&hub, &token).0, 200);

    let port: u16 = hub
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the hub's port");
    write_config(hub.dir.path(), port, &hub.token, &setup(false));
    hub.restart();
    assert_eq!(whoami(&hub, &token).0, 403);
    assert_eq!(alice.get(&url).status, 400);
}

#[test]
fn oauth_keys_without_a_token_are_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup {
        extra: r#"
[[services]]
name = "jhtest-tokenless"
oauth_redirect_uri = "/services/jhtest-tokenless/oauth_callback"
"#
        .into(),
        ..Setup::default()
    };
    let path = write_config(dir.path(), 1, "jhtest-svc-token-value", &setup);
    let (code, _, stderr) = jhub_tests::hub::run_jhub(&["--config", path.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(stderr.contains("services[1].api_token"), "{stderr}");
}
