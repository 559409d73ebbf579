//! The hub's server-rendered pages under `/hub/`: login, logout, home,
//! the token page ([`token`]), the admin page ([`admin`]), and whatever
//! pages the authenticator adds
//! ([`crate::auth::authenticator::Authenticator::routes`]).
//!
//! Pages work without JavaScript. HTML is written with `maud`, which
//! escapes every interpolated value, so names and messages from clients
//! cannot inject markup. What every page handler uses:
//!
//! - [`layout`]: the common page frame (title, header with the user and a
//!   logout link, the body);
//! - [`Browser`]: the extractor for who is logged in (if anyone) and the
//!   XSRF token that forms must carry ([`Browser::xsrf_field`]);
//!   [`LoggedIn`] is the same but redirects to the login page when nobody
//!   is;
//! - [`read_form`]: reads a POSTed form (size-capped: 413 past
//!   [`MAX_FORM`]) and checks its XSRF token (403 when missing or wrong);
//! - [`PageError`] / [`error_page`]: an error as an HTML page with a status;
//! - [`safe_next`]: the `next=` check that prevents open redirects.
//!
//! A middleware on these routes gives each browser the signed
//! [`crate::session::XSRF_COOKIE`] that binds the XSRF token before login,
//! and adds `Cache-Control: no-store` and anti-framing headers.

pub mod admin;
pub mod home;
pub mod login;
pub mod native;
pub mod spawn;
pub mod token;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{DOCTYPE, Markup, html};

use crate::app::AppState;
use crate::session::{self, XSRF_COOKIE, XSRF_FIELD, XsrfBinding};

/// The largest form body a page accepts.
pub const MAX_FORM: usize = 16 * 1024;
/// Bodies up to this size are read to the end before a 413 (see
/// [`read_form`]); larger declared ones are refused at once.
const DRAIN_LIMIT: usize = 1024 * 1024;

/// The login page.
pub const LOGIN_URL: &str = "/hub/login";
/// The home page.
pub const HOME_URL: &str = "/hub/home";
/// The logout URL.
pub const LOGOUT_URL: &str = "/hub/logout";

/// The pages' router: login, logout, home, the redirects of `/` and
/// `/hub/`, and the authenticator's own pages.
pub fn router(st: &AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(home::root))
        .route("/hub", get(home::root))
        .route("/hub/", get(home::root))
        .route("/hub/home", get(home::home))
        .route(LOGIN_URL, get(login::form).post(login::submit))
        .route(LOGOUT_URL, get(login::logout).post(login::logout_post))
        .route("/hub/spawn", get(spawn::spawn_self))
        .route(
            "/hub/spawn/{*path}",
            get(spawn::spawn_form).post(spawn::spawn_submit),
        )
        .route("/hub/spawn-pending/{*path}", get(spawn::spawn_pending))
        .route("/hub/stop/{*path}", axum::routing::post(spawn::stop_submit))
        .route("/hub/user/{*path}", get(spawn::user_not_running))
        .route("/user/{*rest}", get(spawn::user_redirect))
        .route("/hub/error/{code}", get(spawn::proxy_error))
        .route(admin::ADMIN_URL, get(admin::admin_page))
        .route("/hub/admin/users", axum::routing::post(admin::add_users))
        .route("/hub/admin/stop-all", axum::routing::post(admin::stop_all))
        .route("/hub/static/js/admin.js", get(admin::admin_js))
        .route(
            token::TOKEN_URL,
            get(token::token_page).post(token::request_token),
        )
        .route(token::REVOKE_URL, axum::routing::post(token::revoke))
        .merge(st.authenticator.routes())
        .merge(crate::oauth::page_routes())
        .layer(axum::middleware::from_fn_with_state(
            st.clone(),
            browser_cookie,
        ))
}

/// A logged-in user, as pages see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    /// The user's row id.
    pub id: i64,
    /// The username.
    pub name: String,
    /// Whether the user is an admin.
    pub admin: bool,
}

/// The anonymous browser id (from the signed `_xsrf` cookie, or new),
/// put in the request by the pages' middleware, and whether the answer
/// handed out an XSRF token bound to it (only then does a new id become a
/// cookie: a browser's parallel requests without the cookie, such as
/// `/favicon.ico` beside the login page, must not replace the id the
/// login form's token is bound to).
#[derive(Debug, Clone)]
struct BrowserId(String, Arc<AtomicBool>);

