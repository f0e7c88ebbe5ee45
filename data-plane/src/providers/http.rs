//! Talking HTTP to an upstream: bearer auth, deadlines, the Hugging Face
//! cold-start wait, and the mapping of upstream failures to errors that tell
//! the operator or the client what to do.

use std::fmt;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde_json::Value;
use tokio::time::Instant;

use super::target::TargetRuntime;
use crate::error::ApiError;

/// The most an upstream answer (a whole completion, an embeddings list,
/// an error body) may hold: beyond it the gateway stops reading, so a
/// broken or hostile upstream cannot make it buffer without bound. Large
/// embeddings batches (2,048 inputs of 1,536 floats as JSON) stay under it.
pub const MAX_UPSTREAM_BODY: usize = 64 << 20;

pub use super::client::{Client, Response, read_capped};

/// Never wait longer than this for one "model is loading" round, even if the
/// upstream estimates more: its estimate is refreshed on every retry.
const MAX_LOADING_WAIT: Duration = Duration::from_secs(10);

/// An upstream URL, parsed once per config version rather than per
/// request (parsing runs IDNA processing on the host every time).
pub struct Endpoint {
    text: String,
    url: Option<reqwest::Url>,
    uri: Option<axum::http::Uri>,
}

impl Endpoint {
    pub fn new(text: String) -> Endpoint {
        let url = reqwest::Url::parse(&text).ok();
        // The URI from the normalised URL (an IDNA host in ASCII), so both
        // clients send the same request.
        let uri = url.as_ref().and_then(|u| u.as_str().parse().ok());
        Endpoint { text, url, uri }
    }

    pub fn url(&self) -> Option<&reqwest::Url> {
        self.url.as_ref()
    }

