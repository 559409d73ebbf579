//! Forwarding of plain HTTP requests to the matched target.
//!
//! For each request, as the reference does:
//! - `GET /_chp_healthz` (exact request target) answers `{"status": "OK"}`;
//! - the route is the longest-prefix match of the decoded, normalized path
//!   (prefixed with `/{host}` under `--host-routing`); none is a 404, an
//!   undecodable path or an unusable target a 500;
//! - the forwarded path is `join(target path + query, request path)`
//!   (`--no-prepend-path` drops the target part, `--no-include-prefix`
//!   slices the matched prefix off the request URL);
//! - headers are passed through (Host included) except `Trailer`;
//!   `X-Forwarded-For/-Port/-Proto` are appended to (comma, no space) and
//!   `X-Forwarded-Host` set when absent; custom headers replace same-named
//!   ones; a body-less DELETE or OPTIONS gets `Content-Length: 0`;
//! - a target that cannot be reached, resets, or exceeds `--proxy-timeout`
//!   gives 503; `--timeout` drops the client connection instead;
//! - the response is relayed with its status, reason and headers
//!   (`Transfer-Encoding` is recomputed), streamed;
//! - activity is recorded for request body data and, for statuses below
//!   300, when the response has been sent in full.

use std::borrow::Cow;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;

use crate::body::{RequestBody, ResponseBody};
use crate::errors;
use crate::routes::{Match, Target};
use crate::state::State;
use crate::upstream::Origin;
use crate::urlpath;
use crate::websocket;

/// What the proxy knows about the client connection.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// Whether the connection is TLS.
    pub tls: bool,
    /// The peer's IP as `X-Forwarded-For` gives it (`undefined` on a
    /// UNIX socket), formatted once per connection.
    forwarded_for: HeaderValue,
}

impl ClientInfo {
    /// The connection from `ip` (none on a UNIX socket).
    pub fn new(ip: Option<IpAddr>, tls: bool) -> Self {
        let forwarded_for = match ip {
            Some(ip) => HeaderValue::from_maybe_shared(bytes::Bytes::from(ip.to_string()))
                .unwrap_or_else(|_| HeaderValue::from_static("undefined")),
            None => HeaderValue::from_static("undefined"),
        };
        ClientInfo { tls, forwarded_for }
    }
}

/// Why a request produced no response at all: hyper then closes the
/// client connection.
#[derive(Debug)]
pub enum Dropped {
    /// `--timeout` elapsed.
    Timeout,
    /// A websocket request the reference would not proxy.
    NotWebsocket,
}

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dropped::Timeout => f.write_str("request timed out"),
            Dropped::NotWebsocket => f.write_str("upgrade request that is not a websocket GET"),
        }
    }
}

impl std::error::Error for Dropped {}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Where the target request goes and what it asks for, and the request
/// URL after prefix stripping (`None` when it is the request's own URL),
/// which error pages name.
#[derive(Debug)]
pub struct Outgoing {
    /// The target's scheme and authority.
    pub origin: Origin,
    /// The path and query sent to the target.
    pub uri: Uri,
    /// The request URL as stripped, when stripped.
    pub stripped: Option<String>,
}

impl Outgoing {
    /// The request URL as the proxy passes it on.
    pub fn url<'a>(&'a self, raw: &'a str) -> &'a str {
        self.stripped.as_deref().unwrap_or(raw)
    }
}

/// Whether a request asks for a protocol upgrade (`Connection: upgrade`
/// plus an `Upgrade` header), which goes to [`websocket::handle`].
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers.get_all(header::CONNECTION).iter().any(|v| {
            v.to_str()
                .map(|s| {
                    s.split(',')
                        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
                })
                .unwrap_or(false)
        })
}

