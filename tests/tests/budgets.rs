//! The pack's `budgets:` and targets' `pricing` through the real
//! `sluice-gateway`: cost and token ceilings per key per period, counted in
//! process and, with `limit_store:`, across two gateways sharing a real
//! Valkey/Redis; refusals, monitor decisions, audit records and metrics.

use std::time::Duration;

use serde_json::Value;
use sluice_e2e::store::Store;
use sluice_e2e::upstream::Upstream;
use sluice_e2e::{Gateway, GatewayOptions, decisions};

const KEY_A: &str = "sk-budget-key-a-0123456789";
const KEY_B: &str = "sk-budget-key-b-0123456789";

/// The stand-in reports 5 prompt and 2 completion tokens per answer; at
/// 1000 and 5000 per million that is 0.015 per request, so a ceiling of
/// 0.04 is reached by the third request and refuses the fourth.
fn pack(up: &Upstream, extra: &str) -> String {
    format!(
        "pack:\n  name: budgets\nproviders:\n  targets:\n    - id: ok\n      provider: openai:org/ok\n      base_url: {}/v1\n      pricing: {{input_per_million: 1000, output_per_million: 5000}}\nclients:\n  keys:\n    - id: app-a\n      role: apps\n      key_ref: {{env: KEY_A}}\n    - id: app-b\n      role: apps\n      key_ref: {{env: KEY_B}}\nbudgets:\n  - name: team-monthly\n    scope: key\n    keys: [app-a]\n    period: month\n    max_cost: 0.04\n  - name: tokens-watch\n    scope: global\n    period: day\n    max_tokens: 10\n    action: monitor\n{extra}",
        up.base("ok"),
    )
}

fn gateway(pack: &str) -> Gateway {
    Gateway::start_with(
        pack,
        GatewayOptions {
            env: vec![("KEY_A", KEY_A.to_string()), ("KEY_B", KEY_B.to_string())],
            ..GatewayOptions::default()
        },
    )
}

async fn chat(gw: &Gateway, key: &str) -> reqwest::Response {
    sluice_e2e::chat_as(gw, Some(key), "ok", false).await
}

fn series(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cost_budget_refuses_once_spent_and_a_monitor_budget_only_records() {
    let up = Upstream::start().await;
    let dir = sluice_e2e::tempdir::TempDir::new();
    let gw = gateway(&pack(
        &up,
        &format!(
            "policies:\n  chain: [audit-logger]\n  policy:\n    audit-logger:\n      destination: file\n      path: {}\n",
            dir.path().display()
        ),
    ));
    // 0, 0.015, 0.03 spent: admitted. Tokens 0, 7, 14: the third passes the
    // monitor budget's 10 and says so.
    let expected = ["", "", "budgets=monitor(tokens-watch)"];
    for want in expected {
        let resp = chat(&gw, KEY_A).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(decisions(&resp), want);
    }
    let resp = chat(&gw, KEY_A).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(decisions(&resp), "budgets=limited(team-monthly)");
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=31 * 86_400).contains(&retry),
        "until the month ends: {retry}"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "insufficient_quota");
    assert_eq!(body["error"]["code"], "budget_exceeded");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("budget 'team-monthly' is used up for this month")
            && message.contains("0.045000 of 0.040000 in cost spent"),
        "{message}"
    );
    assert!(
        !message.contains(KEY_A) && !message.contains("app-a"),
        "{message}"
    );
    assert_eq!(up.hits("ok"), 3, "a refused request reaches no upstream");
    // The budget has a keys filter: app-b is not held to it.
    assert_eq!(chat(&gw, KEY_B).await.status(), 200);

    let records = sluice_e2e::wait_audit_records(dir.path(), 5).await;
    assert_eq!(records[0]["cost"], 0.015);
    assert_eq!(
        records[0]["budgets"],
        serde_json::json!(["team-monthly", "tokens-watch"])
    );
    assert_eq!(records[3]["status"], 429);
    assert_eq!(records[4]["budgets"], serde_json::json!(["tokens-watch"]));

    let m = gw.metrics().await;
    assert_eq!(
        series(
            &m,
            "sluice_budget_spent{budget=\"team-monthly\",subject=\"app-a\",unit=\"cost\"}"
        ),
        Some(0.045),
        "{m}"
    );
    assert_eq!(
        series(
            &m,
            "sluice_budget_spent{budget=\"tokens-watch\",subject=\"\",unit=\"tokens\"}"
        ),
        Some(28.0)
    );
    assert_eq!(
        series(
            &m,
            "sluice_budget_limit{budget=\"team-monthly\",subject=\"app-a\",unit=\"cost\"}"
        ),
        Some(0.04)
    );
    let cost = series(&m, "sluice_cost_total{target=\"ok\",model=\"org/ok\"}").unwrap();
    assert!((cost - 0.06).abs() < 1e-9, "four requests served: {cost}");
    assert!(!m.contains(KEY_A));
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_limit_store_two_gateways_share_one_budget() {
    let up = Upstream::start().await;
    let store = Store::start();
    let p = pack(&up, &format!("limit_store:\n  url: {}\n", store.url()));
    let (one, two) = (gateway(&p), gateway(&p));
    let mut admitted = 0;
    for i in 0..8 {
        let gw = if i % 2 == 0 { &one } else { &two };
        match chat(gw, KEY_A).await.status().as_u16() {
            200 => admitted += 1,
            429 => {}
            s => panic!("unexpected status {s}"),
        }
        // Spend is charged in the background when a request ends.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert_eq!(admitted, 3, "0.04 at 0.015 a request, for the whole fleet");
    assert_eq!(up.hits("ok"), 3);
    let label = time::OffsetDateTime::now_utc();
    let key = format!(
        "sluice:budget:team-monthly:app-a:{}-{:02}",
        label.year(),
        label.month() as u8
    );
    let keys = store.keys("sluice:budget:*");
    assert!(keys.contains(&key), "{key} not in {keys:?}");
    assert!(keys.iter().all(|k| !k.contains(KEY_A)), "{keys:?}");
    // The gateway that did not serve the last request still reports the
    // fleet's spend it last saw.
    let spent = series(
        &two.metrics().await,
        "sluice_budget_spent{budget=\"team-monthly\",subject=\"app-a\",unit=\"cost\"}",
    )
    .unwrap();
    assert!(spent >= 0.03, "{spent}");
}

#[test]
fn check_reports_budget_and_pricing_mistakes_by_path() {
    let yaml = "providers:\n  targets:\n    - id: a\n      provider: openai:org/a\n      base_url: http://a.test/v1\n      pricing: {input_per_million: 1}\nbudgets:\n  - name: nothing\n    scope: key\n    period: month\n  - name: when\n    scope: key\n    period: year\n    max_tokens: 5\n";
    let text = sluice_e2e::check_refuses(yaml);
    for needle in [
        "providers.targets[0].pricing: pricing needs both input_per_million and output_per_million",
        "budgets[0]: a budget needs max_tokens, max_cost",
        "budgets[1].period: unknown value 'year'",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}
