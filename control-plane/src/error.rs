//! The one error type of the operator API: each variant maps to an HTTP
//! status and an OpenAI-shaped body. Database errors are logged once here,
//! at the edge, and reach clients only as "internal error".

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sluice_proto::pack::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    /// The pack does not validate: every error, with its path and position.
    #[error("the pack is invalid: {} error(s)", .0.len())]
    InvalidPack(Vec<ConfigError>),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::InvalidPack(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_pack"),
            ApiError::Database(e) if unreachable(e) => {
                (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable")
            }
            ApiError::Database(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }
}

/// The database is down, restarting or out of connections, as opposed to a
/// query that failed: the operator should retry. (A connection lost during
/// a commit leaves it unknown whether the write landed; a retried create
/// then answers 409, which says it did.)
fn unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        // 57P01 admin_shutdown (the server is stopping), 57P02
        // crash_shutdown, 57P03 cannot_connect_now (still starting up).
        sqlx::Error::Database(d) => {
            matches!(d.code().as_deref(), Some("57P01" | "57P02" | "57P03"))
        }
        _ => false,
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        self.status_and_code().0
    }

    /// The message a client may see; a database error is logged here (once,
    /// at the edge) and shown only as "internal error".
    pub fn public_message(&self) -> String {
        match self {
            ApiError::Database(e) if unreachable(e) => {
                tracing::warn!(error = %e, "operator API request failed: database unreachable");
                "the database is unreachable (restarting or down); this request was not completed; retry in a few seconds".to_string()
            }
            ApiError::Database(e) => {
                tracing::error!(error = %e, "operator API request failed");
                "internal error; the control plane's log has the details".to_string()
            }
            other => other.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = self.public_message();
        let mut error = json!({"message": message, "type": code, "code": code});
        if let ApiError::InvalidPack(errors) = &self {
            error["errors"] = errors
                .iter()
                .map(|e| json!({"path": e.path, "line": e.line, "column": e.column, "message": e.message}))
                .collect();
        }
        let mut resp = (status, Json(json!({ "error": error }))).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("2"),
            );
        }
        resp
    }
}
