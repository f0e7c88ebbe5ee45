//! A real HTTP server on 127.0.0.1 that plays the upstreams: the
//! OpenAI-compatible API (HF serverless, Inference Endpoints, vLLM), TGI's
//! native `/generate` and `/generate_stream`, and HF feature-extraction.
//!
//! The first path segment picks a behaviour, so one server plays healthy
//! and failing upstreams side by side: `/ok/...`, `/unauthorized/...`,
//! `/gated/...`, `/ratelimited/...`, `/loading/...` (503 "loading" twice,
//! then fine), `/broken/...` (stream breaks), `/slow/...` (headers after
//! 3 s), `/slowbody/...` (answers after 1 s), `/badrequest/...`,
//! `/servererror/...`, `/tokenlevel/...` (feature-extraction per token),
//! `/flaky/...` (a plain 503 twice per path, then fine), `/huge/...` (a
//! 65 MiB answer).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub authorization: Option<String>,
    /// `x-scale-up-timeout`, which gateways send to dedicated endpoints.
    pub scale_up_timeout: Option<String>,
    /// `host` and `user-agent` as the request arrived.
    pub host: Option<String>,
    pub user_agent: Option<String>,
    pub body: Value,
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Recorded>>,
    hits: Mutex<HashMap<String, usize>>,
    /// When each mode was first hit (for `/coldstart/`).
    first_hit: Mutex<HashMap<String, std::time::Instant>>,
}

/// How long `/coldstart/` answers 503 after its first request, as an
/// Inference Endpoint scaled to zero does while its replica starts.
pub const COLD_START: Duration = Duration::from_secs(2);

pub struct Upstream {
    pub port: u16,
    shared: Arc<Shared>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        let shared = Arc::new(Shared::default());
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let (port, tx) = crate::serve(app).await;
        Upstream {
            port,
            shared,
            _shutdown: tx,
        }
    }

    /// `http://127.0.0.1:PORT/{mode}`
    pub fn base(&self, mode: &str) -> String {
        format!("http://127.0.0.1:{}/{mode}", self.port)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// How many requests reached paths starting with `/{mode}/`.
    pub fn hits(&self, mode: &str) -> usize {
        let prefix = format!("/{mode}/");
        self.requests()
            .iter()
            .filter(|r| r.path.starts_with(&prefix))
            .count()
    }

    pub fn last_request(&self) -> Recorded {
        self.requests().pop().expect("the upstream saw no request")
    }
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let headers: HeaderMap = req.headers().clone();
    let bytes = axum::body::to_bytes(req.into_body(), 16 << 20)
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let scale_up_timeout = headers
        .get("x-scale-up-timeout")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    shared.requests.lock().unwrap().push(Recorded {
        path: path.clone(),
        authorization,
        scale_up_timeout,
        host: header("host"),
        user_agent: header("user-agent"),
        body: body.clone(),
    });
    let hit = {
        let mut hits = shared.hits.lock().unwrap();
        let n = hits.entry(path.clone()).or_insert(0);
        *n += 1;
        *n
    };
    let mode = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("")
        .to_string();
    let since_first = shared
        .first_hit
        .lock()
        .unwrap()
        .entry(mode.clone())
        .or_insert_with(std::time::Instant::now)
        .elapsed();
    match mode.as_str() {
        // A plain 503, with no body a client could read "loading" from.
        m if m.starts_with("coldstart") && since_first < COLD_START => {
            return (StatusCode::SERVICE_UNAVAILABLE, "503 Service Unavailable").into_response()
        }
        "unauthorized" => return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "Invalid credentials in Authorization header"}))).into_response(),
        // The router's answer when the token's account has no credits left.
        "nocredit" => return (StatusCode::PAYMENT_REQUIRED, axum::Json(json!({"error": "You have exceeded your monthly included credits for Inference Providers. Subscribe to PRO to get 20x more monthly included credits."}))).into_response(),
        "gated" => return (StatusCode::FORBIDDEN, axum::Json(json!({"error": "Access to model org/gated is restricted. You must accept the conditions."}))).into_response(),
        "ratelimited" => {
            return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "7")], axum::Json(json!({"error": "Rate limit reached"}))).into_response()
        }
        "badrequest" => {
            return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": {"message": "max_tokens is too large for this model", "type": "invalid_request_error"}}))).into_response()
        }
        "servererror" => return (StatusCode::INTERNAL_SERVER_ERROR, "internal failure with stack trace").into_response(),
        "flaky" if hit <= 2 => {
            return (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response()
        }
        "loading" if hit <= 2 => {
            return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"error": "Model org/m is currently loading", "estimated_time": 0.2}))).into_response()
        }
        "huge" => return huge_answer(),
        "endlessevent" => return endless_event(),
        "slow" => tokio::time::sleep(Duration::from_secs(3)).await,
        "slowbody" => tokio::time::sleep(Duration::from_secs(1)).await,
        _ => {}
    }
    let broken = mode == "broken";
    if mode == "toolcall" && path.ends_with("/chat/completions") {
        return tool_call_answer(&body);
    }
    if path.ends_with("/chat/completions") {
        // `/slowstream/`: 300 ms between events, so a client can leave mid-stream.
        let delay = Duration::from_millis(if mode == "slowstream" { 300 } else { 5 });
        // `/nousage/`: an upstream that never reports usage.
        openai_chat(&body, broken, reply_pieces(&mode), delay, mode != "nousage")
    } else if path.ends_with("/embeddings") {
        openai_embeddings(&body)
    } else if path.ends_with("/generate_stream") {
        tgi_stream(broken)
    } else if path.ends_with("/generate") {
        tgi_generate(&body)
    } else {
        feature_extraction(&body, mode == "tokenlevel")
    }
}

