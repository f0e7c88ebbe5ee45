//! The config path of control-plane mode: a `Sync` stream to the control
//! plane (`proto/sluice/v1/control.proto`) turned into config swaps.
//!
//! Each snapshot received is checked (digest), validated and compiled with
//! the same code as a pack file; success is published atomically, written to
//! the cache directory and ACKed; failure is NACKed with the reason and the
//! running config keeps serving. At start the cached snapshot, if any, is
//! served before the control plane is reached, so a gateway restarted while
//! the control plane is down still serves. The stream is re-opened with
//! exponential back-off and jitter; HTTP/2 keepalives detect dead peers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use sluice_proto::backoff::Backoff;
use sluice_proto::pack::{self, KeySecret};
use sluice_proto::wire::{
    self, Ack, ControlMessage, GatewayMessage, Hello, Nack, Snapshot,
    config_service_client::ConfigServiceClient, control_message, gateway_message,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::config::ConfigStore;
use crate::settings::{ControlPlaneLink, authorized, connect};

const CACHE_FILE: &str = "snapshot.pb";
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(15);

/// How this gateway finds and introduces itself to its control plane.
#[derive(Debug, Clone)]
pub struct Options {
    pub link: ControlPlaneLink,
    pub labels: BTreeMap<String, String>,
    pub cache_dir: PathBuf,
}

/// Parses `k=v[,k=v…]` label arguments.
pub fn parse_labels(args: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    for arg in args {
        labels.extend(sluice_proto::labels::parse(arg).map_err(|e| format!("label {e}"))?);
    }
    Ok(labels)
}

/// What the gateway serves now, as the control plane names it.
#[derive(Debug, Clone, Default)]
struct Applied {
    version: String,
    sha256: String,
}

/// Loads the cached snapshot into `store`, if there is a usable one.
/// Returns whether a config is now being served.
pub fn load_cache(opts: &Options, store: &ConfigStore) -> bool {
    let path = opts.cache_dir.join(CACHE_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return false,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the cached snapshot");
            return false;
        }
    };
    let snapshot = match Snapshot::decode(bytes.as_slice()) {
        Ok(s) if s.is_intact() => s,
        _ => {
            tracing::warn!(path = %path.display(), "cached snapshot is corrupt; ignoring it");
            return false;
        }
    };
    match apply(store, &snapshot) {
        Ok(()) => {
            tracing::info!(version = %snapshot.version, "serving the cached snapshot until the control plane answers");
            true
        }
        Err(e) => {
            tracing::error!(version = %snapshot.version, "cached snapshot refused: {e}");
            false
        }
    }
}

/// Keeps a stream to the control plane open forever, applying what it
/// sends. Never returns; drop the task to stop.
pub async fn run(opts: Options, store: Arc<ConfigStore>) {
    let mut applied = read_cached_identity(&opts.cache_dir).unwrap_or_default();
    let mut backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
    loop {
        let started = tokio::time::Instant::now();
        match session(&opts, &store, &mut applied).await {
            Ok(()) => {
                tracing::warn!(url = %opts.link.url, "control plane closed the config stream; reconnecting")
            }
            Err(e) => {
                tracing::warn!(url = %opts.link.url, "config stream failed: {e}; reconnecting")
            }
        }
        // A stream that lived a while was healthy: start backing off afresh.
        if started.elapsed() > Duration::from_secs(30) {
            backoff.reset();
        }
        tokio::time::sleep(backoff.next_pause()).await;
    }
}

