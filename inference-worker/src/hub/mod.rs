//! The Hugging Face download cache.
//!
//! `ORG/MODEL@REVISION` lands in `<cache-dir>/ORG/MODEL/REVISION/`, laid out
//! like `huggingface-cli download --local-dir`, so operators can fill the
//! cache with that tool. Listing and transfers go through the `hf-hub`
//! crate (it honours `HF_ENDPOINT`); what it leaves to callers is done here:
//! - every file name from the hub is checked to stay inside the model
//!   folder (the crate would happily write `../../x`);
//! - files are written to a temporary name, checked (size, and SHA-256
//!   when the hub gives one) and renamed, so a crash never leaves a
//!   truncated file that a later start would skip;
//! - one retry policy (exponential backoff with jitter on 5xx, 408, 429 and
//!   transport errors; never on 401/403/404) covers metadata and bodies;
//! - errors say what to do (set the token, accept the licence, fix the id).

pub mod download;
pub mod model_ref;
pub mod token;

pub use download::{Fetched, Hub, HubOptions};
pub use model_ref::{HubModel, ModelRef};
pub use token::HfToken;

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("{0}")]
    BadModel(String),
    /// Wording from the operating guide's troubleshooting table.
    #[error("path traversal error: {0}")]
    PathTraversal(String),
    #[error("{0}")]
    Token(String),
    #[error(
        "401 Unauthorized from the hub for {repo}: set or verify the token (--hf-token-env, HF_TOKEN, HF_TOKEN_PATH or ~/.cache/huggingface/token) and check that it has read scope"
    )]
    Unauthorized { repo: String },
    #[error(
        "403 Forbidden from the hub for {repo}: the model is gated: accept its license on its Hugging Face page with the account the token belongs to"
    )]
    Gated { repo: String },
    #[error("404 from the hub: no such model or revision: {what}")]
    NotFound { what: String },
    #[error("the hub is unavailable for {what} after {attempts} attempts: {last}")]
    Unavailable {
        what: String,
        attempts: u32,
        last: String,
    },
    #[error("the hub sent something unusable for {what}: {detail}")]
    Malformed { what: String, detail: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl HubError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> HubError {
        HubError::Io {
            what: what.into(),
            source,
        }
    }
}
