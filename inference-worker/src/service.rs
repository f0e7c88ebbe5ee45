//! The gRPC `Inference` service: admission (a concurrency limit with a
//! bounded queue), request checks, and the engine's events as a stream.
//!
//! mistral.rs does not cap concurrency on CPU (`max_num_seqs` is a hint),
//! so the cap is enforced here: `max_concurrency` slots, `max_queue`
//! waiters, and RESOURCE_EXHAUSTED beyond that, which tells the gateway to
//! try another worker instead of piling up latency here.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use sluice_proto::wire::inference_server::Inference;
use sluice_proto::wire::{
    EmbedRequest, EmbedResponse, Embedding, Finish, GenerateRequest, GenerateResponse,
    HealthRequest, HealthResponse, ModelInfoRequest, ModelInfoResponse, TextPiece,
    generate_response,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tonic::{Request, Response, Status};

use crate::engine::{Engine, EngineError, Event, GenerateParams, Turn};
use crate::metrics::Metrics;

/// What the worker serves, known before the model is loaded.
#[derive(Debug, Clone)]
pub struct ServedModel {
    pub model_id: String,
    pub max_concurrency: usize,
    pub max_queue: usize,
}

pub struct WorkerState {
    pub served: ServedModel,
    engine: OnceLock<Arc<Engine>>,
    /// The resolved revision, known once the files are in place.
    pub revision: OnceLock<String>,
    slots: Arc<Semaphore>,
    queued: AtomicUsize,
    in_flight: Arc<AtomicUsize>,
    pub metrics: Arc<Metrics>,
}

impl WorkerState {
    pub fn new(served: ServedModel, metrics: Arc<Metrics>) -> Arc<WorkerState> {
        Arc::new(WorkerState {
            slots: Arc::new(Semaphore::new(served.max_concurrency.max(1))),
            served,
            engine: OnceLock::new(),
            revision: OnceLock::new(),
            queued: AtomicUsize::new(0),
            in_flight: Arc::new(AtomicUsize::new(0)),
            metrics,
        })
    }

    /// Marks the worker ready.
    pub fn set_engine(&self, engine: Arc<Engine>) {
        let _ = self.engine.set(engine);
        self.metrics.ready.set(1);
    }

    pub fn engine(&self) -> Option<&Arc<Engine>> {
        self.engine.get()
    }

    pub fn is_ready(&self) -> bool {
        self.engine.get().is_some()
    }

    /// A concurrency slot, waiting in the bounded queue if need be.
    async fn admit(&self) -> Result<Slot, Status> {
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if self.queued.fetch_add(1, Ordering::SeqCst) >= self.served.max_queue {
                    self.queued.fetch_sub(1, Ordering::SeqCst);
                    self.metrics.failure("overloaded");
                    return Err(Status::resource_exhausted(format!(
                        "the worker is busy: {} requests running and {} queued (--max-concurrency {}, --max-queue {}); retry on another worker or later",
                        self.served.max_concurrency,
                        self.served.max_queue,
                        self.served.max_concurrency,
                        self.served.max_queue
                    )));
                }
                self.metrics.queued.inc();
                // Decrements even when the caller gives up while queued.
                let _waiting = Waiting(self);
                self.slots
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| Status::unavailable("the worker is shutting down"))?
            }
        };
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.metrics.in_flight.inc();
        Ok(Slot {
            _permit: permit,
            in_flight: self.in_flight.clone(),
            metrics: self.metrics.clone(),
        })
    }

    fn ready_engine(&self) -> Result<Arc<Engine>, Status> {
        self.engine
            .get()
            .cloned()
            .ok_or_else(|| Status::unavailable("the model is still loading; wait for /readyz"))
    }
}

struct Waiting<'a>(&'a WorkerState);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::SeqCst);
        self.0.metrics.queued.dec();
    }
}

/// A held concurrency slot; released when the generation ends or is
/// abandoned.
struct Slot {
    _permit: OwnedSemaphorePermit,
    in_flight: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.metrics.in_flight.dec();
    }
}

pub struct InferenceService(pub Arc<WorkerState>);

const ROLES: [&str; 4] = ["system", "user", "assistant", "tool"];

