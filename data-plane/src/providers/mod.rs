//! Provider adapters: one module per upstream protocol, all answering in
//! OpenAI shapes; [`target`] compiles a pack's target into the adapter it
//! needs. A chat call returns either a whole `chat.completion` or a
//! stream of `chat.completion.chunk`s; a stream that ends without an error
//! item completed cleanly, anything else ends with that error.

pub mod client;
mod feature_extraction;
pub mod http;
mod openai_compat;
mod sse;
pub mod target;
pub mod template;
mod tgi;
pub mod worker;

use target::TargetRuntime;

use futures::stream::BoxStream;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::error::ApiError;

pub type ChunkStream = BoxStream<'static, Result<Value, ApiError>>;

pub enum ChatReply {
    /// Boxed: a reply is moved through several futures' states.
    Full(Box<Completion>),
    Stream(ChunkStream),
}

/// A whole `chat.completion`. An upstream's answer is kept as its own bytes
/// and sent on as they are unless a policy changes it: re-encoding would
/// cost a serialisation per request and reorder its keys. It is parsed into
/// a `Value` only when something needs the whole answer (response policies,
/// the audit record's response, content capture, counting an unreported
/// usage); the plain path reads only what [`Peek`] names, which allocates
/// next to nothing (parsing the answer into a `Value` and dropping it was
/// about a seventh of the no-policy path's instructions).
/// Whoever edits [`Completion::value_mut`] must call [`Completion::changed`].
pub struct Completion {
    value: Option<Value>,
    raw: Option<bytes::Bytes>,
    peek: Peek,
}

/// The few fields of an answer the request path reads on every request.
/// `usage` stays a `Value` so an odd usage object is ignored, as before,
/// rather than failing the answer.
#[derive(Default, serde::Deserialize)]
struct Peek {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<Value>,
    #[serde(default)]
    choices: Vec<PeekChoice>,
}

#[derive(serde::Deserialize)]
struct PeekChoice {
    #[serde(default)]
    finish_reason: Option<String>,
}

impl Peek {
    fn of(v: &Value) -> Peek {
        Peek {
            model: v.get("model").and_then(Value::as_str).map(str::to_string),
            usage: v.get("usage").cloned(),
            choices: v
                .pointer("/choices/0/finish_reason")
                .and_then(Value::as_str)
                .map(|f| {
                    vec![PeekChoice {
                        finish_reason: Some(f.to_string()),
                    }]
                })
                .unwrap_or_default(),
        }
    }
}

impl Completion {
    /// Built by the gateway (translated protocols): encoded when sent.
    pub fn built(value: Value) -> Completion {
        Completion {
            peek: Peek::of(&value),
            value: Some(value),
            raw: None,
        }
    }

    /// An upstream's answer as it came, or `None` if it is not JSON. The
    /// whole body is checked for valid JSON either way. `whole`: it will be
    /// read through, so it is parsed into a `Value` at once (not twice).
    pub fn forwarded(raw: bytes::Bytes, whole: bool) -> Option<Completion> {
        if !whole && let Ok(peek) = serde_json::from_slice::<Peek>(&raw) {
            return Some(Completion {
                value: None,
                raw: Some(raw),
                peek,
            });
        }
        // Valid JSON whose fields have other shapes (or not an object).
        let value: Value = serde_json::from_slice(&raw).ok()?;
        Some(Completion {
            peek: Peek::of(&value),
            value: Some(value),
            raw: Some(raw),
        })
    }

    /// The answer's `model`.
    pub fn model(&self) -> Option<&str> {
        self.peek.model.as_deref()
    }

    /// The first choice's `finish_reason`.
    pub fn finish_reason(&self) -> Option<&str> {
        self.peek.choices.first()?.finish_reason.as_deref()
    }

    /// The usage the upstream reported, if it is one.
    pub fn usage(&self) -> Option<crate::openai::Usage> {
        crate::exchange::usage_in(self.peek.usage.as_ref()?)
    }

    /// The whole answer, parsed on first use.
    pub fn value(&mut self) -> &Value {
        self.value_mut()
    }

