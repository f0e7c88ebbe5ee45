//! Prometheus metrics, served as text at `/metrics`. Process-wide, like the
//! registry a scraper sees. Every label value comes from the config (target
//! ids, model ids, policy names) or a fixed set (outcomes, status codes), so
//! clients cannot grow the number of series: a model name the gateway does
//! not serve is counted as `unknown`.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    pub target: String,
    pub model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub target: String,
    pub model: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabels {
    pub policy: &'static str,
    pub stage: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreLabels {
    /// `fail_open` or `fail_closed`: what the gateway did instead.
    pub on_unavailable: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BudgetLabels {
    pub budget: String,
    /// The key id or role the budget counts (empty for `global`).
    pub subject: String,
    /// `tokens` or `cost` (in the currency of the targets' pricing).
    pub unit: &'static str,
}

type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabels {
    pub group: String,
    pub target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub target: String,
    pub status: u16,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The series of one target that every successful request touches,
/// resolved once, on the target's first success: a family lookup clones
/// both label strings and hashes them under the family's lock, several
/// times per request otherwise. The handles share their values with the
/// families, so `/metrics` shows one series either way.
#[derive(Debug)]
pub struct TargetSeries {
    pub success: Counter,
    pub duration_ms: Histogram,
    pub prompt_tokens: Counter,
    pub completion_tokens: Counter,
    pub upstream_ok: Counter,
}

impl TargetSeries {
    pub fn resolve(target: &str, model: &str) -> TargetSeries {
        let m = get();
        let labels = TargetLabels {
            target: target.to_string(),
            model: model.to_string(),
        };
        TargetSeries {
            success: m
                .requests
                .get_or_create(&OutcomeLabels {
                    target: target.to_string(),
                    model: model.to_string(),
                    outcome: "success",
                })
                .clone(),
            duration_ms: m.duration_ms.get_or_create(&labels).clone(),
            prompt_tokens: m.prompt_tokens.get_or_create(&labels).clone(),
            completion_tokens: m.completion_tokens.get_or_create(&labels).clone(),
            upstream_ok: m
                .upstream_status
                .get_or_create(&StatusLabels {
                    target: target.to_string(),
                    status: 200,
                })
                .clone(),
        }
    }
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<OutcomeLabels, Counter>,
    pub failures: Family<OutcomeLabels, Counter>,
    pub duration_ms: HistogramFamily<TargetLabels>,
    pub prompt_tokens: Family<TargetLabels, Counter>,
    pub completion_tokens: Family<TargetLabels, Counter>,
    pub ttft_ms: HistogramFamily<TargetLabels>,
    pub overhead_ms: Histogram,
    pub decisions: Family<PolicyLabels, Counter>,
    pub upstream_status: Family<StatusLabels, Counter>,
    pub config_generation: Gauge,
    pub audit_dropped: Counter,
    pub audit_quarantined: Counter,
    pub overloaded: Counter,
    pub limit_store_unavailable: Family<StoreLabels, Counter>,
    pub ejections: Family<GroupLabels, Counter>,
    pub budget_spent: Family<BudgetLabels, FloatGauge>,
    pub budget_limit: Family<BudgetLabels, FloatGauge>,
    pub cost: Family<TargetLabels, Counter<f64, std::sync::atomic::AtomicU64>>,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 18)) // 1 ms … ~2 min
}

fn overhead_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 16)) // 10 µs … ~0.3 s
}

pub fn get() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            requests: Family::default(),
            failures: Family::default(),
            duration_ms: Family::new_with_constructor(latency_histogram),
            prompt_tokens: Family::default(),
            completion_tokens: Family::default(),
            ttft_ms: Family::new_with_constructor(latency_histogram),
            overhead_ms: overhead_histogram(),
            decisions: Family::default(),
            upstream_status: Family::default(),
            config_generation: Gauge::default(),
            audit_dropped: Counter::default(),
            audit_quarantined: Counter::default(),
            overloaded: Counter::default(),
            limit_store_unavailable: Family::default(),
            ejections: Family::default(),
            budget_spent: Family::default(),
            budget_limit: Family::default(),
            cost: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "llm_requests",
            "Requests served, by target, model and outcome",
            m.requests.clone(),
        );
        registry.register(
            "llm_failures",
            "Requests that failed, by target, model and failure kind",
            m.failures.clone(),
        );
        registry.register(
            "llm_internal_request_duration_ms",
            "Whole request duration in milliseconds",
            m.duration_ms.clone(),
        );
        registry.register(
            "llm_prompt_tokens",
            "Prompt tokens: reported by upstreams, else counted by the gateway (see the audit record's usage_source)",
            m.prompt_tokens.clone(),
        );
        registry.register(
            "llm_completion_tokens",
            "Completion tokens: reported by upstreams, else counted by the gateway (see the audit record's usage_source)",
            m.completion_tokens.clone(),
        );
        registry.register(
            "sluice_time_to_first_token_ms",
            "Time to the first streamed token in milliseconds",
            m.ttft_ms.clone(),
        );
        registry.register(
            "sluice_overhead_ms",
            "Time spent in Sluice itself per request (excluding the upstream), milliseconds",
            m.overhead_ms.clone(),
        );
        registry.register(
            "sluice_policy_decisions",
            "Policy decisions by policy, stage and outcome",
            m.decisions.clone(),
        );
        registry.register(
            "sluice_upstream_responses",
            "Upstream HTTP responses by target and status code",
            m.upstream_status.clone(),
        );
        registry.register(
            "sluice_config_generation",
            "Which config load (1, 2, …) the gateway is serving",
            m.config_generation.clone(),
        );
        registry.register(
            "sluice_audit_dropped_records",
            "Audit records not kept because the sink was full (on_failure: fail_open)",
            m.audit_dropped.clone(),
        );
        registry.register(
            "sluice_audit_quarantined_records",
            "Spooled audit records the control plane would refuse (torn or oversized), set aside in quarantine.jsonl",
            m.audit_quarantined.clone(),
        );
        registry.register(
            "sluice_overloaded_requests",
            "API requests refused with 503 because --max-concurrent-requests were in flight",
            m.overloaded.clone(),
        );
        registry.register(
            "sluice_limit_store_unavailable",
            "Limit checks the shared store did not answer in time, by what the gateway did instead",
            m.limit_store_unavailable.clone(),
        );
        registry.register(
            "sluice_target_ejections",
            "Group members ejected after consecutive failures, by group and target",
            m.ejections.clone(),
        );
        registry.register(
            "sluice_budget_spent",
            "Spent in the current period of each budget (per key or role), as last seen by this gateway",
            m.budget_spent.clone(),
        );
        registry.register(
            "sluice_budget_limit",
            "Each budget's ceiling per period",
            m.budget_limit.clone(),
        );
        registry.register(
            "sluice_cost",
            "Cost of the requests served, from the targets' pricing, by target and model",
            m.cost.clone(),
        );
        Metrics { registry, ..m }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