fn check_request(req: &GenerateRequest) -> Result<(Vec<Turn>, GenerateParams), Status> {
    if req.messages.is_empty() {
        return Err(Status::invalid_argument("messages is empty"));
    }
    let mut turns = Vec::with_capacity(req.messages.len());
    for (i, m) in req.messages.iter().enumerate() {
        if !ROLES.contains(&m.role.as_str()) {
            return Err(Status::invalid_argument(format!(
                "messages[{i}].role '{}' is not one of system, user, assistant, tool",
                m.role
            )));
        }
        turns.push(Turn {
            role: m.role.clone(),
            content: m.content.clone(),
        });
    }
    if let Some(t) = req.temperature
        && !(0.0..=2.0).contains(&t)
    {
        return Err(Status::invalid_argument(format!(
            "temperature {t} is outside 0..2"
        )));
    }
    if let Some(p) = req.top_p
        && !(p > 0.0 && p <= 1.0)
    {
        return Err(Status::invalid_argument(format!(
            "top_p {p} is outside (0, 1]"
        )));
    }
    if req.max_tokens == Some(0) {
        return Err(Status::invalid_argument("max_tokens must be at least 1"));
    }
    Ok((
        turns,
        GenerateParams {
            max_tokens: req.max_tokens.map(|n| n as usize),
            temperature: req.temperature.map(f64::from),
            top_p: req.top_p.map(f64::from).filter(|p| *p < 1.0),
            stop: req.stop.clone(),
        },
    ))
}

/// One generation as the response stream sees it.
struct Generation {
    events: mpsc::Receiver<Event>,
    state: Arc<WorkerState>,
    labels: crate::metrics::ModelLabels,
    accepted: Instant,
    queue_wait: std::time::Duration,
    request_id: String,
    span: tracing::Span,
    _slot: Slot,
    finished: bool,
}

impl Generation {
    /// The wire message for an engine event, and whether it ends the stream.
    fn convert(&self, event: Event) -> (Result<GenerateResponse, Status>, bool) {
        match event {
            Event::Text(text) => (
                Ok(GenerateResponse {
                    event: Some(generate_response::Event::Text(TextPiece { text })),
                }),
                false,
            ),
            Event::Finish(f) => {
                Metrics::observe_ms(
                    &self.state.metrics.duration_ms.get_or_create(&self.labels),
                    self.accepted.elapsed(),
                );
                if let Some(t) = f.first_token {
                    Metrics::observe_ms(&self.state.metrics.ttft_ms.get_or_create(&self.labels), t);
                    let decoding = self.accepted.elapsed().saturating_sub(t).as_secs_f64();
                    if f.completion_tokens > 1 && decoding > 0.0 {
                        self.state
                            .metrics
                            .decode_tps
                            .get_or_create(&self.labels)
                            .observe((f.completion_tokens - 1) as f64 / decoding);
                    }
                }
                self.state
                    .metrics
                    .prompt_tokens
                    .get_or_create(&self.labels)
                    .inc_by(f.prompt_tokens as u64);
                self.state
                    .metrics
                    .completion_tokens
                    .get_or_create(&self.labels)
                    .inc_by(f.completion_tokens as u64);
                let span = &self.span;
                span.record("gen_ai.response.finish_reasons", f.reason.as_str());
                span.record("gen_ai.usage.input_tokens", f.prompt_tokens);
                span.record("gen_ai.usage.output_tokens", f.completion_tokens);
                if let Some(t) = f.first_token {
                    span.record("sluice.time_to_first_token_ms", t.as_secs_f64() * 1000.0);
                }
                tracing::info!(
                    request_id = %self.request_id,
                    finish = %f.reason,
                    prompt_tokens = f.prompt_tokens,
                    completion_tokens = f.completion_tokens,
                    usage_known = f.usage_known,
                    ttft_ms = f.first_token.map(|d| d.as_secs_f64() * 1000.0),
                    total_ms = self.accepted.elapsed().as_secs_f64() * 1000.0,
                    "generation finished"
                );
                (
                    Ok(GenerateResponse {
                        event: Some(generate_response::Event::Finish(Finish {
                            finish_reason: f.reason,
                            usage_known: f.usage_known,
                            prompt_tokens: f.prompt_tokens as u32,
                            completion_tokens: f.completion_tokens as u32,
                            time_to_first_token_us: f
                                .first_token
                                .map_or(0, |d| d.as_micros() as u64),
                            queue_wait_us: self.queue_wait.as_micros() as u64,
                        })),
                    }),
                    true,
                )
            }
            Event::Error(e) => {
                self.state.metrics.failure(match e {
                    EngineError::InvalidRequest(_) => "invalid_request",
                    _ => "engine",
                });
                tracing::warn!(request_id = %self.request_id, error = %e, "generation failed");
                (Err(status_of(&e)), true)
            }
        }
    }
}

