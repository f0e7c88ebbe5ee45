//! The model, loaded with mistral.rs, and one generation as a stream.
//!
//! mistral.rs 0.8.1 facts this module is built around:
//! - Its own `stream_chat_request` uses a channel of capacity 1, so one slow
//!   reader stalls every other request. Requests are submitted here through
//!   the engine's sender with a channel sized to the whole completion, and a
//!   task drains it; the engine never waits on us.
//! - Dropping the receiver cancels the sequence; dropping a tokenize reply
//!   channel panics the engine, so tokenization always runs to completion
//!   inside the generation task, never under a caller's timeout.
//! - The engine does not clamp prompt + max tokens to the context window: a
//!   prompt is tokenized first and the budget clamped here.
//! - A stream may close without a final usage chunk; that is a finish with
//!   usage unknown, not an error.
//! - Stop strings are detected a token late, after the text was sent; the
//!   stop filter here holds back just enough text to cut them exactly.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use either::Either;
use indexmap::IndexMap;
use mistralrs::{
    Constraint, EmbeddingModelBuilder, GgufModelBuilder, MessageContent, Model, ModelDType,
    NormalRequest, Request, RequestMessage, Response, SamplingParams, StopTokens, TextModelBuilder,
    TokenSource,
};
use tokio::sync::mpsc;

use crate::device::DeviceChoice;

/// How to load the model.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub dir: PathBuf,
    pub gguf_file: Option<String>,
    pub device: DeviceChoice,
    pub dtype: DtypeChoice,
    pub max_concurrency: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtypeChoice {
    Auto,
    F32,
    F16,
    Bf16,
}

impl std::str::FromStr for DtypeChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(DtypeChoice::Auto),
            "f32" => Ok(DtypeChoice::F32),
            "f16" => Ok(DtypeChoice::F16),
            "bf16" => Ok(DtypeChoice::Bf16),
            other => Err(format!(
                "unknown dtype '{other}': use auto, f32, f16 or bf16"
            )),
        }
    }
}

/// What the loaded model is, for `ModelInfo` and the logs.
#[derive(Debug, Clone)]
pub struct EngineInfo {
    pub device: String,
    pub dtype: String,
    pub context_length: usize,
    pub format: &'static str,
    /// An embedding model (a sentence-transformers folder with
    /// `modules.json`): it embeds and does not generate.
    pub embeddings: bool,
}

pub struct Engine {
    pub(crate) model: Model,
    pub info: EngineInfo,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Load(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("the engine failed: {0}")]
    Internal(String),
}

/// One chat turn (role and text).
#[derive(Debug, Clone)]
pub struct Turn {
    pub role: String,
    pub content: String,
}

#[derive(Debug, Clone, Default)]
pub struct GenerateParams {
    pub max_tokens: Option<usize>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub stop: Vec<String>,
}

/// What a generation stream carries.
#[derive(Debug)]
pub enum Event {
    Text(String),
    Finish(Finish),
    Error(EngineError),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    pub reason: String,
    pub usage_known: bool,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// From the engine accepting the request to the first text.
    pub first_token: Option<std::time::Duration>,
}

fn dtype_for(choice: DtypeChoice, cpu: bool) -> (ModelDType, &'static str) {
    match choice {
        // Candle's CPU matmul has no bf16 and a slow f16 path.
        DtypeChoice::Auto if cpu => (ModelDType::F32, "f32"),
        DtypeChoice::Auto => (ModelDType::BF16, "bf16"),
        DtypeChoice::F32 => (ModelDType::F32, "f32"),
        DtypeChoice::F16 => (ModelDType::F16, "f16"),
        DtypeChoice::Bf16 => (ModelDType::BF16, "bf16"),
    }
}

impl Engine {
    pub async fn load(opts: &LoadOptions) -> Result<Engine, EngineError> {
        let backend = opts.device.backend().map_err(EngineError::Load)?;
        match Self::load_on(opts, backend.is_cpu()).await {
            Err(e) if opts.device == DeviceChoice::Auto && !backend.is_cpu() => {
                tracing::warn!(error = %e, "the accelerator could not be used; falling back to CPU (see the troubleshooting table in docs/inference-worker.md)");
                let est = crate::footprint::estimate(&opts.dir, opts.gguf_file.as_deref())
                    .map_err(|e| EngineError::Load(e.to_string()))?;
                crate::footprint::check(est, crate::footprint::available_ram(), "RAM")
                    .map_err(EngineError::Load)?;
                Self::load_on(opts, true).await
            }
            other => other,
        }
    }

