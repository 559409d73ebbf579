//! `/users/{name}/server`, `/users/{name}/servers/{server}`: starting,
//! stopping and reading users' servers; their start progress as
//! server-sent events; and `/users/{name}/activity`, where servers report
//! that they are in use.

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::JsonBody;
use crate::app::AppState;
use crate::auth::Requester;
use crate::db::UserRow;
use crate::error::{ApiError, ApiResult};
use crate::scopes::Resource;
use crate::spawner::{self, Phase, ServerError, StartOutcome, StopOutcome};

/// How often an idle progress stream sends a blank line, so that
/// intermediaries keep it open (as JupyterHub does).
const KEEPALIVE: Duration = Duration::from_secs(8);

fn plain(status: StatusCode) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain")], "").into_response()
}

impl From<ServerError> for ApiError {
    fn from(e: ServerError) -> Self {
        match e {
            ServerError::Conflict(m) => ApiError::bad_request(m),
            ServerError::Limit(m) => ApiError::new(StatusCode::TOO_MANY_REQUESTS, m),
            ServerError::Failed(m) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, m),
            ServerError::Db(e) => ApiError::Db(e),
        }
    }
}

async fn find_user(st: &AppState, name: &str) -> ApiResult<UserRow> {
    st.db
        .find_user(name)
        .await?
        .ok_or_else(ApiError::not_found_plain)
}

/// Checks a server name from a path, and that named servers are on.
fn check_named(st: &AppState, server: &str) -> ApiResult<()> {
    if server.is_empty() {
        return Ok(());
    }
    if !st.config.hub.allow_named_servers {
        return Err(ApiError::bad_request("Named servers are not enabled."));
    }
    if !spawner::valid_server_name(server) {
        return Err(ApiError::bad_request(format!(
            "Invalid server name: server names are 1-{} of letters, digits, '_', '-' or '.', \
             not starting with '.' or '-'",
            spawner::MAX_SERVER_NAME
        )));
    }
    Ok(())
}

/// The body of a start: `user_options` and `display_name`, or (as older
/// clients send it) the options themselves.
fn start_body(body: Option<Value>) -> ApiResult<(Option<String>, Option<Value>)> {
    let Some(body) = body else {
        return Ok((None, None));
    };
    let Value::Object(mut m) = body else {
        return Err(ApiError::bad_request("Body must be a JSON object"));
    };
    if let Some(d) = m.get("display_name") {
        if !d.is_string() && !d.is_null() {
            return Err(ApiError::bad_request("display_name must be a string"));
        }
    }
    if let Some(o) = m.get("user_options") {
        if !o.is_object() && !o.is_null() {
            return Err(ApiError::bad_request(
                "user_options must be an object or null",
            ));
        }
    }
    if !m.contains_key("display_name") && !m.contains_key("user_options") {
        return Ok((None, Some(Value::Object(m))));
    }
    let display = m
        .remove("display_name")
        .and_then(|d| d.as_str().map(str::to_owned));
    Ok((display, m.remove("user_options")))
}

/// `POST /users/{name}/server`.
pub async fn start_default(
    st: State<AppState>,
    req: Requester,
    Path(name): Path<String>,
    body: JsonBody,
) -> ApiResult<Response> {
    start(st, req, name, String::new(), body).await
}

/// `POST /users/{name}/servers/{server}`.
pub async fn start_named(
    st: State<AppState>,
    req: Requester,
    Path((name, server)): Path<(String, String)>,
    body: JsonBody,
) -> ApiResult<Response> {
    start(st, req, name, server, body).await
}

async fn start(
    State(st): State<AppState>,
    req: Requester,
    name: String,
    server: String,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    req.need(
        &st,
        &["start:servers"],
        Some(Resource::Server(&name, &server)),
    )
    .await?;
    let user = find_user(&st, &name).await?;
    check_named(&st, &server)?;
    let (display, options) = start_body(body)?;
    if !server.is_empty() && st.db.find_server(user.id, &server).await?.is_none() {
        let limit = st.config.hub.named_server_limit_per_user;
        if limit > 0 && st.db.count_named_servers(user.id).await? >= i64::from(limit) {
            return Err(ApiError::bad_request(format!(
                "User {name} already has the maximum of {limit} named servers.  One must be \
                 deleted before a new server can be created"
            )));
        }
    }
    let display = display.or_else(|| (!server.is_empty()).then(|| server.clone()));
    match spawner::start(&st, &user, &server, display.as_deref(), options).await? {
        StartOutcome::Ready => Ok(plain(StatusCode::CREATED)),
        StartOutcome::Pending => Ok(plain(StatusCode::ACCEPTED)),
    }
}

