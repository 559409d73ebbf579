//! `/users`, `/users/{name}` and `/user` (who am I).

use std::collections::{BTreeSet, HashMap};

use axum::Json;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{JsonBody, filter_model, object, paginated, pagination};
use crate::app::AppState;
use crate::auth::{Principal, Requester};
use crate::db::{UserQuery, UserRow, UserSort};
use crate::error::{ApiError, ApiResult};
use crate::names;
use crate::scopes::{Filter, Resource};

/// Which scopes grant which keys of a user model.
const USER_ACCESS: &[(&str, &[&str])] = &[
    (
        "read:users",
        &[
            "kind",
            "name",
            "user_info",
            "admin",
            "roles",
            "groups",
            "server",
            "pending",
            "created",
            "last_activity",
        ],
    ),
    ("read:users:name", &["kind", "name", "user_info", "admin"]),
    ("read:users:groups", &["kind", "name", "groups"]),
    ("read:users:activity", &["kind", "name", "last_activity"]),
    ("read:servers", &["kind", "name", "servers"]),
    ("read:roles:users", &["kind", "name", "roles", "admin"]),
    ("admin:auth_state", &["kind", "name", "auth_state"]),
];

/// The models of `users` as `req` may see them (fields it has no scope
/// for are left out; users it may see nothing of give `None`).
pub async fn user_models(
    st: &AppState,
    req: &Requester,
    users: &[UserRow],
) -> ApiResult<Vec<Option<Value>>> {
    let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
    let mut groups = st.db.groups_of_users(&ids).await?;
    let mut roles = st.db.roles_of(crate::db::Bearer::User, &ids).await?;
    let mut out = Vec::with_capacity(users.len());
    for u in users {
        let user_groups = groups.remove(&u.id).unwrap_or_default();
        let user_roles = roles.remove(&u.id).unwrap_or_default();
        let membership: std::collections::BTreeMap<String, BTreeSet<String>> =
            [(u.name.clone(), user_groups.iter().cloned().collect())].into();
        let mut allowed = BTreeSet::new();
        for (scope, keys) in USER_ACCESS {
            if let Some(filter) = req.parsed.get(*scope) {
                if crate::scopes::covers(filter, Resource::User(&u.name), &membership) {
                    allowed.extend(keys.iter().copied());
                }
            }
        }
        if allowed.is_empty() {
            out.push(None);
            continue;
        }
        let mut model = Map::new();
        model.insert("kind".into(), json!("user"));
        model.insert("name".into(), json!(u.name));
        model.insert("admin".into(), json!(u.admin));
        model.insert("roles".into(), json!(user_roles));
        model.insert("groups".into(), json!(user_groups));
        model.insert("server".into(), Value::Null);
        model.insert("pending".into(), Value::Null);
        model.insert("created".into(), json!(u.created));
        model.insert("last_activity".into(), json!(u.last_activity));
        model.insert("auth_state".into(), Value::Null);
        model.insert("user_info".into(), Value::Null);
        // no servers run yet in this version: the map is empty when it
        // may be read at all
        model.insert("servers".into(), json!({}));
        out.push(Some(Value::Object(filter_model(model, &allowed))));
    }
    Ok(out)
}

/// One user's model.
pub async fn user_model(st: &AppState, req: &Requester, user: &UserRow) -> ApiResult<Value> {
    let models = user_models(st, req, std::slice::from_ref(user)).await?;
    Ok(models
        .into_iter()
        .next()
        .flatten()
        .unwrap_or_else(|| json!({})))
}

/// A service's model as the database knows it (`/user` for a service
/// token, the deprecated token lookup).
pub fn service_identity_model(st: &AppState, req: &Requester, name: &str, admin: bool) -> Value {
    let url = st
        .config
        .services
        .iter()
        .find(|s| s.name == name)
        .and_then(|s| s.url.clone());
    let model = json!({
        "kind": "service", "name": name, "admin": admin, "url": url, "pid": 0,
        "info": null, "command": [], "prefix": "", "display": null,
    });
    super::services::filter_service(req, name, model)
}

