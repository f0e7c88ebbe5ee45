//! The operator REST API. Every route authenticates an [`Operator`] and
//! checks its role before touching the database; every write records
//! itself in the admin history in the same transaction.

mod access;
pub(crate) mod audit;
pub(crate) mod fleet;
pub(crate) mod packs;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{Operator, Role};
use crate::db::rfc3339;
use crate::error::ApiError;

pub use crate::state::AppState;

/// The OpenAPI document of this API, served at `/openapi.yaml`.
pub const OPENAPI: &str = include_str!("../../openapi.yaml");

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/openapi.yaml", get(openapi))
        .route("/metrics", get(metrics))
        .route("/v1/packs", get(packs::list).post(packs::create))
        .route("/v1/packs/{name}", get(packs::get))
        .route(
            "/v1/packs/{name}/versions",
            get(packs::versions).post(packs::new_version),
        )
        .route("/v1/packs/{name}/versions/{version}", get(packs::version))
        .route("/v1/packs/{name}/diff", get(packs::diff))
        .route("/v1/packs/{name}/activate", post(packs::activate))
        .route("/v1/deployments", get(packs::deployments))
        .route("/v1/deployments/rollback", post(packs::rollback))
        .route("/v1/targets", get(packs::targets))
        .route("/v1/keys", get(access::list_keys).post(access::create_key))
        .route("/v1/keys/{id}", patch(access::update_key))
        .route(
            "/v1/operators",
            get(access::list_operators).post(access::create_operator),
        )
        .route("/v1/operators/{name}", patch(access::update_operator))
        .route("/v1/gateways", get(fleet::gateways))
        .route(
            "/v1/gateways/{id}/tokens",
            get(fleet::list_tokens).post(fleet::create_token),
        )
        .route(
            "/v1/gateways/{id}/tokens/{token_id}",
            delete(fleet::revoke_token),
        )
        .route("/v1/whoami", get(whoami))
        .route("/v1/history", get(history))
        .route("/v1/audit", get(audit::query))
        .route("/v1/audit/verify", get(audit::verify))
        .merge(crate::console::router())
        .fallback(|| async { ApiError::NotFound("no such endpoint; see /openapi.yaml".into()) })
        .layer(axum::middleware::from_fn(count_responses))
        .with_state(state)
}

async fn count_responses(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    // Extension methods would grow the series: count them as "other".
    let method = match *req.method() {
        axum::http::Method::GET => "GET",
        axum::http::Method::POST => "POST",
        axum::http::Method::PATCH => "PATCH",
        axum::http::Method::PUT => "PUT",
        axum::http::Method::DELETE => "DELETE",
        axum::http::Method::HEAD => "HEAD",
        _ => "other",
    };
    let resp = next.run(req).await;
    crate::metrics::get()
        .api_responses
        .get_or_create(&crate::metrics::ApiLabels {
            method,
            status: resp.status().as_u16(),
        })
        .inc();
    resp
}

async fn metrics() -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::get().encode(),
    )
        .into_response()
}

async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/yaml")],
        OPENAPI,
    )
        .into_response()
}

/// The operator behind the token: lets a client check a token before it
/// keeps it (`sluice login`), and show who it acts as.
async fn whoami(op: Operator) -> Json<serde_json::Value> {
    Json(json!({"name": op.name, "role": op.role.as_str()}))
}

#[derive(Deserialize)]
struct HistoryQuery {
    limit: Option<i64>,
}

type HistoryRow = (
    i64,
    time::OffsetDateTime,
    String,
    String,
    String,
    Option<serde_json::Value>,
    Option<serde_json::Value>,
);

/// The admin history, newest first.
async fn history(
    State(app): State<AppState>,
    op: Operator,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    op.require(Role::Viewer, "reading the admin history")?;
    let rows: Vec<HistoryRow> = sqlx::query_as(
        "SELECT id, at, actor, action, object, before, after FROM admin_history ORDER BY id DESC LIMIT $1",
    )
    .bind(q.limit.unwrap_or(100).clamp(1, 1000))
    .fetch_all(&app.pool)
    .await?;
    let data: Vec<_> = rows
        .into_iter()
        .map(|(id, at, actor, action, object, before, after)| {
            json!({"id": id, "at": rfc3339(at), "actor": actor, "action": action,
                   "object": object, "before": before, "after": after})
        })
        .collect();
    Ok(Json(json!({ "data": data })))
}

#[cfg(test)]
mod tests {
    /// Every route the router serves is described in the OpenAPI document.
    #[test]
    fn openapi_lists_every_route() {
        let src = include_str!("mod.rs");
        let doc = super::OPENAPI;
        // `.route("/path", …)` on one line, or `.route(` then `"/path",`.
        let routes: Vec<String> = src
            .lines()
            .filter_map(|l| {
                let l = l.trim();
                l.strip_prefix(".route(\"")
                    .or_else(|| l.strip_prefix('"').filter(|r| r.starts_with("/v1/")))
            })
            .filter_map(|l| l.split('"').next())
            .map(str::to_string)
            .collect();
        assert!(routes.len() >= 15, "{routes:?}");
        for path in routes {
            assert!(
                doc.contains(&format!("\n  {path}:")),
                "openapi.yaml lacks the path {path}"
            );
        }
    }
}
