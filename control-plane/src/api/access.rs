//! Client keys (the virtual keys gateways accept, each with a role for
//! `when_role` routing) and operator tokens. Both are random, shown once
//! at creation and stored only as SHA-256.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::auth::{Operator, Role};
use crate::db::{history, new_secret, rfc3339, sha256_hex};
use crate::error::ApiError;

use super::AppState;

fn valid_name(what: &str, s: &str) -> Result<(), ApiError> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "{what} '{s}' is not valid: use 1–64 letters, digits, '-', '_' or '.'"
        )))
    }
}

fn parse_time(field: &str, s: &str) -> Result<OffsetDateTime, ApiError> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|e| {
        ApiError::BadRequest(format!(
            "{field} '{s}' is not an RFC 3339 time (e.g. 2027-01-31T00:00:00Z): {e}"
        ))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// Public name; generated when absent.
    id: Option<String>,
    owner: String,
    role: String,
    expires_at: Option<String>,
}

type KeyRow = (
    String,
    String,
    String,
    String,
    OffsetDateTime,
    String,
    Option<OffsetDateTime>,
    bool,
);

fn key_json(r: &KeyRow) -> Value {
    let (id, owner, role, prefix, created_at, created_by, expires_at, enabled) = r;
    json!({"id": id, "owner": owner, "role": role, "key_prefix": prefix,
           "created_at": rfc3339(*created_at), "created_by": created_by,
           "expires_at": expires_at.map(rfc3339), "enabled": enabled})
}

const KEY_COLUMNS: &str =
    "id, owner, role, key_prefix, created_at, created_by, expires_at, enabled";

/// `POST /v1/keys`: the answer's `key` is the only time the key is shown.
pub async fn create_key(
    State(app): State<AppState>,
    op: Operator,
    Json(body): Json<NewKey>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    op.require(Role::Editor, "creating a client key")?;
    let id = body
        .id
        .unwrap_or_else(|| format!("key-{}", &new_secret("")[..12]));
    valid_name("id", &id)?;
    valid_name("role", &body.role)?;
    if body.owner.trim().is_empty() {
        return Err(ApiError::BadRequest("owner must not be empty".into()));
    }
    let expires_at = body
        .expires_at
        .as_deref()
        .map(|s| parse_time("expires_at", s))
        .transpose()?;
    let key = new_secret("sk-sluice-");
    let mut tx = app.pool.begin().await?;
    let row: Option<KeyRow> = sqlx::query_as(&format!(
        "INSERT INTO client_keys (id, owner, role, key_sha256, key_prefix, created_by, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING RETURNING {KEY_COLUMNS}"
    ))
    .bind(&id)
    .bind(body.owner.trim())
    .bind(&body.role)
    .bind(sha256_hex(&key))
    .bind(&key[..14])
    .bind(&op.name)
    .bind(expires_at)
    .fetch_optional(&mut *tx)
    .await?;
    let row =
        row.ok_or_else(|| ApiError::Conflict(format!("a client key with id '{id}' exists")))?;
    let public = key_json(&row);
    history(
        &mut tx,
        &op.name,
        "key.create",
        &format!("key/{id}"),
        None,
        Some(public.clone()),
    )
    .await?;
    tx.commit().await?;
    let mut answer = public;
    answer["key"] = json!(key);
    Ok((StatusCode::CREATED, Json(answer)))
}

