//! `/metrics` through the real gateway: the shared LLM metrics are there,
//! and clients cannot grow the number of series.

use serde_json::json;
use sluice_e2e::Gateway;
use sluice_e2e::upstream::Upstream;

async fn scrape(gw: &Gateway) -> String {
    let resp = reqwest::get(gw.url("/metrics")).await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

fn series(text: &str) -> usize {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn llm_metrics_are_exported_with_bounded_labels() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&format!(
        "providers:\n  targets:\n    - id: chat\n      provider: openai:org/chat\n      base_url: {}/v1\n    - id: down\n      provider: openai:org/down\n      base_url: {}/v1\npolicies:\n  chain: [pii-detector]\n",
        up.base("ok"),
        up.base("servererror")
    ));
    let client = reqwest::Client::new();
    let send = |model: String| {
        let c = client.clone();
        let url = gw.url("/v1/chat/completions");
        async move {
            c.post(url).json(&json!({"model": model, "messages": [{"role": "user", "content": "mail jane.doe@example.com"}]})).send().await.unwrap().status().as_u16()
        }
    };
    assert_eq!(send("org/chat".into()).await, 200);
    assert_eq!(send("org/down".into()).await, 502);
    assert_eq!(send("bogus-0".into()).await, 404);
    let text = scrape(&gw).await;
    for needle in [
        r#"llm_requests_total{target="chat",model="org/chat",outcome="success"} 1"#,
        r#"llm_failures_total{target="down",model="org/down",outcome="upstream_error"} 1"#,
        r#"llm_requests_total{target="none",model="unknown",outcome="rejected"} 1"#,
        r#"llm_prompt_tokens_total{target="chat",model="org/chat"} 5"#,
        r#"llm_completion_tokens_total{target="chat",model="org/chat"} 2"#,
        r#"llm_internal_request_duration_ms_count{target="chat",model="org/chat"} 1"#,
        r#"sluice_policy_decisions_total{policy="pii-detector",stage="request",outcome="redact"} 3"#,
        r#"sluice_upstream_responses_total{target="down",status="500"} 1"#,
        "sluice_overhead_ms_count 3",
        "sluice_config_generation 1",
    ] {
        assert!(text.contains(needle), "missing {needle} in:\n{text}");
    }
    let before = series(&text);
    for i in 1..200 {
        assert_eq!(send(format!("bogus-{i}-{}", "x".repeat(i % 7))).await, 404);
    }
    let after = scrape(&gw).await;
    assert!(
        !after.contains("bogus"),
        "client-chosen model names must not become label values"
    );
    // Only the counts of existing series changed.
    assert_eq!(
        series(&after),
        before,
        "the number of series grew with bogus model names"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_can_require_a_token_that_rotates_without_a_restart() {
    let up = Upstream::start().await;
    let dir = sluice_e2e::tempdir::TempDir::new();
    let file = dir.path().join("metrics-token");
    std::fs::write(&file, "metrics-token-first-0123\n").unwrap();
    let pack = format!(
        "providers:\n  targets:\n    - id: chat\n      provider: openai:org/chat\n      base_url: {}/v1\n",
        up.base("ok")
    );
    let opts = || sluice_e2e::GatewayOptions {
        env: vec![("SLUICE_METRICS_TOKEN_FILE", file.display().to_string())],
        ..Default::default()
    };
    let gw = Gateway::start_with(&pack, opts());
    let scrape_with = |token: Option<&'static str>| {
        let mut req = reqwest::Client::new().get(gw.url("/metrics"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let challenge = resp.headers().contains_key("www-authenticate");
            (status, challenge, resp.text().await.unwrap())
        }
    };
    let (status, challenge, body) = scrape_with(None).await;
    assert_eq!((status, challenge), (401, true), "{body}");
    assert!(!body.contains("llm_"), "{body}");
    assert_eq!(scrape_with(Some("metrics-token-wrong-0123")).await.0, 401);
    let (status, _, body) = scrape_with(Some("metrics-token-first-0123")).await;
    assert_eq!(status, 200);
    assert!(body.contains("sluice_config_generation 1"), "{body}");
    // Rotated: the old token stops working at once, the new one works.
    std::fs::write(&file, "metrics-token-second-456").unwrap();
    assert_eq!(scrape_with(Some("metrics-token-first-0123")).await.0, 401);
    assert_eq!(scrape_with(Some("metrics-token-second-456")).await.0, 200);
    // The API itself is unaffected.
    let chat = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .json(&json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), 200);
    let logs = gw.logs();
    assert!(!logs.contains("metrics-token-"), "{logs}");

    // A file that cannot be read stops the gateway at start, naming it.
    std::fs::remove_file(&file).unwrap();
    let Err((_, logs)) = Gateway::try_start(&pack, opts()) else {
        panic!("a missing metrics token file must stop the gateway");
    };
    assert!(logs.contains("--metrics-token-file: cannot read"), "{logs}");
}
