//! The inference worker end to end: real `sluice-worker` processes running
//! mistral.rs on a tiny model the test writes, behind a real gateway, read
//! by the official `openai` Python client; killing workers mid-stream and
//! between requests; the queue limit; GGUF; the footprint check.

use std::time::{Duration, Instant};

use sluice_e2e::hub::FakeHub;
use sluice_e2e::tempdir::TempDir;
use sluice_e2e::worker::{Worker, generate, metric, tiny_model};
use sluice_e2e::{Gateway, run_python, sse_events, tiny_model as model_gen};
use sluice_proto::wire::{ChatTurn, GenerateRequest};

const READY: Duration = Duration::from_secs(60);

fn pack(workers: &[&Worker], extra_policies: &str) -> String {
    let list: Vec<String> = workers.iter().map(|w| format!("\"{}\"", w.grpc)).collect();
    format!(
        "pack:\n  name: local\nproviders:\n  targets:\n    - id: tiny\n      provider: local:huggingface:org/tiny@main\n      workers: [{}]\n      stream_timeout_seconds: 30\n{extra_policies}",
        list.join(", ")
    )
}

fn gen_request(text: &str, max_tokens: u32) -> GenerateRequest {
    GenerateRequest {
        request_id: "t".into(),
        messages: vec![ChatTurn {
            role: "user".into(),
            content: text.into(),
        }],
        max_tokens: Some(max_tokens),
        temperature: Some(0.0),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hub_model_served_by_a_worker_streams_through_the_gateway_to_the_openai_client() {
    let hub = FakeHub::start().await;
    let src = TempDir::new();
    model_gen::write_safetensors_model(src.path(), 11).unwrap();
    let commit = hub.push_dir("org/tiny", src.path());
    let cache = TempDir::new();
    let worker = Worker::start(
        &[
            "--model",
            "org/tiny",
            "--cache-dir",
            cache.path().to_str().unwrap(),
            "--device",
            "cpu",
        ],
        &[("HF_ENDPOINT", hub.url())],
    );
    worker.wait_ready(READY).await;

    let mut client = worker.client().await;
    let info = worker.model_info().await;
    assert_eq!(info.model_id, "org/tiny");
    assert_eq!(info.revision, commit);
    assert_eq!(info.device, "cpu");
    assert_eq!(info.dtype, "f32");
    assert_eq!(info.context_length, model_gen::CONTEXT as u32);
    assert_eq!(info.max_concurrency, 1);
    assert_eq!(info.format, "safetensors");

    // gRPC directly: pieces, then exactly one Finish with usage.
    let (text, finish) = generate(&mut client, gen_request("hello", 12)).await;
    let finish = finish.expect("a Finish event");
    assert_eq!(finish.finish_reason, "length");
    assert_eq!(finish.completion_tokens, 12, "{finish:?}");

    // A prompt that fills the context window is refused with both numbers.
    let err = client
        .generate(gen_request(&"lorem ipsum ".repeat(300), 10))
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .expect_err("the prompt does not fit");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("context window is 2048"),
        "{}",
        err.message()
    );
    assert!(finish.prompt_tokens > 5, "{finish:?}");
    assert!(finish.time_to_first_token_us > 0);
    assert!(!text.is_empty() && text.is_ascii());

    let gw = Gateway::start(&pack(
        &[&worker],
        "policies:\n  chain: [prompt-injection, pii-detector]\n  policy:\n    prompt-injection:\n      action: block\n    pii-detector:\n      action: redact\n      entities: [EMAIL_ADDRESS]\n",
    ));
    let out = run_python("local_model.py", gw.url("/v1")).await;
    assert!(
        out.status.success(),
        "python failed:\nstdout:\n{}\nstderr:\n{}\ngateway:\n{}\nworker:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        gw.logs(),
        worker.process.logs()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("stream ok"), "{stdout}");
    assert!(stdout.contains("blocked ok"), "{stdout}");

    // A pack that names another model, or pins another commit, is not
    // served by this worker.
    let http = reqwest::Client::new();
    for (provider, status) in [
        ("org/other".to_string(), 503),
        (format!("org/tiny@{}", "f".repeat(40)), 503),
        (format!("org/tiny@{commit}"), 200),
    ] {
        let gw = Gateway::start(&format!(
            "providers:\n  targets:\n    - id: t\n      provider: local:huggingface:{provider}\n      workers: [\"{}\"]\n",
            worker.grpc
        ));
        let resp = http
            .post(gw.url("/v1/chat/completions"))
            .json(&serde_json::json!({"model": "t", "max_tokens": 2,
                   "messages": [{"role": "user", "content": "Tell me a story."}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{provider}: {}", gw.logs());
        if status == 503 {
            assert!(
                resp.text()
                    .await
                    .unwrap()
                    .contains("no worker serves its model")
            );
        }
    }

    // The policy chain ran in front of the worker: the injection never
    // reached it (4 generations: gRPC, stream, non-stream, pinned commit;
    // plus the refused over-long prompt).
    let m = worker.metrics().await;
    assert_eq!(metric(&m, "llm_requests_total"), 5.0, "{m}");
    assert_eq!(metric(&m, "llm_failures_total"), 1.0, "{m}");
    assert_eq!(
        metric(&m, "llm_completion_tokens_total"),
        12.0 + 16.0 + 8.0 + 2.0,
        "{m}"
    );
    assert_eq!(metric(&m, "sluice_worker_ready"), 1.0);
    assert_eq!(
        metric(&m, "sluice_worker_decode_tokens_per_second_count"),
        4.0,
        "{m}"
    );
    assert!(
        metric(&m, "sluice_worker_decode_tokens_per_second_sum") > 0.0,
        "{m}"
    );
    assert_eq!(metric(&m, "sluice_worker_queued"), 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_worker_mid_stream_ends_the_client_stream_with_an_error_event() {
    let (_dir, model) = tiny_model(21);
    let mut worker = Worker::start(&["--model", model.to_str().unwrap()], &[]);
    worker.wait_ready(READY).await;
    let gw = Gateway::start(&pack(&[&worker], ""));
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .json(&serde_json::json!({
            "model": "org/tiny", "stream": true, "max_tokens": 1900,
            "messages": [{"role": "user", "content": "tell me a long story"}]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    use futures::StreamExt;
    let mut seen = String::new();
    while seen.matches("\"content\"").count() < 5 {
        let chunk = body.next().await.expect("stream continues").unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let killed = Instant::now();
    worker.process.kill();
    let rest = tokio::time::timeout(Duration::from_secs(5), async {
        let mut rest = String::new();
        while let Some(Ok(chunk)) = body.next().await {
            rest.push_str(&String::from_utf8_lossy(&chunk));
        }
        rest
    })
    .await
    .expect("the stream must end, not hang");
    let waited = killed.elapsed();
    assert!(
        waited < Duration::from_millis(1500),
        "ended after {waited:?}"
    );
    assert!(rest.contains("\"error\""), "no error event: {rest}");
    assert!(
        !rest.contains("[DONE]"),
        "a broken stream must not end cleanly: {rest}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_one_dies_and_traffic_continues_on_the_other() {
    let (_dir, model) = tiny_model(31);
    let path = model.to_str().unwrap();
    let mut a = Worker::start(&["--model", path, "--max-concurrency", "2"], &[]);
    let b = Worker::start(&["--model", path, "--max-concurrency", "2"], &[]);
    a.wait_ready(READY).await;
    b.wait_ready(READY).await;
    let gw = Gateway::start(&pack(&[&a, &b], ""));
    let http = reqwest::Client::new();
    let ask = |stream: bool| {
        http.post(gw.url("/v1/chat/completions"))
            .json(&serde_json::json!({
                "model": "tiny", "stream": stream, "max_tokens": 4, "temperature": 0,
                "messages": [{"role": "user", "content": "hi"}]
            }))
            .send()
    };
    for _ in 0..6 {
        assert_eq!(ask(false).await.unwrap().status(), 200);
    }
    let (ma, mb) = (a.metrics().await, b.metrics().await);
    assert!(
        metric(&ma, "llm_requests_total") > 0.0 && metric(&mb, "llm_requests_total") > 0.0,
        "both workers should have served: a={} b={}",
        metric(&ma, "llm_requests_total"),
        metric(&mb, "llm_requests_total")
    );

    a.process.kill();
    for i in 0..8 {
        let resp = ask(i % 2 == 0).await.unwrap();
        assert_eq!(resp.status(), 200, "request {i} after the kill");
        if i % 2 == 0 {
            let events = sse_events(resp).await;
            assert_eq!(
                events.last().map(String::as_str),
                Some("[DONE]"),
                "{events:?}"
            );
        } else {
            let v: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(v["usage"]["completion_tokens"], 4, "{v}");
        }
    }
    assert!(
        gw.logs().contains("worker failed before the first token"),
        "{}",
        gw.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_queue_answers_resource_exhausted_and_the_gateway_says_busy() {
    let (_dir, model) = tiny_model(41);
    let worker = Worker::start(
        &[
            "--model",
            model.to_str().unwrap(),
            "--max-concurrency",
            "1",
            "--max-queue",
            "0",
        ],
        &[],
    );
    worker.wait_ready(READY).await;
    let mut client = worker.client().await;
    let mut long = client
        .generate(gen_request("a long one", 1900))
        .await
        .unwrap()
        .into_inner();
    long.message().await.unwrap().expect("first piece");
    let err = client
        .generate(gen_request("another", 4))
        .await
        .expect_err("the second request must be refused");
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message().contains("--max-concurrency 1"),
        "{}",
        err.message()
    );

    let gw = Gateway::start(&pack(&[&worker], ""));
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .json(&serde_json::json!({"model": "tiny", "max_tokens": 2,
               "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    drop(long); // cancels: the slot is free again
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = client.generate(gen_request("again", 2)).await;
        if r.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slot was not freed by the cancellation"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let m = worker.metrics().await;
    assert!(metric(&m, "llm_failures_total") >= 2.0, "{m}");
}

#[tokio::test(flavor = "multi_thread")]
async fn gguf_models_load_from_one_file_and_generate() {
    let dir = TempDir::new();
    model_gen::write_gguf_model(dir.path(), "tiny.Q8_0.gguf", 51).unwrap();
    let worker = Worker::start(
        &[
            "--model",
            dir.path().to_str().unwrap(),
            "--gguf-file",
            "tiny.Q8_0.gguf",
        ],
        &[],
    );
    worker.wait_ready(READY).await;
    let info = worker.model_info().await;
    assert_eq!(info.format, "gguf");
    assert_eq!(info.context_length, model_gen::CONTEXT as u32);
    let (text, finish) = generate(&mut worker.client().await, gen_request("hello", 6)).await;
    let f = finish.expect("finish");
    assert_eq!(f.finish_reason, "length");
    assert!(!text.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_model_that_cannot_fit_is_refused_before_loading() {
    let (_dir, model) = tiny_model(61);
    // A sparse 1 TiB weights file: no disk used, far more than the RAM.
    std::fs::File::create(model.join("model-00002-of-00002.safetensors"))
        .unwrap()
        .set_len(1 << 40)
        .unwrap();
    let mut worker = Worker::start(&["--model", model.to_str().unwrap()], &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !worker.process.logs().contains("needs about") {
        assert!(Instant::now() < deadline, "{}", worker.process.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    let logs = worker.process.logs();
    assert!(logs.contains("of RAM is free"), "{logs}");
    assert!(logs.contains("smaller quantized variant"), "{logs}");
    worker.process.kill();
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_and_workers_use_mutual_tls_and_refuse_a_wrong_client_certificate() {
    use sluice_e2e::GatewayOptions;
    use sluice_e2e::pki::Ca;
    let dir = TempDir::new();
    let (ca, rogue) = (Ca::new("worker-ca"), Ca::new("rogue-ca"));
    let ca_pem = ca.write(dir.path());
    let server = ca.issue(dir.path(), "worker", false);
    let good = ca.issue(dir.path(), "gw-good", true);
    let bad = rogue.issue(dir.path(), "gw-rogue", true);
    let (_m, model) = tiny_model(71);
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let worker = Worker::start(
        &[
            "--model",
            &path(&model),
            "--tls-cert",
            &path(&server.cert),
            "--tls-key",
            &path(&server.key),
            "--tls-client-ca",
            &path(&ca_pem),
        ],
        &[],
    );
    worker.wait_ready(READY).await;
    let gateway = |client: Option<&sluice_e2e::pki::Issued>| {
        let mut env = vec![("SLUICE_WORKER_CA", path(&ca_pem))];
        if let Some(c) = client {
            env.push(("SLUICE_WORKER_CERT", path(&c.cert)));
            env.push(("SLUICE_WORKER_KEY", path(&c.key)));
        }
        Gateway::start_with(
            &pack(&[&worker], ""),
            GatewayOptions {
                env,
                ..Default::default()
            },
        )
    };
    let ask = |gw: &Gateway| {
        reqwest::Client::new()
            .post(gw.url("/v1/chat/completions"))
            .json(&serde_json::json!({"model": "tiny", "max_tokens": 3,
                   "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };

    let trusted = gateway(Some(&good));
    let resp = ask(&trusted).await.unwrap();
    assert_eq!(resp.status(), 200, "{}", trusted.logs());
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["usage"]["completion_tokens"], 3);

    // A client certificate from another CA, or none at all, is refused at
    // the handshake; so is a plaintext gateway.
    for gw in [gateway(Some(&bad)), gateway(None)] {
        assert_eq!(ask(&gw).await.unwrap().status(), 502, "{}", gw.logs());
    }
    let plaintext = Gateway::start(&pack(&[&worker], ""));
    assert_eq!(ask(&plaintext).await.unwrap().status(), 502);
    assert!(
        worker.process.logs().contains("TLS handshake refused"),
        "{}",
        worker.process.logs()
    );
    let m = worker.metrics().await;
    assert_eq!(metric(&m, "llm_requests_total"), 1.0, "{m}");
}

#[tokio::test(flavor = "multi_thread")]
async fn embedding_models_embed_through_the_gateway_and_refuse_generation() {
    let dir = TempDir::new();
    model_gen::write_embedding_model(dir.path(), 81).unwrap();
    let worker = Worker::start(
        &[
            "--model",
            dir.path().to_str().unwrap(),
            "--max-concurrency",
            "2",
        ],
        &[],
    );
    worker.wait_ready(READY).await;
    let mut client = worker.client().await;
    let info = worker.model_info().await;
    assert!(info.supports_embeddings, "{info:?}");
    let err = client
        .generate(gen_request("hello", 2))
        .await
        .expect_err("an embedding model does not generate");
    assert_eq!(err.code(), tonic::Code::Unimplemented);

    let gw = Gateway::start(&pack(&[&worker], ""));
    let http = reqwest::Client::new();
    let resp = http
        .post(gw.url("/v1/embeddings"))
        .json(&serde_json::json!({"model": "tiny",
               "input": ["the cat sat", "the cat sat", "a rather different text"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", gw.logs());
    let v: serde_json::Value = resp.json().await.unwrap();
    let vectors: Vec<Vec<f64>> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| serde_json::from_value(d["embedding"].clone()).unwrap())
        .collect();
    assert_eq!(vectors.len(), 3);
    for e in &vectors {
        assert_eq!(e.len(), 64);
        let norm: f64 = e.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "normalised: {norm}");
    }
    assert_eq!(vectors[0], vectors[1], "same input, same vector");
    assert_ne!(vectors[0], vectors[2]);
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 6, "{v}");

    // Chat to an embedding model is the client's mistake, said plainly.
    let resp = http
        .post(gw.url("/v1/chat/completions"))
        .json(
            &serde_json::json!({"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body = resp.text().await.unwrap();
    assert!(body.contains("embedding model"), "{body}");
}
