//! `/hub/admin`: the admin page, for admins only (others get a 403 page).
//!
//! The page is rendered on the server first, so it works without
//! JavaScript: the users table (sortable by name or last activity,
//! paginated with `offset`/`limit`, searchable by name), start and stop
//! forms that post to the spawn pages, a form to add users and one to
//! stop every server. [`ADMIN_JS`], served from
//! [`ADMIN_JS_URL`], then takes over: it drives the hub's own REST API
//! with the browser's session cookie and the page's XSRF token in
//! `X-XSRFToken` (see [`crate::auth`]), and adds what needs no page of
//! its own: delete, rename, toggle admin, named servers, and groups.
//!
//! With the native authenticator, the accounts waiting for approval are
//! listed with a link to `/hub/authorize`, where they are approved.

use std::collections::HashMap;

use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::{LoggedIn, PageError, SessionUser, error_page, layout, page, read_form};
use crate::app::AppState;
use crate::config::AuthenticatorClass;
use crate::db::{UserDetail, UserQuery, UserSort};
use crate::spawner;

/// The admin page.
pub const ADMIN_URL: &str = "/hub/admin";
/// Where the page's script is served (the version in the query changes
/// with every release, so the long cache lifetime is safe).
pub const ADMIN_JS_URL: &str = concat!("/hub/static/js/admin.js?v=", env!("CARGO_PKG_VERSION"));
/// The page's script, shipped inside the binary.
pub const ADMIN_JS: &str = include_str!("admin.js");
/// Users per page, by default.
const PAGE_SIZE: i64 = 50;

/// `GET /hub/static/js/admin.js`: the admin page's script.
pub async fn admin_js() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            ),
        ],
        ADMIN_JS,
    )
        .into_response()
}

fn not_admin(user: &SessionUser) -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "Only admins may see the admin page.",
        Some(user),
    )
}

/// What the table shows: the query string's `sort`, `offset`, `limit`
/// and `name_filter`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct View {
    sort: String,
    offset: i64,
    limit: i64,
    name_filter: String,
}

impl View {
    fn from_query(query: &HashMap<String, String>, max: i64) -> Self {
        let sort = match query.get("sort").map(String::as_str) {
            Some(s @ ("name" | "-name" | "last_activity" | "-last_activity")) => s.to_owned(),
            _ => "id".to_owned(),
        };
        let number = |k: &str| query.get(k).and_then(|v| v.trim().parse::<i64>().ok());
        Self {
            sort,
            offset: number("offset").unwrap_or(0).max(0),
            limit: number("limit").unwrap_or(PAGE_SIZE).clamp(1, max.max(1)),
            name_filter: query.get("name_filter").cloned().unwrap_or_default(),
        }
    }

    fn query(&self) -> UserQuery {
        let (descending, column) = match self.sort.strip_prefix('-') {
            Some(c) => (true, c),
            None => (false, self.sort.as_str()),
        };
        UserQuery {
            offset: self.offset,
            limit: self.limit,
            name_filter: (!self.name_filter.is_empty()).then(|| self.name_filter.clone()),
            sort: match column {
                "name" => UserSort::Name,
                "last_activity" => UserSort::LastActivity,
                _ => UserSort::Id,
            },
            descending,
            ..UserQuery::default()
        }
    }

    /// The page's URL for this view with `offset` and `sort` replaced.
    fn url(&self, offset: i64, sort: &str) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("sort", sort)
            .append_pair("offset", &offset.to_string())
            .append_pair("limit", &self.limit.to_string());
        if !self.name_filter.is_empty() {
            q.append_pair("name_filter", &self.name_filter);
        }
        format!("{ADMIN_URL}?{}", q.finish())
    }

    /// The link of a sortable column: ascending first, then toggling.
    fn sort_link(&self, column: &str) -> String {
        let next = if self.sort == column {
            format!("-{column}")
        } else {
            column.to_owned()
        };
        self.url(0, &next)
    }
}

/// One server of a user, as the table shows it.
struct ServerCell {
    name: String,
    state: &'static str,
    url: String,
}

