//! The JupyterHub-compatible REST API under `/hub/api`: one module per
//! resource, and the pieces they share (bodies, pagination, models).

pub mod groups;
pub mod info;
pub mod proxy;
pub mod servers;
pub mod services;
pub mod tokens;
pub mod users;

use std::collections::HashMap;

use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, header};
use serde_json::{Map, Value, json};

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};

/// The largest request body the API reads.
pub const MAX_BODY: usize = 1024 * 1024;

/// The media type that asks for the paginated envelope.
pub const PAGINATION_MEDIA_TYPE: &str = "application/jupyterhub-pagination+json";

/// A request's JSON body: `None` when empty, 400 "Invalid JSON in body of
/// request" when not JSON, 413 when over [`MAX_BODY`].
#[derive(Debug)]
pub struct JsonBody(pub Option<Value>);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > MAX_BODY) {
            drain(req.into_body()).await;
            return Err(too_large());
        }
        let mut body = req.into_body();
        let mut bytes = Vec::new();
        while let Some(data) = next_data(&mut body).await {
            let Ok(data) = data else {
                return Err(ApiError::bad_request("The request body could not be read"));
            };
            if let Some(data) = data {
                if bytes.len() + data.len() > MAX_BODY {
                    drain(body).await;
                    return Err(too_large());
                }
                bytes.extend_from_slice(&data);
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        let text = text.trim();
        if text.is_empty() {
            return Ok(Self(None));
        }
        serde_json::from_str(text)
            .map(|v| Self(Some(v)))
            .map_err(|_| ApiError::bad_request("Invalid JSON in body of request"))
    }
}

/// Reads each API request's body (up to [`MAX_BODY`]) before the handler
/// runs, as JupyterHub (tornado) does: an answer that comes before the
/// handler would have read the body (a 403 for a missing token, a 404)
/// then never leaves the client in the middle of sending it, which would
/// reset its connection. A body over the limit is answered with 413 here,
/// before anything else.
pub async fn buffer_body(req: Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (parts, mut body) = req.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY) {
        drain(body).await;
        return too_large().into_response();
    }
    let mut bytes = Vec::new();
    while let Some(data) = next_data(&mut body).await {
        let Ok(data) = data else {
            return ApiError::bad_request("The request body could not be read").into_response();
        };
        if let Some(data) = data {
            if bytes.len() + data.len() > MAX_BODY {
                drain(body).await;
                return too_large().into_response();
            }
            bytes.extend_from_slice(&data);
        }
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

fn too_large() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        format!("Request body is larger than {MAX_BODY} bytes"),
    )
}

/// How much of an oversized body the hub still reads (and discards)
/// before answering 413, and for how long.
const DRAIN_LIMIT: usize = 8 * MAX_BODY;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// The next frame of `body`: its data (`None` for trailers), an error, or
/// `None` at the end.
async fn next_data(
    body: &mut axum::body::Body,
) -> Option<Result<Option<axum::body::Bytes>, axum::Error>> {
    use axum::body::HttpBody;
    let frame = std::future::poll_fn(|cx| std::pin::Pin::new(&mut *body).poll_frame(cx)).await?;
    Some(frame.map(|f| f.into_data().ok()))
}

/// Reads and discards the rest of an oversized body, up to
/// [`DRAIN_LIMIT`] bytes and [`DRAIN_TIME`], so that a client still
/// sending it gets the 413 instead of a reset connection (the server
/// closing a socket with unread data resets it). Bodies beyond that are
/// cut off: the connection is closed without reading them.
async fn drain(mut body: axum::body::Body) {
    let read = async {
        let mut seen = 0usize;
        while let Some(Ok(data)) = next_data(&mut body).await {
            seen += data.map_or(0, |d| d.len());
            if seen > DRAIN_LIMIT {
                break;
            }
        }
    };
    // Best effort: whatever is left unread when time runs out is dropped
    // with the connection.
    let _timed_out = tokio::time::timeout(DRAIN_TIME, read).await;
}

