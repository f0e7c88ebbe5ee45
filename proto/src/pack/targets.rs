//! `providers.targets[]`: where requests go, and how to talk to them.

use super::reader::{Diagnostics, MapReader, did_you_mean};
use super::traffic::{self, RetryPolicy};
use super::yaml::{Mark, Node, Value};
use std::time::Duration;

/// How the gateway talks to a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protocol {
    /// OpenAI-compatible chat completions (and embeddings, for `openai:`
    /// targets): HF serverless `huggingface:chat:`, dedicated Inference
    /// Endpoints, vLLM, TGI's Messages API, TEI.
    OpenAiCompatible,
    /// TGI native `/generate` and `/generate_stream` (`format: huggingface`
    /// plus `provider_type: huggingface`): messages rendered with a chat template.
    TgiNative {
        /// Jinja chat template (HF `chat_template` syntax); `None`: ChatML.
        chat_template: Option<String>,
    },
    /// HF feature-extraction (`{"inputs": [...]}` → vectors): bare
    /// `provider: huggingface` without `format`.
    FeatureExtraction,
    /// Sluice inference workers over gRPC (`local:huggingface:ORG/MODEL`).
    Worker {
        /// `host:port` entries; a host that resolves to several addresses (a
        /// Kubernetes headless Service) stands for all of them.
        workers: Vec<String>,
        /// The revision pinned in the provider string.
        revision: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    HuggingFace,
    OpenAi,
    /// A model served by sluice-worker pods.
    Local,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub id: String,
    /// The provider string as written, for logs and `/v1/models`.
    pub provider: String,
    pub family: Family,
    pub protocol: Protocol,
    /// The upstream model id (`org/model`).
    pub model: String,
    /// `None`: the family's default (HF serverless) endpoint.
    pub base_url: Option<String>,
    /// Name of the environment variable holding the API token.
    pub secret_env: Option<String>,
    pub timeout: Duration,
    pub stream_timeout: Duration,
    /// How failed calls to this target are retried (default: never).
    pub retries: RetryPolicy,
    /// Targets tried in order when this one still fails after its retries.
    /// Only this target's own list is followed (a fallback's fallbacks are
    /// not), so a list can never loop.
    pub fallbacks: Vec<String>,
    /// The Hugging Face router's provider choice written after the model
    /// (`huggingface:chat:org/model:fastest`): a provider name, `fastest`
    /// or `cheapest`, sent as `model:choice`.
    pub hf_route: Option<String>,
    /// What a million tokens cost here, for cost budgets.
    pub pricing: Option<super::budgets::Pricing>,
    /// Where the gateway gets the tokenizer that counts usage when this
    /// target's upstream reports none (`None`: one token per four bytes).
    pub tokenizer: Option<TokenizerSource>,
    pub mark: Mark,
}

/// A `tokenizer.json` on the Hugging Face Hub: `ORG/MODEL[@REVISION]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenizerSource {
    pub repo: String,
    /// `None`: the repo's default branch.
    pub revision: Option<String>,
}

impl Target {
    pub fn serves_chat(&self) -> bool {
        !matches!(self.protocol, Protocol::FeatureExtraction)
    }

    /// Worker targets may serve embeddings: a worker running an embedding
    /// model does; one running a text-generation model refuses (400).
    pub fn serves_embeddings(&self) -> bool {
        match self.protocol {
            Protocol::FeatureExtraction | Protocol::Worker { .. } => true,
            Protocol::OpenAiCompatible => self.family == Family::OpenAi,
            Protocol::TgiNative { .. } => false,
        }
    }

    /// A literal `{placeholder}` left in `base_url` (the guide's
    /// `{unique-id}`): the target cannot be reached until it is filled in.
    pub fn base_url_placeholder(&self) -> Option<&str> {
        let url = self.base_url.as_deref()?;
        let start = url.find('{')?;
        let end = url[start..].find('}')? + start;
        Some(&url[start..=end])
    }
}