fn servers_of(st: &AppState, d: &UserDetail) -> Vec<ServerCell> {
    let mut out: Vec<ServerCell> = d
        .servers
        .iter()
        .map(|s| {
            let m = spawner::server_model(st, &d.user.name, s, false);
            let state = match (m["pending"].as_str(), m["ready"].as_bool()) {
                (Some("spawn"), _) => "starting",
                (Some(_), _) => "stopping",
                (None, Some(true)) => "running",
                _ => "stopped",
            };
            ServerCell {
                name: s.name.clone(),
                state,
                url: spawner::server_path(&d.user.name, &s.name),
            }
        })
        // named servers that stopped are not listed, as the API does not
        .filter(|c| c.name.is_empty() || c.state != "stopped")
        .collect();
    if !out.iter().any(|c| c.name.is_empty()) {
        out.insert(
            0,
            ServerCell {
                name: String::new(),
                state: "stopped",
                url: spawner::server_path(&d.user.name, ""),
            },
        );
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The start or stop form of one server (plain forms to the spawn pages,
/// which come back here).
fn server_controls(logged: &LoggedIn, user: &str, cell: &ServerCell) -> Markup {
    let suffix = if cell.name.is_empty() {
        String::new()
    } else {
        format!("/{}", cell.name)
    };
    let back = form_urlencoded::Serializer::new(String::new())
        .append_pair("next", ADMIN_URL)
        .finish();
    html! {
        @match cell.state {
            "running" => {
                a class="open-server" href=(cell.url) { "Open" } " "
                form method="post" action=(format!("/hub/stop/{user}{suffix}")) class="inline" {
                    (logged.browser.xsrf_field())
                    button type="submit" class="stop-server" { "Stop" }
                }
            }
            "stopped" => {
                form method="post" action=(format!("/hub/spawn/{user}{suffix}?{back}")) class="inline" {
                    (logged.browser.xsrf_field())
                    button type="submit" class="start-server" { "Start" }
                }
            }
            other => { span class="pending" { (other) "..." } }
        }
    }
}

const ADMIN_STYLE: &str = "main{max-width:72em}table.users{border-collapse:collapse;width:100%}\
table.users th,table.users td{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;\
vertical-align:top}form.inline{display:inline}form.inline button,td button,#groups button{margin-top:0}\
.server-line{white-space:nowrap}.state-running{color:#070;font-weight:bold}\
.pager a{margin-right:1em}textarea{width:100%;min-height:5em}\
#admin-status{min-height:1.2em}section{margin:1.5em 0}";

/// `GET /hub/admin`.
pub async fn admin_page(
    State(st): State<AppState>,
    logged: LoggedIn,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let user = &logged.user;
    if !user.admin {
        return Ok(not_admin(user));
    }
    let view = View::from_query(&query, i64::from(st.config.hub.api_page_max_limit));
    let q = view.query();
    let users = st.db.list_users(&q).await.map_err(PageError::internal)?;
    let total = st
        .db
        .count_listed_users(&q)
        .await
        .map_err(PageError::internal)?;
    let native = st.config.hub.authenticator_class == AuthenticatorClass::Native;
    let waiting: Vec<String> = if native {
        st.db
            .list_native_users()
            .await
            .map_err(PageError::internal)?
            .into_iter()
            .filter(|a| !a.is_authorized)
            .map(|a| a.username)
            .collect()
    } else {
        Vec::new()
    };
    let arrow = |column: &str| {
        if view.sort == column {
            " ▲"
        } else if view.sort.strip_prefix('-') == Some(column) {
            " ▼"
        } else {
            ""
        }
    };
    let shown_to = view.offset + users.len() as i64;
    let body = html! {
        style { (maud::PreEscaped(ADMIN_STYLE)) }
        h1 { "Admin" }
        p id="admin-status" role="status" aria-live="polite" {}
        section id="users" aria-label="Users"
            data-xsrf=(logged.browser.xsrf_token())
            data-me=(user.name)
            data-named-servers=(st.config.hub.allow_named_servers)
            data-sort=(view.sort) data-offset=(view.offset) data-limit=(view.limit) {
            h2 { "Users" }
            form method="get" action=(ADMIN_URL) id="search-form" {
                label for="name_filter" { "Search users by name" }
                input type="text" id="name_filter" name="name_filter" value=(view.name_filter);
                input type="hidden" name="sort" value=(view.sort);
                input type="hidden" name="limit" value=(view.limit);
                button type="submit" { "Search" }
            }
            table class="users" {
                thead {
                    tr {
                        th { a id="sort-name" href=(view.sort_link("name")) { "User" (arrow("name")) } }
                        th { "Admin" }
                        th { "Server" }
                        th { a id="sort-last-activity" href=(view.sort_link("last_activity")) { "Last activity" (arrow("last_activity")) } }
                        th { "Actions" }
                    }
                }
                tbody id="users-body" {
                    @for d in &users {
                        tr data-user=(d.user.name) {
                            td class="name" { (d.user.name) }
                            td class="admin-flag" { (if d.user.admin { "admin" } else { "" }) }
                            td class="servers" {
                                @for cell in servers_of(&st, d) {
                                    div class="server-line" data-server=(cell.name) {
                                        @if !cell.name.is_empty() { span class="server-name" { (cell.name) ": " } }
                                        span class=(format!("state state-{}", cell.state)) { (cell.state) } " "
                                        @if cell.state == "running" { code class="url" { (cell.url) } " " }
                                        (server_controls(&logged, &d.user.name, &cell))
                                    }
                                }
                            }
                            td class="last-activity" { (d.user.last_activity.as_deref().unwrap_or("never")) }
                            td class="actions" {}
                        }
                    }
                }
            }
            p class="pager" {
                span id="page-info" {
                    @if total == 0 { "No users." }
                    @else { "Users " (view.offset + 1) "–" (shown_to) " of " (total) }
                }
                " "
                @if view.offset > 0 {
                    a id="prev-page" href=(view.url((view.offset - view.limit).max(0), &view.sort)) { "Previous" }
                }
                @if shown_to < total {
                    a id="next-page" href=(view.url(shown_to, &view.sort)) { "Next" }
                }
            }
            form method="post" action=(format!("{ADMIN_URL}/stop-all")) id="stop-all-form" {
                (logged.browser.xsrf_field())
                button type="submit" id="stop-all" { "Stop all servers" }
            }
        }
        section id="add-users" aria-label="Add users" {
            h2 { "Add users" }
            form method="post" action=(format!("{ADMIN_URL}/users")) id="add-users-form" {
                (logged.browser.xsrf_field())
                label for="usernames" { "Usernames, one per line" }
                textarea id="usernames" name="usernames" required {}
                label { input type="checkbox" name="admin" value="1" id="add-admin"; " Admin" }
                button type="submit" id="add-users-submit" { "Add users" }
            }
        }
        section id="groups" aria-label="Groups" {
            h2 { "Groups" }
            noscript { p { "Managing groups needs JavaScript; the REST API under /hub/api/groups does the same." } }
            div id="groups-body" {}
        }
        @if native {
            section id="signups" aria-label="Accounts waiting for approval" {
                h2 { "Accounts waiting for approval" }
                @if waiting.is_empty() {
                    p { "None." }
                } @else {
                    ul { @for name in &waiting { li class="waiting" { (name) } } }
                }
                p { a id="authorize-link" href="/hub/authorize" { "Approve or refuse accounts" } }
            }
        }
        script src=(ADMIN_JS_URL) defer {}
    };
    Ok(page(StatusCode::OK, layout("Admin", body, Some(user))))
}

/// `POST /hub/admin/users`: adds the users named in `usernames` (one per
/// line, or separated by spaces or commas), admins if `admin` is set.
/// Names that exist already are left alone.
pub async fn add_users(
    State(st): State<AppState>,
    logged: LoggedIn,
    req: Request,
) -> Result<Response, PageError> {
    let form = read_form(&logged.browser, req).await?;
    if !logged.user.admin {
        return Ok(not_admin(&logged.user));
    }
    let raw = form.get("usernames").unwrap_or_default();
    let mut names = Vec::new();
    for part in raw.split(|c: char| c.is_whitespace() || c == ',') {
        if part.is_empty() {
            continue;
        }
        let name = crate::names::username(part)
            .map_err(|e| PageError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
        if !names.contains(&name) {
            names.push(name);
        }
    }
    if names.is_empty() {
        return Err(PageError::new(
            StatusCode::BAD_REQUEST,
            "Give at least one username.",
        ));
    }
    let existing = st
        .db
        .existing_users(&names)
        .await
        .map_err(PageError::internal)?;
    names.retain(|n| !existing.contains(n));
    let admin = form.get("admin").is_some_and(|v| !v.is_empty());
    if !names.is_empty() {
        st.db
            .create_users(&names, admin)
            .await
            .map_err(PageError::internal)?;
        tracing::info!(by = %logged.user.name, count = names.len(), admin, "added users");
    }
    Ok(Redirect::to(ADMIN_URL).into_response())
}

/// `POST /hub/admin/stop-all`: stops every server (in the background; the
/// page shows them stopping).
pub async fn stop_all(
    State(st): State<AppState>,
    logged: LoggedIn,
    req: Request,
) -> Result<Response, PageError> {
    read_form(&logged.browser, req).await?;
    if !logged.user.admin {
        return Ok(not_admin(&logged.user));
    }
    tracing::info!(by = %logged.user.name, "stopping every server");
    tokio::spawn(async move { spawner::stop_all(&st).await });
    Ok(Redirect::to(ADMIN_URL).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_from_queries() {
        let q = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let v = View::from_query(&q(&[]), 200);
        assert_eq!((v.sort.as_str(), v.offset, v.limit), ("id", 0, PAGE_SIZE));
        let v = View::from_query(
            &q(&[("sort", "-name"), ("offset", "-5"), ("limit", "9999")]),
            200,
        );
        assert_eq!((v.sort.as_str(), v.offset, v.limit), ("-name", 0, 200));
        assert!(v.query().descending && v.query().sort == UserSort::Name);
        let v = View::from_query(&q(&[("sort", "drop table"), ("name_filter", "a&b")]), 200);
        assert_eq!(v.sort, "id");
        assert_eq!(
            v.sort_link("name"),
            "/hub/admin?sort=name&offset=0&limit=50&name_filter=a%26b"
        );
        let v = View::from_query(&q(&[("sort", "name")]), 200);
        assert!(v.sort_link("name").contains("sort=-name"));
    }
}