pub async fn list_keys(State(app): State<AppState>, op: Operator) -> Result<Json<Value>, ApiError> {
    op.require(Role::Viewer, "listing client keys")?;
    let rows: Vec<KeyRow> = sqlx::query_as(&format!(
        "SELECT {KEY_COLUMNS} FROM client_keys ORDER BY id"
    ))
    .fetch_all(&app.pool)
    .await?;
    Ok(Json(
        json!({"data": rows.iter().map(key_json).collect::<Vec<_>>()}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyChange {
    enabled: Option<bool>,
    role: Option<String>,
    /// RFC 3339, or null to remove the expiry.
    #[serde(default, with = "double_option")]
    expires_at: Option<Option<String>>,
}

/// Distinguishes an absent field from an explicit null.
mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

/// `PATCH /v1/keys/{id}`: enable/disable, change role or expiry. Gateways
/// get the change with the next snapshot.
pub async fn update_key(
    State(app): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
    Json(change): Json<KeyChange>,
) -> Result<Json<Value>, ApiError> {
    op.require(Role::Editor, "changing a client key")?;
    if let Some(role) = &change.role {
        valid_name("role", role)?;
    }
    let expires = match &change.expires_at {
        Some(Some(s)) => Some(Some(parse_time("expires_at", s)?)),
        Some(None) => Some(None),
        None => None,
    };
    let mut tx = app.pool.begin().await?;
    let before: KeyRow = sqlx::query_as(&format!(
        "SELECT {KEY_COLUMNS} FROM client_keys WHERE id = $1 FOR UPDATE"
    ))
    .bind(&id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no client key with id '{id}'")))?;
    let after: KeyRow = sqlx::query_as(&format!(
        "UPDATE client_keys SET enabled = COALESCE($2, enabled), role = COALESCE($3, role),
             expires_at = CASE WHEN $4 THEN $5 ELSE expires_at END
         WHERE id = $1 RETURNING {KEY_COLUMNS}"
    ))
    .bind(&id)
    .bind(change.enabled)
    .bind(&change.role)
    .bind(expires.is_some())
    .bind(expires.flatten())
    .fetch_one(&mut *tx)
    .await?;
    let after = key_json(&after);
    history(
        &mut tx,
        &op.name,
        "key.update",
        &format!("key/{id}"),
        Some(key_json(&before)),
        Some(after.clone()),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(after))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOperator {
    name: String,
    role: String,
}

type OperatorRow = (String, String, OffsetDateTime, String, bool);

fn operator_json(r: &OperatorRow) -> Value {
    let (name, role, at, by, enabled) = r;
    json!({"name": name, "role": role, "created_at": rfc3339(*at), "created_by": by, "enabled": enabled})
}

fn parse_role(s: &str) -> Result<Role, ApiError> {
    Role::parse(s).ok_or_else(|| {
        ApiError::BadRequest(format!("role '{s}' is not one of admin, editor, viewer"))
    })
}

/// `POST /v1/operators` (admin): the answer's `token` is shown once.
pub async fn create_operator(
    State(app): State<AppState>,
    op: Operator,
    Json(body): Json<NewOperator>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    op.require(Role::Admin, "creating an operator")?;
    valid_name("name", &body.name)?;
    let role = parse_role(&body.role)?;
    let token = new_secret("sop-");
    let mut tx = app.pool.begin().await?;
    let row: Option<OperatorRow> = sqlx::query_as(
        "INSERT INTO operators (name, role, token_sha256, created_by) VALUES ($1, $2, $3, $4)
         ON CONFLICT (name) DO NOTHING RETURNING name, role, created_at, created_by, enabled",
    )
    .bind(&body.name)
    .bind(role.as_str())
    .bind(sha256_hex(&token))
    .bind(&op.name)
    .fetch_optional(&mut *tx)
    .await?;
    let row =
        row.ok_or_else(|| ApiError::Conflict(format!("an operator named '{}' exists", body.name)))?;
    let public = operator_json(&row);
    history(
        &mut tx,
        &op.name,
        "operator.create",
        &format!("operator/{}", body.name),
        None,
        Some(public.clone()),
    )
    .await?;
    tx.commit().await?;
    let mut answer = public;
    answer["token"] = json!(token);
    Ok((StatusCode::CREATED, Json(answer)))
}

pub async fn list_operators(
    State(app): State<AppState>,
    op: Operator,
) -> Result<Json<Value>, ApiError> {
    op.require(Role::Admin, "listing operators")?;
    let rows: Vec<OperatorRow> = sqlx::query_as(
        "SELECT name, role, created_at, created_by, enabled FROM operators ORDER BY name",
    )
    .fetch_all(&app.pool)
    .await?;
    Ok(Json(
        json!({"data": rows.iter().map(operator_json).collect::<Vec<_>>()}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorChange {
    enabled: Option<bool>,
    role: Option<String>,
}

/// `PATCH /v1/operators/{name}` (admin): disable or change role. An admin
/// cannot disable or demote itself, so the fleet never loses its last admin
/// by accident.
pub async fn update_operator(
    State(app): State<AppState>,
    op: Operator,
    Path(name): Path<String>,
    Json(change): Json<OperatorChange>,
) -> Result<Json<Value>, ApiError> {
    op.require(Role::Admin, "changing an operator")?;
    let role = change.role.as_deref().map(parse_role).transpose()?;
    if name == op.name && (change.enabled == Some(false) || role.is_some_and(|r| r != Role::Admin))
    {
        return Err(ApiError::BadRequest(
            "an admin cannot disable or demote itself; ask another admin".into(),
        ));
    }
    let mut tx = app.pool.begin().await?;
    let before: OperatorRow = sqlx::query_as(
        "SELECT name, role, created_at, created_by, enabled FROM operators WHERE name = $1 FOR UPDATE",
    )
    .bind(&name)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no operator named '{name}'")))?;
    let after: OperatorRow = sqlx::query_as(
        "UPDATE operators SET enabled = COALESCE($2, enabled), role = COALESCE($3, role)
         WHERE name = $1 RETURNING name, role, created_at, created_by, enabled",
    )
    .bind(&name)
    .bind(change.enabled)
    .bind(role.map(Role::as_str))
    .fetch_one(&mut *tx)
    .await?;
    let after = operator_json(&after);
    history(
        &mut tx,
        &op.name,
        "operator.update",
        &format!("operator/{name}"),
        Some(operator_json(&before)),
        Some(after.clone()),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(after))
}
