//! `sluice-gateway`: thin command-line entry point.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sluice_data_plane::config::{self, ConfigStore};
use sluice_data_plane::control;
use sluice_data_plane::settings::{
    ClientTls, ControlPlaneLink, DEFAULT_HF_INFERENCE_URL, Settings,
};

#[derive(Parser)]
#[command(
    name = "sluice-gateway",
    version,
    about = "Sluice AI governance gateway (OpenAI-compatible)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at startup: the size of the `run` variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Serve the OpenAI-compatible API with a policy pack: from a file
    /// (hot-reloaded on change) or pushed by a control plane.
    Run {
        #[arg(long, default_value = "0.0.0.0:41002", env = "SLUICE_LISTEN")]
        listen: String,
        /// The pack file (YAML or JSON). Standalone mode.
        #[arg(
            long,
            env = "SLUICE_POLICY_CONFIG",
            required_unless_present = "control_plane",
            conflicts_with = "control_plane"
        )]
        policy_config: Option<PathBuf>,
        /// gRPC URL of the control plane (e.g. http://127.0.0.1:41001).
        #[arg(long, env = "SLUICE_CONTROL_PLANE", requires_all = ["gateway_id", "cache_dir"])]
        control_plane: Option<String>,
        /// This gateway's id in fleet status (control-plane mode).
        #[arg(long, env = "SLUICE_GATEWAY_ID")]
        gateway_id: Option<String>,
        /// Labels that pick this gateway's deployment: k=v, comma-separated or repeated.
        #[arg(long, env = "SLUICE_GATEWAY_LABELS")]
        labels: Vec<String>,
        /// Where the last applied snapshot is kept, to serve from when the
        /// control plane is unreachable at start.
        #[arg(long, env = "SLUICE_CACHE_DIR")]
        cache_dir: Option<PathBuf>,
        /// PEM CA bundle that signed the control plane's certificate: talk
        /// to it over TLS (use an https:// URL).
        #[arg(long, env = "SLUICE_CONTROL_PLANE_CA", requires = "control_plane")]
        control_plane_ca: Option<PathBuf>,
        /// PEM certificate this gateway presents to the control plane (mutual TLS).
        #[arg(long, env = "SLUICE_CONTROL_PLANE_CERT", requires_all = ["control_plane_key", "control_plane_ca"])]
        control_plane_cert: Option<PathBuf>,
        /// PEM private key for --control-plane-cert.
        #[arg(
            long,
            env = "SLUICE_CONTROL_PLANE_KEY",
            requires = "control_plane_cert"
        )]
        control_plane_key: Option<PathBuf>,
        /// File holding this gateway's token for the control plane's gRPC
        /// port (from `POST /v1/gateways/{id}/tokens`). Re-read at every
        /// connect, so a rotated token needs no restart.
        #[arg(
            long,
            env = "SLUICE_CONTROL_PLANE_TOKEN_FILE",
            requires = "control_plane"
        )]
        control_plane_token_file: Option<PathBuf>,
        /// PEM CA bundle that signed the inference workers' certificates:
        /// talk to local-model workers over TLS.
        #[arg(long, env = "SLUICE_WORKER_CA")]
        worker_ca: Option<PathBuf>,
        /// PEM certificate this gateway presents to workers (mutual TLS).
        #[arg(long, env = "SLUICE_WORKER_CERT", requires_all = ["worker_key", "worker_ca"])]
        worker_cert: Option<PathBuf>,
        /// PEM private key for --worker-cert.
        #[arg(long, env = "SLUICE_WORKER_KEY", requires = "worker_cert")]
        worker_key: Option<PathBuf>,
        /// PEM certificate chain: serve HTTPS instead of HTTP (reloaded on change).
        #[arg(long, env = "SLUICE_TLS_CERT", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key for --tls-cert.
        #[arg(long, env = "SLUICE_TLS_KEY", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Base URL of the Hugging Face serverless Inference API (for mirrors and tests).
        #[arg(long, env = "SLUICE_HF_INFERENCE_URL", default_value = DEFAULT_HF_INFERENCE_URL)]
        hf_inference_url: String,
        /// Log format. The filter comes from RUST_LOG (default info).
        #[arg(long, env = "SLUICE_LOG_FORMAT", value_enum, default_value = "text")]
        log_format: LogFormat,
    },
    /// Validate a pack file; print every error with its key path and line:column.
    Check { file: PathBuf },
    /// Audit log tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Where the pack comes from.
