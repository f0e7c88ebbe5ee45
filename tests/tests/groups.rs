//! Target groups through the real `sluice-gateway`: traffic split by
//! weight, least-outstanding and peak-EWMA choice, failover to the other
//! members, passive ejection after consecutive failures, and the router
//! sending a role to a group.

use std::time::Duration;

use serde_json::Value;
use sluice_e2e::upstream::Upstream;
use sluice_e2e::{Gateway, GatewayOptions, decisions};

/// Targets `a`, `b`, `slow` (answers after 1 s), `dead` and `dead2`
/// (always 500), then the given groups and anything else.
fn pack(up: &Upstream, groups: &str, rest: &str) -> String {
    let target = |id: &str, mode: &str| {
        format!(
            "    - id: {id}\n      provider: openai:org/{id}\n      base_url: {}/v1\n",
            up.base(mode)
        )
    };
    format!(
        "pack:\n  name: groups\nproviders:\n  targets:\n{}{}{}{}{}  groups:\n{groups}{rest}",
        target("a", "a"),
        target("b", "b"),
        target("slow", "slowbody"),
        target("dead", "servererror"),
        target("dead2", "servererror"),
    )
}

async fn chat(gw: &Gateway, model: &str) -> reqwest::Response {
    sluice_e2e::chat_as(gw, None, model, false).await
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_traffic_splits_by_weight() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&pack(
        &up,
        "    - id: pool\n      balance: weighted\n      members:\n        - {target: a, weight: 3}\n        - b\n",
        "",
    ));
    for _ in 0..200 {
        let resp = chat(&gw, "pool").await;
        assert_eq!(resp.status(), 200);
        assert_eq!(decisions(&resp), "");
    }
    let (a, b) = (up.hits("a"), up.hits("b"));
    assert_eq!(a + b, 200);
    // Expected 150 for a; the binomial's standard deviation is ~6.
    assert!((120..=180).contains(&a), "a served {a}, b {b}");

    // The models list names the group first.
    let models: Value = reqwest::get(gw.url("/v1/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["id"], "pool");
    assert_eq!(models["data"][0]["owned_by"], "sluice-group:pool");
}

#[tokio::test(flavor = "multi_thread")]
async fn least_outstanding_sends_new_requests_past_a_busy_member() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&pack(
        &up,
        "    - id: pool\n      members:\n        - {target: slow, weight: 1000}\n        - a\n",
        "",
    ));
    // Idle, `slow` wins the weighted tie-break 1000 times in 1001: start
    // requests until one is out at `slow`.
    let mut out = Vec::new();
    while up.hits("slowbody") == 0 {
        let url = gw.url("/v1/chat/completions");
        out.push(tokio::spawn(async move {
            reqwest::Client::new()
                .post(url)
                .json(&serde_json::json!({"model": "pool", "messages": [{"role": "user", "content": "hi"}]}))
                .send()
                .await
                .unwrap()
                .status()
        }));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = up.hits("a");
    // One request in flight at `slow` (cost 1/1000) against none at `a`.
    for _ in 0..5 {
        assert_eq!(chat(&gw, "pool").await.status(), 200);
    }
    assert_eq!(
        up.hits("a") - before,
        5,
        "every new request went past the busy member"
    );
    assert_eq!(up.hits("slowbody"), 1);
    for h in out {
        assert_eq!(h.await.unwrap(), 200);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn peak_ewma_learns_which_member_is_fast() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&pack(
        &up,
        "    - id: pool\n      balance: peak_ewma\n      members: [slow, a]\n",
        "",
    ));
    for _ in 0..8 {
        assert_eq!(chat(&gw, "pool").await.status(), 200);
    }
    // Each member is measured once (an unmeasured idle member goes first);
    // then the fast one takes everything.
    assert_eq!(up.hits("slowbody"), 1);
    assert_eq!(up.hits("a"), 7);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_member_is_ejected_and_its_requests_go_to_the_others() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&pack(
        &up,
        "    - id: pool\n      members:\n        - {target: dead, weight: 1000}\n        - a\n      ejection: {consecutive_failures: 2, cooldown_seconds: 60}\n",
        "",
    ));
    let mut ejected_on = None;
    for i in 0..40 {
        let resp = chat(&gw, "pool").await;
        assert_eq!(resp.status(), 200, "the other member answers");
        let d = decisions(&resp);
        match up.hits("servererror") {
            1 if ejected_on.is_none() => assert_eq!(d, "fallback=fell_back(dead)"),
            2 if ejected_on.is_none() => {
                assert_eq!(d, "group=ejected(dead);fallback=fell_back(dead)");
                ejected_on = Some(i);
            }
            _ => {}
        }
        if ejected_on.is_some_and(|e| i > e) {
            assert_eq!(d, "", "request {i} after the ejection");
        }
    }
    let e = ejected_on.expect("two failures eject the member");
    assert!(
        e < 30,
        "dead is picked first 1000 times in 1001: ejected at {e}"
    );
    assert_eq!(
        up.hits("servererror"),
        2,
        "nothing reaches an ejected member"
    );

    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("sluice_target_ejections_total{group=\"pool\",target=\"dead\"} 1"),
        "{metrics}"
    );
    assert!(gw.wait_for_log("ejecting a group member", Duration::from_secs(5)));
}