pub const DEFAULT_TIMEOUT_SECONDS: f64 = 120.0;
pub const DEFAULT_STREAM_TIMEOUT_SECONDS: f64 = 60.0;
const PROVIDER_FORMS: [&str; 5] = [
    "huggingface",
    "huggingface:chat:",
    "openai",
    "openai:",
    "local:huggingface:",
];

pub fn validate_targets(d: &mut Diagnostics, node: &Node, path: &str) -> Vec<Target> {
    let Some(items) = super::reader::items(d, node, path, "targets") else {
        return Vec::new();
    };
    let mut targets: Vec<Target> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        if let Some(t) = validate_target(d, item, &item_path) {
            if targets.iter().any(|o| o.id == t.id) {
                d.error(
                    &format!("{item_path}.id"),
                    t.mark,
                    format!("duplicate target id '{}'; ids must be unique", t.id),
                );
                continue;
            }
            targets.push(t);
        }
    }
    if items.is_empty() {
        d.error(path, node.mark, "at least one target is required");
    }
    traffic::check_fallbacks(d, &targets, path);
    targets
}

fn validate_target(d: &mut Diagnostics, node: &Node, path: &str) -> Option<Target> {
    let errors_before = d.errors.len();
    let mut r = MapReader::new(d, node, path)?;
    let id = r.id(d, "target");
    let provider_node = r.required(d, "provider");
    let provider = r.required_string(d, "provider");
    let model_field = r.string(d, "model");
    let model_mark = r.get("model").map(|n| n.mark).unwrap_or(node.mark);
    let base_url = r.string(d, "base_url");
    let base_url_mark = r.get("base_url").map(|n| n.mark).unwrap_or(node.mark);
    let format = r.choice(d, "format", &["huggingface", "openai"]);
    let provider_type = r.choice(d, "provider_type", &["huggingface", "openai"]);
    let timeout = r
        .number(d, "timeout_seconds", 0.001, 86_400.0)
        .unwrap_or(DEFAULT_TIMEOUT_SECONDS);
    let stream_timeout = r
        .number(d, "stream_timeout_seconds", 0.001, 86_400.0)
        .unwrap_or(DEFAULT_STREAM_TIMEOUT_SECONDS);
    let chat_template = r.string(d, "chat_template");
    let retries = r
        .get("retries")
        .map(|n| traffic::parse_retries(d, n, &r.key_path("retries")))
        .unwrap_or_default();
    let fallbacks = r
        .string_list(d, "fallbacks")
        .map(|l| l.into_iter().map(|(s, _)| s).collect())
        .unwrap_or_default();
    let pricing = r
        .get("pricing")
        .and_then(|n| super::budgets::parse_pricing(d, n, &r.key_path("pricing")));
    let workers_node = r.get("workers");
    let workers = r.string_list(d, "workers");
    let tokenizer_field = r.string(d, "tokenizer");
    let tokenizer_mark = r.get("tokenizer").map(|n| n.mark).unwrap_or(node.mark);
    if let (Some(t), Some(n)) = (&chat_template, r.get("chat_template"))
        && let Err(e) = minijinja::Environment::new().template_from_str(t)
    {
        d.error(
            &r.key_path("chat_template"),
            n.mark,
            format!("the chat template does not compile: {e}"),
        );
    }
    let has_secret_ref = r.get("secret_key_ref").is_some();
    let secret_env = r.get("secret_key_ref").and_then(|n| {
        let mut s = MapReader::new(d, n, &r.key_path("secret_key_ref"))?;
        let env = s.required_string(d, "env");
        if let Some(env) = &env
            && (env.is_empty() || !env.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            d.error(
                &s.key_path("env"),
                n.mark,
                format!("'{env}' is not a valid environment variable name"),
            );
        }
        s.finish(d);
        env
    });
    r.finish(d);

    let provider_mark = provider_node.map(|n| n.mark).unwrap_or(node.mark);
    let provider_path = format!("{path}.provider");
    let provider = provider?;
    let (family, provider_model) = if provider == "huggingface" {
        (Family::HuggingFace, None)
    } else if let Some(m) = provider.strip_prefix("huggingface:chat:") {
        (Family::HuggingFace, Some(m.to_string()))
    } else if provider == "openai" {
        (Family::OpenAi, None)
    } else if let Some(m) = provider.strip_prefix("openai:") {
        (Family::OpenAi, Some(m.to_string()))
    } else if let Some(m) = provider.strip_prefix("local:huggingface:") {
        (Family::Local, Some(m.to_string()))
    } else if provider.starts_with("local:") {
        d.error(
            &provider_path,
            provider_mark,
            format!(
                "'{provider}': local models are written local:huggingface:ORG/MODEL[@REVISION]"
            ),
        );
        return None;
    } else {
        let head = provider.split(':').next().unwrap_or_default();
        d.error(
            &provider_path,
            provider_mark,
            format!(
                "unknown provider '{provider}'{}",
                did_you_mean(head, PROVIDER_FORMS.iter().copied())
            ),
        );
        return None;
    };
    // `org/model:provider` (the router's suffix): model ids have no ':'.
    let (provider_model, hf_route) = match provider_model {
        Some(m) if family == Family::HuggingFace && m.contains(':') => {
            let (model, route) = m.split_once(':').unwrap_or((&m, ""));
            if route.is_empty()
                || !route
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                d.error(
                    &provider_path,
                    provider_mark,
                    format!("'{route}' after the model is not a provider choice: write a provider name, fastest or cheapest (huggingface:chat:ORG/MODEL:fastest)"),
                );
            }
            (Some(model.to_string()), Some(route.to_string()))
        }
        other => (other, None),
    };
    if provider_model.as_deref() == Some("") {
        d.error(
            &provider_path,
            provider_mark,
            format!("'{provider}' names no model: write {provider}{{org/model}}"),
        );
    }

    let (provider_model, revision) = match (family, provider_model) {
        (Family::Local, Some(m)) => {
            let (repo, rev) = match m.split_once('@') {
                Some((repo, rev)) => (repo.to_string(), Some(rev.to_string())),
                None => (m, None),
            };
            check_local_model(d, &provider_path, provider_mark, &repo, rev.as_deref());
            (Some(repo), rev)
        }
        (_, m) => (m, None),
    };
    let model = match (provider_model, model_field) {
        (Some(p), Some(m)) if p != m => {
            d.error(
                &format!("{path}.model"),
                model_mark,
                format!("model '{m}' contradicts the provider's model '{p}'; drop one of them"),
            );
            p
        }
        (Some(p), _) => p,
        (None, Some(m)) => m,
        (None, None) => {
            d.error(
                path,
                node.mark,
                format!("provider '{provider}' needs a 'model' (the full org/model id)"),
            );
            String::new()
        }
    };

    let hf_translate = match (format, provider_type) {
        (Some("huggingface"), Some("huggingface")) => true,
        (Some("huggingface"), other) => {
            d.error(path, node.mark, format!("format: huggingface needs provider_type: huggingface as well (found {}); the translation to TGI's native inputs/parameters schema is enabled only by both together", other.unwrap_or("none")));
            false
        }
        (other, Some("huggingface")) => {
            d.error(path, node.mark, format!("provider_type: huggingface needs format: huggingface as well (found {}); the translation to TGI's native inputs/parameters schema is enabled only by both together", other.unwrap_or("none")));
            false
        }
        _ => false,
    };
    if hf_translate && family != Family::HuggingFace {
        d.error(
            path,
            node.mark,
            "format: huggingface applies to huggingface providers only",
        );
    }
    let tgi = family == Family::HuggingFace && hf_translate;
    if tgi && let Some(route) = &hf_route {
        d.error(
            &provider_path,
            provider_mark,
            format!("the provider choice ':{route}' applies to the router's OpenAI-compatible chat; TGI-native targets (format: huggingface) take none"),
        );
    }
    if !tgi
        && base_url.is_some()
        && let Some(route) = &hf_route
    {
        // A dedicated endpoint serves one model; only the router reads
        // the suffix, so it is most likely left over from a serverless
        // target.
        d.warn(
            &provider_path,
            provider_mark,
            format!("the provider choice ':{route}' is read by the Hugging Face router only; with base_url the endpoint receives the model as '{model}:{route}'"),
        );
    }
    if chat_template.is_some() && !tgi {
        d.warn(
            &format!("{path}.chat_template"),
            node.mark,
            "chat_template is used only with format: huggingface (TGI native); it is ignored here",
        );
    }

    let workers = workers.unwrap_or_default();
    if family == Family::Local {
        check_local(
            d,
            path,
            node,
            &workers,
            workers_node,
            &base_url,
            hf_translate,
        );
    } else if let Some(n) = workers_node {
        d.error(
            &format!("{path}.workers"),
            n.mark,
            "workers applies to local:huggingface: targets only",
        );
    }

    // Local targets were checked above (base_url is refused there).
    if let Some(url) = base_url.as_ref().filter(|_| family != Family::Local) {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            d.error(
                &format!("{path}.base_url"),
                base_url_mark,
                format!("'{url}' is not an http:// or https:// URL"),
            );
        }
    } else if family == Family::OpenAi {
        d.error(
            path,
            node.mark,
            format!(
                "provider '{provider}' needs a base_url (the OpenAI-compatible server's /v1 URL)"
            ),
        );
    }
    if family == Family::HuggingFace && !has_secret_ref {
        d.error(path, node.mark, "huggingface targets need secret_key_ref.env: the environment variable holding the Hugging Face token (e.g. HF_API_TOKEN)");
    }

    let protocol = match (family, hf_translate, provider.as_str()) {
        (Family::Local, _, _) => Protocol::Worker {
            workers: workers.into_iter().map(|(w, _)| w).collect(),
            revision,
        },
        (Family::HuggingFace, true, _) => Protocol::TgiNative { chat_template },
        (Family::HuggingFace, false, "huggingface") => Protocol::FeatureExtraction,
        _ => Protocol::OpenAiCompatible,
    };
    let tokenizer = tokenizer_source(
        d,
        &format!("{path}.tokenizer"),
        tokenizer_mark,
        tokenizer_field.as_deref(),
        family,
        &model,
    );
    let target = Target {
        id: id.unwrap_or_default(),
        provider,
        family,
        protocol,
        model,
        base_url,
        secret_env,
        timeout: Duration::from_secs_f64(timeout),
        stream_timeout: Duration::from_secs_f64(stream_timeout),
        retries,
        fallbacks,
        hf_route,
        pricing,
        tokenizer,
        mark: node.mark,
    };
    if let Some(ph) = target.base_url_placeholder() {
        d.warn(&format!("{path}.base_url"), base_url_mark, format!("base_url still holds the placeholder {ph}; this target answers 503 until it is replaced with your endpoint's value"));
    }
    (d.errors.len() == errors_before).then_some(target)
}

