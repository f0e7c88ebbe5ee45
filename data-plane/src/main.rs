//! `sluice-gateway`: thin command-line entry point.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sluice_data_plane::config::{self, ConfigStore};
use sluice_data_plane::runtime::{DEFAULT_HF_INFERENCE_URL, Settings};

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
    /// Serve the OpenAI-compatible API with a policy pack (hot-reloaded on change).
    Run {
        #[arg(long, default_value = "0.0.0.0:41002", env = "SLUICE_LISTEN")]
        listen: String,
        /// The pack file (YAML or JSON).
        #[arg(long, env = "SLUICE_POLICY_CONFIG")]
        policy_config: PathBuf,
        /// Base URL of the Hugging Face serverless Inference API (for mirrors and tests).
        #[arg(long, env = "SLUICE_HF_INFERENCE_URL", default_value = DEFAULT_HF_INFERENCE_URL)]
        hf_inference_url: String,
        /// Log format: text or json. The filter comes from RUST_LOG (default info).
        #[arg(long, env = "SLUICE_LOG_FORMAT", default_value = "text")]
        log_format: String,
    },
    /// Validate a pack file; print every error with its key path and line:column.
    Check { file: PathBuf },
    /// Audit log tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
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
            hf_inference_url,
            log_format,
        } => {
            init_logging(&log_format);
            match serve(listen, policy_config, Settings { hf_inference_url }) {
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

fn init_logging(format: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn serve(listen: String, policy_config: PathBuf, settings: Settings) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async move {
        let pack = config::load_file(&policy_config)?;
        let store = Arc::new(ConfigStore::new(pack, settings)?);
        let _watch = config::watch(policy_config.clone(), store.clone())
            .with_context(|| format!("watching {}", policy_config.display()))?;
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        tracing::info!(listen = %listener.local_addr()?, "sluice-gateway listening");
        sluice_data_plane::run(listener, store, shutdown_signal())
            .await
            .context("serving")?;
        tracing::info!("shut down cleanly");
        Ok(())
    })
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