#[tokio::test(flavor = "multi_thread")]
async fn when_every_member_fails_the_group_fallbacks_answer_and_the_audit_names_the_group() {
    let up = Upstream::start().await;
    let dir = sluice_e2e::tempdir::TempDir::new();
    let audit = format!(
        "policies:\n  chain: [audit-logger]\n  policy:\n    audit-logger:\n      destination: file\n      path: {}\n",
        dir.path().display()
    );
    let gw = Gateway::start(&pack(
        &up,
        "    - id: pool\n      members: [dead, dead2]\n      fallbacks: [b]\n      ejection: {consecutive_failures: 0}\n",
        &audit,
    ));
    let resp = chat(&gw, "pool").await;
    assert_eq!(resp.status(), 200);
    let d = decisions(&resp);
    assert!(
        d == "fallback=fell_back(dead);fallback=fell_back(dead2)"
            || d == "fallback=fell_back(dead2);fallback=fell_back(dead)",
        "each member once, then the group's fallback: {d}"
    );
    assert_eq!(up.hits("servererror"), 2);
    assert_eq!(up.hits("b"), 1);
    let records = sluice_e2e::wait_audit_records(dir.path(), 1).await;
    let last = records.last().expect("an audit record");
    assert_eq!(last["group"], "pool");
    assert_eq!(last["target"], "b", "the target that answered");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_router_sends_a_role_to_a_group() {
    let up = Upstream::start().await;
    let key = "sk-groups-prod-0123456789";
    let pack = pack(
        &up,
        "    - id: prod-pool\n      members: [a, b]\n",
        "clients:\n  keys:\n    - id: billing\n      role: production\n      key_ref: {env: GROUP_KEY}\npolicies:\n  chain: [router]\n  policy:\n    router:\n      rules:\n        - when_role: production\n          target: prod-pool\n",
    );
    let gw = Gateway::start_with(
        &pack,
        GatewayOptions {
            env: vec![("GROUP_KEY", key.to_string())],
            ..GatewayOptions::default()
        },
    );
    for _ in 0..20 {
        let resp = sluice_e2e::chat_as(&gw, Some(key), "slow", false).await;
        assert_eq!(resp.status(), 200);
    }
    assert_eq!(
        up.hits("slowbody"),
        0,
        "the router wins over the model asked for"
    );
    assert_eq!(up.hits("a") + up.hits("b"), 20);
    assert!(up.hits("a") > 0 && up.hits("b") > 0, "both members serve");
}

#[test]
fn check_reports_group_mistakes_by_path() {
    let yaml = "providers:\n  targets:\n    - id: a\n      provider: openai:org/a\n      base_url: http://a.test/v1\n    - id: e\n      provider: huggingface\n      model: org/e\n      secret_key_ref: {env: X}\n    - id: c\n      provider: huggingface:chat:org/c\n      secret_key_ref: {env: X}\n  groups:\n    - id: a\n      members: [a]\n    - id: mixed\n      members: [c, e, nope]\n    - id: w\n      members: [{target: a, weight: 0}]\n";
    let text = sluice_e2e::check_refuses(yaml);
    for needle in [
        "providers.groups[0].id: 'a' is already the id of a target or a group",
        "providers.groups[1].members[2]: no target has id 'nope'",
        "providers.groups[1].members: the members serve different things",
        "providers.groups[2].members[0].weight: 0 is out of range",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}
