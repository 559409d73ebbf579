//! `GET` and `POST /hub/api/oauth2/authorize`: the browser's side of the
//! code flow (JupyterHub's `OAuthAuthorizeHandler`, with the checks of
//! oauthlib's `validate_authorization_request` in the same order).
//!
//! Errors about the client or its redirect URI (missing, unknown,
//! mismatching, duplicated) are shown to the user as a 400 page and never
//! redirect anywhere; the other errors go back to the registered redirect
//! URI as `error=...&error_description=...&state=...` (RFC 6749 4.1.2.1).
//! A user who does not hold the client's access scope gets a 403 page.
//!
//! The confirmation page POSTs back to the same URL with the granted
//! scopes as `scopes` fields and the XSRF token; the POST checks
//! everything again, so the form cannot widen what is granted.

use std::collections::BTreeSet;

use axum::extract::{RawQuery, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use super::{IDENTIFY_SCOPES, Target, target_of};
use crate::app::AppState;
use crate::auth::tokens;
use crate::db::TokenOwner;
use crate::db::oauth::{NewOAuthCode, OAuthClientRow};
use crate::pages::{Browser, LoggedIn, PageError, SessionUser, layout, page, read_form};
use crate::scopes::{self, Owner, Resource, ScopeSet};
use crate::session;

/// Parameters that may appear once only (oauthlib's list).
const SINGLE_PARAMS: [&str; 5] = [
    "client_id",
    "response_type",
    "redirect_uri",
    "scope",
    "state",
];

/// A checked authorization request.
#[derive(Debug)]
struct Checked {
    client: OAuthClientRow,
    target: Target,
    redirect_uri: String,
    state: Option<String>,
    /// The `scope` parameter, split; `None` when absent or empty.
    scope: Option<Vec<String>>,
    challenge: Option<(String, String)>,
}

/// Why an authorization request stops.
#[derive(Debug)]
enum Stop {
    /// Shown to the user as an error page.
    Page(PageError),
    /// Sent back to the client's redirect URI.
    Redirect(String),
}

impl IntoResponse for Stop {
    fn into_response(self) -> Response {
        match self {
            Self::Page(e) => e.into_response(),
            Self::Redirect(to) => Redirect::to(&to).into_response(),
        }
    }
}

impl From<crate::db::DbError> for Stop {
    fn from(e: crate::db::DbError) -> Self {
        Self::Page(PageError::internal(e))
    }
}

fn bad_request(message: &str) -> Stop {
    Stop::Page(PageError::new(StatusCode::BAD_REQUEST, message))
}

/// `uri` with `params` added to its query.
pub(crate) fn with_params(uri: &str, params: &[(&str, &str)]) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        ser.append_pair(k, v);
    }
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{}", ser.finish())
}

/// An error sent back to the client (with the request's `state`).
fn client_error(redirect_uri: &str, state: Option<&str>, error: &str, description: &str) -> Stop {
    let mut params = vec![("error", error), ("error_description", description)];
    if let Some(s) = state {
        params.push(("state", s));
    }
    Stop::Redirect(with_params(redirect_uri, &params))
}

/// Checks the request's parameters: client, redirect URI, response type,
/// PKCE parameters.
async fn check(st: &AppState, query: Option<&str>) -> Result<Checked, Stop> {
    let params: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    for name in SINGLE_PARAMS {
        if params.iter().filter(|(k, _)| k == name).count() > 1 {
            return Err(bad_request(&format!("Duplicate {name} parameter.")));
        }
    }
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let Some(client_id) = get("client_id").filter(|c| !c.is_empty()) else {
        return Err(bad_request("Missing client_id parameter."));
    };
    let client = match st.db.oauth_client(&client_id).await? {
        Some(c) if c.secret_hash.as_deref().is_some_and(|s| !s.is_empty()) => c,
        _ => {
            tracing::warn!(client = %client_id, "authorization request for an unknown OAuth client");
            return Err(bad_request("Invalid client_id parameter value."));
        }
    };
    let registered = client.redirect_uri.clone().unwrap_or_default();
    if registered.is_empty() {
        return Err(bad_request("Missing redirect URI."));
    }
    if let Some(given) = get("redirect_uri") {
        if given != registered {
            tracing::warn!(client = %client_id, redirect_uri = %given, "redirect URI mismatch");
            return Err(bad_request("Mismatching redirect URI."));
        }
    }
    let state = get("state").filter(|s| !s.is_empty());
    let refuse = |error: &str, description: &str| {
        client_error(&registered, state.as_deref(), error, description)
    };
    match get("response_type").as_deref() {
        None | Some("") => {
            return Err(refuse(
                "invalid_request",
                "Missing response_type parameter.",
            ));
        }
        Some("code") => {}
        Some(_) => return Err(refuse("unsupported_response_type", "")),
    }
    let challenge = match get("code_challenge").filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => {
            let method = get("code_challenge_method")
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "plain".into());
            if method != "plain" && method != "S256" {
                return Err(refuse(
                    "invalid_request",
                    "Transform algorithm not supported.",
                ));
            }
            Some((c, method))
        }
    };
    let Some(target) = target_of(&st.db, &client).await? else {
        tracing::error!(client = %client_id, "OAuth client with neither a server nor a service");
        return Err(Stop::Page(PageError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "OAuth configuration error",
        )));
    };
    let scope = get("scope").and_then(|s| {
        let list: Vec<String> = s.split_whitespace().map(str::to_owned).collect();
        (!list.is_empty()).then_some(list)
    });
    Ok(Checked {
        client,
        target,
        redirect_uri: registered,
        state,
        scope,
        challenge,
    })
}