/// `tokenizer:` as written, or the default: a Hugging Face target whose
/// model is a Hub id counts with that model's tokenizer; other targets have
/// none unless one is named (a worker always reports usage itself). `none`
/// turns the default off.
fn tokenizer_source(
    d: &mut Diagnostics,
    path: &str,
    mark: Mark,
    field: Option<&str>,
    family: Family,
    model: &str,
) -> Option<TokenizerSource> {
    let Some(spec) = field.map(str::trim) else {
        return (family == Family::HuggingFace && model.contains('/') && is_hub_model_id(model))
            .then(|| TokenizerSource {
                repo: model.to_string(),
                revision: None,
            });
    };
    if spec == "none" {
        return None;
    }
    if family == Family::Local {
        d.error(
            path,
            mark,
            "tokenizer does not apply to local:huggingface: targets: the worker counts usage with the model's own tokenizer",
        );
        return None;
    }
    let (repo, revision) = match spec.split_once('@') {
        Some((repo, rev)) => (repo, Some(rev)),
        None => (spec, None),
    };
    if !repo.contains('/') || !is_hub_model_id(repo) {
        d.error(
            path,
            mark,
            format!("'{spec}' is not a Hugging Face model id: write ORG/MODEL[@REVISION] (the repo whose tokenizer.json counts usage), or none"),
        );
        return None;
    }
    if let Some(rev) = revision
        && !is_clean_revision(rev)
    {
        d.error(
            path,
            mark,
            format!("revision '{rev}' is not clean: use letters, digits, '_', '-' and '.' (a commit SHA is safe)"),
        );
        return None;
    }
    Some(TokenizerSource {
        repo: repo.to_string(),
        revision: revision.map(str::to_string),
    })
}