/// Who is behind a page request: the logged-in user, if any, and what
/// binds the XSRF token of their forms. Rejects only when the database
/// fails (500).
#[derive(Debug, Clone)]
pub struct Browser {
    /// The logged-in user, if any.
    pub user: Option<SessionUser>,
    /// The raw session id, when logged in.
    session_id: Option<String>,
    /// The anonymous browser id.
    browser_id: String,
    /// Set when a token bound to the browser id is handed out.
    id_used: Arc<AtomicBool>,
    keys: session::SessionKeys,
}

impl Browser {
    /// What the XSRF token is bound to: the session when logged in, else
    /// the browser id.
    pub fn binding(&self) -> XsrfBinding<'_> {
        match &self.session_id {
            Some(s) => XsrfBinding::Session(s),
            None => XsrfBinding::Browser(&self.browser_id),
        }
    }

    /// The XSRF token this browser's forms must carry.
    pub fn xsrf_token(&self) -> String {
        if self.session_id.is_none() {
            self.id_used.store(true, Ordering::Relaxed);
        }
        self.binding().token(&self.keys)
    }

    /// The hidden `_xsrf` input for a form.
    pub fn xsrf_field(&self) -> Markup {
        html! { input type="hidden" name=(XSRF_FIELD) value=(self.xsrf_token()); }
    }

    /// Whether `given` is this browser's XSRF token.
    pub fn xsrf_ok(&self, given: Option<&str>) -> bool {
        given.is_some_and(|t| self.binding().verify(&self.keys, t))
    }

    /// The raw session id, when logged in.
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }
}

impl FromRequestParts<AppState> for Browser {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, PageError> {
        let (browser_id, id_used) = match parts.extensions.get::<BrowserId>() {
            Some(b) => (b.0.clone(), b.1.clone()),
            None => (
                st.sessions
                    .read_signed(&parts.headers, XSRF_COOKIE)
                    .unwrap_or_default(),
                Arc::new(AtomicBool::new(false)),
            ),
        };
        let found = session::find(&st.sessions, &st.db, &parts.headers)
            .await
            .map_err(|e| PageError::internal(e.to_string()))?;
        let (user, session_id) = match found {
            Some(f) => {
                if let Some(slot) = parts.extensions.get::<crate::auth::RequestUser>() {
                    slot.set(&f.user.name);
                }
                record_activity(st, &f.user).await;
                (
                    Some(SessionUser {
                        id: f.user.id,
                        name: f.user.name,
                        admin: f.user.admin,
                    }),
                    Some(f.id),
                )
            }
            None => (None, None),
        };
        Ok(Self {
            user,
            session_id,
            browser_id,
            id_used,
            keys: st.sessions.clone(),
        })
    }
}

/// Records activity of a session and its user, at most once per
/// `activity_resolution`. Best effort: a failed write only loses the
/// timestamp, so it is logged and the request goes on.
pub(crate) async fn record_activity(st: &AppState, s: &crate::db::SessionUserRow) {
    let now = crate::db::now();
    if !crate::auth::stale(
        s.last_activity.as_deref(),
        &now,
        st.config.hub.activity_resolution,
    ) {
        return;
    }
    let result = async {
        st.db.touch_session(s.session_row, &now).await?;
        st.db.touch_user(s.id, &now).await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "cannot record session activity");
    }
}

/// A logged-in browser; redirects to the login page (with `next=` the
/// requested path) when nobody is logged in.
#[derive(Debug, Clone)]
pub struct LoggedIn {
    /// The browser.
    pub browser: Browser,
    /// Its user.
    pub user: SessionUser,
}

impl FromRequestParts<AppState> for LoggedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Response> {
        let browser = Browser::from_request_parts(parts, st)
            .await
            .map_err(IntoResponse::into_response)?;
        match browser.user.clone() {
            Some(user) => Ok(Self { browser, user }),
            None => {
                let here = parts
                    .uri
                    .path_and_query()
                    .map_or("/hub/home", |p| p.as_str());
                Err(Redirect::to(&login_url(Some(here))).into_response())
            }
        }
    }
}