    async fn load_on(opts: &LoadOptions, force_cpu: bool) -> Result<Engine, EngineError> {
        let dir = opts.dir.to_string_lossy().to_string();
        let seqs = opts.max_concurrency.max(1);
        let (model, dtype_name, format) = match &opts.gguf_file {
            Some(file) => {
                let mut b = GgufModelBuilder::new(dir, vec![file.clone()])
                    .with_token_source(TokenSource::None)
                    .with_max_num_seqs(seqs);
                if force_cpu {
                    b = b.with_force_cpu();
                }
                let m = b.build().await.map_err(|e| load_error(&opts.dir, e))?;
                (m, None, "gguf")
            }
            None if opts.dir.join("modules.json").is_file() => {
                let (dtype, name) = dtype_for(opts.dtype, force_cpu);
                let mut b = EmbeddingModelBuilder::new(dir)
                    .with_token_source(TokenSource::None)
                    .with_dtype(dtype)
                    .with_max_num_seqs(seqs);
                if force_cpu {
                    b = b.with_force_cpu();
                }
                let m = b.build().await.map_err(|e| load_error(&opts.dir, e))?;
                (m, Some(name), "safetensors")
            }
            None => {
                let (dtype, name) = dtype_for(opts.dtype, force_cpu);
                let mut b = TextModelBuilder::new(dir)
                    .with_token_source(TokenSource::None)
                    .with_dtype(dtype)
                    .with_max_num_seqs(seqs);
                if force_cpu {
                    b = b.with_force_cpu();
                }
                let m = b.build().await.map_err(|e| load_error(&opts.dir, e))?;
                (m, Some(name), "safetensors")
            }
        };
        let config = model.config().map_err(|e| {
            EngineError::Load(format!("reading the loaded model's configuration: {e}"))
        })?;
        let device = match config.device.location() {
            candle_core::DeviceLocation::Cpu => "cpu".to_string(),
            candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
            candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
        };
        let dtype = match dtype_name {
            Some(d) => d.to_string(),
            // GGUF weights keep their quantization; mistral.rs names it.
            None => config.kind.to_string(),
        };
        let context_length = config.max_seq_len.unwrap_or(4096);
        let embeddings = config.category == mistralrs::ModelCategory::Embedding;
        Ok(Engine {
            model,
            info: EngineInfo {
                device,
                dtype,
                context_length,
                format,
                embeddings,
            },
        })
    }

    /// Starts a generation. Events arrive on the returned receiver; dropping
    /// it cancels the generation.
    pub fn generate(
        self: &Arc<Self>,
        turns: Vec<Turn>,
        params: GenerateParams,
        accepted: Instant,
    ) -> mpsc::Receiver<Event> {
        let (tx, rx) = mpsc::channel(64);
        let engine = self.clone();
        tokio::spawn(async move {
            let tx2 = tx.clone();
            if let Err(e) = engine.run_generation(turns, params, accepted, tx).await {
                let _ = tx2.send(Event::Error(e)).await;
            }
        });
        rx
    }

