//! `audit-logger`: one record per request, written by a background thread
//! behind a queue of `queue_capacity` records. A request is admitted
//! before any work is done, against the records still waiting for the
//! writer (not against requests in flight, so slow streams do not crowd
//! anyone out): when the sink cannot keep up the operator's `on_failure`
//! decides up front — `fail_closed` answers 503, `fail_open` serves the
//! request and counts the record it could not keep. An admitted request's
//! record is always queued. Nothing is dropped silently.
//!
//! With `immutable: true` records form a hash chain ([`chain`]); `sluice-gateway
//! audit verify` walks it ([`verify`]).

/// The hash chain, shared with the control plane (which chains what it ingests the same way).
pub use sluice_proto::audit_chain as chain;
mod ship;
mod sink;
pub mod verify;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use sluice_proto::pack::policies::{AuditDestination, AuditLogger as Config, OnFailure};

use crate::error::ApiError;
use crate::openai::Usage;
use crate::policies::{Decision, Outcome};
use crate::settings::ControlPlaneLink;

pub use sink::{Sink, drain_all};

/// What the audit record says about one request. The policy decisions
/// join it as `decisions` when it is written (`include_policy_decisions`).
#[derive(Debug, Clone, Serialize, Default)]
pub struct Record {
    /// Minted by the gateway for this record: the central audit's
    /// de-duplication key. The request id may come from the client
    /// (`x-request-id`), so it cannot be one.
    pub record_id: String,
    pub request_id: String,
    pub time: String,
    pub endpoint: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The group the request was routed to, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub model: String,
    pub status: u16,
    pub stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Where `usage` came from: `upstream`, `tokenizer` (counted here with
    /// the target model's tokenizer) or `estimate` (four bytes a token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_source: Option<&'static str>,
    /// What the request cost, from the serving target's `pricing`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
    /// The budgets the request was charged to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub budgets: Vec<String>,
    pub latency_ms: f64,
    pub overhead_ms: f64,
    /// The request as it left Sluice (after redaction).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<Value>,
    /// The response as the client received it (after redaction).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
}

/// The audit logger of one config version. Sinks outlive versions: two
/// versions writing to the same directory share one sink (and one chain).
pub struct Auditor {
    cfg: Config,
    sink: Arc<Sink>,
}

/// Admission to the audit log: the request's record will be queued.
pub struct Slot {
    admitted: bool,
}

impl Slot {
    /// The queue was full and fail_open let the request through without a
    /// record.
    pub fn is_dropped(&self) -> bool {
        !self.admitted
    }
}

impl Auditor {
    /// `link`: where `destination: api` ships to (control-plane mode).
    pub fn new(cfg: &Config, link: Option<&ControlPlaneLink>) -> std::io::Result<Auditor> {
        let sink = Sink::open(cfg)?;
        if cfg.destination == AuditDestination::Api {
            match link {
                Some(link) => ship::ensure(std::fs::canonicalize(&cfg.path)?, link.clone()),
                None => {
                    tracing::warn!(path = %cfg.path, "audit-logger destination 'api': no control plane is connected in standalone mode; records are kept in the on-disk spool at this path until one is")
                }
            }
        }
        Ok(Auditor {
            cfg: cfg.clone(),
            sink,
        })
    }

    /// Admits this request's record, or lets `on_failure` decide when
    /// `queue_capacity` records are already waiting for the writer.
    pub fn admit(&self) -> Result<Slot, ApiError> {
        if self.sink.pending() < self.sink.capacity {
            return Ok(Slot { admitted: true });
        }
        match self.cfg.on_failure {
                OnFailure::FailClosed => Err(ApiError::Unavailable(
                    "the audit log cannot keep up or is unavailable, and audit-logger.on_failure is fail_closed; retry later".into(),
                )),
                OnFailure::FailOpen => {
                    let n = self.sink.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                    tracing::error!(dropped_total = n, "audit queue full: serving without an audit record (on_failure: fail_open)");
                    Ok(Slot { admitted: false })
                }
        }
    }

