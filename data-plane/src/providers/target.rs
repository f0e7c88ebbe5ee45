//! A target compiled for one config version: its secret resolved and its
//! upstream built — exactly what its protocol needs, with the URL rules of
//! each protocol in that protocol's module (documented in
//! docs/configuration.md). Only `providers` builds one; `runtime` indexes
//! them and the request path calls [`TargetRuntime::chat`] and
//! [`TargetRuntime::embeddings`].

use std::sync::Arc;

use serde_json::Value;
use sluice_proto::pack::{Protocol, Target};

use super::{ChatReply, feature_extraction, openai_compat, tgi, worker};
use crate::error::ApiError;
use crate::openai::{ChatRequest, EmbeddingsRequest};
use crate::settings::{Secret, Serverless, Settings};

#[derive(Debug)]
pub struct TargetRuntime {
    pub spec: Target,
    pub token: Option<Secret>,
    /// Why the target cannot serve (missing secret, placeholder URL).
    pub unavailable: Option<String>,
    /// A Hugging Face target with its own `base_url`: a dedicated Inference
    /// Endpoint, which may be scaled to zero (see `http::post`).
    pub dedicated: bool,
    pub upstream: Upstream,
    /// Counts usage when the upstream reports none (`tokenizer:`).
    pub tokenizer: Option<Arc<crate::counting::Handle>>,
    /// Its metric series of a successful request, once it has served one.
    series: std::sync::OnceLock<crate::metrics::TargetSeries>,
}

/// What a target talks to, one variant per upstream protocol.
// One per target per config version, never moved on the request path:
// boxing the larger variants would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Upstream {
    /// OpenAI-compatible chat completions and embeddings.
    OpenAi(openai_compat::Urls),
    /// TGI's native `/generate` API with a chat template.
    Tgi(tgi::Native),
    /// Hugging Face feature-extraction embeddings.
    FeatureExtraction { url: super::http::Endpoint },
    /// Sluice inference workers over gRPC.
    Workers(Arc<worker::WorkerPool>),
}

/// The model's URL on the Hugging Face Inference API in the retired
/// layout, or under the router's HF Inference provider.
pub(super) fn serverless_model(spec: &Target, settings: &Settings) -> String {
    match settings.serverless() {
        Serverless::Legacy(hf) => format!("{hf}/models/{}", spec.model),
        Serverless::Router(r) => format!("{r}/hf-inference/models/{}", spec.model),
    }
}

/// The operator's `base_url` without a trailing slash.
pub(super) fn base_url(spec: &Target) -> Option<&str> {
    spec.base_url.as_deref().map(|b| b.trim_end_matches('/'))
}

