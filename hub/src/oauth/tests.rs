//! The provider in process, through the hub's router: a server's client
//! registered as the spawner registers it, browsers as session cookies,
//! the client's calls as plain requests.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tower::ServiceExt;

use super::*;
use crate::app::{self, AppState};
use crate::config::{Config, Secrets, ServiceConfig};
use crate::db::DbUrl;
use crate::db::oauth::NewOAuthCode;
use crate::session::{self, XsrfBinding};

const OWNER: &str = "jhtest-owner";
const SECRET: &str = "jhtest-server-api-token";

struct Hub {
    st: AppState,
    app: Router,
    _dir: tempfile::TempDir,
}

/// A browser: its cookie header and its XSRF token.
struct Login {
    cookie: String,
    xsrf: String,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }

    /// A query parameter of the `Location`.
    fn location_param(&self, name: &str) -> Option<String> {
        let (_, query) = self.location().split_once('?')?;
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

async fn hub() -> Hub {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&DbUrl::Sqlite(dir.path().join("t.sqlite")), false)
        .await
        .unwrap();
    let config = Config::default();
    let secrets = Secrets::default();
    app::init_from_config(&db, &config, &secrets).await.unwrap();
    let (st, _stop) = AppState::new(db, config, &secrets, &[7; 32]).unwrap();
    let app = app::router(st.clone());
    let hub = Hub { st, app, _dir: dir };
    hub.st
        .db
        .create_users(&[OWNER.into(), "jhtest-other".into()], false)
        .await
        .unwrap();
    hub.st
        .db
        .create_users(&["jhtest-admin".into()], true)
        .await
        .unwrap();
    // the owner's default server, as the spawner registers it
    hub.st
        .db
        .upsert_oauth_client(&NewOAuthClient {
            identifier: &client_id_for(OWNER, ""),
            description: &description_for(OWNER, ""),
            secret: SECRET,
            redirect_uri: &redirect_uri_for(OWNER, ""),
            allowed_scopes: &allowed_scopes_for(OWNER, ""),
            spawner_id: None,
        })
        .await
        .unwrap();
    hub
}

impl Hub {
    async fn login(&self, name: &str) -> Login {
        let user = self.st.db.find_user(name).await.unwrap().unwrap();
        let (id, set_cookie) = session::start(&self.st.sessions, &self.st.db, user.id)
            .await
            .unwrap();
        let cookie = set_cookie
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let xsrf = XsrfBinding::Session(&id).token(&self.st.sessions);
        Login { cookie, xsrf }
    }