/// `local:huggingface:` targets: workers are `host:port`; HTTP-only keys
/// make no sense for them and would silently do nothing.
fn check_local(
    d: &mut Diagnostics,
    path: &str,
    node: &Node,
    workers: &[(String, Mark)],
    workers_node: Option<&Node>,
    base_url: &Option<String>,
    hf_translate: bool,
) {
    match workers_node {
        None => d.error(
            path,
            node.mark,
            "local:huggingface: targets need workers: a list of sluice-worker addresses (host:port), or one DNS name whose every address is a worker (a Kubernetes headless Service)",
        ),
        Some(n) if workers.is_empty() && matches!(n.value, Value::Seq(_)) => d.error(
            &format!("{path}.workers"),
            n.mark,
            "workers is empty; list at least one host:port",
        ),
        Some(_) => {}
    }
    for (i, (w, mark)) in workers.iter().enumerate() {
        let ok = w.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !ok {
            d.error(
                &format!("{path}.workers[{i}]"),
                *mark,
                format!("'{w}' is not host:port (e.g. sluice-worker-0.sluice-worker:50051)"),
            );
        }
    }
    if base_url.is_some() {
        d.error(
            &format!("{path}.base_url"),
            node.mark,
            "base_url does not apply to local:huggingface: targets; list the workers under workers",
        );
    }
    if hf_translate {
        d.error(
            path,
            node.mark,
            "format/provider_type do not apply to local:huggingface: targets (workers speak gRPC)",
        );
    }
}