/// The path the route table is searched with: the decoded pathname,
/// prefixed by `/{host}` under host routing.
pub fn match_path<'a>(
    state: &State,
    headers: &HeaderMap,
    raw: &'a str,
) -> Result<Cow<'a, str>, urlpath::MalformedUri> {
    let decoded = match urlpath::pathname(raw) {
        Cow::Borrowed(pathname) => urlpath::decode_component(pathname)?,
        Cow::Owned(pathname) => Cow::Owned(urlpath::decode_component(&pathname)?.into_owned()),
    };
    if !state.config.host_routing {
        return Ok(decoded);
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.split(':').next().unwrap_or(""));
    let host = host.unwrap_or("undefined");
    Ok(Cow::Owned(format!("/{host}{decoded}")))
}

/// Looks up the route for a path, timing the lookup when metrics are on.
pub fn lookup(state: &State, path: &str) -> Option<Match> {
    let timer = state.metrics.timer();
    let found = state.read().lookup(path);
    if let Some(t) = timer {
        state.metrics.find_target_for_req.observe_since(t);
    }
    found
}

/// Builds the target URI for `raw` (the request target as received, whose
/// parsed form `as_received` is, when the caller has it, reused as the
/// forwarded path when the join would rebuild it unchanged).
pub fn outgoing(
    state: &State,
    m: &Match,
    raw: &str,
    as_received: Option<&PathAndQuery>,
) -> Result<Outgoing, String> {
    let target = match &m.route.target {
        Target::Http(t) => t,
        Target::Invalid(reason) => return Err(reason.clone()),
    };
    let stripped =
        (!state.config.include_prefix).then(|| urlpath::strip_prefix_units(raw, &m.prefix));
    let request_path = urlpath::get_path(stripped.as_deref().unwrap_or(raw));
    let base = if state.config.prepend_path {
        target.path_and_query.as_str()
    } else {
        "/"
    };
    let path = match (as_received, &request_path) {
        // The common case: a target without a path, and a request path
        // that needs no normalizing: the join gives it back as it came.
        (Some(pq), Cow::Borrowed(p))
            if base == "/" && pq.as_str() == *p && urlpath::joins_to_itself(p) =>
        {
            pq.clone()
        }
        _ => {
            let joined = urlpath::url_join(base, &request_path);
            PathAndQuery::from_maybe_shared(bytes::Bytes::from(joined))
                .map_err(|e| format!("bad forwarded path: {e}"))?
        }
    };
    Ok(Outgoing {
        origin: target.origin.clone(),
        uri: Uri::from(path),
        stripped,
    })
}

/// The `X-Forwarded-Port` value: the first `:digits` in the Host header,
/// else the scheme's default port.
fn forwarded_port(host: Option<&HeaderValue>, tls: bool) -> HeaderValue {
    if let Some(host) = host.and_then(|h| h.to_str().ok()) {
        let b = host.as_bytes();
        for (i, _) in b.iter().enumerate().filter(|(_, c)| **c == b':') {
            let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if digits > 0 {
                if let Ok(v) = HeaderValue::from_bytes(&b[i + 1..i + 1 + digits]) {
                    return v;
                }
            }
        }
    }
    HeaderValue::from_static(if tls { "443" } else { "80" })
}

/// Appends `value` to the (comma-joined) existing values of `name`.
fn append_forwarded(headers: &mut HeaderMap, name: &'static HeaderName, value: HeaderValue) {
    let mut entry = match headers.entry(name) {
        header::Entry::Vacant(e) => {
            e.insert(value);
            return;
        }
        header::Entry::Occupied(e) => e,
    };
    let mut joined: Vec<u8> = Vec::new();
    let mut any = false;
    for existing in entry.iter().filter_map(|v| v.to_str().ok()) {
        if any {
            joined.extend_from_slice(b", ");
        }
        joined.extend_from_slice(existing.as_bytes());
        any = true;
    }
    let joined = if !any {
        // No usable value: ours replaces them.
        value
    } else {
        joined.push(b',');
        joined.extend_from_slice(value.as_bytes());
        match HeaderValue::from_maybe_shared(bytes::Bytes::from(joined)) {
            Ok(v) => v,
            Err(_) => return,
        }
    };
    entry.insert(joined);
}

