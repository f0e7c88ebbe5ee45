//! `sluice-gateway`: thin command-line entry point.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use sluice_data_plane::control;
use sluice_data_plane::gateway::{self, Source};
use sluice_data_plane::settings::{ClientTls, ControlPlaneLink, DEFAULT_HF_ROUTER_URL, Settings};

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

#[derive(Subcommand)]
enum Command {
    /// Serve the OpenAI-compatible API with a policy pack: from a file
    /// (hot-reloaded on change) or pushed by a control plane.
    Run(Box<RunArgs>),
    /// Validate a pack file; print every error with its key path and line:column.
    Check { file: PathBuf },
    /// Audit log tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Args)]
struct RunArgs {
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
    #[command(flatten)]
    control_plane: ControlPlaneArgs,
    #[command(flatten)]
    workers: WorkerTlsArgs,
    /// PEM certificate chain: serve HTTPS instead of HTTP (reloaded on change).
    #[arg(long, env = "SLUICE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "SLUICE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Base URL of the Hugging Face Inference Providers router, used by
    /// targets without a base_url (for mirrors, proxies and tests).
    #[arg(long, env = "SLUICE_HF_ROUTER_URL", default_value = DEFAULT_HF_ROUTER_URL)]
    hf_router_url: String,
    /// Base URL of a server with the retired serverless Inference API's
    /// layout ({url}/models/{model}/...); when set, targets without a
    /// base_url use it instead of the router.
    #[arg(long, env = "SLUICE_HF_INFERENCE_URL")]
    hf_inference_url: Option<String>,
    /// File holding a token that /metrics then requires as
    /// `Authorization: Bearer <token>` (re-read at every scrape).
    #[arg(long, env = "SLUICE_METRICS_TOKEN_FILE")]
    metrics_token_file: Option<PathBuf>,
    /// Environment variables packs may read (target secrets, client keys,
    /// the limit store's URL): comma-separated names or globs (`*_API_KEY`).
    /// Unset: in control-plane mode HF_TOKEN, HF_API_TOKEN,
    /// HUGGING_FACE_HUB_TOKEN, *_API_KEY, *_API_TOKEN but never SLUICE_*;
    /// standalone, any.
    #[arg(long, env = "SLUICE_ALLOWED_SECRET_ENV", value_delimiter = ',')]
    allowed_secret_env: Option<Vec<String>>,
    /// Hosts (globs: `*.example.com`) that targets with a base_url may use.
    /// Unset: in control-plane mode, targets that carry a secret may go only
    /// to router.huggingface.co, api-inference.huggingface.co,
    /// *.endpoints.huggingface.cloud, api.openai.com and the hosts of
    /// --hf-router-url / --hf-inference-url; standalone, anywhere.
    #[arg(long, env = "SLUICE_ALLOWED_UPSTREAM_HOSTS", value_delimiter = ',')]
    allowed_upstream_hosts: Option<Vec<String>>,
    /// Directory that audit-logger paths must lie in (relative paths are
    /// taken inside it). Unset: /var/lib/sluice/audit in control-plane
    /// mode; standalone, anywhere.
    #[arg(long, env = "SLUICE_AUDIT_ROOT")]
    audit_root: Option<PathBuf>,
    /// Open client connections at most; beyond it the gateway stops
    /// accepting until one closes.
    #[arg(long, env = "SLUICE_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// API requests in flight at most (streams count until they end); the
    /// next gets 503 overloaded with Retry-After: 1.
    #[arg(long, env = "SLUICE_MAX_CONCURRENT_REQUESTS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    max_concurrent_requests: u32,
    /// Seconds a connection has to send a complete request head (also the
    /// longest a keep-alive connection may sit idle).
    #[arg(long, env = "SLUICE_HEADER_TIMEOUT_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    header_timeout_seconds: u64,
    /// Seconds a request has to send its whole body (else 408).
    #[arg(long, env = "SLUICE_BODY_TIMEOUT_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    body_timeout_seconds: u64,
    /// Log format. The filter comes from RUST_LOG (default info).
    #[arg(long, env = "SLUICE_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
}

/// Control-plane mode: where the pack is pushed from.
#[derive(Args)]
struct ControlPlaneArgs {
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
}

/// TLS towards local-model inference workers.
#[derive(Args)]
struct WorkerTlsArgs {
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
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk a hash-chained audit log (its directory, or one daily file) and
    /// report the first broken link.
    Verify { path: PathBuf },
}

// Requests are allocated on one worker thread and often freed on another;
// mimalloc's per-thread free lists keep that off a shared lock.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check { file } => check(&file),
        Command::Audit {
            command: AuditCommand::Verify { path },
        } => verify(&path),
        Command::Run(args) => run(*args),
    }
}

