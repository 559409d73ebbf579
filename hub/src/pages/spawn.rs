//! Starting and stopping servers from the browser: the start form
//! (`/hub/spawn/NAME[/SERVER]`), the page that follows a start
//! (`/hub/spawn-pending/...`), stopping (`/hub/stop/...`), and
//! `/hub/user/NAME/...`, where a browser lands when it asks for a server
//! that is not running (the proxy sends `/user/...` to the hub when no
//! route matches).
//!
//! Every state change is a POST with the form's XSRF token; a GET never
//! starts anything.

use std::collections::HashMap;

use axum::extract::{OriginalUri, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, PreEscaped, html};

use super::{
    Form, HOME_URL, LoggedIn, PageError, SessionUser, error_page, layout, page, read_form,
    safe_next,
};
use crate::app::AppState;
use crate::db::UserRow;
use crate::db::servers::ServerRow;
use crate::spawner::{self, Phase, ServerError, StartOutcome};

/// `(user, server)` from a path's segments.
fn split(path: &str) -> (String, String) {
    let mut parts = path.trim_matches('/').splitn(2, '/');
    let user = parts.next().unwrap_or_default().to_owned();
    let server = parts
        .next()
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_owned();
    (user, server)
}

/// The user `name`, when `me` may act on their servers (themselves, or
/// an admin).
async fn target(st: &AppState, me: &SessionUser, name: &str) -> Result<UserRow, PageError> {
    if me.name != name && !me.admin {
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            format!("You do not have permission to act on {name}'s servers."),
        ));
    }
    st.db
        .find_user(name)
        .await
        .map_err(PageError::internal)?
        .ok_or_else(|| PageError::new(StatusCode::NOT_FOUND, format!("No such user: {name}")))
}

fn check_server(st: &AppState, server: &str) -> Result<(), PageError> {
    if server.is_empty() {
        return Ok(());
    }
    if !st.config.hub.allow_named_servers {
        return Err(PageError::new(
            StatusCode::BAD_REQUEST,
            "Named servers are not enabled.",
        ));
    }
    if !spawner::valid_server_name(server) {
        return Err(PageError::new(
            StatusCode::BAD_REQUEST,
            "Server names are letters, digits, '_', '-' or '.', not starting with '.' or '-'.",
        ));
    }
    Ok(())
}

fn next_param(query: &HashMap<String, String>) -> Option<String> {
    query
        .get("next")
        .and_then(|n| safe_next(n))
        .map(str::to_owned)
}

fn with_next(base: &str, next: Option<&str>) -> String {
    match next {
        Some(n) => {
            let q: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("next", n)
                .finish();
            format!("{base}?{q}")
        }
        None => base.to_owned(),
    }
}

fn spawn_url(user: &str, server: &str) -> String {
    if server.is_empty() {
        format!("/hub/spawn/{user}")
    } else {
        format!("/hub/spawn/{user}/{server}")
    }
}

fn pending_url(user: &str, server: &str) -> String {
    if server.is_empty() {
        format!("/hub/spawn-pending/{user}")
    } else {
        format!("/hub/spawn-pending/{user}/{server}")
    }
}

fn stop_url(user: &str, server: &str) -> String {
    if server.is_empty() {
        format!("/hub/stop/{user}")
    } else {
        format!("/hub/stop/{user}/{server}")
    }
}

/// Where a ready server is opened: `next`, else the server's URL (which
/// sends on to `spawner.default_url`).
fn open_url(user: &str, server: &str, next: Option<&str>) -> String {
    next.map_or_else(|| spawner::server_path(user, server), str::to_owned)
}

async fn server_row(
    st: &AppState,
    user: &UserRow,
    server: &str,
) -> Result<Option<ServerRow>, PageError> {
    st.db
        .find_server(user.id, server)
        .await
        .map_err(PageError::internal)
}

/// The start form: a button, or the admin's options form.
fn start_form(
    st: &AppState,
    logged: &LoggedIn,
    user: &str,
    server: &str,
    next: Option<&str>,
) -> Markup {
    let options = &st.config.spawner.options_form;
    html! {
        form method="post" action=(with_next(&spawn_url(user, server), next)) {
            (logged.browser.xsrf_field())
            @if !options.is_empty() {
                // the admin's own form fields, as configured
                (PreEscaped(options.as_str()))
            }
            button type="submit" id="start" { "Start" }
        }
    }
}