/// The login URL, with `next` when it is a safe local path.
pub fn login_url(next: Option<&str>) -> String {
    match next.and_then(safe_next) {
        Some(n) => {
            let q: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("next", n)
                .finish();
            format!("{LOGIN_URL}?{q}")
        }
        None => LOGIN_URL.to_owned(),
    }
}

/// `next` if it is a local path on this site: it starts with one `/`
/// (not `//`, not `/\`, which browsers treat as another host) and has no
/// control characters or whitespace. Anything else (absolute URLs,
/// `javascript:`) is refused, so a login link can never send the user
/// elsewhere.
pub fn safe_next(next: &str) -> Option<&str> {
    let rest = next.strip_prefix('/')?;
    if rest.starts_with('/') || rest.starts_with('\\') {
        return None;
    }
    if next
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return None;
    }
    Some(next)
}

/// A POSTed form's fields (the first value of each name wins).
#[derive(Debug, Clone, Default)]
pub struct Form(Vec<(String, String)>);

impl Form {
    /// Parses an `application/x-www-form-urlencoded` body.
    pub fn parse(body: &[u8]) -> Self {
        Self(form_urlencoded::parse(body).into_owned().collect())
    }

    /// Every field, in order.
    pub fn fields(&self) -> &[(String, String)] {
        &self.0
    }

    /// The first value of field `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of field `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads a form body (at most [`MAX_FORM`] bytes, else 413) and checks its
/// XSRF token (the `_xsrf` field or the `X-XSRFToken` header; 403 when
/// missing or wrong, before anything else happens).
pub async fn read_form(browser: &Browser, req: Request) -> Result<Form, PageError> {
    let (parts, body) = req.into_parts();
    let too_large = || {
        PageError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("The form is larger than {MAX_FORM} bytes."),
        )
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > DRAIN_LIMIT) {
        return Err(too_large());
    }
    // Read (and drop) a moderately oversized body before answering, so
    // the client, still sending, gets the 413 rather than a reset
    // connection.
    let bytes = axum::body::to_bytes(body, DRAIN_LIMIT)
        .await
        .map_err(|_| too_large())?;
    if bytes.len() > MAX_FORM {
        return Err(too_large());
    }
    let form = Form::parse(&bytes);
    let given = form
        .get(XSRF_FIELD)
        .or_else(|| session::xsrf_from_headers(&parts.headers));
    if !browser.xsrf_ok(given) {
        let message = if given.is_none() {
            "'_xsrf' argument missing from POST"
        } else {
            "XSRF cookie does not match POST argument"
        };
        return Err(PageError::new(StatusCode::FORBIDDEN, message));
    }
    Ok(form)
}

/// A failed page request: its status and a message for the user, shown
/// as an HTML page.
#[derive(Debug)]
pub struct PageError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The message (shown escaped).
    pub message: String,
}

impl PageError {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// An internal failure: logged here with `detail`, shown as a generic
    /// 500.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "page request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        error_page(self.status, &self.message, None)
    }
}

/// An error page: `status`, its reason as the title, and `message`.
pub fn error_page(status: StatusCode, message: &str, user: Option<&SessionUser>) -> Response {
    let reason = status.canonical_reason().unwrap_or("Error");
    let title = format!("{} {reason}", status.as_u16());
    let body = html! {
        h1 { (title) }
        p class="error" { (message) }
        p { a href=(HOME_URL) { "Home" } }
    };
    page(status, layout(&title, body, user))
}

