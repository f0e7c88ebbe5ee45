//! The Sluice control plane.
//!
//! - [`db`]: Postgres — the embedded migrations (`migrations/`), the
//!   bootstrap admin, secret hashing, the admin history.
//! - [`auth`]: operator tokens and the admin / editor / viewer roles.
//! - [`api`]: the operator REST API (packs, versions, deployments, targets,
//!   client keys, operators, fleet status, history) and its OpenAPI document.
//! - [`console`]: the web console at `/console` (server-rendered pages on
//!   the API's own handlers, session cookies).
//! - [`fleet`]: what each gateway group should run, kept current by
//!   LISTEN/NOTIFY plus a poll.
//! - [`gateway_auth`]: who may call the gRPC port (gateway tokens, client
//!   certificates) and for which gateway id.
//! - [`push`]: the gRPC config stream to gateways, with ACK/NACK recording.
//! - [`audit`]: audit ingestion from gateways (gRPC), retention by day
//!   partition, chain verification.
//! - [`state`]: what the API's handlers share (the pool).
//! - [`error`]: the API's one error type; [`metrics`]: Prometheus text at
//!   `/metrics`.
//!
//! [`run`] takes pre-bound listeners so tests can use free ports.

mod api;
mod audit;
mod auth;
mod console;
pub mod db;
mod error;
mod fleet;
mod gateway_auth;
mod metrics;
mod push;
mod state;

use std::future::Future;
use std::time::Duration;

use sluice_proto::wire::MAX_MESSAGE_BYTES;
use sluice_proto::wire::audit_service_server::AuditServiceServer;
use sluice_proto::wire::config_service_server::ConfigServiceServer;
use sqlx::PgPool;
use tokio::net::TcpListener;

/// Serves the operator API on `http` and the gateway gRPC services on
/// `grpc` until `shutdown` resolves. The database must be migrated.
pub async fn run(
    pool: PgPool,
    http: TcpListener,
    grpc: TcpListener,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let state = fleet::watch_state(pool.clone(), options.poll).await?;
    if let Some(days) = options.audit_retention_days {
        tokio::spawn(retention(pool.clone(), days));
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    if options.allow_unauthenticated_gateways {
        tracing::warn!(
            "--allow-unauthenticated-gateways: any client of the gRPC port can read every snapshot and write audit records; use only in development"
        );
    }
    let auth = std::sync::Arc::new(gateway_auth::GatewayAuth::new(
        pool.clone(),
        options.allow_unauthenticated_gateways,
    ));
    let push = ConfigServiceServer::new(push::ConfigPush {
        pool: pool.clone(),
        state,
        auth: auth.clone(),
    })
    .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let mut grpc_stop = stop_rx.clone();
    let grpc_stop = async move {
        let _ = grpc_stop.wait_for(|s| *s).await;
    };
    let router = tonic::transport::Server::builder()
        // Dead gateways (and half-open connections) are detected by HTTP/2
        // pings, not by waiting for TCP to time out.
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(Duration::from_secs(5)))
        .add_service(push)
        .add_service(
            AuditServiceServer::new(audit::Ingest {
                pool: pool.clone(),
                auth,
            })
            .max_decoding_message_size(MAX_MESSAGE_BYTES),
        );
    type Serving =
        std::pin::Pin<Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>>;
    let grpc_server: Serving = match &options.grpc_tls {
        None => Box::pin(
            router.serve_with_incoming_shutdown(sluice_tls::grpc::plaintext(grpc), grpc_stop),
        ),
        Some(files) => {
            let cert = sluice_tls::Reloading::load(files.clone())?;
            let watch = cert.watch()?;
            let incoming = sluice_tls::grpc::incoming(grpc, &cert)?;
            Box::pin(async move {
                let _watch = watch;
                router
                    .serve_with_incoming_shutdown(incoming, grpc_stop)
                    .await
            })
        }
    };
    let mut http_stop = stop_rx;
    let http_server = axum::serve(http, api::router(api::AppState { pool }))
        .with_graceful_shutdown(async move {
            let _ = http_stop.wait_for(|s| *s).await;
        });
    let (g, h) = tokio::join!(grpc_server, async { http_server.await });
    g.map_err(|e| Error::Serve(e.to_string()))?;
    h.map_err(|e| Error::Serve(e.to_string()))?;
    Ok(())
}

/// Settings of a control-plane process.
#[derive(Debug, Clone)]
pub struct Options {
    /// Backstop poll for config changes (NOTIFY is the fast path).
    pub poll: Duration,
    /// Drop ingested audit records older than this many days (whole days).
    pub audit_retention_days: Option<u32>,
    /// TLS for the gateway-facing gRPC port; with `ca`, gateways must
    /// present a client certificate it signed (mutual TLS).
    pub grpc_tls: Option<sluice_tls::Files>,
    /// Serve gateways that present no credential (development only).
    pub allow_unauthenticated_gateways: bool,
}

/// Applies audit retention at start and then hourly.
async fn retention(pool: PgPool, days: u32) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        if let Err(e) = audit::enforce_retention(&pool, days).await {
            tracing::warn!(error = %e, "audit retention failed; retrying in an hour");
        }
    }
}

/// Why [`run`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("serving: {0}")]
    Serve(String),
    #[error("TLS: {0}")]
    Tls(#[from] sluice_tls::TlsError),
}
