//! gRPC (tonic) over TLS: the connection type a TLS server hands tonic, and
//! the connector a TLS client gives tonic's endpoint. Used for control
//! plane ⇄ gateway and gateway ⇄ worker.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::{Reloading, TlsError};

/// An accepted TLS connection, as tonic wants it. Its connection info is
/// the client's certificate chain, which tonic puts in every request's
/// extensions ([`PeerCertificates`]) so a service can tell who is calling.
pub struct TlsIo(pub tokio_rustls::server::TlsStream<TcpStream>);

/// The certificate chain a client presented in the TLS handshake (already
/// verified against the server's client CA), leaf first; `None` without
/// mutual TLS.
#[derive(Clone, Debug, Default)]
pub struct PeerCertificates(pub Option<Arc<Vec<CertificateDer<'static>>>>);

impl PeerCertificates {
    /// Whether the leaf certificate is valid for the DNS name `name` (a
    /// subjectAltName DNS entry, wildcards as in TLS server names).
    pub fn names(&self, name: &str) -> bool {
        let Some(leaf) = self.0.as_deref().and_then(|c| c.first()) else {
            return false;
        };
        let Ok(server_name) = ServerName::try_from(name) else {
            return false;
        };
        webpki::EndEntityCert::try_from(leaf)
            .and_then(|cert| cert.verify_is_valid_for_subject_name(&server_name))
            .is_ok()
    }
}

impl tonic::transport::server::Connected for TlsIo {
    type ConnectInfo = PeerCertificates;
    fn connect_info(&self) -> Self::ConnectInfo {
        PeerCertificates(
            self.0
                .get_ref()
                .1
                .peer_certificates()
                .map(|chain| Arc::new(chain.iter().map(|c| c.clone().into_owned()).collect())),
        )
    }
}

impl AsyncRead for TlsIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

/// The TLS connections of a gRPC server on `listener` (ALPN `h2`); with a
/// CA in `cert`, clients must present a certificate it signed.
pub fn incoming(
    listener: TcpListener,
    cert: &Arc<Reloading>,
) -> Result<impl Stream<Item = io::Result<TlsIo>> + Send + 'static, TlsError> {
    let acceptor = tokio_rustls::TlsAcceptor::from(crate::server_config(cert, &[b"h2"])?);
    Ok(crate::incoming(listener, acceptor).map(|r| r.map(TlsIo)))
}

/// The plain TCP connections of a gRPC server on `listener`, with
/// `TCP_NODELAY` set: tonic's own setting applies only to sockets it accepts
/// itself, and without it Nagle's algorithm holds each small streamed
/// message until the previous one is acknowledged (milliseconds each).
pub fn plaintext(
    listener: TcpListener,
) -> impl Stream<Item = io::Result<TcpStream>> + Send + 'static {
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(|conn| {
        conn.inspect(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY");
            }
        })
    })
}

/// A tonic connector that dials TCP to the URI's host and port and then
/// speaks TLS, checking the server's certificate against `name`.
#[derive(Clone)]
pub struct Connector {
    tls: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
}

impl Connector {
    pub fn new(config: Arc<rustls::ClientConfig>, name: ServerName<'static>) -> Connector {
        Connector {
            tls: tokio_rustls::TlsConnector::from(config),
            name,
        }
    }
}

type Connecting = Pin<
    Box<
        dyn Future<Output = io::Result<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>>> + Send,
    >,
>;

impl tower::Service<http::Uri> for Connector {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let (tls, name) = (self.tls.clone(), self.name.clone());
        Box::pin(async move {
            let addr = format!(
                "{}:{}",
                uri.host().unwrap_or_default().trim_matches(['[', ']']),
                uri.port_u16().unwrap_or(443)
            );
            let tcp = TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            Ok(TokioIo::new(tls.connect(name, tcp).await?))
        })
    }
}