/// `GET /user`: the token owner's model, with the token's id, session and
/// scopes.
pub async fn whoami(State(st): State<AppState>, mut req: Requester) -> ApiResult<Json<Value>> {
    let owner = crate::auth::tokens::owner_of(&req.token);
    let identify = crate::scopes::identify_scopes(owner);
    let added: BTreeSet<String> = identify.difference(&req.expanded).cloned().collect();
    let scopes: Vec<String> = req.expanded.iter().cloned().collect();
    req.add_scopes(&added);
    let mut model = match &req.principal {
        Principal::User { name, .. } => {
            let user = st
                .db
                .find_user(name)
                .await?
                .ok_or_else(|| ApiError::forbidden(crate::auth::MISSING_CREDENTIALS))?;
            user_model(&st, &req, &user).await?
        }
        Principal::Service { name, admin, .. } => service_identity_model(&st, &req, name, *admin),
    };
    if let Value::Object(m) = &mut model {
        m.insert("token_id".into(), json!(format!("a{}", req.token.id)));
        m.insert("session_id".into(), json!(req.token.session_id));
        m.insert("scopes".into(), json!(scopes));
    }
    Ok(Json(model))
}

/// `GET /users`.
pub async fn list(
    State(st): State<AppState>,
    req: Requester,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let filter = req.need_some("list:users")?.clone();
    let mut q = UserQuery::default();
    let sort_param = query.get("sort").map(String::as_str).unwrap_or("id");
    let (descending, sort) = match sort_param.strip_prefix('-') {
        Some(s) => (true, s),
        None => (false, sort_param),
    };
    q.descending = descending;
    q.sort = match sort {
        "id" => UserSort::Id,
        "name" => UserSort::Name,
        "last_activity" => UserSort::LastActivity,
        _ => {
            return Err(ApiError::bad_request(format!(
                "sort must be 'id', 'name', or 'last_activity', not '{sort_param}'"
            )));
        }
    };
    (q.offset, q.limit) = pagination(&st, &query, &headers)?;
    match query.get("state").map(String::as_str) {
        None | Some("") => {}
        Some("active" | "ready") => q.active = Some(true),
        Some("inactive") => q.active = Some(false),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Unrecognized state filter: '{other}'"
            )));
        }
    }
    if let Some(f) = query.get("name_filter").filter(|f| !f.is_empty()) {
        q.name_filter = Some(f.clone());
    }
    if let Filter::Some(map) = &filter {
        if map.keys().any(|k| k != "user" && k != "group") {
            return Err(ApiError::Status {
                status: StatusCode::FORBIDDEN,
                message: None,
            });
        }
        let set = |k: &str| {
            map.get(k)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default()
        };
        q.only = Some((set("user"), set("group")));
    }
    let (rows, total) = st.db.list_users(&q).await?;
    let items: Vec<Value> = user_models(&st, &req, &rows)
        .await?
        .into_iter()
        .flatten()
        .collect();
    if super::accepts_pagination(&headers) {
        Ok(Json(paginated(
            json!(items),
            q.offset,
            q.limit,
            total,
            &headers,
            uri.path(),
            &query,
        )))
    } else {
        Ok(Json(json!(items)))
    }
}

fn check_user_model(model: &Map<String, Value>) -> ApiResult<()> {
    for (key, value) in model {
        let ok = match key.as_str() {
            "name" => value.is_string(),
            "admin" => value.is_boolean(),
            "groups" | "roles" => value.is_array(),
            "auth_state" => value.is_object(),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "Invalid JSON keys: {}",
                    Value::Object(model.clone())
                )));
            }
        };
        if !ok {
            return Err(ApiError::bad_request(format!(
                "user.{key} has the wrong type"
            )));
        }
    }
    Ok(())
}

/// Normalizes and validates every name; 400 naming the rule if any fails.
fn validated(raw: &[String]) -> ApiResult<Vec<String>> {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for name in raw {
        match names::username(name) {
            Ok(n) => good.push(n),
            Err(e) => bad.push(e),
        }
    }
    match bad.len() {
        0 => Ok(good),
        1 => Err(ApiError::bad_request(bad[0].to_string())),
        _ => Err(ApiError::bad_request(format!(
            "Invalid usernames: {}",
            bad.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        ))),
    }
}

/// `POST /users`: create several users.
pub async fn create_many(
    State(st): State<AppState>,
    req: Requester,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    req.need(&st, &["admin:users"], None).await?;
    let mut model = object(body, "Must specify at least one user to create")?;
    let usernames = match model.remove("usernames") {
        Some(v) if v.as_array().is_some_and(|a| !a.is_empty()) => {
            super::string_list(&v, "usernames")?
        }
        _ => {
            return Err(ApiError::bad_request(
                "Must specify at least one user to create",
            ));
        }
    };
    check_user_model(&model)?;
    let admin = model.get("admin").and_then(Value::as_bool).unwrap_or(false);
    if admin && !req.principal.is_admin() {
        return Err(ApiError::forbidden(
            "Only admins can grant admin permissions",
        ));
    }
    let names = validated(&usernames)?;
    let mut to_create: Vec<String> = Vec::new();
    for name in names {
        if st.db.find_user(&name).await?.is_some() {
            tracing::warn!(user.name = %name, "user already exists");
        } else if !to_create.contains(&name) {
            to_create.push(name);
        }
    }
    if to_create.is_empty() {
        return Err(ApiError::conflict(format!(
            "All {} users already exist",
            usernames.len()
        )));
    }
    let created = st.db.create_users(&to_create, admin).await?;
    let models: Vec<Value> = user_models(&st, &req, &created)
        .await?
        .into_iter()
        .flatten()
        .collect();
    Ok((StatusCode::CREATED, Json(json!(models))).into_response())
}

