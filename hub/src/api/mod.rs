//! The JupyterHub-compatible REST API under `/hub/api`: one module per
//! resource, and the pieces they share (bodies, pagination, models).

pub mod groups;
pub mod info;
pub mod proxy;
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
        let too_large = || {
            ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                format!("Request body is larger than {MAX_BODY} bytes"),
            )
        };
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > MAX_BODY) {
            return Err(too_large());
        }
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY)
            .await
            .map_err(|_| too_large())?;
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
    let next_offset = offset + limit;
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
