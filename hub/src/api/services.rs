//! `/services` and `/services/{name}`: the services from the
//! configuration.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Map, Value, json};

use crate::app::AppState;
use crate::auth::Requester;
use crate::config::ServiceConfig;
use crate::error::{ApiError, ApiResult};
use crate::scopes::{Filter, NoGroups, Resource};

const SERVICE_ACCESS: &[(&str, &[&str])] = &[
    (
        "read:services",
        &[
            "kind", "name", "admin", "url", "prefix", "command", "pid", "info", "display",
        ],
    ),
    ("read:services:name", &["kind", "name", "admin"]),
    ("read:roles:services", &["kind", "name", "roles", "admin"]),
];

/// Keeps the keys of a service model that `req` may read.
pub fn filter_service(req: &Requester, name: &str, model: Value) -> Value {
    let mut allowed = BTreeSet::new();
    for (scope, keys) in SERVICE_ACCESS {
        if let Some(f) = req.parsed.get(*scope) {
            if crate::scopes::covers(f, Resource::Service(name), &NoGroups) {
                allowed.extend(keys.iter().copied());
            }
        }
    }
    match model {
        Value::Object(m) => Value::Object(super::filter_model(m, &allowed)),
        other => other,
    }
}

async fn service_model(st: &AppState, req: &Requester, s: &ServiceConfig) -> ApiResult<Value> {
    let roles = match st.db.find_service(&s.name).await? {
        Some(row) => st
            .db
            .roles_of(crate::db::Bearer::Service, &[row.id])
            .await?
            .remove(&row.id)
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let mut model = Map::new();
    model.insert("kind".into(), json!("service"));
    model.insert("name".into(), json!(s.name));
    model.insert("roles".into(), json!(roles));
    model.insert("admin".into(), json!(s.admin));
    model.insert("url".into(), json!(s.url.clone().unwrap_or_default()));
    let prefix = if s.url.is_some() {
        format!("/services/{}/", s.name)
    } else {
        String::new()
    };
    model.insert("prefix".into(), json!(prefix));
    model.insert("command".into(), json!(s.command));
    let pid = st.db.service_pid(&s.name).await?.unwrap_or(0);
    model.insert("pid".into(), json!(pid));
    model.insert("info".into(), Value::Object(s.info.clone()));
    model.insert("display".into(), json!(s.display.unwrap_or(true)));
    Ok(filter_service(req, &s.name, Value::Object(model)))
}

/// A service's model for identification (`/user` for a service token,
/// the deprecated token lookup). JupyterHub builds this one from its
/// database row rather than from the running service, so `url` is null
/// for a service without one and `info` and `display` are null; this
/// model keeps those values (clients of `/user` see what JupyterHub
/// sends) where `GET /services/{name}` has `""`, `{}` and `true`.
pub async fn identity_model(
    st: &AppState,
    req: &Requester,
    name: &str,
    admin: bool,
) -> ApiResult<Value> {
    let url = st
        .config
        .services
        .iter()
        .find(|s| s.name == name)
        .and_then(|s| s.url.clone());
    let roles = match st.db.find_service(name).await? {
        Some(row) => st
            .db
            .roles_of(crate::db::Bearer::Service, &[row.id])
            .await?
            .remove(&row.id)
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let model = json!({
        "kind": "service", "name": name, "roles": roles, "admin": admin, "url": url,
        "pid": 0, "info": null, "command": [], "prefix": "", "display": null,
    });
    Ok(filter_service(req, name, model))
}

/// `GET /services`.
pub async fn list(State(st): State<AppState>, req: Requester) -> ApiResult<Json<Value>> {
    let filter = req.need_some("list:services")?.clone();
    let mut out = Map::new();
    for s in &st.config.services {
        let visible = match &filter {
            Filter::All => true,
            Filter::Some(map) => map.get("service").is_some_and(|n| n.contains(&s.name)),
        };
        if visible {
            out.insert(s.name.clone(), service_model(&st, &req, s).await?);
        }
    }
    Ok(Json(Value::Object(out)))
}

/// `GET /services/{name}`.
pub async fn get_one(
    State(st): State<AppState>,
    req: Requester,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    req.need(
        &st,
        &["read:services", "read:services:name", "read:roles:services"],
        Some(Resource::Service(&name)),
    )
    .await?;
    let s = st
        .config
        .services
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| ApiError::not_found(format!("No such service: {name}")))?;
    Ok(Json(service_model(&st, &req, s).await?))
}
