//! The config path of standalone mode: read the pack file, validate it,
//! compile it into a [`Runtime`] and publish it atomically; watch the file
//! and do the same on every change. A pack that fails validation is logged
//! and refused: the running config keeps serving.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use notify::{RecursiveMode, Watcher};
use sluice_proto::pack::{self, ConfigErrors};

use crate::runtime::Runtime;
use crate::settings::Settings;

/// Why a pack file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {errors}")]
    Invalid { path: String, errors: ConfigErrors },
    #[error("{0}")]
    Build(String),
}

/// The current config, swapped atomically. Readers take an `Arc` snapshot
/// and keep it for the whole request. Empty only in control-plane mode,
/// before the first snapshot (or cached snapshot) is loaded.
pub struct ConfigStore {
    current: ArcSwapOption<Runtime>,
    settings: Settings,
    generation: AtomicU64,
}

impl ConfigStore {
    pub fn new(first: pack::Pack, settings: Settings) -> Result<Self, LoadError> {
        let store = ConfigStore::empty(settings);
        store.publish(first)?;
        Ok(store)
    }

    /// A store that serves nothing (503) until [`ConfigStore::publish`].
    pub fn empty(settings: Settings) -> Self {
        ConfigStore {
            current: ArcSwapOption::empty(),
            settings,
            generation: AtomicU64::new(0),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn current(&self) -> Option<Arc<Runtime>> {
        self.current.load_full()
    }

    /// Compiles and publishes a validated pack; on failure the current
    /// version keeps serving.
    pub fn publish(&self, pack: pack::Pack) -> Result<(), LoadError> {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let rt = Runtime::build(pack, &self.settings, generation).map_err(LoadError::Build)?;
        rt.log_summary();
        self.current.store(Some(Arc::new(rt)));
        Ok(())
    }
}

/// Reads and validates a pack file; warnings are logged.
pub fn load_file(path: &Path) -> Result<pack::Pack, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let loaded = pack::load(&text).map_err(|errors| LoadError::Invalid {
        path: path.display().to_string(),
        errors,
    })?;
    for w in &loaded.warnings {
        tracing::warn!(file = %path.display(), "{w}");
    }
    Ok(loaded.pack)
}

/// Watches `path` and republishes it on change until the returned guard is
/// dropped. Editors often replace a file rather than write it, so the
/// directory is watched and events are filtered by name; bursts of events
/// are debounced into one reload.
pub fn watch(path: PathBuf, store: Arc<ConfigStore>) -> notify::Result<WatchGuard> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let file_name = path.file_name().map(|n| n.to_os_string());
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            if event.kind.is_access() {
                return;
            }
            if event
                .paths
                .iter()
                .any(|p| p.file_name().map(|n| n.to_os_string()) == file_name)
            {
                let _ = tx.send(());
            }
        }
    })?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    let task = tokio::spawn(async move {
        let mut last_sha = store
            .current()
            .map(|rt| rt.pack.sha256.clone())
            .unwrap_or_default();
        while rx.recv().await.is_some() {
            // Debounce: wait for the writes to settle, then drain the queue.
            tokio::time::sleep(Duration::from_millis(100)).await;
            while rx.try_recv().is_ok() {}
            match load_file(&path) {
                Ok(pack) if pack.sha256 == last_sha => {}
                Ok(pack) => {
                    let sha = pack.sha256.clone();
                    tracing::info!(file = %path.display(), "pack file changed; applying");
                    match store.publish(pack) {
                        // Remembered only on success: a pack that failed to
                        // compile (say, its audit directory was missing) is
                        // retried when the file is touched again.
                        Ok(()) => last_sha = sha,
                        Err(e) => tracing::error!(
                            "pack change REFUSED, the previous config keeps serving: {e}"
                        ),
                    }
                }
                Err(LoadError::Read { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    // Mid-replace by an editor; the create event follows.
                }
                Err(e) => {
                    tracing::error!("pack change REFUSED, the previous config keeps serving: {e}")
                }
            }
        }
    });
    Ok(WatchGuard {
        _watcher: watcher,
        task,
    })
}

pub struct WatchGuard {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.task.abort();
    }
}