/// `GET /hub/spawn`: the logged-in user's own start page.
pub async fn spawn_self(LoggedIn { user, .. }: LoggedIn) -> Response {
    Redirect::to(&spawn_url(&user.name, "")).into_response()
}

/// `GET /hub/spawn/{user}[/{server}]`: the start page (or on to the
/// server when it runs, or to the progress page while it starts).
pub async fn spawn_form(
    State(st): State<AppState>,
    logged: LoggedIn,
    Path(path): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let (name, server) = split(&path);
    let user = target(&st, &logged.user, &name).await?;
    check_server(&st, &server)?;
    let next = next_param(&query);
    if let Some(row) = server_row(&st, &user, &server).await? {
        if st.servers.phase(row.id) == Phase::Spawning {
            return Ok(
                Redirect::to(&with_next(&pending_url(&name, &server), next.as_deref()))
                    .into_response(),
            );
        }
        if spawner::is_ready(&row) {
            return Ok(Redirect::to(&open_url(&name, &server, next.as_deref())).into_response());
        }
    }
    let title = spawner::log_name(&name, &server);
    let body = html! {
        h1 { "Start " (title) }
        (start_form(&st, &logged, &name, &server, next.as_deref()))
    };
    Ok(page(
        StatusCode::OK,
        layout("Start a server", body, Some(&logged.user)),
    ))
}

/// JupyterHub's default `options_from_form`: each field becomes a list
/// of its values.
fn options_from_form(form: &Form) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for (k, v) in form.fields() {
        if k == crate::session::XSRF_FIELD || k == "server_name" {
            continue;
        }
        let entry = m
            .entry(k.clone())
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if let serde_json::Value::Array(a) = entry {
            a.push(serde_json::Value::String(v.clone()));
        }
    }
    serde_json::Value::Object(m)
}

/// `POST /hub/spawn/{user}[/{server}]`: starts the server, then shows its
/// progress (or opens it, when it was quick). A `server_name` field names
/// a new named server.
pub async fn spawn_submit(
    State(st): State<AppState>,
    logged: LoggedIn,
    Path(path): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    req: Request,
) -> Result<Response, PageError> {
    let form = read_form(&logged.browser, req).await?;
    let (name, mut server) = split(&path);
    if server.is_empty() {
        if let Some(s) = form.get("server_name").filter(|s| !s.is_empty()) {
            server = s.to_owned();
        }
    }
    let user = target(&st, &logged.user, &name).await?;
    check_server(&st, &server)?;
    let next = next_param(&query);
    if !server.is_empty() && server_row(&st, &user, &server).await?.is_none() {
        let limit = st.config.hub.named_server_limit_per_user;
        let count = st
            .db
            .count_named_servers(user.id)
            .await
            .map_err(PageError::internal)?;
        if limit > 0 && count >= i64::from(limit) {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                format!("{name} already has the maximum of {limit} named servers."),
            ));
        }
    }
    let options = (!st.config.spawner.options_form.is_empty()).then(|| options_from_form(&form));
    let display = (!server.is_empty()).then_some(server.as_str());
    match spawner::start(&st, &user, &server, display, options).await {
        Ok(StartOutcome::Ready) => {
            Ok(Redirect::to(&open_url(&name, &server, next.as_deref())).into_response())
        }
        Ok(StartOutcome::Pending) => Ok(Redirect::to(&with_next(
            &pending_url(&name, &server),
            next.as_deref(),
        ))
        .into_response()),
        Err(ServerError::Conflict(m)) => {
            // already running: open it
            if m.ends_with("already running") {
                Ok(Redirect::to(&open_url(&name, &server, next.as_deref())).into_response())
            } else {
                Err(PageError::new(StatusCode::BAD_REQUEST, m))
            }
        }
        Err(ServerError::Limit(m)) => Err(PageError::new(StatusCode::TOO_MANY_REQUESTS, m)),
        Err(ServerError::Failed(m)) => {
            Ok(failed_page(&logged, &name, &server, &m, next.as_deref()))
        }
        Err(ServerError::Db(e)) => Err(PageError::internal(e)),
    }
}

