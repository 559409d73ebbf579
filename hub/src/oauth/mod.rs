//! The hub's OAuth2 provider: how a user's server (the real
//! `jupyterhub-singleuser`, through `HubOAuth`) or a service logs a browser
//! in with the hub, as JupyterHub 6's provider does it
//! (`jupyterhub/apihandlers/auth.py`, `jupyterhub/oauth/provider.py`).
//!
//! The authorization-code flow, with optional PKCE (RFC 7636):
//!
//! 1. The client sends the browser to [`AUTHORIZE_PATH`] with its
//!    `client_id`, `redirect_uri`, `response_type=code` and `state`
//!    ([`authorize`]). A browser without a hub login goes to the login page
//!    and comes back. The client must be registered and the redirect URI
//!    must be the registered one, else the browser gets an error page and
//!    is never sent anywhere. The user must hold the client's access scope
//!    (`access:servers!server=NAME/` for a server, `access:services!service=S`
//!    for a service), else 403.
//! 2. The granted scopes are the requested ones (default: the client's
//!    allowed scopes), which must lie within what the client is allowed,
//!    cut down to what the user holds, plus the identify scopes and the
//!    access scope. The user confirms on an "Authorize access" page, except
//!    for their own servers, services configured with `oauth_no_confirm`,
//!    and clients already authorized for these scopes.
//! 3. The browser goes back to the redirect URI with a single-use `code`
//!    (valid for [`CODE_LIFETIME_SECS`]) and the `state`.
//! 4. The client exchanges the code at [`TOKEN_PATH`] ([`token`]) with its
//!    secret for an access token: an API token of the user, from this
//!    client, tied to the browser session (logging out of the hub revokes
//!    it), with the granted scopes.
//!
//! Clients are rows of `oauth_clients` ([`crate::db::oauth`]): one per
//! running server, registered by the spawner with [`NewOAuthClient`] and
//! the names from [`client_id_for`], [`redirect_uri_for`],
//! [`allowed_scopes_for`] and [`description_for`]; and one per
//! `[[services]]` entry that has OAuth ([`sync_service_clients`]).

pub mod authorize;
pub mod token;

use axum::Router;
use axum::routing::{get, post};

use crate::app::AppState;
use crate::config::{Config, Secrets, ServiceConfig};
use crate::db::oauth::OAuthClientRow;
use crate::db::{Db, DbError};

pub use crate::db::oauth::{HUB_CLIENT, NewOAuthClient};

/// The authorization endpoint (browsers).
pub const AUTHORIZE_PATH: &str = "/hub/api/oauth2/authorize";
/// The token endpoint (clients, server to server).
pub const TOKEN_PATH: &str = "/hub/api/oauth2/token";
/// How long a code may wait to be exchanged, in seconds (JupyterHub's
/// five minutes).
pub const CODE_LIFETIME_SECS: i64 = 300;
/// The scopes every OAuth token gets, to identify its user (JupyterHub's
/// raw `identify_scopes()`).
pub const IDENTIFY_SCOPES: [&str; 2] = ["read:users:name!user", "read:users:groups!user"];
/// The prefix of every service's client id (JupyterHub requires it).
pub const SERVICE_CLIENT_PREFIX: &str = "service-";

/// The authorization endpoint's routes, to be served among the pages
/// (they are browser pages, with the pages' cookies and headers).
pub fn page_routes() -> Router<AppState> {
    Router::new().route(
        AUTHORIZE_PATH,
        get(authorize::authorize).post(authorize::confirm),
    )
}

/// The token endpoint's route.
pub fn api_routes() -> Router<AppState> {
    Router::new().route(TOKEN_PATH, post(token::token))
}

/// Python's `urllib.parse.quote(text, safe=...)`: every byte but ASCII
/// letters, digits, `_.-~` and those in `safe` as `%XX`.
fn quote(text: &str, safe: &[u8]) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"_.-~".contains(&b) || safe.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// JupyterHub's `url_escape_path` (names in URL paths).
fn escape_path(text: &str) -> String {
    quote(text, b"@~")
}

/// The OAuth client id of `user`'s server `server` (`""`: the default
/// server): `jupyterhub-user-NAME` or `jupyterhub-user-NAME-SERVER`, the
/// names quoted as JupyterHub's `User.spawners` does it (`quote`, which
/// keeps `/`).
pub fn client_id_for(user: &str, server: &str) -> String {
    let mut id = format!("jupyterhub-user-{}", quote(user, b"/"));
    if !server.is_empty() {
        id.push('-');
        id.push_str(&quote(server, b"/"));
    }
    id
}

