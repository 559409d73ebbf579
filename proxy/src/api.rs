//! The REST API on the API listener, answering as configurable-http-proxy
//! does (see `shared/reference/chp-rest-api.yml` for the contract):
//!
//! | request | answer |
//! |---|---|
//! | `GET /api/routes[?inactive_since=ISO]` | 200, JSON object of all routes (400 `Invalid datestamp '…' must be ISO8601.` for a bad date) |
//! | `GET /api/routes/{path}` | 200 with the route's JSON, or 404 with an empty body |
//! | `POST /api/routes/{path}` `{"target": "...", ...}` | 201, empty body; 400 `Body not valid JSON: …` or `Must specify 'target' as string` |
//! | `DELETE /api/routes/{path}` | 204, or 404 when there is no such route |
//! | any other method on `/api/routes…` | 405 `Method not supported` |
//! | any other path | 404 `Not Found` |
//!
//! With `CONFIGPROXY_AUTH_TOKEN` set, `Authorization` must contain
//! `token <value>` (else 403, empty body); unset or empty, the API is open.
//! The body of a POST is parsed before the token is checked, so bad JSON
//! is a 400 even without a token (as in the reference). Only JSON answers
//! carry `Content-Type: application/json`; the others have none.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use indexmap::IndexMap;
use serde_json::Value;

use crate::body::ResponseBody;
use crate::routes::{RoutePath, now_ms, parse_timestamp_ms};
use crate::state::State;
use crate::urlpath;

/// The largest POST body accepted (route data is small).
const MAX_BODY: usize = 1 << 20;

fn respond(code: StatusCode, body: impl Into<Bytes>) -> Response<ResponseBody> {
    let mut res = Response::new(ResponseBody::full(body));
    *res.status_mut() = code;
    res
}

fn json(code: StatusCode, body: Vec<u8>) -> Response<ResponseBody> {
    let mut res = respond(code, body);
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// The token from an `Authorization` value: the first `token <non-space>`
/// anywhere in it (the reference's pattern is unanchored).
fn presented_token(value: &str) -> Option<&str> {
    let mut rest = value;
    while let Some(i) = rest.find("token") {
        let after = &rest[i + "token".len()..];
        let trimmed = after.trim_start();
        if trimmed.len() < after.len() {
            let end = trimmed.find(char::is_whitespace).unwrap_or(trimmed.len());
            if end > 0 {
                return Some(&trimmed[..end]);
            }
        }
        rest = after;
    }
    None
}

fn authorized<B>(state: &State, req: &Request<B>) -> bool {
    if !state.token.is_set() {
        return true;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(presented_token);
    match presented {
        Some(t) => state.token.matches(t),
        None => false,
    }
}

/// Handles one API request.
pub async fn handle<B>(state: Arc<State>, req: Request<B>) -> Response<ResponseBody>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let method = req.method().clone();
    let raw = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let res = route_request(&state, req).await;
    let code = res.status().as_u16();
    state.metrics.requests_api.inc(code);
    let path = urlpath::path_part(&raw);
    if code < 400 && method == http::Method::GET {
        // a hub reads the table every few seconds: listings only at debug
        tracing::debug!("{code} {method} {path}");
    } else if code < 400 {
        tracing::info!("{code} {method} {path}");
    } else if code < 500 {
        tracing::warn!("{code} {method} {path}");
    } else {
        tracing::error!("{code} {method} {path}");
    }
    res
}

async fn route_request<B>(state: &State, req: Request<B>) -> Response<ResponseBody>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let raw = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let pathname = urlpath::pathname(raw).into_owned();
    let sub = match pathname.strip_prefix("/api/routes") {
        Some("") => None,
        Some(rest) if rest.starts_with('/') => Some(rest.to_owned()),
        _ => return respond(StatusCode::NOT_FOUND, "Not Found"),
    };
    let query = urlpath::normalize(raw)
        .split_once('?')
        .map(|(_, q)| q.to_owned())
        .unwrap_or_default();
    let method = req.method().clone();
    if !matches!(method, Method::GET | Method::POST | Method::DELETE) {
        return respond(StatusCode::METHOD_NOT_ALLOWED, "Method not supported");
    }
    let sub = match sub.as_deref().map(urlpath::decode_component).transpose() {
        Ok(s) => s.map(|s| s.into_owned()),
        Err(e) => return respond(StatusCode::BAD_REQUEST, format!("Invalid path: {e}")),
    };
    if method == Method::POST {
        let authorized = authorized(state, &req);
        let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return respond(StatusCode::BAD_REQUEST, format!("Body not readable: {e}")),
        };
        let data = match serde_json::from_slice::<Value>(&body) {
            Ok(v) => v,
            Err(e) => {
                return respond(
                    StatusCode::BAD_REQUEST,
                    format!("Body not valid JSON: SyntaxError: {e}"),
                );
            }
        };
        if !authorized {
            tracing::debug!("rejecting API request without a valid token");
            return respond(StatusCode::FORBIDDEN, Bytes::new());
        }
        return post_route(state, sub.as_deref().unwrap_or("/"), data, &body);
    }
    if !authorized(state, &req) {
        tracing::debug!("rejecting API request without a valid token");
        return respond(StatusCode::FORBIDDEN, Bytes::new());
    }
    match method {
        Method::GET => match sub.as_deref() {
            Some(p) if !p.is_empty() && p != "/" => get_route(state, p),
            _ => get_routes(state, &query),
        },
        _ => match sub.as_deref() {
            Some(p) => delete_route(state, p),
            // The reference never answers this one (its handler throws).
            None => respond(StatusCode::BAD_REQUEST, "Must specify a route to delete"),
        },
    }
}

