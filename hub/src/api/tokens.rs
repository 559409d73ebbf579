//! `/users/{name}/tokens` and the deprecated `/authorizations/token/{token}`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::JsonBody;
use crate::app::AppState;
use crate::auth::{Principal, Requester, tokens};
use crate::db::{NewToken, TokenOwner, TokenRow};
use crate::error::{ApiError, ApiResult};
use crate::scopes::Resource;

/// A token's model (never the token itself).
pub async fn token_model(st: &AppState, t: &TokenRow) -> ApiResult<Value> {
    let scopes: Vec<String> = tokens::token_scopes(&st.db, t).await?.into_iter().collect();
    let owner_key = if t.user_id.is_some() {
        "user"
    } else {
        "service"
    };
    Ok(json!({
        owner_key: t.owner_name,
        "id": format!("a{}", t.id),
        "kind": "api_token",
        "roles": [],
        "scopes": scopes,
        "created": t.created,
        "last_activity": t.last_activity,
        "expires_at": t.expires_at,
        "note": t.note,
        "session_id": t.session_id,
        "oauth_client": t.client_description,
    }))
}

/// The longest token note, as JupyterHub's column (`Unicode(1023)`).
pub const MAX_NOTE: usize = 1023;

/// What a new token should be.
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    /// Raw scopes (`None`: the `token` role's, i.e. `inherit`).
    pub scopes: Option<Vec<String>>,
    /// Roles whose scopes the token gets instead.
    pub roles: Option<Vec<String>>,
    /// Free text.
    pub note: String,
    /// Lifetime in seconds.
    pub expires_in: Option<i64>,
}

/// Why a token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The request is not acceptable (400).
    #[error("{0}")]
    Invalid(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
}

impl From<IssueError> for ApiError {
    fn from(e: IssueError) -> Self {
        match e {
            IssueError::Invalid(m) => ApiError::bad_request(m),
            IssueError::Db(e) => ApiError::Db(e),
        }
    }
}

/// Makes and stores a token for `owner`; returns the token and its row id.
pub async fn issue(
    db: &crate::db::Db,
    owner: TokenOwner,
    owner_name: &str,
    req: &TokenRequest,
) -> Result<(String, i64), IssueError> {
    let scopes = match (&req.scopes, &req.roles) {
        (Some(_), Some(_)) => {
            return Err(IssueError::Invalid(
                "Can only assign one of scopes or roles when creating tokens.".into(),
            ));
        }
        (Some(s), None) => s.clone(),
        (None, Some(roles)) => {
            // deprecated since JupyterHub 3, still accepted: the roles'
            // scopes (built-in or from the configuration) are copied onto
            // the token at once; the token keeps no roles
            let mut out = Vec::new();
            for r in roles {
                match db.role_scopes(r).await? {
                    Some(scopes) => out.extend(scopes),
                    None => return Err(IssueError::Invalid(format!("No such role: {r}"))),
                }
            }
            out
        }
        (None, None) => vec!["inherit".to_owned()],
    };
    if let Err(m) = tokens::check_token_scopes(db, &scopes, owner, owner_name).await? {
        return Err(IssueError::Invalid(m));
    }
    let expires_at = match req.expires_in {
        None => None,
        Some(n) if n < 1 => {
            return Err(IssueError::Invalid(format!(
                "expires_in must be a positive integer or null, not {n}"
            )));
        }
        Some(n) => {
            // beyond the calendar's end (year 9999) is a client error, not
            // an overflow
            let at = time::OffsetDateTime::now_utc()
                .checked_add(time::Duration::seconds(n))
                .filter(|t| t.year() <= 9999)
                .ok_or_else(|| {
                    IssueError::Invalid(format!("expires_in is too large: {n} seconds"))
                })?;
            Some(crate::db::timestamp(at))
        }
    };
    let token = tokens::generate().map_err(|e| IssueError::Invalid(e.to_string()))?;
    let hashed = tokens::hash(&token);
    let id = db
        .insert_token(&NewToken {
            hashed: &hashed,
            prefix: tokens::prefix(&token),
            owner,
            scopes: &scopes,
            note: &req.note,
            expires_at,
        })
        .await?;
    Ok((token, id))
}

/// `GET /users/{name}/tokens`.
pub async fn list(
    State(st): State<AppState>,
    req: Requester,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    req.need(&st, &["read:tokens"], Some(Resource::User(&name)))
        .await?;
    let user = st
        .db
        .find_user(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("No such user: {name}")))?;
    let mut models = Vec::new();
    for t in st.db.user_tokens(user.id).await? {
        models.push(token_model(&st, &t).await?);
    }
    Ok(Json(json!({"api_tokens": models})))
}

