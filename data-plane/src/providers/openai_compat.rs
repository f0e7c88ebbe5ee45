//! OpenAI-compatible upstreams: HF serverless chat, dedicated Inference
//! Endpoints, vLLM, TGI's Messages API, TEI. The request passes through with
//! only `model` rewritten, so tools, response_format and other fields reach
//! the upstream untouched.

use std::sync::Arc;

use futures::StreamExt;
use serde_json::Value;
use tokio::time::Instant;

use super::http::Endpoint;
use super::target::{self, TargetRuntime};
use super::{ChatReply, channel_stream, completion_body, http, json_body};
use crate::error::ApiError;
use crate::openai::{ChatRequest, EmbeddingsRequest};
use crate::settings::{Serverless, Settings};
use sluice_proto::pack::Target;

/// Where an OpenAI-compatible target's chat and embeddings go. Rules: no
/// `base_url`, the Hugging Face router's `/v1/…` (or, with the legacy
/// layout, the serverless model URL + `/v1/…`); a `base_url`
/// ending in `/chat/completions` is the chat URL itself; one ending in `/v1`
/// gets `/chat/completions` or `/embeddings`; any other gets `/v1/…`.
#[derive(Debug)]
pub struct Urls {
    pub chat: Endpoint,
    pub embeddings: Endpoint,
}

impl Urls {
    pub fn new(spec: &Target, settings: &Settings) -> Urls {
        let (chat, embeddings) = match target::base_url(spec) {
            None => match settings.serverless() {
                Serverless::Router(r) => (
                    format!("{r}/v1/chat/completions"),
                    format!("{r}/v1/embeddings"),
                ),
                Serverless::Legacy(_) => {
                    let model = target::serverless_model(spec, settings);
                    (
                        format!("{model}/v1/chat/completions"),
                        format!("{model}/v1/embeddings"),
                    )
                }
            },
            Some(b) if b.ends_with("/chat/completions") => (
                b.to_string(),
                format!("{}/embeddings", b.trim_end_matches("/chat/completions")),
            ),
            Some(b) if b.ends_with("/v1") => {
                (format!("{b}/chat/completions"), format!("{b}/embeddings"))
            }
            Some(b) => (
                format!("{b}/v1/chat/completions"),
                format!("{b}/v1/embeddings"),
            ),
        };
        Urls {
            chat: Endpoint::new(chat),
            embeddings: Endpoint::new(embeddings),
        }
    }
}

pub async fn chat(
    client: &crate::providers::http::Client,
    target: &Arc<TargetRuntime>,
    url: &Endpoint,
    req: &mut ChatRequest,
    whole: bool,
) -> Result<ChatReply, ApiError> {
    // The client's request as it is, with the target's model id: written
    // straight from the typed request, without a `Value` in between.
    // Streams always ask for the usage chunk, so limits, metrics and the
    // audit count every stream; streaming.rs passes it on only to clients
    // that asked (`stream_options.include_usage`).
    let upstream_model = match &target.spec.hf_route {
        Some(route) => format!("{}:{route}", target.spec.model),
        None => target.spec.model.clone(),
    };
    let client_model = std::mem::replace(&mut req.model, upstream_model);
    let client_options = req.stream_options.clone();
    if req.stream {
        req.stream_options = Some(crate::openai::StreamOptions {
            include_usage: true,
        });
    }
    let body = http::json(req);
    req.model = client_model;
    req.stream_options = client_options;
    let body = body?;
    if !req.stream {
        let deadline = Instant::now() + target.spec.timeout;
        let resp = http::post(client, target, url, body, deadline).await?;
        // The upstream's bytes go to the client unless a policy changes
        // the answer (see `Completion`).
        return Ok(ChatReply::Full(Box::new(
            completion_body(target, resp, deadline, whole).await?,
        )));
    }
    let deadline = Instant::now() + target.spec.stream_timeout;
    let resp = http::post(client, target, url, body, deadline).await?;
    let target = target.clone();
    Ok(ChatReply::Stream(channel_stream(move |tx| async move {
        let id = target.spec.id.clone();
        let events = http::with_idle_timeout(
            http::sse_data(resp, id.clone()),
            target.spec.stream_timeout,
            id.clone(),
        );
        futures::pin_mut!(events);
        let mut finished = false;
        while let Some(item) = events.next().await {
            let chunk = match item {
                Ok(data) if data.trim() == "[DONE]" => return,
                Ok(data) => match serde_json::from_str::<Value>(&data) {
                    Ok(v) if v.get("error").is_some() => Err(ApiError::Upstream(format!(
                        "target '{id}' reported an error mid-stream: {}",
                        super::http::truncate(
                            &v.pointer("/error/message")
                                .or_else(|| v.get("error"))
                                .map(value_text)
                                .unwrap_or_default(),
                            500
                        )
                    ))),
                    Ok(v) => {
                        finished |= v
                            .pointer("/choices/0/finish_reason")
                            .is_some_and(|f| !f.is_null());
                        Ok(v)
                    }
                    Err(_) => Err(ApiError::Upstream(format!(
                        "target '{id}' sent a stream event that is not JSON"
                    ))),
                },
                Err(e) => Err(e),
            };
            let failed = chunk.is_err();
            if tx.send(chunk).await.is_err() || failed {
                return;
            }
        }
        // Closed without [DONE]: complete only if a finish_reason was seen
        // (some servers omit [DONE]); otherwise the stream broke.
        if !finished {
            let _ = tx
                .send(Err(ApiError::Upstream(format!(
                    "target '{id}' closed the stream before it finished"
                ))))
                .await;
        }
    })))
}

pub async fn embeddings(
    client: &crate::providers::http::Client,
    target: &Arc<TargetRuntime>,
    url: &Endpoint,
    req: &EmbeddingsRequest,
) -> Result<Value, ApiError> {
    let mut body = serde_json::to_value(req).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    body["model"] = Value::String(target.spec.model.clone());
    let deadline = Instant::now() + target.spec.timeout;
    let resp = http::post(client, target, url, http::json(&body)?, deadline).await?;
    Ok(json_body(target, resp, deadline).await?.0)
}

fn value_text(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}