fn get_route(state: &State, path: &str) -> Response<ResponseBody> {
    let key = RoutePath::new(path);
    let table = state.read();
    match table.get(&key) {
        Some(route) => {
            let mut buf = Vec::with_capacity(256);
            route.write_json(&mut buf);
            drop(table);
            json(StatusCode::OK, buf)
        }
        None => respond(StatusCode::NOT_FOUND, Bytes::new()),
    }
}

fn get_routes(state: &State, query: &str) -> Response<ResponseBody> {
    let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let since = match param("inactiveSince").or_else(|| param("inactive_since")) {
        None => None,
        Some(text) => match parse_timestamp_ms(&text) {
            Some(ms) => Some(ms),
            None => {
                return respond(
                    StatusCode::BAD_REQUEST,
                    format!("Invalid datestamp '{text}' must be ISO8601."),
                );
            }
        },
    };
    let mut buf = Vec::with_capacity(4096);
    {
        let table = state.read();
        buf.reserve(table.len() * 128);
        table.write_json(&mut buf, |r| since.is_none_or(|s| r.last_activity_ms() < s));
    }
    state.metrics.api_route_get.inc();
    json(StatusCode::OK, buf)
}

fn post_route(state: &State, path: &str, data: Value, body: &[u8]) -> Response<ResponseBody> {
    // `JSON.parse(body) || {}`: falsy documents count as an empty object.
    let data = match data {
        Value::Null | Value::Bool(false) => Value::Object(Default::default()),
        Value::Number(n) if n.as_f64() == Some(0.0) => Value::Object(Default::default()),
        Value::String(s) if s.is_empty() => Value::Object(Default::default()),
        other => other,
    };
    // Parsed again from the text so the keys keep their posted order
    // (`Value` objects are sorted).
    let ordered: Option<IndexMap<String, Value>> = match &data {
        Value::Object(_) => serde_json::from_slice(body).ok(),
        _ => None,
    };
    let Some(mut ordered) = ordered.filter(|m| matches!(m.get("target"), Some(Value::String(_))))
    else {
        tracing::warn!("Bad POST data: {data}");
        return respond(StatusCode::BAD_REQUEST, "Must specify 'target' as string");
    };
    let key = RoutePath::new(path);
    if state.config.host_routing && key.as_str() != "/" {
        let host = key.first_segment().to_owned();
        ordered.insert("host".to_owned(), Value::String(host));
    }
    let target = ordered
        .get("target")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    tracing::info!("Adding route {key} -> {target}");
    state.write().insert(key.clone(), ordered, now_ms());
    state.mark_changed();
    tracing::info!("Route added {key} -> {target}");
    state.metrics.api_route_add.inc();
    respond(StatusCode::CREATED, Bytes::new())
}