    /// The whole answer to edit; see [`Completion::changed`].
    pub fn value_mut(&mut self) -> &mut Value {
        let raw = &self.raw;
        self.value.get_or_insert_with(|| {
            // `forwarded` checked that `raw` is JSON.
            raw.as_deref()
                .and_then(|r| serde_json::from_slice(r).ok())
                .unwrap_or(Value::Null)
        })
    }

    /// The whole answer, for the audit record.
    pub fn into_value(mut self) -> Value {
        self.value_mut();
        self.value.unwrap_or(Value::Null)
    }

    /// `value` was edited (a policy redacted a text): `raw` is stale.
    pub fn changed(&mut self) {
        self.raw = None;
    }

    /// The body to send.
    pub fn body(&self) -> bytes::Bytes {
        match (&self.raw, &self.value) {
            (Some(raw), _) => raw.clone(),
            (None, Some(v)) => bytes::Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
            (None, None) => bytes::Bytes::new(),
        }
    }
}

/// What every chunk of one translated stream repeats, for providers whose
/// upstream does not speak OpenAI's stream format (TGI native, workers).
struct ChunkHead {
    id: String,
    created: u64,
    model: String,
}

impl ChunkHead {
    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Value {
        serde_json::json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": null}]})
    }

    /// The first chunk of every stream: the assistant's role, no text.
    fn role(&self) -> Value {
        self.chunk(
            serde_json::json!({"role": "assistant", "content": ""}),
            None,
        )
    }

    /// The extra last chunk of `stream_options.include_usage`.
    fn usage(&self, usage: crate::openai::Usage) -> Value {
        serde_json::json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model, "choices": [], "usage": usage})
    }
}

/// Runs `produce` in its own task, feeding a bounded channel. When the
/// client goes away the receiver is dropped, the next send fails, the task
/// ends and the upstream connection with it.
fn channel_stream<F, Fut>(produce: F) -> ChunkStream
where
    F: FnOnce(mpsc::Sender<Result<Value, ApiError>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(32);
    tokio::spawn(produce(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// Reads a JSON body within the deadline: parsed, and as it came.
async fn json_body(
    target: &TargetRuntime,
    resp: http::Response,
    deadline: tokio::time::Instant,
) -> Result<(Value, bytes::Bytes), ApiError> {
    let bytes = body_bytes(target, resp, deadline).await?;
    match serde_json::from_slice(&bytes) {
        Ok(v) => Ok((v, bytes)),
        Err(_) => Err(not_json(target)),
    }
}

/// A whole `chat.completion` answer within the deadline (see [`Completion`]).
async fn completion_body(
    target: &TargetRuntime,
    resp: http::Response,
    deadline: tokio::time::Instant,
    whole: bool,
) -> Result<Completion, ApiError> {
    let bytes = body_bytes(target, resp, deadline).await?;
    Completion::forwarded(bytes, whole).ok_or_else(|| not_json(target))
}

fn not_json(target: &TargetRuntime) -> ApiError {
    ApiError::Upstream(format!(
        "target '{}' answered with a body that is not JSON",
        target.spec.id
    ))
}

/// An answer's bytes, at most [`http::MAX_UPSTREAM_BODY`], within the deadline.
async fn body_bytes(
    target: &TargetRuntime,
    resp: http::Response,
    deadline: tokio::time::Instant,
) -> Result<bytes::Bytes, ApiError> {
    let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
    match tokio::time::timeout(remaining, http::read_capped(resp, http::MAX_UPSTREAM_BODY)).await {
        Err(_) => Err(http::timeout(target, "reading the response")),
        Ok(Err(_)) => Err(ApiError::Upstream(format!(
            "target '{}': the response broke off",
            target.spec.id
        ))),
        Ok(Ok(None)) => Err(ApiError::Upstream(format!(
            "target '{}' answered with more than {} MiB; the gateway does not read further",
            target.spec.id,
            http::MAX_UPSTREAM_BODY >> 20
        ))),
        Ok(Ok(Some(bytes))) => Ok(bytes),
    }
}