    async fn run_generation(
        &self,
        turns: Vec<Turn>,
        params: GenerateParams,
        accepted: Instant,
        out: mpsc::Sender<Event>,
    ) -> Result<(), EngineError> {
        let messages: Vec<IndexMap<String, MessageContent>> = turns
            .iter()
            .map(|t| {
                IndexMap::from([
                    ("role".to_string(), Either::Left(t.role.clone())),
                    ("content".to_string(), Either::Left(t.content.clone())),
                ])
            })
            .collect();
        let ctx = self.info.context_length;
        // Clamping needs the prompt's length, and counting it costs a trip
        // through the engine (the chat template rendered twice). Skip it
        // when the prompt cannot reach the window: a prompt has at most one
        // token per byte of text, plus what the template adds (generously
        // bounded here).
        let bound = prompt_bound(&turns);
        let (known_prompt, max_len) = match params.max_tokens {
            Some(m) if bound + m <= ctx => (None, m),
            requested => {
                let prompt_tokens = self.count_prompt(messages.clone()).await?;
                if prompt_tokens >= ctx {
                    return Err(EngineError::InvalidRequest(format!(
                        "the prompt is {prompt_tokens} tokens; the model's context window is {ctx} tokens, leaving no room for a completion: shorten the conversation"
                    )));
                }
                let room = ctx - prompt_tokens;
                (Some(prompt_tokens), requested.map_or(room, |m| m.min(room)))
            }
        };
        let for_usage = known_prompt.is_none().then(|| messages.clone());
        if max_len == 0 {
            return Err(EngineError::InvalidRequest(
                "max_tokens must be at least 1".into(),
            ));
        }
        // Sized for the whole completion plus the final chunk: the engine
        // never blocks on this channel, however slow our reader is.
        let (tx, mut rx) = mpsc::channel::<Response>(max_len + 8);
        let sender = self
            .model
            .inner()
            .get_sender(None)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        let sampling = SamplingParams {
            temperature: Some(params.temperature.unwrap_or(1.0)),
            top_p: params.top_p,
            max_len: Some(max_len),
            stop_toks: (!params.stop.is_empty()).then(|| StopTokens::Seqs(params.stop.clone())),
            ..SamplingParams::neutral()
        };
        let messages = RequestMessage::Chat {
            messages,
            enable_thinking: None,
            reasoning_effort: None,
        };
        let request = self.request(messages, sampling, tx, true);
        sender
            .send(request)
            .await
            .map_err(|_| EngineError::Internal("the engine is not accepting requests".into()))?;

        let mut stop = StopFilter::new(params.stop);
        let mut pieces = 0usize;
        let mut first_token = None;
        let mut usage = None;
        let mut reason = None;
        loop {
            // A caller that leaves during prefill is noticed at once, not
            // at the first token: dropping `rx` cancels the sequence.
            let resp = tokio::select! {
                r = rx.recv() => match r {
                    Some(r) => r,
                    None => break,
                },
                _ = out.closed() => return Ok(()),
            };
            match resp {
                Response::Chunk(chunk) => {
                    if let Some(u) = &chunk.usage {
                        usage = Some((u.prompt_tokens, u.completion_tokens));
                    }
                    let Some(choice) = chunk.choices.into_iter().next() else {
                        continue;
                    };
                    if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
                        pieces += 1;
                        first_token.get_or_insert_with(|| accepted.elapsed());
                        let (emit, hit) = stop.push(&text);
                        if !emit.is_empty() && out.send(Event::Text(emit)).await.is_err() {
                            return Ok(()); // the caller went away: dropping rx cancels
                        }
                        if hit {
                            reason = Some("stop".to_string());
                            break;
                        }
                    }
                    if let Some(r) = choice.finish_reason {
                        reason = Some(r);
                        break;
                    }
                }
                Response::ValidationError(e) => {
                    return Err(EngineError::InvalidRequest(e.to_string()));
                }
                Response::InternalError(e) => return Err(EngineError::Internal(e.to_string())),
                Response::ModelError(msg, _) => return Err(EngineError::Internal(msg)),
                _ => {
                    return Err(EngineError::Internal(
                        "the engine answered with an unexpected response kind".into(),
                    ));
                }
            }
        }
        drop(rx);
        let tail = stop.finish();
        if !tail.is_empty() && out.send(Event::Text(tail)).await.is_err() {
            return Ok(());
        }
        let reason = match reason.as_deref() {
            Some("length") => "length",
            Some("stop") | Some("eos") => "stop",
            Some("canceled") => {
                return Err(EngineError::Internal(
                    "the engine cancelled the sequence".into(),
                ));
            }
            Some(other) => {
                return Err(EngineError::Internal(format!(
                    "the engine finished with '{other}', which this worker does not serve"
                )));
            }
            // Closed without a final chunk: mistral.rs does that when the
            // last token ends in an incomplete UTF-8 sequence. A completion
            // that used its budget hit the length limit; otherwise it ended.
            None if pieces + 1 >= max_len => "length",
            None => "stop",
        };
        let (usage_known, prompt, completion) = match usage {
            Some((p, c)) => (true, p, c),
            None => {
                let prompt = match (known_prompt, for_usage) {
                    (Some(p), _) => p,
                    (None, Some(m)) => self.count_prompt(m).await?,
                    (None, None) => 0,
                };
                (false, prompt, pieces)
            }
        };
        let _ = out
            .send(Event::Finish(Finish {
                reason: reason.to_string(),
                usage_known,
                prompt_tokens: prompt,
                completion_tokens: completion,
                first_token,
            }))
            .await;
        Ok(())
    }

    /// A plain request (no tools, grammar or logits processors) answering
    /// on `response`.
    pub(crate) fn request(
        &self,
        messages: RequestMessage,
        sampling: SamplingParams,
        response: mpsc::Sender<Response>,
        streaming: bool,
    ) -> Request {
        Request::Normal(Box::new(NormalRequest {
            messages,
            sampling_params: sampling,
            response,
            return_logprobs: false,
            is_streaming: streaming,
            id: self.model.inner().next_request_id(),
            constraint: Constraint::None,
            suffix: None,
            tools: None,
            tool_choice: None,
            logits_processors: None,
            return_raw_logits: false,
            web_search_options: None,
            model_id: None,
            truncate_sequence: false,
        }))
    }

    /// The prompt's length in tokens, with the chat template applied exactly
    /// as the generation will apply it.
    async fn count_prompt(
        &self,
        messages: Vec<IndexMap<String, MessageContent>>,
    ) -> Result<usize, EngineError> {
        self.count_tokens(Either::Left(messages)).await
    }

    /// Tokens in `text`: messages through the chat template, or a plain
    /// string with the tokenizer's special tokens.
    pub(crate) async fn count_tokens(
        &self,
        text: Either<Vec<IndexMap<String, MessageContent>>, String>,
    ) -> Result<usize, EngineError> {
        let (tx, mut rx) = mpsc::channel(1);
        let sender = self
            .model
            .inner()
            .get_sender(None)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        sender
            .send(Request::Tokenize(mistralrs::core::TokenizationRequest {
                text,
                tools: None,
                add_generation_prompt: true,
                add_special_tokens: true,
                enable_thinking: None,
                reasoning_effort: None,
                response: tx,
            }))
            .await
            .map_err(|_| EngineError::Internal("the engine is not accepting requests".into()))?;
        // The reply is awaited in a task of its own: if our caller is
        // cancelled, dropping `rx` unanswered would panic the engine.
        let reply = tokio::spawn(async move { rx.recv().await })
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        match reply {
            Some(Ok(ids)) => Ok(ids.len()),
            Some(Err(e)) => Err(EngineError::InvalidRequest(format!(
                "the tokenizer or chat template refused the input: {e}"
            ))),
            None => Err(EngineError::Internal("the tokenizer did not answer".into())),
        }
    }
}

