//! The pack's `limits:` through the real `sluice-gateway` (in-process
//! counts): per key, per role, token budgets and concurrency, each refusal
//! a 429 with `Retry-After` that names the limit and never the key.

use serde_json::{Value, json};
use sluice_e2e::upstream::Upstream;
use sluice_e2e::{Gateway, GatewayOptions};

const KEY_A: &str = "sk-limits-key-a-0123456789";
const KEY_B: &str = "sk-limits-key-b-0123456789";
const KEY_OPS: &str = "sk-limits-key-ops-0123456789";

fn gateway(up: &Upstream, limits: &str) -> Gateway {
    let pack = format!(
        "pack:\n  name: limits\nproviders:\n  targets:\n    - id: ok\n      provider: openai:org/ok\n      base_url: {}/v1\n    - id: slow\n      provider: openai:org/slow\n      base_url: {}/v1\n    - id: capped\n      provider: openai:org/capped\n      base_url: {}/v1\n      fallbacks: [ok]\nclients:\n  keys:\n    - id: app-a\n      role: apps\n      key_ref: {{env: KEY_A}}\n    - id: app-b\n      role: apps\n      key_ref: {{env: KEY_B}}\n    - id: ops\n      role: operators\n      key_ref: {{env: KEY_OPS}}\nlimits:\n{limits}",
        up.base("ok"),
        up.base("slowbody"),
        up.base("capped")
    );
    Gateway::start_with(
        &pack,
        GatewayOptions {
            env: vec![
                ("KEY_A", KEY_A.to_string()),
                ("KEY_B", KEY_B.to_string()),
                ("KEY_OPS", KEY_OPS.to_string()),
            ],
            ..GatewayOptions::default()
        },
    )
}

async fn chat(gw: &Gateway, key: &str, model: &str) -> reqwest::Response {
    sluice_e2e::chat_as(gw, Some(key), model, false).await
}