    /// Writes the record (shaped by the include_* settings) into its slot.
    /// The answer waits for the returned [`Written`], so a client that got
    /// an answer has a record even if the gateway is killed right after.
    pub fn record(
        &self,
        slot: Slot,
        mut record: Record,
        decisions: &[Decision],
    ) -> Option<Written> {
        if !slot.admitted {
            return None;
        }
        let notable = decisions.iter().any(|d| d.outcome != Outcome::Pass) || record.status >= 400;
        if !self.cfg.log_all_access && !notable {
            return None;
        }
        // The bodies are moved into the record's map, not copied through
        // the serialiser (serialising a `Value` into a `Value` clones it).
        let request = record.request.take().filter(|_| self.cfg.include_request);
        let response = record.response.take().filter(|_| self.cfg.include_response);
        match serde_json::to_value(&record) {
            Ok(Value::Object(mut map)) => {
                if self.cfg.include_policy_decisions {
                    map.insert(
                        "decisions".into(),
                        serde_json::to_value(decisions).unwrap_or_default(),
                    );
                }
                if let Some(v) = request {
                    map.insert("request".into(), v);
                }
                if let Some(v) = response {
                    map.insert("response".into(), v);
                }
                Some(Written {
                    rx: self.sink.send(Value::Object(map)),
                    closed: self.cfg.on_failure == OnFailure::FailClosed,
                })
            }
            Ok(_) => {
                tracing::error!("audit record did not encode as an object");
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "audit record could not be encoded");
                None
            }
        }
    }

    pub fn wants_request(&self) -> bool {
        self.cfg.include_request
    }

    pub fn wants_response(&self) -> bool {
        self.cfg.include_response
    }

    /// Records that fail_open could not keep, since this sink started.
    pub fn dropped(&self) -> u64 {
        self.sink.dropped.load(Ordering::Relaxed)
    }
}

/// How long an answer waits for its record under `fail_closed` before it
/// is withheld (503, or an error event on a stream), and under `fail_open`
/// before it goes anyway (the record stays queued and is written when the
/// sink recovers; only a crash meanwhile loses it).
const WAIT_CLOSED: Duration = Duration::from_secs(5);
const WAIT_OPEN: Duration = Duration::from_secs(1);

/// Resolves once a record is in its file (written, not fsynced: it
/// survives the gateway being killed, not the machine losing power).
pub struct Written {
    rx: tokio::sync::oneshot::Receiver<()>,
    closed: bool,
}

impl Written {
    /// Waits for the write, as `on_failure` says. A writer that stopped
    /// resolves it too (the loss is logged and counted there).
    pub async fn wait(self) -> Result<(), ApiError> {
        let bound = if self.closed { WAIT_CLOSED } else { WAIT_OPEN };
        match tokio::time::timeout(bound, self.rx).await {
            Ok(_) => Ok(()),
            Err(_) if self.closed => Err(ApiError::Unavailable(
                "the audit record could not be written, and audit-logger.on_failure is fail_closed: the answer is withheld; retry later".into(),
            )),
            Err(_) => {
                tracing::warn!("audit record not written yet; answering anyway (on_failure: fail_open)");
                Ok(())
            }
        }
    }
}

/// A successful answer, once its record is written; under `fail_closed`
/// and no record, the 503 that withholds it.
pub async fn answer_when_written(
    resp: axum::response::Response,
    written: Option<Written>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match written {
        Some(w) => match w.wait().await {
            Ok(()) => resp,
            Err(e) => e.into_response(),
        },
        None => resp,
    }
}

/// Holds an error answer's body until its record is written (or the wait
/// gives up): the status line and headers may go, the body does not.
pub fn answer_after(
    resp: axum::response::Response,
    written: Option<Written>,
) -> axum::response::Response {
    use futures::StreamExt;
    let Some(written) = written else { return resp };
    let (parts, body) = resp.into_parts();
    let held = futures::stream::once(async move {
        let _ = written.wait().await;
        body.into_data_stream()
    })
    .flatten();
    axum::response::Response::from_parts(parts, axum::body::Body::from_stream(held))
}

/// Shared counter type for sinks.
pub(crate) type Counter = AtomicU64;

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
