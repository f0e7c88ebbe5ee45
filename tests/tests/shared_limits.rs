//! Fleet-wide limits: two real gateways share one real Valkey/Redis
//! (`limit_store:`), so a limit of N admits N in total across both; when
//! the store is down, `on_unavailable` decides, and the metric counts it.

use sluice_e2e::decisions;
use sluice_e2e::store::Store;
use sluice_e2e::upstream::Upstream;
use sluice_e2e::{Gateway, GatewayOptions};

const KEY_A: &str = "sk-shared-key-a-0123456789";
const KEY_B: &str = "sk-shared-key-b-0123456789";

fn pack(up: &Upstream, store: &str, limits: &str) -> String {
    format!(
        "pack:\n  name: shared-limits\nproviders:\n  targets:\n    - id: ok\n      provider: openai:org/ok\n      base_url: {}/v1\n    - id: slow\n      provider: openai:org/slow\n      base_url: {}/v1\nclients:\n  keys:\n    - id: app-a\n      role: apps\n      key_ref: {{env: KEY_A}}\n    - id: app-b\n      role: apps\n      key_ref: {{env: KEY_B}}\nlimit_store:\n{store}limits:\n{limits}",
        up.base("ok"),
        up.base("slowbody"),
    )
}

fn gateway(pack: &str, extra_env: &[(&'static str, String)]) -> Gateway {
    let mut env = vec![("KEY_A", KEY_A.to_string()), ("KEY_B", KEY_B.to_string())];
    env.extend(extra_env.iter().cloned());
    Gateway::start_with(
        pack,
        GatewayOptions {
            env,
            ..GatewayOptions::default()
        },
    )
}

async fn chat(gw: &Gateway, key: &str, model: &str) -> reqwest::Response {
    sluice_e2e::chat_as(gw, Some(key), model, false).await
}

async fn metric(gw: &Gateway, series: &str) -> f64 {
    let text = gw.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_per_key_limit_of_n_admits_n_in_total_across_two_gateways() {
    let up = Upstream::start().await;
    let store = Store::start();
    let p = pack(
        &up,
        &format!("  url: {}\n", store.url()),
        "  - name: per-key\n    scope: key\n    requests_per_minute: 5\n",
    );
    let (one, two) = (gateway(&p, &[]), gateway(&p, &[]));
    let mut admitted = 0;
    let mut refused = Vec::new();
    for i in 0..12 {
        let gw = if i % 2 == 0 { &one } else { &two };
        let resp = chat(gw, KEY_A, "ok").await;
        match resp.status().as_u16() {
            200 => admitted += 1,
            429 => refused.push(decisions(&resp)),
            s => panic!("unexpected status {s}"),
        }
    }
    assert_eq!(admitted, 5, "5 per minute for the whole fleet");
    assert_eq!(up.hits("ok"), 5);
    assert!(
        refused.iter().all(|d| d == "limits=limited(per-key)"),
        "{refused:?}"
    );
    // Both gateways refused some: neither kept its own count.
    assert_eq!(chat(&one, KEY_A, "ok").await.status(), 429);
    assert_eq!(chat(&two, KEY_A, "ok").await.status(), 429);
    // Another key has its own count, in the same store.
    assert_eq!(chat(&two, KEY_B, "ok").await.status(), 200);
    let keys = store.keys("sluice:limit:per-key:*");
    assert!(
        keys.iter()
            .any(|k| k.starts_with("sluice:limit:per-key:app-a")),
        "{keys:?}"
    );
    assert!(
        keys.iter().all(|k| !k.contains(KEY_A)),
        "keys carry the public key id, never the key: {keys:?}"
    );
    assert_eq!(
        metric(
            &one,
            "sluice_limit_store_unavailable_total{on_unavailable=\"fail_open\"}"
        )
        .await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrency_and_token_budgets_are_shared_too() {
    let up = Upstream::start().await;
    let store = Store::start();
    let p = pack(
        &up,
        &format!("  url: {}\n", store.url()),
        "  - name: one-at-a-time\n    scope: target\n    targets: [slow]\n    concurrent: 1\n  - name: daily-tokens\n    scope: key\n    tokens_per_day: 20\n",
    );
    let (one, two) = (gateway(&p, &[]), gateway(&p, &[]));
    // /slowbody/ answers after 1 s: the second request reaches the other
    // gateway while the first is in flight.
    let first = chat(&one, KEY_A, "slow");
    let second = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        chat(&two, KEY_B, "slow").await
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(first.status(), 200);
    assert_eq!(second.status(), 429);
    assert_eq!(decisions(&second), "limits=limited(one-at-a-time)");
    // The slot came back when the first request ended (the release is
    // sent in the background, so allow it a moment).
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(chat(&two, KEY_B, "slow").await.status(), 200);

    // 7 tokens per answer: key B has used 7, so 20 a day leaves room for
    // two more answers, whichever gateway serves them.
    for gw in [&one, &two] {
        assert_eq!(chat(gw, KEY_B, "ok").await.status(), 200);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let over = chat(&one, KEY_B, "ok").await;
    assert_eq!(over.status(), 429);
    assert_eq!(decisions(&over), "limits=limited(daily-tokens)");
    let body: serde_json::Value = over.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 20 tokens per day per key"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fail_open_counts_locally_while_the_store_is_down_and_fail_closed_refuses() {
    let up = Upstream::start().await;
    let mut store = Store::start();
    let limits = "  - name: per-key\n    scope: key\n    requests_per_minute: 3\n";
    let open = gateway(
        &pack(
            &up,
            &format!(
                "  url: {}\n  on_unavailable: fail_open\n  timeout_ms: 200\n",
                store.url()
            ),
            limits,
        ),
        &[],
    );
    let closed = gateway(
        &pack(
            &up,
            &format!(
                "  url: {}\n  on_unavailable: fail_closed\n  timeout_ms: 200\n",
                store.url()
            ),
            limits,
        ),
        &[],
    );
    assert_eq!(chat(&open, KEY_A, "ok").await.status(), 200);
    store.stop();

    // fail_open: served, and counted by this gateway alone meanwhile (its
    // own 3 per minute).
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let resp = chat(&open, KEY_B, "ok").await;
        statuses.push((resp.status().as_u16(), decisions(&resp)));
    }
    assert_eq!(
        statuses[0],
        (200, "limits=monitor(limit_store)".to_string()),
        "{statuses:?}"
    );
    assert_eq!(statuses[3].0, 429, "{statuses:?}");
    assert!(
        metric(
            &open,
            "sluice_limit_store_unavailable_total{on_unavailable=\"fail_open\"}"
        )
        .await
            >= 4.0
    );

    // fail_closed: 503, naming the setting.
    let resp = chat(&closed, KEY_A, "ok").await;
    assert_eq!(resp.status(), 503);
    assert_eq!(decisions(&resp), "limits=block(limit_store)");
    let body: serde_json::Value = resp.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("limit_store.on_unavailable: fail_closed"),
        "{message}"
    );
    assert!(
        !message.contains("127.0.0.1"),
        "no address to clients: {message}"
    );
    assert!(
        metric(
            &closed,
            "sluice_limit_store_unavailable_total{on_unavailable=\"fail_closed\"}"
        )
        .await
            >= 1.0
    );

    // Back: the shared count again (the restarted store is empty).
    store.restart();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let resp = chat(&closed, KEY_A, "ok").await;
        if resp.status() == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the gateway did not reconnect to the store"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_store_password_stays_in_the_environment_and_out_of_logs() {
    let up = Upstream::start().await;
    let password = "store-pw-0123456789abcdef";
    let store = Store::start_with_password(Some(password));
    let limits = "  - name: per-key\n    scope: key\n    requests_per_minute: 2\n";

    // A password written in the pack is refused, by path.
    let inline = pack(&up, &format!("  url: {}\n", store.url()), limits);
    let Err(errors) = sluice_proto::pack::load(&inline) else {
        panic!("a URL with a password in the pack must be refused");
    };
    let text = errors.to_string();
    assert!(
        text.contains("limit_store.url") && text.contains("url_env"),
        "{text}"
    );
    assert!(!text.contains(password), "{text}");

    // url_env names a variable that is not set: the gateway says which.
    let by_env = pack(&up, "  url_env: SLUICE_STORE_URL\n", limits);
    let Err((_, logs)) = Gateway::try_start(
        &by_env,
        GatewayOptions {
            env: vec![("KEY_A", KEY_A.to_string())],
            ..GatewayOptions::default()
        },
    ) else {
        panic!("a gateway whose store variable is unset must not serve");
    };
    assert!(logs.contains("SLUICE_STORE_URL is not set"), "{logs}");

    // Set: limits hold; a wrong password is an unavailable store, and no
    // log line carries either password.
    let gw = gateway(&by_env, &[("SLUICE_STORE_URL", store.url())]);
    let statuses: Vec<u16> = futures::future::join_all((0..3).map(|_| chat(&gw, KEY_A, "ok")))
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    let mut sorted = statuses.clone();
    sorted.sort();
    assert_eq!(sorted, [200, 200, 429], "{statuses:?}");
    let wrong = store.url().replace(password, "wrong-pw-9876543210");
    let bad = gateway(&by_env, &[("SLUICE_STORE_URL", wrong)]);
    let resp = chat(&bad, KEY_A, "ok").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(decisions(&resp), "limits=monitor(limit_store)");
    for logs in [gw.logs(), bad.logs()] {
        assert!(
            !logs.contains(password) && !logs.contains("wrong-pw-9876543210"),
            "{logs}"
        );
    }
}
