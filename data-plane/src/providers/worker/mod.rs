//! Local models: `local:huggingface:ORG/MODEL` targets served by
//! sluice-worker pods over gRPC.
//!
//! - Workers are `host:port` entries; a host is re-resolved every few
//!   seconds and every address it has is a worker, so one Kubernetes
//!   headless Service name covers a StatefulSet that scales.
//! - Balancing: least outstanding requests among healthy workers (ties go
//!   take turns, so idle workers share the load).
//! - A worker that fails before the first token (cannot connect, busy,
//!   broke off) is marked unhealthy for a moment and the request is retried
//!   on another. After the first token the client has seen output, so a
//!   failure ends the stream with an error event — never a hang and never a
//!   clean `[DONE]`: a dead connection surfaces at once (the kernel resets
//!   it) and HTTP/2 keepalives catch a vanished host.

mod pool;

pub use pool::WorkerPool;
use pool::{Outstanding, Worker};

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sluice_proto::wire::{
    ChatTurn, EmbedRequest, GenerateRequest, GenerateResponse, generate_response,
};
use tonic::{Code, Status, Streaming};

use super::target::TargetRuntime;
use super::{ChatReply, ChunkHead, channel_stream};
use crate::error::ApiError;
use crate::openai::{ChatRequest, EmbeddingsRequest, Usage, now_unix};

/// Whether another worker may succeed where this one failed.
fn retryable(s: &Status) -> bool {
    matches!(
        s.code(),
        Code::Unavailable
            | Code::ResourceExhausted
            | Code::Unknown
            | Code::Cancelled
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::Internal
    )
}

fn client_error(target: &str, s: &Status) -> ApiError {
    match s.code() {
        Code::InvalidArgument | Code::OutOfRange => ApiError::UpstreamRejected {
            status: axum::http::StatusCode::BAD_REQUEST,
            message: format!(
                "target '{target}': {}",
                super::http::truncate(s.message(), 500)
            ),
        },
        Code::Unimplemented => ApiError::BadRequest(format!(
            "target '{target}': {}",
            super::http::truncate(s.message(), 500)
        )),
        Code::ResourceExhausted => ApiError::RateLimited {
            message: format!("target '{target}': every worker is busy; retry shortly"),
            retry_after: Some(axum::http::HeaderValue::from_static("1")),
        },
        Code::FailedPrecondition => ApiError::Unavailable(format!(
            "target '{target}': no worker serves its model ({})",
            s.message()
        )),
        Code::DeadlineExceeded => ApiError::UpstreamTimeout(format!("target '{target}' timed out")),
        _ => ApiError::Upstream(format!(
            "target '{target}': no worker could serve the request"
        )),
    }
}

fn generate_request(req: &ChatRequest, request_id: &str) -> Result<GenerateRequest, ApiError> {
    req.plain_text_only("local-model targets (sluice-worker)")?;
    Ok(GenerateRequest {
        request_id: request_id.to_string(),
        messages: req
            .messages
            .iter()
            .map(|m| ChatTurn {
                // The worker's chat templates know `system`, not OpenAI's newer name.
                role: if m.role == "developer" {
                    "system".into()
                } else {
                    m.role.clone()
                },
                content: m.text(),
            })
            .collect(),
        max_tokens: req.max_tokens(),
        temperature: req.temperature.map(|t| t as f32),
        top_p: req.top_p.map(|p| p as f32),
        // mistral.rs has one engine-wide sampler seed; see docs/inference-worker.md.
        seed: req.seed.map(|s| s as u64),
        stop: req.stop.as_ref().map(|s| s.to_vec()).unwrap_or_default(),
    })
}

/// A started generation: the worker, its stream, and the first event
/// (already received, which is what commits us to this worker).
struct Started {
    _outstanding: Outstanding,
    /// Already received (it is what committed us to this worker).
    first: Option<GenerateResponse>,
    stream: Streaming<GenerateResponse>,
}