    async fn send(&self, req: Request<Body>) -> Answer {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn get(&self, uri: &str, login: Option<&Login>) -> Answer {
        let mut req = Request::get(uri);
        if let Some(l) = login {
            req = req.header(header::COOKIE, &l.cookie);
        }
        self.send(req.body(Body::empty()).unwrap()).await
    }

    async fn post_form(&self, uri: &str, login: Option<&Login>, fields: &[(&str, &str)]) -> Answer {
        let mut req =
            Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(l) = login {
            req = req.header(header::COOKIE, &l.cookie);
        }
        let body = form(fields);
        self.send(req.body(Body::from(body)).unwrap()).await
    }

    async fn whoami(&self, token: &str) -> Answer {
        self.send(
            Request::get("/hub/api/user")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    /// Exchanges `code` as the owner's server does.
    async fn exchange(&self, code: &str, extra: &[(&str, &str)]) -> Answer {
        let client = client_id_for(OWNER, "");
        let redirect = redirect_uri_for(OWNER, "");
        let mut fields = vec![
            ("client_id", client.as_str()),
            ("client_secret", SECRET),
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect.as_str()),
        ];
        fields.extend_from_slice(extra);
        self.post_form(TOKEN_PATH, None, &fields).await
    }
}

fn form(fields: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        s.append_pair(k, v);
    }
    s.finish()
}

/// The authorize URL of the owner's server with `extra` parameters.
fn authorize_url(extra: &[(&str, &str)]) -> String {
    let client = client_id_for(OWNER, "");
    let redirect = redirect_uri_for(OWNER, "");
    let mut fields = vec![
        ("client_id", client.as_str()),
        ("redirect_uri", redirect.as_str()),
        ("response_type", "code"),
        ("state", "jhtest-state"),
    ];
    fields.extend_from_slice(extra);
    format!("{AUTHORIZE_PATH}?{}", form(&fields))
}

#[test]
fn names_as_jupyterhub_makes_them() {
    assert_eq!(client_id_for("alice", ""), "jupyterhub-user-alice");
    assert_eq!(client_id_for("alice", "gpu"), "jupyterhub-user-alice-gpu");
    assert_eq!(
        client_id_for("a@b c", "x/y"),
        "jupyterhub-user-a%40b%20c-x/y"
    );
    assert_eq!(redirect_uri_for("alice", ""), "/user/alice/oauth_callback");
    assert_eq!(
        redirect_uri_for("a@b c", "x/y"),
        "/user/a@b%20c/x%2Fy/oauth_callback"
    );
    assert_eq!(
        allowed_scopes_for("alice", ""),
        ["access:servers!server=alice/"]
    );
    assert_eq!(
        allowed_scopes_for("alice", "gpu"),
        ["access:servers!server=alice/gpu"]
    );
    assert_eq!(description_for("alice", ""), "Server at /user/alice/");
    assert_eq!(
        description_for("alice", "gpu"),
        "Server at /user/alice/gpu/"
    );
}

#[test]
fn service_keys() {
    let base = ServiceConfig {
        name: "jhtest-svc".into(),
        ..Default::default()
    };
    // no url, no oauth keys: no client, nothing to check
    assert!(!service_has_oauth(&base));
    assert_eq!(check_service_config(&base, false), Ok(()));
    // a url gives a client with the default id and redirect URI
    let with_url = ServiceConfig {
        url: Some("http://127.0.0.1:10101".into()),
        ..base.clone()
    };
    assert!(service_has_oauth(&with_url));
    assert_eq!(service_client_id(&with_url), "service-jhtest-svc");
    assert_eq!(
        service_redirect_uri(&with_url).as_deref(),
        Some("/services/jhtest-svc/oauth_callback")
    );
    // explicit keys need a redirect URI and a token
    let no_confirm = ServiceConfig {
        oauth_no_confirm: true,
        ..base.clone()
    };
    assert_eq!(
        check_service_config(&no_confirm, true).unwrap_err().0,
        "oauth_redirect_uri"
    );
    let external = ServiceConfig {
        oauth_redirect_uri: Some("https://svc.example/cb".into()),
        ..base.clone()
    };
    assert_eq!(
        check_service_config(&external, false).unwrap_err().0,
        "api_token"
    );
    assert_eq!(check_service_config(&external, true), Ok(()));
    for (bad, key) in [
        (
            ServiceConfig {
                oauth_client_id: Some("jupyterhub-user-x".into()),
                ..external.clone()
            },
            "oauth_client_id",
        ),
        (
            ServiceConfig {
                oauth_redirect_uri: Some("//evil.example/cb".into()),
                ..external.clone()
            },
            "oauth_redirect_uri",
        ),
        (
            ServiceConfig {
                oauth_client_allowed_scopes: vec!["no-such-scope".into()],
                ..external.clone()
            },
            "oauth_client_allowed_scopes",
        ),
    ] {
        assert_eq!(check_service_config(&bad, true).unwrap_err().0, key);
    }
}

#[test]
fn base64_forms() {
    assert_eq!(base64url(b""), "");
    assert_eq!(base64url(b"f"), "Zg");
    assert_eq!(base64url(b"fo"), "Zm8");
    assert_eq!(base64url(b"foo"), "Zm9v");
    assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    assert_eq!(base64_decode("Zm9vYmE=").unwrap(), b"fooba");
    assert_eq!(base64_decode("Zm9vYg").unwrap(), b"foob");
    assert_eq!(base64_decode("Zm9v!"), None);
    assert_eq!(base64_decode("Z"), None);
}

#[tokio::test]
async fn own_server_flow_with_pkce() {
    let hub = hub().await;
    let owner = hub.login(OWNER).await;
    let verifier = "jhtest-verifier-0123456789-0123456789-0123456789";
    let challenge = base64url(&Sha256::digest(verifier.as_bytes()));
    let url = authorize_url(&[
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ]);
    // one's own server: no confirmation, straight back with a code
    let a = hub.get(&url, Some(&owner)).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert!(
        a.location()
            .starts_with("/user/jhtest-owner/oauth_callback?code="),
        "{}",
        a.location()
    );
    assert_eq!(a.location_param("state").as_deref(), Some("jhtest-state"));
    let code = a.location_param("code").unwrap();

    // PKCE: no verifier, a wrong one
    let t = hub.exchange(&code, &[]).await;
    assert_eq!(t.status, StatusCode::BAD_REQUEST, "{}", t.body);
    assert_eq!(t.json()["error"], "invalid_request");
    let t = hub.exchange(&code, &[("code_verifier", "wrong")]).await;
    assert_eq!(t.status, StatusCode::BAD_REQUEST, "{}", t.body);
    assert_eq!(t.json()["error"], "invalid_grant");

    let t = hub.exchange(&code, &[("code_verifier", verifier)]).await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.body);
    assert_eq!(t.headers.get(header::CACHE_CONTROL).unwrap(), "no-store");
    let reply = t.json();
    assert_eq!(reply["token_type"], "Bearer");
    assert_eq!(reply["expires_in"], 14 * 86_400);
    let mut granted: Vec<&str> = reply["scope"].as_str().unwrap().split(' ').collect();
    granted.sort_unstable();
    assert_eq!(
        granted,
        [
            "access:servers!server=jhtest-owner/",
            "read:users:groups!user",
            "read:users:name!user"
        ]
    );
    let token = reply["access_token"].as_str().unwrap().to_owned();

