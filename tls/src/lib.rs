//! TLS for Sluice's listeners and component links, with certificates read
//! from PEM files and reloaded when the files change.
//!
//! - [`Reloading`]: a certificate + key (and optionally a CA bundle) that a
//!   `notify` watcher re-reads on change. New handshakes use the new files;
//!   live connections keep the session they negotiated. A file that fails to
//!   parse is logged and ignored: the previous certificate keeps serving.
//! - [`server_config`]: a rustls server config from a [`Reloading`]; with a
//!   CA bundle, clients must present a certificate it signed (mutual TLS).
//! - [`incoming`]: turns a TCP listener into a stream of TLS connections,
//!   handshaking concurrently so one slow client cannot stall the others.
//! - [`grpc`]: the same for tonic servers, and a TLS connector for tonic
//!   clients.
//!
//! The crypto provider is `ring`, chosen explicitly so that no process-wide
//! default has to be installed.

pub mod grpc;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use futures::{Stream, StreamExt};
use rustls::RootCertStore;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

pub use rustls::ClientConfig;
pub use rustls::pki_types::ServerName;
pub use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Why TLS material could not be loaded: the file and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("{0}")]
    Config(String),
}

fn file_error(path: &Path, message: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Where the PEM files are.
#[derive(Debug, Clone)]
pub struct Files {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Certificates that may sign the peer's certificate (mutual TLS).
    pub ca: Option<PathBuf>,
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, format!("cannot read PEM certificates: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(path, format!("not a PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(file_error(path, "no CERTIFICATE block found"));
    }
    Ok(certs)
}

fn load_key(files: &Files) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = read_certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| file_error(&files.key, format!("no usable private key: {e}")))?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| file_error(&files.key, format!("unsupported private key: {e}")))?;
    let ck = CertifiedKey::new(chain, signing);
    ck.keys_match().map_err(|e| {
        file_error(
            &files.key,
            format!(
                "does not match the certificate in {}: {e}",
                files.cert.display()
            ),
        )
    })?;
    Ok(Arc::new(ck))
}

fn load_verifier(ca: &Path) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(ca)? {
        roots
            .add(cert)
            .map_err(|e| file_error(ca, format!("not a usable CA certificate: {e}")))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| file_error(ca, format!("cannot verify clients with this bundle: {e}")))
}

/// A certificate, key and optional client CA that follow their files.
pub struct Reloading {
    files: Files,
    key: ArcSwap<CertifiedKey>,
    verifier: Option<ArcSwap<Arc<dyn ClientCertVerifier>>>,
}

impl std::fmt::Debug for Reloading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading")
            .field("files", &self.files)
            .finish()
    }
}

impl Reloading {
    /// Loads the files; errors name the file and the problem.
    pub fn load(files: Files) -> Result<Arc<Reloading>, TlsError> {
        let key = load_key(&files)?;
        let verifier = match &files.ca {
            Some(ca) => Some(ArcSwap::from_pointee(load_verifier(ca)?)),
            None => None,
        };
        Ok(Arc::new(Reloading {
            key: ArcSwap::new(key),
            verifier,
            files,
        }))
    }

