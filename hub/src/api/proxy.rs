//! `/proxy`: the proxy's routing table, and re-syncing it.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{OriginalUri, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::{paginated, pagination};
use crate::app::AppState;
use crate::auth::Requester;
use crate::error::{ApiError, ApiResult};
use crate::proxy_client::ProxyError;

fn proxy_error(e: ProxyError) -> ApiError {
    tracing::warn!(error = %e, "proxy API call failed");
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

/// `GET /proxy`.
pub async fn get(
    State(st): State<AppState>,
    req: Requester,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    req.need(&st, &["proxy"], None).await?;
    let (offset, limit) = pagination(&st, &query, &headers)?;
    let all = st.proxy.get_routes().await.map_err(proxy_error)?;
    let total = all.len() as i64;
    let page: serde_json::Map<String, Value> = all
        .into_iter()
        .skip(offset as usize)
        .take(limit as usize)
        .collect();
    if super::accepts_pagination(&headers) {
        Ok(Json(paginated(
            Value::Object(page),
            offset,
            limit,
            total,
            &headers,
            uri.path(),
            &query,
        )))
    } else {
        Ok(Json(Value::Object(page)))
    }
}

/// `POST /proxy`: makes sure the proxy has the hub's routes.
pub async fn sync(State(st): State<AppState>, req: Requester) -> ApiResult<StatusCode> {
    req.need(&st, &["proxy"], None).await?;
    st.sync_proxy().await.map_err(proxy_error)?;
    Ok(StatusCode::OK)
}

/// The routes the hub owns besides its users' servers: `/` to itself,
/// and one per service with a URL.
pub fn static_routes(st: &AppState) -> Vec<(String, String, serde_json::Map<String, Value>)> {
    let mut out = Vec::new();
    let mut hub = serde_json::Map::new();
    hub.insert("hub".into(), json!(true));
    out.push(("/".to_owned(), st.hub_url.clone(), hub));
    for s in &st.config.services {
        if let Some(url) = &s.url {
            let mut data = serde_json::Map::new();
            data.insert("service".into(), json!(s.name));
            out.push((format!("/services/{}/", s.name), url.clone(), data));
        }
    }
    out
}