async fn session(
    opts: &Options,
    store: &Arc<ConfigStore>,
    applied: &mut Applied,
) -> Result<(), String> {
    let channel = connect(&opts.link).await?;
    let (tx, rx) = mpsc::channel(8);
    let hello = Hello {
        gateway_id: opts.link.gateway_id.clone(),
        labels: opts.labels.clone().into_iter().collect(),
        applied_version: applied.version.clone(),
        applied_sha256: applied.sha256.clone(),
    };
    send(&tx, gateway_message::Msg::Hello(hello)).await?;
    let mut inbound = ConfigServiceClient::new(channel)
        .max_decoding_message_size(sluice_proto::wire::MAX_MESSAGE_BYTES)
        .sync(authorized(&opts.link, ReceiverStream::new(rx))?)
        .await
        .map_err(|s| format!("control plane refused the stream: {}", s.message()))?
        .into_inner();
    tracing::info!(url = %opts.link.url, gateway_id = %opts.link.gateway_id, "config stream open");
    while let Some(msg) = inbound
        .message()
        .await
        .map_err(|s| format!("stream error: {}", s.message()))?
    {
        match msg {
            ControlMessage {
                msg: Some(control_message::Msg::Snapshot(snapshot)),
            } => {
                let reply = receive(opts, store, applied, snapshot).await;
                send(&tx, reply).await?;
            }
            ControlMessage {
                msg: Some(control_message::Msg::NoDeployment(n)),
            } => {
                tracing::warn!(reason = %n.reason, "no deployment matches this gateway's labels; keeping the current config");
            }
            ControlMessage { msg: None } => {}
        }
    }
    Ok(())
}

async fn send(tx: &mpsc::Sender<GatewayMessage>, msg: gateway_message::Msg) -> Result<(), String> {
    tx.send(GatewayMessage { msg: Some(msg) })
        .await
        .map_err(|_| "stream closed".to_string())
}

/// Applies one snapshot and says how it went.
async fn receive(
    opts: &Options,
    store: &Arc<ConfigStore>,
    applied: &mut Applied,
    snapshot: Snapshot,
) -> gateway_message::Msg {
    let (version, sha256) = (snapshot.version.clone(), snapshot.sha256.clone());
    if !snapshot.is_intact() {
        return nack(
            version,
            sha256,
            "snapshot digest does not match its content".into(),
        );
    }
    if sha256 == applied.sha256 && store.current().is_some() {
        return gateway_message::Msg::Ack(Ack { version, sha256 });
    }
    // Compiling loads detector weights: keep it off the async workers.
    let store2 = store.clone();
    let compiled =
        tokio::task::spawn_blocking(move || apply(&store2, &snapshot).map(|()| snapshot))
            .await
            .unwrap_or_else(|e| Err(format!("compiling the snapshot panicked: {e}")));
    match compiled {
        Ok(snapshot) => {
            tracing::info!(%version, %sha256, "snapshot applied");
            if let Err(e) = write_cache(&opts.cache_dir, &snapshot) {
                // Serving is unaffected; only a restart without the control
                // plane would miss it.
                tracing::error!(dir = %opts.cache_dir.display(), "cannot write the snapshot cache: {e}");
            }
            *applied = Applied {
                version: version.clone(),
                sha256: sha256.clone(),
            };
            gateway_message::Msg::Ack(Ack { version, sha256 })
        }
        Err(e) => {
            tracing::error!(%version, "snapshot REFUSED, the previous config keeps serving: {e}");
            nack(version, sha256, e)
        }
    }
}

fn nack(version: String, sha256: String, error: String) -> gateway_message::Msg {
    gateway_message::Msg::Nack(Nack {
        version,
        sha256,
        error,
    })
}

/// Validates and compiles a snapshot and publishes it.
fn apply(store: &ConfigStore, snapshot: &Snapshot) -> Result<(), String> {
    let loaded = pack::load(&snapshot.pack_text).map_err(|e| e.to_string())?;
    for w in &loaded.warnings {
        tracing::warn!(version = %snapshot.version, "{w}");
    }
    let mut pack = loaded.pack;
    pack.clients
        .keys
        .extend(snapshot.client_keys.iter().map(to_pack_key));
    pack.clients.require_key |= snapshot.require_client_key;
    store.publish(pack).map_err(|e| e.to_string())
}

fn to_pack_key(k: &wire::ClientKey) -> pack::ClientKey {
    pack::ClientKey {
        id: k.id.clone(),
        role: k.role.clone(),
        secret: KeySecret::Sha256(k.key_sha256.clone()),
        expires_at: (k.expires_at != 0).then_some(k.expires_at),
    }
}

