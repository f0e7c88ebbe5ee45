//! The gateway's HTTPS listener: TLS connections from
//! [`sluice_tls::incoming`] (concurrent handshakes, certificate reloaded on
//! change) offered to axum as a [`Listener`].

use std::net::SocketAddr;
use std::pin::Pin;

use axum::serve::Listener;
use futures::{Stream, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

type Incoming = Pin<Box<dyn Stream<Item = std::io::Result<TlsStream<TcpStream>>> + Send>>;

pub struct TlsListener {
    incoming: Incoming,
    local: SocketAddr,
}

impl TlsListener {
    pub fn new(listener: TcpListener, acceptor: sluice_tls::TlsAcceptor) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        Ok(TlsListener {
            incoming: Box::pin(sluice_tls::incoming(listener, acceptor)),
            local,
        })
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            // The stream never ends: it wraps an accept loop.
            if let Some(Ok(tls)) = self.incoming.next().await {
                let peer = tls.get_ref().0.peer_addr().unwrap_or(self.local);
                return (tls, peer);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
