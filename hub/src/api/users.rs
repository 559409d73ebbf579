//! `/users`, `/users/{name}` and `/user` (who am I).

use std::collections::{BTreeSet, HashMap};

use axum::Json;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value, json};

use super::{JsonBody, object, paginated, pagination};
use crate::app::AppState;
use crate::auth::{Principal, Requester};
use crate::db::{UserDetail, UserQuery, UserRow, UserSort};
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
    let details = st.db.user_details(users.to_vec()).await?;
    let views = server_views(st, req, &details);
    Ok(models_of(req, &details, &views)
        .into_iter()
        .map(|m| m.map(|m| m.to_value()))
        .collect())
}

/// The keys of a user model, in the order serde_json's maps keep them, so
/// that a model serialized directly reads as its [`Value`] does.
const USER_KEYS: [&str; 12] = [
    "admin",
    "auth_state",
    "created",
    "groups",
    "kind",
    "last_activity",
    "name",
    "pending",
    "roles",
    "server",
    "servers",
    "user_info",
];

/// The keys of `keys` as a set of bits over [`USER_KEYS`].
fn key_bits(keys: &[&str]) -> u16 {
    keys.iter()
        .filter_map(|k| USER_KEYS.iter().position(|u| u == k))
        .fold(0, |bits, i| bits | (1 << i))
}

/// A user's model: the keys in `keys` (bits over [`USER_KEYS`]).
/// Serializes straight to JSON, without building a [`Value`] first.
struct UserModel<'a> {
    user: &'a UserDetail,
    keys: u16,
    servers: &'a ServersView,
}

/// What a user model shows of the user's servers.
#[derive(Debug, Default)]
pub struct ServersView {
    /// `servers`: each server's model, by name.
    models: Map<String, Value>,
    /// `server`: the default server's URL when it is ready.
    server: Option<String>,
    /// `pending`: the default server's pending operation.
    pending: Option<String>,
}

/// The servers' part of each user's model.
fn server_views(st: &AppState, req: &Requester, users: &[UserDetail]) -> Vec<ServersView> {
    let with_state = req.parsed.contains_key("admin:server_state");
    users
        .iter()
        .map(|d| {
            let mut view = ServersView::default();
            for s in &d.servers {
                let model = crate::spawner::server_model(st, &d.user.name, s, with_state);
                if s.name.is_empty() {
                    view.pending = model["pending"].as_str().map(str::to_owned);
                    if model["ready"] == Value::Bool(true) {
                        view.server = model["url"].as_str().map(str::to_owned);
                    }
                }
                // JupyterHub lists servers that run or are under way
                if model["stopped"] == Value::Bool(false) {
                    view.models.insert(s.name.clone(), model);
                }
            }
            view
        })
        .collect()
}

impl UserModel<'_> {
    fn to_value(&self) -> Value {
        // a map of strings, lists and nulls always converts
        serde_json::to_value(self).unwrap_or_default()
    }
}

impl Serialize for UserModel<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (d, u) = (self.user, &self.user.user);
        let mut map = serializer.serialize_map(Some(self.keys.count_ones() as usize))?;
        for (i, key) in USER_KEYS.iter().enumerate() {
            if self.keys & (1 << i) == 0 {
                continue;
            }
            match *key {
                "admin" => map.serialize_entry(key, &u.admin)?,
                "created" => map.serialize_entry(key, &u.created)?,
                "groups" => map.serialize_entry(key, &d.groups)?,
                "kind" => map.serialize_entry(key, "user")?,
                "last_activity" => map.serialize_entry(key, &u.last_activity)?,
                "name" => map.serialize_entry(key, &u.name)?,
                "roles" => map.serialize_entry(key, &d.roles)?,
                "servers" => map.serialize_entry(key, &self.servers.models)?,
                "server" => map.serialize_entry(key, &self.servers.server)?,
                "pending" => map.serialize_entry(key, &self.servers.pending)?,
                // auth_state, user_info
                _ => map.serialize_entry(key, &())?,
            }
        }
        map.end()
    }
}

/// The models of users whose roles and groups are known.
fn models_of<'a>(
    req: &Requester,
    users: &'a [UserDetail],
    views: &'a [ServersView],
) -> Vec<Option<UserModel<'a>>> {
    // Keys that unfiltered scopes grant are the same for every user; only
    // filtered scopes are checked user by user.
    let mut always = 0;
    let mut filtered = Vec::new();
    for (scope, keys) in USER_ACCESS {
        match req.parsed.get(*scope) {
            Some(Filter::All) => always |= key_bits(keys),
            Some(filter) => filtered.push((filter, key_bits(keys))),
            None => {}
        }
    }
    let mut out = Vec::with_capacity(users.len());
    for (d, servers) in users.iter().zip(views) {
        let mut keys = always;
        if !filtered.is_empty() {
            let membership: std::collections::BTreeMap<String, BTreeSet<String>> =
                [(d.user.name.clone(), d.groups.iter().cloned().collect())].into();
            for (filter, bits) in &filtered {
                if crate::scopes::covers(filter, Resource::User(&d.user.name), &membership) {
                    keys |= bits;
                }
            }
        }
        out.push((keys != 0).then_some(UserModel {
            user: d,
            keys,
            servers,
        }));
    }
    out
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

