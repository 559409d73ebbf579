//! `/hub/home` and the redirects of `/` and `/hub/`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use crate::app::AppState;

use super::{Browser, HOME_URL, LOGIN_URL, LOGOUT_URL, LoggedIn, layout, page};

/// `/` and `/hub/`: home when logged in, else the login page. (Browsers
/// send the login cookie only under `/hub/`, so `/` lands on the login
/// page, which sends a logged-in browser on home.)
pub async fn root(browser: Browser) -> Response {
    match browser.user {
        Some(_) => Redirect::to(HOME_URL).into_response(),
        None => Redirect::to(LOGIN_URL).into_response(),
    }
}

/// `GET /hub/home`: who is logged in, and (later) their server.
pub async fn home(State(st): State<AppState>, LoggedIn { browser, user }: LoggedIn) -> Response {
    let links = st.authenticator.home_links(user.admin);
    let body = html! {
        h1 { "Home" }
        p {
            "Logged in as " strong class="username" { (user.name) }
            @if user.admin {
                " " span class="admin" { "admin" }
            }
        }
        // The user's server: its status and the start/stop controls.
        section id="server" aria-label="Your server" {}
        @if !links.is_empty() {
            nav aria-label="Account" {
                ul {
                    @for (url, label) in &links {
                        li { a href=(url) { (label) } }
                    }
                }
            }
        }
        form method="post" action=(LOGOUT_URL) {
            (browser.xsrf_field())
            button type="submit" { "Logout" }
        }
    };
    page(StatusCode::OK, layout("Home", body, Some(&user)))
}