/// A 200 whose JSON body is 65 MiB, sent in 1 MiB pieces without a
/// Content-Length (so only counting while reading can stop it).
fn huge_answer() -> Response {
    let pad = Bytes::from(vec![b'a'; 1 << 20]);
    let pieces = std::iter::once(Bytes::from_static(b"{\"choices\":[],\"pad\":\""))
        .chain(std::iter::repeat_n(pad, 65))
        .chain(std::iter::once(Bytes::from_static(b"\"}")))
        .map(Ok::<_, std::io::Error>);
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(futures::stream::iter(pieces)))
        .unwrap()
}

/// A stream whose first event is a normal chunk and whose second never
/// ends: one `data:` line that grows by 16 KiB pieces forever.
fn endless_event() -> Response {
    let first = Bytes::from_static(
        b"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"finish_reason\":null}]}\n\ndata: {\"pad\":\"",
    );
    let pad = Bytes::from(vec![b'a'; 16 * 1024]);
    let pieces = std::iter::once(first)
        .chain(std::iter::repeat(pad))
        .map(Ok::<_, std::io::Error>);
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(futures::stream::iter(pieces)))
        .unwrap()
}

fn last_user_text(body: &Value) -> String {
    body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_string()
}

fn sse_body(events: Vec<String>, break_at_end: bool, delay: Duration) -> Response {
    let mut items: Vec<Result<Bytes, std::io::Error>> = events
        .into_iter()
        .map(|e| Ok(Bytes::from(format!("data: {e}\n\n"))))
        .collect();
    if break_at_end {
        // An error in the body stream makes hyper abort the connection:
        // the client sees the stream break, not a clean end.
        items.push(Err(std::io::Error::other("upstream crashed")));
    }
    let stream = futures::stream::iter(items).then(move |item| async move {
        tokio::time::sleep(delay).await;
        item
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

use futures::StreamExt;

/// What the assistant says, in the pieces it streams: `/pii/` splits an
/// email address and a phone number across chunks, `/toxic/` turns abusive
/// midway.
pub fn reply_pieces(mode: &str) -> Vec<&'static str> {
    match mode {
        "pii" => vec![
            "Sure. Write to jane.do",
            "e@example.com or call +44 20 79",
            "46 0958 and ask for the",
            " billing team; they answer within a day, usually sooner.",
        ],
        "toxic" => vec![
            "Here is my answer. ",
            "You are a worthless, stupid idiot and everyone hates you, you pathetic moron. ",
            "Anyway, that is all.",
        ],
        _ => vec!["Hello", " world"],
    }
}

fn openai_chat(
    body: &Value,
    broken: bool,
    pieces: Vec<&'static str>,
    delay: Duration,
    usage: bool,
) -> Response {
    let model = body["model"].as_str().unwrap_or("").to_string();
    if body["stream"].as_bool() == Some(true) {
        let chunk = |delta: Value, finish: Value| {
            json!({"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1, "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            .to_string()
        };
        let mut events = vec![
            chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            chunk(json!({"content": pieces[0]}), Value::Null),
        ];
        if broken {
            return sse_body(events, true, delay);
        }
        for p in &pieces[1..] {
            events.push(chunk(json!({"content": p}), Value::Null));
        }
        events.push(chunk(json!({}), json!("stop")));
        if usage && body["stream_options"]["include_usage"].as_bool() == Some(true) {
            events.push(json!({"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [],
                               "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}).to_string());
        }
        events.push("[DONE]".to_string());
        return sse_body(events, false, delay);
    }
    let mut answer = json!({
        "id": "chatcmpl-up", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": if pieces[0] == "Hello" { format!("echo: {}", last_user_text(body)) } else { pieces.concat() }}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    });
    if !usage {
        answer.as_object_mut().unwrap().remove("usage");
    }
    axum::Json(answer).into_response()
}

/// `/toolcall/`: an answer that is a tool call, with an e-mail address in
/// its reasoning and in its arguments; streamed, the address is split
/// across chunks in both.
fn tool_call_answer(body: &Value) -> Response {
    let model = body["model"].as_str().unwrap_or("").to_string();
    let reasoning = [
        "The user wants a note sent to jane.do",
        "e@example.com today.",
    ];
    let arguments = [
        "{\"to\": \"jane.do",
        "e@example.com\", \"bo",
        "dy\": \"See you at 5\"}",
    ];
    if body["stream"].as_bool() == Some(true) {
        let chunk = |delta: Value, finish: Value| {
            json!({"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1, "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            .to_string()
        };
        let mut events = vec![chunk(
            json!({"role": "assistant", "content": null}),
            Value::Null,
        )];
        for r in reasoning {
            events.push(chunk(json!({"reasoning_content": r}), Value::Null));
        }
        events.push(chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "send_email", "arguments": ""}}]}),
            Value::Null,
        ));
        for a in arguments {
            events.push(chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": a}}]}),
                Value::Null,
            ));
        }
        events.push(chunk(json!({}), json!("tool_calls")));
        events.push("[DONE]".to_string());
        return sse_body(events, false, Duration::from_millis(5));
    }
    axum::Json(json!({
        "id": "chatcmpl-up", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": null, "reasoning_content": reasoning.concat(),
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "send_email", "arguments": arguments.concat()}}]}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14}
    }))
    .into_response()
}

