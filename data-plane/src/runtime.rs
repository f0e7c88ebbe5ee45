//! A pack compiled for serving: secrets resolved, URLs worked out, lookups
//! indexed. One `Runtime` per config version; requests hold an `Arc` to the
//! one they started with, so a swap never changes a request mid-flight.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use sluice_proto::pack::{ClientKey, KeySecret, Pack, Protocol, Target};

use crate::error::ApiError;
use crate::providers::template::ChatTemplate;

/// Gateway-wide settings that come from the command line, not the pack.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Base of the Hugging Face serverless Inference API. Overridable so that
    /// mirrors, proxies and tests can stand in for it.
    pub hf_inference_url: String,
    /// Set in control-plane mode: where `audit-logger` `destination: api`
    /// ships records.
    pub control_plane: Option<ControlPlaneLink>,
    /// TLS towards inference workers (`local:huggingface:` targets).
    pub worker_tls: Option<ClientTls>,
}

/// A gateway's identity towards its control plane.
#[derive(Debug, Clone)]
pub struct ControlPlaneLink {
    /// gRPC URL, e.g. `http://control-plane:41001` (`https://` with TLS).
    pub url: String,
    pub gateway_id: String,
    pub tls: Option<ClientTls>,
    /// The file holding this gateway's token for the gRPC port.
    pub token_file: Option<std::path::PathBuf>,
}

/// TLS towards the control plane: the CA that signed its certificate and,
/// for mutual TLS, this gateway's certificate.
#[derive(Debug, Clone)]
pub struct ClientTls {
    pub ca: std::path::PathBuf,
    pub identity: Option<Arc<sluice_tls::Reloading>>,
}

pub const DEFAULT_HF_INFERENCE_URL: &str = "https://api-inference.huggingface.co";

/// A credential read from the environment. It has no `Display` and its
/// `Debug` never shows the value, so it cannot leak through a log line or
/// an error; `expose` is the one way to read it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Upstream URLs of a target, worked out once per config version.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub chat: String,
    pub embeddings: String,
    pub generate: String,
    pub generate_stream: String,
}

#[derive(Debug)]
pub struct TargetRuntime {
    pub spec: Target,
    pub token: Option<Secret>,
    /// Why the target cannot serve (missing secret, placeholder URL).
    pub unavailable: Option<String>,
    pub endpoints: Endpoints,
    /// Compiled chat template (TGI-native targets only).
    pub template: Option<crate::providers::template::ChatTemplate>,
    /// The worker pool (local-model targets only).
    pub workers: Option<Arc<crate::providers::worker::WorkerPool>>,
}

impl TargetRuntime {
    pub fn ensure_available(&self) -> Result<(), ApiError> {
        match &self.unavailable {
            Some(why) => Err(ApiError::Unavailable(format!(
                "target '{}' is unavailable: {why}",
                self.spec.id
            ))),
            None => Ok(()),
        }
    }
}

/// Who is calling, as far as routing and audit are concerned.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The client key's public id (never the key).
    pub key_id: Option<String>,
    pub role: Option<String>,
}

pub struct Runtime {
    pub pack: Pack,
    pub targets: Vec<Arc<TargetRuntime>>,
    /// Target id or model id → indices into `targets`, in declaration order.
    by_name: HashMap<String, Vec<usize>>,
    /// SHA-256 (hex) of each client key → the key's settings.
    keys: HashMap<String, ClientKey>,
    /// The compiled policy chain of this version.
    pub chain: crate::policies::Chain,
    pub auditor: Option<Arc<crate::audit::Auditor>>,
    /// Monotonic per process: which load this is.
    pub generation: u64,
}

