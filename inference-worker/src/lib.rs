//! The Sluice inference worker: one model, loaded with mistral.rs, served
//! to gateways over gRPC.
//!
//! - [`hub`]: the Hugging Face download cache — model ids and revisions,
//!   token resolution, listing and fetching with `hf-hub`, path checks,
//!   atomic writes, retries.
//! - [`footprint`]: will the model fit in RAM / VRAM? Checked before loading.
//! - [`device`]: `--device` and what this build can use.
//! - [`engine`]: the model and one generation as a stream of events (own
//!   channel sizing, prompt clamping, stop strings, cancellation);
//!   [`embed`]: embeddings, for embedding models.
//! - [`service`]: the gRPC `Inference` service with the concurrency limit
//!   and bounded queue; [`http`]: `/healthz`, `/readyz`, `/metrics`;
//!   [`metrics`]: the Prometheus registry.
//!
//! [`run`] takes pre-bound listeners so tests can use free ports; it serves
//! health at once and loads the model in the background, so probes see a
//! live-but-not-ready worker while a large model loads.

pub mod device;
mod embed;
pub mod engine;
mod footprint;
mod http;
pub mod hub;
pub mod metrics;
pub mod service;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use engine::{Engine, LoadOptions};
use service::{InferenceService, WorkerState};

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Hub(#[from] hub::HubError),
    #[error("{0}")]
    Footprint(String),
    #[error(transparent)]
    Engine(#[from] engine::EngineError),
    #[error("serving: {0}")]
    Serve(String),
    #[error(transparent)]
    Tls(#[from] sluice_tls::TlsError),
}

/// Loads `opts` (checking the footprint first) and marks `state` ready.
pub async fn load(state: &WorkerState, opts: &LoadOptions) -> Result<(), WorkerError> {
    let est = footprint::estimate(&opts.dir, opts.gguf_file.as_deref())
        .map_err(|e| WorkerError::Footprint(format!("reading {}: {e}", opts.dir.display())))?;
    let backend = opts.device.backend().map_err(WorkerError::Footprint)?;
    let (free, memory) = match backend {
        device::Backend::Cuda(n) => (footprint::available_vram(n), format!("GPU {n} memory")),
        // Metal shares system memory.
        device::Backend::Metal | device::Backend::Cpu => (footprint::available_ram(), "RAM".into()),
    };
    footprint::check(est, free, &memory).map_err(WorkerError::Footprint)?;
    tracing::info!(
        dir = %opts.dir.display(),
        weights = %footprint::gib(est.weights_bytes),
        estimate = %footprint::gib(est.needed_bytes),
        free = free.map(footprint::gib),
        "loading the model"
    );
    let started = std::time::Instant::now();
    let engine = Engine::load(opts).await?;
    tracing::info!(
        device = %engine.info.device,
        dtype = %engine.info.dtype,
        context_length = engine.info.context_length,
        format = engine.info.format,
        secs = started.elapsed().as_secs_f64(),
        "model loaded; ready"
    );
    state.set_engine(Arc::new(engine));
    Ok(())
}

/// Serves gRPC on `grpc` (over TLS with `tls`; mutual TLS when it has a
/// CA) and health/metrics on `http` until `shutdown` resolves. `ready` is awaited in the background (download and load); its
/// failure ends the worker with that error.
pub async fn run(
    grpc: TcpListener,
    http: TcpListener,
    tls: Option<sluice_tls::Files>,
    state: Arc<WorkerState>,
    ready: impl Future<Output = Result<(), WorkerError>> + Send + 'static,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WorkerError> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let http_app = http::router(state.clone());
    let mut http_stop = stop_rx.clone();
    let http_task = tokio::spawn(async move {
        axum::serve(http, http_app)
            .with_graceful_shutdown(async move {
                let _ = http_stop.wait_for(|s| *s).await;
            })
            .await
    });
    // Requests follow the gateway's body limit, which may exceed tonic's
    // 4 MiB default.
    let svc = sluice_proto::wire::inference_server::InferenceServer::new(InferenceService(state))
        .max_decoding_message_size(sluice_proto::wire::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(sluice_proto::wire::MAX_MESSAGE_BYTES);
    let router = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        // Gateways that vanish without closing are noticed by HTTP/2 pings.
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(std::time::Duration::from_secs(5)))
        .add_service(svc);
    let mut grpc_stop = stop_rx.clone();
    let stopped = async move {
        let _ = grpc_stop.wait_for(|s| *s).await;
    };
    let grpc_task = match tls {
        None => {
            let incoming = sluice_tls::grpc::plaintext(grpc);
            tokio::spawn(router.serve_with_incoming_shutdown(incoming, stopped))
        }
        Some(files) => {
            // The certificate (and client CA) follow their files.
            let cert = sluice_tls::Reloading::load(files)?;
            let watch = cert.watch()?;
            let incoming = sluice_tls::grpc::incoming(grpc, &cert)?;
            tokio::spawn(async move {
                let _watch = watch;
                router.serve_with_incoming_shutdown(incoming, stopped).await
            })
        }
    };

    let loaded = tokio::spawn(ready);
    tokio::pin!(shutdown);
    let result = tokio::select! {
        _ = &mut shutdown => Ok(()),
        r = loaded => match r {
            Ok(Ok(())) => {
                shutdown.await;
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(e) => Err(WorkerError::Serve(format!("loading panicked: {e}"))),
        },
    };
    let _ = stop_tx.send(true);
    if let Ok(Err(e)) = grpc_task.await {
        return Err(WorkerError::Serve(e.to_string()));
    }
    if let Ok(Err(e)) = http_task.await {
        return Err(WorkerError::Serve(e.to_string()));
    }
    result
}