impl Drop for Generation {
    fn drop(&mut self) {
        if !self.finished {
            self.state.metrics.failure("cancelled");
            tracing::info!(request_id = %self.request_id, "caller went away; generation cancelled");
        }
    }
}

/// The worker's `ai_completion` span, a child of the caller's trace when
/// the gRPC metadata carries one.
fn completion_span(
    model: &str,
    operation: &'static str,
    metadata: &tonic::metadata::MetadataMap,
) -> tracing::Span {
    use tracing::field::Empty;
    let span = tracing::info_span!(
        "ai_completion",
        "otel.kind" = "server",
        request_id = Empty,
        "gen_ai.operation.name" = operation,
        "gen_ai.system" = "mistral.rs",
        "gen_ai.request.model" = model,
        "gen_ai.request.max_tokens" = Empty,
        "gen_ai.response.finish_reasons" = Empty,
        "gen_ai.usage.input_tokens" = Empty,
        "gen_ai.usage.output_tokens" = Empty,
        "sluice.time_to_first_token_ms" = Empty,
    );
    sluice_telemetry::extract(metadata, &span);
    span
}

fn status_of(e: &EngineError) -> Status {
    match e {
        EngineError::InvalidRequest(m) => Status::invalid_argument(m.clone()),
        EngineError::Load(m) | EngineError::Internal(m) => Status::internal(m.clone()),
    }
}

type GenerateStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<GenerateResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Inference for InferenceService {
    type GenerateStream = GenerateStream;

    async fn generate(
        &self,
        request: Request<GenerateRequest>,
    ) -> Result<Response<Self::GenerateStream>, Status> {
        let accepted = Instant::now();
        let state = self.0.clone();
        let span = completion_span(&state.served.model_id, "chat", request.metadata());
        let req = request.into_inner();
        span.record("request_id", req.request_id.as_str());
        if let Some(n) = req.max_tokens {
            span.record("gen_ai.request.max_tokens", n);
        }
        let labels = state.metrics.labels().clone();
        state.metrics.requests.get_or_create(&labels).inc();
        let (turns, params) = check_request(&req).inspect_err(|_| {
            state.metrics.failure("invalid_request");
        })?;
        let engine = state.ready_engine()?;
        if engine.info.embeddings {
            return Err(Status::unimplemented(format!(
                "{} is an embedding model: it answers Embed, not Generate",
                state.served.model_id
            )));
        }
        let slot = state.admit().await?;
        let queue_wait = accepted.elapsed();
        let events = engine.generate(turns, params, accepted);
        // The engine's events become the response stream directly (no
        // forwarding task: one hop less per token). Dropping the stream
        // (the caller went away) drops `events`, which cancels the
        // generation and frees the slot.
        let generation = Generation {
            events,
            state,
            labels,
            accepted,
            queue_wait,
            request_id: req.request_id,
            span,
            _slot: slot,
            finished: false,
        };
        let stream = futures::stream::unfold(generation, |mut g| async move {
            if g.finished {
                return None;
            }
            let Some(event) = g.events.recv().await else {
                g.finished = true;
                return Some((
                    Err(Status::internal("the generation ended without finishing")),
                    g,
                ));
            };
            let (msg, done) = g.convert(event);
            g.finished = done;
            Some((msg, g))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn embed(
        &self,
        request: Request<EmbedRequest>,
    ) -> Result<Response<EmbedResponse>, Status> {
        let accepted = Instant::now();
        let state = &self.0;
        let span = completion_span(&state.served.model_id, "embeddings", request.metadata());
        tracing::Instrument::instrument(self.embed_in_span(request, accepted), span).await
    }

    async fn health(
        &self,
        request: Request<HealthRequest>,
    ) -> Result<Response<HealthResponse>, Status> {
        let s = &self.0;
        let span = tracing::info_span!("health", "otel.kind" = "server", ready = s.is_ready());
        sluice_telemetry::extract(request.metadata(), &span);
        Ok(Response::new(HealthResponse {
            ready: s.is_ready(),
            in_flight: s.in_flight.load(Ordering::SeqCst) as u32,
            queued: s.queued.load(Ordering::SeqCst) as u32,
        }))
    }

    async fn model_info(
        &self,
        _request: Request<ModelInfoRequest>,
    ) -> Result<Response<ModelInfoResponse>, Status> {
        let s = &self.0;
        let engine = s.ready_engine()?;
        Ok(Response::new(ModelInfoResponse {
            model_id: s.served.model_id.clone(),
            revision: s.revision.get().cloned().unwrap_or_default(),
            device: engine.info.device.clone(),
            dtype: engine.info.dtype.clone(),
            context_length: engine.info.context_length as u32,
            max_concurrency: s.served.max_concurrency as u32,
            max_queue: s.served.max_queue as u32,
            format: engine.info.format.to_string(),
            supports_embeddings: engine.info.embeddings,
        }))
    }
}

impl InferenceService {
    async fn embed_in_span(
        &self,
        request: Request<EmbedRequest>,
        accepted: Instant,
    ) -> Result<Response<EmbedResponse>, Status> {
        let state = &self.0;
        let engine = state.ready_engine()?;
        if !engine.info.embeddings {
            return Err(Status::unimplemented(format!(
                "{} is a text-generation model; embeddings need a worker serving an embedding model (a sentence-transformers folder with modules.json)",
                state.served.model_id
            )));
        }
        let labels = state.metrics.labels().clone();
        state.metrics.requests.get_or_create(&labels).inc();
        let _slot = state.admit().await?;
        match engine.embed(request.into_inner().inputs).await {
            Ok((vectors, tokens)) => {
                Metrics::observe_ms(
                    &state.metrics.duration_ms.get_or_create(&labels),
                    accepted.elapsed(),
                );
                state
                    .metrics
                    .prompt_tokens
                    .get_or_create(&labels)
                    .inc_by(tokens as u64);
                Ok(Response::new(EmbedResponse {
                    embeddings: vectors
                        .into_iter()
                        .map(|values| Embedding { values })
                        .collect(),
                    prompt_tokens: tokens as u32,
                }))
            }
            Err(e) => {
                state.metrics.failure(match e {
                    EngineError::InvalidRequest(_) => "invalid_request",
                    _ => "engine",
                });
                Err(status_of(&e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_proto::wire::ChatTurn;

    fn req(role: &str) -> GenerateRequest {
        GenerateRequest {
            messages: vec![ChatTurn {
                role: role.into(),
                content: "hi".into(),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn requests_are_checked_before_admission() {
        assert!(check_request(&req("user")).is_ok());
        let e = check_request(&req("robot")).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("messages[0].role"), "{}", e.message());
        let mut r = req("user");
        r.temperature = Some(3.0);
        assert!(
            check_request(&r)
                .unwrap_err()
                .message()
                .contains("temperature")
        );
        let mut r = req("user");
        r.max_tokens = Some(0);
        assert!(check_request(&r).is_err());
        assert!(check_request(&GenerateRequest::default()).is_err());
    }

    #[tokio::test]
    async fn a_full_queue_answers_resource_exhausted() {
        let state = WorkerState::new(
            ServedModel {
                model_id: "m".into(),
                max_concurrency: 1,
                max_queue: 1,
            },
            Arc::new(Metrics::new("m")),
        );
        let running = state.admit().await.unwrap();
        let s2 = state.clone();
        let queued = tokio::spawn(async move { s2.admit().await.map(|_| ()) });
        while state.queued.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let Err(e) = state.admit().await else {
            panic!("the queue is full: admission must be refused")
        };
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        drop(running);
        queued.await.unwrap().unwrap();
        assert_eq!(state.queued.load(Ordering::SeqCst), 0);
        assert_eq!(state.in_flight.load(Ordering::SeqCst), 0);
    }
}
