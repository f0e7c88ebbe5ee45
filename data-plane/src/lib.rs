//! The Sluice gateway (data plane).
//!
//! - [`gateway`]: one process from start to clean exit — first config,
//!   watches, HTTP or HTTPS serving, audit drain. `main.rs` only parses
//!   the command line into `gateway::Options`.
//! - [`config`]: the config path of standalone mode — read, validate, compile,
//!   swap atomically, watch the file.
//! - [`control`]: the config path of control-plane mode — a gRPC stream of
//!   snapshots, ACK/NACK, the on-disk cache of the last good one.
//! - [`runtime`]: one compiled config version: targets, client keys, the
//!   chain, the auditor, caller identification and routing.
//! - [`settings`]: what the gateway is started with (command line, control
//!   plane link and dialing, `Secret`); a leaf every module may use.
//! - [`server`]: the HTTP surface and the request path.
//! - [`providers`]: compiled targets (`providers::target`) and one adapter
//!   per upstream protocol (OpenAI-compatible, TGI native, HF
//!   feature-extraction, local-model worker pool), all answering in OpenAI
//!   shapes.
//! - [`policies`]: the policy chain — one module per policy behind one
//!   trait, compiled per config version; [`streaming`] runs it on streams.
//! - [`traffic`]: retries and fallbacks around each upstream call;
//!   [`groups`]: target groups — member order and passive health;
//!   [`limits`]: the pack's rate, token and concurrency limits and budgets.
//! - [`audit`]: the audit logger — bounded queue, hash-chained daily files,
//!   retention, `audit verify`.
//! - [`exchange`]: one request's bookkeeping (decisions, overhead, audit,
//!   metrics); [`metrics`]: the Prometheus registry behind `/metrics`;
//!   [`counting`]: usage the upstream did not report, counted with the
//!   target model's tokenizer (fetched from the Hub) or estimated.
//! - [`openai`]: the OpenAI request types the gateway reads.
//! - [`error`]: the one error type, mapped to HTTP status and OpenAI bodies.
//! - [`serve`]: the listener loop — connection and request limits, header
//!   and body timeouts; [`https`]: the TLS listener behind [`run_tls`]. Logs and OTLP traces
//!   come from the `sluice-telemetry` crate.
//!
//! [`run`] takes a pre-bound listener so tests can use free ports.

pub mod allow;
pub mod audit;
mod config;
pub mod control;
mod counting;
mod error;
mod exchange;
pub mod gateway;
mod groups;
mod https;
mod limits;
mod metrics;
pub mod openai;
pub mod policies;
mod providers;
mod runtime;
pub mod serve;
mod server;
pub mod settings;
mod streaming;
mod traffic;

use std::future::Future;
use std::sync::Arc;

use config::ConfigStore;

/// Property-based ("fuzz") tests: `SLUICE_FUZZ_CASES` cases each (256 by
/// default, seconds in all); failures are kept in `proptest-regressions/`
/// and replayed first on every run.
#[cfg(test)]
fn fuzz_config() -> proptest::test_runner::Config {
    let cases = std::env::var("SLUICE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok());
    proptest::test_runner::Config::with_cases(cases.unwrap_or(256))
}

/// Serves the gateway on `listener` until `shutdown` resolves, then drains
/// in-flight requests.
pub async fn run(
    listener: tokio::net::TcpListener,
    store: Arc<ConfigStore>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = store.settings().http.clone();
    let app = app(store);
    // Small responses and SSE events must not wait for Nagle's algorithm.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    });
    serve::serve(listener, app, &limits, shutdown).await
}

/// Like [`run`], over TLS: the certificate behind `acceptor` may be
/// reloaded at any time (see `sluice_tls::Reloading`).
pub async fn run_tls(
    listener: tokio::net::TcpListener,
    acceptor: sluice_tls::TlsAcceptor,
    store: Arc<ConfigStore>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = https::TlsListener::new(listener, acceptor)?;
    let limits = store.settings().http.clone();
    serve::serve(listener, app(store), &limits, shutdown).await
}

fn app(store: Arc<ConfigStore>) -> axum::Router {
    let http = providers::http::Client::new();
    if http.is_proxied() {
        tracing::info!(
            "upstream requests go through the proxy the environment names (HTTPS_PROXY, HTTP_PROXY or ALL_PROXY; NO_PROXY is honoured)"
        );
    }
    server::router(server::AppState { store, http })
}