/// Status, `Retry-After`, decisions header and error message.
async fn refusal(resp: reqwest::Response) -> (u16, Option<String>, String, String) {
    let status = resp.status().as_u16();
    let header = |n: &str| {
        resp.headers()
            .get(n)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let retry_after = header("retry-after");
    let decisions = header("x-sluice-policy-decisions").unwrap_or_default();
    let body: Value = resp.json().await.unwrap();
    (
        status,
        retry_after,
        decisions,
        body["error"]["message"].as_str().unwrap_or("").to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_per_key_limit_counts_each_key_separately() {
    let up = Upstream::start().await;
    let gw = gateway(
        &up,
        "  - name: per-key\n    scope: key\n    requests_per_minute: 3\n",
    );
    for _ in 0..3 {
        assert_eq!(chat(&gw, KEY_A, "ok").await.status(), 200);
    }
    let (status, retry_after, decisions, message) = refusal(chat(&gw, KEY_A, "ok").await).await;
    assert_eq!(status, 429);
    let secs: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=20).contains(&secs), "one request every 20 s: {secs}");
    assert_eq!(decisions, "limits=limited(per-key)");
    assert!(
        message.contains("limit 'per-key' reached: at most 3 requests per minute per key"),
        "{message}"
    );
    assert!(!message.contains("app-a") && !message.contains(KEY_A));
    assert_eq!(
        up.hits("ok"),
        3,
        "a refused request never reaches the upstream"
    );
    // Another key has its own count.
    assert_eq!(chat(&gw, KEY_B, "ok").await.status(), 200);
    assert!(!gw.logs().contains(KEY_A), "the key is never logged");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_per_role_limit_applies_only_to_the_roles_it_lists() {
    let up = Upstream::start().await;
    let gw = gateway(
        &up,
        "  - name: apps-share\n    scope: role\n    roles: [apps]\n    requests_per_minute: 2\n",
    );
    // Both app keys share the role's count.
    assert_eq!(chat(&gw, KEY_A, "ok").await.status(), 200);
    assert_eq!(chat(&gw, KEY_B, "ok").await.status(), 200);
    let (status, _, decisions, _) = refusal(chat(&gw, KEY_A, "ok").await).await;
    assert_eq!(
        (status, decisions.as_str()),
        (429, "limits=limited(apps-share)")
    );
    // Operators are not listed.
    for _ in 0..4 {
        assert_eq!(chat(&gw, KEY_OPS, "ok").await.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_budget_counts_the_usage_the_upstream_reported() {
    let up = Upstream::start().await;
    // The stand-in reports 7 tokens per answer: the budget lasts 3 requests.
    let gw = gateway(
        &up,
        "  - name: daily-tokens\n    scope: key\n    tokens_per_day: 20\n",
    );
    for _ in 0..3 {
        assert_eq!(chat(&gw, KEY_A, "ok").await.status(), 200);
    }
    let (status, retry_after, decisions, message) = refusal(chat(&gw, KEY_A, "ok").await).await;
    assert_eq!(status, 429);
    assert_eq!(decisions, "limits=limited(daily-tokens)");
    assert!(
        message.contains("at most 20 tokens per day per key"),
        "{message}"
    );
    let secs: u64 = retry_after.unwrap().parse().unwrap();
    assert!(secs <= 86_400, "until the UTC day ends: {secs}");
    assert_eq!(chat(&gw, KEY_B, "ok").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrency_is_limited_while_requests_are_in_flight() {
    let up = Upstream::start().await;
    let gw = gateway(
        &up,
        "  - name: one-at-a-time\n    scope: target\n    targets: [slow]\n    concurrent: 1\n",
    );
    // /slowbody/ answers after 1 s: the second request arrives while the
    // first is in flight.
    let first = chat(&gw, KEY_A, "slow");
    let second = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        chat(&gw, KEY_B, "slow").await
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(first.status(), 200);
    let (status, _, decisions, _) = refusal(second).await;
    assert_eq!(
        (status, decisions.as_str()),
        (429, "limits=limited(one-at-a-time)")
    );
    // Released when the first ended; other targets were never limited.
    assert_eq!(chat(&gw, KEY_B, "slow").await.status(), 200);
    assert_eq!(chat(&gw, KEY_B, "ok").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_over_its_limit_hands_the_request_to_its_fallback() {
    let up = Upstream::start().await;
    let gw = gateway(
        &up,
        "  - name: capped-rpm\n    scope: target\n    targets: [capped]\n    requests_per_minute: 1\n",
    );
    let first = chat(&gw, KEY_A, "capped").await;
    assert_eq!(first.status(), 200);
    assert_eq!(up.hits("capped"), 1);
    let second = chat(&gw, KEY_A, "capped").await;
    assert_eq!(second.status(), 200, "the fallback has room");
    let decisions = second
        .headers()
        .get("x-sluice-policy-decisions")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        decisions,
        "limits=limited(capped-rpm);fallback=fell_back(capped)"
    );
    assert_eq!((up.hits("capped"), up.hits("ok")), (1, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_count_the_usage_the_upstream_reports_even_when_the_client_did_not_ask() {
    let up = Upstream::start().await;
    // 7 tokens per answer (the stand-in reports usage only when asked):
    // two streams fit in 10 tokens, a third is refused. Counted by the
    // characters-sent estimate instead (3 tokens each), it would pass.
    let gw = gateway(
        &up,
        "  - name: stream-tokens\n    scope: key\n    tokens_per_day: 10\n",
    );
    let stream = || async {
        reqwest::Client::new()
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(KEY_A)
            .json(&json!({"model": "ok", "stream": true, "messages": [{"role": "user", "content": "hello there"}]}))
            .send()
            .await
            .unwrap()
    };
    for _ in 0..2 {
        let resp = stream().await;
        assert_eq!(resp.status(), 200);
        let events = sluice_e2e::sse_events(resp).await;
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
        assert!(
            events.iter().all(|e| !e.contains("\"usage\"")),
            "the client did not ask for usage: {events:?}"
        );
    }
    assert!(
        up.requests()
            .iter()
            .all(|r| r.body["stream_options"]["include_usage"] == json!(true)),
        "the gateway always asks the upstream for usage"
    );
    let (status, _, decisions, _) = refusal(stream().await).await;
    assert_eq!(
        (status, decisions.as_str()),
        (429, "limits=limited(stream-tokens)")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_without_usage_is_counted_by_the_estimate_of_prompt_and_answer() {
    let up = Upstream::start().await;
    let gw = Gateway::start_with(
        &format!(
            "pack:\n  name: estimate\nproviders:\n  targets:\n    - id: quiet\n      provider: openai:org/quiet\n      base_url: {}/v1\nclients:\n  keys:\n    - id: app-a\n      role: apps\n      key_ref: {{env: KEY_A}}\n    - id: app-b\n      role: apps\n      key_ref: {{env: KEY_B}}\nlimits:\n  - name: day\n    scope: key\n    tokens_per_day: 10\n",
            up.base("nousage")
        ),
        GatewayOptions {
            env: vec![("KEY_A", KEY_A.to_string()), ("KEY_B", KEY_B.to_string())],
            ..GatewayOptions::default()
        },
    );
    let send = |key: &'static str, stream: bool| {
        reqwest::Client::new()
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&json!({"model": "quiet", "stream": stream, "messages": [{"role": "user", "content": "hello there"}]}))
            .send()
    };
    // Whole answers: "hello there" (11 bytes, 3 tokens) and the stand-in's
    // "echo: hello there" (17 bytes, 5 tokens): 8 per request. Counting
    // the prompt alone (3 per request) would admit a third and a fourth.
    for _ in 0..2 {
        let resp = send(KEY_A, false).await.unwrap();
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        assert!(v.get("usage").is_none(), "the upstream reported no usage");
    }
    let (status, _, decisions, _) = refusal(send(KEY_A, false).await.unwrap()).await;
    assert_eq!((status, decisions.as_str()), (429, "limits=limited(day)"));
    // Streams: 3 prompt tokens and "Hello world" (11 bytes, 3 tokens).
    for _ in 0..2 {
        let resp = send(KEY_B, true).await.unwrap();
        assert_eq!(resp.status(), 200);
        let events = sluice_e2e::sse_events(resp).await;
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    }
    let (status, _, decisions, _) = refusal(send(KEY_B, true).await.unwrap()).await;
    assert_eq!((status, decisions.as_str()), (429, "limits=limited(day)"));
}