/// An HTML response with `status`.
pub fn page(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#222}\
header{display:flex;gap:1em;align-items:center;padding:.6em 1em;background:#f3f3f3;\
border-bottom:1px solid #ddd}header .brand{font-weight:bold;margin-right:auto}\
main{max-width:40em;margin:2em auto;padding:0 1em}\
label{display:block;margin:.8em 0 .2em}input[type=text],input[type=password]{width:100%;\
padding:.4em;box-sizing:border-box}button{margin-top:1em;padding:.4em 1.2em}\
.error{color:#a00}.admin{background:#fd5;padding:0 .4em;border-radius:.3em}";

/// The common page frame: `title`, a header with the logged-in `user`
/// (their name, an admin marker, a logout link) or a login link, and
/// `body` inside `<main>`. Every interpolated value is escaped.
pub fn layout(title: &str, body: Markup, user: Option<&SessionUser>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " - JupyterHub" }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                header {
                    a class="brand" href=(HOME_URL) { "JupyterHub" }
                    @if let Some(u) = user {
                        span class="user" { (u.name) }
                        @if u.admin {
                            span class="admin" title="This user is a hub admin" { "admin" }
                        }
                        a href=(HOME_URL) { "Home" }
                        a id="token-link" href=(token::TOKEN_URL) { "Token" }
                        @if u.admin {
                            a id="admin-link" href=(admin::ADMIN_URL) { "Admin" }
                        }
                        a href=(LOGOUT_URL) { "Logout" }
                    } @else {
                        a href=(LOGIN_URL) { "Login" }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// Gives browsers without one the signed `_xsrf` browser-id cookie, and
/// adds the headers every page gets.
async fn browser_cookie(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let existing = st.sessions.read_signed(req.headers(), XSRF_COOKIE);
    let (id, fresh) = match existing {
        Some(id) => (id, false),
        None => match session::new_id() {
            Ok(id) => (id, true),
            Err(e) => return PageError::internal(e).into_response(),
        },
    };
    let used = Arc::new(AtomicBool::new(false));
    req.extensions_mut()
        .insert(BrowserId(id.clone(), used.clone()));
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    if fresh && used.load(Ordering::Relaxed) {
        headers.append(
            header::SET_COOKIE,
            st.sessions.set_signed(XSRF_COOKIE, &id, None),
        );
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'self'"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Whether a request method changes state (and so needs an XSRF check).
pub fn is_state_changing(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// A 302 to `location` that also sets or clears cookies.
pub fn redirect_with_cookies(location: &str, cookies: &[HeaderValue]) -> Response {
    let mut r = Redirect::to(location).into_response();
    for c in cookies {
        r.headers_mut().append(header::SET_COOKIE, c.clone());
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_urls() {
        for ok in ["/hub/home", "/user/a/lab?x=1#y", "/", "/hub/spawn/a%2Fb"] {
            assert_eq!(safe_next(ok), Some(ok), "{ok}");
        }
        for bad in [
            "//evil.example",
            "//evil.example/hub/",
            "/\\evil.example",
            "\\\\evil.example",
            "https://evil.example/",
            "http:/evil.example",
            "javascript:alert(1)",
            "evil.example",
            "",
            "/\t/evil.example",
            "/ /evil",
            "/a\nb",
            "/a\\b",
        ] {
            assert_eq!(safe_next(bad), None, "{bad:?}");
        }
        assert_eq!(login_url(Some("//evil.example")), "/hub/login");
        assert_eq!(
            login_url(Some("/hub/home?a=b&c")),
            "/hub/login?next=%2Fhub%2Fhome%3Fa%3Db%26c"
        );
    }

    #[test]
    fn layout_escapes() {
        let user = SessionUser {
            id: 1,
            name: "<script>x</script>".into(),
            admin: true,
        };
        let html = layout("a<b", html! { p { ("\"&'") } }, Some(&user)).into_string();
        assert!(!html.contains("<script>x"), "{html}");
        assert!(html.contains("&lt;script&gt;x"), "{html}");
        assert!(html.contains("a&lt;b"), "{html}");
        assert!(html.contains("&quot;&amp;"), "{html}");
        assert!(html.contains("class=\"admin\""), "{html}");
        assert!(html.contains(LOGOUT_URL), "{html}");
        let anon = layout("t", html! {}, None).into_string();
        assert!(anon.contains(LOGIN_URL) && !anon.contains("class=\"admin\""));
    }

    #[test]
    fn forms() {
        let f = Form::parse(b"username=a+b&password=p%26w&username=second&_xsrf=t");
        assert_eq!(f.get("username"), Some("a b"));
        assert_eq!(f.get("password"), Some("p&w"));
        assert_eq!(f.get("_xsrf"), Some("t"));
        assert_eq!(f.get("none"), None);
    }
}
