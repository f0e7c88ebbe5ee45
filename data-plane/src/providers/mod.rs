//! Provider adapters: one module per upstream protocol, all answering in
//! OpenAI shapes; [`target`] compiles a pack's target into the adapter it
//! needs. A chat call returns either a whole `chat.completion` or a
//! stream of `chat.completion.chunk`s; a stream that ends without an error
//! item completed cleanly, anything else ends with that error.

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
    Full(Completion),
    Stream(ChunkStream),
}

/// A whole `chat.completion`. `raw` holds the upstream's own bytes when
/// they can be sent to the client as they are: re-encoding the parsed
/// value would cost a serialisation per request and reorder its keys.
/// Whoever changes `value` must call [`Completion::changed`].
pub struct Completion {
    pub value: Value,
    raw: Option<bytes::Bytes>,
}

impl Completion {
    /// Built by the gateway (translated protocols): encoded when sent.
    pub fn built(value: Value) -> Completion {
        Completion { value, raw: None }
    }

    /// Parsed from `raw`, which still says the same.
    pub fn forwarded(value: Value, raw: bytes::Bytes) -> Completion {
        Completion {
            value,
            raw: Some(raw),
        }
    }

    /// `value` was edited (a policy redacted a text): `raw` is stale.
    pub fn changed(&mut self) {
        self.raw = None;
    }

    /// The body to send.
    pub fn body(&self) -> bytes::Bytes {
        match &self.raw {
            Some(raw) => raw.clone(),
            None => bytes::Bytes::from(serde_json::to_vec(&self.value).unwrap_or_default()),
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
    resp: reqwest::Response,
    deadline: tokio::time::Instant,
) -> Result<(Value, bytes::Bytes), ApiError> {
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
        Ok(Ok(Some(bytes))) => match serde_json::from_slice(&bytes) {
            Ok(v) => Ok((v, bytes)),
            Err(_) => Err(ApiError::Upstream(format!(
                "target '{}' answered with a body that is not JSON",
                target.spec.id
            ))),
        },
    }
}
