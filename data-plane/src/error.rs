//! One error type for the whole request path. Each variant knows its HTTP
//! status and renders the OpenAI error shape; internal detail is logged once
//! at the edge (`IntoResponse`) and never sent to the client.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{message}")]
    InvalidParam {
        message: String,
        param: &'static str,
    },
    #[error(
        "request body is larger than the gateway's limit of {limit} bytes (gateway.max_request_bytes)"
    )]
    TooLarge { limit: usize },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    ModelNotFound(String),
    #[error("{0}")]
    NoSuchEndpoint(String),
    #[error("{0}")]
    PolicyViolation(String),
    #[error(
        "the request body did not arrive within {seconds} s; send it faster or split the request"
    )]
    BodyTimeout { seconds: f64 },
    #[error("the gateway is serving as many requests as it is allowed to at once; retry shortly")]
    Overloaded,
    #[error("{0}")]
    Unavailable(String),
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after: Option<HeaderValue>,
    },
    /// A `budgets:` ceiling is reached for this period (429, with
    /// `Retry-After` at the period's end).
    #[error("{message}")]
    BudgetSpent {
        message: String,
        retry_after: Option<HeaderValue>,
    },
    /// The upstream refused the request itself (4xx other than auth and rate
    /// limits): its message is passed on, since it is about the client's input.
    #[error("{message}")]
    UpstreamRejected { status: StatusCode, message: String },
    #[error("{message}")]
    UpstreamAuth { message: String, code: &'static str },
    #[error("{0}")]
    Upstream(String),
    /// The upstream could not be reached at all (connect failure): retried
    /// and fallen back from like a 5xx, but `retries.on: [connect]` can
    /// pick it alone.
    #[error("{0}")]
    UpstreamUnreachable(String),
    #[error("{0}")]
    UpstreamTimeout(String),
}

impl ApiError {
    /// The gateway runs from a control plane and has no config yet.
    pub fn no_config() -> Self {
        ApiError::Unavailable(
            "the gateway has no config loaded yet: it is waiting for its control plane".into(),
        )
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_)
            | ApiError::InvalidParam { .. }
            | ApiError::PolicyViolation(_) => StatusCode::BAD_REQUEST,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::ModelNotFound(_) | ApiError::NoSuchEndpoint(_) => StatusCode::NOT_FOUND,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RateLimited { .. } | ApiError::BudgetSpent { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::UpstreamRejected { status, .. } => *status,
            ApiError::UpstreamAuth { .. }
            | ApiError::Upstream(_)
            | ApiError::UpstreamUnreachable(_) => StatusCode::BAD_GATEWAY,
            ApiError::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    fn kind(&self) -> (&'static str, &'static str) {
        match self {
            ApiError::BadRequest(_) => ("invalid_request_error", "invalid_request"),
            ApiError::InvalidParam { .. } => ("invalid_request_error", "invalid_value"),
            ApiError::TooLarge { .. } => ("invalid_request_error", "request_too_large"),
            ApiError::BodyTimeout { .. } => ("invalid_request_error", "request_timeout"),
            ApiError::Overloaded => ("server_error", "overloaded"),
            ApiError::Unauthorized(_) => ("invalid_request_error", "invalid_api_key"),
            ApiError::ModelNotFound(_) => ("invalid_request_error", "model_not_found"),
            ApiError::NoSuchEndpoint(_) => ("invalid_request_error", "unknown_url"),
            ApiError::PolicyViolation(_) => ("invalid_request_error", "policy_violation"),
            ApiError::Unavailable(_) => ("server_error", "target_unavailable"),
            ApiError::RateLimited { .. } => ("rate_limit_error", "rate_limit_exceeded"),
            // OpenAI's own answer to a spent quota.
            ApiError::BudgetSpent { .. } => ("insufficient_quota", "budget_exceeded"),
            ApiError::UpstreamRejected { .. } => ("invalid_request_error", "upstream_rejected"),
            ApiError::UpstreamAuth { code, .. } => ("server_error", code),
            ApiError::Upstream(_) | ApiError::UpstreamUnreachable(_) => {
                ("server_error", "upstream_error")
            }
            ApiError::UpstreamTimeout(_) => ("server_error", "upstream_timeout"),
        }
    }

    /// The OpenAI error object, also sent as the last event of a broken stream.
    pub fn body(&self) -> serde_json::Value {
        let (kind, code) = self.kind();
        let param = match self {
            ApiError::InvalidParam { param, .. } => json!(param),
            _ => serde_json::Value::Null,
        };
        json!({ "error": { "message": self.to_string(), "type": kind, "param": param, "code": code } })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        // Overload is counted in a metric; a line per refusal would add
        // load exactly when there is too much.
        if status.is_server_error() && !matches!(self, ApiError::Overloaded) {
            tracing::warn!(status = status.as_u16(), error = %self, "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), error = %self, "request refused");
        }
        let mut resp = (status, axum::Json(self.body())).into_response();
        if let ApiError::Overloaded = self {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        if let ApiError::RateLimited {
            retry_after: Some(v),
            ..
        }
        | ApiError::BudgetSpent {
            retry_after: Some(v),
            ..
        } = self
        {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, v);
        }
        resp
    }
}