fn delete_route(state: &State, path: &str) -> Response<ResponseBody> {
    let key = RoutePath::new(path);
    let removed = state.write().remove(&key);
    state.metrics.api_route_delete.inc();
    match removed {
        Some(_) => {
            tracing::info!("Removing route {key}");
            state.mark_changed();
            respond(StatusCode::NO_CONTENT, Bytes::new())
        }
        None => respond(StatusCode::NOT_FOUND, Bytes::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use crate::routes::RouteTable;
    use crate::state::{AuthToken, State, build_client};
    use clap::Parser;
    use http_body_util::Full;

    fn state(token: Option<&str>, extra: &[&str]) -> Arc<State> {
        let cli = Cli::try_parse_from(["jhub-proxy"].iter().chain(extra)).expect("cli");
        let config = cli.into_config().expect("config");
        let client = build_client(&config).expect("client");
        State::new(
            config,
            RouteTable::new(),
            client,
            AuthToken::new(token.map(str::to_owned)),
        )
    }

    async fn call(
        state: &Arc<State>,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: &str,
    ) -> (u16, Option<String>, String) {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            b = b.header("authorization", format!("token {t}"));
        }
        let req = b
            .body(Full::new(Bytes::from(body.to_owned())))
            .expect("request");
        let res = handle(Arc::clone(state), req).await;
        let status = res.status().as_u16();
        let ctype = res
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        (status, ctype, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn status_codes() {
        let s = state(Some("secret"), &[]);
        let t = Some("secret");
        let target = r#"{"target":"http://127.0.0.1:9"}"#;
        assert_eq!(call(&s, "GET", "/api/routes", None, "").await.0, 403);
        assert_eq!(
            call(&s, "GET", "/api/routes", Some("wrong"), "").await.0,
            403
        );
        assert_eq!(call(&s, "POST", "/api/routes/a", None, target).await.0, 403);
        assert_eq!(call(&s, "POST", "/api/routes/a", None, "{bad").await.0, 400);
        assert_eq!(call(&s, "POST", "/api/routes/a", t, "{}").await.0, 400);
        assert_eq!(
            call(&s, "POST", "/api/routes/a", t, r#"{"target":5}"#)
                .await
                .0,
            400
        );
        assert_eq!(call(&s, "POST", "/api/routes/a", t, "null").await.0, 400);
        assert_eq!(
            call(&s, "POST", "/api/routes/user/a/", t, target).await.0,
            201
        );
        let (code, ctype, body) = call(&s, "GET", "/api/routes/user/a", t, "").await;
        assert_eq!((code, ctype.as_deref()), (200, Some("application/json")));
        assert!(
            body.starts_with(r#"{"target":"http://127.0.0.1:9","last_activity":""#),
            "{body}"
        );
        assert_eq!(call(&s, "GET", "/api/routes/user/b", t, "").await.0, 404);
        assert_eq!(call(&s, "PUT", "/api/routes/user/a", t, "").await.0, 405);
        assert_eq!(call(&s, "GET", "/api/other", t, "").await.0, 404);
        assert_eq!(call(&s, "DELETE", "/api/routes/user/a", t, "").await.0, 204);
        assert_eq!(call(&s, "DELETE", "/api/routes/user/a", t, "").await.0, 404);
        let (code, _, body) = call(&s, "GET", "/api/routes?inactive_since=nope", t, "").await;
        assert_eq!(code, 400);
        assert_eq!(body, "Invalid datestamp 'nope' must be ISO8601.");
    }

    #[tokio::test]
    async fn listing_and_inactive_since() {
        let s = state(None, &[]);
        let target = r#"{"zz":0,"target":"http://127.0.0.1:9","extra":[1]}"#;
        assert_eq!(call(&s, "POST", "/api/routes/x", None, target).await.0, 201);
        assert_eq!(call(&s, "POST", "/api/routes", None, target).await.0, 201);
        let (code, _, body) = call(&s, "GET", "/api/routes", None, "").await;
        assert_eq!(code, 200);
        assert!(body.starts_with(r#"{"/x":{"zz":0,"target":"#), "{body}");
        let v: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["/x"]["extra"], serde_json::json!([1]));
        assert!(v["/"]["last_activity"].is_string());
        let (_, _, body) = call(
            &s,
            "GET",
            "/api/routes?inactive_since=2000-01-01T00:00:00Z",
            None,
            "",
        )
        .await;
        assert_eq!(body, "{}");
        let (_, _, body) = call(
            &s,
            "GET",
            "/api/routes?inactive_since=2999-01-01T00:00:00Z",
            None,
            "",
        )
        .await;
        let v: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v.as_object().map(|m| m.len()), Some(2));
    }

    #[tokio::test]
    async fn keys_are_normalized_and_decoded() {
        let s = state(None, &["--host-routing"]);
        let target = r#"{"target":"http://127.0.0.1:9"}"#;
        assert_eq!(
            call(&s, "POST", "/api/routes/h.example/a%20b/", None, target)
                .await
                .0,
            201
        );
        let (code, _, body) = call(&s, "GET", "/api/routes/h.example/a%20b", None, "").await;
        assert_eq!(code, 200, "{body}");
        let v: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["host"], "h.example");
        assert!(s.read().get(&RoutePath::new("/h.example/a b")).is_some());
    }

    #[test]
    fn token_pattern() {
        assert_eq!(presented_token("token abc"), Some("abc"));
        assert_eq!(presented_token("token   abc def"), Some("abc"));
        assert_eq!(presented_token("Bearer token abc"), Some("abc"));
        assert_eq!(presented_token("tokenabc"), None);
        assert_eq!(presented_token("Bearer abc"), None);
    }
}
