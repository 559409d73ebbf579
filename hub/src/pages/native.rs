//! The native authenticator's pages ([`crate::auth::native`]), served
//! only when `authenticator_class = "native"`:
//!
//! - `/hub/signup`: the signup form (404 when `enable_signup = false`);
//!   POSTs `username`, `signup_password`, `signup_password_confirmation`,
//!   `email` (when asked for) and `_xsrf`, NativeAuthenticator's names;
//! - `/hub/change-password`: the logged-in user's own password (POSTs
//!   `old_password`, `new_password`, `new_password_confirmation`);
//! - `/hub/authorize`: for admins, every account with its state and
//!   authorize / unauthorize / delete buttons, each a POST with the XSRF
//!   token to `/hub/authorize/{username}` (field `action`), answered with
//!   a redirect back to the list.
//!
//! Every POST's XSRF token is checked before anything else (403 when
//! missing or wrong, nothing changed). Refusals come back as the form with
//! the message and a 4xx status; passwords are never echoed.

use axum::Extension;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::{
    Browser, LOGIN_URL, LoggedIn, PageError, SessionUser, error_page, layout, page, read_form,
};
use crate::app::AppState;
use crate::auth::native::{
    HashLimit, NativeAuth, NativeError, PasswordChange, Signup, SignupRefusal,
};
use crate::session;

/// The signup page.
pub const SIGNUP_URL: &str = "/hub/signup";
/// The password change page.
pub const CHANGE_PASSWORD_URL: &str = "/hub/change-password";
/// The admins' authorization page.
pub const AUTHORIZE_URL: &str = "/hub/authorize";

/// The longest username the form field accepts (the server checks the
/// real rule).
const NAME_FIELD_MAX: usize = 256;

fn internal(e: NativeError) -> Response {
    PageError::internal(e).into_response()
}

/// A message above a form: `ok` picks the style.
fn notice(ok: bool, message: &str) -> Markup {
    html! {
        @if ok {
            p class="notice" role="status" { (message) }
        } @else {
            p class="error" role="alert" { (message) }
        }
    }
}

fn signup_page(
    st: &AppState,
    browser: &Browser,
    result: Option<(bool, &str)>,
    username: &str,
    email: &str,
) -> Markup {
    let c = &st.config.authenticator;
    let body = html! {
        h1 { "Sign up" }
        @if let Some((ok, message)) = result {
            (notice(ok, message))
        }
        form method="post" action=(SIGNUP_URL) {
            (browser.xsrf_field())
            label for="username" { "Username" }
            input type="text" id="username" name="username" value=(username)
                autocomplete="username" autocapitalize="off" autocorrect="off"
                spellcheck="false" required autofocus maxlength=(NAME_FIELD_MAX);
            @if c.ask_email_on_signup {
                label for="email" { "Email" }
                input type="email" id="email" name="email" value=(email) autocomplete="email";
            }
            label for="signup_password" { "Password" }
            input type="password" id="signup_password" name="signup_password"
                autocomplete="new-password" required minlength=(c.minimum_password_length);
            label for="signup_password_confirmation" { "Confirm password" }
            input type="password" id="signup_password_confirmation"
                name="signup_password_confirmation" autocomplete="new-password" required;
            button type="submit" { "Create user" }
        }
        p { "Already have an account? " a href=(LOGIN_URL) { "Sign in" } }
    };
    layout("Sign up", body, browser.user.as_ref())
}

/// `GET /hub/signup`.
pub async fn signup_form(State(st): State<AppState>, browser: Browser) -> Response {
    if !st.config.authenticator.enable_signup {
        return error_page(
            StatusCode::NOT_FOUND,
            "Signup is not enabled.",
            browser.user.as_ref(),
        );
    }
    page(StatusCode::OK, signup_page(&st, &browser, None, "", ""))
}