enum Source {
    File(PathBuf),
    ControlPlane(control::Options),
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk a hash-chained audit log (its directory, or one daily file) and
    /// report the first broken link.
    Verify { path: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { file } => check(&file),
        Command::Audit {
            command: AuditCommand::Verify { path },
        } => verify(&path),
        Command::Run {
            listen,
            policy_config,
            control_plane,
            gateway_id,
            labels,
            cache_dir,
            control_plane_ca,
            control_plane_cert,
            control_plane_key,
            control_plane_token_file,
            worker_ca,
            worker_cert,
            worker_key,
            tls_cert,
            tls_key,
            hf_inference_url,
            log_format,
        } => {
            // The OTLP exporter sends from the runtime: build it first.
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("sluice-gateway: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let _telemetry = {
                let _enter = rt.enter();
                sluice_telemetry::init(
                    matches!(log_format, LogFormat::Json),
                    "sluice-gateway",
                    "info",
                )
            };
            let tls_links = client_tls(control_plane_ca, control_plane_cert, control_plane_key)
                .map_err(|e| format!("--control-plane-cert: {e}"))
                .and_then(|cp| {
                    client_tls(worker_ca, worker_cert, worker_key)
                        .map(|w| (cp, w))
                        .map_err(|e| format!("--worker-cert: {e}"))
                });
            let (client_tls, worker_tls) = match tls_links {
                Ok(links) => links,
                Err(e) => {
                    eprintln!("sluice-gateway: {e}");
                    return ExitCode::from(2);
                }
            };
            let source = match (policy_config, control_plane, gateway_id, cache_dir) {
                (Some(file), ..) => Source::File(file),
                (None, Some(url), Some(gateway_id), Some(cache_dir)) => {
                    match control::parse_labels(&labels) {
                        Ok(labels) => Source::ControlPlane(control::Options {
                            link: ControlPlaneLink {
                                url,
                                gateway_id,
                                tls: client_tls,
                                token_file: control_plane_token_file,
                            },
                            labels,
                            cache_dir,
                        }),
                        Err(e) => {
                            eprintln!("sluice-gateway: --labels: {e}");
                            return ExitCode::from(2);
                        }
                    }
                }
                // clap's requires/required_unless rules make this unreachable.
                _ => {
                    eprintln!(
                        "sluice-gateway: give --policy-config FILE, or --control-plane URL with --gateway-id and --cache-dir"
                    );
                    return ExitCode::from(2);
                }
            };
            let control_plane = match &source {
                Source::ControlPlane(o) => Some(o.link.clone()),
                Source::File(_) => None,
            };
            let settings = Settings {
                hf_inference_url,
                control_plane,
                worker_tls,
            };
            let tls = tls_cert.zip(tls_key).map(|(cert, key)| sluice_tls::Files {
                cert,
                key,
                ca: None,
            });
            match serve(&rt, listen, source, settings, tls) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("sluice-gateway: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn check(file: &std::path::Path) -> ExitCode {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: cannot read: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    match sluice_proto::pack::load(&text) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                println!(
                    "{}:{}:{}: warning: {}: {}",
                    file.display(),
                    w.line,
                    w.column,
                    w.path,
                    w.message
                );
            }
            let p = &loaded.pack;
            let chain: Vec<_> = p.chain.iter().map(|p| p.name()).collect();
            println!(
                "{}: ok — pack '{}' version {}, {} target(s), chain [{}]",
                file.display(),
                p.name,
                p.version,
                p.targets.len(),
                chain.join(", ")
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!(
                    "{}:{}:{}: error: {}: {}",
                    file.display(),
                    e.line,
                    e.column,
                    if e.path.is_empty() {
                        "(document)"
                    } else {
                        &e.path
                    },
                    e.message
                );
            }
            eprintln!(
                "{}: {} error(s); the pack was not accepted",
                file.display(),
                errors.0.len()
            );
            ExitCode::FAILURE
        }
    }
}