fn run(args: RunArgs) -> ExitCode {
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
            matches!(args.log_format, LogFormat::Json),
            "sluice-gateway",
            "info",
        )
    };
    let listen = args.listen.clone();
    let opts = match options(args) {
        Ok(opts) => opts,
        Err(e) => {
            eprintln!("sluice-gateway: {e}");
            return ExitCode::from(2);
        }
    };
    let served = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        gateway::serve(listener, opts, shutdown_signal()).await?;
        anyhow::Ok(())
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("sluice-gateway: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The command line as the library's start-up options; the error names
/// the flag at fault.
fn options(args: RunArgs) -> Result<gateway::Options, String> {
    // A token file that cannot be read is a mistake to hear about now, not
    // at the first scrape.
    if let Some(f) = &args.metrics_token_file {
        sluice_data_plane::settings::read_token_file(f)
            .map_err(|e| format!("--metrics-token-file: {e}"))?;
    }
    let cp = args.control_plane;
    let w = args.workers;
    let cp_tls = client_tls(
        cp.control_plane_ca,
        cp.control_plane_cert,
        cp.control_plane_key,
    )
    .map_err(|e| format!("--control-plane-cert: {e}"))?;
    let worker_tls = client_tls(w.worker_ca, w.worker_cert, w.worker_key)
        .map_err(|e| format!("--worker-cert: {e}"))?;
    let source = match (
        args.policy_config,
        cp.control_plane,
        cp.gateway_id,
        cp.cache_dir,
    ) {
        (Some(file), ..) => Source::File(file),
        (None, Some(url), Some(gateway_id), Some(cache_dir)) => {
            let labels = control::parse_labels(&cp.labels).map_err(|e| format!("--labels: {e}"))?;
            Source::ControlPlane(control::Options {
                link: ControlPlaneLink {
                    url,
                    gateway_id,
                    tls: cp_tls,
                    token_file: cp.control_plane_token_file,
                },
                labels,
                cache_dir,
            })
        }
        // clap's requires/required_unless rules make this unreachable.
        _ => {
            return Err("give --policy-config FILE, or --control-plane URL with --gateway-id and --cache-dir".into());
        }
    };
    let control_plane = match &source {
        Source::ControlPlane(o) => Some(o.link.clone()),
        Source::File(_) => None,
    };
    let hf_inference_url = args.hf_inference_url.filter(|u| !u.trim().is_empty());
    let mut operator_hosts = vec![args.hf_router_url.as_str()];
    operator_hosts.extend(hf_inference_url.as_deref());
    let allow = sluice_data_plane::allow::Allow::new(
        sluice_data_plane::allow::AllowArgs {
            secret_env: args.allowed_secret_env,
            upstream_hosts: args.allowed_upstream_hosts,
            audit_root: args.audit_root,
        },
        control_plane.is_some(),
        &operator_hosts,
    )?;
    Ok(gateway::Options {
        source,
        settings: Settings {
            hf_router_url: args.hf_router_url,
            hf_inference_url,
            control_plane,
            worker_tls,
            metrics_token_file: args.metrics_token_file,
            allow,
            http: sluice_data_plane::serve::HttpLimits {
                max_connections: args.max_connections as usize,
                max_concurrent_requests: args.max_concurrent_requests as usize,
                header_read_timeout: std::time::Duration::from_secs(args.header_timeout_seconds),
                body_read_timeout: std::time::Duration::from_secs(args.body_timeout_seconds),
            },
        },
        tls: args
            .tls_cert
            .zip(args.tls_key)
            .map(|(cert, key)| sluice_tls::Files {
                cert,
                key,
                ca: None,
            }),
    })
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

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
}