/// Where the hub sends the codes of `user`'s server `server`:
/// `/user/NAME/oauth_callback` or `/user/NAME/SERVER/oauth_callback`
/// (JupyterHub's `JUPYTERHUB_OAUTH_CALLBACK_URL`).
pub fn redirect_uri_for(user: &str, server: &str) -> String {
    let mut uri = format!("/user/{}/", escape_path(user));
    if !server.is_empty() {
        uri.push_str(&escape_path(server));
        uri.push('/');
    }
    uri.push_str("oauth_callback");
    uri
}

/// The scope that lets a browser into `user`'s server `server`:
/// `access:servers!server=NAME/SERVER`.
pub fn access_scope_for(user: &str, server: &str) -> String {
    format!("access:servers!server={user}/{server}")
}

/// The allowed scopes of a server's client (JupyterHub's default
/// `Spawner.oauth_client_allowed_scopes`: the access scope).
pub fn allowed_scopes_for(user: &str, server: &str) -> Vec<String> {
    vec![access_scope_for(user, server)]
}

/// The description of a server's client, as the authorization page shows
/// it: `Server at /user/NAME/` (or `/user/NAME/SERVER/`).
pub fn description_for(user: &str, server: &str) -> String {
    let mut path = format!("/user/{}/", escape_path(user));
    if !server.is_empty() {
        path.push_str(server);
        path.push('/');
    }
    format!("Server at {path}")
}

/// The client id of a service: `oauth_client_id`, else `service-NAME`.
pub fn service_client_id(s: &ServiceConfig) -> String {
    s.oauth_client_id
        .clone()
        .unwrap_or_else(|| format!("{SERVICE_CLIENT_PREFIX}{}", s.name))
}

/// Whether a service has an OAuth client: it has a `url`, or one of the
/// `oauth_*` keys is set (JupyterHub's `Service.oauth_available`).
pub fn service_has_oauth(s: &ServiceConfig) -> bool {
    s.url.is_some() || service_oauth_specified(s)
}

/// Whether one of a service's `oauth_*` keys is set.
pub fn service_oauth_specified(s: &ServiceConfig) -> bool {
    s.oauth_client_id.is_some() || s.oauth_redirect_uri.is_some() || s.oauth_no_confirm
}

/// A service's redirect URI: `oauth_redirect_uri`, else, with a `url`,
/// `/services/NAME/oauth_callback`.
pub fn service_redirect_uri(s: &ServiceConfig) -> Option<String> {
    match (&s.oauth_redirect_uri, &s.url) {
        (Some(uri), _) => Some(uri.clone()),
        (None, Some(_)) => Some(format!("/services/{}/oauth_callback", s.name)),
        (None, None) => None,
    }
}

/// Checks a service's `oauth_*` keys, as JupyterHub's `Service` does:
/// the client id starts with `service-`; a service with OAuth keys needs
/// a redirect URI (given, or from its `url`) and an API token
/// (`has_token`: its client secret); the allowed scopes exist. The error
/// names the key (within the service's table) and the problem.
pub fn check_service_config(
    s: &ServiceConfig,
    has_token: bool,
) -> Result<(), (&'static str, String)> {
    if let Some(id) = &s.oauth_client_id {
        let rest = id.strip_prefix(SERVICE_CLIENT_PREFIX);
        if rest.is_none_or(|r| r.is_empty() || r.bytes().any(|b| b.is_ascii_control() || b == b' '))
        {
            return Err((
                "oauth_client_id",
                format!("service OAuth client ids start with 'service-', not {id:?}"),
            ));
        }
    }
    if let Some(uri) = &s.oauth_redirect_uri {
        let ok = (uri.starts_with('/') && !uri.starts_with("//"))
            || uri.starts_with("http://")
            || uri.starts_with("https://");
        if !ok || uri.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err((
                "oauth_redirect_uri",
                "expected an absolute http(s) URL or a path starting with '/'".into(),
            ));
        }
    }
    if service_oauth_specified(s) {
        if service_redirect_uri(s).is_none() {
            return Err((
                "oauth_redirect_uri",
                format!(
                    "service {} has OAuth configured but no oauth_redirect_uri (and no url to \
                     derive one from)",
                    s.name
                ),
            ));
        }
        if !has_token {
            return Err((
                "api_token",
                format!(
                    "service {} has OAuth configured but no api_token, its OAuth client secret",
                    s.name
                ),
            ));
        }
    }
    crate::scopes::check_exist(
        s.oauth_client_allowed_scopes.iter().map(String::as_str),
        &format!("service {}", s.name),
    )
    .map_err(|m| ("oauth_client_allowed_scopes", m))
}

