//! Where `sluice login` keeps the control plane's URL and the operator
//! token: `$XDG_CONFIG_HOME/sluice/credentials.json` (or the platform's
//! config directory), written with mode 0600 in a 0700 directory. The
//! environment (`SLUICE_CONTROL_PLANE`, `SLUICE_TOKEN`) wins over the file,
//! for scripts and CI.

use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::CliError;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credentials {
    pub control_plane: String,
    pub token: String,
}

pub fn path() -> Result<PathBuf, CliError> {
    if let Some(p) = std::env::var_os("SLUICE_CREDENTIALS") {
        return Ok(PathBuf::from(p));
    }
    dirs::config_dir()
        .map(|d| d.join("sluice").join("credentials.json"))
        .ok_or_else(|| {
            CliError::Local(
                "no config directory for this user (set HOME or XDG_CONFIG_HOME, or SLUICE_CREDENTIALS)"
                    .into(),
            )
        })
}

/// The stored login, if any; a file that is not ours is an error, not
/// "logged out".
pub fn load() -> Result<Option<Credentials>, CliError> {
    let path = path()?;
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            CliError::Local(format!(
                "{}: not a sluice login file ({e}); run `sluice logout` or `sluice login` again",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CliError::Local(format!("{}: {e}", path.display()))),
    }
}

pub fn save(creds: &Credentials) -> Result<PathBuf, CliError> {
    let path = path()?;
    let local = |e: std::io::Error| CliError::Local(format!("{}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(local)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(local)?;
        }
    }
    // Written beside and renamed: a crash never leaves half a token, and
    // the file is 0600 from its first byte.
    let tmp = path.with_extension("json.tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(local)?;
    let body = serde_json::to_vec_pretty(creds).expect("credentials serialise");
    f.write_all(&body).map_err(local)?;
    f.sync_all().map_err(local)?;
    std::fs::rename(&tmp, &path).map_err(local)?;
    Ok(path)
}

pub fn remove() -> Result<bool, CliError> {
    let path = path()?;
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(CliError::Local(format!("{}: {e}", path.display()))),
    }
}

/// The control plane and token to use: flags and environment first, then
/// the login file.
pub fn resolve(url: Option<&str>) -> Result<Credentials, CliError> {
    let env_token = std::env::var("SLUICE_TOKEN").ok().filter(|t| !t.is_empty());
    let stored = load()?;
    let control_plane = url
        .map(str::to_string)
        .or_else(|| stored.as_ref().map(|c| c.control_plane.clone()));
    let token = env_token.or_else(|| stored.map(|c| c.token));
    match (control_plane, token) {
        (Some(control_plane), Some(token)) => Ok(Credentials {
            control_plane,
            token,
        }),
        _ => Err(CliError::NotAuthenticated(
            "not logged in: run `sluice login --control-plane URL` (or set SLUICE_CONTROL_PLANE and SLUICE_TOKEN)"
                .into(),
        )),
    }
}