/// The scopes a token of this client always gets: the identify scopes
/// and the access scope.
fn required(target: &Target) -> ScopeSet {
    let mut set: ScopeSet = IDENTIFY_SCOPES.iter().map(|s| s.to_string()).collect();
    set.insert(target.access_scope());
    set
}

/// Whether the raw scope `scope` is within the raw scopes `have` (whose
/// expansion for `user` is `have_expanded`).
async fn within(
    st: &AppState,
    scope: &str,
    have: &ScopeSet,
    have_expanded: &ScopeSet,
    user: &str,
) -> Result<bool, crate::db::DbError> {
    if have.contains(scope) || have.contains("inherit") {
        return Ok(true);
    }
    let wanted = scopes::expand([scope], Some(Owner::User(user)));
    let granted = tokens::intersect(&st.db, &wanted, have_expanded).await?;
    Ok(granted == wanted)
}

/// JupyterHub's `validate_scopes`: the requested raw scopes (default: the
/// client's allowed scopes) without the deprecated `identify`, role names
/// replaced by their scopes, plus the required scopes; each must lie
/// within the client's allowed scopes, else `invalid_scope`.
async fn requested_scopes(
    st: &AppState,
    c: &Checked,
    requested: Option<Vec<String>>,
    user: &SessionUser,
) -> Result<ScopeSet, Stop> {
    let required = required(&c.target);
    let allowed_raw: ScopeSet = c.client.allowed_scope_list().into_iter().collect();
    let mut wanted: ScopeSet = match requested {
        Some(list) => list.into_iter().collect(),
        None => allowed_raw.clone(),
    };
    wanted.remove("identify");
    if scopes::check_exist(wanted.iter().map(String::as_str), "token").is_err() {
        // maybe role names, as JupyterHub still accepts
        let mut from_roles = ScopeSet::new();
        for name in &wanted {
            match st.db.role_scopes(name).await? {
                Some(list) => from_roles.extend(list),
                None => {
                    tracing::warn!(client = %c.client.identifier, scope = %name, "no such scope");
                    return Err(client_error(
                        &c.redirect_uri,
                        c.state.as_deref(),
                        "invalid_scope",
                        "",
                    ));
                }
            }
        }
        wanted = from_roles;
    }
    wanted.extend(required.iter().cloned());
    let mut allowed = allowed_raw;
    allowed.extend(required.iter().cloned());
    let allowed_expanded = scopes::expand(
        allowed.iter().map(String::as_str),
        Some(Owner::User(&user.name)),
    );
    for scope in &wanted {
        if !within(st, scope, &allowed, &allowed_expanded, &user.name).await? {
            tracing::warn!(client = %c.client.identifier, scope = %scope, "scope not allowed for the client");
            return Err(client_error(
                &c.redirect_uri,
                c.state.as_deref(),
                "invalid_scope",
                "",
            ));
        }
    }
    Ok(wanted)
}

/// JupyterHub's `_resolve_requested_scopes` against the user's own
/// scopes: a requested scope the user holds in full stays as it is, one
/// the user holds in part becomes that part (expanded), the rest is
/// dropped. The required scopes and `inherit` (a token's owner's scopes)
/// always stay.
async fn restrict_to_user(
    st: &AppState,
    wanted: &ScopeSet,
    target: &Target,
    user: &SessionUser,
    have: &ScopeSet,
) -> Result<ScopeSet, crate::db::DbError> {
    let required = required(target);
    let mut out = ScopeSet::new();
    for scope in wanted {
        if required.contains(scope) || scope == "inherit" {
            out.insert(scope.clone());
            continue;
        }
        let expanded = scopes::expand([scope.as_str()], Some(Owner::User(&user.name)));
        if expanded.is_empty() {
            continue;
        }
        let granted = tokens::intersect(&st.db, &expanded, have).await?;
        if granted == expanded {
            out.insert(scope.clone());
        } else {
            out.extend(granted);
        }
    }
    Ok(out)
}

