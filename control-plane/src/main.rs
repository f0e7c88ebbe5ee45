//! `sluice-control-plane`: thin command-line entry point.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sluice_control_plane::db;

#[derive(Parser)]
#[command(
    name = "sluice-control-plane",
    version,
    about = "Sluice control plane: operator API and config push"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format. The filter comes from RUST_LOG (default info,sqlx=warn).
    #[arg(
        long,
        global = true,
        env = "SLUICE_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate the database, then serve the operator API and the gateway gRPC services.
    Run {
        // hide_env_values: `--help` must not print the URL, which may hold a password.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
        #[arg(long, env = "SLUICE_HTTP_LISTEN", default_value = "0.0.0.0:41000")]
        http_listen: String,
        #[arg(long, env = "SLUICE_GRPC_LISTEN", default_value = "0.0.0.0:41001")]
        grpc_listen: String,
        /// Token of the first admin, created only while no operator exists.
        #[arg(long, env = "SLUICE_BOOTSTRAP_ADMIN_TOKEN", hide_env_values = true)]
        bootstrap_admin_token: Option<String>,
        /// Backstop poll for config changes (NOTIFY is the fast path), in milliseconds.
        #[arg(long, env = "SLUICE_POLL_MS", default_value_t = 5000)]
        poll_ms: u64,
        /// Drop ingested audit records older than this many days (by whole day).
        #[arg(long, env = "SLUICE_AUDIT_RETENTION_DAYS")]
        audit_retention_days: Option<u32>,
        /// PEM certificate chain for TLS on the gRPC port (reloaded on change).
        #[arg(long, env = "SLUICE_GRPC_TLS_CERT", requires = "grpc_tls_key")]
        grpc_tls_cert: Option<std::path::PathBuf>,
        /// PEM private key for --grpc-tls-cert.
        #[arg(long, env = "SLUICE_GRPC_TLS_KEY", requires = "grpc_tls_cert")]
        grpc_tls_key: Option<std::path::PathBuf>,
        /// PEM CA bundle: gateways must present a client certificate it signed (mutual TLS).
        #[arg(long, env = "SLUICE_GRPC_CLIENT_CA", requires = "grpc_tls_cert")]
        grpc_client_ca: Option<std::path::PathBuf>,
        /// Serve gateways that present neither a gateway token nor a client
        /// certificate. Development only: any client of the gRPC port can
        /// then read every snapshot and write audit records.
        #[arg(long, env = "SLUICE_ALLOW_UNAUTHENTICATED_GATEWAYS")]
        allow_unauthenticated_gateways: bool,
    },
    /// Apply the database migrations and exit.
    Migrate {
        // hide_env_values: `--help` must not print the URL, which may hold a password.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sluice-control-plane: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The same logging and OTLP setup as the gateway and the worker.
    let _telemetry = {
        let _enter = rt.enter();
        sluice_telemetry::init(
            matches!(cli.log_format, LogFormat::Json),
            "sluice-control-plane",
            "info,sqlx=warn",
        )
    };
    match rt.block_on(execute(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Migrate { database_url } => {
            let pool = db::connect(&database_url)
                .await
                .context("connecting to the database")?;
            db::migrate(&pool).await.context("migrating")?;
            tracing::info!("database migrated");
            Ok(())
        }
        Command::Run {
            database_url,
            http_listen,
            grpc_listen,
            bootstrap_admin_token,
            poll_ms,
            audit_retention_days,
            grpc_tls_cert,
            grpc_tls_key,
            grpc_client_ca,
            allow_unauthenticated_gateways,
        } => {
            let pool = db::connect_waiting(&database_url)
                .await
                .context("connecting to the database")?;
            db::migrate(&pool).await.context("migrating")?;
            match bootstrap_admin_token.filter(|t| !t.trim().is_empty()) {
                Some(token) => {
                    if db::bootstrap_admin(&pool, token.trim())
                        .await
                        .context("creating the bootstrap admin")?
                    {
                        tracing::info!("bootstrap admin created from SLUICE_BOOTSTRAP_ADMIN_TOKEN");
                    }
                }
                None => {
                    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM operators")
                        .fetch_one(&pool)
                        .await?;
                    if n == 0 {
                        tracing::warn!(
                            "no operator exists: set SLUICE_BOOTSTRAP_ADMIN_TOKEN (or --bootstrap-admin-token) to create the first admin"
                        );
                    }
                }
            }
            let http = tokio::net::TcpListener::bind(&http_listen)
                .await
                .with_context(|| format!("binding {http_listen}"))?;
            let grpc = tokio::net::TcpListener::bind(&grpc_listen)
                .await
                .with_context(|| format!("binding {grpc_listen}"))?;
            tracing::info!(http = %http.local_addr()?, grpc = %grpc.local_addr()?, "sluice-control-plane listening");
            let options = sluice_control_plane::Options {
                poll: Duration::from_millis(poll_ms.max(100)),
                audit_retention_days,
                grpc_tls: grpc_tls_cert
                    .zip(grpc_tls_key)
                    .map(|(cert, key)| sluice_tls::Files {
                        cert,
                        key,
                        ca: grpc_client_ca,
                    }),
                allow_unauthenticated_gateways,
            };
            sluice_control_plane::run(pool, http, grpc, options, shutdown_signal()).await?;
            tracing::info!("shut down cleanly");
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}
