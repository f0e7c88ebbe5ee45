//! The HTTP surface. Each handler reads top to bottom along the request
//! path: decode → auth → (request policies) → route → provider → response.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::Digest;
use tracing::Instrument;

use crate::config::ConfigStore;
use crate::error::ApiError;
use crate::exchange::{Exchange, usage_of};
use crate::openai::{ChatRequest, EmbeddingsRequest};
use crate::providers::ChatReply;
use crate::{audit, streaming, traffic};

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<ConfigStore>,
    pub http: crate::providers::http::Client,
}

pub fn router(state: AppState) -> Router {
    let slots =
        crate::serve::RequestSlots::new(state.store.settings().http.max_concurrent_requests);
    let api = Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .route_layer(axum::middleware::from_fn_with_state(
            slots,
            crate::serve::admit,
        ));
    Router::new()
        .merge(api)
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(request_id))
        .with_state(state)
}

/// Gives every request an id (the caller's `x-request-id` if it is sane),
/// a tracing span carrying it, and the response header.
async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    // The trace's root: every log line of the request carries its id.
    // `otel.kind` is for trace export only; in log lines it is noise, and
    // every field of this span is formatted when it is created.
    let span = if sluice_telemetry::traces_exported() {
        tracing::info_span!("request", "otel.kind" = "server", request_id = %id, method = %req.method(), path = %req.uri().path())
    } else {
        tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
    };
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut resp = next.run(req).instrument(span).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

#[derive(Clone)]
pub struct RequestId(pub String);

async fn read_json<T: DeserializeOwned>(
    body: Body,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<T, ApiError> {
    let bytes = crate::serve::read_body(body, limit, timeout).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("request body is not a valid request: {e}")))
}

