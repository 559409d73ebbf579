//! `/` (the API version), `/info` and `/shutdown`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::JsonBody;
use crate::app::AppState;
use crate::auth::Requester;
use crate::error::{ApiError, ApiResult};

/// The JupyterHub REST API version this hub speaks.
pub const API_VERSION: &str = "6.1.1";

/// What `/info` answers for `python`: this hub runs no Python.
pub const NO_PYTHON: &str = concat!(
    "none: jhub ",
    env!("CARGO_PKG_VERSION"),
    " is not a Python program"
);

/// `GET /hub/api/`: the version; no authentication, any origin.
pub async fn root() -> Response {
    (
        [(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")],
        Json(json!({"version": API_VERSION})),
    )
        .into_response()
}

/// `GET /hub/api/info`.
pub async fn info(State(st): State<AppState>, req: Requester) -> ApiResult<Json<Value>> {
    req.need(&st, &["read:hub"], None).await?;
    let authenticator = match st.config.hub.authenticator_class {
        crate::config::AuthenticatorClass::Pam => "jhub.auth.PAMAuthenticator",
        crate::config::AuthenticatorClass::Native => "jhub.auth.NativeAuthenticator",
        crate::config::AuthenticatorClass::Dummy => "jhub.auth.DummyAuthenticator",
    };
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    Ok(Json(json!({
        "version": API_VERSION,
        "jhub_version": env!("CARGO_PKG_VERSION"),
        // JupyterHub sends `sys.version` here and the spec says a string;
        // this hub has no Python, so it says so in one (never null, which
        // clients reading it as a string would trip on).
        "python": NO_PYTHON,
        "sys_executable": exe,
        "spawner": {"class": "jhub.spawner.SudoSpawner", "version": env!("CARGO_PKG_VERSION")},
        "authenticator": {"class": authenticator, "version": env!("CARGO_PKG_VERSION")},
    })))
}

/// `POST /hub/api/shutdown`: answers 202, then the hub stops. By default
/// the users' servers and the proxy keep running (the next hub adopts
/// them); `{"servers": true}` stops every server first, `{"proxy": true}`
/// also stops the proxy the hub started.
pub async fn shutdown(
    State(st): State<AppState>,
    req: Requester,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    req.need(&st, &["shutdown"], None).await?;
    if let Some(Value::Object(m)) = &body {
        for key in ["proxy", "servers"] {
            if let Some(v) = m.get(key) {
                if !v.is_boolean() {
                    return Err(ApiError::bad_request(format!(
                        "{key} must be true or false, got {v}"
                    )));
                }
            }
        }
    }
    tracing::info!(by = %req.principal.name(), "shutdown requested through the API");
    let flag = |key: &str| {
        body.as_ref()
            .and_then(|b| b.get(key))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    let (servers, proxy) = (flag("servers"), flag("proxy"));
    let st2 = st.clone();
    tokio::spawn(async move {
        if servers {
            crate::spawner::stop_all(&st2).await;
        }
        if proxy {
            if let Some(p) = &st2.proxy_process {
                p.stop().await;
            }
        }
        st2.request_shutdown();
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"message": "Shutting down Hub"})),
    )
        .into_response())
}