/// `DELETE /users/{name}/server`.
pub async fn stop_default(
    st: State<AppState>,
    req: Requester,
    Path(name): Path<String>,
    body: JsonBody,
) -> ApiResult<Response> {
    stop(st, req, name, String::new(), body).await
}

/// `DELETE /users/{name}/servers/{server}`; with `{"remove": true}` the
/// named server is deleted once stopped.
pub async fn stop_named(
    st: State<AppState>,
    req: Requester,
    Path((name, server)): Path<(String, String)>,
    body: JsonBody,
) -> ApiResult<Response> {
    stop(st, req, name, server, body).await
}

async fn stop(
    State(st): State<AppState>,
    req: Requester,
    name: String,
    server: String,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    req.need(
        &st,
        &["delete:servers"],
        Some(Resource::Server(&name, &server)),
    )
    .await?;
    let user = find_user(&st, &name).await?;
    let remove = body
        .as_ref()
        .and_then(|b| b.get("remove"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if !server.is_empty() {
        if !st.config.hub.allow_named_servers {
            return Err(ApiError::bad_request("Named servers are not enabled."));
        }
        if st.db.find_server(user.id, &server).await?.is_none() {
            return Err(ApiError::not_found(format!(
                "{name} has no server named '{server}'"
            )));
        }
    } else if remove {
        return Err(ApiError::bad_request("Cannot delete the default server"));
    }
    let outcome = spawner::stop(&st, &user, &server).await?;
    if remove {
        let st2 = st.clone();
        let user_id = user.id;
        let server2 = server.clone();
        let delete = async move {
            // once stopped (a pending stop ends within the stop timeouts)
            for _ in 0..300 {
                match st2.db.find_server(user_id, &server2).await {
                    Ok(Some(s)) if spawner::is_stopped(&s) => {
                        if let Err(e) = st2.db.delete_server(s.id).await {
                            tracing::warn!(error = %e, "cannot delete the server");
                        }
                        return;
                    }
                    Ok(None) | Err(_) => return,
                    Ok(Some(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        };
        if outcome == StopOutcome::Stopped {
            delete.await;
        } else {
            tokio::spawn(delete);
        }
    }
    Ok(plain(match outcome {
        StopOutcome::Stopped => StatusCode::NO_CONTENT,
        StopOutcome::Pending => StatusCode::ACCEPTED,
    }))
}

/// `GET /users/{name}/server`: the default server's model.
pub async fn get_default(
    st: State<AppState>,
    req: Requester,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    get_server(st, req, name, String::new()).await
}

/// `GET /users/{name}/servers/{server}`: a server's model.
pub async fn get_named(
    st: State<AppState>,
    req: Requester,
    Path((name, server)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    get_server(st, req, name, server).await
}

async fn get_server(
    State(st): State<AppState>,
    req: Requester,
    name: String,
    server: String,
) -> ApiResult<Json<Value>> {
    req.need(
        &st,
        &["read:servers"],
        Some(Resource::Server(&name, &server)),
    )
    .await?;
    let user = find_user(&st, &name).await?;
    let row = st
        .db
        .find_server(user.id, &server)
        .await?
        .ok_or_else(ApiError::not_found_plain)?;
    let with_state = req
        .allows(&st, "admin:server_state", Resource::Server(&name, &server))
        .await?;
    Ok(Json(spawner::server_model(&st, &name, &row, with_state)))
}

/// `GET /users/{name}/server/progress`.
pub async fn progress_default(
    st: State<AppState>,
    req: Requester,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    progress(st, req, name, String::new()).await
}

/// `GET /users/{name}/servers/{server}/progress`.
pub async fn progress_named(
    st: State<AppState>,
    req: Requester,
    Path((name, server)): Path<(String, String)>,
) -> ApiResult<Response> {
    progress(st, req, name, server).await
}

fn event_line(event: &Value) -> String {
    format!("data: {event}\n\n")
}

fn event_stream(body: Body) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn progress(
    State(st): State<AppState>,
    req: Requester,
    name: String,
    server: String,
) -> ApiResult<Response> {
    req.need(
        &st,
        &["read:servers"],
        Some(Resource::Server(&name, &server)),
    )
    .await?;
    let user = find_user(&st, &name).await?;
    let row = st
        .db
        .find_server(user.id, &server)
        .await?
        .ok_or_else(ApiError::not_found_plain)?;
    let phase = st.servers.phase(row.id);
    if phase == Phase::Idle && spawner::is_ready(&row) {
        let ready = spawner::ready_event(&name, &server);
        return Ok(event_stream(Body::from(event_line(&ready))));
    }
    let Some(rx) = st.servers.progress(row.id) else {
        return Err(ApiError::bad_request(format!(
            "{} is not starting...",
            spawner::log_name(&name, &server)
        )));
    };
    if phase != Phase::Spawning {
        let last = rx.borrow().events.last().cloned();
        return match last {
            Some(e) if e.get("failed") == Some(&Value::Bool(true)) => {
                Ok(event_stream(Body::from(event_line(&e))))
            }
            _ => Err(ApiError::bad_request(format!(
                "{} is not starting...",
                spawner::log_name(&name, &server)
            ))),
        };
    }
    // Every event so far, then each new one, until the final one.
    let stream =
        futures_util::stream::unfold((rx, 0usize, false), |(mut rx, sent, done)| async move {
            if done {
                return None;
            }
            loop {
                let (chunk, total, finished) = {
                    let p = rx.borrow_and_update();
                    let chunk: String = p.events.iter().skip(sent).map(event_line).collect();
                    (chunk, p.events.len(), p.finished)
                };
                if !chunk.is_empty() {
                    return Some((
                        Ok::<_, std::convert::Infallible>(chunk),
                        (rx, total, finished),
                    ));
                }
                if finished {
                    return None;
                }
                match tokio::time::timeout(KEEPALIVE, rx.changed()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return None,
                    Err(_) => return Some((Ok("\n\n".to_owned()), (rx, sent, false))),
                }
            }
        });
    Ok(event_stream(Body::from_stream(stream)))
}

fn parse_time(v: &Value, what: &str) -> ApiResult<String> {
    let bad = || ApiError::bad_request(format!("{what} must be an ISO8601 timestamp"));
    let text = v.as_str().ok_or_else(bad)?;
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .or_else(|_| {
            // JupyterHub also takes timestamps without a zone (as UTC)
            time::PrimitiveDateTime::parse(
                text,
                &time::format_description::well_known::Iso8601::DEFAULT,
            )
            .map(time::PrimitiveDateTime::assume_utc)
        })
        .map_err(|_| bad())?;
    Ok(crate::db::timestamp(t))
}

/// `POST /users/{name}/activity`: `{"last_activity": T, "servers":
/// {NAME: {"last_activity": T}}}`; activity only ever moves forward.
pub async fn activity(
    State(st): State<AppState>,
    req: Requester,
    Path(name): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<StatusCode> {
    req.need(&st, &["users:activity"], Some(Resource::User(&name)))
        .await?;
    let user = find_user(&st, &name).await?;
    let body = super::object(body, "body must be a JSON object")?;
    let mut updates = Vec::new();
    if let Some(servers) = body.get("servers") {
        let servers = servers
            .as_object()
            .ok_or_else(|| ApiError::bad_request("servers must be a dict"))?;
        for (server, info) in servers {
            let t = info
                .get("last_activity")
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "servers must be a dict of the form {{server_name: {{last_activity: \
                         timestamp}}}}, got {server:?}"
                    ))
                })
                .and_then(|v| parse_time(v, "last_activity"))?;
            let row = st.db.find_server(user.id, server).await?.ok_or_else(|| {
                ApiError::bad_request(format!("No such server '{server}' for user {name}"))
            })?;
            updates.push((row.id, t));
        }
    }
    let user_time = match body.get("last_activity") {
        Some(v) => Some(parse_time(v, "last_activity")?),
        None => updates.iter().map(|(_, t)| t.clone()).max(),
    };
    if user_time.is_none() && updates.is_empty() {
        return Err(ApiError::bad_request(
            "body has no last_activity and no servers",
        ));
    }
    for (id, t) in updates {
        st.db.touch_server(id, &t).await?;
    }
    if let Some(t) = user_time {
        if user
            .last_activity
            .as_deref()
            .is_none_or(|old| old < t.as_str())
        {
            st.db.touch_user(user.id, &t).await?;
        }
    }
    Ok(StatusCode::OK)
}