/// A service's model for identification (`/user` for a service token,
/// the deprecated token lookup).
pub async fn service_identity_model(
    st: &AppState,
    req: &Requester,
    name: &str,
    admin: bool,
) -> ApiResult<Value> {
    super::services::identity_model(st, req, name, admin).await
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
        Principal::Service { name, admin, .. } => {
            service_identity_model(&st, &req, name, *admin).await?
        }
    };
    if let Value::Object(m) = &mut model {
        if req.via == crate::auth::Via::Token {
            m.insert("token_id".into(), json!(format!("a{}", req.token.id)));
        }
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
) -> ApiResult<Response> {
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
        Some("active") => q.active = Some(true),
        Some("ready") => {
            q.active = Some(true);
            q.ready_only = true;
        }
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
    let users = st.db.list_users(&q).await?;
    let views = server_views(&st, &req, &users);
    let items: Vec<UserModel<'_>> = models_of(&req, &users, &views)
        .into_iter()
        .flatten()
        .collect();
    if super::accepts_pagination(&headers) {
        let items = Value::Array(items.iter().map(UserModel::to_value).collect());
        // a page short of its limit ends the list: no need to count
        let listed = users.len() as i64;
        let total = if listed < q.limit && (listed > 0 || q.offset == 0) {
            q.offset + listed
        } else {
            st.db.count_listed_users(&q).await?
        };
        Ok(Json(paginated(
            items,
            q.offset,
            q.limit,
            total,
            &headers,
            uri.path(),
            &query,
        ))
        .into_response())
    } else {
        Ok(Json(items).into_response())
    }
}

fn check_user_model(model: &Map<String, Value>) -> ApiResult<()> {
    super::check_model("user", model, |key, value| match key {
        "name" => Some(value.is_string()),
        "admin" => Some(value.is_boolean()),
        "groups" | "roles" => Some(value.is_array()),
        "auth_state" => Some(value.is_object()),
        _ => None,
    })
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
    let existing = st.db.existing_users(&names).await?;
    let mut seen = std::collections::HashSet::new();
    let mut to_create: Vec<String> = Vec::new();
    for name in names {
        if existing.contains(&name) {
            tracing::warn!(user.name = %name, "user already exists");
        } else if seen.insert(name.clone()) {
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
            // a running server's URL, route and OAuth client carry the name
            let active = st
                .db
                .servers_of_user(user.id)
                .await?
                .iter()
                .any(|s| crate::spawner::is_running(s) || s.pending.is_some());
            if active {
                return Err(ApiError::bad_request(format!(
                    "{name} has a running server; stop it before renaming the user"
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
    // Servers first (as JupyterHub does): a deleted user must leave no
    // process, route or token behind.
    for s in st.db.servers_of_user(user.id).await? {
        let active = crate::spawner::is_running(&s) || s.pending.is_some();
        if active
            && crate::spawner::stop(&st, &user, &s.name).await?
                == crate::spawner::StopOutcome::Pending
        {
            return Err(ApiError::bad_request(format!(
                "{name}'s server is in the process of stopping, please wait."
            )));
        }
    }
    st.db.delete_user(user.id).await?;
    tracing::info!(by = %req.principal.name(), user.name = %name, "deleted user");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_keys_are_sorted_and_cover_every_scope() {
        // sorted: a model written directly has the key order of its Value
        assert!(USER_KEYS.windows(2).all(|w| w[0] < w[1]));
        for (scope, keys) in USER_ACCESS {
            for key in *keys {
                assert!(USER_KEYS.contains(key), "{scope} grants unknown key {key}");
            }
        }
    }

    #[test]
    fn a_model_serializes_as_its_value() {
        let user = UserDetail {
            user: UserRow {
                id: 7,
                name: "jhtest-a".into(),
                admin: true,
                created: "2026-01-02T03:04:05.000006Z".into(),
                last_activity: None,
            },
            roles: vec!["user".into(), "admin".into()],
            groups: vec!["g, with a comma".into()],
            servers: Vec::new(),
        };
        let none = ServersView::default();
        let all = UserModel {
            user: &user,
            keys: key_bits(&USER_KEYS),
            servers: &none,
        };
        assert_eq!(
            all.to_value(),
            json!({
                "admin": true, "auth_state": null, "created": "2026-01-02T03:04:05.000006Z",
                "groups": ["g, with a comma"], "kind": "user", "last_activity": null,
                "name": "jhtest-a", "pending": null, "roles": ["user", "admin"],
                "server": null, "servers": {}, "user_info": null,
            })
        );
        for (_, keys) in USER_ACCESS {
            let model = UserModel {
                user: &user,
                keys: key_bits(keys),
                servers: &none,
            };
            let direct = serde_json::to_string(&model).unwrap();
            assert_eq!(direct, model.to_value().to_string());
            let shown: Vec<String> = model
                .to_value()
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            let mut wanted: Vec<&str> = keys.to_vec();
            wanted.sort_unstable();
            wanted.dedup();
            assert_eq!(shown, wanted);
        }
    }
}
