//! The gateway's upstream client: requests go straight to the target, or,
//! when the environment names a proxy (`HTTP_PROXY`, `HTTPS_PROXY`,
//! `ALL_PROXY`, as curl and most HTTP clients read them), through it.

use sluice_e2e::upstream::Upstream;
use sluice_e2e::{Gateway, GatewayOptions, chat_as};

/// A target on a host that does not resolve: only a proxy can reach it.
const PACK: &str = "pack:\n  name: proxied\nproviders:\n  targets:\n    - id: far\n      provider: openai:org/far\n      base_url: http://upstream.sluice.invalid/ok/v1\n      secret_key_ref: {env: FAR_TOKEN}\n";

const PROXY_VARS: [&str; 6] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Every proxy variable set to `proxy` (empty: none), so what the machine
/// running the tests has set does not leak in.
fn env(proxy: &str) -> Vec<(&'static str, String)> {
    let mut env: Vec<_> = PROXY_VARS.iter().map(|v| (*v, String::new())).collect();
    env[0].1 = proxy.to_string();
    env.push(("NO_PROXY", String::new()));
    env.push(("no_proxy", String::new()));
    env.push(("FAR_TOKEN", "hf_far_token".to_string()));
    env
}

#[tokio::test]
async fn a_proxy_named_in_the_environment_carries_upstream_requests() {
    // The stand-in plays the proxy: it answers the absolute-form request
    // (`POST http://upstream.sluice.invalid/ok/v1/...`) as the target would.
    let proxy = Upstream::start().await;
    let gw = Gateway::start_with(
        PACK,
        GatewayOptions {
            env: env(&format!("http://127.0.0.1:{}", proxy.port)),
            ..GatewayOptions::default()
        },
    );
    let resp = chat_as(&gw, None, "far", false).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let seen = proxy.last_request();
    assert_eq!(seen.path, "/ok/v1/chat/completions");
    assert_eq!(seen.host.as_deref(), Some("upstream.sluice.invalid"));
    assert_eq!(seen.authorization.as_deref(), Some("Bearer hf_far_token"));
    assert_eq!(seen.body["model"], "org/far");

    // Without a proxy the gateway connects itself, and the host does not
    // resolve: 502, naming the target, and nothing reaches the stand-in.
    let direct = Gateway::start_with(
        PACK,
        GatewayOptions {
            env: env(""),
            ..GatewayOptions::default()
        },
    );
    let resp = chat_as(&direct, None, "far", false).await;
    assert_eq!(resp.status(), 502);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        body["error"]["message"], "target 'far': could not connect",
        "{body}"
    );
    assert_eq!(proxy.requests().len(), 1);
}

#[tokio::test]
async fn direct_requests_carry_the_gateway_user_agent_and_the_target_host() {
    let up = Upstream::start().await;
    let pack = format!(
        "pack:\n  name: direct\nproviders:\n  targets:\n    - id: near\n      provider: openai:org/near\n      base_url: {}/v1\n",
        up.base("ok")
    );
    let gw = Gateway::start_with(
        &pack,
        GatewayOptions {
            env: env(""),
            ..GatewayOptions::default()
        },
    );
    let resp = chat_as(&gw, None, "near", false).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let seen = up.last_request();
    assert_eq!(
        seen.host.as_deref(),
        Some(format!("127.0.0.1:{}", up.port).as_str())
    );
    let agent = seen.user_agent.unwrap_or_default();
    assert!(agent.starts_with("sluice-gateway/"), "{agent}");
    assert_eq!(seen.body["model"], "org/near");
}
