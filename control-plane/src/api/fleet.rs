//! Fleet status (every gateway that has ever connected, what it runs and
//! how its last snapshot went) and the gateways' credentials for the gRPC
//! port (see `gateway_auth`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::auth::{Operator, Role};
use crate::db::{history, new_secret, rfc3339, sha256_hex};
use crate::error::ApiError;

use super::AppState;

type GatewayRow = (
    String,
    Value,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<OffsetDateTime>,
    Option<OffsetDateTime>,
    bool,
    OffsetDateTime,
);

pub async fn gateways(State(app): State<AppState>, op: Operator) -> Result<Json<Value>, ApiError> {
    op.require(Role::Viewer, "reading fleet status")?;
    let rows: Vec<GatewayRow> = sqlx::query_as(
        "SELECT id, labels, applied_version, applied_sha256, offered_version, last_result, last_error,
                last_ack_at, last_nack_at, connected, last_seen
         FROM gateways ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await?;
    let data: Vec<_> = rows
        .into_iter()
        .map(|(id, labels, applied, sha, offered, result, error, ack_at, nack_at, connected, seen)| {
            json!({"id": id, "labels": labels, "applied_version": applied, "applied_sha256": sha,
                   "offered_version": offered, "last_result": result, "last_error": error,
                   "last_ack_at": ack_at.map(rfc3339), "last_nack_at": nack_at.map(rfc3339),
                   "connected": connected, "last_seen": rfc3339(seen)})
        })
        .collect();
    Ok(Json(json!({ "data": data })))
}

/// The rule for gateway ids that tokens are issued for (they double as the
/// DNS name a gateway's client certificate carries under mutual TLS), with
/// an optional trailing `*` for a group token covering every id with that
/// prefix.
fn valid_gateway_id(id: &str) -> Result<(), ApiError> {
    let stem = id.strip_suffix('*').unwrap_or(id);
    let ok = !stem.is_empty()
        && id.len() <= 128
        && stem
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "gateway id '{id}' is not valid: use 1–128 letters, digits, '-', '_' or '.' \
             (the id the gateway is started with as --gateway-id), optionally ending in '*' \
             for a token that covers every id with that prefix"
        )))
    }
}

type TokenRow = (
    i64,
    String,
    String,
    OffsetDateTime,
    String,
    Option<OffsetDateTime>,
    Option<String>,
);

const TOKEN_COLUMNS: &str =
    "id, gateway_id, token_prefix, created_at, created_by, revoked_at, revoked_by";

fn token_json(r: &TokenRow) -> Value {
    let (id, gateway_id, prefix, created_at, created_by, revoked_at, revoked_by) = r;
    json!({"id": id, "gateway_id": gateway_id, "token_prefix": prefix,
           "created_at": rfc3339(*created_at), "created_by": created_by,
           "revoked_at": revoked_at.map(rfc3339), "revoked_by": revoked_by})
}

/// `POST /v1/gateways/{id}/tokens`: a new credential for one gateway. The
/// answer's `token` is the only time it is shown; the gateway reads it from
/// `--control-plane-token-file`.
pub async fn create_token(
    State(app): State<AppState>,
    op: Operator,
    Path(gateway_id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    op.require(Role::Admin, "issuing a gateway token")?;
    valid_gateway_id(&gateway_id)?;
    let token = new_secret("sgw-");
    let mut tx = app.pool.begin().await?;
    let row: TokenRow = sqlx::query_as(&format!(
        "INSERT INTO gateway_tokens (gateway_id, token_sha256, token_prefix, created_by)
         VALUES ($1, $2, $3, $4) RETURNING {TOKEN_COLUMNS}"
    ))
    .bind(&gateway_id)
    .bind(sha256_hex(&token))
    .bind(&token[..12])
    .bind(&op.name)
    .fetch_one(&mut *tx)
    .await?;
    let public = token_json(&row);
    history(
        &mut tx,
        &op.name,
        "gateway_token.create",
        &format!("gateway/{gateway_id}/token/{}", row.0),
        None,
        Some(public.clone()),
    )
    .await?;
    tx.commit().await?;
    let mut answer = public;
    answer["token"] = json!(token);
    Ok((StatusCode::CREATED, Json(answer)))
}

/// `GET /v1/gateways/{id}/tokens`: the gateway's tokens, newest first
/// (never the token itself).
pub async fn list_tokens(
    State(app): State<AppState>,
    op: Operator,
    Path(gateway_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    op.require(Role::Viewer, "listing gateway tokens")?;
    let rows: Vec<TokenRow> = sqlx::query_as(&format!(
        "SELECT {TOKEN_COLUMNS} FROM gateway_tokens WHERE gateway_id = $1 ORDER BY id DESC"
    ))
    .bind(&gateway_id)
    .fetch_all(&app.pool)
    .await?;
    Ok(Json(
        json!({ "data": rows.iter().map(token_json).collect::<Vec<_>>() }),
    ))
}

/// `DELETE /v1/gateways/{id}/tokens/{token_id}`: revokes a token. New
/// streams and audit batches with it are refused at once; a config stream it
/// opened ends at its next heartbeat (within 15 s).
pub async fn revoke_token(
    State(app): State<AppState>,
    op: Operator,
    Path((gateway_id, token_id)): Path<(String, i64)>,
) -> Result<Json<Value>, ApiError> {
    op.require(Role::Admin, "revoking a gateway token")?;
    let mut tx = app.pool.begin().await?;
    let row: Option<TokenRow> = sqlx::query_as(&format!(
        "UPDATE gateway_tokens SET revoked_at = COALESCE(revoked_at, now()),
                revoked_by = COALESCE(revoked_by, $3)
         WHERE gateway_id = $1 AND id = $2 RETURNING {TOKEN_COLUMNS}"
    ))
    .bind(&gateway_id)
    .bind(token_id)
    .bind(&op.name)
    .fetch_optional(&mut *tx)
    .await?;
    let row = row.ok_or_else(|| {
        ApiError::NotFound(format!("gateway '{gateway_id}' has no token {token_id}"))
    })?;
    let public = token_json(&row);
    history(
        &mut tx,
        &op.name,
        "gateway_token.revoke",
        &format!("gateway/{gateway_id}/token/{token_id}"),
        None,
        Some(public.clone()),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(public))
}
