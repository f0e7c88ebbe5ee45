//! The HTTP server loop behind [`crate::run`] and [`crate::run_tls`], with
//! the limits a public listener needs and `axum::serve` does not set:
//!
//! - at most `max_connections` open connections; beyond that the gateway
//!   stops accepting and new ones wait in the kernel's backlog;
//! - a connection must deliver a complete request head within
//!   `header_read_timeout`, also while idle between keep-alive requests,
//!   so a client that trickles bytes (slowloris) or sends none is closed;
//! - a request body must arrive within `body_read_timeout`
//!   ([`read_body`], 408);
//! - at most `max_concurrent_requests` API requests at once, streams
//!   included until their last byte; the next one gets 503 `overloaded`
//!   with `Retry-After` at once instead of queueing (probes and `/metrics`
//!   are not counted, so an overloaded gateway still reports itself).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::Listener;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

use crate::error::ApiError;

/// The listener's limits (command-line settings).
#[derive(Debug, Clone)]
pub struct HttpLimits {
    pub max_connections: usize,
    pub max_concurrent_requests: usize,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 10_000,
            max_concurrent_requests: 1024,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(60),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets open
/// requests finish.
pub async fn serve<L>(
    mut listener: L,
    app: axum::Router,
    limits: &HttpLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    L: Listener,
    L::Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(20)));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&connections).acquire_owned() => p.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (io, _peer) = tokio::select! {
            c = listener.accept() => c,
            () = &mut shutdown => break,
        };
        let io = TokioIo::new(HeadDeadline::new(io, limits.header_read_timeout));
        let service = app
            .clone()
            .map_request(|req: Request<hyper::body::Incoming>| req.map(Body::new));
        let conn = builder
            .serve_connection_with_upgrades(io, TowerToHyperService::new(service))
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::trace!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// The first bytes of a connection must arrive in time. hyper's own
/// header timer starts only once the protocol is known, and choosing the
/// protocol waits for the first bytes, so without this a connection that
/// sends one byte, or none, would stay open for good.
struct HeadDeadline<IO> {
    io: IO,
    /// Until this many bytes have been read (the HTTP/2 preface's length,
    /// after which the protocol is chosen and hyper's timer runs).
    left: usize,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl<IO> HeadDeadline<IO> {
    fn new(io: IO, timeout: Duration) -> Self {
        HeadDeadline {
            io,
            left: 24,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for HeadDeadline<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let read = Pin::new(&mut this.io).poll_read(cx, buf);
        if this.left == 0 {
            return read;
        }
        if let Poll::Ready(Ok(())) = &read {
            this.left = this.left.saturating_sub(buf.filled().len() - before);
            return read;
        }
        if read.is_pending() && this.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no request head within the header read timeout",
            )));
        }
        read
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for HeadDeadline<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// The request-concurrency limit, as axum middleware state.
#[derive(Clone)]
pub struct RequestSlots(Arc<Semaphore>);

impl RequestSlots {
    pub fn new(n: usize) -> Self {
        RequestSlots(Arc::new(Semaphore::new(n.max(1))))
    }
}

/// Admits a request if a slot is free and keeps the slot until the
/// response body (a stream, perhaps) has been sent or dropped.
pub async fn admit(
    axum::extract::State(slots): axum::extract::State<RequestSlots>,
    req: Request,
    next: Next,
) -> Response {
    let Ok(permit) = Arc::clone(&slots.0).try_acquire_owned() else {
        crate::metrics::get().overloaded.inc();
        return ApiError::Overloaded.into_response();
    };
    let (parts, body) = next.run(req).await.into_parts();
    Response::from_parts(
        parts,
        Body::new(Held {
            body,
            _permit: permit,
        }),
    )
}

/// A response body that holds its request's slot.
struct Held {
    body: Body,
    _permit: OwnedSemaphorePermit,
}

impl http_body::Body for Held {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }
    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The whole request body, at most `limit` bytes, within `timeout`.
pub async fn read_body(
    body: Body,
    limit: usize,
    timeout: Duration,
) -> Result<bytes::Bytes, ApiError> {
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Err(_) => Err(ApiError::BodyTimeout {
            seconds: timeout.as_secs_f64(),
        }),
        Ok(Err(e)) if is_length_limit(&e) => Err(ApiError::TooLarge { limit }),
        Ok(Err(e)) => Err(ApiError::BadRequest(format!(
            "the request body could not be read: {e}"
        ))),
        Ok(Ok(bytes)) => Ok(bytes),
    }
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}