/// Whether `have` (the user's expanded scopes) lets the user into the
/// client's target.
async fn may_access(
    st: &AppState,
    target: &Target,
    have: &ScopeSet,
) -> Result<bool, crate::db::DbError> {
    let parsed = scopes::parse(have);
    Ok(match target {
        Target::Server(user, server) => {
            let groups = st
                .db
                .groups_of_usernames(std::slice::from_ref(user))
                .await?;
            scopes::has_scope(
                "access:servers",
                Some(Resource::Server(user, server)),
                &parsed,
                &groups,
            )
        }
        Target::Service(name) => scopes::has_scope(
            "access:services",
            Some(Resource::Service(name)),
            &parsed,
            &scopes::NoGroups,
        ),
    })
}

/// Everything up to the scopes to grant: the request's checks, the access
/// check, and the scopes cut down to the user's.
async fn resolve(
    st: &AppState,
    query: Option<&str>,
    user: &SessionUser,
    posted: Option<Vec<String>>,
) -> Result<(Checked, ScopeSet), Stop> {
    let c = check(st, query).await?;
    let requested = match posted {
        Some(list) => Some(list),
        None => c.scope.clone(),
    };
    let wanted = requested_scopes(st, &c, requested, user).await?;
    let have = tokens::owner_scopes(&st.db, TokenOwner::User(user.id), &user.name).await?;
    if !may_access(st, &c.target, &have).await? {
        tracing::warn!(user.name = %user.name, client = %c.client.identifier, "no access to the OAuth client's target");
        return Err(Stop::Page(PageError::new(
            StatusCode::FORBIDDEN,
            format!(
                "You do not have permission to access {}",
                c.client.display_name()
            ),
        )));
    }
    let granted = restrict_to_user(st, &wanted, &c.target, user, &have).await?;
    Ok((c, granted))
}

/// JupyterHub's `needs_oauth_confirm`: not for the user's own servers,
/// services with `oauth_no_confirm`, or a client the user has authorized
/// for these scopes already.
async fn needs_confirmation(
    st: &AppState,
    c: &Checked,
    user: &SessionUser,
    granted: &ScopeSet,
) -> Result<bool, crate::db::DbError> {
    if matches!(&c.target, Target::Server(owner, _) if *owner == user.name) {
        return Ok(false);
    }
    let no_confirm = st.config.services.iter().any(|s| {
        s.oauth_no_confirm
            && super::service_has_oauth(s)
            && super::service_client_id(s) == c.client.identifier
    });
    if no_confirm {
        return Ok(false);
    }
    let authorized: ScopeSet = st
        .db
        .user_client_token_scopes(user.id, &c.client.identifier)
        .await?
        .into_iter()
        .collect();
    Ok(authorized.is_empty() || !granted.is_subset(&authorized))
}

/// Issues a code for `granted` and sends the browser back to the client.
async fn issue(
    st: &AppState,
    c: &Checked,
    user: &SessionUser,
    session_id: Option<&str>,
    granted: &ScopeSet,
) -> Response {
    let code = match tokens::generate() {
        Ok(c) => c,
        Err(e) => return PageError::internal(e).into_response(),
    };
    let expires = crate::db::timestamp(
        time::OffsetDateTime::now_utc() + time::Duration::seconds(super::CODE_LIFETIME_SECS),
    );
    let scopes: Vec<String> = granted.iter().cloned().collect();
    let session_hash = session_id.map(session::hash_id);
    let stored = st
        .db
        .insert_oauth_code(&NewOAuthCode {
            code_hash: &tokens::hash(&code),
            client_id: &c.client.identifier,
            expires_at: &expires,
            redirect_uri: &c.redirect_uri,
            session_id: session_hash.as_deref(),
            user_id: user.id,
            scopes: &scopes,
            code_challenge: c.challenge.as_ref().map(|(c, _)| c.as_str()),
            code_challenge_method: c.challenge.as_ref().map(|(_, m)| m.as_str()),
        })
        .await;
    if let Err(e) = stored {
        return PageError::internal(e).into_response();
    }
    tracing::info!(user.name = %user.name, client = %c.client.identifier, "OAuth code issued");
    let mut params = vec![("code", code.as_str())];
    if let Some(s) = &c.state {
        params.push(("state", s));
    }
    Redirect::to(&with_params(&c.redirect_uri, &params)).into_response()
}