/// An upper bound on a prompt's tokens: one per byte of text, plus 32 per
/// message and 512 for what a chat template adds (role markers, a default
/// system prompt).
fn prompt_bound(turns: &[Turn]) -> usize {
    512 + turns
        .iter()
        .map(|t| t.content.len() + t.role.len() + 32)
        .sum::<usize>()
}

fn load_error(dir: &Path, e: impl std::fmt::Display) -> EngineError {
    EngineError::Load(format!(
        "loading the model from {} failed: {e}",
        dir.display()
    ))
}

/// Cuts the text at the first stop string, holding back only as much as
/// could still turn into one (the longest stop string minus one character).
struct StopFilter {
    stops: Vec<String>,
    held: String,
}

impl StopFilter {
    fn new(stops: Vec<String>) -> StopFilter {
        StopFilter {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            held: String::new(),
        }
    }

    /// Returns the text safe to emit and whether a stop string was found.
    fn push(&mut self, text: &str) -> (String, bool) {
        if self.stops.is_empty() {
            return (text.to_string(), false);
        }
        self.held.push_str(text);
        if let Some(at) = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min()
        {
            let emit = self.held[..at].to_string();
            self.held.clear();
            return (emit, true);
        }
        // Keep the longest suffix that is a prefix of some stop string.
        let keep = self
            .stops
            .iter()
            .map(|s| longest_suffix_prefix(&self.held, s))
            .max()
            .unwrap_or(0);
        let cut = self.held.len() - keep;
        let emit = self.held[..cut].to_string();
        self.held.drain(..cut);
        (emit, false)
    }

    /// At the end, what was held back: only a proper prefix of a stop
    /// string, so it is real output (a whole stop string was cut in `push`).
    fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

/// Length in bytes of the longest suffix of `text` that is a proper prefix
/// of `stop`, on character boundaries.
fn longest_suffix_prefix(text: &str, stop: &str) -> usize {
    let max = (stop.len().saturating_sub(1)).min(text.len());
    (1..=max)
        .rev()
        .find(|&n| {
            text.is_char_boundary(text.len() - n)
                && stop.is_char_boundary(n)
                && stop.starts_with(&text[text.len() - n..])
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let mut f = StopFilter::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out = String::new();
        for p in pieces {
            let (emit, hit) = f.push(p);
            out.push_str(&emit);
            if hit {
                return (out, true);
            }
        }
        out.push_str(&f.finish());
        (out, false)
    }

    #[test]
    fn stop_strings_are_cut_exactly_across_pieces() {
        assert_eq!(
            run(&["END"], &["abc E", "N", "Dxyz"]),
            ("abc ".into(), true)
        );
        assert_eq!(run(&["END"], &["abc EN", "d"]), ("abc ENd".into(), false));
        assert_eq!(run(&[], &["a", "b"]), ("ab".into(), false));
        assert_eq!(
            run(&["\n\n", "##"], &["x\n", "#", "#y"]),
            ("x\n".into(), true)
        );
    }

    #[test]
    fn hold_back_is_bounded_by_the_longest_stop_string() {
        let mut f = StopFilter::new(vec!["abcd".into()]);
        let (emit, _) = f.push("zzabc");
        assert_eq!(emit, "zz");
        assert_eq!(f.held, "abc");
        let (emit, _) = f.push("x");
        assert_eq!(emit, "abcx");
    }

    #[test]
    fn suffix_prefix_respects_char_boundaries() {
        assert_eq!(longest_suffix_prefix("héé", "éa"), "é".len());
        assert_eq!(longest_suffix_prefix("abc", "xyz"), 0);
    }
}
