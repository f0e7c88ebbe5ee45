//! The config path through the real binary: `check`, startup, hot reload
//! (valid, invalid, in-flight requests), client keys and role routing.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use sluice_e2e::upstream::Upstream;
use sluice_e2e::{Gateway, GatewayOptions, binary};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/examples");

fn examples() -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(EXAMPLES)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("yaml"))
        .collect();
    files.sort();
    files
}

fn openai_target(id: &str, up: &Upstream, mode: &str) -> String {
    format!(
        "    - id: {id}\n      provider: openai:org/{id}\n      base_url: {}/v1\n",
        up.base(mode)
    )
}

async fn chat(gw: &Gateway, model: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

#[test]
fn check_accepts_every_example_and_reports_every_error_with_position() {
    for file in examples() {
        let out = Command::new(binary("sluice-gateway"))
            .arg("check")
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains(": ok"));
    }
    let dir = sluice_e2e::tempdir::TempDir::new();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "pack:\n  name: x\nproviders:\n  targets:\n    - id: a\n      provider: huggingface:chat:o/m\n      secret_key_ref:\n        evn: HF_API_TOKEN\n      timeout_seconds: -1\npolicies:\n  chain: [pii-detectr]\n").unwrap();
    let out = Command::new(binary("sluice-gateway"))
        .arg("check")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let f = bad.display();
    assert!(stderr.contains(&format!("{f}:8:9: error: providers.targets[0].secret_key_ref.evn: unknown key 'evn' (did you mean 'env'?)")), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{f}:9:24: error: providers.targets[0].timeout_seconds"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "policies.chain[0]: unknown policy 'pii-detectr' (did you mean 'pii-detector'?)"
        ),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_example_starts_a_gateway() {
    for file in examples() {
        let text = std::fs::read_to_string(&file).unwrap();
        let gw = Gateway::start_with(
            &text,
            GatewayOptions {
                // The store is connected to lazily: an address is enough
                // to start.
                env: vec![
                    ("HF_API_TOKEN", "hf_x".into()),
                    ("SLUICE_LIMIT_STORE_URL", "redis://127.0.0.1:1/0".into()),
                    ("SLUICE_KEY_TEAM_A", "sk-example-team-a".into()),
                ],
                ..Default::default()
            },
        );
        let ready = reqwest::get(gw.url("/readyz")).await.unwrap();
        assert_eq!(ready.status(), 200, "{}", file.display());
        // Examples with client keys need one; the others ignore it.
        let models: Value = reqwest::Client::new()
            .get(gw.url("/v1/models"))
            .bearer_auth("sk-example-team-a")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            !models["data"].as_array().unwrap().is_empty(),
            "{}",
            file.display()
        );
    }
}