const READ_USER: &[&str] = &[
    "read:users",
    "read:users:name",
    "read:servers",
    "read:users:groups",
    "read:users:activity",
    "read:roles:users",
];

/// `GET /users/{name}`.
pub async fn get_one(
    State(st): State<AppState>,
    req: Requester,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    req.need(&st, READ_USER, Some(Resource::User(&name)))
        .await?;
    let user = st
        .db
        .find_user(&name)
        .await?
        .ok_or_else(ApiError::not_found_plain)?;
    Ok(Json(user_model(&st, &req, &user).await?))
}

/// `POST /users/{name}`: create one user.
pub async fn create_one(
    State(st): State<AppState>,
    req: Requester,
    Path(raw): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    req.need(&st, &["admin:users"], Some(Resource::User(&raw)))
        .await?;
    let name = names::username(&raw).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if st.db.find_user(&name).await?.is_some() {
        return Err(ApiError::conflict(format!("User {name} already exists")));
    }
    let model = match body {
        None => Map::new(),
        Some(v) => object(Some(v.clone()), &format!("Invalid JSON data: {v}"))?,
    };
    check_user_model(&model)?;
    let admin = model.get("admin").and_then(Value::as_bool).unwrap_or(false);
    if admin && !req.principal.is_admin() {
        return Err(ApiError::forbidden(
            "Only admins can grant admin permissions",
        ));
    }
    let created = st.db.create_users(&[name], admin).await?;
    let model = user_model(&st, &req, &created[0]).await?;
    Ok((StatusCode::CREATED, Json(model)).into_response())
}

/// `PATCH /users/{name}`: rename, or change the admin flag.
pub async fn patch(
    State(st): State<AppState>,
    req: Requester,
    Path(name): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    req.need(&st, &["admin:users"], Some(Resource::User(&name)))
        .await?;
    let user = st
        .db
        .find_user(&name)
        .await?
        .ok_or_else(ApiError::not_found_plain)?;
    let model = object(body, "Invalid JSON data")?;
    check_user_model(&model)?;
    if model.contains_key("groups")
        || model.contains_key("roles")
        || model.contains_key("auth_state")
    {
        return Err(ApiError::bad_request(
            "only name and admin can be changed through this API in this version",
        ));
    }
    let mut new_name = None;
    if let Some(requested) = model.get("name").and_then(Value::as_str) {
        if requested != name {
            let normalized =
                names::username(requested).map_err(|e| ApiError::bad_request(e.to_string()))?;
            if st.db.find_user(&normalized).await?.is_some() {
                return Err(ApiError::bad_request(format!(
                    "User {normalized} already exists, username must be unique"
                )));
            }
            new_name = Some(normalized);
        }
    }
    let admin = model.get("admin").and_then(Value::as_bool);
    if !req.principal.is_admin() {
        if user.admin {
            return Err(ApiError::forbidden("Only admins can modify other admins"));
        }
        if admin == Some(true) {
            return Err(ApiError::forbidden(
                "Only admins can grant admin permissions",
            ));
        }
    }
    tracing::info!(by = %req.principal.name(), user.name = %name, rename = ?new_name, admin = ?admin, "updating user");
    let updated = st
        .db
        .update_user(user.id, new_name.as_deref(), admin)
        .await?;
    Ok(Json(user_model(&st, &req, &updated).await?))
}

/// `DELETE /users/{name}`.
pub async fn delete(
    State(st): State<AppState>,
    req: Requester,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    req.need(&st, &["delete:users"], Some(Resource::User(&name)))
        .await?;
    let user = st
        .db
        .find_user(&name)
        .await?
        .ok_or_else(ApiError::not_found_plain)?;
    if matches!(&req.principal, Principal::User { name: me, .. } if *me == user.name) {
        return Err(ApiError::bad_request("Cannot delete yourself!"));
    }
    st.db.delete_user(user.id).await?;
    tracing::info!(by = %req.principal.name(), user.name = %name, "deleted user");
    Ok(StatusCode::NO_CONTENT)
}
