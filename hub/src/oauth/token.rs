//! `POST /hub/api/oauth2/token`: a client exchanges a code for an access
//! token (the checks of oauthlib's `validate_token_request`, in its
//! order). The client calls from its server, not through a browser, so
//! there is no XSRF check: the client secret authenticates the request.
//!
//! The body is form-encoded (`grant_type=authorization_code`, `code`,
//! `redirect_uri`, `client_id`, `client_secret`, and `code_verifier` with
//! PKCE), as `HubOAuth.token_for_code` sends it; the client's credentials
//! may also come as HTTP Basic (RFC 6749 2.3.1). Answers are JSON with
//! `Cache-Control: no-store`: the token as
//! `{"access_token", "expires_in", "token_type": "Bearer", "scope"}`, or
//! an RFC 6749 5.2 error, `{"error", "error_description"}`, with 400, or
//! 401 and `WWW-Authenticate` for a client that fails to authenticate.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{base64_decode, base64url, constant_time_eq};
use crate::app::AppState;
use crate::auth::tokens;
use crate::db::oauth::{NewOAuthToken, OAuthClientRow, OAuthCodeRow};

/// The largest request body read.
const MAX_BODY: usize = 16 * 1024;

/// A JSON answer with the headers RFC 6749 5.1 asks for.
fn answer(status: StatusCode, body: &Value) -> Response {
    let mut r = (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
        body.to_string(),
    )
        .into_response();
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

/// An RFC 6749 5.2 error.
#[derive(Debug)]
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: &'static str,
}

impl OAuthError {
    fn new(error: &'static str, description: &'static str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error,
            description,
        }
    }

    fn invalid_client() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: "",
        }
    }

    fn invalid_grant(description: &'static str) -> Self {
        Self::new("invalid_grant", description)
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": self.error});
        if !self.description.is_empty() {
            body["error_description"] = json!(self.description);
        }
        let mut r = answer(self.status, &body);
        if self.status == StatusCode::UNAUTHORIZED {
            let challenge = format!("Bearer error=\"{}\"", self.error);
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
        }
        r
    }
}

/// The client's credentials from `Authorization: Basic` (both parts
/// form-urlencoded, RFC 6749 2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(base64_decode(encoded.trim())?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| -> String {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unescape(id), unescape(secret)))
}

/// The client named by the request, if its secret is right.
async fn authenticate_client(
    st: &AppState,
    id: Option<&str>,
    secret: Option<&str>,
) -> Result<OAuthClientRow, Response> {
    let (Some(id), Some(secret)) = (id, secret.filter(|s| !s.is_empty())) else {
        return Err(OAuthError::invalid_client().into_response());
    };
    let client = st.db.oauth_client(id).await.map_err(|e| internal(&e))?;
    let Some(client) = client else {
        tracing::warn!(client = %id, "token request from an unknown OAuth client");
        return Err(OAuthError::invalid_client().into_response());
    };
    let stored = client.secret_hash.as_deref().unwrap_or_default();
    let given = tokens::hash(secret);
    if stored.is_empty() || !constant_time_eq(stored.as_bytes(), given.as_bytes()) {
        tracing::warn!(client = %id, "client secret mismatch");
        return Err(OAuthError::invalid_client().into_response());
    }
    Ok(client)
}

fn internal(e: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %e, "token request failed");
    answer(
        StatusCode::INTERNAL_SERVER_ERROR,
        &json!({"error": "server_error"}),
    )
}

/// Whether `verifier` answers the PKCE `challenge` made with `method`.
fn pkce_ok(challenge: &str, method: &str, verifier: &str) -> bool {
    let expected = match method {
        "S256" => base64url(&Sha256::digest(verifier.as_bytes())),
        "plain" => verifier.to_owned(),
        _ => return false,
    };
    constant_time_eq(expected.as_bytes(), challenge.as_bytes())
}