/// `POST /hub/signup`.
pub async fn signup_submit(
    State(st): State<AppState>,
    Extension(limit): Extension<HashLimit>,
    browser: Browser,
    req: Request,
) -> Response {
    let form = match read_form(&browser, req).await {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let username = form.get("username").unwrap_or_default();
    let email = form.get("email");
    let outcome = NativeAuth::new(&st.db, &st.config.authenticator, &limit)
        .signup(
            username,
            form.get("signup_password").unwrap_or_default(),
            form.get("signup_password_confirmation").unwrap_or_default(),
            email,
        )
        .await;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => return internal(e),
    };
    let status = match &outcome {
        Signup::Created { .. } => StatusCode::OK,
        Signup::Refused(SignupRefusal::Disabled) => StatusCode::NOT_FOUND,
        Signup::Refused(SignupRefusal::Taken) => StatusCode::CONFLICT,
        Signup::Refused(_) => StatusCode::BAD_REQUEST,
    };
    let created = matches!(outcome, Signup::Created { .. });
    // After a signup the form starts empty; after a refusal it keeps what
    // was typed (bounded), never the passwords.
    let (shown_name, shown_email) = if created {
        (String::new(), String::new())
    } else {
        (
            username.chars().take(NAME_FIELD_MAX).collect(),
            email
                .unwrap_or_default()
                .chars()
                .take(NAME_FIELD_MAX)
                .collect(),
        )
    };
    let message = outcome.message();
    page(
        status,
        signup_page(
            &st,
            &browser,
            Some((created, &message)),
            &shown_name,
            &shown_email,
        ),
    )
}

fn change_password_page(
    st: &AppState,
    browser: &Browser,
    user: &SessionUser,
    result: Option<(bool, &str)>,
) -> Markup {
    let min = st.config.authenticator.minimum_password_length;
    let body = html! {
        h1 { "Change password" }
        p { "Changing the password of " strong class="username" { (user.name) } "." }
        @if let Some((ok, message)) = result {
            (notice(ok, message))
        }
        form method="post" action=(CHANGE_PASSWORD_URL) {
            (browser.xsrf_field())
            label for="old_password" { "Current password" }
            input type="password" id="old_password" name="old_password"
                autocomplete="current-password" required autofocus;
            label for="new_password" { "New password" }
            input type="password" id="new_password" name="new_password"
                autocomplete="new-password" required minlength=(min);
            label for="new_password_confirmation" { "Confirm new password" }
            input type="password" id="new_password_confirmation"
                name="new_password_confirmation" autocomplete="new-password" required;
            button type="submit" { "Change password" }
        }
    };
    layout("Change password", body, Some(user))
}

/// `GET /hub/change-password`.
pub async fn change_password_form(
    State(st): State<AppState>,
    LoggedIn { browser, user }: LoggedIn,
) -> Response {
    page(
        StatusCode::OK,
        change_password_page(&st, &browser, &user, None),
    )
}

/// `POST /hub/change-password`. A changed password also ends the user's
/// other sessions (this one stays).
pub async fn change_password_submit(
    State(st): State<AppState>,
    Extension(limit): Extension<HashLimit>,
    LoggedIn { browser, user }: LoggedIn,
    req: Request,
) -> Response {
    let form = match read_form(&browser, req).await {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let outcome = NativeAuth::new(&st.db, &st.config.authenticator, &limit)
        .change_password(
            &user.name,
            form.get("old_password").unwrap_or_default(),
            form.get("new_password").unwrap_or_default(),
            form.get("new_password_confirmation").unwrap_or_default(),
        )
        .await;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => return internal(e),
    };
    let status = match outcome {
        PasswordChange::Changed => {
            let keep = browser.session_id().map(session::hash_id);
            if let Err(e) = st.db.end_sessions_of(&user.name, keep.as_deref()).await {
                return PageError::internal(e).into_response();
            }
            StatusCode::OK
        }
        PasswordChange::WrongPassword => StatusCode::FORBIDDEN,
        PasswordChange::ConfirmationMismatch | PasswordChange::Weak(_) => StatusCode::BAD_REQUEST,
    };
    let ok = outcome == PasswordChange::Changed;
    page(
        status,
        change_password_page(&st, &browser, &user, Some((ok, &outcome.message()))),
    )
}

