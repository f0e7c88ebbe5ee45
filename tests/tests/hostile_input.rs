//! Hostile input against the real gateway with the guide's full chain
//! (issue #16): bad JSON, deep nesting, invalid UTF-8, huge strings, odd
//! content parts, header abuse, broken HTTP, and a few thousand seeded
//! random mutations of a valid request. Every answer is a 2xx or a 4xx
//! whose body is an OpenAI-shaped error; no request reaches a 5xx; the
//! gateway logs no panic, keeps serving, and its memory stays bounded.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use sluice_e2e::upstream::Upstream;
use sluice_e2e::{Gateway, GatewayOptions};

const KEY: &str = "sk-hostile-0001";

fn pack(up: &Upstream, audit: &str) -> String {
    format!(
        "pack:\n  name: hostile\npolicies:\n  chain: [prompt-injection, pii-detector, safety-filter, content-filter, audit-logger]\n  policy:\n    pii-detector:\n      action: redact\n    safety-filter:\n      check_toxicity: true\n      action: block\n    content-filter:\n      categories: [hate_speech, harassment]\n      action: block\n    audit-logger:\n      destination: file\n      path: {audit}\n      immutable: true\n      include_request: true\n      include_response: true\nproviders:\n  targets:\n    - id: ok\n      provider: openai:org/ok\n      base_url: {}/v1\nclients:\n  keys:\n    - id: app\n      role: developer\n      key_sha256: {}\n",
        up.base("ok"),
        sluice_e2e::sha256_hex(KEY.as_bytes())
    )
}

/// One answer: its status and body. `None` when the gateway closed the
/// connection without an answer (allowed only for broken HTTP).
struct Answer {
    status: u16,
    body: Vec<u8>,
}

async fn post(client: &reqwest::Client, gw: &Gateway, path: &str, body: Vec<u8>) -> Answer {
    try_post(client, gw, path, body)
        .await
        .expect("the gateway answers")
}

async fn try_post(
    client: &reqwest::Client,
    gw: &Gateway,
    path: &str,
    body: Vec<u8>,
) -> Result<Answer, reqwest::Error> {
    let resp = client
        .post(gw.url(path))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    Ok(Answer {
        status: resp.status().as_u16(),
        body: resp.bytes().await?.to_vec(),
    })
}

/// The rule every answer obeys: 2xx, or a 4xx with an OpenAI error body.
fn check(what: &str, a: &Answer, failures: &mut Vec<String>) {
    match a.status {
        200..=299 => {}
        400..=499 => {
            let shaped = serde_json::from_slice::<Value>(&a.body)
                .ok()
                .is_some_and(|v| {
                    v["error"]["message"]
                        .as_str()
                        .is_some_and(|m| !m.is_empty())
                        && v["error"]["type"].is_string()
                });
            if !shaped {
                failures.push(format!(
                    "{what}: {} without an OpenAI error body: {}",
                    a.status,
                    String::from_utf8_lossy(&a.body[..a.body.len().min(200)])
                ));
            }
        }
        s => failures.push(format!(
            "{what}: status {s}: {}",
            String::from_utf8_lossy(&a.body[..a.body.len().min(200)])
        )),
    }
}

fn nested(depth: usize, open: &str, close: &str, inner: &str) -> String {
    format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
}