    /// Re-reads every file; on any error nothing changes.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = load_key(&self.files)?;
        let verifier = match (&self.files.ca, &self.verifier) {
            (Some(ca), Some(_)) => Some(load_verifier(ca)?),
            _ => None,
        };
        self.key.store(key);
        if let (Some(v), Some(slot)) = (verifier, &self.verifier) {
            slot.store(Arc::new(v));
        }
        Ok(())
    }

    /// Watches the files' directories (files are often replaced, not
    /// rewritten, e.g. by Kubernetes secret updates) and reloads on change
    /// until the guard is dropped.
    pub fn watch(self: &Arc<Self>) -> Result<Watch, TlsError> {
        use notify::Watcher;
        let me = Arc::downgrade(self);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if event.is_ok_and(|e| !e.kind.is_access()) {
                    let _ = tx.send(());
                }
            })
            .map_err(|e| TlsError::Config(format!("cannot watch certificate files: {e}")))?;
        let mut dirs: Vec<PathBuf> = [
            Some(&self.files.cert),
            Some(&self.files.key),
            self.files.ca.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(|p| {
            p.parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf()
        })
        .collect();
        dirs.sort();
        dirs.dedup();
        for d in &dirs {
            watcher
                .watch(d, notify::RecursiveMode::NonRecursive)
                .map_err(|e| file_error(d, format!("cannot watch: {e}")))?;
        }
        let task = tokio::spawn(async move {
            while rx.recv().await.is_some() {
                // Writers touch cert and key separately: let them settle.
                tokio::time::sleep(Duration::from_millis(200)).await;
                while rx.try_recv().is_ok() {}
                let Some(me) = me.upgrade() else { return };
                match me.reload() {
                    Ok(()) => {
                        tracing::info!(cert = %me.files.cert.display(), "TLS certificate reloaded")
                    }
                    Err(e) => tracing::error!(
                        "TLS files changed but were NOT reloaded, the previous certificate keeps serving: {e}"
                    ),
                }
            }
        });
        Ok(Watch {
            _watcher: watcher,
            task,
        })
    }
}

/// Stops watching when dropped.
pub struct Watch {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.key.load_full())
    }
}

impl rustls::client::ResolvesClientCert for Reloading {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.key.load_full())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A client config that trusts the servers `ca` signed (re-read on every
/// call, so a reconnect picks up a new bundle) and, with `identity`,
/// presents that certificate (mutual TLS). ALPN `h2`, for gRPC.
pub fn client_config(
    ca: &Path,
    identity: Option<Arc<Reloading>>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(ca)? {
        roots
            .add(cert)
            .map_err(|e| file_error(ca, format!("not a usable CA certificate: {e}")))?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(id) => builder.with_client_cert_resolver(id),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Loads a certificate and key for the client side (no CA: the client's CA
/// is given to [`client_config`]).
pub fn identity(cert: PathBuf, key: PathBuf) -> Result<Arc<Reloading>, TlsError> {
    Reloading::load(Files {
        cert,
        key,
        ca: None,
    })
}

/// Delegates to the current client verifier, so a new CA bundle applies to
/// the next handshake.
#[derive(Debug)]
struct CurrentVerifier(Arc<Reloading>);

impl CurrentVerifier {
    fn get(&self) -> Arc<dyn ClientCertVerifier> {
        let slot = self.0.verifier.as_ref().expect("built only with a CA");
        Arc::clone(&slot.load())
    }
}

impl ClientCertVerifier for CurrentVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // Hints are optional; the current bundle cannot be borrowed here.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.get()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.get().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.get().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.get().supported_verify_schemes()
    }
}

/// A server config that serves the reloading certificate and, when a CA is
/// configured, requires client certificates signed by it. `alpn`: e.g.
/// `h2` for gRPC, `h2` + `http/1.1` for HTTPS.
pub fn server_config(
    cert: &Arc<Reloading>,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match cert.verifier {
        Some(_) => builder.with_client_cert_verifier(Arc::new(CurrentVerifier(cert.clone()))),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(cert.clone());
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// TLS connections accepted on `listener`. Handshakes run concurrently (up
/// to 256 at a time, 10 s each); failed ones are logged at debug level and
/// skipped — a client with a wrong certificate is simply refused.
pub fn incoming(
    listener: TcpListener,
    acceptor: TlsAcceptor,
) -> impl Stream<Item = Result<TlsStream<TcpStream>, std::io::Error>> + Send + 'static {
    futures::stream::unfold(listener, |l| async move {
        let accepted = l.accept().await;
        if accepted.is_err() {
            // E.g. out of file descriptors: do not spin on it.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some((accepted, l))
    })
    .map(move |accepted| {
        let acceptor = acceptor.clone();
        async move {
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    return None;
                }
            };
            let _ = tcp.set_nodelay(true);
            match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => Some(Ok(tls)),
                Ok(Err(e)) => {
                    tracing::info!(%peer, error = %e, "TLS handshake refused");
                    None
                }
                Err(_) => {
                    tracing::info!(%peer, "TLS handshake timed out");
                    None
                }
            }
        }
    })
    .buffer_unordered(256)
    .filter_map(std::future::ready)
}
