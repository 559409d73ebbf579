//! `/groups`, `/groups/{name}`, `/groups/{name}/users`,
//! `/groups/{name}/properties`.

use std::collections::{BTreeSet, HashMap};

use axum::Json;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{JsonBody, filter_model, paginated, pagination};
use crate::app::AppState;
use crate::auth::Requester;
use crate::db::{Bearer, GroupRow};
use crate::error::{ApiError, ApiResult};
use crate::names;
use crate::scopes::{Filter, NoGroups, Resource};

const GROUP_ACCESS: &[(&str, &[&str])] = &[
    ("read:groups", &["kind", "name", "properties", "users"]),
    ("read:groups:name", &["kind", "name"]),
    ("read:roles:groups", &["kind", "name", "roles"]),
];

async fn group_models(
    st: &AppState,
    req: &Requester,
    groups: &[GroupRow],
) -> ApiResult<Vec<Value>> {
    let ids: Vec<i64> = groups.iter().map(|g| g.id).collect();
    let mut members = st.db.members_of_groups(&ids).await?;
    let mut roles = st.db.roles_of(Bearer::Group, &ids).await?;
    let mut out = Vec::new();
    for g in groups {
        let mut allowed = BTreeSet::new();
        for (scope, keys) in GROUP_ACCESS {
            if let Some(f) = req.parsed.get(*scope) {
                if crate::scopes::covers(f, Resource::Group(&g.name), &NoGroups) {
                    allowed.extend(keys.iter().copied());
                }
            }
        }
        let properties: Value = serde_json::from_str(&g.properties).unwrap_or_else(|_| json!({}));
        let mut model = Map::new();
        model.insert("kind".into(), json!("group"));
        model.insert("name".into(), json!(g.name));
        model.insert(
            "roles".into(),
            json!(roles.remove(&g.id).unwrap_or_default()),
        );
        model.insert(
            "users".into(),
            json!(members.remove(&g.id).unwrap_or_default()),
        );
        model.insert("properties".into(), properties);
        out.push(Value::Object(filter_model(model, &allowed)));
    }
    Ok(out)
}

async fn group_model(st: &AppState, req: &Requester, g: &GroupRow) -> ApiResult<Value> {
    Ok(group_models(st, req, std::slice::from_ref(g))
        .await?
        .remove(0))
}

async fn find_group(st: &AppState, name: &str) -> ApiResult<GroupRow> {
    st.db
        .find_group(name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("No such group: {name}")))
}

fn check_group_name(name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.chars().count() <= 255
        && !name.chars().any(|c| c.is_control() || c == '/');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "Invalid group name {:?}: 1-255 characters, no '/' or control characters",
            name.chars().take(40).collect::<String>()
        )))
    }
}

fn check_group_model(model: &Map<String, Value>) -> ApiResult<()> {
    super::check_model("group", model, |key, value| match key {
        "name" => Some(value.is_string()),
        "users" | "roles" => Some(value.is_array()),
        _ => None,
    })
}

/// Row ids of existing users, by (normalized) name; 400 for any unknown.
async fn users_by_name(st: &AppState, raw: &[String]) -> ApiResult<Vec<i64>> {
    let mut ids = Vec::new();
    for r in raw {
        let name = names::normalize(r);
        let user = st
            .db
            .find_user(&name)
            .await?
            .ok_or_else(|| ApiError::bad_request(format!("No such user: {name}")))?;
        ids.push(user.id);
    }
    Ok(ids)
}

fn members_field(model: &Map<String, Value>) -> ApiResult<Vec<String>> {
    match model.get("users") {
        None => Ok(Vec::new()),
        Some(v) => super::string_list(v, "users"),
    }
}

/// `GET /groups`.
pub async fn list(
    State(st): State<AppState>,
    req: Requester,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let filter = req.need_some("list:groups")?.clone();
    let only: Option<Vec<String>> = match &filter {
        Filter::All => None,
        Filter::Some(map) => {
            if map.keys().any(|k| k != "group") {
                return Err(ApiError::Status {
                    status: StatusCode::FORBIDDEN,
                    message: None,
                });
            }
            Some(
                map.get("group")
                    .map(|s| s.iter().cloned().collect())
                    .unwrap_or_default(),
            )
        }
    };
    let (offset, limit) = pagination(&st, &query, &headers)?;
    let (rows, total) = st.db.list_groups(offset, limit, only.as_deref()).await?;
    let items = group_models(&st, &req, &rows).await?;
    if super::accepts_pagination(&headers) {
        Ok(Json(paginated(
            json!(items),
            offset,
            limit,
            total,
            &headers,
            uri.path(),
            &query,
        )))
    } else {
        Ok(Json(json!(items)))
    }
}

