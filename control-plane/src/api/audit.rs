//! Audit query and verification over the ingested records.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::auth::{Operator, Role};
use crate::error::ApiError;

use super::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// RFC 3339, inclusive.
    from: Option<String>,
    /// RFC 3339, exclusive.
    to: Option<String>,
    key_id: Option<String>,
    role: Option<String>,
    /// The strongest policy outcome: block, redact, monitor or pass.
    outcome: Option<String>,
    /// A gateway id.
    gateway: Option<String>,
    limit: Option<i64>,
}

fn time_param(name: &str, v: Option<&str>) -> Result<Option<OffsetDateTime>, ApiError> {
    v.map(|s| {
        OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
            ApiError::BadRequest(format!(
                "{name}='{s}' is not an RFC 3339 time (e.g. 2026-11-24T00:00:00Z)"
            ))
        })
    })
    .transpose()
}

/// `GET /v1/audit`: records newest first, filtered; each as the gateway
/// sent it plus this chain's `seq`, `prev_hash` and `hash`.
pub async fn query(
    State(app): State<AppState>,
    op: Operator,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    op.require(Role::Viewer, "reading audit records")?;
    if let Some(o) = &q.outcome
        && !matches!(o.as_str(), "block" | "redact" | "monitor" | "pass")
    {
        return Err(ApiError::BadRequest(format!(
            "outcome='{o}' is not one of block, redact, monitor, pass"
        )));
    }
    let rows: Vec<(String, Value)> = sqlx::query_as(
        "SELECT chain, record FROM audit_records
         WHERE ($1::timestamptz IS NULL OR time >= $1) AND ($2::timestamptz IS NULL OR time < $2)
           AND ($3::text IS NULL OR key_id = $3) AND ($4::text IS NULL OR role = $4)
           AND ($5::text IS NULL OR outcome = $5) AND ($6::text IS NULL OR chain = $6)
         ORDER BY time DESC, chain, seq DESC LIMIT $7",
    )
    .bind(time_param("from", q.from.as_deref())?)
    .bind(time_param("to", q.to.as_deref())?)
    .bind(&q.key_id)
    .bind(&q.role)
    .bind(&q.outcome)
    .bind(&q.gateway)
    .bind(q.limit.unwrap_or(100).clamp(1, 1000))
    .fetch_all(&app.pool)
    .await?;
    let data: Vec<_> = rows
        .into_iter()
        .map(|(chain, record)| json!({"gateway": chain, "record": record}))
        .collect();
    Ok(Json(json!({ "data": data })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyQuery {
    gateway: Option<String>,
}

/// `GET /v1/audit/verify[?gateway=ID]`: walks each gateway's chain.
pub async fn verify(
    State(app): State<AppState>,
    op: Operator,
    Query(q): Query<VerifyQuery>,
) -> Result<Json<Value>, ApiError> {
    op.require(Role::Viewer, "verifying the audit chain")?;
    let reports = crate::audit::verify(&app.pool, q.gateway.as_deref()).await?;
    let ok = reports.iter().all(|r| r.ok);
    Ok(Json(json!({"ok": ok, "chains": reports})))
}