/// `POST /users/{name}/tokens`.
pub async fn create(
    State(st): State<AppState>,
    req: Requester,
    Path(name): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let body = match body {
        None => serde_json::Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(ApiError::bad_request("Body must be a JSON dict or empty")),
    };
    let user = st.db.find_user(&name).await?;
    let allowed = match &user {
        Some(u) => req.allows(&st, "tokens", Resource::User(&u.name)).await?,
        None => false,
    };
    let Some(user) = user.filter(|_| allowed) else {
        return Err(ApiError::forbidden(format!(
            "{} {name} not found or no permissions to generate tokens",
            if req.principal.kind() == "user" {
                "User"
            } else {
                "Service"
            }
        )));
    };
    let mut request = TokenRequest::default();
    for key in ["roles", "scopes"] {
        match body.get(key) {
            None | Some(Value::Null) => {}
            Some(v) => {
                let list = v.as_array().and_then(|a| {
                    a.iter()
                        .map(|x| x.as_str().map(str::to_owned))
                        .collect::<Option<Vec<_>>>()
                });
                let Some(list) = list else {
                    return Err(ApiError::bad_request(format!(
                        "token {key} must be null or a list of strings, not {v}"
                    )));
                };
                if key == "roles" {
                    request.roles = Some(list);
                } else {
                    request.scopes = Some(list);
                }
            }
        }
    }
    request.expires_in = match body.get("expires_in") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_i64().ok_or_else(|| {
            ApiError::bad_request(format!("token expires_in must be null or integer, not {v}"))
        })?),
    };
    let max = st.config.hub.token_expires_in_max_seconds;
    if max > 0 {
        match request.expires_in {
            None => request.expires_in = Some(max as i64),
            Some(n) if n > 0 && n as u64 > max => {
                return Err(ApiError::bad_request(format!(
                    "token expires_in: {n} must not exceed {max}"
                )));
            }
            _ => {}
        }
    }
    let note = match body.get("note") {
        None | Some(Value::Null) => None,
        Some(Value::String(n)) if n.chars().count() > MAX_NOTE => {
            return Err(ApiError::bad_request(format!(
                "token note must be at most {MAX_NOTE} characters"
            )));
        }
        Some(Value::String(n)) => Some(n.as_str()),
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "token note must be null or a string, not {v}"
            )));
        }
    };
    request.note = match note.filter(|n| !n.is_empty()) {
        Some(n) => n.to_owned(),
        None => {
            let mut n = "Requested via api".to_owned();
            let same = matches!(&req.principal, Principal::User { id, .. } if *id == user.id);
            if !same {
                n.push_str(&format!(
                    " by {} {}",
                    req.principal.kind(),
                    req.principal.name()
                ));
            }
            n
        }
    };
    let (token, id) = issue(&st.db, TokenOwner::User(user.id), &user.name, &request).await?;
    tracing::info!(by = %req.principal.name(), user.name = %user.name, token.id = id, "issued API token");
    let row = st
        .db
        .token_by_id(id)
        .await?
        .ok_or_else(|| ApiError::Internal("token vanished after creation".into()))?;
    let mut model = token_model(&st, &row).await?;
    if let Value::Object(m) = &mut model {
        m.insert("token".into(), json!(token));
    }
    Ok((StatusCode::CREATED, Json(model)).into_response())
}

async fn find_by_api_id(
    st: &AppState,
    user_id: i64,
    user: &str,
    api_id: &str,
) -> ApiResult<TokenRow> {
    let not_found = || ApiError::not_found(format!("No such token {api_id} for user {user}"));
    let id: i64 = api_id
        .strip_prefix('a')
        .and_then(|n| n.parse().ok())
        .ok_or_else(not_found)?;
    st.db
        .token_by_id(id)
        .await?
        .filter(|t| t.user_id == Some(user_id))
        .ok_or_else(not_found)
}

/// `GET /users/{name}/tokens/{id}`.
pub async fn get_one(
    State(st): State<AppState>,
    req: Requester,
    Path((name, token_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    req.need(&st, &["read:tokens"], Some(Resource::User(&name)))
        .await?;
    let user = st
        .db
        .find_user(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("No such user: {name}")))?;
    let t = find_by_api_id(&st, user.id, &name, &token_id).await?;
    Ok(Json(token_model(&st, &t).await?))
}

/// `DELETE /users/{name}/tokens/{id}`: deletes the token (an OAuth token
/// takes every token of its client with it).
pub async fn delete(
    State(st): State<AppState>,
    req: Requester,
    Path((name, token_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    req.need(&st, &["tokens"], Some(Resource::User(&name)))
        .await?;
    let user = st
        .db
        .find_user(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("No such user: {name}")))?;
    let t = find_by_api_id(&st, user.id, &name, &token_id).await?;
    let ids = if t.client_id == "jupyterhub" {
        vec![t.id]
    } else {
        st.db.user_client_tokens(user.id, &t.client_id).await?
    };
    st.db.delete_tokens(&ids).await?;
    tracing::info!(by = %req.principal.name(), user.name = %name, token.id = %token_id, "deleted API token");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /authorizations/token/{token}` (deprecated in JupyterHub 2.0,
/// kept for old services): the model of the token's owner.
pub async fn authorization(
    State(st): State<AppState>,
    mut req: Requester,
    Path(token): Path<String>,
) -> ApiResult<Json<Value>> {
    tracing::warn!("/authorizations/token/:token is deprecated; use /hub/api/user");
    let row = tokens::find(&st.db, &token)
        .await?
        .ok_or_else(ApiError::not_found_plain)?;
    let owner = tokens::owner_of(&row);
    req.add_scopes(&crate::scopes::identify_scopes(owner));
    let now = crate::db::now();
    st.db.touch_token(row.id, &now).await?;
    match (row.user_id, row.service_id) {
        (Some(uid), _) => {
            st.db.touch_user(uid, &now).await?;
            let user = st
                .db
                .user_by_id(uid)
                .await?
                .ok_or_else(ApiError::not_found_plain)?;
            Ok(Json(super::users::user_model(&st, &req, &user).await?))
        }
        (None, Some(_)) => Ok(Json(
            super::users::service_identity_model(&st, &req, &row.owner_name, row.owner_admin)
                .await?,
        )),
        (None, None) => Err(ApiError::not_found_plain()),
    }
}

/// `POST /authorizations/token`: removed in JupyterHub 2.0; answers 404
/// with JupyterHub's pointer to the replacement.
pub async fn removed_token_request() -> ApiError {
    ApiError::not_found(
        "Deprecated endpoint /hub/api/authorizations/token is removed in JupyterHub 2.0. \
         Use /hub/api/users/:user/tokens instead.",
    )
}