/// Rewrites request headers for the target: X-Forwarded-*, custom
/// headers, `Trailer` removal and, with `--change-origin`, the Host.
/// `host` is the request's Host header, looked up once by the caller.
pub fn prepare_headers(
    state: &State,
    headers: &mut HeaderMap,
    host: Option<&HeaderValue>,
    client: &ClientInfo,
    websocket: bool,
    target: &Origin,
) {
    if state.config.x_forward {
        // Room for the four headers at once: one growth of the map, not
        // several (a map that cannot grow is caught by the inserts).
        let _ = headers.try_reserve(4);
        let port = forwarded_port(host, client.tls);
        let proto = match (websocket, client.tls) {
            (false, false) => "http",
            (false, true) => "https",
            (true, false) => "ws",
            (true, true) => "wss",
        };
        append_forwarded(headers, &X_FORWARDED_FOR, client.forwarded_for.clone());
        append_forwarded(headers, &X_FORWARDED_PORT, port);
        append_forwarded(headers, &X_FORWARDED_PROTO, HeaderValue::from_static(proto));
        if !websocket {
            if let header::Entry::Vacant(e) = headers.entry(&X_FORWARDED_HOST) {
                e.insert(
                    host.cloned()
                        .unwrap_or_else(|| HeaderValue::from_static("")),
                );
            }
        }
    }
    for (k, v) in &state.custom_headers {
        headers.insert(k.clone(), v.clone());
    }
    headers.remove(header::TRAILER);
    if state.config.change_origin {
        if let Ok(v) = HeaderValue::from_str(target.authority().as_str()) {
            headers.insert(header::HOST, v);
        }
    }
}