/// A Hugging Face model id: `ORG/MODEL` or a legacy single name; letters,
/// digits, `-`, `_`, `.`, no part starting with `.` and no `..`. The worker
/// and pack validation share this rule.
pub fn is_hub_model_id(repo: &str) -> bool {
    let part_ok = |p: &str| {
        !p.is_empty()
            && !p.starts_with('.')
            && !p.contains("..")
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    let parts: Vec<&str> = repo.split('/').collect();
    parts.len() <= 2 && parts.iter().all(|p| part_ok(p))
}

/// A revision safe to become a folder name: letters, digits, `_`, `-`,
/// `.`, never `..` (so no `/`: `refs/pr/1` is refused).
pub fn is_clean_revision(rev: &str) -> bool {
    !rev.is_empty()
        && rev != "."
        && !rev.contains("..")
        && rev
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
}

/// `ORG/MODEL[@REVISION]` by the worker's own rules, so a pack cannot name
/// a model no worker could be started with.
fn check_local_model(d: &mut Diagnostics, path: &str, mark: Mark, repo: &str, rev: Option<&str>) {
    if !is_hub_model_id(repo) {
        d.error(
            path,
            mark,
            format!("'{repo}' is not a Hugging Face model id: write local:huggingface:ORG/MODEL[@REVISION]"),
        );
    }
    if let Some(rev) = rev
        && !is_clean_revision(rev)
    {
        d.error(
            path,
            mark,
            format!("revision '{rev}' is not clean: use letters, digits, '_', '-' and '.' (a commit SHA is safe)"),
        );
    }
}
