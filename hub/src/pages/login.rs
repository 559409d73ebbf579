//! `/hub/login` and `/hub/logout`.
//!
//! The login form POSTs `username`, `password` and `_xsrf` back to
//! itself (with the page's `next=`). A refused name answers 400 with the
//! username rule; wrong credentials, unknown and not-allowed users all
//! answer 403 "Invalid username or password." (JupyterHub's), so the page
//! never tells whether an account exists. On success the old session (if
//! any) ends, a new one starts, and the browser goes to `next` when it is
//! a local path ([`super::safe_next`]), else to the home page.
//!
//! Logout ends the session in the database (a copy of the cookie is then
//! refused) and clears the cookies. `GET /hub/logout` logs out as
//! JupyterHub's does (links and `jupyterhub-singleuser` use it); `POST`
//! needs the XSRF token like every form.

use std::collections::HashMap;

use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::{
    Browser, HOME_URL, LOGIN_URL, PageError, layout, page, read_form, redirect_with_cookies,
    safe_next,
};
use crate::app::AppState;
use crate::auth::login::{INVALID_CREDENTIALS, LoginError, login};
use crate::config::Secret;
use crate::session::{self, SESSION_COOKIE, XSRF_COOKIE};

/// The longest username the form field accepts (longer names are still
/// checked by the server, which refuses them).
const NAME_FIELD_MAX: usize = 256;

fn next_of(query: &HashMap<String, String>) -> Option<&str> {
    query.get("next").map(String::as_str).and_then(safe_next)
}

/// The login page: the form, an optional error, the username typed so far.
fn login_page(
    st: &AppState,
    browser: &Browser,
    next: Option<&str>,
    error: Option<&str>,
    username: &str,
) -> Markup {
    let action = super::login_url(next);
    let body = html! {
        h1 { "Sign in" }
        @if let Some(e) = error {
            p class="error" role="alert" { (e) }
        }
        form method="post" action=(action) {
            (browser.xsrf_field())
            label for="username" { "Username" }
            input type="text" id="username" name="username" value=(username)
                autocomplete="username" autocapitalize="off" autocorrect="off"
                spellcheck="false" required autofocus maxlength=(NAME_FIELD_MAX);
            label for="password" { "Password" }
            input type="password" id="password" name="password"
                autocomplete="current-password" required;
            button type="submit" { "Sign in" }
        }
        @if let Some(extra) = st.authenticator.login_footer() {
            (extra)
        }
    };
    layout("Sign in", body, None)
}

/// `GET /hub/login`: the form, or straight on to `next` (or home) when
/// already logged in.
pub async fn form(
    State(st): State<AppState>,
    browser: Browser,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let next = next_of(&query);
    if browser.user.is_some() {
        return Redirect::to(next.unwrap_or(HOME_URL)).into_response();
    }
    page(StatusCode::OK, login_page(&st, &browser, next, None, ""))
}

/// `POST /hub/login`.
pub async fn submit(
    State(st): State<AppState>,
    browser: Browser,
    Query(query): Query<HashMap<String, String>>,
    req: Request,
) -> Response {
    let form = match read_form(&browser, req).await {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let next = next_of(&query).or_else(|| form.get("next").and_then(safe_next));
    let raw_name = form.get("username").unwrap_or_default();
    let password = Secret::new(form.get("password").unwrap_or_default());
    let refused = |status: StatusCode, message: &str| {
        // Show back what was typed, bounded; never the password.
        let shown: String = raw_name.chars().take(NAME_FIELD_MAX).collect();
        page(
            status,
            login_page(&st, &browser, next, Some(message), &shown),
        )
    };
    let user = match login(&st, raw_name, &password).await {
        Ok(u) => u,
        Err(LoginError::InvalidName(e)) => {
            return refused(StatusCode::BAD_REQUEST, &e.to_string());
        }
        Err(LoginError::Refused) => return refused(StatusCode::FORBIDDEN, INVALID_CREDENTIALS),
        Err(LoginError::Denied(m)) => return refused(StatusCode::FORBIDDEN, &m),
        Err(LoginError::Internal(e)) => return PageError::internal(e).into_response(),
    };
    // A new session id at every login (no session fixation).
    if let Some(old) = browser.session_id() {
        if let Err(e) = st.db.delete_session(&session::hash_id(old)).await {
            return PageError::internal(e).into_response();
        }
    }
    match session::start(&st.sessions, &st.db, user.id).await {
        Ok((_, cookie)) => redirect_with_cookies(next.unwrap_or(HOME_URL), &[cookie]),
        Err(e) => PageError::internal(e).into_response(),
    }
}

async fn end_session(st: &AppState, browser: &Browser) -> Response {
    if let Some(id) = browser.session_id() {
        if let Err(e) = st.db.delete_session(&session::hash_id(id)).await {
            return PageError::internal(e).into_response();
        }
        if let Some(u) = &browser.user {
            tracing::info!(user.name = %u.name, "logged out");
        }
    }
    redirect_with_cookies(
        LOGIN_URL,
        &[
            st.sessions.clear(SESSION_COOKIE),
            st.sessions.clear(XSRF_COOKIE),
        ],
    )
}

/// `GET /hub/logout`: ends the session and goes to the login page.
pub async fn logout(State(st): State<AppState>, browser: Browser) -> Response {
    end_session(&st, &browser).await
}

/// `POST /hub/logout` (XSRF-checked).
pub async fn logout_post(State(st): State<AppState>, browser: Browser, req: Request) -> Response {
    if let Err(e) = read_form(&browser, req).await {
        return e.into_response();
    }
    end_session(&st, &browser).await
}
