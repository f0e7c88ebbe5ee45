//! The upstream HTTP client: pooled keep-alive connections, `TCP_NODELAY`,
//! TLS with the webpki roots, redirects never followed (a gateway answers
//! with what its upstream said; following one would send the request and
//! its token somewhere the pack does not name).
//!
//! Requests go through hyper-util's pooled client directly. reqwest, used
//! before, wraps the same client in layers a gateway does not need (a
//! redirect layer that re-parses every request's URL, with IDNA, even when
//! redirects are off; URL↔URI conversions; its own body and future types):
//! a sixth of the no-policy path's instructions. reqwest stays for one case:
//! when the environment names a proxy (`HTTPS_PROXY`, `HTTP_PROXY`,
//! `ALL_PROXY`, any case), requests go through reqwest, which implements
//! proxies and `NO_PROXY`, exactly as before.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, Request, header};
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as Pool;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An upstream answer's body, whichever client fetched it.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;
pub type Response = axum::http::Response<Body>;

const USER_AGENT: &str = concat!("sluice-gateway/", env!("CARGO_PKG_VERSION"));

/// Environment variables that name a proxy (reqwest reads the same).
const PROXY_VARS: [&str; 6] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Cheap to clone: the router clones its state (this client with it)
/// several times per request, and hyper-util's client is a large struct.
#[derive(Clone)]
pub struct Client(Arc<Inner>);

#[expect(clippy::large_enum_variant, reason = "one per process, behind an Arc")]
enum Inner {
    Direct(Pool<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>),
    /// A proxy is configured in the environment.
    Proxied(reqwest::Client),
}

/// A request that got no answer. Its text can name the URL: it is logged,
/// never sent to a client.
#[derive(Debug)]
pub struct Error {
    connect: bool,
    source: BoxError,
}

impl Error {
    /// No connection could be made (refused, no route, DNS, TLS).
    pub fn is_connect(&self) -> bool {
        self.connect
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The chain of causes: hyper's own text says little alone.
        write!(f, "{}", self.source)?;
        let mut cause = self.source.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

impl Client {
    pub fn new() -> Client {
        let proxied = PROXY_VARS
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
        if proxied {
            return Client(Arc::new(Inner::Proxied(proxied_client())));
        }
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        http.enforce_http(false);
        let tls = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(tokio_rustls::rustls::crypto::ring::default_provider())
            .expect("ring offers the default protocol versions")
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        // Without a pool timer, idle connections past their timeout are
        // only dropped when a request to the same host looks at them.
        let pool = Pool::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .build(tls);
        Client(Arc::new(Inner::Direct(pool)))
    }

    /// Whether requests go through a proxy from the environment.
    pub fn is_proxied(&self) -> bool {
        matches!(*self.0, Inner::Proxied(_))
    }

    /// POSTs `body` to `url` with `headers` (and the gateway's user agent).
    pub async fn post(
        &self,
        url: &super::http::Endpoint,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Response, Error> {
        match &*self.0 {
            Inner::Direct(pool) => {
                let Some(uri) = url.uri() else {
                    return Err(Error {
                        connect: true,
                        source: "the URL is not valid".into(),
                    });
                };
                let mut req = Request::post(uri.clone())
                    .body(Full::new(body))
                    .map_err(|e| Error {
                        connect: false,
                        source: e.into(),
                    })?;
                *req.headers_mut() = headers;
                req.headers_mut()
                    .insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
                match pool.request(req).await {
                    Ok(resp) => Ok(resp.map(|b| b.map_err(BoxError::from).boxed_unsync())),
                    Err(e) => Err(Error {
                        connect: e.is_connect(),
                        source: e.into(),
                    }),
                }
            }
            Inner::Proxied(client) => {
                let Some(parsed) = url.url() else {
                    return Err(Error {
                        connect: true,
                        source: "the URL is not valid".into(),
                    });
                };
                match client
                    .post(parsed.clone())
                    .headers(headers)
                    .body(body)
                    .send()
                    .await
                {
                    Ok(resp) => {
                        let resp: axum::http::Response<reqwest::Body> = resp.into();
                        Ok(resp.map(|b| b.map_err(BoxError::from).boxed_unsync()))
                    }
                    Err(e) => Err(Error {
                        connect: e.is_connect(),
                        source: e.into(),
                    }),
                }
            }
        }
    }
}

impl Default for Client {
    fn default() -> Self {
        Client::new()
    }
}

/// reqwest with the environment's proxies, set up as the direct client is.
fn proxied_client() -> reqwest::Client {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .connect_timeout(Duration::from_secs(10))
        .user_agent(USER_AGENT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("the TLS backend is compiled in")
}

/// Reads at most `max` bytes of `resp`'s body. `Ok(None)`: it is longer.
pub async fn read_capped(resp: Response, max: usize) -> Result<Option<Bytes>, BoxError> {
    let declared = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Ok(None);
    }
    let mut body = resp.into_body();
    // Most answers arrive as one chunk: kept as it is, not copied.
    let mut first: Option<Bytes> = None;
    let mut out: Option<bytes::BytesMut> = None;
    while let Some(frame) = body.frame().await {
        let Ok(chunk) = frame?.into_data() else {
            continue; // trailers
        };
        let len = out.as_ref().map_or(0, |o| o.len()) + first.as_ref().map_or(0, |f| f.len());
        if len + chunk.len() > max {
            return Ok(None);
        }
        match (&mut out, first.take()) {
            (Some(o), _) => o.extend_from_slice(&chunk),
            (None, None) => first = Some(chunk),
            (None, Some(f)) => {
                let mut o = bytes::BytesMut::from(f);
                o.extend_from_slice(&chunk);
                out = Some(o);
            }
        }
    }
    Ok(Some(match (out, first) {
        (Some(o), _) => o.freeze(),
        (None, Some(f)) => f,
        (None, None) => Bytes::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bodies_are_read_whole_up_to_the_cap() {
        let resp = |parts: Vec<&'static str>| {
            let stream = futures::stream::iter(parts.into_iter().map(|p| {
                Ok::<_, BoxError>(http_body::Frame::data(Bytes::from_static(p.as_bytes())))
            }));
            axum::http::Response::new(http_body_util::StreamBody::new(stream).boxed_unsync())
        };
        let whole = read_capped(resp(vec!["ab", "cd", "e"]), 5).await.unwrap();
        assert_eq!(whole.as_deref(), Some(&b"abcde"[..]));
        let one = read_capped(resp(vec!["abc"]), 5).await.unwrap();
        assert_eq!(one.as_deref(), Some(&b"abc"[..]));
        assert_eq!(
            read_capped(resp(vec![]), 5).await.unwrap().as_deref(),
            Some(&b""[..])
        );
        assert_eq!(
            read_capped(resp(vec!["abc", "def"]), 5).await.unwrap(),
            None
        );
        assert_eq!(read_capped(resp(vec!["abcdef"]), 5).await.unwrap(), None);
    }
}
