//! One gateway process from start to clean exit: load the first config
//! (file or control plane), keep certificates and the pack file watched,
//! serve HTTP or HTTPS until shutdown, then drain the audit queues. The
//! binary only parses its command line into [`Options`] and binds the
//! listener, so tests and embedders start a gateway the same way.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{self, ConfigStore, LoadError};
use crate::control;
use crate::settings::Settings;

/// Where the pack comes from.
pub enum Source {
    /// Standalone: a YAML or JSON file, hot-reloaded on change.
    File(PathBuf),
    /// Pushed by a control plane over gRPC, with an on-disk cache.
    ControlPlane(control::Options),
}

/// Everything a gateway starts with besides its listener.
pub struct Options {
    pub source: Source,
    pub settings: Settings,
    /// Serve HTTPS with this certificate (reloaded when its files change).
    pub tls: Option<sluice_tls::Files>,
}

/// Why a gateway could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Pack(#[from] LoadError),
    #[error("watching {path}: {source}")]
    WatchPack { path: String, source: notify::Error },
    /// `flag` names the command-line option whose files are at fault.
    #[error("{flag}: {source}")]
    Tls {
        flag: &'static str,
        source: sluice_tls::TlsError,
    },
    #[error("serving: {0}")]
    Serve(std::io::Error),
}

/// How long queued audit records may take to reach their sinks at exit.
const AUDIT_DRAIN: Duration = Duration::from_secs(10);

/// Serves on `listener` until `shutdown` resolves, then writes the audit
/// records still queued so that a rolling restart loses none.
pub async fn serve(
    listener: tokio::net::TcpListener,
    opts: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let Options {
        source,
        settings,
        tls,
    } = opts;
    let tls_err = |flag| move |source| StartError::Tls { flag, source };
    // Client certificates towards the control plane and the workers follow
    // their files; the guards stop watching when dropped at exit.
    let _identity_watches = [
        (
            "--control-plane-cert",
            settings.control_plane.as_ref().and_then(|l| l.tls.as_ref()),
        ),
        ("--worker-cert", settings.worker_tls.as_ref()),
    ]
    .into_iter()
    .filter_map(|(flag, tls)| Some((flag, tls?.identity.clone()?)))
    .map(|(flag, id)| id.watch().map_err(tls_err(flag)))
    .collect::<Result<Vec<_>, _>>()?;

    // Both guards stop their config source when dropped at shutdown.
    let (store, _pack_watch, _control) = match source {
        Source::File(path) => {
            let pack = config::load_file(&path)?;
            let store = Arc::new(ConfigStore::new(pack, settings)?);
            let watch = config::watch(path.clone(), store.clone()).map_err(|source| {
                StartError::WatchPack {
                    path: path.display().to_string(),
                    source,
                }
            })?;
            (store, Some(watch), None)
        }
        Source::ControlPlane(opts) => {
            let store = Arc::new(ConfigStore::empty(settings));
            control::load_cache(&opts, &store);
            let task = tokio::spawn(control::run(opts, store.clone()));
            (store, None, Some(AbortOnDrop(task)))
        }
    };

    let addr = listener.local_addr().map_err(StartError::Serve)?;
    match tls {
        None => {
            tracing::info!(listen = %addr, "sluice-gateway listening");
            crate::run(listener, store, shutdown)
                .await
                .map_err(StartError::Serve)?;
        }
        Some(files) => {
            let cert = sluice_tls::Reloading::load(files).map_err(tls_err("--tls-cert"))?;
            let _watch = cert.watch().map_err(tls_err("--tls-cert"))?;
            let config = sluice_tls::server_config(&cert, &[b"h2", b"http/1.1"])
                .map_err(tls_err("--tls-cert"))?;
            tracing::info!(listen = %addr, "sluice-gateway listening (HTTPS)");
            crate::run_tls(listener, config.into(), store, shutdown)
                .await
                .map_err(StartError::Serve)?;
        }
    }
    if !tokio::task::block_in_place(|| crate::audit::drain_all(AUDIT_DRAIN)) {
        tracing::error!("audit records still queued after 10 s were lost at shutdown");
    }
    tracing::info!("shut down cleanly");
    Ok(())
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
