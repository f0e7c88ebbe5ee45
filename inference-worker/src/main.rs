//! `sluice-worker`: `run` serves one model over gRPC; `pull` fills the
//! download cache ahead of time.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use sluice_inference_worker::WorkerError;
use sluice_inference_worker::device::DeviceChoice;
use sluice_inference_worker::engine::{DtypeChoice, LoadOptions};
use sluice_inference_worker::hub::{self, Hub, HubOptions, ModelRef};
use sluice_inference_worker::metrics::Metrics;
use sluice_inference_worker::service::{ServedModel, WorkerState};

#[derive(Parser)]
#[command(
    name = "sluice-worker",
    version,
    about = "Sluice inference worker: one model, mistral.rs, gRPC"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Download (if needed), load and serve a model.
    Run(RunArgs),
    /// Download a model into the cache, with a progress bar, and exit.
    Pull(PullArgs),
}

#[derive(Args)]
struct Source {
    /// ORG/MODEL[@REVISION] on the Hub (`latest` means `main`), or a local
    /// model folder.
    #[arg(long, env = "SLUICE_MODEL")]
    model: String,
    /// Load this GGUF file of the repository (Q4/Q5/Q8) instead of safetensors.
    #[arg(long, env = "SLUICE_GGUF_FILE")]
    gguf_file: Option<String>,
    /// The download cache; models land in DIR/ORG/MODEL/REVISION/.
    #[arg(long, env = "SLUICE_MODEL_CACHE")]
    cache_dir: Option<PathBuf>,
    /// Read the Hugging Face token from this environment variable (before
    /// HF_TOKEN, HF_TOKEN_PATH and ~/.cache/huggingface/token).
    #[arg(long, env = "SLUICE_HF_TOKEN_ENV")]
    hf_token_env: Option<String>,
}

