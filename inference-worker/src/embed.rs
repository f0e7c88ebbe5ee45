//! Embeddings, for embedding models (a sentence-transformers folder with
//! `modules.json`: Qwen3-Embedding, EmbeddingGemma in mistral.rs 0.8.1).
//!
//! Each input is one engine request, all in flight together. Inputs are
//! tokenized first: mistral.rs 0.8.1 panics its engine thread on a prompt of
//! a single token (its causal mask is then absent), so such an input is
//! refused here with a clear error instead.

use either::Either;
use futures::StreamExt;
use mistralrs::{RequestMessage, Response, SamplingParams};
use tokio::sync::mpsc;

use crate::engine::{Engine, EngineError};

/// OpenAI's own limit for one embeddings request.
pub const MAX_INPUTS: usize = 2048;
const IN_FLIGHT: usize = 8;

impl Engine {
    /// One vector per input, in order, and the prompt tokens of all inputs.
    pub async fn embed(&self, inputs: Vec<String>) -> Result<(Vec<Vec<f32>>, usize), EngineError> {
        if inputs.is_empty() {
            return Err(EngineError::InvalidRequest("inputs is empty".into()));
        }
        if inputs.len() > MAX_INPUTS {
            return Err(EngineError::InvalidRequest(format!(
                "{} inputs in one request; at most {MAX_INPUTS} (split the batch)",
                inputs.len()
            )));
        }
        for (i, text) in inputs.iter().enumerate() {
            if text.trim().is_empty() {
                return Err(EngineError::InvalidRequest(format!("inputs[{i}] is empty")));
            }
            let tokens = self.count_tokens(Either::Right(text.clone())).await?;
            if tokens < 2 {
                return Err(EngineError::InvalidRequest(format!(
                    "inputs[{i}] is a single token; this engine (mistral.rs 0.8.1) embeds inputs of two tokens or more"
                )));
            }
            if tokens > self.info.context_length {
                return Err(EngineError::InvalidRequest(format!(
                    "inputs[{i}] is {tokens} tokens; the model takes at most {}",
                    self.info.context_length
                )));
            }
        }
        // A few in flight at a time: enough to batch in the engine, not so
        // many that one request starves every other caller.
        let results: Vec<_> =
            futures::stream::iter(inputs.into_iter().map(|text| self.embed_one(text)))
                .buffered(IN_FLIGHT)
                .collect()
                .await;
        let mut vectors = Vec::with_capacity(results.len());
        let mut tokens = 0;
        for r in results {
            let (v, t) = r?;
            vectors.push(v);
            tokens += t;
        }
        Ok((vectors, tokens))
    }

    async fn embed_one(&self, prompt: String) -> Result<(Vec<f32>, usize), EngineError> {
        let (tx, mut rx) = mpsc::channel(1);
        let request = self.request(
            RequestMessage::Embedding { prompt },
            SamplingParams::deterministic(),
            tx,
            false,
        );
        self.model
            .inner()
            .get_sender(None)
            .map_err(|e| EngineError::Internal(e.to_string()))?
            .send(request)
            .await
            .map_err(|_| EngineError::Internal("the engine is not accepting requests".into()))?;
        match rx.recv().await {
            Some(Response::Embeddings {
                embeddings,
                prompt_tokens,
                ..
            }) => Ok((embeddings, prompt_tokens)),
            Some(Response::ValidationError(e)) => Err(EngineError::InvalidRequest(e.to_string())),
            Some(Response::InternalError(e)) => Err(EngineError::Internal(e.to_string())),
            Some(_) => Err(EngineError::Internal(
                "the engine answered an embedding request with something else".into(),
            )),
            None => Err(EngineError::Internal(
                "the engine dropped the embedding request".into(),
            )),
        }
    }
}