fn openai_embeddings(body: &Value) -> Response {
    let n = match &body["input"] {
        Value::Array(a) => a.len(),
        _ => 1,
    };
    let data: Vec<Value> = (0..n)
        .map(|i| json!({"object": "embedding", "index": i, "embedding": [0.25, 0.5, i as f64]}))
        .collect();
    axum::Json(json!({"object": "list", "data": data, "model": body["model"], "usage": {"prompt_tokens": 3, "total_tokens": 3}})).into_response()
}

fn tgi_generate(body: &Value) -> Response {
    let prompt = body["inputs"].as_str().unwrap_or("");
    axum::Json(json!({
        "generated_text": format!("native reply to {} chars", prompt.len()),
        "details": {"finish_reason": "eos_token", "generated_tokens": 3, "seed": null, "prefill": [{}, {}, {}, {}], "tokens": []}
    }))
    .into_response()
}

fn tgi_stream(broken: bool) -> Response {
    let token = |i: u32, text: &str, special: bool| {
        json!({"index": i, "token": {"id": i, "text": text, "logprob": -0.1, "special": special}, "generated_text": null, "details": null}).to_string()
    };
    let mut events = vec![token(1, "Hi", false), token(2, " there", false)];
    if broken {
        events.push(json!({"error": "CUDA out of memory", "error_type": "generation"}).to_string());
        return sse_body(events, false, Duration::from_millis(5));
    }
    events.push(
        json!({"index": 3, "token": {"id": 2, "text": "</s>", "logprob": -0.1, "special": true}, "generated_text": "Hi there",
               "details": {"finish_reason": "length", "generated_tokens": 3, "seed": null, "input_length": 9}})
        .to_string(),
    );
    sse_body(events, false, Duration::from_millis(5))
}

fn feature_extraction(body: &Value, token_level: bool) -> Response {
    let inputs: Vec<String> = body["inputs"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let out: Vec<Value> = inputs
        .iter()
        .map(|s| {
            let len = s.len() as f64;
            if token_level {
                json!([[len, 1.0, 0.0], [len, 3.0, 1.0]])
            } else {
                json!([len, 0.5, -1.0])
            }
        })
        .collect();
    axum::Json(Value::Array(out)).into_response()
}