/// Registers the OAuth clients of the configured services (secret: the
/// service's API token; allowed scopes: `oauth_client_allowed_scopes` and
/// `access:services!service=NAME`), and deletes the clients of services
/// that no longer have one, with their tokens. A service with a `url` but
/// no `api_token` gets no client (it could not authenticate).
pub async fn sync_service_clients(
    db: &Db,
    config: &Config,
    secrets: &Secrets,
) -> Result<(), DbError> {
    let mut keep = Vec::new();
    for s in config.services.iter().filter(|s| service_has_oauth(s)) {
        if !s.command.is_empty() && !secrets.service_tokens.contains_key(&s.name) {
            // a managed service's client gets its generated token as the
            // secret when the hub starts it
            keep.push(service_client_id(s));
            continue;
        }
        let (Some(token), Some(service)) = (
            secrets.service_tokens.get(&s.name),
            db.find_service(&s.name).await?,
        ) else {
            tracing::info!(service = %s.name, "service without api_token: no OAuth client");
            continue;
        };
        let identifier = register_service_client(db, s, service.id, token).await?;
        keep.push(identifier);
    }
    let removed = db
        .delete_oauth_clients_except(SERVICE_CLIENT_PREFIX, &keep)
        .await?;
    if removed > 0 {
        tracing::info!(
            count = removed,
            "deleted OAuth clients of services no longer configured"
        );
    }
    Ok(())
}

/// Creates or updates the OAuth client of service `s` (row `service_id`)
/// with `token` as its secret; returns its client id. A service without
/// a redirect URI has none.
pub async fn register_service_client(
    db: &Db,
    s: &ServiceConfig,
    service_id: i64,
    token: &crate::config::Secret,
) -> Result<String, DbError> {
    let identifier = service_client_id(s);
    let Some(redirect_uri) = service_redirect_uri(s) else {
        return Ok(identifier);
    };
    let mut allowed: std::collections::BTreeSet<String> =
        s.oauth_client_allowed_scopes.iter().cloned().collect();
    allowed.insert(format!("access:services!service={}", s.name));
    let allowed: Vec<String> = allowed.into_iter().collect();
    let description = format!("JupyterHub service {}", s.name);
    db.upsert_service_oauth_client(
        &NewOAuthClient {
            identifier: &identifier,
            description: &description,
            secret: token.expose(),
            redirect_uri: &redirect_uri,
            allowed_scopes: &allowed,
            spawner_id: None,
        },
        service_id,
    )
    .await?;
    tracing::info!(service = %s.name, client = %identifier, "OAuth client registered");
    Ok(identifier)
}

/// What a client gives access to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A user's server: the user's name and the server's name.
    Server(String, String),
    /// A service, by name.
    Service(String),
}

impl Target {
    /// The scope a user needs to be let in (JupyterHub's `access_scopes`).
    pub(crate) fn access_scope(&self) -> String {
        match self {
            Self::Server(user, server) => access_scope_for(user, server),
            Self::Service(name) => format!("access:services!service={name}"),
        }
    }
}

/// What `client` gives access to: its server, its service, or else the
/// target named by an access scope among its allowed scopes.
pub(crate) async fn target_of(db: &Db, client: &OAuthClientRow) -> Result<Option<Target>, DbError> {
    if let Some(id) = client.spawner_id {
        if let Some((user, server)) = db.spawner_names(id).await? {
            return Ok(Some(Target::Server(user, server)));
        }
    }
    if let Some(id) = client.service_id {
        if let Some(name) = db.service_name(id).await? {
            return Ok(Some(Target::Service(name)));
        }
    }
    for scope in client.allowed_scope_list() {
        if let Some(server) = scope.strip_prefix("access:servers!server=") {
            if let Some((user, name)) = server.split_once('/') {
                return Ok(Some(Target::Server(user.to_owned(), name.to_owned())));
            }
        }
        if let Some(name) = scope.strip_prefix("access:services!service=") {
            return Ok(Some(Target::Service(name.to_owned())));
        }
    }
    Ok(None)
}

/// Equality of two strings in time that depends only on their lengths.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Base64url without padding (PKCE's `S256` challenge form).
pub(crate) fn base64url(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            let c = B64[((n >> (18 - 6 * i)) & 63) as usize];
            out.push(match c {
                b'+' => '-',
                b'/' => '_',
                c => c as char,
            });
        }
    }
    out
}

/// Decodes standard base64 (with or without padding); `None` if malformed.
pub(crate) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let v = B64.iter().position(|b| *b == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (bits < 6).then_some(out)
}

#[cfg(test)]
mod tests;