impl Runtime {
    /// Compiles a validated pack. A target whose secret is missing is kept
    /// but marked unavailable, so one bad target does not take the others
    /// down; only an audit log that cannot be opened fails the build (a
    /// version that cannot audit must not serve).
    pub fn build(pack: Pack, settings: &Settings, generation: u64) -> Result<Self, String> {
        let targets: Vec<Arc<TargetRuntime>> = pack
            .targets
            .iter()
            .map(|t| Arc::new(compile_target(t.clone(), settings)))
            .collect();
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, t) in targets.iter().enumerate() {
            by_name.entry(t.spec.id.clone()).or_default().push(i);
        }
        for (i, t) in targets.iter().enumerate() {
            if t.spec.model != t.spec.id {
                by_name.entry(t.spec.model.clone()).or_default().push(i);
            }
        }
        let mut keys = HashMap::new();
        for k in &pack.clients.keys {
            let hash = match &k.secret {
                KeySecret::Sha256(h) => Some(h.clone()),
                KeySecret::Env(var) => match std::env::var(var) {
                    Ok(v) if !v.is_empty() => Some(sha256_hex(v.as_bytes())),
                    _ => {
                        tracing::warn!(client_key = %k.id, env = %var, "client key variable is not set; this key cannot authenticate");
                        None
                    }
                },
            };
            if let Some(h) = hash {
                keys.insert(h, k.clone());
            }
        }
        let auditor = pack
            .chain
            .iter()
            .find_map(|p| match p {
                sluice_proto::pack::Policy::AuditLogger(cfg) => Some(cfg),
                _ => None,
            })
            .map(|cfg| {
                crate::audit::Auditor::new(cfg, settings.control_plane.as_ref()).map(Arc::new).map_err(|e| {
                    format!(
                        "policies.policy.audit-logger.path: cannot open audit directory '{}': {e}",
                        cfg.path
                    )
                })
            })
            .transpose()?;
        let chain = crate::policies::Chain::build(&pack.chain);
        Ok(Runtime {
            pack,
            targets,
            by_name,
            keys,
            chain,
            auditor,
            generation,
        })
    }

    /// Logs what an operator must know about this version, once per load.
    pub fn log_summary(&self) {
        let chain: Vec<&str> = self.pack.chain.iter().map(|p| p.name()).collect();
        tracing::info!(pack = %self.pack.name, version = %self.pack.version, sha256 = %self.pack.sha256, targets = self.targets.len(), chain = ?chain, "config loaded");
        for t in &self.targets {
            if let Some(why) = &t.unavailable {
                tracing::warn!(target_id = %t.spec.id, "target unavailable: {why}");
            }
        }
        if self.pack.clients.keys.is_empty() && !self.pack.clients.require_key {
            tracing::warn!("no clients.keys configured: the gateway accepts every caller");
        }
        if !self.pack.enabled {
            tracing::warn!(pack = %self.pack.name, "pack is disabled (pack.enabled: false): every request is refused with 503");
        }
    }

    /// Identifies the caller from its bearer key and, if the operator trusts
    /// it, the role header.
    pub fn identify(&self, headers: &axum::http::HeaderMap) -> Result<Caller, ApiError> {
        let clients = &self.pack.clients;
        let mut caller = Caller::default();
        if !clients.keys.is_empty() || clients.require_key {
            let key = headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                })
                .map(str::trim)
                .ok_or_else(|| {
                    ApiError::Unauthorized(
                        "missing API key: send it as 'Authorization: Bearer <key>'".into(),
                    )
                })?;
            let entry = self.keys.get(&sha256_hex(key.as_bytes())).ok_or_else(|| {
                ApiError::Unauthorized(
                    "invalid API key: it matches none of the gateway's client keys".into(),
                )
            })?;
            if let Some(expiry) = entry.expires_at
                && unix_now() >= expiry
            {
                return Err(ApiError::Unauthorized(format!(
                    "API key '{}' has expired: ask the operator for a new key",
                    entry.id
                )));
            }
            caller.key_id = Some(entry.id.clone());
            caller.role = Some(entry.role.clone());
        }
        if clients.trust_role_header
            && let Some(role) = headers
                .get(clients.role_header.as_str())
                .and_then(|v| v.to_str().ok())
        {
            caller.role = Some(role.to_string());
        }
        Ok(caller)
    }

    fn named(&self, model: &str) -> impl Iterator<Item = &Arc<TargetRuntime>> {
        self.by_name
            .get(model)
            .into_iter()
            .flatten()
            .map(|i| &self.targets[*i])
    }

    fn not_found(&self, model: &str, what: &str) -> ApiError {
        let mut known: Vec<&str> = self.by_name.keys().map(String::as_str).collect();
        known.sort_unstable();
        ApiError::ModelNotFound(format!(
            "model '{model}' is not served by this gateway for {what}{}",
            sluice_proto::pack::suggest(model, known.iter().copied())
        ))
    }

    fn ensure_enabled(&self) -> Result<(), ApiError> {
        if self.pack.enabled {
            Ok(())
        } else {
            Err(ApiError::Unavailable(format!(
                "pack '{}' is disabled (pack.enabled: false)",
                self.pack.name
            )))
        }
    }

    /// The target for a chat request. The request's `model` must name a chat
    /// target (by id or model id); with a `router` in the chain, the router's
    /// choice for the caller's role wins (docs/routing.md).
    pub fn route_chat(&self, model: &str, caller: &Caller) -> Result<Arc<TargetRuntime>, ApiError> {
        self.ensure_enabled()?;
        let named = self
            .named(model)
            .find(|t| t.spec.serves_chat())
            .ok_or_else(|| self.not_found(model, "chat completions"))?;
        if let Some(router) = self.pack.router()
            && let Some(id) = router.route(caller.role.as_deref())
            && let Some(t) = self
                .targets
                .iter()
                .find(|t| t.spec.id == id && t.spec.serves_chat())
        {
            return Ok(t.clone());
        }
        Ok(named.clone())
    }

    pub fn route_embeddings(&self, model: &str) -> Result<Arc<TargetRuntime>, ApiError> {
        self.ensure_enabled()?;
        self.named(model)
            .find(|t| t.spec.serves_embeddings())
            .cloned()
            .ok_or_else(|| self.not_found(model, "embeddings"))
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn compile_target(spec: Target, settings: &Settings) -> TargetRuntime {
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
    if let Some(ph) = spec.base_url_placeholder() {
        unavailable = Some(format!(
            "base_url still holds the placeholder {ph}; replace it with your endpoint's value"
        ));
    }
    let endpoints = endpoints(&spec, settings);
    let template = match spec.protocol {
        Protocol::TgiNative => match ChatTemplate::new(spec.chat_template.as_deref()) {
            Ok(t) => Some(t),
            Err(e) => {
                // Validation compiled it already; this is a belt-and-braces path.
                unavailable = Some(format!("its chat_template does not compile: {e}"));
                None
            }
        },
        _ => None,
    };
    let workers = (spec.protocol == Protocol::Worker).then(|| {
        // The CA is read per config version, so a new bundle applies at the
        // next reload; client certificates follow their files.
        let tls = settings.worker_tls.as_ref().and_then(|t| {
            sluice_tls::client_config(&t.ca, t.identity.clone())
                .map_err(|e| unavailable = Some(format!("worker TLS: {e}")))
                .ok()
        });
        Arc::new(crate::providers::worker::WorkerPool::new(
            &spec.id,
            &spec.workers,
            tls,
        ))
    });
    TargetRuntime {
        spec,
        token,
        unavailable,
        endpoints,
        template,
        workers,
    }
}

/// Works out upstream URLs; the rules are documented in docs/configuration.md.
fn endpoints(spec: &Target, settings: &Settings) -> Endpoints {
    let hf = settings.hf_inference_url.trim_end_matches('/');
    let serverless = format!("{hf}/models/{}", spec.model);
    let base = spec.base_url.as_deref().map(|b| b.trim_end_matches('/'));
    let (chat, embeddings) = match base {
        None => (
            format!("{serverless}/v1/chat/completions"),
            format!("{serverless}/v1/embeddings"),
        ),
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
    let native = match base {
        None => serverless.clone(),
        // `…/v1` and `…/v1/chat/completions` both name the server's root
        // for the native API.
        Some(b) => b
            .trim_end_matches("/chat/completions")
            .trim_end_matches("/v1")
            .to_string(),
    };
    let embeddings = match spec.protocol {
        Protocol::FeatureExtraction => base.map(str::to_string).unwrap_or(serverless),
        _ => embeddings,
    };
    Endpoints {
        chat,
        embeddings,
        generate: format!("{native}/generate"),
        generate_stream: format!("{native}/generate_stream"),
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime(yaml: &str) -> Runtime {
        let pack = sluice_proto::pack::load(yaml).unwrap().pack;
        Runtime::build(
            pack,
            &Settings {
                hf_inference_url: "http://hf.test/".into(),
                control_plane: None,
                worker_tls: None,
            },
            1,
        )
        .unwrap()
    }

    const TARGETS: &str = "providers:\n  targets:\n    - id: small\n      provider: openai:org/small\n      base_url: http://up.test/v1\n    - id: big\n      provider: openai:org/big\n      base_url: http://up.test\n    - id: emb\n      provider: huggingface\n      model: org/emb\n      secret_key_ref: {env: SLUICE_TEST_UNSET_VAR}\n";

    #[test]
    fn pushed_keys_expire_and_an_empty_managed_key_set_admits_nobody() {
        let mut pack = sluice_proto::pack::load(TARGETS).unwrap().pack;
        let key = |id: &str, secret: &str, expires_at| sluice_proto::pack::ClientKey {
            id: id.into(),
            role: "r".into(),
            secret: KeySecret::Sha256(sha256_hex(secret.as_bytes())),
            expires_at,
        };
        pack.clients.keys = vec![
            key("old", "sk-old", Some(unix_now() - 1)),
            key("new", "sk-new", Some(unix_now() + 3600)),
        ];
        let settings = Settings {
            hf_inference_url: "http://hf.test/".into(),
            control_plane: None,
            worker_tls: None,
        };
        let rt = Runtime::build(pack.clone(), &settings, 1).unwrap();
        let bearer = |k: &str| {
            let mut h = axum::http::HeaderMap::new();
            h.insert("authorization", format!("Bearer {k}").parse().unwrap());
            h
        };
        let e = rt.identify(&bearer("sk-old")).unwrap_err();
        assert!(e.to_string().contains("'old' has expired"), "{e}");
        assert_eq!(
            rt.identify(&bearer("sk-new")).unwrap().key_id.as_deref(),
            Some("new")
        );

        pack.clients.keys.clear();
        pack.clients.require_key = true;
        let locked = Runtime::build(pack, &settings, 2).unwrap();
        assert!(locked.identify(&bearer("sk-new")).is_err());
        assert!(locked.identify(&axum::http::HeaderMap::new()).is_err());
    }

    #[test]
    fn urls_follow_the_documented_rules() {
        let rt = runtime(TARGETS);
        assert_eq!(
            rt.targets[0].endpoints.chat,
            "http://up.test/v1/chat/completions"
        );
        assert_eq!(
            rt.targets[1].endpoints.chat,
            "http://up.test/v1/chat/completions"
        );
        assert_eq!(
            rt.targets[2].endpoints.embeddings,
            "http://hf.test/models/org/emb"
        );
        let tgi = runtime(
            "providers:\n  targets:\n    - id: t\n      provider: huggingface:chat:o/m\n      base_url: https://e.test/v1/\n      format: huggingface\n      provider_type: huggingface\n      secret_key_ref: {env: X}\n",
        );
        assert_eq!(
            tgi.targets[0].endpoints.generate_stream,
            "https://e.test/generate_stream"
        );
        let full = runtime(
            "providers:\n  targets:\n    - id: t\n      provider: huggingface:chat:o/m\n      base_url: https://e.test/v1/chat/completions\n      format: huggingface\n      provider_type: huggingface\n      secret_key_ref: {env: X}\n",
        );
        assert_eq!(
            full.targets[0].endpoints.generate,
            "https://e.test/generate"
        );
        let serverless = runtime(
            "providers:\n  targets:\n    - id: s\n      provider: huggingface:chat:o/m\n      secret_key_ref: {env: X}\n",
        );
        assert_eq!(
            serverless.targets[0].endpoints.chat,
            "http://hf.test/models/o/m/v1/chat/completions"
        );
    }

    #[test]
    fn missing_secret_marks_only_that_target_unavailable() {
        let rt = runtime(TARGETS);
        assert!(rt.targets[0].unavailable.is_none());
        let err = rt.targets[2].ensure_available().unwrap_err().to_string();
        assert!(
            err.contains("'emb'") && err.contains("SLUICE_TEST_UNSET_VAR"),
            "{err}"
        );
    }

    #[test]
    fn models_resolve_by_target_id_or_model_id_and_by_capability() {
        let rt = runtime(TARGETS);
        let caller = Caller::default();
        assert_eq!(rt.route_chat("org/big", &caller).unwrap().spec.id, "big");
        assert_eq!(rt.route_chat("small", &caller).unwrap().spec.id, "small");
        assert_eq!(rt.route_embeddings("org/emb").unwrap().spec.id, "emb");
        let err = rt.route_chat("org/emb", &caller).unwrap_err();
        assert_eq!(err.status(), 404);
        let err = rt.route_chat("org/smal", &caller).unwrap_err().to_string();
        assert!(err.contains("did you mean 'org/small'"), "{err}");
    }

    #[test]
    fn router_picks_by_role_and_falls_back_to_default() {
        let yaml = format!(
            "{TARGETS}policies:\n  chain: [router]\n  policy:\n    router:\n      rules:\n        - when_role: production\n          target: big\n        - default:\n            target: small\n"
        );
        let rt = runtime(&yaml);
        let prod = Caller {
            key_id: None,
            role: Some("production".into()),
        };
        assert_eq!(rt.route_chat("small", &prod).unwrap().spec.id, "big");
        assert_eq!(
            rt.route_chat("big", &Caller::default()).unwrap().spec.id,
            "small"
        );
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(format!("{:?}", Secret("hf_secret".into())), "Secret(***)");
    }
}
