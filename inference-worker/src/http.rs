//! The worker's small HTTP port: `/healthz` (the process answers),
//! `/readyz` (the model is loaded; Kubernetes sends traffic only then) and
//! `/metrics`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::service::WorkerState;

pub fn router(state: Arc<WorkerState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(s): State<Arc<WorkerState>>) -> impl IntoResponse {
    let _span = tracing::info_span!(
        "health",
        "otel.kind" = "server",
        probe = "readyz",
        ready = s.is_ready()
    )
    .entered();
    if s.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the model is not loaded yet\n",
        )
    }
}

async fn metrics(State(s): State<Arc<WorkerState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
}
