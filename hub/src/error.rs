//! The REST API's error type: a status and a message, sent as JupyterHub
//! sends API errors, `{"status": 404, "message": "..."}`. Internal errors
//! are logged here, once, and answered with a generic 500.
//!
//! Where JupyterHub 6.1.1 raises an error without text (an unknown user,
//! a bare 403, a wrong method) it sends `"message": null`; this hub sends
//! the status's reason instead (`"Not Found"`, `"Forbidden"`, `"Method
//! Not Allowed"`), so that the message is always a string a client can
//! show. Statuses are the same.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::db::DbError;

/// An API request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A client-visible failure.
    #[error("{status}: {message:?}")]
    Status {
        /// The HTTP status.
        status: StatusCode,
        /// The message for the client (the status's reason when `None`).
        message: Option<String>,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Something else failed inside the hub.
    #[error("{0}")]
    Internal(String),
}

/// The API's result type.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self::Status {
            status,
            message: Some(message.into()),
        }
    }

    /// 400 with a message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 403 with a message.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 404 with a message.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 404 with the status's reason as message.
    pub fn not_found_plain() -> Self {
        Self::Status {
            status: StatusCode::NOT_FOUND,
            message: None,
        }
    }

    /// 409 with a message.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Status { status, .. } => *status,
            Self::Db(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self::Db(DbError::Sqlx(e))
    }
}

/// A JSON error response in JupyterHub's shape.
pub fn error_response(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({"status": status.as_u16(), "message": message});
    (status, axum::Json(body)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match self {
            Self::Status { message, .. } => {
                message.unwrap_or_else(|| status.canonical_reason().unwrap_or("Error").to_owned())
            }
            Self::Db(e) => {
                tracing::error!(error = %e, "database error");
                "Internal Server Error".to_owned()
            }
            Self::Internal(e) => {
                tracing::error!(error = %e, "internal error");
                "Internal Server Error".to_owned()
            }
        };
        error_response(status, &message)
    }
}

/// Turns error responses that did not come from [`ApiError`] (axum's own
/// rejections: a path or query that does not decode, a method the route
/// lacks) into JupyterHub's JSON shape, keeping their status, headers and
/// text as the message. JSON answers pass through untouched.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("Error").to_owned()
    } else {
        text
    };
    let fresh = error_response(status, &message);
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts.headers.remove(axum::http::header::CONTENT_TYPE);
    let (json_parts, json_body) = fresh.into_parts();
    parts.headers.extend(json_parts.headers);
    Response::from_parts(parts, json_body)
}