/// Whether the client asked for the paginated envelope.
pub fn accepts_pagination(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case(PAGINATION_MEDIA_TYPE))
}

/// Offset and limit from the query, as JupyterHub computes them: without
/// the pagination media type the default page is the maximum page.
pub fn pagination(
    st: &AppState,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> ApiResult<(i64, i64)> {
    let max = i64::from(st.config.hub.api_page_max_limit);
    let default = if accepts_pagination(headers) {
        i64::from(st.config.hub.api_page_default_limit)
    } else {
        max
    };
    let bad = || ApiError::bad_request("Invalid argument type, offset and limit must be integers");
    let offset = match query.get("offset") {
        Some(v) => v.trim().parse::<i64>().map_err(|_| bad())?.saturating_abs(),
        None => 0,
    };
    let limit = match query.get("limit") {
        Some(v) => v.trim().parse::<i64>().map_err(|_| bad())?.saturating_abs(),
        None => default,
    };
    Ok((offset, limit.clamp(1, max)))
}

/// The paginated envelope: `{"items": [...], "_pagination": {...}}`, with
/// the next page's URL built from the request's.
pub fn paginated(
    items: Value,
    offset: i64,
    limit: i64,
    total: i64,
    headers: &HeaderMap,
    path: &str,
    query: &HashMap<String, String>,
) -> Value {
    let next_offset = offset.saturating_add(limit);
    let next = if next_offset < total {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("localhost");
        let mut q: Vec<(String, String)> = query
            .iter()
            .filter(|(k, _)| k.as_str() != "offset" && k.as_str() != "limit")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        q.sort();
        q.push(("offset".into(), next_offset.to_string()));
        q.push(("limit".into(), limit.to_string()));
        let qs: Vec<String> = q
            .iter()
            .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
            .collect();
        json!({
            "offset": next_offset,
            "limit": limit,
            "url": format!("http://{host}{path}?{}", qs.join("&")),
        })
    } else {
        Value::Null
    };
    json!({
        "items": items,
        "_pagination": {"offset": offset, "limit": limit, "total": total, "next": next},
    })
}

fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Keeps the keys of `model` that the allowed scopes grant.
pub fn filter_model(
    model: Map<String, Value>,
    allowed: &std::collections::BTreeSet<&str>,
) -> Map<String, Value> {
    model
        .into_iter()
        .filter(|(k, _)| allowed.contains(k.as_str()))
        .collect()
}

/// The body as an object, or 400 with `message`.
pub fn object(body: Option<Value>, message: &str) -> ApiResult<Map<String, Value>> {
    match body {
        Some(Value::Object(m)) => Ok(m),
        _ => Err(ApiError::bad_request(message)),
    }
}

/// A list of strings, or 400 naming the field.
pub fn string_list(value: &Value, what: &str) -> ApiResult<Vec<String>> {
    let bad = || ApiError::bad_request(format!("{what} must be a list of strings"));
    value
        .as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|v| v.as_str().map(str::to_owned).ok_or_else(bad))
        .collect()
}

/// Checks the keys and value types of a posted `kind` model: `typed`
/// says whether a known key's value has the right type, `None` for an
/// unknown key (JupyterHub's "Invalid JSON keys" answer).
fn check_model(
    kind: &str,
    model: &serde_json::Map<String, serde_json::Value>,
    typed: impl Fn(&str, &serde_json::Value) -> Option<bool>,
) -> ApiResult<()> {
    for (key, value) in model {
        match typed(key, value) {
            Some(true) => {}
            Some(false) => {
                return Err(ApiError::bad_request(format!(
                    "{kind}.{key} has the wrong type"
                )));
            }
            None => {
                return Err(ApiError::bad_request(format!(
                    "Invalid JSON keys: {}",
                    serde_json::Value::Object(model.clone())
                )));
            }
        }
    }
    Ok(())
}