fn failed_page(
    logged: &LoggedIn,
    name: &str,
    server: &str,
    message: &str,
    next: Option<&str>,
) -> Response {
    let body = html! {
        h1 { "Spawn failed" }
        p class="error" id="failure" { (message) }
        form method="post" action=(with_next(&spawn_url(name, server), next)) {
            (logged.browser.xsrf_field())
            button type="submit" id="start" { "Relaunch server" }
        }
        p { a href=(HOME_URL) { "Home" } }
    };
    page(
        StatusCode::INTERNAL_SERVER_ERROR,
        layout("Spawn failed", body, Some(&logged.user)),
    )
}

/// The script of the progress page: follows the progress events and opens
/// the server when it is ready. Without JavaScript the page reloads
/// itself every two seconds instead.
const PROGRESS_SCRIPT: &str = r#"
(function () {
  var root = document.getElementById("progress");
  var bar = document.getElementById("progress-bar");
  var log = document.getElementById("progress-log");
  var msg = document.getElementById("progress-message");
  var source = new EventSource(root.dataset.progressUrl);
  source.onmessage = function (e) {
    var ev = JSON.parse(e.data);
    if (typeof ev.progress === "number") { bar.value = ev.progress; }
    if (ev.message) {
      msg.textContent = ev.message;
      var li = document.createElement("li");
      li.textContent = ev.message;
      log.appendChild(li);
    }
    if (ev.ready) {
      source.close();
      window.location.href = root.dataset.next || ev.url;
    } else if (ev.failed) {
      source.close();
      msg.className = "error";
      window.setTimeout(function () { window.location.reload(); }, 500);
    }
  };
  source.onerror = function () {
    source.close();
    window.setTimeout(function () { window.location.reload(); }, 1000);
  };
})();
"#;

/// `GET /hub/spawn-pending/{user}[/{server}]`: the start's progress, live.
pub async fn spawn_pending(
    State(st): State<AppState>,
    logged: LoggedIn,
    Path(path): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let (name, server) = split(&path);
    let user = target(&st, &logged.user, &name).await?;
    check_server(&st, &server)?;
    let next = next_param(&query);
    let Some(row) = server_row(&st, &user, &server).await? else {
        return Ok(
            Redirect::to(&with_next(&spawn_url(&name, &server), next.as_deref())).into_response(),
        );
    };
    let phase = st.servers.phase(row.id);
    if phase == Phase::Idle && spawner::is_ready(&row) {
        return Ok(Redirect::to(&open_url(&name, &server, next.as_deref())).into_response());
    }
    if phase != Phase::Spawning {
        if let Some(why) = &row.failure {
            return Ok(failed_page(&logged, &name, &server, why, next.as_deref()));
        }
        return Ok(
            Redirect::to(&with_next(&spawn_url(&name, &server), next.as_deref())).into_response(),
        );
    }
    let events = st
        .servers
        .progress(row.id)
        .map(|rx| rx.borrow().events.clone())
        .unwrap_or_default();
    let last = events
        .last()
        .and_then(|e| e.get("message"))
        .and_then(|m| m.as_str())
        .unwrap_or("Server requested")
        .to_owned();
    let percent = events
        .last()
        .and_then(|e| e.get("progress"))
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    let body = html! {
        noscript { meta http-equiv="refresh" content="2"; }
        h1 { "Your server is starting up." }
        p { "You will be redirected automatically when it's ready for you." }
        div id="progress"
            data-progress-url=(spawner::progress_path(&name, &server))
            data-next=(next.clone().unwrap_or_default()) {
            progress id="progress-bar" max="100" value=(percent) {}
            p id="progress-message" { (last) }
            details {
                summary { "Event log" }
                ol id="progress-log" {
                    @for e in &events {
                        @if let Some(m) = e.get("message").and_then(|m| m.as_str()) {
                            li { (m) }
                        }
                    }
                }
            }
        }
        form method="post" action=(stop_url(&name, &server)) {
            (logged.browser.xsrf_field())
            button type="submit" id="cancel" { "Cancel" }
        }
        script { (PreEscaped(PROGRESS_SCRIPT)) }
    };
    Ok(page(
        StatusCode::OK,
        layout("Starting", body, Some(&logged.user)),
    ))
}

/// `POST /hub/stop/{user}[/{server}]`: stops the server (or cancels its
/// start), then back home.
pub async fn stop_submit(
    State(st): State<AppState>,
    logged: LoggedIn,
    Path(path): Path<String>,
    req: Request,
) -> Result<Response, PageError> {
    read_form(&logged.browser, req).await?;
    let (name, server) = split(&path);
    let user = target(&st, &logged.user, &name).await?;
    check_server(&st, &server)?;
    match spawner::stop(&st, &user, &server).await {
        Ok(_) => Ok(Redirect::to(HOME_URL).into_response()),
        Err(e) => Err(PageError::new(StatusCode::BAD_REQUEST, e.to_string())),
    }
}