#[derive(Args)]
struct RunArgs {
    /// gRPC address for gateways.
    #[arg(long, env = "SLUICE_LISTEN")]
    listen: String,
    /// HTTP address for /healthz, /readyz and /metrics.
    #[arg(long, env = "SLUICE_HTTP_LISTEN", default_value = "0.0.0.0:9464")]
    http_listen: String,
    #[command(flatten)]
    source: Source,
    /// auto (CUDA, then Metal, then CPU), cpu, cuda:N or metal.
    #[arg(long, env = "SLUICE_DEVICE", default_value = "auto")]
    device: DeviceChoice,
    /// Weights dtype for safetensors models: auto (f32 on CPU, bf16 on GPUs), f32, f16, bf16.
    #[arg(long, env = "SLUICE_DTYPE", default_value = "auto")]
    dtype: DtypeChoice,
    /// Generations running at once; more wait in the queue.
    #[arg(long, env = "SLUICE_MAX_CONCURRENCY", default_value_t = 1)]
    max_concurrency: usize,
    /// Requests allowed to wait for a slot; beyond that RESOURCE_EXHAUSTED.
    #[arg(long, env = "SLUICE_MAX_QUEUE", default_value_t = 16)]
    max_queue: usize,
    /// PEM certificate chain for the gRPC port: serve TLS (reloaded on change).
    #[arg(long, env = "SLUICE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "SLUICE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// PEM CA bundle that signs gateways' client certificates: gateways
    /// without one it signed are refused at the handshake (mutual TLS).
    #[arg(long, env = "SLUICE_TLS_CLIENT_CA", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long, env = "SLUICE_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

#[derive(Args)]
struct PullArgs {
    /// ORG/MODEL[@REVISION].
    model: String,
    #[arg(long)]
    gguf_file: Option<String>,
    #[arg(long, env = "SLUICE_MODEL_CACHE")]
    cache_dir: Option<PathBuf>,
    #[arg(long)]
    hf_token_env: Option<String>,
}

fn default_cache() -> PathBuf {
    hub::model_ref::home_dir().join(".sluice/models")
}

fn hub_options(
    cache_dir: Option<PathBuf>,
    gguf_file: Option<String>,
    token_env: Option<&str>,
    progress: bool,
) -> anyhow::Result<HubOptions> {
    let token = hub::token::resolve(token_env)?;
    match &token {
        Some(t) => tracing::info!(source = t.source(), "using a Hugging Face token"),
        None => tracing::info!("no Hugging Face token found; public models only"),
    }
    let mut opts = HubOptions::new(cache_dir.unwrap_or_else(default_cache));
    opts.token = token;
    opts.gguf_file = gguf_file;
    opts.progress = progress;
    Ok(opts)
}

/// Where the model's files are, downloading them if needed; and the
/// revision to report.
async fn materialise(model: &ModelRef, opts: HubOptions) -> Result<(PathBuf, String), WorkerError> {
    match model {
        ModelRef::LocalDir(dir) => Ok((dir.clone(), String::new())),
        ModelRef::Hub(m) => {
            let hub = Hub::new(opts)?;
            let fetched = hub.fetch(m).await?;
            tracing::info!(
                model = %m,
                dir = %fetched.dir.display(),
                commit = fetched.commit.as_deref(),
                downloaded = fetched.downloaded.len(),
                skipped = fetched.skipped.len(),
                offline = fetched.offline,
                "model files ready"
            );
            Ok((
                fetched.dir,
                fetched.commit.unwrap_or_else(|| m.revision.clone()),
            ))
        }
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let model = ModelRef::parse(&args.source.model)?;
    args.device.backend().map_err(anyhow::Error::msg)?;
    let grpc = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding the gRPC address {}", args.listen))?;
    let http = tokio::net::TcpListener::bind(&args.http_listen)
        .await
        .with_context(|| format!("binding the HTTP address {}", args.http_listen))?;
    tracing::info!(grpc = %grpc.local_addr()?, http = %http.local_addr()?, "sluice-worker listening");

    let model_id = match &model {
        ModelRef::Hub(m) => m.repo.clone(),
        ModelRef::LocalDir(d) => d.display().to_string(),
    };
    let metrics = Arc::new(Metrics::new(&model_id));
    let max_concurrency = args.max_concurrency.max(1);
    let hub_opts = hub_options(
        args.source.cache_dir,
        args.source.gguf_file.clone(),
        args.source.hf_token_env.as_deref(),
        false,
    )?;
    let state = WorkerState::new(
        ServedModel {
            model_id,
            max_concurrency,
            max_queue: args.max_queue,
        },
        metrics,
    );
    // Health and metrics answer while the model downloads and loads;
    // /readyz and gRPC turn ready only after.
    let loading = state.clone();
    let (gguf_file, device, dtype) = (args.source.gguf_file, args.device, args.dtype);
    let ready = async move {
        let (dir, rev) = materialise(&model, hub_opts).await?;
        let _ = loading.revision.set(rev);
        let opts = LoadOptions {
            dir,
            gguf_file,
            device,
            dtype,
            max_concurrency,
        };
        sluice_inference_worker::load(&loading, &opts).await
    };
    let tls = args
        .tls_cert
        .zip(args.tls_key)
        .map(|(cert, key)| sluice_tls::Files {
            cert,
            key,
            ca: args.tls_client_ca,
        });
    sluice_inference_worker::run(grpc, http, tls, state, ready, shutdown_signal()).await?;
    tracing::info!("sluice-worker stopped");
    Ok(())
}

async fn pull(args: PullArgs) -> anyhow::Result<()> {
    let model = ModelRef::parse(&args.model)?;
    if let ModelRef::LocalDir(d) = &model {
        anyhow::bail!(
            "{} is a local folder; pull takes ORG/MODEL[@REVISION]",
            d.display()
        );
    }
    let opts = hub_options(
        args.cache_dir,
        args.gguf_file,
        args.hf_token_env.as_deref(),
        true,
    )?;
    let (dir, rev) = materialise(&model, opts).await?;
    println!("{} (revision {rev})", dir.display());
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let json = matches!(&cli.command, Command::Run(a) if a.log_format == "json");
    if let Command::Run(a) = &cli.command {
        // Before any thread exists: CUDA reads it at initialisation.
        a.device.pin_cuda_device();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    // mistral.rs logs every loading step at info; its warnings still show.
    let _telemetry = {
        let _enter = rt.enter();
        sluice_telemetry::init(
            json,
            "sluice-worker",
            "info,mistralrs_core=warn,mistralrs_quant=warn,mistralrs=warn,hf_hub=warn",
        )
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Run(a) => run(a).await,
            Command::Pull(a) => pull(a).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("sluice-worker: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