/// Writes the snapshot so that a crash leaves either the old file or the
/// new one: temporary file, fsync, rename, fsync of the directory.
fn write_cache(dir: &Path, snapshot: &Snapshot) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{CACHE_FILE}.tmp"));
    // 0600: the snapshot holds the pack text and the client-key hashes.
    let mut f = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?
    };
    // A file left by an older version may have wider permissions.
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    f.write_all(&snapshot.encode_to_vec())?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(CACHE_FILE))?;
    std::fs::File::open(dir)?.sync_all()
}

fn read_cached_identity(dir: &Path) -> Option<Applied> {
    let bytes = std::fs::read(dir.join(CACHE_FILE)).ok()?;
    let s = Snapshot::decode(bytes.as_slice()).ok()?;
    s.is_intact().then_some(Applied {
        version: s.version,
        sha256: s.sha256,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_from_repeated_and_comma_separated_flags() {
        let l = parse_labels(&["env=prod,region=eu".into(), "tier = gold".into()]).unwrap();
        assert_eq!(l.get("env").map(String::as_str), Some("prod"));
        assert_eq!(l.get("region").map(String::as_str), Some("eu"));
        assert_eq!(l.get("tier").map(String::as_str), Some("gold"));
        let e = parse_labels(&["env".into()]).unwrap_err();
        assert!(e.contains("'env'"), "{e}");
        assert!(parse_labels(&["=x".into()]).is_err());
    }

    #[test]
    fn cache_round_trips_and_a_corrupt_file_is_ignored() {
        let dir = std::env::temp_dir().join(format!("sluice-cache-{}", uuid::Uuid::new_v4()));
        let text = "pack:\n  name: p\nproviders:\n  targets:\n    - id: t\n      provider: openai:m\n      base_url: http://127.0.0.1:9/v1\n";
        let keys = vec![wire::ClientKey {
            id: "k".into(),
            role: "r".into(),
            key_sha256: "0".repeat(64),
            expires_at: 0,
        }];
        let snap = Snapshot {
            version: "p@1".into(),
            sha256: wire::snapshot_sha256(text, &keys, false),
            pack_name: "p".into(),
            pack_version: 1,
            pack_text: text.into(),
            client_keys: keys,
            selector: String::new(),
            require_client_key: false,
        };
        write_cache(&dir, &snap).unwrap();
        let opts = Options {
            link: ControlPlaneLink {
                url: "http://127.0.0.1:9".into(),
                gateway_id: "g".into(),
                tls: None,
                token_file: None,
            },
            labels: BTreeMap::new(),
            cache_dir: dir.clone(),
        };
        let settings = crate::settings::Settings {
            hf_router_url: "http://router.test".into(),
            hf_inference_url: Some("http://127.0.0.1:9".into()),
            control_plane: None,
            worker_tls: None,
            metrics_token_file: None,
            allow: Default::default(),
            http: Default::default(),
        };
        let store = ConfigStore::empty(settings.clone());
        assert!(load_cache(&opts, &store));
        let rt = store.current().expect("config served from the cache");
        assert_eq!(rt.pack.name, "p");
        assert_eq!(rt.pack.clients.keys.len(), 1);
        assert_eq!(read_cached_identity(&dir).unwrap().version, "p@1");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.join(CACHE_FILE))
                .unwrap()
                .permissions(),
        );
        assert_eq!(
            mode & 0o777,
            0o600,
            "the snapshot cache is private to the gateway"
        );

        // Flip one byte of the pack text: the digest no longer matches.
        let mut bytes = std::fs::read(dir.join(CACHE_FILE)).unwrap();
        let at = bytes.windows(5).position(|w| w == b"name:").unwrap();
        bytes[at] = b'N';
        std::fs::write(dir.join(CACHE_FILE), bytes).unwrap();
        assert!(!load_cache(&opts, &ConfigStore::empty(settings)));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