    // the code works once only
    let again = hub.exchange(&code, &[("code_verifier", verifier)]).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert_eq!(again.json()["error"], "invalid_grant");

    // what jupyterhub-singleuser's HubAuth sees
    let me = hub.whoami(&token).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    let model = me.json();
    assert_eq!(model["name"], OWNER);
    assert_eq!(model["kind"], "user");
    assert_eq!(model["admin"], false);
    assert_eq!(model["groups"], serde_json::json!([]));
    assert_eq!(
        model["scopes"],
        serde_json::json!([
            "access:servers!server=jhtest-owner/",
            "read:users:groups!user=jhtest-owner",
            "read:users:name!user=jhtest-owner"
        ])
    );
    assert!(model["session_id"].is_string(), "{model}");
    // the token cannot do what the user's own tokens can
    let tokens = hub
        .send(
            Request::get("/hub/api/users/jhtest-owner/tokens")
                .header(header::AUTHORIZATION, format!("token {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(tokens.status, StatusCode::FORBIDDEN, "{}", tokens.body);

    // logging out of the hub revokes the tokens of that browser session,
    // and the codes it has not exchanged yet
    let pending = hub
        .get(&authorize_url(&[]), Some(&owner))
        .await
        .location_param("code")
        .unwrap();
    let out = hub.get("/hub/logout", Some(&owner)).await;
    assert!(out.status.is_redirection());
    assert_eq!(hub.whoami(&token).await.status, StatusCode::FORBIDDEN);
    let late = hub.exchange(&pending, &[]).await;
    assert_eq!(late.status, StatusCode::BAD_REQUEST, "{}", late.body);
    assert_eq!(late.json()["error"], "invalid_grant");
}

#[tokio::test]
async fn token_endpoint_errors() {
    let hub = hub().await;
    let owner = hub.login(OWNER).await;
    let code = hub
        .get(&authorize_url(&[]), Some(&owner))
        .await
        .location_param("code")
        .unwrap();
    let client = client_id_for(OWNER, "");
    // wrong secret: 401, with the Bearer challenge oauthlib sends
    let t = hub
        .post_form(
            TOKEN_PATH,
            None,
            &[
                ("client_id", &client),
                ("client_secret", "wrong"),
                ("grant_type", "authorization_code"),
                ("code", &code),
            ],
        )
        .await;
    assert_eq!(t.status, StatusCode::UNAUTHORIZED, "{}", t.body);
    assert_eq!(t.json()["error"], "invalid_client");
    assert!(t.headers.contains_key(header::WWW_AUTHENTICATE));
    // unknown client, no secret
    let t = hub
        .post_form(
            TOKEN_PATH,
            None,
            &[
                ("client_id", "jupyterhub"),
                ("grant_type", "authorization_code"),
                ("code", &code),
            ],
        )
        .await;
    assert_eq!(t.status, StatusCode::UNAUTHORIZED, "{}", t.body);
    // other grant types, a missing code
    let t = hub
        .post_form(TOKEN_PATH, None, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(t.json()["error"], "unsupported_grant_type");
    let t = hub
        .post_form(TOKEN_PATH, None, &[("grant_type", "authorization_code")])
        .await;
    assert_eq!(t.json()["error"], "invalid_request");
    // a duplicated redirect URI, another one than the code's
    let t = hub
        .exchange(
            &code,
            &[("redirect_uri", "/user/jhtest-other/oauth_callback")],
        )
        .await;
    assert_eq!(t.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        t.json()["error_description"],
        "Duplicate redirect_uri parameter."
    );
    let t = hub
        .post_form(
            TOKEN_PATH,
            None,
            &[
                ("client_id", &client),
                ("client_secret", SECRET),
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "/user/jhtest-other/oauth_callback"),
            ],
        )
        .await;
    assert_eq!(t.status, StatusCode::BAD_REQUEST, "{}", t.body);
    assert_eq!(t.json()["error"], "invalid_request");
    // credentials as HTTP Basic, no redirect_uri (the registered one)
    let basic = {
        let raw = format!("{client}:{SECRET}");
        let mut s = base64url(raw.as_bytes())
            .replace('-', "+")
            .replace('_', "/");
        while s.len() % 4 != 0 {
            s.push('=');
        }
        s
    };
    let t = hub
        .send(
            Request::post(TOKEN_PATH)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::AUTHORIZATION, format!("Basic {basic}"))
                .body(Body::from(form(&[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                ])))
                .unwrap(),
        )
        .await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.body);

    // an expired code
    let owner_id = hub.st.db.find_user(OWNER).await.unwrap().unwrap().id;
    let past = crate::db::timestamp(time::OffsetDateTime::now_utc() - time::Duration::seconds(1));
    hub.st
        .db
        .insert_oauth_code(&NewOAuthCode {
            code_hash: &crate::auth::tokens::hash("jhtest-expired-code"),
            client_id: &client,
            expires_at: &past,
            redirect_uri: &redirect_uri_for(OWNER, ""),
            session_id: None,
            user_id: owner_id,
            scopes: &[],
            code_challenge: None,
            code_challenge_method: None,
        })
        .await
        .unwrap();
    let t = hub.exchange("jhtest-expired-code", &[]).await;
    assert_eq!(t.status, StatusCode::BAD_REQUEST, "{}", t.body);
    assert_eq!(t.json()["error"], "invalid_grant");
}

#[tokio::test]
async fn authorize_refusals() {
    let hub = hub().await;
    let owner = hub.login(OWNER).await;

    // not logged in: to the login page, and back here afterwards
    let url = authorize_url(&[]);
    let a = hub.get(&url, None).await;
    assert!(a.status.is_redirection());
    let next = form_urlencoded::parse(a.location().split_once('?').unwrap().1.as_bytes())
        .find(|(k, _)| k == "next")
        .map(|(_, v)| v.into_owned());
    assert!(a.location().starts_with("/hub/login?"), "{}", a.location());
    assert_eq!(next.as_deref(), Some(url.as_str()));

    // an unknown client, a foreign redirect URI, a duplicate: an error page, no redirect
    for bad in [
        format!("{AUTHORIZE_PATH}?client_id=nobody&response_type=code"),
        format!("{AUTHORIZE_PATH}?response_type=code"),
        format!(
            "{AUTHORIZE_PATH}?client_id={}&redirect_uri=https%3A%2F%2Fevil.example%2F&response_type=code",
            client_id_for(OWNER, "")
        ),
        format!("{}&state=again", authorize_url(&[])),
    ] {
        let a = hub.get(&bad, Some(&owner)).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}: {}", a.body);
        assert!(!a.headers.contains_key(header::LOCATION), "{bad}");
        assert!(!a.body.contains("evil.example"), "{}", a.body);
    }

