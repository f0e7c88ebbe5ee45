//! Operator authentication and roles. Tokens arrive as
//! `Authorization: Bearer …` and are looked up by SHA-256; the token itself
//! is never stored or logged.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::db::sha256_hex;
use crate::error::ApiError;
use crate::state::AppState;

/// Roles in increasing power: a viewer reads; an editor also changes packs,
/// deployments and client keys; an admin also manages operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    Editor,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "editor" => Some(Role::Editor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value (HTTP header or
/// gRPC metadata); `None` for another scheme or an empty token.
pub fn bearer(value: &str) -> Option<&str> {
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The authenticated operator behind a request.
#[derive(Debug, Clone)]
pub struct Operator {
    pub name: String,
    pub role: Role,
}

impl Operator {
    /// Refuses with 403 unless the operator has at least `role`.
    pub fn require(&self, role: Role, doing: &str) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "{doing} needs the '{}' role; operator '{}' has '{}'",
                role.as_str(),
                self.name,
                self.role.as_str()
            )))
        }
    }
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer)
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "missing operator token: send it as 'Authorization: Bearer <token>'".into(),
                )
            })?;
        operator_for_token(&state.pool, token)
            .await?
            .ok_or_else(|| {
                ApiError::Unauthorized("invalid operator token (unknown or disabled)".into())
            })
    }
}

/// The enabled operator whose token this is.
pub async fn operator_for_token(
    pool: &sqlx::PgPool,
    token: &str,
) -> Result<Option<Operator>, sqlx::Error> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT name, role FROM operators WHERE token_sha256 = $1 AND enabled")
            .bind(sha256_hex(token))
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|(name, role)| Operator {
        name,
        role: Role::parse(&role).unwrap_or(Role::Viewer),
    }))
}
