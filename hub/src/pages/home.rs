//! `/hub/home` and the redirects of `/` and `/hub/`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use crate::app::AppState;
use crate::db::servers::ServerRow;
use crate::spawner::{self, Phase};

use super::{Browser, HOME_URL, LOGIN_URL, LOGOUT_URL, LoggedIn, PageError, layout, page};

/// `/` and `/hub/`: home when logged in, else the login page. (Browsers
/// send the login cookie only under `/hub/`, so `/` lands on the login
/// page, which sends a logged-in browser on home.)
pub async fn root(browser: Browser) -> Response {
    match browser.user {
        Some(_) => Redirect::to(HOME_URL).into_response(),
        None => Redirect::to(LOGIN_URL).into_response(),
    }
}

/// A server's state, as home shows it.
fn state_of(st: &AppState, s: Option<&ServerRow>) -> &'static str {
    let Some(s) = s else { return "stopped" };
    match st.servers.phase(s.id) {
        Phase::Spawning => "starting",
        Phase::Stopping => "stopping",
        Phase::Idle => match s.pending.as_deref() {
            Some("spawn") => "starting",
            Some(_) => "stopping",
            None if spawner::is_running(s) => "running",
            None => "stopped",
        },
    }
}

/// The controls of one server: open / stop when it runs, start when not.
/// The default server's controls carry the ids `start` and `stop`, as
/// JupyterHub's home page does.
fn controls(browser: &Browser, user: &str, server: &str, state: &str) -> Markup {
    let default = server.is_empty();
    let suffix = if default {
        String::new()
    } else {
        format!("/{server}")
    };
    let (start_id, stop_id) = if default { ("start", "stop") } else { ("", "") };
    html! {
        @match state {
            "running" => {
                a id=[(!start_id.is_empty()).then_some(start_id)] class="open"
                    href=(spawner::server_path(user, server)) {
                    @if default { "My Server" } @else { "Open" }
                }
                form method="post" action=(format!("/hub/stop/{user}{suffix}")) class="inline" {
                    (browser.xsrf_field())
                    button type="submit" id=[(!stop_id.is_empty()).then_some(stop_id)] {
                        @if default { "Stop My Server" } @else { "Stop" }
                    }
                }
            }
            "starting" => {
                a id=[(!start_id.is_empty()).then_some(start_id)]
                    href=(format!("/hub/spawn-pending/{user}{suffix}")) { "Starting..." }
            }
            "stopping" => { span class="state" { "Stopping..." } }
            _ => {
                form method="post" action=(format!("/hub/spawn/{user}{suffix}")) class="inline" {
                    (browser.xsrf_field())
                    button type="submit" id=[(!start_id.is_empty()).then_some(start_id)] {
                        @if default { "Start My Server" } @else { "Start" }
                    }
                }
            }
        }
    }
}

/// `GET /hub/home`: who is logged in, their server and named servers.
pub async fn home(
    State(st): State<AppState>,
    LoggedIn { browser, user }: LoggedIn,
) -> Result<Response, PageError> {
    let links = st.authenticator.home_links(user.admin);
    let servers = st
        .db
        .servers_of_user(user.id)
        .await
        .map_err(PageError::internal)?;
    let default = servers.iter().find(|s| s.name.is_empty());
    let default_state = state_of(&st, default);
    let named: Vec<&ServerRow> = servers.iter().filter(|s| !s.name.is_empty()).collect();
    let limit = st.config.hub.named_server_limit_per_user;
    let body = html! {
        h1 { "Home" }
        p {
            "Logged in as " strong class="username" { (user.name) }
            @if user.admin {
                " " span class="admin" { "admin" }
            }
        }
        section id="server" aria-label="Your server" {
            p { "Your server is " strong id="server-state" { (default_state) } "." }
            @if let Some(why) = default.and_then(|d| d.failure.as_deref()) {
                @if default_state == "stopped" {
                    p class="error" { "Its last start failed: " (why) }
                }
            }
            (controls(&browser, &user.name, "", default_state))
        }
        @if st.config.hub.allow_named_servers {
            section id="named-servers" aria-label="Named servers" {
                h2 { "Named servers" }
                @if limit > 0 {
                    p { "You may have up to " (limit) " named servers." }
                }
                table {
                    thead { tr { th { "Name" } th { "State" } th { "Last activity" } th { "Actions" } } }
                    tbody {
                        @for s in &named {
                            @let state = state_of(&st, Some(s));
                            tr data-server-name=(s.name) {
                                td { (s.display_name.clone().unwrap_or_else(|| s.name.clone())) }
                                td { (state) }
                                td { (s.last_activity.clone().unwrap_or_default()) }
                                td { (controls(&browser, &user.name, &s.name, state)) }
                            }
                        }
                    }
                }
                form method="post" action=(format!("/hub/spawn/{}", user.name)) {
                    (browser.xsrf_field())
                    label for="server_name" { "New server name" }
                    input type="text" id="server_name" name="server_name" required
                        pattern="[A-Za-z0-9_][A-Za-z0-9_.\\-]{0,63}";
                    button type="submit" id="new-server" { "Add new server" }
                }
            }
        }
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
    Ok(page(StatusCode::OK, layout("Home", body, Some(&user))))
}