fn verify(path: &std::path::Path) -> ExitCode {
    match sluice_data_plane::audit::verify::verify(path) {
        Err(e) => {
            eprintln!("{}: cannot read the audit log: {e}", path.display());
            ExitCode::from(2)
        }
        Ok(report) => match report.first_break {
            None => {
                println!(
                    "{}: ok — {} record(s) in {} file(s), chain intact",
                    path.display(),
                    report.records,
                    report.files
                );
                ExitCode::SUCCESS
            }
            Some(b) => {
                eprintln!(
                    "{}:{}: BROKEN: {} ({} record(s) verified before it)",
                    b.file.display(),
                    b.line,
                    b.reason,
                    report.records
                );
                ExitCode::FAILURE
            }
        },
    }
}

/// TLS towards a component: its CA and, for mutual TLS, our certificate.
fn client_tls(
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
) -> Result<Option<ClientTls>, sluice_tls::TlsError> {
    let Some(ca) = ca else { return Ok(None) };
    let identity = match cert.zip(key) {
        Some((cert, key)) => Some(sluice_tls::identity(cert, key)?),
        None => None,
    };
    Ok(Some(ClientTls { ca, identity }))
}

fn serve(
    rt: &tokio::runtime::Runtime,
    listen: String,
    source: Source,
    settings: Settings,
    tls: Option<sluice_tls::Files>,
) -> anyhow::Result<()> {
    let settings_identity = settings
        .control_plane
        .as_ref()
        .and_then(|l| l.tls.as_ref())
        .and_then(|t| t.identity.clone());
    let worker_identity = settings
        .worker_tls
        .as_ref()
        .and_then(|t| t.identity.clone());
    rt.block_on(async move {
        // Both guards stop their config source when dropped at shutdown.
        let (store, _watch, _control) = match source {
            Source::File(path) => {
                let pack = config::load_file(&path)?;
                let store = Arc::new(ConfigStore::new(pack, settings)?);
                let watch = config::watch(path.clone(), store.clone())
                    .with_context(|| format!("watching {}", path.display()))?;
                (store, Some(watch), None)
            }
            Source::ControlPlane(opts) => {
                let store = Arc::new(ConfigStore::empty(settings));
                control::load_cache(&opts, &store);
                let task = tokio::spawn(control::run(opts, store.clone()));
                (store, None, Some(AbortOnDrop(task)))
            }
        };
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        // The client certificate towards the control plane follows its files.
        let _identity_watch = match settings_identity {
            Some(id) => Some(id.watch().context("watching --control-plane-cert")?),
            None => None,
        };
        let _worker_identity_watch = match worker_identity {
            Some(id) => Some(id.watch().context("watching --worker-cert")?),
            None => None,
        };
        match tls {
            None => {
                tracing::info!(listen = %listener.local_addr()?, "sluice-gateway listening");
                sluice_data_plane::run(listener, store, shutdown_signal())
                    .await
                    .context("serving")?;
            }
            Some(files) => {
                let cert = sluice_tls::Reloading::load(files).context("--tls-cert")?;
                let _watch = cert.watch().context("watching --tls-cert")?;
                let config = sluice_tls::server_config(&cert, &[b"h2", b"http/1.1"])?;
                tracing::info!(listen = %listener.local_addr()?, "sluice-gateway listening (HTTPS)");
                sluice_data_plane::run_tls(listener, config.into(), store, shutdown_signal())
                    .await
                    .context("serving")?;
            }
        }
        // Records of the last requests may still be queued: write them
        // before exiting so that a rolling restart loses none.
        if !tokio::task::block_in_place(|| {
            sluice_data_plane::audit::drain_all(std::time::Duration::from_secs(10))
        }) {
            tracing::error!("audit records still queued after 10 s were lost at shutdown");
        }
        tracing::info!("shut down cleanly");
        Ok(())
    })
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
}