fn not_admin(user: &SessionUser) -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "Only admins can authorize accounts.",
        Some(user),
    )
}

/// `GET /hub/authorize`: every account, for admins.
pub async fn authorize_list(
    State(st): State<AppState>,
    Extension(limit): Extension<HashLimit>,
    LoggedIn { browser, user }: LoggedIn,
) -> Response {
    if !user.admin {
        return not_admin(&user);
    }
    let accounts = match NativeAuth::new(&st.db, &st.config.authenticator, &limit)
        .accounts()
        .await
    {
        Ok(a) => a,
        Err(e) => return internal(e),
    };
    let ask_email = st.config.authenticator.ask_email_on_signup;
    let button = |name: &str, action: &str, label: &str| {
        html! {
            form method="post" action=(format!("{AUTHORIZE_URL}/{name}")) class="inline" {
                (browser.xsrf_field())
                input type="hidden" name="action" value=(action);
                button type="submit" { (label) }
            }
        }
    };
    let body = html! {
        h1 { "Authorization area" }
        @if accounts.is_empty() {
            p { "Nobody has signed up yet." }
        } @else {
            table {
                thead {
                    tr {
                        th { "Username" }
                        @if ask_email { th { "Email" } }
                        th { "Authorized" }
                        th {}
                        th {}
                    }
                }
                tbody {
                    @for a in &accounts {
                        tr id=(a.username) class=(if a.is_authorized { "authorized" } else { "pending" }) {
                            td class="username" { (a.username) }
                            @if ask_email { td { (a.email.as_deref().unwrap_or("")) } }
                            td { (if a.is_authorized { "Yes" } else { "No" }) }
                            td {
                                @if a.is_authorized {
                                    (button(&a.username, "unauthorize", "Unauthorize"))
                                } @else {
                                    (button(&a.username, "authorize", "Authorize"))
                                }
                            }
                            td { (button(&a.username, "delete", "Delete")) }
                        }
                    }
                }
            }
        }
    };
    page(
        StatusCode::OK,
        layout("Authorization area", body, Some(&user)),
    )
}

/// `POST /hub/authorize/{username}` with `action` = `authorize`,
/// `unauthorize` or `delete`, for admins. Unauthorizing ends the
/// account's sessions; deleting removes the account and its hub user.
/// Admins cannot unauthorize or delete their own account.
pub async fn authorize_action(
    State(st): State<AppState>,
    Extension(limit): Extension<HashLimit>,
    LoggedIn { browser, user }: LoggedIn,
    Path(username): Path<String>,
    req: Request,
) -> Response {
    let form = match read_form(&browser, req).await {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    if !user.admin {
        return not_admin(&user);
    }
    let action = form.get("action").unwrap_or_default();
    if action != "authorize" && username == user.name {
        return error_page(
            StatusCode::BAD_REQUEST,
            "You cannot unauthorize or delete your own account.",
            Some(&user),
        );
    }
    let auth = NativeAuth::new(&st.db, &st.config.authenticator, &limit);
    let found = match action {
        "authorize" => auth.set_authorized(&username, true).await,
        "unauthorize" => match auth.set_authorized(&username, false).await {
            Ok(true) => st
                .db
                .end_sessions_of(&username, None)
                .await
                .map(|()| true)
                .map_err(NativeError::from),
            other => other,
        },
        "delete" => auth.delete(&username).await,
        _ => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "The action must be authorize, unauthorize or delete.",
                Some(&user),
            );
        }
    };
    match found {
        Ok(true) => {
            tracing::info!(by = %user.name, user.name = %username, action, "native account changed by an admin");
            Redirect::to(AUTHORIZE_URL).into_response()
        }
        Ok(false) => error_page(
            StatusCode::NOT_FOUND,
            "There is no such account.",
            Some(&user),
        ),
        Err(e) => internal(e),
    }
}

/// The link under the login form.
pub fn login_footer() -> Markup {
    html! {
        p class="signup" { "No account yet? " a href=(SIGNUP_URL) { "Sign up" } }
    }
}
