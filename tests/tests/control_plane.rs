//! The control plane with real processes: `sluice-control-plane` on a fresh
//! Postgres database per test, `sluice-gateway` in control-plane mode, a
//! real HTTP upstream. Packs go in through the operator API; what gateways
//! do is checked through fleet status and through their traffic.

use std::time::Duration;

use serde_json::{Value, json};
use sluice_e2e::control::{ControlPlane, Database};
use sluice_e2e::upstream::Upstream;
use sluice_e2e::{Gateway, tempdir::TempDir};

fn pack(version_note: &str, model: &str, up: &Upstream, extra: &str) -> String {
    format!(
        "pack:\n  name: team-pack\n  version: \"{version_note}\"\n\
         providers:\n  targets:\n    - id: chat\n      provider: openai:org/{model}\n      base_url: {}/v1\n{extra}",
        up.base("ok")
    )
}

async fn chat(gw: &Gateway, model: &str, key: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "What is the capital of France?"}]}));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

async fn readyz(gw: &Gateway) -> u16 {
    reqwest::get(gw.url("/readyz"))
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Creates and activates the pack for every gateway; returns the version.
async fn publish(cp: &ControlPlane, body: &str, create: bool) -> i64 {
    let api = cp.admin();
    let (status, v) = if create {
        api.post_yaml("/v1/packs", body).await
    } else {
        api.post_yaml("/v1/packs/team-pack/versions", body).await
    };
    assert!(status == 201, "{status}: {v}");
    let version = v["version"].as_i64().unwrap();
    let (status, v) = api
        .post(
            "/v1/packs/team-pack/activate",
            json!({"version": version, "selector": "env=test"}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    version
}

async fn applied(cp: &ControlPlane, gw_id: &str, version: &str) -> Value {
    let want = version.to_string();
    cp.admin()
        .wait_gateway(gw_id, &format!("applied {version}"), move |g| {
            g["applied_version"] == want.as_str() && g["last_result"] == "ack"
        })
        .await
}

#[tokio::test]
async fn a_pack_created_through_the_api_reaches_the_gateway_and_its_traffic() {
    let db = Database::create().await;
    let cp = ControlPlane::start(&db);
    let up = Upstream::start().await;
    let cache = TempDir::new();
    let gw = Gateway::start_managed(
        &cp.grpc_url(),
        "gw-1",
        "env=test,region=eu",
        cache.path(),
        cp.gateway_options("gw-1", cache.path()).await,
    );

    // Connected, but nothing is deployed for it yet: not ready, 503.
    cp.admin()
        .wait_gateway("gw-1", "connected", |g| g["connected"] == true)
        .await;
    assert_eq!(readyz(&gw).await, 503);
    let (status, body) = chat(&gw, "org/m1", None).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("control plane"),
        "{body}"
    );

    let v1 = publish(&cp, &pack("first", "m1", &up, ""), true).await;
    assert_eq!(v1, 1);
    let g = applied(&cp, "gw-1", "team-pack@1").await;
    assert_eq!(g["labels"], json!({"env": "test", "region": "eu"}));
    assert_eq!(readyz(&gw).await, 200);
    assert_eq!(chat(&gw, "org/m1", None).await.0, 200);

    // A client key makes the gateway require keys; the key's role reaches it.
    let (status, key) = cp
        .admin()
        .post(
            "/v1/keys",
            json!({"id": "app-1", "owner": "team-a", "role": "analyst"}),
        )
        .await;
    assert_eq!(status, 201, "{key}");
    let secret = key["key"].as_str().unwrap().to_string();
    assert!(secret.starts_with("sk-sluice-"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while chat(&gw, "org/m1", None).await.0 != 401 {
        assert!(
            std::time::Instant::now() < deadline,
            "the key never reached the gateway"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(chat(&gw, "org/m1", Some(&secret)).await.0, 200);
    assert_eq!(chat(&gw, "org/m1", Some("sk-sluice-wrong")).await.0, 401);
    // Listed without the key; disabling it takes effect on the gateway.
    let (_, keys) = cp.admin().get("/v1/keys").await;
    assert!(!keys.to_string().contains(&secret), "{keys}");
    let (status, _) = cp
        .admin()
        .call(
            "PATCH",
            "/v1/keys/app-1",
            Some(sluice_e2e::control::Body::Json(json!({"enabled": false}))),
        )
        .await;
    assert_eq!(status, 200);
    while chat(&gw, "org/m1", Some(&secret)).await.0 != 401 {
        assert!(
            std::time::Instant::now() < deadline,
            "disabling the key never reached the gateway"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Version 2 serves another model; the diff shows the change.
    let v2 = publish(&cp, &pack("second", "m2", &up, ""), false).await;
    assert_eq!(v2, 2);
    let key2 = cp
        .admin()
        .post(
            "/v1/keys",
            json!({"id": "app-2", "owner": "team-a", "role": "analyst"}),
        )
        .await
        .1;
    let secret2 = key2["key"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let g = cp
            .admin()
            .wait_gateway("gw-1", "ack", |g| g["last_result"] == "ack")
            .await;
        if g["applied_version"] == "team-pack@2"
            && chat(&gw, "org/m2", Some(&secret2)).await.0 == 200
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "version 2 never served: {g}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(chat(&gw, "org/m1", Some(&secret2)).await.0, 404);
    let api = cp.admin();
    let (_, latest) = api.get("/v1/packs/team-pack").await;
    assert_eq!(latest["version"], 2);
    assert!(latest["body"].as_str().unwrap().contains("org/m2"));
    assert_eq!(
        latest["parsed"]["providers"]["targets"][0]["provider"],
        "openai:org/m2"
    );
    let (_, versions) = api.get("/v1/packs/team-pack/versions").await;
    assert_eq!(versions["data"].as_array().unwrap().len(), 2, "{versions}");
    // Sending the latest body again creates nothing.
    let (status, same) = api
        .post_yaml(
            "/v1/packs/team-pack/versions",
            &pack("second", "m2", &up, ""),
        )
        .await;
    assert_eq!(
        (status, &same["created"], &same["version"]),
        (200, &json!(false), &json!(2))
    );
    let (_, targets) = api.get("/v1/targets").await;
    assert_eq!(targets["data"][0]["provider"], "openai:org/m2", "{targets}");
    let (_, deployments) = api.get("/v1/deployments").await;
    assert_eq!(
        deployments["data"][0]["selector"], "env=test",
        "{deployments}"
    );
    let (status, diff) = cp.admin().get("/v1/packs/team-pack/diff?from=1&to=2").await;
    assert_eq!(status, 200);
    let d = diff["diff"].as_str().unwrap();
    assert!(
        d.contains("-      provider: openai:org/m1")
            && d.contains("+      provider: openai:org/m2"),
        "{d}"
    );

    // Rollback is one call and brings version 1 back.
    let (status, rb) = cp
        .admin()
        .post(
            "/v1/deployments/rollback",
            json!({"selector": " env = test "}),
        )
        .await;
    assert_eq!(status, 200, "{rb}");
    assert_eq!(rb["version"], 1);
    applied(&cp, "gw-1", "team-pack@1").await;
    assert_eq!(chat(&gw, "org/m1", Some(&secret2)).await.0, 200);

    // Versions are immutable, even to a direct UPDATE.
    let mut conn = db.connect().await;
    let err = sqlx::query("UPDATE pack_versions SET body = 'x'")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");

    // Every write is in the history, without key material.
    let (_, history) = cp.admin().get("/v1/history").await;
    let actions: Vec<&str> = history["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["action"].as_str().unwrap())
        .collect();
    for a in [
        "pack.create",
        "pack.version",
        "deployment.activate",
        "deployment.rollback",
        "key.create",
        "key.update",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    assert!(!history.to_string().contains(&secret) && !history.to_string().contains(&secret2));
    assert!(!cp.process.logs().contains(&secret) && !gw.logs().contains(&secret));

    let metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", cp.http_port))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "sluice_cp_gateways_connected 1",
        "sluice_cp_snapshot_results_total{result=\"ack\"}",
        "sluice_cp_api_responses_total{method=\"POST\",status=\"201\"}",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    assert!(!metrics.contains("gw-1") && !metrics.contains(&secret));
}

#[tokio::test]
async fn an_invalid_pack_is_refused_with_every_error_and_its_position() {
    let db = Database::create().await;
    let cp = ControlPlane::start(&db);
    let bad = "pack:\n  name: broken\npolicies:\n  chain: [prompt-injection]\n  policy:\n    prompt-injection:\n      treshold: 0.5\nproviders:\n  targets:\n    - id: t\n      provider: openai:m\n";
    let (status, v) = cp.admin().post_yaml("/v1/packs", bad).await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["error"]["code"], "invalid_pack");
    let errors = v["error"]["errors"].as_array().unwrap();
    assert!(errors.len() >= 2, "{v}");
    let typo = errors
        .iter()
        .find(|e| e["path"].as_str().unwrap().ends_with("treshold"))
        .expect("the typo is reported");
    assert_eq!(typo["line"], 7);
    assert!(
        typo["message"].as_str().unwrap().contains("threshold"),
        "did-you-mean: {typo}"
    );
    // JSON bodies go through the same validation.
    let (status, v) = cp.admin().post("/v1/packs", json!({"pack": {"name": "j"}, "providers": {"targets": [{"id": "t", "provider": "openai:m"}]}})).await;
    assert_eq!(status, 422, "{v}");
    assert!(v.to_string().contains("base_url"), "{v}");
    // Nothing was stored.
    let (_, packs) = cp.admin().get("/v1/packs").await;
    assert_eq!(packs["data"], json!([]));
}

#[tokio::test]
async fn a_snapshot_the_gateway_cannot_compile_is_nacked_and_the_old_config_keeps_serving() {
    let db = Database::create().await;
    let cp = ControlPlane::start(&db);
    let up = Upstream::start().await;
    let cache = TempDir::new();
    let gw = Gateway::start_managed(
        &cp.grpc_url(),
        "gw-nack",
        "env=test",
        cache.path(),
        cp.gateway_options("gw-nack", cache.path()).await,
    );
    publish(&cp, &pack("good", "m1", &up, ""), true).await;
    applied(&cp, "gw-nack", "team-pack@1").await;

    // Valid for the control plane, but this gateway cannot open the audit
    // directory (its parent is a file).
    let file = cache.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let audit = format!(
        "policies:\n  chain: [audit-logger]\n  policy:\n    audit-logger:\n      path: {}/audit\n",
        file.display()
    );
    publish(&cp, &pack("bad", "m2", &up, &audit), false).await;
    let g = cp
        .admin()
        .wait_gateway("gw-nack", "nack", |g| g["last_result"] == "nack")
        .await;
    assert_eq!(g["applied_version"], "team-pack@1", "{g}");
    assert!(
        g["last_error"].as_str().unwrap().contains("team-pack@2")
            && g["last_error"].as_str().unwrap().contains("audit"),
        "{g}"
    );
    assert_eq!(chat(&gw, "org/m1", None).await.0, 200);
    assert_eq!(chat(&gw, "org/m2", None).await.0, 404);
}

/// An editor's pack cannot read the gateway's own settings, send a secret
/// to a host of its choosing or write audit files outside the operator's
/// root: the gateway refuses the version whole and says why.
#[tokio::test]
async fn a_pack_asking_for_what_the_gateway_operator_did_not_allow_is_refused() {
    let db = Database::create().await;
    let cp = ControlPlane::start(&db);
    let up = Upstream::start().await;
    let cache = TempDir::new();
    let mut opts = cp.gateway_options("gw-allow", cache.path()).await;
    opts.default_allow_lists = true;
    let secret = "s3cr3t-database-password-7f1c";
    opts.env
        .push(("SLUICE_TEST_DATABASE_PASSWORD", secret.to_string()));
    let gw = Gateway::start_managed(&cp.grpc_url(), "gw-allow", "env=test", cache.path(), opts);
    publish(&cp, &pack("good", "m1", &up, ""), true).await;
    applied(&cp, "gw-allow", "team-pack@1").await;

    let audit = cache.path().join("audit");
    let bad = format!(
        "pack:\n  name: team-pack\n  version: bad\n\
         policies:\n  chain: [audit-logger]\n  policy:\n    audit-logger:\n      path: {}\n\
         providers:\n  targets:\n    - id: chat\n      provider: openai:org/m2\n      base_url: {}/v1\n      secret_key_ref:\n        env: SLUICE_TEST_DATABASE_PASSWORD\n",
        audit.display(),
        up.base("ok")
    );
    publish(&cp, &bad, false).await;
    let g = cp
        .admin()
        .wait_gateway("gw-allow", "nack", |g| g["last_result"] == "nack")
        .await;
    assert_eq!(g["applied_version"], "team-pack@1", "{g}");
    let why = g["last_error"].as_str().unwrap();
    assert!(why.contains("team-pack@2"), "{why}");
    assert!(
        why.contains("target 'chat': secret_key_ref.env")
            && why.contains("SLUICE_TEST_DATABASE_PASSWORD"),
        "{why}"
    );
    assert!(
        why.contains("base_url host '127.0.0.1'") && why.contains("--allowed-upstream-hosts"),
        "{why}"
    );
    assert!(
        why.contains("policies.policy.audit-logger.path") && why.contains("/var/lib/sluice/audit"),
        "{why}"
    );
    assert!(
        !why.contains(secret) && !gw.logs().contains(secret),
        "{why}"
    );
    assert!(
        !audit.exists(),
        "the refused version created its audit directory"
    );
    assert_eq!(chat(&gw, "org/m1", None).await.0, 200);
    assert_eq!(chat(&gw, "org/m2", None).await.0, 404);
}

#[tokio::test]
async fn gateways_keep_serving_without_the_control_plane_and_restart_from_their_cache() {
    let db = Database::create().await;
    let mut cp = ControlPlane::start(&db);
    let (http_port, grpc_port) = (cp.http_port, cp.grpc_port);
    let up = Upstream::start().await;
    let cache = TempDir::new();
    let mut gw = Gateway::start_managed(
        &cp.grpc_url(),
        "gw-c",
        "env=test",
        cache.path(),
        cp.gateway_options("gw-c", cache.path()).await,
    );
    publish(&cp, &pack("cached", "m1", &up, ""), true).await;
    applied(&cp, "gw-c", "team-pack@1").await;
    let grpc_url = cp.grpc_url();

    cp.process.kill();
    assert_eq!(
        chat(&gw, "org/m1", None).await.0,
        200,
        "serves with the control plane gone"
    );

    // Restart the gateway while the control plane is down: the cache serves.
    gw.process.kill();
    let gw = Gateway::start_managed(
        &grpc_url,
        "gw-c",
        "env=test",
        cache.path(),
        sluice_e2e::control::token_options(cache.path()),
    );
    assert!(
        gw.wait_for_log("serving the cached snapshot", Duration::from_secs(10)),
        "{}",
        gw.logs()
    );
    assert_eq!(readyz(&gw).await, 200);
    assert_eq!(chat(&gw, "org/m1", None).await.0, 200);

    // The control plane comes back on the same address: the gateway
    // reconnects on its own and reports what it runs.
    let cp = ControlPlane::start_on(&db, http_port, grpc_port);
    let g = cp
        .admin()
        .wait_gateway("gw-c", "reconnected", |g| {
            g["connected"] == true && g["applied_version"] == "team-pack@1"
        })
        .await;
    assert_eq!(g["labels"], json!({"env": "test"}));
}

#[tokio::test]
async fn operators_need_a_valid_token_and_a_sufficient_role() {
    let db = Database::create().await;
    let cp = ControlPlane::start(&db);
    let anon = cp.api("");
    assert_eq!(anon.get("/v1/packs").await.0, 401);
    assert_eq!(cp.api("sop-not-a-token").get("/v1/packs").await.0, 401);

    let (status, viewer) = cp
        .admin()
        .post("/v1/operators", json!({"name": "vera", "role": "viewer"}))
        .await;
    assert_eq!(status, 201, "{viewer}");
    let (_, editor) = cp
        .admin()
        .post("/v1/operators", json!({"name": "eddie", "role": "editor"}))
        .await;
    let viewer = cp.api(viewer["token"].as_str().unwrap());
    let editor = cp.api(editor["token"].as_str().unwrap());

    assert_eq!(viewer.get("/v1/packs").await.0, 200);
    let (status, v) = viewer.post_yaml("/v1/packs", "pack:\n  name: x\n").await;
    assert_eq!(status, 403, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("editor"),
        "{v}"
    );
    assert_eq!(
        viewer
            .post("/v1/keys", json!({"owner": "o", "role": "r"}))
            .await
            .0,
        403
    );
    assert_eq!(
        editor
            .post("/v1/keys", json!({"owner": "o", "role": "r"}))
            .await
            .0,
        201
    );
    assert_eq!(
        editor
            .post("/v1/operators", json!({"name": "mallory", "role": "admin"}))
            .await
            .0,
        403
    );
    assert_eq!(editor.get("/v1/operators").await.0, 403);

    // A disabled operator is locked out at once.
    let (status, _) = cp
        .admin()
        .call(
            "PATCH",
            "/v1/operators/eddie",
            Some(sluice_e2e::control::Body::Json(json!({"enabled": false}))),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(editor.get("/v1/packs").await.0, 401);

    // Tokens are stored hashed: the database never holds one.
    let mut conn = db.connect().await;
    let hashes: Vec<String> = sqlx::query_scalar("SELECT token_sha256 FROM operators")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(hashes.len(), 3);
    assert!(
        hashes
            .iter()
            .all(|h| h.len() == 64 && !h.starts_with("sop-"))
    );
    let (status, doc) = anon.get("/openapi.yaml").await;
    assert_eq!(status, 200);
    assert!(doc.as_str().unwrap().contains("/v1/packs/{name}/activate"));
}

async fn audit_records(cp: &ControlPlane, want: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, v) = cp.admin().get("/v1/audit?limit=1000").await;
        assert_eq!(status, 200, "{v}");
        let data = v["data"].as_array().unwrap().clone();
        if data.len() >= want {
            assert_eq!(data.len(), want, "more records than requests: {v}");
            return data;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {want} audit records arrived",
            data.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_client_reusing_a_request_id_cannot_hide_requests_from_the_central_audit() {
    let db = Database::create().await;
    let cp = ControlPlane::start(&db);
    let up = Upstream::start().await;
    let cache = TempDir::new();
    let gw = Gateway::start_managed(
        &cp.grpc_url(),
        "gw-rid",
        "env=test",
        cache.path(),
        cp.gateway_options("gw-rid", cache.path()).await,
    );
    let audit = format!(
        "policies:\n  chain: [audit-logger]\n  policy:\n    audit-logger:\n      destination: api\n      path: {}/spool\n      immutable: true\n",
        cache.path().display()
    );
    publish(&cp, &pack("rid", "m1", &up, &audit), true).await;
    applied(&cp, "gw-rid", "team-pack@1").await;
    for text in ["first", "second", "third"] {
        let resp = reqwest::Client::new()
            .post(gw.url("/v1/chat/completions"))
            .header("x-request-id", "the-same-id")
            .json(&json!({"model": "org/m1", "messages": [{"role": "user", "content": text}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-request-id"], "the-same-id");
    }
    let records = audit_records(&cp, 3).await;
    let mut ids: Vec<&str> = records
        .iter()
        .map(|r| {
            assert_eq!(r["record"]["request_id"], "the-same-id");
            r["record"]["record_id"].as_str().unwrap()
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3, "each record has its own id: {records:?}");
    let (_, v) = cp.admin().get("/v1/audit/verify").await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["chains"][0]["records"], 3, "{v}");
}

#[tokio::test]
async fn audit_records_reach_the_control_plane_once_across_outages_and_restarts() {
    let db = Database::create().await;
    let mut cp = ControlPlane::start(&db);
    let (http_port, grpc_port) = (cp.http_port, cp.grpc_port);
    let up = Upstream::start().await;
    let cache = TempDir::new();
    let grpc_url = cp.grpc_url();
    let mut gw = Gateway::start_managed(
        &grpc_url,
        "gw-audit",
        "env=test",
        cache.path(),
        cp.gateway_options("gw-audit", cache.path()).await,
    );
    let audit = format!(
        "policies:\n  chain: [pii-detector, audit-logger]\n  policy:\n    pii-detector:\n      action: redact\n    \
         audit-logger:\n      destination: api\n      path: {}/spool\n      immutable: true\n      include_request: true\n",
        cache.path().display()
    );
    let (_, key) = cp
        .admin()
        .post(
            "/v1/keys",
            json!({"id": "app", "owner": "team-a", "role": "analyst"}),
        )
        .await;
    let secret = key["key"].as_str().unwrap().to_string();
    publish(&cp, &pack("audited", "m1", &up, &audit), true).await;
    applied(&cp, "gw-audit", "team-pack@1").await;

    let send = |gw: &Gateway, text: &str| {
        let (url, secret, text) = (
            gw.url("/v1/chat/completions"),
            secret.clone(),
            text.to_string(),
        );
        async move {
            let resp = reqwest::Client::new()
                .post(url)
                .bearer_auth(secret)
                .json(&json!({"model": "org/m1", "messages": [{"role": "user", "content": text}]}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
        }
    };
    send(&gw, "Summarise the quarterly report.").await;
    send(&gw, "Mail the summary to jane.doe@example.com please.").await;
    send(&gw, "Thanks, that is all.").await;
    let records = audit_records(&cp, 3).await;
    for r in &records {
        assert_eq!(r["gateway"], "gw-audit");
        assert_eq!(r["record"]["key_id"], "app");
        assert_eq!(r["record"]["role"], "analyst");
    }
    let all = serde_json::to_string(&records).unwrap();
    assert!(!all.contains(&secret), "the client key is never recorded");
    assert!(
        !all.contains("jane.doe@example.com") && all.contains("<EMAIL_ADDRESS>"),
        "bodies are recorded as redacted: {all}"
    );
    let (_, redacted) = cp.admin().get("/v1/audit?outcome=redact").await;
    assert_eq!(redacted["data"].as_array().unwrap().len(), 1, "{redacted}");
    let (_, v) = cp.admin().get("/v1/audit/verify").await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["chains"][0]["records"], 3, "{v}");

    // Append-only, even for the table's owner and under replication roles.
    let mut conn = db.connect().await;
    for sql in [
        "UPDATE audit_records SET status = 500",
        "DELETE FROM audit_records",
        "TRUNCATE audit_records",
    ] {
        let err = sqlx::query(sql).execute(&mut conn).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut conn)
        .await
        .unwrap();
    let err = sqlx::query("DELETE FROM audit_records")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    sqlx::query("SET session_replication_role = origin")
        .execute(&mut conn)
        .await
        .unwrap();

    // Control plane down: records wait in the spool, across a gateway restart too.
    cp.process.kill();
    send(&gw, "First request during the outage.").await;
    send(&gw, "Second request during the outage.").await;
    gw.process.terminate();
    let gw = Gateway::start_managed(
        &grpc_url,
        "gw-audit",
        "env=test",
        cache.path(),
        sluice_e2e::control::token_options(cache.path()),
    );
    assert!(
        gw.wait_for_log("serving the cached snapshot", Duration::from_secs(10)),
        "{}",
        gw.logs()
    );
    send(&gw, "Third request, after the gateway restarted.").await;
    cp = ControlPlane::start_on(&db, http_port, grpc_port);
    let records = audit_records(&cp, 6).await;
    let mut ids: Vec<&str> = records
        .iter()
        .map(|r| r["record"]["request_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 6, "each request exactly once");
    let (_, v) = cp.admin().get("/v1/audit/verify?gateway=gw-audit").await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["chains"][0]["records"], 6, "{v}");

    // A superuser can switch the triggers off; the chain still shows it.
    let part: String = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit_records'::regclass LIMIT 1",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    sqlx::query(&format!("ALTER TABLE {part} DISABLE TRIGGER ALL"))
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(&format!(
        "UPDATE {part} SET body = replace(body, '\"status\":200', '\"status\":201') WHERE seq = 2"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let (_, v) = cp.admin().get("/v1/audit/verify").await;
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["chains"][0]["broken_at"], 2, "{v}");
    assert!(
        v["chains"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("altered"),
        "{v}"
    );
}

#[tokio::test]
async fn replicas_start_together_and_serve_one_fleet_consistently() {
    let db = Database::create().await;
    // Three replicas race to migrate and bootstrap the same fresh database.
    let replicas = ControlPlane::start_replicas(&db, 3);
    let up = Upstream::start().await;
    let (c1, c2) = (TempDir::new(), TempDir::new());
    let gw1 = Gateway::start_managed(
        &replicas[1].grpc_url(),
        "gw-r1",
        "env=test",
        c1.path(),
        replicas[1].gateway_options("gw-r1", c1.path()).await,
    );
    let gw2 = Gateway::start_managed(
        &replicas[2].grpc_url(),
        "gw-r2",
        "env=test",
        c2.path(),
        replicas[2].gateway_options("gw-r2", c2.path()).await,
    );
    let (_, operators) = replicas[0].admin().get("/v1/operators").await;
    assert_eq!(
        operators["data"].as_array().unwrap().len(),
        1,
        "one bootstrap admin: {operators}"
    );

    // A write through replica 0 reaches gateways streaming from 1 and 2.
    publish(&replicas[0], &pack("r", "m1", &up, ""), true).await;
    applied(&replicas[0], "gw-r1", "team-pack@1").await;
    applied(&replicas[2], "gw-r2", "team-pack@1").await;
    publish(&replicas[1], &pack("r2", "m2", &up, ""), false).await;
    for (gw, id) in [(&gw1, "gw-r1"), (&gw2, "gw-r2")] {
        applied(&replicas[0], id, "team-pack@2").await;
        assert_eq!(chat(gw, "org/m2", None).await.0, 200);
    }
}

#[tokio::test]
async fn retention_drops_old_days_and_the_chain_still_verifies() {
    use sluice_proto::wire::AuditBatch;
    use sluice_proto::wire::audit_service_client::AuditServiceClient;
    let db = Database::create().await;
    let mut cp = ControlPlane::start(&db);
    let mut client = AuditServiceClient::connect(cp.grpc_url()).await.unwrap();
    let token = cp.issue_gateway_token("gw-old").await;
    let record = |id: &str, time: &str| {
        json!({"request_id": id, "time": time, "endpoint": "chat.completions", "model": "m", "status": 200}).to_string()
    };
    let old = (std::time::SystemTime::now() - Duration::from_secs(10 * 86400))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let old_time = time_rfc3339(old);
    let now_time = time_rfc3339(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    );
    let batch = AuditBatch {
        gateway_id: "gw-old".into(),
        records: vec![
            record("r1", &old_time),
            record("r2", &old_time),
            record("r3", &now_time),
        ],
    };
    let ack = client
        .ingest(sluice_e2e::control::with_token(&token, batch.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((ack.stored, ack.duplicates), (3, 0));
    // A resend stores nothing.
    let ack = client
        .ingest(sluice_e2e::control::with_token(&token, batch))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((ack.stored, ack.duplicates), (0, 3));
    let (_, v) = cp.admin().get("/v1/audit/verify").await;
    assert_eq!(v["chains"][0]["records"], 3, "{v}");

    // Restart with a 3-day retention: the old day's partition goes.
    cp.process.kill();
    let cp = ControlPlane::start_with_env(&db, &[("SLUICE_AUDIT_RETENTION_DAYS", "3".into())]);
    assert!(
        cp.process
            .wait_for_log("audit retention dropped a day", Duration::from_secs(10)),
        "{}",
        cp.process.logs()
    );
    let (_, records) = cp.admin().get("/v1/audit").await;
    let ids: Vec<&str> = records["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["record"]["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["r3"]);
    let (_, v) = cp.admin().get("/v1/audit/verify").await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["chains"][0]["records"], 1, "{v}");
}

/// RFC 3339 (UTC) for a Unix time.
fn time_rfc3339(secs: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs as i64)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[test]
fn help_never_prints_the_database_password() {
    for sub in ["run", "migrate"] {
        let out = std::process::Command::new(sluice_e2e::binary("sluice-control-plane"))
            .args([sub, "--help"])
            .env(
                "DATABASE_URL",
                "postgres://sluice:hunter2-db-password@db:5432/sluice",
            )
            .output()
            .unwrap();
        assert!(out.status.success());
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("DATABASE_URL"), "{help}");
        assert!(
            !help.contains("hunter2"),
            "`{sub} --help` printed the password:\n{help}"
        );
    }
}

#[tokio::test]
async fn a_snapshot_over_4_mib_reaches_the_gateway() {
    let db = Database::create().await;
    let cp = ControlPlane::start(&db);
    let up = Upstream::start().await;
    // 60,000 client keys make a ~5.7 MB snapshot, over tonic's 4 MiB
    // default; inserted in one statement (the API would take minutes).
    let mut conn = db.connect().await;
    sqlx::query(
        "INSERT INTO client_keys (id, owner, role, key_sha256, key_prefix, created_by)
         SELECT 'bulk-' || g, 'load-test', 'analyst', encode(sha256(('sk-bulk-' || g)::bytea), 'hex'),
                'sk-bulk-', 'test'
         FROM generate_series(1, 60000) g",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let cache = TempDir::new();
    let gw = Gateway::start_managed(
        &cp.grpc_url(),
        "gw-big",
        "env=test",
        cache.path(),
        cp.gateway_options("gw-big", cache.path()).await,
    );
    publish(&cp, &pack("big", "m1", &up, ""), true).await;
    applied(&cp, "gw-big", "team-pack@1").await;
    assert_eq!(chat(&gw, "org/m1", Some("sk-bulk-59999")).await.0, 200);
    assert_eq!(chat(&gw, "org/m1", Some("sk-bulk-60001")).await.0, 401);
}

// Multi-threaded: the relay below must accept while the test thread blocks
// in `wait_listening`.
#[tokio::test(flavor = "multi_thread")]
async fn the_control_plane_waits_for_postgres_instead_of_exiting() {
    let db = Database::create().await;
    // The database's address, served by nothing yet.
    let port = sluice_e2e::free_port();
    let url = db
        .url
        .replacen("127.0.0.1:5432", &format!("127.0.0.1:{port}"), 1);
    assert_ne!(url, db.url, "the test database is on 127.0.0.1:5432");
    let (http, grpc) = (sluice_e2e::free_port(), sluice_e2e::free_port());
    let mut cp = ControlPlane::spawn_url(&url, http, grpc, &[]);
    assert!(
        cp.process.wait_for_log(
            "database unreachable; waiting for it",
            Duration::from_secs(10)
        ),
        "{}",
        cp.process.logs()
    );
    // Postgres "comes up" on that address: a TCP relay to the real one.
    let relay = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = relay.accept().await {
            tokio::spawn(async move {
                if let Ok(mut pg) = tokio::net::TcpStream::connect("127.0.0.1:5432").await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut pg).await;
                }
            });
        }
    });
    cp.process
        .wait_listening(http)
        .unwrap_or_else(|(code, logs)| panic!("control plane exited ({code:?}):\n{logs}"));
    let (status, v) = cp.admin().get("/v1/packs").await;
    assert_eq!(status, 200, "{v}");
}

/// Issue #16: the control plane `SIGKILL`ed while two gateways serve steady
/// traffic. No client request fails; a gateway restarted meanwhile serves
/// from its cache; once the control plane is back, a pack change reaches
/// both and is ACKed.
#[tokio::test(flavor = "multi_thread")]
async fn a_control_plane_crash_fails_no_client_request() {
    use sluice_e2e::{control::token_options, steady_traffic};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let db = Database::create().await;
    let mut cp = ControlPlane::start(&db);
    let (http_port, grpc_port) = (cp.http_port, cp.grpc_port);
    let grpc_url = cp.grpc_url();
    let up = Upstream::start().await;
    let caches = [TempDir::new(), TempDir::new()];
    let ids = ["gw-x", "gw-y"];
    let mut gws = Vec::new();
    for (id, cache) in ids.iter().zip(&caches) {
        let opts = cp.gateway_options(id, cache.path()).await;
        gws.push(Gateway::start_managed(
            &grpc_url,
            id,
            "env=test",
            cache.path(),
            opts,
        ));
    }
    publish(&cp, &pack("one", "m1", &up, ""), true).await;
    for id in ids {
        applied(&cp, id, "team-pack@1").await;
    }
    let traffic = |gws: &[Gateway], stop: &Arc<AtomicBool>| {
        gws.iter()
            .map(|gw| {
                tokio::spawn(steady_traffic(
                    gw.url("/v1/chat/completions"),
                    "org/m1",
                    None,
                    stop.clone(),
                ))
            })
            .collect::<Vec<_>>()
    };
    let finish = |handles: Vec<tokio::task::JoinHandle<(u64, Vec<String>)>>| async move {
        let mut total = 0;
        for h in handles {
            let (ok, failed) = h.await.unwrap();
            assert!(failed.is_empty(), "client requests failed: {failed:?}");
            total += ok;
        }
        total
    };

    // Steady traffic; the control plane is killed in the middle of it.
    let stop = Arc::new(AtomicBool::new(false));
    let running = traffic(&gws, &stop);
    tokio::time::sleep(Duration::from_millis(500)).await;
    cp.process.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let mut answered = finish(running).await;

    // One gateway restarts while the control plane is still down.
    gws[1].process.kill();
    gws[1] = Gateway::start_managed(
        &grpc_url,
        ids[1],
        "env=test",
        caches[1].path(),
        token_options(caches[1].path()),
    );
    assert!(
        gws[1].wait_for_log("serving the cached snapshot", Duration::from_secs(10)),
        "{}",
        gws[1].logs()
    );

    // Back: both reconnect, and a new version reaches both under traffic.
    let stop = Arc::new(AtomicBool::new(false));
    let running = traffic(&gws, &stop);
    cp = ControlPlane::start_on(&db, http_port, grpc_port);
    let back = std::time::Instant::now();
    publish(&cp, &pack("two", "m1", &up, ""), false).await;
    for id in ids {
        applied(&cp, id, "team-pack@2").await;
    }
    let recovered = back.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    answered += finish(running).await;
    assert!(answered > 100, "only {answered} requests ran");
    println!(
        "control plane SIGKILL: {answered} requests over two gateways, 0 failed; both ACKed the next version {recovered:?} after the control plane restarted"
    );
}