async fn chat_completions(
    State(app): State<AppState>,
    Extension(RequestId(id)): Extension<RequestId>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(rt) = app.store.current() else {
        return ApiError::no_config().into_response();
    };
    let mut ex = Exchange::new(rt, id, "chat.completions");
    let span = ex.trace_span();
    match chat_path(&app, &mut ex, &headers, body)
        .instrument(span)
        .await
    {
        Ok(ChatReply::Stream(s)) => streaming::respond(ex, s),
        Ok(ChatReply::Full(mut c)) => {
            ex.answer_seen(c.model(), c.finish_reason());
            if sluice_telemetry::capture_content()
                && let Some(choices) = c.value().get("choices")
            {
                ex.capture_output(&choices.to_string());
            }
            let usage = c.usage();
            if usage.is_none() {
                let texts = answer_texts(c.value());
                let bytes = texts.iter().map(String::len).sum();
                let keep = ex.counts_tokens().then_some(texts);
                ex.note_answer(bytes, keep);
            }
            let mut resp = (
                [(
                    axum::http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                c.body(),
            )
                .into_response();
            ex.decorate(&mut resp);
            ex.record.status = 200;
            // Parsed whole only for a record that keeps the response.
            let response = ex.audits_response().then(|| (*c).into_value());
            let written = ex.finish(usage, response);
            audit::answer_when_written(resp, written).await
        }
        Err(e) => ex.fail(e),
    }
}

/// decode → auth → request policies → route → provider → response policies.
async fn chat_path(
    app: &AppState,
    ex: &mut Exchange,
    headers: &HeaderMap,
    body: Body,
) -> Result<ChatReply, ApiError> {
    let rt = ex.rt.clone();
    ex.admit()?;
    // Authenticate before reading the body: an unknown caller gets 401
    // without making the gateway read and parse megabytes for it.
    let caller = rt.identify(headers)?;
    ex.caller(&caller);
    let mut req: ChatRequest = read_json(
        body,
        rt.pack.gateway.max_request_bytes,
        app.store.settings().http.body_read_timeout,
    )
    .await?;
    ex.record.model = req.model.clone();
    ex.record.stream = req.stream;
    ex.stream_usage = req.include_usage();
    req.validate()?;
    if !rt.chain.is_empty() {
        req.readable()?;
    }
    rt.chain
        .check_request(&mut req.texts_mut(), &mut ex.decisions)?;
    let route = rt.route_chat(&req.model, &caller)?;
    ex.route(&route);
    ex.limit_caller().await?;
    let plan = traffic::admit(&rt, route, ex).await?;
    let target = plan.target.clone();
    // After admission: the chosen target decides whether its texts are
    // kept for a tokenizer (see `Exchange::note_prompt`).
    ex.note_prompt(&req.texts_mut());
    ex.capture_input(&req.messages);
    if ex.audits_request() {
        ex.record.request = serde_json::to_value(&req).ok();
    }
    tracing::debug!(target_id = %target.spec.id, stream = req.stream, "routing chat completion");
    let call = traffic::Chat {
        http: &app.http,
        req: &mut req,
        whole: !rt.chain.is_empty() || ex.audits_response() || sluice_telemetry::capture_content(),
    };
    let (reply, served) = traffic::call(plan, ex, call).await?;
    if !Arc::ptr_eq(&served, &target) {
        ex.routed(&served);
    }
    match reply {
        ChatReply::Full(mut c) if !rt.chain.is_empty() => {
            let mut changed = false;
            if let Some(choices) = c
                .value_mut()
                .get_mut("choices")
                .and_then(|c| c.as_array_mut())
            {
                for choice in choices {
                    let Some(message) = choice.get_mut("message") else {
                        continue;
                    };
                    let mut texts = crate::openai::answer_texts_mut(message);
                    let length = |t: &[&mut String]| t.iter().map(|s| s.len()).sum::<usize>();
                    let before = length(&texts);
                    let redactions = ex.decisions.len();
                    rt.chain.check_response(&mut texts, &mut ex.decisions)?;
                    // Any policy that edits a text records a decision
                    // saying so; a length change is the cheap backstop.
                    changed |= length(&texts) != before
                        || ex.decisions[redactions..]
                            .iter()
                            .any(|d| d.outcome == crate::policies::Outcome::Redact);
                }
            }
            if changed {
                c.changed();
            }
            Ok(ChatReply::Full(c))
        }
        other => Ok(other),
    }
}

async fn embeddings(
    State(app): State<AppState>,
    Extension(RequestId(id)): Extension<RequestId>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(rt) = app.store.current() else {
        return ApiError::no_config().into_response();
    };
    let mut ex = Exchange::new(rt, id, "embeddings");
    let span = ex.trace_span();
    match embeddings_path(&app, &mut ex, &headers, body)
        .instrument(span)
        .await
    {
        Ok(mut v) => {
            let usage = usage_of(&v);
            if usage.is_none() {
                // The client expects `usage` (the OpenAI SDKs require it):
                // the count the record will carry, with its source there.
                let u = ex.count_missing_usage();
                v["usage"] =
                    json!({"prompt_tokens": u.prompt_tokens, "total_tokens": u.total_tokens});
            }
            let mut resp = Json(v).into_response();
            ex.decorate(&mut resp);
            ex.record.status = 200;
            // Vectors are not worth keeping in an audit record.
            let written = ex.finish(usage, None);
            audit::answer_when_written(resp, written).await
        }
        Err(e) => ex.fail(e),
    }
}

async fn embeddings_path(
    app: &AppState,
    ex: &mut Exchange,
    headers: &HeaderMap,
    body: Body,
) -> Result<serde_json::Value, ApiError> {
    let rt = ex.rt.clone();
    ex.admit()?;
    let caller = rt.identify(headers)?;
    ex.caller(&caller);
    let mut req: EmbeddingsRequest = read_json(
        body,
        rt.pack.gateway.max_request_bytes,
        app.store.settings().http.body_read_timeout,
    )
    .await?;
    ex.record.model = req.model.clone();
    if !rt.chain.is_empty() {
        req.readable()?;
    }
    rt.chain
        .check_request(&mut req.texts_mut(), &mut ex.decisions)?;
    let route = rt.route_embeddings(&req.model)?;
    ex.route(&route);
    ex.limit_caller().await?;
    let plan = traffic::admit(&rt, route, ex).await?;
    let target = plan.target.clone();
    ex.note_prompt(&req.texts_mut());
    if ex.audits_request() {
        ex.record.request = serde_json::to_value(&req).ok();
    }
    let call = traffic::Embeddings {
        http: &app.http,
        req: &req,
    };
    let (answer, served) = traffic::call(plan, ex, call).await?;
    if !Arc::ptr_eq(&served, &target) {
        ex.routed(&served);
    }
    Ok(answer)
}

/// Every group (by id and model) and every target (by model id and target
/// id): every name accepted as `model`, the way it is looked up.
async fn models(State(app): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let rt = app.store.current().ok_or_else(ApiError::no_config)?;
    rt.identify(&headers)?;
    let mut seen = std::collections::HashSet::new();
    let mut data = Vec::new();
    for g in &rt.pack.groups {
        for name in std::iter::once(&g.id).chain(&g.model) {
            if seen.insert(name.clone()) {
                data.push(json!({"id": name, "object": "model", "created": 0, "owned_by": format!("sluice-group:{}", g.id)}));
            }
        }
    }
    for t in &rt.targets {
        for name in [&t.spec.model, &t.spec.id] {
            if seen.insert(name.clone()) {
                data.push(json!({"id": name, "object": "model", "created": 0, "owned_by": format!("sluice:{}", t.spec.id)}));
            }
        }
    }
    Ok(Json(json!({"object": "list", "data": data})).into_response())
}

async fn metrics(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(file) = &app.store.settings().metrics_token_file {
        let expected = match crate::settings::read_token_file(file) {
            Ok(t) => t,
            Err(why) => {
                tracing::error!("--metrics-token-file: {why}; /metrics refuses every scrape");
                return (StatusCode::SERVICE_UNAVAILABLE, "metrics token unavailable")
                    .into_response();
            }
        };
        let given = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        // Compared as digests: equal-length inputs, no early exit on the
        // token's first differing byte.
        let digest = |s: &str| sha2::Sha256::digest(s.as_bytes());
        if given.map(digest) != Some(digest(expected.expose())) {
            return (
                StatusCode::UNAUTHORIZED,
                [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
                "/metrics needs 'Authorization: Bearer <token>' (the gateway's --metrics-token-file)",
            )
                .into_response();
        }
    }
    let m = crate::metrics::get();
    m.config_generation
        .set(app.store.current().map_or(0, |rt| rt.generation as i64));
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m.encode(),
    )
        .into_response()
}

/// Ready once a config is loaded and its pack is enabled.
async fn readyz(State(app): State<AppState>) -> Response {
    match app.store.current() {
        Some(rt) if rt.pack.enabled => (StatusCode::OK, "ready").into_response(),
        Some(_) => (StatusCode::SERVICE_UNAVAILABLE, "pack disabled").into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "no config loaded yet").into_response(),
    }
}

async fn not_found(req: Request) -> ApiError {
    ApiError::NoSuchEndpoint(format!(
        "no such endpoint: {} {} (the gateway serves /v1/chat/completions, /v1/embeddings, /v1/models, /healthz, /readyz)",
        req.method(),
        req.uri().path()
    ))
}

/// The answer's texts (every choice), for counting the usage of an
/// upstream that reports none. Rare, so a copy of each message is fine.
fn answer_texts(answer: &Value) -> Vec<String> {
    let Some(choices) = answer.get("choices").and_then(Value::as_array) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for m in choices.iter().filter_map(|c| c.get("message")) {
        let mut m = m.clone();
        out.extend(
            crate::openai::answer_texts_mut(&mut m)
                .into_iter()
                .map(std::mem::take),
        );
    }
    out
}
