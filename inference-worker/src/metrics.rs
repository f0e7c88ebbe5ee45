//! The worker's Prometheus metrics, served at `/metrics` on the HTTP port.
//! The `llm_*` names are the shared LLM metrics the operating guide lists;
//! the `sluice_worker_*` ones show the queue in front of the engine.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    pub model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub model: String,
    /// invalid_request | overloaded | engine | cancelled
    pub reason: &'static str,
}

pub struct Metrics {
    registry: Registry,
    model: ModelLabels,
    pub requests: Family<ModelLabels, Counter>,
    pub failures: Family<FailureLabels, Counter>,
    pub duration_ms: Family<ModelLabels, Histogram, fn() -> Histogram>,
    pub ttft_ms: Family<ModelLabels, Histogram, fn() -> Histogram>,
    pub decode_tps: Family<ModelLabels, Histogram, fn() -> Histogram>,
    pub prompt_tokens: Family<ModelLabels, Counter>,
    pub completion_tokens: Family<ModelLabels, Counter>,
    pub in_flight: Gauge,
    pub queued: Gauge,
    pub ready: Gauge,
}

fn ms_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 18))
}

fn tps_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 16))
}

impl Metrics {
    pub fn new(model: &str) -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            registry: Registry::default(),
            model: ModelLabels {
                model: model.to_string(),
            },
            requests: Family::default(),
            failures: Family::default(),
            duration_ms: Family::new_with_constructor(ms_histogram),
            ttft_ms: Family::new_with_constructor(ms_histogram),
            decode_tps: Family::new_with_constructor(tps_histogram),
            prompt_tokens: Family::default(),
            completion_tokens: Family::default(),
            in_flight: Gauge::default(),
            queued: Gauge::default(),
            ready: Gauge::default(),
        };
        registry.register(
            "llm_requests",
            "Generation and embedding requests received",
            m.requests.clone(),
        );
        registry.register(
            "llm_failures",
            "Requests that did not complete, by reason",
            m.failures.clone(),
        );
        registry.register(
            "llm_internal_request_duration_ms",
            "Time from accepting a request to its last token, in milliseconds",
            m.duration_ms.clone(),
        );
        registry.register(
            "llm_prompt_tokens",
            "Prompt tokens processed",
            m.prompt_tokens.clone(),
        );
        registry.register(
            "llm_completion_tokens",
            "Completion tokens generated",
            m.completion_tokens.clone(),
        );
        registry.register(
            "sluice_worker_time_to_first_token_ms",
            "Time from accepting a request to its first token, in milliseconds (queue wait included)",
            m.ttft_ms.clone(),
        );
        registry.register(
            "sluice_worker_decode_tokens_per_second",
            "Completion tokens per second after the first token, per generation",
            m.decode_tps.clone(),
        );
        registry.register(
            "sluice_worker_in_flight",
            "Requests holding a concurrency slot",
            m.in_flight.clone(),
        );
        registry.register(
            "sluice_worker_queued",
            "Requests waiting for a concurrency slot",
            m.queued.clone(),
        );
        registry.register(
            "sluice_worker_ready",
            "1 once the model is loaded",
            m.ready.clone(),
        );
        Metrics { registry, ..m }
    }

    pub fn labels(&self) -> &ModelLabels {
        &self.model
    }

    pub fn failure(&self, reason: &'static str) {
        self.failures
            .get_or_create(&FailureLabels {
                model: self.model.model.clone(),
                reason,
            })
            .inc();
    }

    pub fn observe_ms(h: &Histogram, d: Duration) {
        h.observe(d.as_secs_f64() * 1000.0);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