/// Hand-written cases, each one a class the issue names.
fn cases() -> Vec<(String, Vec<u8>)> {
    let req = |content: Value| {
        serde_json::to_vec(
            &json!({"model": "org/ok", "messages": [{"role": "user", "content": content}]}),
        )
        .unwrap()
    };
    let mut c: Vec<(String, Vec<u8>)> = vec![
        ("empty body".into(), vec![]),
        ("not JSON".into(), b"hello".to_vec()),
        ("truncated JSON".into(), br#"{"model":"org/ok","messages":[{"role":"user","content":"hi"#.to_vec()),
        ("invalid UTF-8".into(), b"{\"model\":\"org/ok\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}".to_vec()),
        ("lone surrogate escape".into(), br#"{"model":"org/ok","messages":[{"role":"user","content":"\ud800"}]}"#.to_vec()),
        ("NUL in content".into(), req(json!("a\u{0}b"))),
        ("JSON array".into(), b"[1,2,3]".to_vec()),
        ("JSON string".into(), b"\"hi\"".to_vec()),
        ("null".into(), b"null".to_vec()),
        ("deep array nesting".into(), nested(100_000, "[", "]", "").into_bytes()),
        ("deep object nesting".into(), nested(50_000, "{\"a\":", "}", "1").into_bytes()),
        ("deep nesting in content".into(), format!("{{\"model\":\"org/ok\",\"messages\":[{{\"role\":\"user\",\"content\":{}}}]}}", nested(20_000, "[", "]", "")).into_bytes()),
        ("3 MB content".into(), req(json!("word ".repeat(600_000)))),
        ("5 MB content, over the request limit".into(), req(json!("x".repeat(5 << 20)))),
        ("content is a number".into(), req(json!(42))),
        ("content is an object".into(), req(json!({"text": "hi"}))),
        ("content part without type".into(), req(json!([{"text": "hi"}]))),
        ("text part with a number".into(), req(json!([{"type": "text", "text": 123}]))),
        ("image part only".into(), req(json!([{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]))),
        ("unknown part type".into(), req(json!([{"type": "video", "video": "x"}]))),
        ("RTL override and combining marks".into(), req(json!("\u{202E}gnp.exe\u{202C} e\u{301}\u{301}\u{301} jane.doe@exa\u{200B}mple.com"))),
        ("missing messages".into(), serde_json::to_vec(&json!({"model": "org/ok"})).unwrap()),
        ("messages not an array".into(), serde_json::to_vec(&json!({"model": "org/ok", "messages": "hi"})).unwrap()),
        ("empty messages".into(), serde_json::to_vec(&json!({"model": "org/ok", "messages": []})).unwrap()),
        ("unknown role".into(), serde_json::to_vec(&json!({"model": "org/ok", "messages": [{"role": "wizard", "content": "hi"}]})).unwrap()),
        ("model is a number".into(), serde_json::to_vec(&json!({"model": 7, "messages": [{"role": "user", "content": "hi"}]})).unwrap()),
        ("unknown model".into(), serde_json::to_vec(&json!({"model": "nope/nope", "messages": [{"role": "user", "content": "hi"}]})).unwrap()),
        ("tool call with object arguments".into(), serde_json::to_vec(&json!({"model": "org/ok", "messages": [{"role": "assistant", "content": null, "tool_calls": [{"id": "1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]}]})).unwrap()),
        ("max_tokens negative".into(), serde_json::to_vec(&json!({"model": "org/ok", "max_tokens": -1, "messages": [{"role": "user", "content": "hi"}]})).unwrap()),
        ("max_tokens huge".into(), serde_json::to_vec(&json!({"model": "org/ok", "max_tokens": 1e300, "messages": [{"role": "user", "content": "hi"}]})).unwrap()),
        ("stream is a string".into(), serde_json::to_vec(&json!({"model": "org/ok", "stream": "yes", "messages": [{"role": "user", "content": "hi"}]})).unwrap()),
        ("embeddings token ids".into(), serde_json::to_vec(&json!({"model": "org/ok", "input": [[1, 2, 3]]})).unwrap()),
    ];
    c.push((
        "huge string key".into(),
        format!("{{\"{}\":1}}", "k".repeat(1 << 20)).into_bytes(),
    ));
    c
}

/// Seeded random mutations of a valid request: values swapped for other
/// types, keys dropped or duplicated, strings of odd characters.
fn mutated(rng: &mut StdRng) -> Vec<u8> {
    let odd = [
        "",
        "\u{0}",
        "\u{202E}",
        "é\u{301}",
        "😀",
        "\u{FEFF}",
        "\\",
        "\"",
        "<EMAIL_ADDRESS>",
    ];
    let mut v = json!({
        "model": "org/ok",
        "stream": false,
        "max_tokens": 16,
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": [{"type": "text", "text": "Hello, I am Jane Doe."}]}
        ]
    });
    let random_value = |rng: &mut StdRng| -> Value {
        match rng.random_range(0..8) {
            0 => Value::Null,
            1 => json!(rng.random::<bool>()),
            2 => json!(rng.random::<i64>()),
            3 => json!(rng.random::<f64>() * 1e300),
            4 => json!(odd[rng.random_range(0..odd.len())].repeat(rng.random_range(0..50))),
            5 => json!([]),
            6 => json!({}),
            _ => json!([{"type": "text", "text": odd[rng.random_range(0..odd.len())]}]),
        }
    };
    for _ in 0..rng.random_range(1..4) {
        let r = random_value(rng);
        let at = [
            "/model",
            "/stream",
            "/max_tokens",
            "/messages",
            "/messages/1/content",
            "/messages/1/role",
            "/messages/0",
        ];
        // An earlier mutation may have removed the path: then skip it.
        if let Some(slot) = v.pointer_mut(at[rng.random_range(0..at.len())]) {
            *slot = r;
        }
    }
    let mut bytes = serde_json::to_vec(&v).unwrap();
    if rng.random_range(0..10) == 0 && !bytes.is_empty() {
        let i = rng.random_range(0..bytes.len());
        bytes[i] = rng.random();
    }
    bytes
}

/// Raw HTTP the client libraries would never send; the gateway must answer
/// or close, and keep serving.
fn raw(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_input_never_panics_and_always_gets_an_openai_shaped_answer() {
    let up = Upstream::start().await;
    let dir = sluice_e2e::tempdir::TempDir::new();
    let audit = dir.path().join("audit");
    let mut gw = Gateway::start_with(
        &pack(&up, audit.to_str().unwrap()),
        GatewayOptions::default(),
    );
    // A connection each: after refusing a body early (413) the gateway
    // closes the connection, and a pooled client could race that close.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let rss_start = gw.process.rss_kib().expect("gateway RSS");
    let mut failures = Vec::new();
    let mut sent = 0usize;

    for (what, body) in cases() {
        for path in ["/v1/chat/completions", "/v1/embeddings"] {
            let what = format!("{what} ({path})");
            match try_post(&client, &gw, path, body.clone()).await {
                Ok(a) => check(&what, &a, &mut failures),
                // Over the request limit the gateway answers 413 before
                // reading the rest and closes the connection; a client still
                // writing may see the reset before the answer.
                Err(e) if body.len() > 4 << 20 => println!("{what}: closed early ({e})"),
                Err(e) => failures.push(format!("{what}: no answer: {e}")),
            }
            sent += 1;
        }
    }

    let mut rng = StdRng::seed_from_u64(16);
    for i in 0..2_000 {
        let body = mutated(&mut rng);
        let a = post(&client, &gw, "/v1/chat/completions", body.clone()).await;
        check(
            &format!("mutation {i}: {}", String::from_utf8_lossy(&body)),
            &a,
            &mut failures,
        );
        sent += 1;
    }

    // Header abuse.
    let long = "a".repeat(200 * 1024);
    let header_cases: Vec<(&str, reqwest::RequestBuilder)> = vec![
        (
            "no authorization",
            client
                .post(gw.url("/v1/chat/completions"))
                .json(&json!({"model": "org/ok", "messages": []})),
        ),
        (
            "bearer without a token",
            client
                .post(gw.url("/v1/chat/completions"))
                .header("authorization", "Bearer")
                .json(&json!({})),
        ),
        (
            "basic auth",
            client
                .post(gw.url("/v1/chat/completions"))
                .basic_auth("u", Some("p"))
                .json(&json!({})),
        ),
        (
            "200 KiB authorization",
            client
                .post(gw.url("/v1/chat/completions"))
                .header("authorization", format!("Bearer {long}"))
                .json(&json!({})),
        ),
        (
            "200 KiB request id",
            client
                .post(gw.url("/v1/chat/completions"))
                .bearer_auth(KEY)
                .header("x-request-id", long.clone())
                .json(&json!({})),
        ),
        (
            "wrong content type",
            client
                .post(gw.url("/v1/chat/completions"))
                .bearer_auth(KEY)
                .header("content-type", "text/plain")
                .body("{}"),
        ),
        (
            "role header spoof",
            client
                .post(gw.url("/v1/chat/completions"))
                .bearer_auth(KEY)
                .header(
                    "x-sluice-role",
                    reqwest::header::HeaderValue::from_bytes(b"admin\xff\xfe").unwrap(),
                )
                .json(&json!({"model": "org/ok", "messages": [{"role": "user", "content": "hi"}]})),
        ),
    ];
    for (what, rb) in header_cases {
        match rb.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let body = resp.bytes().await.unwrap().to_vec();
                // A header block over hyper's limit is refused before any
                // handler runs (431, no body): that is the HTTP layer's
                // answer, not ours to shape.
                if status != 431 {
                    check(what, &Answer { status, body }, &mut failures);
                }
            }
            Err(e) => failures.push(format!("{what}: no answer: {e}")),
        }
        sent += 1;
    }

    // Broken HTTP: answered with 4xx or closed, never a crash.
    for (what, bytes) in [
        ("garbage request line", b"\x00\x01\x02 nonsense\r\n\r\n".to_vec()),
        ("body shorter than Content-Length", b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{}".to_vec()),
        ("bad chunked encoding", b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n".to_vec()),
        ("two content lengths", b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}".to_vec()),
    ] {
        let port = gw.port;
        let out = tokio::task::spawn_blocking(move || raw(port, &bytes)).await.unwrap();
        let head = String::from_utf8_lossy(&out[..out.len().min(12)]).to_string();
        if !(out.is_empty() || head.starts_with("HTTP/1.1 4")) {
            failures.push(format!("{what}: {head:?}"));
        }
        sent += 1;
    }

    // Still serving, correctly.
    let ok = post(
        &client,
        &gw,
        "/v1/chat/completions",
        serde_json::to_vec(
            &json!({"model": "org/ok", "messages": [{"role": "user", "content": "Hello"}]}),
        )
        .unwrap(),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    assert_eq!(gw.process.try_exit_code(), None, "the gateway exited");

    let logs = gw.logs();
    assert!(!logs.contains("panicked"), "the gateway panicked:\n{logs}");
    let rss_end = gw.process.rss_kib().expect("gateway RSS");
    println!("{sent} hostile requests; gateway RSS {rss_start} KiB -> {rss_end} KiB");
    assert!(
        rss_end < 512 * 1024,
        "RSS {rss_end} KiB after {sent} requests"
    );
    assert!(
        failures.is_empty(),
        "{} of {sent} answers broke the rules:\n{}",
        failures.len(),
        failures[..failures.len().min(30)].join("\n")
    );
}