/// `POST /groups`: create several groups.
pub async fn create_many(
    State(st): State<AppState>,
    req: Requester,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    req.need(&st, &["admin:groups"], None).await?;
    let mut model = super::object(body, "Must specify at least one group to create")?;
    let names = match model.remove("groups") {
        Some(v) if v.as_array().is_some_and(|a| !a.is_empty()) => super::string_list(&v, "groups")?,
        _ => {
            return Err(ApiError::bad_request(
                "Must specify at least one group to create",
            ));
        }
    };
    check_group_model(&model)?;
    for n in &names {
        check_group_name(n)?;
        if st.db.find_group(n).await?.is_some() {
            return Err(ApiError::conflict(format!("Group {n} already exists")));
        }
    }
    let members = users_by_name(&st, &members_field(&model)?).await?;
    let unique: Vec<String> = names
        .iter()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let created = st.db.create_groups(&unique, &members).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!(group_models(&st, &req, &created).await?)),
    )
        .into_response())
}

/// `GET /groups/{name}`.
pub async fn get_one(
    State(st): State<AppState>,
    req: Requester,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    req.need(
        &st,
        &["read:groups", "read:groups:name", "read:roles:groups"],
        Some(Resource::Group(&name)),
    )
    .await?;
    let g = find_group(&st, &name).await?;
    Ok(Json(group_model(&st, &req, &g).await?))
}

/// `POST /groups/{name}`: create one group.
pub async fn create_one(
    State(st): State<AppState>,
    req: Requester,
    Path(name): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    req.need(&st, &["admin:groups"], Some(Resource::Group(&name)))
        .await?;
    check_group_name(&name)?;
    let model = match body {
        None => Map::new(),
        Some(v) => super::object(Some(v), "Invalid JSON data")?,
    };
    check_group_model(&model)?;
    if st.db.find_group(&name).await?.is_some() {
        return Err(ApiError::conflict(format!("Group {name} already exists")));
    }
    let members = users_by_name(&st, &members_field(&model)?).await?;
    let created = st
        .db
        .create_groups(std::slice::from_ref(&name), &members)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(group_model(&st, &req, &created[0]).await?),
    )
        .into_response())
}

/// `DELETE /groups/{name}`.
pub async fn delete(
    State(st): State<AppState>,
    req: Requester,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    req.need(&st, &["delete:groups"], Some(Resource::Group(&name)))
        .await?;
    let g = find_group(&st, &name).await?;
    st.db.delete_group(g.id).await?;
    tracing::info!(by = %req.principal.name(), group.name = %name, "deleted group");
    Ok(StatusCode::NO_CONTENT)
}

async fn change_members(
    st: AppState,
    req: Requester,
    name: String,
    body: Option<Value>,
    add: bool,
) -> ApiResult<Json<Value>> {
    req.need(&st, &["groups"], Some(Resource::Group(&name)))
        .await?;
    let g = find_group(&st, &name).await?;
    let model = super::object(body, "Invalid JSON data")?;
    check_group_model(&model)?;
    if !model.contains_key("users") {
        let verb = if add { "add" } else { "delete" };
        return Err(ApiError::bad_request(format!(
            "Must specify users to {verb}"
        )));
    }
    let ids = users_by_name(&st, &members_field(&model)?).await?;
    st.db.change_members(g.id, &ids, add).await?;
    Ok(Json(group_model(&st, &req, &g).await?))
}

/// `POST /groups/{name}/users`: add members.
pub async fn add_users(
    State(st): State<AppState>,
    req: Requester,
    Path(name): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    change_members(st, req, name, body, true).await
}

/// `DELETE /groups/{name}/users`: remove members.
pub async fn remove_users(
    State(st): State<AppState>,
    req: Requester,
    Path(name): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    change_members(st, req, name, body, false).await
}

/// `PUT /groups/{name}/properties`: replace the properties.
pub async fn set_properties(
    State(st): State<AppState>,
    req: Requester,
    Path(name): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    req.need(&st, &["groups"], Some(Resource::Group(&name)))
        .await?;
    let g = find_group(&st, &name).await?;
    let Some(Value::Object(props)) = body else {
        return Err(ApiError::bad_request("Must specify properties"));
    };
    st.db
        .set_group_properties(g.id, &Value::Object(props).to_string())
        .await?;
    let g = find_group(&st, &name).await?;
    Ok(Json(group_model(&st, &req, &g).await?))
}