/// `POST /hub/api/oauth2/token`.
pub async fn token(State(st): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return OAuthError::new("invalid_request", "The request body is too large.")
            .into_response();
    };
    let params: Vec<(String, String)> = form_urlencoded::parse(&bytes).into_owned().collect();
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if get("grant_type") != Some("authorization_code") {
        return OAuthError::new("unsupported_grant_type", "").into_response();
    }
    let Some(code) = get("code").filter(|c| !c.is_empty()) else {
        return OAuthError::new("invalid_request", "Missing code parameter.").into_response();
    };
    for (name, message) in [
        ("client_id", "Duplicate client_id parameter."),
        ("grant_type", "Duplicate grant_type parameter."),
        ("redirect_uri", "Duplicate redirect_uri parameter."),
    ] {
        if params.iter().filter(|(k, _)| k == name).count() > 1 {
            return OAuthError::new("invalid_request", message).into_response();
        }
    }
    let basic = basic_credentials(&parts.headers);
    let (client_id, secret) = match (&basic, get("client_id")) {
        (Some((id, secret)), _) => (Some(id.as_str()), Some(secret.as_str())),
        (None, id) => (id, get("client_secret")),
    };
    let client = match authenticate_client(&st, client_id, secret).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let row = match st.db.oauth_code(&tokens::hash(code)).await {
        Ok(r) => r,
        Err(e) => return internal(&e),
    };
    let row: OAuthCodeRow = match row {
        Some(r) if r.client_id == client.identifier => r,
        _ => {
            tracing::debug!(client = %client.identifier, "unknown or used OAuth code");
            return OAuthError::invalid_grant("").into_response();
        }
    };
    if row.expires_at.as_str() < crate::db::now().as_str() {
        if let Err(e) = st.db.delete_oauth_code(row.id).await {
            return internal(&e);
        }
        return OAuthError::invalid_grant("The code has expired.").into_response();
    }
    if let Some(challenge) = &row.code_challenge {
        let Some(verifier) = get("code_verifier") else {
            return OAuthError::new("invalid_request", "Code verifier required.").into_response();
        };
        let method = row.code_challenge_method.as_deref().unwrap_or("plain");
        if !pkce_ok(challenge, method, verifier) {
            tracing::warn!(client = %client.identifier, "PKCE verifier mismatch");
            return OAuthError::invalid_grant("").into_response();
        }
    }
    let code_uri = row.redirect_uri.clone().unwrap_or_default();
    let given_uri = get("redirect_uri").unwrap_or(&code_uri);
    if given_uri != code_uri {
        return OAuthError::new("invalid_request", "Mismatching redirect URI.").into_response();
    }

    let access_token = match tokens::generate() {
        Ok(t) => t,
        Err(e) => return internal(&e),
    };
    let expires_in = expires_in(&st);
    let expires_at =
        crate::db::timestamp(time::OffsetDateTime::now_utc() + time::Duration::seconds(expires_in));
    let issued = st
        .db
        .exchange_oauth_code(
            &row,
            &NewOAuthToken {
                hashed: &tokens::hash(&access_token),
                prefix: tokens::prefix(&access_token),
                expires_at: &expires_at,
            },
        )
        .await;
    match issued {
        Ok(Some(_)) => {}
        Ok(None) => return OAuthError::invalid_grant("").into_response(),
        Err(e) => return internal(&e),
    }
    tracing::info!(client = %client.identifier, "OAuth token issued");
    let scope = row.scope_list().join(" ");
    answer(
        StatusCode::OK,
        &json!({
            "access_token": access_token,
            "expires_in": expires_in,
            "token_type": "Bearer",
            "scope": scope,
        }),
    )
}

/// `hub.oauth_token_expires_in`, by default the login cookie's lifetime
/// (JupyterHub's default: `cookie_max_age_days`).
fn expires_in(st: &AppState) -> i64 {
    match st.config.hub.oauth_token_expires_in {
        Some(secs) if secs > 0 => i64::try_from(secs).unwrap_or(i64::MAX / 2),
        _ => st.sessions.max_age(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_methods() {
        // RFC 7636, appendix B
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_ok(challenge, "S256", verifier));
        assert!(!pkce_ok(challenge, "S256", "another-verifier"));
        assert!(pkce_ok(verifier, "plain", verifier));
        assert!(!pkce_ok(challenge, "plain", verifier));
        assert!(!pkce_ok(challenge, "S512", verifier));
    }

    #[test]
    fn basic_auth() {
        let mut h = HeaderMap::new();
        // "jupyterhub-user-a%40b:s3cr%3At" in base64
        let raw = "jupyterhub-user-a%40b:s3cr%3At";
        let encoded = {
            // standard base64 of raw
            let url = base64url(raw.as_bytes());
            let mut s = url.replace('-', "+").replace('_', "/");
            while s.len() % 4 != 0 {
                s.push('=');
            }
            s
        };
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}")).unwrap(),
        );
        assert_eq!(
            basic_credentials(&h),
            Some(("jupyterhub-user-a@b".into(), "s3cr:t".into()))
        );
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("token x"));
        assert_eq!(basic_credentials(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!"));
        assert_eq!(basic_credentials(&h), None);
    }
}
