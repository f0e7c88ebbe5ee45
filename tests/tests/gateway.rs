//! The real `sluice-gateway` binary against real HTTP upstreams: every
//! provider protocol, streaming, and each upstream error mode.

use std::time::Duration;

use serde_json::{Value, json};
use sluice_e2e::upstream::Upstream;
use sluice_e2e::{Gateway, GatewayOptions, sse_events};

const TOKEN: &str = "hf_test_SECRET_token_value_123";

fn opts(up: &Upstream) -> GatewayOptions<'static> {
    GatewayOptions {
        env: vec![("HF_API_TOKEN", TOKEN.to_string())],
        hf_inference_url: Some(up.base("hf")),
        rust_log: "debug",
        ..GatewayOptions::default()
    }
}

/// A pack with one target per behaviour under test.
fn pack(up: &Upstream) -> String {
    let openai = |id: &str, mode: &str, extra: &str| {
        format!(
            "    - id: {id}\n      provider: openai:org/{id}\n      base_url: {}/v1\n      secret_key_ref: {{env: HF_API_TOKEN}}\n{extra}",
            up.base(mode)
        )
    };
    let tgi = |id: &str, mode: &str| {
        format!(
            "    - id: {id}\n      provider: huggingface:chat:org/{id}\n      base_url: {}\n      format: huggingface\n      provider_type: huggingface\n      secret_key_ref: {{env: HF_API_TOKEN}}\n",
            up.base(mode)
        )
    };
    let mut targets = String::new();
    targets += &openai("chat", "ok", "");
    targets += &openai("unauthorized", "unauthorized", "");
    targets += &openai("gated", "gated", "");
    targets += &openai("ratelimited", "ratelimited", "");
    targets += &openai("loading", "loading", "");
    targets += &openai("broken", "broken", "");
    targets += &openai("badrequest", "badrequest", "");
    targets += &openai("servererror", "servererror", "");
    targets += &openai("huge", "huge", "");
    targets += &openai("endlessevent", "endlessevent", "");
    targets += &openai(
        "slow",
        "slow",
        "      stream_timeout_seconds: 0.5\n      timeout_seconds: 0.5\n",
    );
    targets += &tgi("native", "ok");
    targets += &tgi("nativebroken", "broken");
    targets += "    - id: serverless\n      provider: huggingface:chat:org/serverless-model\n      secret_key_ref: {env: HF_API_TOKEN}\n";
    targets += &format!(
        "    - id: fe\n      provider: huggingface\n      model: org/fe\n      base_url: {}/fe\n      secret_key_ref: {{env: HF_API_TOKEN}}\n",
        up.base("ok")
    );
    targets += &format!(
        "    - id: fetoken\n      provider: huggingface\n      model: org/fetoken\n      base_url: {}/fe\n      secret_key_ref: {{env: HF_API_TOKEN}}\n",
        up.base("tokenlevel")
    );
    targets += "    - id: nosecret\n      provider: huggingface:chat:org/nosecret\n      secret_key_ref: {env: SLUICE_E2E_NEVER_SET}\n";
    format!("pack:\n  name: e2e\n  version: 1.0.0\nproviders:\n  targets:\n{targets}")
}

async fn post(gw: &Gateway, path: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(gw.url(path))
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn chat_body(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]})
}

