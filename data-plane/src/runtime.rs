//! A pack compiled for serving: secrets resolved, URLs worked out, lookups
//! indexed. One `Runtime` per config version; requests hold an `Arc` to the
//! one they started with, so a swap never changes a request mid-flight.

use std::collections::HashMap;
use std::sync::Arc;

use sluice_proto::pack::{ClientKey, KeySecret, Pack};

use crate::error::ApiError;
pub use crate::groups::GroupRuntime;
pub use crate::providers::target::TargetRuntime;
pub use crate::settings::Settings;

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
    /// `providers.groups`, by id and by `model`.
    pub groups: HashMap<String, Arc<GroupRuntime>>,
    /// Target id or model id → indices into `targets`, in declaration order.
    by_name: HashMap<String, Vec<usize>>,
    /// SHA-256 (hex) of each client key → the key's settings.
    keys: HashMap<String, ClientKey>,
    /// The compiled policy chain of this version.
    pub chain: crate::policies::Chain,
    pub auditor: Option<Arc<crate::audit::Auditor>>,
    /// The pack's `limits:`.
    pub limits: crate::limits::Limits,
    /// Monotonic per process: which load this is.
    pub generation: u64,
}

impl Runtime {
    /// Compiles a validated pack. A target whose secret is missing is kept
    /// but marked unavailable, so one bad target does not take the others
    /// down; only an audit log that cannot be opened fails the build (a
    /// version that cannot audit must not serve).
    pub fn build(pack: Pack, settings: &Settings, generation: u64) -> Result<Self, String> {
        let refused = settings.allow.check(&pack);
        if !refused.is_empty() {
            return Err(refused.join("; "));
        }
        let targets: Vec<Arc<TargetRuntime>> = pack
            .targets
            .iter()
            .map(|t| TargetRuntime::compile(t.clone(), settings).map(Arc::new))
            .collect::<Result<_, _>>()?;
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, t) in targets.iter().enumerate() {
            by_name.entry(t.spec.id.clone()).or_default().push(i);
        }
        for (i, t) in targets.iter().enumerate() {
            if t.spec.model != t.spec.id {
                by_name.entry(t.spec.model.clone()).or_default().push(i);
            }
        }
        let mut groups = HashMap::new();
        for g in &pack.groups {
            let compiled = Arc::new(GroupRuntime::compile(g.clone(), &targets));
            if let Some(m) = &g.model {
                groups.insert(m.clone(), Arc::clone(&compiled));
            }
            groups.insert(g.id.clone(), compiled);
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
                // Checked above: inside the operator's audit root, if any.
                let mut cfg = cfg.clone();
                if let Ok(Some(path)) = settings.allow.audit_path(&pack) {
                    cfg.path = path.to_string_lossy().into_owned();
                }
                crate::audit::Auditor::new(&cfg, settings.control_plane.as_ref()).map(Arc::new).map_err(|e| {
                    format!(
                        "policies.policy.audit-logger.path: cannot open audit directory '{}': {e}",
                        cfg.path
                    )
                })
            })
            .transpose()?;
        let chain = crate::policies::Chain::build(&pack.chain);
        let limits =
            crate::limits::Limits::new(&pack.limits, &pack.budgets, pack.limit_store.as_ref())?;
        Ok(Runtime {
            pack,
            targets,
            groups,
            by_name,
            keys,
            chain,
            auditor,
            limits,
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
        // A name the pack knows, asked on the other endpoint: say where it
        // is served rather than suggest the very name that was sent.
        if self.by_name.contains_key(model) || self.groups.contains_key(model) {
            let (other, path) = if what == "embeddings" {
                ("chat completions", "/v1/chat/completions")
            } else {
                ("embeddings", "/v1/embeddings")
            };
            return ApiError::ModelNotFound(format!(
                "model '{model}' is not served by this gateway for {what}: it names a target for {other}; send it to {path}"
            ));
        }
        let mut known: Vec<&str> = self
            .by_name
            .keys()
            .chain(self.groups.keys())
            .map(String::as_str)
            .collect();
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

    /// Where a chat request goes. The request's `model` must name a chat
    /// target or group (by id or model id; a group's `model` wins over
    /// targets with that model id); with a `router` in the chain, the
    /// router's choice for the caller's role wins (docs/routing.md).
    pub fn route_chat(&self, model: &str, caller: &Caller) -> Result<Route, ApiError> {
        self.ensure_enabled()?;
        let named = self
            .route_named(model, |t| t.serves_chat(), |g| g.spec.serves_chat)
            .ok_or_else(|| self.not_found(model, "chat completions"))?;
        if let Some(router) = self.pack.router()
            && let Some(id) = router.route(caller.role.as_deref())
            && let Some(r) = self.route_named(id, |t| t.serves_chat(), |g| g.spec.serves_chat)
        {
            return Ok(r);
        }
        Ok(named)
    }

    pub fn route_embeddings(&self, model: &str) -> Result<Route, ApiError> {
        self.ensure_enabled()?;
        self.route_named(
            model,
            |t| t.serves_embeddings(),
            |g| g.spec.serves_embeddings,
        )
        .ok_or_else(|| self.not_found(model, "embeddings"))
    }

    fn route_named(
        &self,
        name: &str,
        target_serves: impl Fn(&sluice_proto::pack::Target) -> bool,
        group_serves: impl Fn(&GroupRuntime) -> bool,
    ) -> Option<Route> {
        if let Some(g) = self.groups.get(name).filter(|g| group_serves(g)) {
            return Some(Route::Group(Arc::clone(g)));
        }
        self.named(name)
            .find(|t| target_serves(&t.spec))
            .map(|t| Route::Target(Arc::clone(t)))
    }
}

/// What a request was routed to: one target, or a group that picks one.
pub enum Route {
    Target(Arc<TargetRuntime>),
    Group(Arc<GroupRuntime>),
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Route::Target(_) => write!(f, "Route::Target({})", self.name()),
            Route::Group(_) => write!(f, "Route::Group({})", self.name()),
        }
    }
}

