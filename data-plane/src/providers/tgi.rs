//! TGI's native API (`format: huggingface` + `provider_type: huggingface`):
//! messages → chat template → `inputs` + `parameters` on `/generate` and
//! `/generate_stream`; `generated_text`, `details` and the token stream are
//! mapped back to OpenAI shapes.

use std::sync::Arc;

use futures::StreamExt;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::http::Endpoint;
use super::target::{self, TargetRuntime};
use super::template::ChatTemplate;
use super::{ChatReply, ChunkHead, Completion, channel_stream, http, json_body};
use crate::error::ApiError;
use crate::openai::{ChatRequest, Usage, now_unix};
use crate::settings::Settings;
use sluice_proto::pack::Target;

fn parameters(req: &ChatRequest, stream: bool) -> Value {
    let mut p = Map::new();
    p.insert("details".into(), json!(true));
    p.insert("return_full_text".into(), json!(false));
    if !stream {
        // Gives the prompt's tokens back, so usage.prompt_tokens is real.
        p.insert("decoder_input_details".into(), json!(true));
    }
    if let Some(n) = req.max_tokens() {
        p.insert("max_new_tokens".into(), json!(n));
    }
    // TGI refuses temperature 0 and top_p 1: greedy decoding is do_sample=false.
    match req.temperature {
        Some(t) if t > 0.0 => {
            p.insert("temperature".into(), json!(t));
            p.insert("do_sample".into(), json!(true));
        }
        Some(_) => {
            p.insert("do_sample".into(), json!(false));
        }
        None => {}
    }
    if let Some(tp) = req.top_p.filter(|v| *v > 0.0 && *v < 1.0) {
        p.insert("top_p".into(), json!(tp));
    }
    if let Some(stop) = &req.stop {
        p.insert("stop".into(), json!(stop.to_vec()));
    }
    if let Some(seed) = req.seed {
        p.insert("seed".into(), json!(seed));
    }
    Value::Object(p)
}

fn finish_reason(tgi: Option<&str>) -> &'static str {
    match tgi {
        Some("length") => "length",
        _ => "stop", // eos_token, stop_sequence
    }
}

/// A TGI-native target: its two URLs and its compiled chat template. The
/// native API sits at the server's root: a `base_url` ending in `/v1` or
/// `/v1/chat/completions` names that root too; no `base_url`, the model's
/// serverless URL.
#[derive(Debug)]
pub struct Native {
    generate: Endpoint,
    generate_stream: Endpoint,
    template: ChatTemplate,
}

impl Native {
    pub fn new(
        spec: &Target,
        chat_template: Option<&str>,
        settings: &Settings,
    ) -> Result<Native, String> {
        let root = match target::base_url(spec) {
            None => target::serverless_model(spec, settings),
            Some(b) => b
                .trim_end_matches("/chat/completions")
                .trim_end_matches("/v1")
                .to_string(),
        };
        Ok(Native {
            generate: Endpoint::new(format!("{root}/generate")),
            generate_stream: Endpoint::new(format!("{root}/generate_stream")),
            template: ChatTemplate::new(chat_template).map_err(|e| e.to_string())?,
        })
    }

    #[cfg(test)]
    pub fn urls(&self) -> (&str, &str) {
        (self.generate.as_str(), self.generate_stream.as_str())
    }
}

pub async fn chat(
    client: &crate::providers::http::Client,
    target: &Arc<TargetRuntime>,
    native: &Native,
    req: &ChatRequest,
) -> Result<ChatReply, ApiError> {
    req.plain_text_only("TGI-native targets (format: huggingface)")?;
    let prompt = native.template.render(&req.messages).map_err(|e| {
        ApiError::BadRequest(format!(
            "target '{}': the chat template refused these messages: {e}",
            target.spec.id
        ))
    })?;
    let body = http::json(&json!({ "inputs": prompt, "parameters": parameters(req, req.stream) }))?;
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let model = target.spec.model.clone();
    let created = now_unix();

    if !req.stream {
        let deadline = Instant::now() + target.spec.timeout;
        let resp = http::post(client, target, &native.generate, body, deadline).await?;
        let (mut v, _) = json_body(target, resp, deadline).await?;
        // The serverless API wraps the answer in a one-element list.
        if let Value::Array(mut items) = v {
            v = if items.is_empty() {
                Value::Null
            } else {
                items.swap_remove(0)
            };
        }
        let text = v
            .get("generated_text")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ApiError::Upstream(format!(
                    "target '{}' answered without generated_text",
                    target.spec.id
                ))
            })?;
        let details = v.get("details");
        let completion = details
            .and_then(|d| d.get("generated_tokens"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let prompt_tokens = details
            .and_then(|d| d.get("prefill"))
            .and_then(Value::as_array)
            .map(|p| p.len() as u64)
            .unwrap_or(0);
        let reason = finish_reason(
            details
                .and_then(|d| d.get("finish_reason"))
                .and_then(Value::as_str),
        );
        return Ok(ChatReply::Full(Box::new(Completion::built(json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": reason, "logprobs": null}],
            "usage": Usage::new(prompt_tokens, completion),
        })))));
    }

    let deadline = Instant::now() + target.spec.stream_timeout;
    let resp = http::post(client, target, &native.generate_stream, body, deadline).await?;
    let target = target.clone();
    Ok(ChatReply::Stream(channel_stream(move |tx| async move {
        let tid = target.spec.id.clone();
        let head = ChunkHead { id, created, model };
        let chunk = |delta: Value, reason: Option<&str>| head.chunk(delta, reason);
        if tx.send(Ok(head.role())).await.is_err() {
            return;
        }
        let events = http::with_idle_timeout(
            http::sse_data(resp, tid.clone()),
            target.spec.stream_timeout,
            tid.clone(),
        );
        futures::pin_mut!(events);
        while let Some(item) = events.next().await {
            let v = match item.and_then(|data| {
                serde_json::from_str::<Value>(&data).map_err(|_| {
                    ApiError::Upstream(format!(
                        "target '{tid}' sent a stream event that is not JSON"
                    ))
                })
            }) {
                Ok(v) => v,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            if let Some(err) = v.get("error") {
                let msg = err
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| err.to_string());
                let _ = tx
                    .send(Err(ApiError::Upstream(format!(
                        "target '{tid}' reported an error mid-stream: {}",
                        super::http::truncate(&msg, 500)
                    ))))
                    .await;
                return;
            }
            let token = v.get("token");
            let special = token
                .and_then(|t| t.get("special"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let text = token
                .and_then(|t| t.get("text"))
                .and_then(Value::as_str)
                .unwrap_or("");
            if !special
                && !text.is_empty()
                && tx
                    .send(Ok(chunk(json!({"content": text}), None)))
                    .await
                    .is_err()
            {
                return;
            }
            if let Some(details) = v.get("details").filter(|d| !d.is_null()) {
                let reason = finish_reason(details.get("finish_reason").and_then(Value::as_str));
                let _ = tx.send(Ok(chunk(json!({}), Some(reason)))).await;
                // Always sent: streaming.rs counts it and passes it to the
                // client only when the client asked for it.
                let completion = details
                    .get("generated_tokens")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                let prompt = details
                    .get("input_length")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                let _ = tx
                    .send(Ok(head.usage(Usage::new(prompt, completion))))
                    .await;
                return;
            }
        }
        let _ = tx
            .send(Err(ApiError::Upstream(format!(
                "target '{tid}' closed the stream before it finished"
            ))))
            .await;
    })))
}
