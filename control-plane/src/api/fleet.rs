//! Fleet status: every gateway that has ever connected, what it runs and
//! how its last snapshot went.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::auth::{Operator, Role};
use crate::db::rfc3339;
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
