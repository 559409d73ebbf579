//! The REST API's error type: a status and a message, sent as JupyterHub
//! sends API errors, `{"status": 404, "message": "..."}`. Internal errors
//! are logged here, once, and answered with a generic 500.

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