/// README.md's first command, as a new user runs it: no token set at all.
#[tokio::test(flavor = "multi_thread")]
async fn the_readme_example_serves_without_any_token() {
    let text = std::fs::read_to_string(format!("{EXAMPLES}/policy-config.yaml")).unwrap();
    let gw = Gateway::start_with(
        &text,
        GatewayOptions {
            // Empty is what the gateway treats as unset (and it overrides a
            // token the test's own environment might carry).
            env: vec![("HF_API_TOKEN", String::new())],
            ..Default::default()
        },
    );
    assert_eq!(
        reqwest::get(gw.url("/healthz")).await.unwrap().status(),
        200
    );
    let models: Value = reqwest::get(gw.url("/v1/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"hf-llama-8b"), "{models}");
    // A target that needs the token says which variable to set.
    let (status, v) = chat(&gw, "hf-llama-8b", &[]).await;
    assert_eq!(status, 503, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("HF_API_TOKEN"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_pack_at_startup_is_refused_with_its_errors() {
    let err = Gateway::try_start(
        "providers:\n  targets:\n    - id: a\n      provider: opnai:x\n",
        GatewayOptions::default(),
    );
    let Err((code, logs)) = err else {
        panic!("the gateway started with an invalid pack")
    };
    assert_eq!(code, Some(1));
    assert!(
        logs.contains(
            "providers.targets[0].provider: unknown provider 'opnai:x' (did you mean 'openai'"
        ),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hot_reload_applies_valid_changes_refuses_invalid_ones_and_spares_in_flight_requests() {
    let up = Upstream::start().await;
    let v1 = format!(
        "pack:\n  name: reload\n  version: '1'\nproviders:\n  targets:\n{}{}",
        openai_target("first", &up, "ok"),
        openai_target("slow", &up, "slowbody")
    );
    let gw = Gateway::start(&v1);
    assert_eq!(chat(&gw, "first", &[]).await.0, 200);
    assert_eq!(chat(&gw, "second", &[]).await.0, 404);

    // A request in flight on the old config while the file changes.
    let in_flight = {
        let url = gw.url("/v1/chat/completions");
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(url)
                .json(&json!({"model": "slow", "messages": [{"role": "user", "content": "x"}]}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let v2 = format!(
        "pack:\n  name: reload\n  version: '2'\nproviders:\n  targets:\n{}{}",
        openai_target("first", &up, "ok"),
        openai_target("second", &up, "ok")
    );
    std::fs::write(gw.config_path(), &v2).unwrap();
    assert!(
        gw.wait_for_log("version=2", Duration::from_secs(5)),
        "the change was not applied:\n{}",
        gw.logs()
    );
    assert_eq!(chat(&gw, "second", &[]).await.0, 200);
    assert_eq!(
        in_flight.await.unwrap(),
        200,
        "the in-flight request finished on the old config"
    );
    assert_eq!(
        chat(&gw, "slow", &[]).await.0,
        404,
        "new requests see the new config"
    );

    // An invalid change is refused and the running config keeps serving.
    std::fs::write(
        gw.config_path(),
        v2.replace("provider: openai:org/second", "provder: openai:org/second"),
    )
    .unwrap();
    assert!(
        gw.wait_for_log("REFUSED", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    assert!(
        gw.logs().contains(
            "providers.targets[1].provder: unknown key 'provder' (did you mean 'provider'?)"
        ),
        "{}",
        gw.logs()
    );
    assert_eq!(chat(&gw, "second", &[]).await.0, 200);
    std::fs::write(gw.config_path(), "pack: [broken").unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(chat(&gw, "first", &[]).await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn client_keys_give_roles_and_the_router_routes_by_role() {
    let up = Upstream::start().await;
    let dev_key = "sk-dev-key-123";
    let dev_hash = sluice_e2e::sha256_hex(dev_key.as_bytes());
    let pack = format!(
        "providers:\n  targets:\n{}{}policies:\n  chain: [router]\n  policy:\n    router:\n      rules:\n        - when_role: production\n          target: big\n        - default:\n            target: small\nclients:\n  keys:\n    - id: prod-app\n      role: production\n      key_ref: {{env: SLUICE_E2E_PROD_KEY}}\n    - id: dev-laptop\n      role: developer\n      key_sha256: {dev_hash}\n",
        openai_target("small", &up, "ok"),
        openai_target("big", &up, "ok")
    );
    let gw = Gateway::start_with(
        &pack,
        GatewayOptions {
            env: vec![("SLUICE_E2E_PROD_KEY", "sk-prod-key-456".into())],
            ..Default::default()
        },
    );
    let (status, v) = chat(&gw, "small", &[("authorization", "Bearer sk-prod-key-456")]).await;
    assert_eq!(status, 200);
    assert_eq!(
        v["model"], "org/big",
        "production is routed to the big target"
    );
    assert_eq!(up.last_request().body["model"], "org/big");
    let (_, v) = chat(
        &gw,
        "small",
        &[
            ("authorization", &format!("Bearer {dev_key}")),
            ("x-sluice-role", "production"),
        ],
    )
    .await;
    assert_eq!(
        v["model"], "org/small",
        "the role header is ignored unless trust_role_header is on"
    );
    let (status, v) = chat(&gw, "small", &[("authorization", "Bearer wrong")]).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (401, Some("invalid_api_key"))
    );
    let (status, _) = chat(&gw, "small", &[]).await;
    assert_eq!(status, 401);
    // Callers are authenticated before their body is read.
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .body("{ not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(
        !gw.logs().contains("sk-prod-key-456"),
        "client keys never reach the logs"
    );

    std::fs::write(
        gw.config_path(),
        pack.replace("clients:\n", "clients:\n  trust_role_header: true\n"),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (_, v) = chat(
        &gw,
        "small",
        &[
            ("authorization", &format!("Bearer {dev_key}")),
            ("x-sluice-role", "production"),
        ],
    )
    .await;
    assert_eq!(
        v["model"], "org/big",
        "with trust_role_header the header's role routes"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disabled_pack_serves_nothing() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&format!(
        "pack:\n  name: off\n  enabled: false\nproviders:\n  targets:\n{}",
        openai_target("a", &up, "ok")
    ));
    let (status, v) = chat(&gw, "a", &[]).await;
    assert_eq!(status, 503);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("disabled"),
        "{v}"
    );
    assert_eq!(reqwest::get(gw.url("/readyz")).await.unwrap().status(), 503);
    assert!(up.requests().is_empty());
}