async fn error_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    (status, body["error"].clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_compatible_chat_passes_fields_through_and_sends_the_token() {
    let up = Upstream::start().await;
    let gw = Gateway::start_with(&pack(&up), opts(&up));
    let mut body = chat_body("org/chat");
    body["tools"] = json!([{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]);
    body["response_format"] = json!({"type": "json_object"});
    body["max_completion_tokens"] = json!(12);
    let resp = post(&gw, "/v1/chat/completions", body).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-request-id").is_some());
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "echo: hello there");
    let seen = up.last_request();
    assert_eq!(seen.path, "/ok/v1/chat/completions");
    assert_eq!(
        seen.authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(
        seen.body["model"], "org/chat",
        "model is rewritten to the target's model"
    );
    assert_eq!(seen.body["tools"][0]["function"]["name"], "lookup");
    assert_eq!(seen.body["response_format"]["type"], "json_object");
    assert_eq!(seen.body["max_completion_tokens"], 12);

    // The target id is accepted as the model name too.
    let resp = post(&gw, "/v1/chat/completions", chat_body("chat")).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_compatible_stream_ends_with_done_and_carries_usage() {
    let up = Upstream::start().await;
    let gw = Gateway::start_with(&pack(&up), opts(&up));
    let mut body = chat_body("org/chat");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let resp = post(&gw, "/v1/chat/completions", body).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = sse_events(resp).await;
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hello world");
    assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 7);
    assert_eq!(
        up.last_request().body["stream_options"]["include_usage"],
        true
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_that_breaks_upstream_ends_with_an_error_event_not_done() {
    let up = Upstream::start().await;
    let gw = Gateway::start_with(&pack(&up), opts(&up));
    for model in ["org/broken", "org/nativebroken"] {
        let mut body = chat_body(model);
        body["stream"] = json!(true);
        let events = sse_events(post(&gw, "/v1/chat/completions", body).await).await;
        assert!(!events.iter().any(|e| e == "[DONE]"), "{model}: {events:?}");
        let last: Value = serde_json::from_str(events.last().unwrap())
            .unwrap_or_else(|_| panic!("{model}: {events:?}"));
        assert_eq!(last["error"]["code"], "upstream_error", "{model}: {last}");
        assert!(
            last["error"]["message"]
                .as_str()
                .unwrap()
                .contains(model.trim_start_matches("org/")),
            "{last}"
        );
    }
    // What a stream logs after the handler returned still names its request.
    assert!(gw.wait_for_log(
        "stream ended with an error",
        std::time::Duration::from_secs(5)
    ));
    let logs = gw.logs();
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("stream ended with an error"))
        .collect();
    assert_eq!(lines.len(), 2, "{logs}");
    assert!(lines.iter().all(|l| l.contains("request_id=")), "{logs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_event_that_never_ends_is_cut_at_one_mib() {
    let up = Upstream::start().await;
    let gw = Gateway::start_with(&pack(&up), opts(&up));
    let mut body = chat_body("org/endlessevent");
    body["stream"] = json!(true);
    let started = std::time::Instant::now();
    let events = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        sse_events(post(&gw, "/v1/chat/completions", body).await),
    )
    .await
    .expect("the stream must end, not buffer forever");
    // The event before it reached the client; then an error, no [DONE].
    assert!(events[0].contains("\"Hi\""), "{events:?}");
    assert!(!events.iter().any(|e| e == "[DONE]"), "{events:?}");
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_error", "{last}");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("target 'endlessevent': the upstream stream sent an event over 1 MiB"),
        "{last}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread")]
async fn tgi_native_translates_both_ways() {
    let up = Upstream::start().await;
    let gw = Gateway::start_with(&pack(&up), opts(&up));
    let mut body = chat_body("org/native");
    body["max_tokens"] = json!(20);
    body["temperature"] = json!(0);
    body["stop"] = json!("###");
    body["seed"] = json!(7);
    let resp = post(&gw, "/v1/chat/completions", body).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    let seen = up.last_request();
    assert_eq!(seen.path, "/ok/generate");
    let prompt = seen.body["inputs"].as_str().unwrap();
    assert_eq!(
        prompt,
        "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhello there<|im_end|>\n<|im_start|>assistant\n"
    );
    let p = &seen.body["parameters"];
    assert_eq!(p["max_new_tokens"], 20);
    assert_eq!(p["do_sample"], false);
    assert!(
        p.get("temperature").is_none(),
        "TGI refuses temperature 0: {p}"
    );
    assert_eq!(p["stop"], json!(["###"]));
    assert_eq!(p["seed"], 7);
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "org/native");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        format!("native reply to {} chars", prompt.len())
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7})
    );

    let mut body = chat_body("native");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let events = sse_events(post(&gw, "/v1/chat/completions", body).await).await;
    assert_eq!(up.last_request().path, "/ok/generate_stream");
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hi there", "special tokens are not emitted");
    let finish: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0].get("finish_reason"))
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finish, [&json!("length")]);
    assert_eq!(
        chunks.last().unwrap()["usage"],
        json!({"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn serverless_targets_use_the_overridable_hf_base_url() {
    let up = Upstream::start().await;
    let gw = Gateway::start_with(&pack(&up), opts(&up));
    let resp = post(
        &gw,
        "/v1/chat/completions",
        chat_body("org/serverless-model"),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        up.last_request().path,
        "/hf/models/org/serverless-model/v1/chat/completions"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_errors_map_to_specific_answers() {
    let up = Upstream::start().await;
    let gw = Gateway::start_with(&pack(&up), opts(&up));

    let (status, err) =
        error_of(post(&gw, "/v1/chat/completions", chat_body("org/unauthorized")).await).await;
    assert_eq!(status, 502);
    assert_eq!(err["code"], "upstream_unauthorized");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("set or verify the token in environment variable HF_API_TOKEN"),
        "{err}"
    );

    let (status, err) =
        error_of(post(&gw, "/v1/chat/completions", chat_body("org/gated")).await).await;
    assert_eq!(status, 502);
    assert!(
        err["message"].as_str().unwrap().contains("gated")
            && err["message"]
                .as_str()
                .unwrap()
                .contains("accept its license"),
        "{err}"
    );

    let resp = post(&gw, "/v1/chat/completions", chat_body("org/ratelimited")).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");

    let (status, err) =
        error_of(post(&gw, "/v1/chat/completions", chat_body("org/badrequest")).await).await;
    assert_eq!(status, 400);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("max_tokens is too large"),
        "{err}"
    );

    let (status, err) =
        error_of(post(&gw, "/v1/chat/completions", chat_body("org/servererror")).await).await;
    assert_eq!(status, 502);
    assert_eq!(
        err["message"],
        "target 'servererror' failed (upstream HTTP 500)"
    );
    assert!(
        !err.to_string().contains("stack trace"),
        "upstream internals must not reach the client"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_loading_model_is_waited_for_within_the_timeout() {
    let up = Upstream::start().await;
    let gw = Gateway::start_with(&pack(&up), opts(&up));
    let resp = post(&gw, "/v1/chat/completions", chat_body("org/loading")).await;
    assert_eq!(resp.status(), 200);
    let calls = up
        .requests()
        .iter()
        .filter(|r| r.path == "/loading/v1/chat/completions")
        .count();
    assert_eq!(calls, 3, "two 503 'loading' answers, then the real one");
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_upstreams_time_out_with_504() {
    let up = Upstream::start().await;
    let gw = Gateway::start_with(&pack(&up), opts(&up));
    let started = std::time::Instant::now();
    let (status, err) =
        error_of(post(&gw, "/v1/chat/completions", chat_body("org/slow")).await).await;
    assert_eq!(status, 504);
    assert_eq!(err["code"], "upstream_timeout");
    let mut body = chat_body("org/slow");
    body["stream"] = json!(true);
    let (status, _) = error_of(post(&gw, "/v1/chat/completions", body).await).await;
    assert_eq!(status, 504, "slow first byte on a stream");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the timeouts (0.5 s) fired before the upstream (3 s) answered"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn embeddings_from_feature_extraction_and_openai_upstreams() {
    let up = Upstream::start().await;
    let gw = Gateway::start_with(&pack(&up), opts(&up));
    let v: Value = post(
        &gw,
        "/v1/embeddings",
        json!({"model": "org/fe", "input": "abcd"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["embedding"], json!([4.0, 0.5, -1.0]));
    assert_eq!(up.last_request().body, json!({"inputs": ["abcd"]}));

    let v: Value = post(
        &gw,
        "/v1/embeddings",
        json!({"model": "org/fetoken", "input": ["ab", "abc"]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(v["data"][1]["index"], 1);
    assert_eq!(
        v["data"][1]["embedding"],
        json!([3.0, 2.0, 0.5]),
        "token vectors are mean-pooled"
    );

    let v: Value = post(
        &gw,
        "/v1/embeddings",
        json!({"model": "org/fe", "input": "ab", "encoding_format": "base64"}),
    )
    .await
    .json()
    .await
    .unwrap();
    let b64 = v["data"][0]["embedding"].as_str().unwrap();
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let floats: Vec<f32> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(floats, [2.0, 0.5, -1.0]);

    let v: Value = post(
        &gw,
        "/v1/embeddings",
        json!({"model": "org/chat", "input": ["x", "y"]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(v["data"][1]["embedding"], json!([0.25, 0.5, 1.0]));
    assert_eq!(up.last_request().path, "/ok/v1/embeddings");

    let (status, err) = error_of(
        post(
            &gw,
            "/v1/embeddings",
            json!({"model": "org/native", "input": "x"}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (404, Some("model_not_found")),
        "a chat-only target serves no embeddings"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn models_unknown_models_missing_secrets_and_bad_requests() {
    let up = Upstream::start().await;
    let gw = Gateway::start_with(&pack(&up), opts(&up));
    let v: Value = reqwest::get(gw.url("/v1/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["object"], "list");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"org/native") && ids.contains(&"native"),
        "{ids:?}"
    );

    let (status, err) =
        error_of(post(&gw, "/v1/chat/completions", chat_body("org/natve")).await).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (404, Some("model_not_found"))
    );
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("did you mean 'org/native'"),
        "{err}"
    );

    let (status, err) =
        error_of(post(&gw, "/v1/chat/completions", chat_body("org/nosecret")).await).await;
    assert_eq!(status, 503);
    let msg = err["message"].as_str().unwrap();
    assert!(
        msg.contains("'nosecret'") && msg.contains("SLUICE_E2E_NEVER_SET"),
        "{msg}"
    );
    assert!(
        gw.logs().contains("target unavailable"),
        "the startup log names the unavailable target"
    );

    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, err) = error_of(resp).await;
    assert_eq!(status, 400);
    assert!(
        err["message"].as_str().unwrap().contains("line 1 column 2"),
        "{err}"
    );

    let mut body = chat_body("org/chat");
    body["n"] = json!(3);
    let (status, err) = error_of(post(&gw, "/v1/chat/completions", body).await).await;
    assert_eq!((status, err["param"].as_str()), (400, Some("n")));

    let mut body = chat_body("org/chat");
    body["messages"][1]["role"] = json!("wizard");
    let (status, err) = error_of(post(&gw, "/v1/chat/completions", body).await).await;
    assert_eq!(status, 400);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("messages[1].role 'wizard'"),
        "{err}"
    );

    let big = "x".repeat(5 * 1024 * 1024);
    let (status, err) = error_of(
        post(
            &gw,
            "/v1/chat/completions",
            json!({"model": "org/chat", "messages": [{"role": "user", "content": big}]}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (413, Some("request_too_large"))
    );

    let ready = reqwest::get(gw.url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    let health = reqwest::get(gw.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_never_appears_in_logs_or_answers() {
    let up = Upstream::start().await;
    let gw = Gateway::start_with(&pack(&up), opts(&up));
    let mut answers = String::new();
    for model in [
        "org/chat",
        "org/unauthorized",
        "org/gated",
        "org/servererror",
        "org/broken",
        "org/nosecret",
        "org/native",
    ] {
        for stream in [false, true] {
            let mut body = chat_body(model);
            body["stream"] = json!(stream);
            let resp = post(&gw, "/v1/chat/completions", body).await;
            answers += &format!("{:?}", resp.headers());
            answers += &resp.text().await.unwrap_or_default();
        }
    }
    assert!(
        up.requests()
            .iter()
            .filter(|r| r.authorization.as_deref() == Some(&format!("Bearer {TOKEN}")))
            .count()
            > 5
    );
    std::thread::sleep(Duration::from_millis(200));
    let logs = gw.logs();
    assert!(
        logs.contains("DEBUG"),
        "the gateway ran with debug logging, so the check covers every log line"
    );
    assert!(!logs.contains(TOKEN), "the token leaked into the logs");
    assert!(!answers.contains(TOKEN), "the token leaked into an answer");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_never_take_the_gateway_down() {
    let up = Upstream::start().await;
    let gw = Gateway::start_with(&pack(&up), opts(&up));
    let client = reqwest::Client::new();
    let bodies: Vec<Vec<u8>> = vec![
        vec![],
        b"null".to_vec(),
        b"[]".to_vec(),
        vec![0xff, 0xfe, 0x00, 0x01],
        br#"{"model": 5, "messages": "x"}"#.to_vec(),
        br#"{"model": "org/chat", "messages": [{"role": "user", "content": {"nested": true}}]}"#.to_vec(),
        br#"{"model": "org/chat", "messages": [{"role": "user", "content": [{"type": "image_url"}]}], "stream": "yes"}"#.to_vec(),
        br#"{"model": "org/chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": -1}"#.to_vec(),
        format!(r#"{{"model": "org/native", "messages": [{{"role": "user", "content": "{}"}}]}}"#, "\\ud800").into_bytes(),
        format!(r#"{{"model": "{}", "messages": []}}"#, "m".repeat(100_000)).into_bytes(),
        br#"{"model": "org/fe", "input": [[1, 2], [3]]}"#.to_vec(),
    ];
    for path in ["/v1/chat/completions", "/v1/embeddings"] {
        for body in &bodies {
            let resp = client
                .post(gw.url(path))
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            assert!(
                (400..500).contains(&status) || status == 200,
                "{path} {:?} -> {status}",
                String::from_utf8_lossy(&body[..body.len().min(80)])
            );
            if status != 200 {
                let v: Value = resp.json().await.unwrap();
                assert!(
                    v["error"]["message"]
                        .as_str()
                        .is_some_and(|m| !m.is_empty()),
                    "{v}"
                );
            }
        }
    }
    let resp = client
        .get(gw.url("/v1/chat/completions"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    let resp = client.post(gw.url("/v2/nothing")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(
        reqwest::get(gw.url("/healthz")).await.unwrap().status(),
        200,
        "still alive"
    );
    assert!(!gw.logs().contains("panicked"), "{}", gw.logs());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_upstream_answer_is_refused_not_buffered() {
    let up = Upstream::start().await;
    let gw = Gateway::start_with(&pack(&up), opts(&up));
    let (status, err) = error_of(post(&gw, "/v1/chat/completions", chat_body("huge")).await).await;
    assert_eq!(status, 502);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("target 'huge' answered with more than 64 MiB"),
        "{err}"
    );
    // The gateway is still serving.
    let (status, _) =
        error_of(post(&gw, "/v1/chat/completions", chat_body("nosuchmodel")).await).await;
    assert_eq!(status, 404);
}