/// Resolves after `d`, or never when there is no limit.
async fn limit(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// Outcome of waiting for a target with the two timeouts.
enum Waited<T> {
    Done(T),
    ProxyTimeout,
    ClientTimeout,
}

/// Waits for `fut` under `--proxy-timeout` and `--timeout`. Without
/// either, [`handle`] awaits the request itself instead.
async fn with_timeouts<F: Future>(state: &State, fut: F) -> Waited<F::Output> {
    let (client, proxy) = (state.config.timeout, state.config.proxy_timeout);
    tokio::select! {
        r = fut => Waited::Done(r),
        () = limit(proxy) => Waited::ProxyTimeout,
        () = limit(client) => Waited::ClientTimeout,
    }
}

/// Rewrites a redirect's `Location` for `--auto-rewrite` and
/// `--protocol-rewrite` when it points at the target itself.
fn rewrite_location(
    state: &State,
    status: StatusCode,
    headers: &mut HeaderMap,
    target: &Origin,
    req_host: Option<&HeaderValue>,
) {
    if !(state.config.auto_rewrite || state.config.protocol_rewrite.is_some()) {
        return;
    }
    if !matches!(status.as_u16(), 201 | 301 | 302 | 307 | 308) {
        return;
    }
    let Some(loc) = headers.get(header::LOCATION).and_then(|v| v.to_str().ok()) else {
        return;
    };
    let Ok(mut u) = url::Url::parse("http://base.invalid").and_then(|b| b.join(loc)) else {
        return;
    };
    let target_host = target.authority().as_str();
    let loc_host = &u[url::Position::BeforeHost..url::Position::AfterPort];
    if !loc_host.eq_ignore_ascii_case(target_host) {
        return;
    }
    if state.config.auto_rewrite {
        let host = req_host.and_then(|h| h.to_str().ok()).unwrap_or("");
        if let Ok(with_host) = url::Url::parse(&format!("{}://{host}", u.scheme())) {
            if u.set_host(with_host.host_str()).is_err() || u.set_port(with_host.port()).is_err() {
                return;
            }
        }
    }
    if let Some(proto) = &state.config.protocol_rewrite {
        let proto = proto.trim_end_matches(':');
        if u.set_scheme(proto).is_err() {
            // `set_scheme` refuses special/non-special switches; rebuild.
            if let Ok(v) = url::Url::parse(&format!("{proto}{}", &u[url::Position::AfterScheme..]))
            {
                u = v;
            }
        }
    }
    if let Ok(v) = HeaderValue::from_str(u.as_str()) {
        headers.insert(header::LOCATION, v);
    }
}

/// Handles one request on the public listener.
pub async fn handle(
    state: Arc<State>,
    mut req: Request<Incoming>,
    client: ClientInfo,
) -> Result<Response<ResponseBody>, Dropped> {
    // The request's URI is taken out (the target's path goes in its place).
    let uri = std::mem::take(req.uri_mut());
    let raw = uri.path_and_query().map_or("/", |p| p.as_str());
    let upgrade = is_upgrade(req.headers());
    if !upgrade && raw == "/_chp_healthz" {
        let mut res = Response::new(ResponseBody::full(&br#"{"status":"OK"}"#[..]));
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return Ok(res);
    }
    if upgrade {
        state.metrics.requests_ws.inc();
        *req.uri_mut() = uri.clone();
        return websocket::handle(state, req, client, raw).await;
    }
    state.metrics.requests_web.inc();
    let path = match match_path(&state, req.headers(), raw) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("500 {} {} {e}", req.method(), urlpath::path_part(raw));
            return Ok(errors::respond(&state, StatusCode::INTERNAL_SERVER_ERROR, raw).await);
        }
    };
    let Some(m) = lookup(&state, &path) else {
        tracing::warn!("404 {} {}", req.method(), urlpath::path_part(raw));
        return Ok(errors::respond(&state, StatusCode::NOT_FOUND, raw).await);
    };
    drop(path);
    let out = match outgoing(&state, &m, raw, uri.path_and_query()) {
        Ok(o) => o,
        Err(e) => {
            tracing::error!("500 {} {} {e}", req.method(), urlpath::path_part(raw));
            return Ok(errors::respond(&state, StatusCode::INTERNAL_SERVER_ERROR, raw).await);
        }
    };
    tracing::debug!(
        "PROXY WEB {} to {}{}",
        urlpath::path_part(raw),
        out.origin,
        out.uri
    );
    let method = req.method().clone();
    let req_host = req.headers().get(header::HOST).cloned();
    prepare_headers(
        &state,
        req.headers_mut(),
        req_host.as_ref(),
        &client,
        false,
        &out.origin,
    );
    if (method == Method::DELETE || method == Method::OPTIONS)
        && !req.headers().contains_key(header::CONTENT_LENGTH)
        && !req.headers().contains_key(header::TRANSFER_ENCODING)
    {
        req.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
    let Outgoing {
        origin,
        uri: target_uri,
        stripped,
    } = out;
    let url = stripped.as_deref().unwrap_or(raw);
    let (mut parts, body) = req.into_parts();
    parts.uri = target_uri;
    parts.version = http::Version::HTTP_11;
    let target_req = Request::from_parts(parts, RequestBody::stream(body, m.activity.clone()));
    // Without timeouts (the default) the request's future is awaited
    // where it is made, not moved into the timeouts' select.
    let waited = if state.config.timeout.is_none() && state.config.proxy_timeout.is_none() {
        Waited::Done(state.client.request_to(&origin, target_req).await)
    } else {
        with_timeouts(&state, state.client.request_to(&origin, target_req)).await
    };
    let res = match waited {
        Waited::Done(Ok(res)) => res,
        Waited::Done(Err(e)) => {
            tracing::error!(
                "503 {method} {} {}",
                urlpath::path_part(url),
                error_chain(&e)
            );
            return Ok(errors::respond(&state, StatusCode::SERVICE_UNAVAILABLE, url).await);
        }
        Waited::ProxyTimeout => {
            tracing::error!("503 {method} {} target timed out", urlpath::path_part(url));
            return Ok(errors::respond(&state, StatusCode::SERVICE_UNAVAILABLE, url).await);
        }
        Waited::ClientTimeout => {
            tracing::debug!("request {} timed out, dropping the connection", url);
            return Err(Dropped::Timeout);
        }
    };
    let (mut parts, body) = res.into_parts();
    state.metrics.requests_proxy.inc(parts.status.as_u16());
    parts.headers.remove(header::TRANSFER_ENCODING);
    rewrite_location(
        &state,
        parts.status,
        &mut parts.headers,
        &origin,
        req_host.as_ref(),
    );
    let on_end = if parts.status.as_u16() < 300 {
        m.activity.clone()
    } else {
        tracing::debug!(
            "Not recording activity for status {} on {}",
            parts.status,
            m.prefix
        );
        None
    };
    Ok(Response::from_parts(
        parts,
        ResponseBody::upstream(body, on_end),
    ))
}

/// The error and its causes, for logs.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    let mut depth = 0;
    while let Some(c) = cur {
        if depth >= 8 {
            break;
        }
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
        depth += 1;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrade_detection() {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(!is_upgrade(&h));
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(is_upgrade(&h));
    }

    #[test]
    fn forwarded_port_from_host() {
        assert_eq!(forwarded_port(None, false), "80");
        assert_eq!(forwarded_port(None, true), "443");
        let host = HeaderValue::from_static("example.com:8000");
        assert_eq!(forwarded_port(Some(&host), false), "8000");
        // The first `:digits`, as the reference's pattern finds it.
        let host = HeaderValue::from_static("[::1]:8000");
        assert_eq!(forwarded_port(Some(&host), false), "1");
    }

    #[test]
    fn forwarded_append() {
        let mut h = HeaderMap::new();
        append_forwarded(
            &mut h,
            &X_FORWARDED_FOR,
            HeaderValue::from_static("127.0.0.1"),
        );
        assert_eq!(h[&X_FORWARDED_FOR], "127.0.0.1");
        append_forwarded(
            &mut h,
            &X_FORWARDED_FOR,
            HeaderValue::from_static("10.0.0.1"),
        );
        assert_eq!(h[&X_FORWARDED_FOR], "127.0.0.1,10.0.0.1");
        // Several lines are joined with ", ", an empty one included.
        let mut h = HeaderMap::new();
        h.append(&X_FORWARDED_FOR, HeaderValue::from_static(""));
        h.append(&X_FORWARDED_FOR, HeaderValue::from_static("1.2.3.4"));
        append_forwarded(
            &mut h,
            &X_FORWARDED_FOR,
            HeaderValue::from_static("5.6.7.8"),
        );
        assert_eq!(h.get_all(&X_FORWARDED_FOR).iter().count(), 1);
        assert_eq!(h[&X_FORWARDED_FOR], ", 1.2.3.4,5.6.7.8");
        // A value that is not text is dropped.
        let mut h = HeaderMap::new();
        h.insert(&X_FORWARDED_FOR, HeaderValue::from_bytes(b"\xff").unwrap());
        append_forwarded(
            &mut h,
            &X_FORWARDED_FOR,
            HeaderValue::from_static("5.6.7.8"),
        );
        assert_eq!(h[&X_FORWARDED_FOR], "5.6.7.8");
    }

    #[test]
    fn client_forwarded_for() {
        let c = ClientInfo::new(Some(IpAddr::from([127, 0, 0, 1])), false);
        assert_eq!(c.forwarded_for, "127.0.0.1");
        let c = ClientInfo::new(Some("::1".parse().unwrap()), true);
        assert_eq!(c.forwarded_for, "::1");
        assert_eq!(ClientInfo::new(None, false).forwarded_for, "undefined");
    }
}