impl TargetRuntime {
    /// Compiles one validated target. A missing secret or a placeholder URL
    /// marks it unavailable (the others still serve); a chat template that
    /// does not compile fails the whole version (validation compiles it
    /// first, so only a bug gets here).
    pub fn compile(spec: Target, settings: &Settings) -> Result<TargetRuntime, String> {
        let mut unavailable = None;
        let token = match &spec.secret_env {
            None => None,
            Some(var) => match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Some(Secret(v.trim().to_string())),
                _ => {
                    unavailable = Some(format!(
                        "environment variable {var} (secret_key_ref.env) is not set"
                    ));
                    None
                }
            },
        };
        if matches!(spec.protocol, Protocol::TgiNative { .. })
            && spec.base_url.is_none()
            && matches!(settings.serverless(), Serverless::Router(_))
        {
            unavailable = Some(
                "TGI's native API has no serverless route through the Hugging Face router; set base_url to your dedicated endpoint, or drop format/provider_type to use the router's OpenAI-compatible chat".into(),
            );
        }
        if let Some(ph) = spec.base_url_placeholder() {
            unavailable = Some(format!(
                "base_url still holds the placeholder {ph}; replace it with your endpoint's value"
            ));
        }
        let upstream = match &spec.protocol {
            Protocol::OpenAiCompatible => {
                Upstream::OpenAi(openai_compat::Urls::new(&spec, settings))
            }
            Protocol::TgiNative { chat_template } => Upstream::Tgi(
                tgi::Native::new(&spec, chat_template.as_deref(), settings).map_err(|e| {
                    format!(
                        "target '{}': its chat_template does not compile: {e}",
                        spec.id
                    )
                })?,
            ),
            Protocol::FeatureExtraction => Upstream::FeatureExtraction {
                url: super::http::Endpoint::new(feature_extraction::url(&spec, settings)),
            },
            Protocol::Worker { workers, .. } => {
                // The CA is read per config version, so a new bundle applies
                // at the next reload; client certificates follow their files.
                let tls = settings.worker_tls.as_ref().and_then(|t| {
                    sluice_tls::client_config(&t.ca, t.identity.clone())
                        .map_err(|e| unavailable = Some(format!("worker TLS: {e}")))
                        .ok()
                });
                Upstream::Workers(Arc::new(worker::WorkerPool::new(&spec.id, workers, tls)))
            }
        };
        let dedicated = spec.family == sluice_proto::pack::Family::HuggingFace
            && spec.base_url.is_some()
            && !matches!(spec.protocol, Protocol::Worker { .. });
        // Only a Hugging Face target's own token goes to the Hub: another
        // provider's key must never leave for a host it was not made for.
        let hub_token = (spec.family == sluice_proto::pack::Family::HuggingFace)
            .then(|| token.as_ref().map(|t| t.expose().to_string()))
            .flatten();
        let tokenizer = spec
            .tokenizer
            .as_ref()
            .map(|source| crate::counting::want(source, hub_token));
        Ok(TargetRuntime {
            dedicated,
            tokenizer,
            series: std::sync::OnceLock::new(),
            spec,
            token,
            unavailable,
            upstream,
        })
    }

    /// The series a successful request through this target counts in.
    pub fn series(&self) -> &crate::metrics::TargetSeries {
        self.series
            .get_or_init(|| crate::metrics::TargetSeries::resolve(&self.spec.id, &self.spec.model))
    }

    pub fn ensure_available(&self) -> Result<(), ApiError> {
        match &self.unavailable {
            Some(why) => Err(ApiError::Unavailable(format!(
                "target '{}' is unavailable: {why}",
                self.spec.id
            ))),
            None => Ok(()),
        }
    }

    /// A chat completion, whole or streamed. Routing sends chat only to
    /// targets that serve it; the refusal below is for a direct caller.
    pub async fn chat(
        self: &Arc<Self>,
        http: &crate::providers::http::Client,
        req: &mut ChatRequest,
        whole: bool,
    ) -> Result<ChatReply, ApiError> {
        self.ensure_available()?;
        match &self.upstream {
            Upstream::OpenAi(urls) => openai_compat::chat(http, self, &urls.chat, req, whole).await,
            Upstream::Tgi(native) => tgi::chat(http, self, native, req).await,
            Upstream::Workers(pool) => worker::chat(self, pool, req).await,
            Upstream::FeatureExtraction { .. } => Err(ApiError::BadRequest(format!(
                "target '{}' serves embeddings only",
                self.spec.id
            ))),
        }
    }

    pub async fn embeddings(
        self: &Arc<Self>,
        http: &crate::providers::http::Client,
        req: &EmbeddingsRequest,
    ) -> Result<Value, ApiError> {
        self.ensure_available()?;
        match &self.upstream {
            Upstream::OpenAi(urls) => {
                openai_compat::embeddings(http, self, &urls.embeddings, req).await
            }
            Upstream::FeatureExtraction { url } => {
                feature_extraction::embeddings(http, self, url, req).await
            }
            Upstream::Workers(pool) => worker::embeddings(self, pool, req).await,
            Upstream::Tgi(_) => Err(ApiError::BadRequest(format!(
                "target '{}' serves chat only",
                self.spec.id
            ))),
        }
    }
}
