//! The control plane's Prometheus metrics, served as text at `/metrics`
//! (no authentication, like the gateway's: scrape it from inside the
//! cluster). Labels are fixed sets — results and methods — never gateway
//! ids, operators or paths, so the series count cannot grow with the fleet.

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    pub method: &'static str,
    pub status: u16,
}

pub struct Metrics {
    registry: Registry,
    /// Config streams open on this replica.
    pub gateways_connected: Gauge,
    /// Snapshots sent, and the gateways' answers (`ack` / `nack`).
    pub snapshots_sent: Counter,
    pub snapshot_results: Family<ResultLabels, Counter>,
    /// Fleet-state reloads that changed something.
    pub config_reloads: Counter,
    /// Audit records stored and resent duplicates ignored; batches refused.
    pub audit_records: Family<ResultLabels, Counter>,
    /// Operator API responses by method and status.
    pub api_responses: Family<ApiLabels, Counter>,
}

pub fn get() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| {
        let mut registry = Registry::default();
        let m = Metrics {
            registry: Registry::default(),
            gateways_connected: Gauge::default(),
            snapshots_sent: Counter::default(),
            snapshot_results: Family::default(),
            config_reloads: Counter::default(),
            audit_records: Family::default(),
            api_responses: Family::default(),
        };
        registry.register(
            "sluice_cp_gateways_connected",
            "Gateway config streams open on this replica",
            m.gateways_connected.clone(),
        );
        registry.register(
            "sluice_cp_snapshots_sent",
            "Config snapshots sent to gateways",
            m.snapshots_sent.clone(),
        );
        registry.register(
            "sluice_cp_snapshot_results",
            "Gateway answers to snapshots (ack, nack)",
            m.snapshot_results.clone(),
        );
        registry.register(
            "sluice_cp_config_reloads",
            "Fleet config reloads that changed what gateways run",
            m.config_reloads.clone(),
        );
        registry.register(
            "sluice_cp_audit_records",
            "Audit records ingested (stored, duplicate, refused)",
            m.audit_records.clone(),
        );
        registry.register(
            "sluice_cp_api_responses",
            "Operator API responses by method and status",
            m.api_responses.clone(),
        );
        Metrics { registry, ..m }
    })
}

impl Metrics {
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