/// `/user/...` reached the hub (no route for it in the proxy): on to
/// `/hub/user/...`, where the login cookie is sent.
pub async fn user_redirect(OriginalUri(uri): OriginalUri) -> Response {
    let pq = uri.path_and_query().map_or("/", |p| p.as_str());
    Redirect::to(&format!("/hub{pq}")).into_response()
}

/// `GET /hub/user/{user}/...`: the server is not running (or its route
/// was missing): offer to start it, then come back here.
pub async fn user_not_running(
    State(st): State<AppState>,
    logged: LoggedIn,
    Path(path): Path<String>,
    OriginalUri(uri): OriginalUri,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let mut segments = path.trim_start_matches('/').splitn(2, '/');
    let name = segments.next().unwrap_or_default().to_owned();
    let rest = segments.next().unwrap_or_default();
    if logged.user.name != name && !logged.user.admin {
        return Ok(error_page(
            StatusCode::FORBIDDEN,
            &format!(
                "You are logged in as {}; this is {name}'s server.",
                logged.user.name
            ),
            Some(&logged.user),
        ));
    }
    let user = st
        .db
        .find_user(&name)
        .await
        .map_err(PageError::internal)?
        .ok_or_else(|| PageError::new(StatusCode::NOT_FOUND, format!("No such user: {name}")))?;
    // which server: a named one when the first segment names one
    let first = rest.split('/').next().unwrap_or_default();
    let server = if !first.is_empty()
        && st.config.hub.allow_named_servers
        && server_row(&st, &user, first).await?.is_some()
    {
        first.to_owned()
    } else {
        String::new()
    };
    // where to go back to: the same URL without the /hub prefix
    let pq = uri.path_and_query().map_or("/", |p| p.as_str());
    let original = pq.strip_prefix("/hub").unwrap_or(pq).to_owned();
    let row = server_row(&st, &user, &server).await?;
    if let Some(row) = &row {
        if st.servers.phase(row.id) == Phase::Spawning {
            return Ok(
                Redirect::to(&with_next(&pending_url(&name, &server), Some(&original)))
                    .into_response(),
            );
        }
        if spawner::is_ready(row) {
            // running, but the proxy did not route it: put the route back
            // and try once more
            let redirects: u32 = query
                .get("redirects")
                .and_then(|r| r.parse().ok())
                .unwrap_or(0);
            if redirects < 3 {
                if let Err(e) = spawner::reconcile_routes(&st).await {
                    tracing::warn!(error = %e, "cannot repair the proxy's routes");
                }
                let sep = if original.contains('?') { '&' } else { '?' };
                let target = if original.contains("redirects=") {
                    original.clone()
                } else {
                    format!("{original}{sep}redirects={}", redirects + 1)
                };
                return Ok(Redirect::to(&target).into_response());
            }
            return Ok(error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server is running but the proxy does not route to it.",
                Some(&logged.user),
            ));
        }
    }
    let title = spawner::log_name(&name, &server);
    let body = html! {
        h1 { "Server not running" }
        p { (title) " is not running. Would you like to start it?" }
        (start_form(&st, &logged, &name, &server, Some(&original)))
    };
    let mut r = page(
        StatusCode::from_u16(424).unwrap_or(StatusCode::NOT_FOUND),
        layout("Server not running", body, Some(&logged.user)),
    );
    r.headers_mut().remove(axum::http::header::CACHE_CONTROL);
    Ok(r)
}

/// `GET /hub/error/{code}?url=...`: the page the proxy shows when it has
/// no route (404) or the server does not answer (503).
pub async fn proxy_error(
    Path(code): Path<u16>,
    Query(query): Query<HashMap<String, String>>,
    browser: super::Browser,
) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
    let url = query.get("url").cloned().unwrap_or_default();
    let message = match code {
        503 if url.starts_with("/user/") => {
            "Your server is not answering. It may have stopped; go home to start it again."
                .to_owned()
        }
        404 => format!("Nothing is routed at {url}."),
        _ => format!("The proxy could not reach {url}."),
    };
    error_page(status, &message, browser.user.as_ref())
}