impl Route {
    /// The target or group id.
    pub fn name(&self) -> &str {
        match self {
            Route::Target(t) => &t.spec.id,
            Route::Group(g) => &g.spec.id,
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
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
                hf_router_url: "http://router.test".into(),
                hf_inference_url: Some("http://hf.test/".into()),
                control_plane: None,
                worker_tls: None,
                metrics_token_file: None,
                allow: Default::default(),
                http: Default::default(),
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
            hf_router_url: "http://router.test".into(),
            hf_inference_url: Some("http://hf.test/".into()),
            control_plane: None,
            worker_tls: None,
            metrics_token_file: None,
            allow: Default::default(),
            http: Default::default(),
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

    /// Where a compiled target's requests go: (chat, embeddings) for
    /// OpenAI-compatible and feature-extraction targets, (generate,
    /// generate_stream) for TGI-native ones.
    fn urls(t: &TargetRuntime) -> (String, String) {
        use crate::providers::target::Upstream;
        match &t.upstream {
            Upstream::OpenAi(u) => (u.chat.as_str().into(), u.embeddings.as_str().into()),
            Upstream::FeatureExtraction { url } => (String::new(), url.as_str().into()),
            Upstream::Tgi(n) => {
                let (g, s) = n.urls();
                (g.to_string(), s.to_string())
            }
            Upstream::Workers(_) => panic!("a worker target has no URLs"),
        }
    }

    #[test]
    fn urls_follow_the_documented_rules() {
        let rt = runtime(TARGETS);
        assert_eq!(urls(&rt.targets[0]).0, "http://up.test/v1/chat/completions");
        assert_eq!(urls(&rt.targets[1]).0, "http://up.test/v1/chat/completions");
        assert_eq!(urls(&rt.targets[2]).1, "http://hf.test/models/org/emb");
        let tgi = runtime(
            "providers:\n  targets:\n    - id: t\n      provider: huggingface:chat:o/m\n      base_url: https://e.test/v1/\n      format: huggingface\n      provider_type: huggingface\n      secret_key_ref: {env: X}\n",
        );
        assert_eq!(urls(&tgi.targets[0]).1, "https://e.test/generate_stream");
        let full = runtime(
            "providers:\n  targets:\n    - id: t\n      provider: huggingface:chat:o/m\n      base_url: https://e.test/v1/chat/completions\n      format: huggingface\n      provider_type: huggingface\n      secret_key_ref: {env: X}\n",
        );
        assert_eq!(urls(&full.targets[0]).0, "https://e.test/generate");
        let serverless = runtime(
            "providers:\n  targets:\n    - id: s\n      provider: huggingface:chat:o/m\n      secret_key_ref: {env: X}\n",
        );
        assert_eq!(
            urls(&serverless.targets[0]).0,
            "http://hf.test/models/o/m/v1/chat/completions"
        );
    }

    #[test]
    fn serverless_targets_go_through_the_router_by_default() {
        let pack = sluice_proto::pack::load(
            "providers:\n  targets:\n    - id: s\n      provider: huggingface:chat:o/m:fastest\n      secret_key_ref: {env: X}\n    - id: e\n      provider: huggingface\n      model: o/emb\n      secret_key_ref: {env: X}\n    - id: t\n      provider: huggingface:chat:o/m\n      format: huggingface\n      provider_type: huggingface\n      secret_key_ref: {env: X}\n    - id: d\n      provider: huggingface:chat:o/m\n      base_url: https://e.test/v1\n      secret_key_ref: {env: X}\n",
        )
        .unwrap()
        .pack;
        let settings = Settings {
            hf_router_url: "http://router.test/".into(),
            hf_inference_url: None,
            control_plane: None,
            worker_tls: None,
            metrics_token_file: None,
            allow: Default::default(),
            http: Default::default(),
        };
        let rt = Runtime::build(pack, &settings, 1).unwrap();
        assert_eq!(
            urls(&rt.targets[0]).0,
            "http://router.test/v1/chat/completions"
        );
        assert_eq!(rt.targets[0].spec.hf_route.as_deref(), Some("fastest"));
        assert_eq!(
            urls(&rt.targets[1]).1,
            "http://router.test/hf-inference/models/o/emb/pipeline/feature-extraction"
        );
        let why = rt.targets[2].unavailable.as_deref().unwrap_or_default();
        assert!(why.contains("no serverless route"), "{why}");
        assert!(!rt.targets[0].dedicated && rt.targets[3].dedicated);
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
        assert_eq!(rt.route_chat("org/big", &caller).unwrap().name(), "big");
        assert_eq!(rt.route_chat("small", &caller).unwrap().name(), "small");
        assert_eq!(rt.route_embeddings("org/emb").unwrap().name(), "emb");
        let err = rt.route_chat("org/emb", &caller).unwrap_err();
        assert_eq!(err.status(), 404);
        assert_eq!(
            err.to_string(),
            "model 'org/emb' is not served by this gateway for chat completions: it names a target for embeddings; send it to /v1/embeddings"
        );
        let chat_only = runtime(
            "providers:\n  targets:\n    - id: c\n      provider: huggingface:chat:org/c\n      base_url: http://up.test/v1\n      secret_key_ref: {env: SLUICE_TEST_UNSET_VAR}\n",
        );
        let err = chat_only.route_embeddings("org/c").unwrap_err().to_string();
        assert!(
            err.ends_with(
                "it names a target for chat completions; send it to /v1/chat/completions"
            ),
            "{err}"
        );
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
        assert_eq!(rt.route_chat("small", &prod).unwrap().name(), "big");
        assert_eq!(
            rt.route_chat("big", &Caller::default()).unwrap().name(),
            "small"
        );
    }

    #[test]
    fn a_group_is_routed_to_by_id_or_model_and_by_the_router() {
        let yaml = format!(
            "{TARGETS}  groups:\n    - id: pool\n      model: org/big\n      members: [small, big]\npolicies:\n  chain: [router]\n  policy:\n    router:\n      rules:\n        - when_role: production\n          target: pool\n"
        );
        let rt = runtime(&yaml);
        let none = Caller::default();
        assert!(matches!(rt.route_chat("pool", &none), Ok(Route::Group(_))));
        // The group's model wins over the target with that model id; the
        // target id still reaches the target alone.
        assert_eq!(rt.route_chat("org/big", &none).unwrap().name(), "pool");
        assert_eq!(rt.route_chat("big", &none).unwrap().name(), "big");
        let prod = Caller {
            key_id: None,
            role: Some("production".into()),
        };
        assert_eq!(rt.route_chat("small", &prod).unwrap().name(), "pool");
        assert!(
            rt.route_embeddings("pool").is_ok(),
            "both members serve embeddings"
        );
    }
}