impl Started {
    /// The next text piece or finish, the first one included. `Err` when
    /// the worker fails, closes the stream unfinished, or sends nothing
    /// before `deadline`.
    async fn next_event(
        &mut self,
        deadline: tokio::time::Instant,
        tid: &str,
    ) -> Result<generate_response::Event, ApiError> {
        loop {
            let msg = match self.first.take() {
                Some(m) => m,
                None => match tokio::time::timeout_at(deadline, self.stream.message()).await {
                    Err(_) => {
                        return Err(ApiError::UpstreamTimeout(format!(
                            "target '{tid}': the worker sent nothing in time"
                        )));
                    }
                    Ok(Ok(Some(m))) => m,
                    Ok(Ok(None)) => {
                        return Err(ApiError::Upstream(format!(
                            "target '{tid}': the worker closed the stream before it finished"
                        )));
                    }
                    Ok(Err(s)) => {
                        tracing::warn!(target_id = %tid, code = ?s.code(), error = %s.message(), "worker failed mid-generation");
                        return Err(client_error(tid, &s));
                    }
                },
            };
            if let Some(event) = msg.event {
                return Ok(event);
            }
        }
    }
}

/// How a failed attempt on one worker is handled: the one retry policy of
/// chat and embeddings.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// Another worker may do better; this one is marked unhealthy.
    TryAnotherMarking,
    /// Another worker may do better; this one is not broken (busy, or it
    /// serves another model, which is logged) and is not marked.
    TryAnother,
    /// The client's request is at fault, or the error is final: answer now.
    Answer,
}

fn verdict(s: &Status) -> Verdict {
    match s.code() {
        Code::ResourceExhausted => Verdict::TryAnother,
        Code::FailedPrecondition => Verdict::TryAnother,
        _ if retryable(s) => Verdict::TryAnotherMarking,
        _ => Verdict::Answer,
    }
}

/// Runs `call` on the pool's workers — least outstanding first, each at most
/// once — until one succeeds, under one deadline for every attempt (a retry
/// never stretches the client's wait). See [`verdict`] for what a failure
/// does; a worker that lets the deadline pass is marked unhealthy and no
/// other is tried. The returned guard counts the request against the worker
/// that answered for as long as the caller holds it (a stream holds it to
/// its end).
async fn on_some_worker<T, F, Fut>(
    target: &TargetRuntime,
    pool: &WorkerPool,
    deadline: tokio::time::Instant,
    what: &'static str,
    mut call: F,
) -> Result<(T, Outstanding), ApiError>
where
    F: FnMut(Arc<Worker>, Duration) -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let workers = pool.workers().await;
    if workers.is_empty() {
        return Err(ApiError::Unavailable(format!(
            "target '{}': no worker address resolves ({})",
            target.spec.id,
            pool.entries.join(", ")
        )));
    }
    let mut tried = HashSet::new();
    let mut last: Option<Status> = None;
    while let Some(w) = pool.pick(&workers, &tried) {
        tried.insert(w.addr);
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            last = Some(Status::deadline_exceeded(what));
            break;
        }
        let outstanding = Outstanding::new(w.clone());
        let attempt = async {
            w.check_model(target).await?;
            call(w.clone(), left).await
        };
        let s = match tokio::time::timeout_at(deadline, attempt).await {
            Ok(Ok(v)) => return Ok((v, outstanding)),
            Ok(Err(s)) if s.code() != Code::DeadlineExceeded => s,
            // The whole budget is spent: no other worker gets a try.
            Ok(Err(_)) | Err(_) => {
                w.mark_unhealthy();
                last = Some(Status::deadline_exceeded(what));
                break;
            }
        };
        match verdict(&s) {
            Verdict::Answer => return Err(client_error(&target.spec.id, &s)),
            Verdict::TryAnother if s.code() == Code::FailedPrecondition => {
                tracing::error!(target_id = %target.spec.id, worker = %w.addr, "{}; not routing to it", s.message());
            }
            Verdict::TryAnother => {
                tracing::warn!(target_id = %target.spec.id, worker = %w.addr, "worker busy; trying another");
            }
            Verdict::TryAnotherMarking => {
                tracing::warn!(target_id = %target.spec.id, worker = %w.addr, code = ?s.code(), error = %s.message(), "worker failed before the first token (or answer); trying another");
                w.mark_unhealthy();
            }
        }
        last = Some(s);
    }
    let last = last.unwrap_or_else(|| Status::unavailable("no worker"));
    Err(client_error(&target.spec.id, &last))
}