    // errors the client should hear about go to its registered URI
    let client = client_id_for(OWNER, "");
    let a = hub
        .get(
            &format!("{AUTHORIZE_PATH}?client_id={client}&response_type=token&state=s1"),
            Some(&owner),
        )
        .await;
    assert!(a.status.is_redirection(), "{}", a.body);
    assert!(
        a.location()
            .starts_with("/user/jhtest-owner/oauth_callback?")
    );
    assert_eq!(
        a.location_param("error").as_deref(),
        Some("unsupported_response_type")
    );
    assert_eq!(a.location_param("state").as_deref(), Some("s1"));
    let a = hub
        .get(&authorize_url(&[("scope", "no-such-scope")]), Some(&owner))
        .await;
    assert_eq!(a.location_param("error").as_deref(), Some("invalid_scope"));
    // a scope the client may not have
    let a = hub
        .get(&authorize_url(&[("scope", "admin:users")]), Some(&owner))
        .await;
    assert_eq!(a.location_param("error").as_deref(), Some("invalid_scope"));

    // another user has no access to the owner's server
    let other = hub.login("jhtest-other").await;
    let a = hub.get(&authorize_url(&[]), Some(&other)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert!(
        a.body.contains("Server at /user/jhtest-owner/"),
        "{}",
        a.body
    );
    let a = hub
        .post_form(
            &authorize_url(&[]),
            Some(&other),
            &[
                ("_xsrf", &other.xsrf),
                ("scopes", "access:servers!server=jhtest-owner/"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
}

#[tokio::test]
async fn admin_confirms_access_to_another_server() {
    let hub = hub().await;
    let admin = hub.login("jhtest-admin").await;
    let url = authorize_url(&[]);
    // not the admin's own server: the confirmation page
    let page = hub.get(&url, Some(&admin)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Authorize access"), "{}", page.body);
    assert!(page.body.contains("Server at /user/jhtest-owner/"));
    assert!(
        page.body
            .contains(r#"name="scopes" value="access:servers!server=jhtest-owner/""#),
        "{}",
        page.body
    );
    // the form's POST needs the XSRF token
    let fields = [
        ("scopes", "access:servers!server=jhtest-owner/"),
        ("scopes", "read:users:name!user"),
        ("scopes", "read:users:groups!user"),
    ];
    let a = hub.post_form(&url, Some(&admin), &fields).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert!(!a.headers.contains_key(header::LOCATION));
    let mut with_xsrf = fields.to_vec();
    with_xsrf.push(("_xsrf", &admin.xsrf));
    let a = hub.post_form(&url, Some(&admin), &with_xsrf).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let code = a.location_param("code").unwrap();
    assert_eq!(a.location_param("state").as_deref(), Some("jhtest-state"));
    let t = hub.exchange(&code, &[]).await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.body);
    let token = t.json()["access_token"].as_str().unwrap().to_owned();
    let model = hub.whoami(&token).await.json();
    assert_eq!(model["name"], "jhtest-admin");
    assert_eq!(model["admin"], true);
    let scopes: Vec<&str> = model["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        scopes.contains(&"access:servers!server=jhtest-owner/"),
        "{scopes:?}"
    );
    // authorized once, the same scopes need no confirmation again
    let a = hub.get(&url, Some(&admin)).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);

    // the client goes (its server stopped): its tokens go with it
    assert!(
        hub.st
            .db
            .delete_oauth_client(&client_id_for(OWNER, ""))
            .await
            .unwrap()
    );
    assert_eq!(hub.whoami(&token).await.status, StatusCode::FORBIDDEN);
    let a = hub.get(&url, Some(&admin)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
}
