//! `/hub/token`: the logged-in user's API tokens, as JupyterHub's token
//! page: a form that makes a token (note, lifetime, scopes) and shows it
//! once; the list of the user's API tokens, each with a revoke button;
//! and the OAuth clients (users' servers, services) holding tokens of the
//! user, whose access can be revoked at once. Plain forms with the XSRF
//! token; no JavaScript.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::{Browser, LoggedIn, PageError, SessionUser, layout, page, read_form};
use crate::api::tokens::{MAX_NOTE, TokenRequest, issue};
use crate::app::AppState;
use crate::db::{TokenOwner, TokenRow};

/// The token page.
pub const TOKEN_URL: &str = "/hub/token";
/// Where its revoke buttons post.
pub const REVOKE_URL: &str = "/hub/token/revoke";

/// The lifetimes the form offers, as JupyterHub's: (seconds, label);
/// empty is "never".
const EXPIRY_CHOICES: &[(&str, &str)] = &[
    ("", "Never"),
    ("3600", "1 Hour"),
    ("86400", "1 Day"),
    ("604800", "1 Week"),
];

/// The client id of tokens made by the hub itself (not through OAuth).
const HUB_CLIENT: &str = "jupyterhub";

/// Scopes as the user typed them: separated by spaces or commas; none
/// means "all of mine" (`None`).
fn parse_scopes(text: &str) -> Option<Vec<String>> {
    let scopes: Vec<String> = text
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    (!scopes.is_empty()).then_some(scopes)
}

fn raw_scopes(t: &TokenRow) -> Vec<String> {
    serde_json::from_str(&t.scopes).unwrap_or_default()
}

/// An OAuth client that holds tokens of the user.
struct Client {
    id: String,
    description: String,
    tokens: usize,
    last_activity: Option<String>,
}

fn clients_of(tokens: &[TokenRow]) -> Vec<Client> {
    let mut out: Vec<Client> = Vec::new();
    for t in tokens.iter().filter(|t| t.client_id != HUB_CLIENT) {
        match out.iter_mut().find(|c| c.id == t.client_id) {
            Some(c) => {
                c.tokens += 1;
                if t.last_activity > c.last_activity {
                    c.last_activity.clone_from(&t.last_activity);
                }
            }
            None => out.push(Client {
                id: t.client_id.clone(),
                description: t.client_description.clone(),
                tokens: 1,
                last_activity: t.last_activity.clone(),
            }),
        }
    }
    out
}

fn revoke_button(browser: &Browser, field: &str, value: &str, label: &str) -> Markup {
    html! {
        form method="post" action=(REVOKE_URL) class="inline" {
            (browser.xsrf_field())
            input type="hidden" name=(field) value=(value);
            button type="submit" class="revoke" { (label) }
        }
    }
}