/// `GET /hub/api/oauth2/authorize`: checks the request, then either sends
/// the browser back with a code or asks the user to confirm.
pub async fn authorize(
    State(st): State<AppState>,
    logged_in: LoggedIn,
    RawQuery(query): RawQuery,
) -> Response {
    let LoggedIn { browser, user } = logged_in;
    let (c, granted) = match resolve(&st, query.as_deref(), &user, None).await {
        Ok(r) => r,
        Err(stop) => return stop.into_response(),
    };
    match needs_confirmation(&st, &c, &user, &granted).await {
        Ok(false) => issue(&st, &c, &user, browser.session_id(), &granted).await,
        Ok(true) => {
            let action = match &query {
                Some(q) => format!("{}?{q}", super::AUTHORIZE_PATH),
                None => super::AUTHORIZE_PATH.to_owned(),
            };
            page(
                StatusCode::OK,
                confirmation_page(&browser, &user, &c, &granted, &action),
            )
        }
        Err(e) => PageError::internal(e).into_response(),
    }
}

/// `POST /hub/api/oauth2/authorize`: the confirmation form (XSRF-checked).
/// Its `scopes` fields are the scopes to grant (none: only the identify
/// and access scopes), checked again as for `GET`.
pub async fn confirm(
    State(st): State<AppState>,
    browser: Browser,
    RawQuery(query): RawQuery,
    req: Request,
) -> Response {
    let Some(user) = browser.user.clone() else {
        return PageError::new(StatusCode::FORBIDDEN, "Not logged in.").into_response();
    };
    let form = match read_form(&browser, req).await {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let posted: Vec<String> = form.get_all("scopes").map(str::to_owned).collect();
    let posted = if posted.is_empty() {
        // as JupyterHub: nothing ticked means only identification
        vec!["identify".to_owned()]
    } else {
        posted
    };
    match resolve(&st, query.as_deref(), &user, Some(posted)).await {
        Ok((c, granted)) => issue(&st, &c, &user, browser.session_id(), &granted).await,
        Err(stop) => stop.into_response(),
    }
}

/// JupyterHub's `describe_raw_scopes`: a description and "applies to"
/// text per scope.
fn describe(scope: &str, username: &str) -> (String, String) {
    let (base, filter) = match scope.split_once('!') {
        Some((b, f)) => (b, Some(f)),
        None => (scope, None),
    };
    let description = scopes::definition(base)
        .map(|d| d.description.to_owned())
        .unwrap_or_else(|| scope.to_owned());
    let applies = match filter {
        None => String::new(),
        Some("user") => "only you".into(),
        Some(f) => match f.split_once('=') {
            Some(("user", name)) if name == username => "only you".into(),
            Some(("group", name)) => format!("users in group {name}"),
            Some((kind, name)) => format!("{kind} {name}"),
            None => f.to_owned(),
        },
    };
    (description, applies)
}

/// The "Authorize access" page (JupyterHub's `oauth.html`).
fn confirmation_page(
    browser: &Browser,
    user: &SessionUser,
    c: &Checked,
    granted: &ScopeSet,
    action: &str,
) -> maud::Markup {
    let required = required(&c.target);
    let to_describe: BTreeSet<&String> = granted.difference(&required).collect();
    let lines: Vec<(String, String)> = if to_describe.is_empty() {
        let d = scopes::definition("(no_scope)").map_or("", |d| d.description);
        vec![(d.to_owned(), String::new())]
    } else if to_describe.iter().any(|s| *s == "inherit") {
        let d = scopes::definition("inherit").map_or("", |d| d.description);
        vec![(d.to_owned(), String::new())]
    } else {
        to_describe
            .iter()
            .map(|s| describe(s, &user.name))
            .collect()
    };
    let only_identify = to_describe.is_empty();
    let body = html! {
        h1 { "Authorize access" }
        p { "An application is requesting authorization to access data associated with your JupyterHub account" }
        p {
            (c.client.display_name()) " (oauth URL: " (c.redirect_uri) ") would like permission to identify you."
            @if only_identify { " It will not be able to take actions on your behalf." }
        }
        form method="post" action=(action) {
            (browser.xsrf_field())
            @for scope in granted {
                input type="hidden" name="scopes" value=(scope);
            }
            p { "This will grant the application permission to:" }
            ul {
                @for (description, applies) in &lines {
                    li {
                        (description)
                        @if !applies.is_empty() { " Applies to " (applies) "." }
                    }
                }
            }
            button type="submit" { "Authorize" }
        }
    };
    layout("Authorize access", body, Some(user))
}
