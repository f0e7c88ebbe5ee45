//! One error type for every command, each variant with the exit code that
//! scripts can rely on (documented in `docs/cli.md`).

use std::process::ExitCode;

/// A pack error as the control plane reports it (like `sluice-gateway
/// check`): where, and what.
#[derive(Debug, Clone)]
pub struct PackError {
    pub path: String,
    pub line: u64,
    pub column: u64,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// No login and no `SLUICE_CONTROL_PLANE`/`SLUICE_TOKEN`, or the
    /// control plane refused the token (401).
    #[error("{0}")]
    NotAuthenticated(String),
    /// 403: the token's role is too low.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such pack, version, key, operator or gateway.
    #[error("{0}")]
    NotFound(String),
    /// 400 / 409: the request was refused as it stands.
    #[error("{0}")]
    Refused(String),
    /// 422: the pack is not valid; every error with its position.
    #[error("{file}: {} error(s); the pack was not accepted", .errors.len())]
    InvalidPack {
        file: String,
        errors: Vec<PackError>,
    },
    /// The control plane could not be reached.
    #[error("cannot reach the control plane at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// `fleet watch`: a gateway refused the version, or time ran out.
    #[error("{0}")]
    NotApplied(String),
    /// `audit verify`: a chain is broken.
    #[error("{0}")]
    ChainBroken(String),
    /// A local file or the login store.
    #[error("{0}")]
    Local(String),
    /// The control plane failed (5xx) or answered something unexpected.
    #[error("{0}")]
    Server(String),
}

impl CliError {
    /// Lines printed before the error itself: each pack error at its
    /// position, in the format of `sluice-gateway check`.
    pub fn details(&self) -> Vec<String> {
        match self {
            CliError::InvalidPack { file, errors } => errors
                .iter()
                .map(|e| {
                    format!(
                        "{file}:{}:{}: error: {}: {}",
                        e.line, e.column, e.path, e.message
                    )
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            CliError::Server(_) | CliError::Local(_) => 1,
            // 2 is clap's: a usage error.
            CliError::NotAuthenticated(_) => 3,
            CliError::Forbidden(_) => 4,
            CliError::NotFound(_) => 5,
            CliError::Refused(_) | CliError::InvalidPack { .. } => 6,
            CliError::Unreachable { .. } => 7,
            CliError::NotApplied(_) => 8,
            CliError::ChainBroken(_) => 9,
        })
    }
}
