//! The worker pool of one `local:huggingface:` target: `host:port`
//! entries re-resolved every few seconds (every address is a worker), the
//! health of each, and the choice of worker (least outstanding requests,
//! ties taking turns).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sluice_proto::wire::ModelInfoRequest;
use sluice_proto::wire::ModelInfoResponse;
use sluice_proto::wire::inference_client::InferenceClient;
use sluice_tls::ServerName;
use tonic::Status;
use tonic::transport::{Channel, Endpoint};

use super::super::target::TargetRuntime;

const RESOLVE_EVERY: Duration = Duration::from_secs(5);
const COOLDOWN: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) struct Worker {
    pub(super) addr: SocketAddr,
    pub(super) client: InferenceClient<Channel>,
    pub(super) outstanding: AtomicUsize,
    pub(super) unhealthy_until: std::sync::Mutex<Option<Instant>>,
    /// Whether it serves the target's model (asked once, by `ModelInfo`).
    pub(super) serves: tokio::sync::OnceCell<Result<(), String>>,
}

impl Worker {
    /// `tls`: the client config and the name the worker's certificate must
    /// carry (the host of the `workers` entry it was resolved from).
    pub(super) fn new(
        addr: SocketAddr,
        tls: Option<(Arc<sluice_tls::ClientConfig>, ServerName<'static>)>,
    ) -> Worker {
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .expect("a socket address is a valid URI")
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true);
        let channel = match tls {
            None => endpoint.connect_lazy(),
            Some((config, name)) => {
                endpoint.connect_with_connector_lazy(sluice_tls::grpc::Connector::new(config, name))
            }
        };
        Worker {
            addr,
            // Embeddings of a full batch exceed tonic's 4 MiB default.
            // 2048 embeddings of 4096 floats is 32 MiB.
            client: InferenceClient::new(channel)
                .max_decoding_message_size(sluice_proto::wire::MAX_MESSAGE_BYTES),
            outstanding: AtomicUsize::new(0),
            unhealthy_until: std::sync::Mutex::new(None),
            serves: tokio::sync::OnceCell::new(),
        }
    }

    pub(super) fn healthy(&self, now: Instant) -> bool {
        self.unhealthy_until
            .lock()
            .unwrap()
            .is_none_or(|until| now >= until)
    }

    pub(super) fn mark_unhealthy(&self) {
        *self.unhealthy_until.lock().unwrap() = Some(Instant::now() + COOLDOWN);
    }

    /// Checks, once per worker, that it serves the target's model (and its
    /// pinned commit, when the target pins one): a pack must not route to
    /// a worker running something else. A worker serving a local folder
    /// names no Hub model and is taken on trust. Transport errors are not
    /// remembered: the next request asks again.
    pub(super) async fn check_model(&self, target: &TargetRuntime) -> Result<(), Status> {
        let verdict = self
            .serves
            .get_or_try_init(|| async {
                let mut req = tonic::Request::new(ModelInfoRequest {});
                req.set_timeout(CONNECT_TIMEOUT);
                let info = self.client.clone().model_info(req).await?.into_inner();
                Ok::<_, Status>(model_matches(&target.spec, &info))
            })
            .await?;
        verdict.clone().map_err(Status::failed_precondition)
    }
}

/// Whether a worker's `ModelInfo` fits a local target.
pub(super) fn model_matches(
    spec: &sluice_proto::pack::Target,
    info: &ModelInfoResponse,
) -> Result<(), String> {
    let hub_id = !info.model_id.starts_with(['/', '.', '~']);
    if hub_id && info.model_id != spec.model {
        return Err(format!(
            "the worker serves {}, not {}",
            info.model_id, spec.model
        ));
    }
    let revision = match &spec.protocol {
        sluice_proto::pack::Protocol::Worker { revision, .. } => revision.as_deref(),
        _ => None,
    };
    let pinned = revision.filter(|r| r.len() == 40 && r.bytes().all(|b| b.is_ascii_hexdigit()));
    if let Some(want) = pinned
        && hub_id
        && !info.revision.eq_ignore_ascii_case(want)
    {
        return Err(format!(
            "the worker serves {} at {}, not at the pinned {want}",
            info.model_id,
            if info.revision.is_empty() {
                "an unknown revision"
            } else {
                &info.revision
            }
        ));
    }
    Ok(())
}

/// Counts a request against a worker while it runs.
pub(super) struct Outstanding(pub(super) Arc<Worker>);