async fn start(
    target: &TargetRuntime,
    pool: &WorkerPool,
    greq: GenerateRequest,
    deadline: tokio::time::Instant,
) -> Result<Started, ApiError> {
    let ((first, stream), outstanding) = on_some_worker(
        target,
        pool,
        deadline,
        "no first token in time",
        |w, left| {
            let mut request = tonic::Request::new(greq.clone());
            request.set_timeout(left);
            sluice_telemetry::inject(request.metadata_mut());
            async move {
                let mut stream = w.client.clone().generate(request).await?.into_inner();
                match stream.message().await? {
                    Some(first) => Ok((first, stream)),
                    None => Err(Status::unavailable("the worker closed the stream at once")),
                }
            }
        },
    )
    .await?;
    Ok(Started {
        _outstanding: outstanding,
        first: Some(first),
        stream,
    })
}

pub async fn chat(
    target: &Arc<TargetRuntime>,
    pool: &WorkerPool,
    req: &ChatRequest,
) -> Result<ChatReply, ApiError> {
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let greq = generate_request(req, &id)?;
    let model = target.spec.model.clone();
    let created = now_unix();
    let limit = if req.stream {
        target.spec.stream_timeout
    } else {
        target.spec.timeout
    };
    let deadline = tokio::time::Instant::now() + limit;
    let started = start(target, pool, greq, deadline).await?;
    let tid = target.spec.id.clone();

    if !req.stream {
        let mut text = String::new();
        let finish = collect(started, &mut text, &tid, deadline).await?;
        return Ok(ChatReply::Full(Box::new(super::Completion::built(json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": finish.finish_reason, "logprobs": null}],
            "usage": Usage::new(finish.prompt_tokens.into(), finish.completion_tokens.into()),
        })))));
    }

    let idle = target.spec.stream_timeout;
    Ok(ChatReply::Stream(channel_stream(move |tx| async move {
        let head = ChunkHead { id, created, model };
        let chunk = |delta: Value, reason: Option<&str>| head.chunk(delta, reason);
        if tx.send(Ok(head.role())).await.is_err() {
            return;
        }
        let mut started = started;
        loop {
            // A worker silent for the stream timeout ends the stream.
            let event = match started
                .next_event(tokio::time::Instant::now() + idle, &tid)
                .await
            {
                Ok(e) => e,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            match event {
                generate_response::Event::Text(t) => {
                    if tx
                        .send(Ok(chunk(json!({"content": t.text}), None)))
                        .await
                        .is_err()
                    {
                        return; // client gone: dropping the stream cancels the worker's generation
                    }
                }
                generate_response::Event::Finish(f) => {
                    let _ = tx.send(Ok(chunk(json!({}), Some(&f.finish_reason)))).await;
                    // Always sent (see streaming.rs: the client gets it
                    // only when it asked).
                    let _ = tx
                        .send(Ok(head.usage(Usage::new(
                            f.prompt_tokens.into(),
                            f.completion_tokens.into(),
                        ))))
                        .await;
                    return;
                }
            }
        }
    })))
}

/// Reads a whole generation into `text`.
async fn collect(
    mut started: Started,
    text: &mut String,
    tid: &str,
    deadline: tokio::time::Instant,
) -> Result<sluice_proto::wire::Finish, ApiError> {
    loop {
        match started.next_event(deadline, tid).await? {
            generate_response::Event::Text(t) => text.push_str(&t.text),
            generate_response::Event::Finish(f) => return Ok(f),
        }
    }
}

pub async fn embeddings(
    target: &Arc<TargetRuntime>,
    pool: &WorkerPool,
    req: &EmbeddingsRequest,
) -> Result<Value, ApiError> {
    let inputs = req.text_inputs(&format!("target '{}' (local model)", target.spec.id))?;
    let deadline = tokio::time::Instant::now() + target.spec.timeout;
    let (resp, _outstanding) =
        on_some_worker(target, pool, deadline, "no answer in time", |w, left| {
            let mut request = tonic::Request::new(EmbedRequest {
                request_id: String::new(),
                inputs: inputs.clone(),
            });
            request.set_timeout(left);
            sluice_telemetry::inject(request.metadata_mut());
            async move { w.client.clone().embed(request).await }
        })
        .await?;
    let resp = resp.into_inner();
    let data: Vec<Value> = resp
        .embeddings
        .into_iter()
        .enumerate()
        .map(|(i, e)| json!({"object": "embedding", "index": i, "embedding": e.values}))
        .collect();
    Ok(json!({
        "object": "list", "data": data, "model": target.spec.model,
        "usage": {"prompt_tokens": resp.prompt_tokens, "total_tokens": resp.prompt_tokens},
    }))
}