    pub fn uri(&self) -> Option<&axum::http::Uri> {
        self.uri.as_ref()
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

/// A request body as JSON bytes, serialised once however often it is sent.
pub fn json(body: &impl serde::Serialize) -> Result<Bytes, ApiError> {
    serde_json::to_vec(body)
        .map(Bytes::from)
        .map_err(|e| ApiError::BadRequest(format!("the request cannot be encoded: {e}")))
}

/// POSTs `body` (JSON) and returns the response once its status is a
/// success. A 503 "model is loading" is waited out and retried until
/// `deadline`.
pub async fn post(
    http: &Client,
    target: &TargetRuntime,
    url: &Endpoint,
    body: Bytes,
    deadline: Instant,
) -> Result<Response, ApiError> {
    if url.uri.is_none() {
        // Validation accepts only http(s) URLs and placeholders mark a
        // target unavailable, so this is an operator's odd URL.
        return Err(ApiError::Unavailable(format!(
            "target '{}' is unavailable: its URL is not valid; fix base_url",
            target.spec.id
        )));
    };
    loop {
        let mut headers = HeaderMap::with_capacity(4);
        headers.insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(token) = &target.token {
            // A token that is not a valid header value cannot be sent; the
            // upstream's 401 then names the variable to fix.
            if let Ok(mut v) = HeaderValue::from_str(&format!("Bearer {}", token.expose())) {
                v.set_sensitive(true);
                headers.insert(axum::http::header::AUTHORIZATION, v);
            }
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if target.dedicated {
            // Asks an endpoint scaled to zero to hold the request while it
            // starts, for as long as this call may still take.
            if let Ok(v) =
                HeaderValue::from_str(&remaining.as_secs_f64().ceil().max(1.0).to_string())
            {
                headers.insert("x-scale-up-timeout", v);
            }
        }
        let send = http.post(url, headers, body.clone());
        let resp = match tokio::time::timeout(remaining, send).await {
            Err(_) => return Err(timeout(target, "waiting for the response")),
            Ok(Err(e)) => return Err(transport_error(target, &e)),
            Ok(Ok(resp)) => resp,
        };
        let status = resp.status();
        if status == StatusCode::OK {
            target.series().upstream_ok.inc();
        } else {
            crate::metrics::get()
                .upstream_status
                .get_or_create(&crate::metrics::StatusLabels {
                    target: target.spec.id.clone(),
                    status: status.as_u16(),
                })
                .inc();
        }
        if status.is_success() {
            return Ok(resp);
        }
        let headers = resp.headers().clone();
        let remaining = deadline.saturating_duration_since(Instant::now());
        // An error body is only read for its message: 64 KiB is plenty.
        let text = match tokio::time::timeout(remaining, read_capped(resp, 64 << 10)).await {
            Ok(Ok(Some(b))) => String::from_utf8_lossy(&b).into_owned(),
            _ => String::new(),
        };
        if status == StatusCode::SERVICE_UNAVAILABLE
            && let Some(wait) = loading_wait(&text)
        {
            let wait = wait.min(MAX_LOADING_WAIT);
            if Instant::now() + wait < deadline {
                tracing::info!(target_id = %target.spec.id, wait_ms = wait.as_millis() as u64, "upstream model is loading; waiting");
                tokio::time::sleep(wait).await;
                continue;
            }
            return Err(ApiError::Unavailable(format!(
                "target '{}' is still loading its model and the timeout would pass before it is ready; retry later or raise timeout_seconds / stream_timeout_seconds",
                target.spec.id
            )));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE && target.dedicated {
            // An Inference Endpoint scaling up from zero answers a plain
            // 503 until its first replica is ready.
            let wait = retry_after(&headers)
                .unwrap_or(SCALE_UP_POLL)
                .min(MAX_LOADING_WAIT);
            if Instant::now() + wait < deadline {
                tracing::info!(target_id = %target.spec.id, wait_ms = wait.as_millis() as u64, "dedicated endpoint answered 503 (scaling up?); waiting");
                tokio::time::sleep(wait).await;
                continue;
            }
            return Err(ApiError::Unavailable(format!(
                "target '{}' answered 503 (a dedicated endpoint scaling up from zero answers so until it is ready) and the timeout would pass before it is; retry later or raise timeout_seconds / stream_timeout_seconds",
                target.spec.id
            )));
        }
        return Err(status_error(target, status, &headers, &text));
    }
}

/// How often a dedicated endpoint answering 503 is asked again when it
/// gives no `Retry-After`.
const SCALE_UP_POLL: Duration = Duration::from_millis(500);

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: f64 = headers
        .get(axum::http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.max(0.05)))
}

/// `{"error": "... is currently loading", "estimated_time": 20.0}` → the wait.
fn loading_wait(body: &str) -> Option<Duration> {
    let v: Value = serde_json::from_str(body).ok()?;
    let est = v.get("estimated_time").and_then(Value::as_f64);
    let loading = v
        .get("error")
        .and_then(Value::as_str)
        .is_some_and(|e| e.contains("loading"));
    match (est, loading) {
        (Some(s), _) if s.is_finite() && s >= 0.0 => Some(Duration::from_secs_f64(s.max(0.05))),
        (None, true) => Some(Duration::from_secs(1)),
        _ => None,
    }
}

pub fn timeout(target: &TargetRuntime, what: &str) -> ApiError {
    ApiError::UpstreamTimeout(format!("target '{}' timed out {what}", target.spec.id))
}

fn transport_error(target: &TargetRuntime, e: &super::client::Error) -> ApiError {
    // Transport errors can carry the URL; they are logged, never sent.
    tracing::warn!(target_id = %target.spec.id, error = %e, "upstream request failed");
    if e.is_connect() {
        return ApiError::UpstreamUnreachable(format!(
            "target '{}': could not connect",
            target.spec.id
        ));
    }
    ApiError::Upstream(format!("target '{}': request failed", target.spec.id))
}

/// Maps a failed upstream status to the gateway's answer.
pub fn status_error(
    target: &TargetRuntime,
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
) -> ApiError {
    let id = &target.spec.id;
    let var = target
        .spec
        .secret_env
        .as_deref()
        .unwrap_or("secret_key_ref.env");
    match status.as_u16() {
        401 => ApiError::UpstreamAuth {
            message: format!(
                "target '{id}' rejected the gateway's credentials (HTTP 401): set or verify the token in environment variable {var}"
            ),
            code: "upstream_unauthorized",
        },
        402 => ApiError::UpstreamAuth {
            message: format!(
                "target '{id}' refused the request for billing (HTTP 402): the account that owns the token in {var} has no credits left with this provider; add credits or a payment method to that account (Hugging Face: Settings > Billing)"
            ),
            code: "upstream_payment_required",
        },
        403 => ApiError::UpstreamAuth {
            message: format!(
                "target '{id}' refused access to model '{}' (HTTP 403): the model is gated — accept its license on Hugging Face with the account that owns the token in {var}",
                target.spec.model
            ),
            code: "upstream_forbidden",
        },
        429 => ApiError::RateLimited {
            message: format!("target '{id}' is rate limiting the gateway (HTTP 429); retry later"),
            retry_after: headers.get(axum::http::header::RETRY_AFTER).cloned(),
        },
        400 | 413 | 422 => ApiError::UpstreamRejected {
            status: if status.as_u16() == 413 {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            },
            message: format!(
                "target '{id}' rejected the request: {}",
                upstream_message(body)
            ),
        },
        code => {
            tracing::warn!(target_id = %id, status = code, body = %truncate(body, 300), "upstream error");
            ApiError::Upstream(format!("target '{id}' failed (upstream HTTP {code})"))
        }
    }
}

/// The message inside an upstream error body (OpenAI or HF shape).
fn upstream_message(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let msg = parsed.as_ref().and_then(|v| {
        v.pointer("/error/message")
            .and_then(Value::as_str)
            .or_else(|| v.get("error").and_then(Value::as_str))
            .or_else(|| v.get("message").and_then(Value::as_str))
    });
    truncate(msg.unwrap_or(body), 500).to_string()
}

/// At most `max` characters of an upstream's message: upstreams can send
/// whole stack traces, which clients and logs do not need.
pub fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Ends the stream with a timeout error when no item arrives within `idle`.
pub fn with_idle_timeout<S, T>(
    stream: S,
    idle: Duration,
    target_id: String,
) -> impl Stream<Item = Result<T, ApiError>>
where
    S: Stream<Item = Result<T, ApiError>> + Send + 'static,
{
    let stream = Box::pin(stream);
    futures::stream::unfold((stream, false), move |(mut s, done)| {
        let target_id = target_id.clone();
        async move {
            if done {
                return None;
            }
            match tokio::time::timeout(idle, s.next()).await {
                Ok(Some(item)) => Some((item, (s, false))),
                Ok(None) => None,
                Err(_) => Some((
                    Err(ApiError::UpstreamTimeout(format!(
                        "target '{target_id}' sent nothing for {:.1}s (stream_timeout_seconds)",
                        idle.as_secs_f64()
                    ))),
                    (s, true),
                )),
            }
        }
    })
}

/// An upstream's body as a stream of SSE `data:` payloads (see `sse.rs`:
/// one pass, at most `MAX_EVENT` bytes per event). The first error is the
/// stream's last item; the body is not read further.
pub fn sse_data(resp: Response, target_id: String) -> impl Stream<Item = Result<String, ApiError>> {
    use super::sse::{MAX_EVENT, Parser, SseError};
    let state = (Parser::default(), false);
    http_body_util::BodyDataStream::new(resp.into_body())
        .scan(state, move |(parser, ended), chunk| {
            if *ended {
                return std::future::ready(None);
            }
            let mut events = Vec::new();
            let failure = match chunk {
                Ok(bytes) => match parser.push(&bytes, &mut events) {
                    Ok(()) => None,
                    Err(SseError::TooLarge) => {
                        Some(format!("sent an event over {} MiB", MAX_EVENT >> 20))
                    }
                    Err(SseError::NotUtf8) => Some("sent data that is not UTF-8".to_string()),
                },
                Err(e) => {
                    tracing::warn!(target_id = %target_id, error = %e, "upstream stream broke");
                    Some("broke".to_string())
                }
            };
            let mut items: Vec<Result<String, ApiError>> = events.into_iter().map(Ok).collect();
            if let Some(why) = failure {
                tracing::warn!(target_id = %target_id, "upstream stream ended: {why}");
                *ended = true;
                items.push(Err(ApiError::Upstream(format!(
                    "target '{target_id}': the upstream stream {why}"
                ))));
            }
            std::future::ready(Some(items))
        })
        .flat_map(futures::stream::iter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loading_bodies_give_a_wait() {
        assert_eq!(
            loading_wait(r#"{"error":"Model x is currently loading","estimated_time":2.5}"#),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(
            loading_wait(r#"{"error":"Model x is currently loading"}"#),
            Some(Duration::from_secs(1))
        );
        assert_eq!(loading_wait(r#"{"error":"overloaded"}"#), None);
        assert_eq!(loading_wait("Service Unavailable"), None);
    }

    #[test]
    fn upstream_messages_are_extracted_from_either_shape() {
        assert_eq!(
            upstream_message(r#"{"error":{"message":"too long"}}"#),
            "too long"
        );
        assert_eq!(
            upstream_message(r#"{"error":"Input validation error"}"#),
            "Input validation error"
        );
    }
}
