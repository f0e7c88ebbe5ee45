//! `sluice`: the operators' command-line client for the control plane's
//! REST API (`control-plane/openapi.yaml`). Thin by design: every rule
//! (validation, roles, history) lives in the control plane; this crate
//! turns commands into API calls and answers into tables or JSON.
//!
//! - [`credentials`]: where `sluice login` keeps the URL and token (0600).
//! - [`client`]: the HTTP calls and the mapping of API errors.
//! - [`error`]: one error type; each variant has a documented exit code.
//! - [`output`]: tables for people, `--output json` for scripts.
//! - `commands`: one module per command group (packs, fleet, access,
//!   audit).

mod client;
mod commands;
pub mod credentials;
pub mod error;
pub mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub use error::CliError;
use output::Format;

/// Operate a Sluice control plane: packs, deployments, the fleet, client
/// keys, operators and the central audit.
#[derive(Debug, Parser)]
#[command(name = "sluice", version)]
pub struct Cli {
    /// The control plane's operator API (default: the URL saved by `sluice login`).
    #[arg(long, global = true, env = "SLUICE_CONTROL_PLANE", value_name = "URL")]
    pub control_plane: Option<String>,
    /// How to print answers: a table for people, JSON for scripts.
    #[arg(long, short, global = true, value_enum, default_value = "table")]
    pub output: Format,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check an operator token and keep it for later commands (mode 0600).
    Login(LoginArgs),
    /// Forget the saved login.
    Logout,
    /// The operator the token belongs to, and its role.
    Whoami,
    /// Packs and their versions.
    #[command(subcommand)]
    Pack(PackCommand),
    /// Gateways and the versions they run.
    #[command(subcommand)]
    Fleet(FleetCommand),
    /// Client keys (the API keys applications send to gateways).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Operators of the control plane (admin).
    #[command(subcommand)]
    Operators(OperatorsCommand),
    /// The audit records gateways ship to the control plane.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Print a shell completion script (e.g. `sluice completion bash > /etc/bash_completion.d/sluice`).
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Read the token from this file (default: SLUICE_TOKEN, else one line from stdin).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum PackCommand {
    /// Create the next version of a pack from a file (the pack is created if new).
    Apply {
        /// The pack, YAML or JSON; `-` reads stdin.
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: PathBuf,
    },
    /// Every pack with its latest version.
    List,
    /// A version's body (default: the latest).
    Get {
        name: String,
        #[arg(long)]
        version: Option<i64>,
    },
    /// Every version of a pack, newest last.
    Versions { name: String },
    /// Unified diff of two versions.
    Diff { name: String, from: i64, to: i64 },
    /// Make a version the one the gateways matching a selector run.
    Activate {
        name: String,
        #[arg(long)]
        version: i64,
        /// Gateway labels, `k=v[,k=v]`; empty matches every gateway.
        #[arg(long, default_value = "")]
        selector: String,
    },
    /// Re-activate the version that ran before the current activation.
    Rollback {
        name: String,
        /// Which deployment (default: the only one running this pack).
        #[arg(long)]
        selector: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Each gateway: id, labels, running version, ACK/NACK and why, last seen.
    Status,
    /// Wait until every connected gateway matching the deployment's selector
    /// runs its version (exit 8 on a NACK or on timeout).
    Watch {
        /// The deployment to watch, by selector.
        #[arg(long, default_value = "")]
        selector: String,
        /// Seconds to wait.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a client key; the key is printed once.
    Create {
        #[arg(long)]
        owner: String,
        #[arg(long)]
        role: String,
        /// The key's id (default: chosen by the control plane).
        #[arg(long)]
        id: Option<String>,
        /// RFC 3339 time after which the key is refused.
        #[arg(long, value_name = "TIME")]
        expires_at: Option<String>,
    },
    /// Every client key (never the keys themselves).
    List,
    /// Disable a key: gateways refuse it once they have the change.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub enum OperatorsCommand {
    /// Create an operator; its token is printed once.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = ["admin", "editor", "viewer"])]
        role: String,
    },
    /// Every operator.
    List,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Audit records, newest first.
    Query(commands::audit::QueryArgs),
    /// Walk every gateway's hash chain (exit 9 if one is broken).
    Verify {
        #[arg(long)]
        gateway: Option<String>,
    },
}

/// Runs one command to its end.
pub fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Local(format!("cannot start: {e}")))?;
    rt.block_on(commands::run(cli))
}