/// The page, with `new_token` shown once when one was just made, or
/// `error` when making it failed.
async fn render(
    st: &AppState,
    browser: &Browser,
    user: &SessionUser,
    new_token: Option<&str>,
    error: Option<&str>,
) -> Result<Response, PageError> {
    let tokens = st
        .db
        .user_tokens(user.id)
        .await
        .map_err(PageError::internal)?;
    let api_tokens: Vec<&TokenRow> = tokens
        .iter()
        .filter(|t| t.client_id == HUB_CLIENT)
        .collect();
    let clients = clients_of(&tokens);
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let body = html! {
        style { "main{max-width:64em}table{border-collapse:collapse;width:100%}\
            th,td{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}\
            form.inline button{margin-top:0}#new-token{font-size:1.1em;padding:.5em;background:#efe;word-break:break-all}" }
        h1 { "API Tokens" }
        @if let Some(token) = new_token {
            section id="new-token-section" aria-label="Your new API token" {
                p { "Your new API token (copy it now: it is not shown again):" }
                p { code id="new-token" { (token) } }
            }
        }
        @if let Some(message) = error {
            p class="error" id="token-error" { (message) }
        }
        section aria-label="Request a new API token" {
            h2 { "Request new API token" }
            form method="post" action=(TOKEN_URL) id="request-token-form" {
                (browser.xsrf_field())
                label for="token-note" { "Note" }
                input type="text" id="token-note" name="note" maxlength=(MAX_NOTE)
                    placeholder="What is this token for?";
                label for="token-expiration-seconds" { "Token expires in" }
                select id="token-expiration-seconds" name="expires_in" {
                    @for (value, label) in EXPIRY_CHOICES {
                        option value=(value) { (label) }
                    }
                }
                label for="token-scopes" { "Permissions (scopes, separated by spaces or commas; empty: all of yours)" }
                input type="text" id="token-scopes" name="scopes" placeholder="read:users:name read:servers!user";
                button type="submit" id="request-token" { "Request new API token" }
            }
        }
        section aria-label="API tokens" {
            h2 { "API Tokens" }
            @if api_tokens.is_empty() {
                p { "You have no API tokens." }
            } @else {
                table id="api-tokens" {
                    thead { tr { th { "Note" } th { "Permissions" } th { "Created" } th { "Last used" } th { "Expires" } th {} } }
                    tbody {
                        @for t in &api_tokens {
                            tr data-token-id=(format!("a{}", t.id)) {
                                td class="note" { (t.note) }
                                td class="scopes" { (raw_scopes(t).join(" ")) }
                                td class="created" { (t.created) }
                                td class="last-used" { (t.last_activity.as_deref().unwrap_or("Never")) }
                                td class="expires" { (t.expires_at.as_deref().unwrap_or("Never")) }
                                td { (revoke_button(browser, "token_id", &format!("a{}", t.id), "Revoke")) }
                            }
                        }
                    }
                }
            }
        }
        section aria-label="Authorized applications" {
            h2 { "Authorized Applications" }
            @if clients.is_empty() {
                p { "No application holds a token of yours." }
            } @else {
                table id="oauth-clients" {
                    thead { tr { th { "Application" } th { "Tokens" } th { "Last used" } th {} } }
                    tbody {
                        @for c in &clients {
                            tr data-client-id=(c.id) {
                                td class="client" { (c.description) }
                                td { (c.tokens) }
                                td { (c.last_activity.as_deref().unwrap_or("Never")) }
                                td { (revoke_button(browser, "client_id", &c.id, "Revoke access")) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(status, layout("API Tokens", body, Some(user))))
}

/// `GET /hub/token`.
pub async fn token_page(
    State(st): State<AppState>,
    LoggedIn { browser, user }: LoggedIn,
) -> Result<Response, PageError> {
    render(&st, &browser, &user, None, None).await
}

/// The token the form asks for, or why it cannot be made.
fn token_request(st: &AppState, form: &super::Form) -> Result<TokenRequest, String> {
    let note = form.get("note").unwrap_or_default().trim();
    if note.chars().count() > MAX_NOTE {
        return Err(format!("The note must be at most {MAX_NOTE} characters."));
    }
    let mut expires_in = match form.get("expires_in").map(str::trim) {
        None | Some("") => None,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                return Err(format!(
                    "The lifetime must be a positive number of seconds, not {v:?}."
                ));
            }
        },
    };
    let max = st.config.hub.token_expires_in_max_seconds;
    if max > 0 {
        match expires_in {
            None => expires_in = Some(max as i64),
            Some(n) if n as u64 > max => {
                return Err(format!("The lifetime must not exceed {max} seconds."));
            }
            _ => {}
        }
    }
    Ok(TokenRequest {
        scopes: parse_scopes(form.get("scopes").unwrap_or_default()),
        roles: None,
        note: if note.is_empty() {
            "Requested via token page".to_owned()
        } else {
            note.to_owned()
        },
        expires_in,
    })
}

/// `POST /hub/token`: makes a token with the form's `note`, `expires_in`
/// (seconds; empty: never, or the hub's `token_expires_in_max_seconds`)
/// and `scopes`, and shows the page with it.
pub async fn request_token(
    State(st): State<AppState>,
    LoggedIn { browser, user }: LoggedIn,
    req: Request,
) -> Result<Response, PageError> {
    let form = read_form(&browser, req).await?;
    let request = match token_request(&st, &form) {
        Ok(r) => r,
        Err(message) => return render(&st, &browser, &user, None, Some(&message)).await,
    };
    match issue(&st.db, TokenOwner::User(user.id), &user.name, &request).await {
        Ok((token, id)) => {
            tracing::info!(user.name = %user.name, token.id = id, "issued API token from the token page");
            render(&st, &browser, &user, Some(&token), None).await
        }
        Err(crate::api::tokens::IssueError::Invalid(m)) => {
            render(&st, &browser, &user, None, Some(&m)).await
        }
        Err(e) => Err(PageError::internal(e)),
    }
}

/// `POST /hub/token/revoke`: deletes the user's token `token_id`
/// (`a<id>`), or every token of OAuth client `client_id`.
pub async fn revoke(
    State(st): State<AppState>,
    LoggedIn { browser, user }: LoggedIn,
    req: Request,
) -> Result<Response, PageError> {
    let form = read_form(&browser, req).await?;
    let tokens = st
        .db
        .user_tokens(user.id)
        .await
        .map_err(PageError::internal)?;
    let ids: Vec<i64> = if let Some(api_id) = form.get("token_id") {
        tokens
            .iter()
            .filter(|t| format!("a{}", t.id) == api_id)
            .map(|t| t.id)
            .collect()
    } else if let Some(client) = form.get("client_id").filter(|c| *c != HUB_CLIENT) {
        tokens
            .iter()
            .filter(|t| t.client_id == client)
            .map(|t| t.id)
            .collect()
    } else {
        Vec::new()
    };
    if ids.is_empty() {
        return Err(PageError::new(
            StatusCode::NOT_FOUND,
            "There is no such token of yours.",
        ));
    }
    st.db
        .delete_tokens(&ids)
        .await
        .map_err(PageError::internal)?;
    tracing::info!(user.name = %user.name, count = ids.len(), "revoked tokens from the token page");
    Ok(Redirect::to(TOKEN_URL).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_from_text() {
        assert_eq!(parse_scopes(""), None);
        assert_eq!(parse_scopes("  , "), None);
        assert_eq!(
            parse_scopes("read:users:name, read:servers!user\nself"),
            Some(vec![
                "read:users:name".to_owned(),
                "read:servers!user".to_owned(),
                "self".to_owned()
            ])
        );
    }
}