impl Outstanding {
    pub(super) fn new(w: Arc<Worker>) -> Outstanding {
        w.outstanding.fetch_add(1, Ordering::SeqCst);
        Outstanding(w)
    }
}

impl Drop for Outstanding {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Resolved {
    at: Option<Instant>,
    workers: Vec<Arc<Worker>>,
}

/// The workers of one target (rebuilt with each config version).
pub struct WorkerPool {
    target: String,
    pub(super) entries: Vec<String>,
    /// Mutual TLS towards the workers (`--worker-ca` and friends).
    tls: Option<Arc<sluice_tls::ClientConfig>>,
    resolved: tokio::sync::Mutex<Resolved>,
    /// Rotates ties, so idle workers take turns.
    turn: AtomicUsize,
}

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool")
            .field("target", &self.target)
            .field("entries", &self.entries)
            .finish()
    }
}

impl WorkerPool {
    pub fn new(
        target: &str,
        entries: &[String],
        tls: Option<Arc<sluice_tls::ClientConfig>>,
    ) -> WorkerPool {
        WorkerPool {
            target: target.to_string(),
            entries: entries.to_vec(),
            tls,
            resolved: tokio::sync::Mutex::new(Resolved {
                at: None,
                workers: Vec::new(),
            }),
            turn: AtomicUsize::new(0),
        }
    }

    /// The current workers, re-resolving the entries when stale. Workers
    /// that stay in the answer keep their connection and counters.
    pub(super) async fn workers(&self) -> Vec<Arc<Worker>> {
        let mut r = self.resolved.lock().await;
        if r.at.is_some_and(|at| at.elapsed() < RESOLVE_EVERY) {
            return r.workers.clone();
        }
        let mut addrs: Vec<(SocketAddr, &str)> = Vec::new();
        for entry in &self.entries {
            let host = entry.rsplit_once(':').map_or(entry.as_str(), |(h, _)| h);
            let lookup =
                tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::lookup_host(entry.as_str()));
            let found = lookup
                .await
                .unwrap_or_else(|_| Err(std::io::Error::other("DNS lookup timed out")));
            match found {
                Ok(found) => addrs.extend(found.map(|a| (a, host))),
                Err(e) => {
                    tracing::warn!(target_id = %self.target, worker = %entry, error = %e, "cannot resolve worker address")
                }
            }
        }
        addrs.sort();
        addrs.dedup_by_key(|(a, _)| *a);
        if addrs.is_empty() && !r.workers.is_empty() {
            // DNS trouble: keep serving with what we knew.
            r.at = Some(Instant::now());
            return r.workers.clone();
        }
        let old = std::mem::take(&mut r.workers);
        let mut workers = Vec::with_capacity(addrs.len());
        for (a, host) in addrs {
            if let Some(w) = old.iter().find(|w| w.addr == a) {
                workers.push(w.clone());
                continue;
            }
            let tls = match &self.tls {
                None => None,
                Some(config) => {
                    let host = host.trim_matches(['[', ']']).to_string();
                    match ServerName::try_from(host.clone()) {
                        Ok(name) => Some((config.clone(), name)),
                        Err(_) => {
                            tracing::warn!(target_id = %self.target, worker = %host, "not a valid TLS server name; skipping this worker");
                            continue;
                        }
                    }
                }
            };
            workers.push(Arc::new(Worker::new(a, tls)));
        }
        r.workers = workers;
        r.at = Some(Instant::now());
        r.workers.clone()
    }

    /// Least outstanding among healthy workers not yet tried; unhealthy
    /// ones only when nothing else is left. Ties take turns.
    pub(super) fn pick(
        &self,
        workers: &[Arc<Worker>],
        tried: &HashSet<SocketAddr>,
    ) -> Option<Arc<Worker>> {
        let now = Instant::now();
        let candidates: Vec<&Arc<Worker>> = workers
            .iter()
            .filter(|w| !tried.contains(&w.addr))
            .collect();
        let healthy: Vec<&Arc<Worker>> = candidates
            .iter()
            .copied()
            .filter(|w| w.healthy(now))
            .collect();
        let pool = if healthy.is_empty() {
            candidates
        } else {
            healthy
        };
        let least = pool
            .iter()
            .map(|w| w.outstanding.load(Ordering::SeqCst))
            .min()?;
        let best: Vec<&&Arc<Worker>> = pool
            .iter()
            .filter(|w| w.outstanding.load(Ordering::SeqCst) == least)
            .collect();
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        Some((*best[turn % best.len()]).clone())
    }
}