#[cfg(test)]
mod tests {
    use super::pool::model_matches;
    use super::*;
    use sluice_proto::wire::ModelInfoResponse;
    use std::net::SocketAddr;
    use std::sync::atomic::Ordering;

    fn worker(port: u16, outstanding: usize) -> Arc<Worker> {
        let w = Arc::new(Worker::new(SocketAddr::from(([127, 0, 0, 1], port)), None));
        w.outstanding.store(outstanding, Ordering::SeqCst);
        w
    }

    #[tokio::test]
    async fn least_outstanding_among_healthy_untried_workers() {
        let pool = WorkerPool::new("t", &[], None);
        let ws = vec![worker(1, 3), worker(2, 1), worker(3, 2)];
        let mut tried = HashSet::new();
        assert_eq!(pool.pick(&ws, &tried).unwrap().addr.port(), 2);
        ws[1].mark_unhealthy();
        assert_eq!(pool.pick(&ws, &tried).unwrap().addr.port(), 3);
        tried.insert(ws[2].addr);
        assert_eq!(pool.pick(&ws, &tried).unwrap().addr.port(), 1);
        tried.insert(ws[0].addr);
        // Only an unhealthy one is left: still better than failing.
        assert_eq!(pool.pick(&ws, &tried).unwrap().addr.port(), 2);
        tried.insert(ws[1].addr);
        assert!(pool.pick(&ws, &tried).is_none());
    }

    #[test]
    fn workers_must_serve_the_targets_model_and_pinned_commit() {
        let pack = |provider: &str| {
            sluice_proto::pack::load(&format!(
                "providers:\n  targets:\n    - id: l\n      provider: {provider}\n      workers: [\"w:1\"]\n"
            ))
            .unwrap()
            .pack
            .targets
            .remove(0)
        };
        let info = |model: &str, revision: &str| ModelInfoResponse {
            model_id: model.into(),
            revision: revision.into(),
            ..Default::default()
        };
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let t = pack("local:huggingface:org/m@main");
        assert!(model_matches(&t, &info("org/m", sha)).is_ok());
        assert!(
            model_matches(&t, &info("org/other", sha))
                .unwrap_err()
                .contains("org/other")
        );
        assert!(
            model_matches(&t, &info("/models/m", "")).is_ok(),
            "a folder is taken on trust"
        );
        let pinned = pack(&format!("local:huggingface:org/m@{sha}"));
        assert!(model_matches(&pinned, &info("org/m", sha)).is_ok());
        let other = "f".repeat(40);
        assert!(
            model_matches(&pinned, &info("org/m", &other))
                .unwrap_err()
                .contains("pinned")
        );
    }

    #[test]
    fn one_retry_policy_for_chat_and_embeddings() {
        use Verdict::*;
        let v = |code| verdict(&Status::new(code, "x"));
        assert_eq!(v(Code::ResourceExhausted), TryAnother, "busy is not broken");
        assert_eq!(
            v(Code::FailedPrecondition),
            TryAnother,
            "serves another model"
        );
        for code in [
            Code::Unavailable,
            Code::Unknown,
            Code::Internal,
            Code::Aborted,
            Code::Cancelled,
        ] {
            assert_eq!(v(code), TryAnotherMarking, "{code:?}");
        }
        for code in [Code::InvalidArgument, Code::OutOfRange, Code::Unimplemented] {
            assert_eq!(v(code), Answer, "{code:?}");
        }
    }

    #[tokio::test]
    async fn idle_workers_take_turns() {
        let pool = WorkerPool::new("t", &[], None);
        let ws = vec![worker(1, 0), worker(2, 0)];
        let picks: Vec<u16> = (0..4)
            .map(|_| pool.pick(&ws, &HashSet::new()).unwrap().addr.port())
            .collect();
        assert_eq!(picks, [1, 2, 1, 2]);
    }

    #[tokio::test]
    async fn entries_resolve_to_every_address() {
        let pool = WorkerPool::new(
            "t",
            &["localhost:7001".into(), "127.0.0.1:7002".into()],
            None,
        );
        let ws = pool.workers().await;
        let ports: HashSet<u16> = ws.iter().map(|w| w.addr.port()).collect();
        assert!(ports.contains(&7001) && ports.contains(&7002), "{ports:?}");
    }
}
