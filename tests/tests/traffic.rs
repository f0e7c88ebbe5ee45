//! Traffic control through the real `sluice-gateway`: retries with
//! back-off, fallbacks to other targets, and the limits of both (client
//! errors are never retried, a started stream is never replayed).

use serde_json::Value;
use sluice_e2e::decisions;
use sluice_e2e::upstream::Upstream;
use sluice_e2e::{Gateway, free_port, sse_events};

fn pack(up: &Upstream) -> String {
    let target = |id: &str, base: String, extra: &str| {
        format!(
            "    - id: {id}\n      provider: openai:org/{id}\n      base_url: {base}/v1\n{extra}"
        )
    };
    let closed = format!("http://127.0.0.1:{}", free_port());
    let mut t = String::new();
    t += &target("ok", up.base("ok"), "");
    t += &target(
        "flaky",
        up.base("flaky"),
        "      retries: {attempts: 3, backoff_ms: 10, max_backoff_ms: 40}\n",
    );
    t += &target("flaky-no-retries", up.base("flaky"), "");
    t += &target(
        "flaky-connect-only",
        up.base("flaky"),
        "      retries: {attempts: 3, backoff_ms: 10, on: [connect]}\n",
    );
    t += &target(
        "failing",
        up.base("servererror"),
        "      retries: 1\n      fallbacks: [ok]\n",
    );
    t += &target(
        "unreachable",
        closed,
        "      fallbacks: [failing-alone, ok]\n",
    );
    t += &target("failing-alone", up.base("servererror"), "");
    t += &target(
        "slow",
        up.base("slow"),
        "      timeout_seconds: 0.3\n      stream_timeout_seconds: 0.3\n      fallbacks: [ok]\n",
    );
    t += &target(
        "broken",
        up.base("broken"),
        "      retries: 3\n      fallbacks: [ok]\n",
    );
    t += &target(
        "rejecting",
        up.base("badrequest"),
        "      retries: 3\n      fallbacks: [ok]\n",
    );
    format!("pack:\n  name: traffic\nproviders:\n  targets:\n{t}")
}

async fn chat(gw: &Gateway, model: &str, stream: bool) -> reqwest::Response {
    sluice_e2e::chat_as(gw, None, model, stream).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_503_is_retried_until_the_target_answers() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&pack(&up));
    let resp = chat(&gw, "flaky", false).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        decisions(&resp),
        "retry=retried(flaky);retry=retried(flaky)",
        "two failed tries, each a decision naming the target"
    );
    let body: Value = resp.json().await.unwrap();
    assert!(body["choices"][0]["message"]["content"].is_string());
    assert_eq!(up.hits("flaky"), 3);

    let metrics = gw.metrics().await;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("sluice_policy_decisions_total{") && l.contains("policy=\"retry\""))
        .unwrap_or_else(|| panic!("no retry counter in:\n{metrics}"));
    assert!(line.ends_with(" 2"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_retries_or_with_other_failures_listed_nothing_is_retried() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&pack(&up));
    // Both targets share the /flaky/ path, whose first two hits fail.
    let resp = chat(&gw, "flaky-no-retries", false).await;
    assert_eq!(resp.status(), 502);
    assert_eq!(decisions(&resp), "");
    assert_eq!(up.hits("flaky"), 1);
    let resp = chat(&gw, "flaky-connect-only", false).await;
    assert_eq!(resp.status(), 502, "a 5xx is not in retries.on: [connect]");
    assert_eq!(up.hits("flaky"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_targets_fall_back_in_order() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&pack(&up));

    // 500, retried once, then the fallback answers.
    let resp = chat(&gw, "failing", false).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        decisions(&resp),
        "retry=retried(failing);fallback=fell_back(failing)"
    );
    assert_eq!(up.hits("servererror"), 2);
    assert_eq!(up.hits("ok"), 1);

    // Connection refused → the first fallback fails too → the second answers.
    let resp = chat(&gw, "unreachable", false).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        decisions(&resp),
        "fallback=fell_back(unreachable);fallback=fell_back(failing-alone)",
        "a fallback's own fallbacks are not followed, the primary's list is"
    );
    assert_eq!(up.hits("ok"), 2);

    // A timeout falls back as well, streamed this time.
    let resp = chat(&gw, "slow", true).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(decisions(&resp), "fallback=fell_back(slow)");
    let events = sse_events(resp).await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_started_stream_is_never_replayed_and_client_errors_never_retried() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&pack(&up));

    let resp = chat(&gw, "broken", true).await;
    assert_eq!(resp.status(), 200);
    let events = sse_events(resp).await;
    assert!(
        events.last().is_some_and(|e| e.contains("\"error\"")),
        "the broken stream ends with an error event: {events:?}"
    );
    assert_eq!(up.hits("broken"), 1, "no retry after the first byte");
    assert_eq!(up.hits("ok"), 0, "no fallback after the first byte");

    let resp = chat(&gw, "rejecting", false).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(decisions(&resp), "");
    assert_eq!(up.hits("badrequest"), 1);
    assert_eq!(up.hits("ok"), 0);
}

#[test]
fn fallbacks_and_retries_are_validated_with_their_paths() {
    let target = |id: &str, extra: &str| {
        format!(
            "    - id: {id}\n      provider: openai:m\n      base_url: http://127.0.0.1:1/v1\n{extra}"
        )
    };
    let err = sluice_e2e::check_refuses(&format!(
        "providers:\n  targets:\n{}{}",
        target("a", "      fallbacks: [a, emb, c]\n"),
        "    - id: emb\n      provider: huggingface\n      model: org/e\n      secret_key_ref: {env: T}\n"
    ));
    for needle in [
        "providers.targets[0].fallbacks[0]: target 'a' cannot fall back to itself",
        "providers.targets[0].fallbacks[1]: 'emb' serves embeddings only",
        "providers.targets[0].fallbacks[2]: no target has id 'c'",
    ] {
        assert!(err.contains(needle), "{needle} missing from:\n{err}");
    }
    let err = sluice_e2e::check_refuses(&format!(
        "providers:\n  targets:\n{}",
        target(
            "a",
            "      retries: {attempts: 11, backoff_ms: 500, max_backoff_ms: 100, on: [5xx, teapot]}\n"
        )
    ));
    for needle in [
        "providers.targets[0].retries.attempts: 11 is out of range",
        "providers.targets[0].retries.max_backoff_ms: max_backoff_ms (100 ms) is below backoff_ms (500 ms)",
        "providers.targets[0].retries.on[1]: unknown failure 'teapot'",
    ] {
        assert!(err.contains(needle), "{needle} missing from:\n{err}");
    }
}
