//! The control plane's gRPC port authenticates gateways: no snapshot and no
//! audit record without a gateway token (or, under mutual TLS, a client
//! certificate naming the gateway; see tls.rs), and a credential speaks only
//! for the gateway id it was issued for. Real control plane, Postgres and
//! gateway processes; raw gRPC clients play the attacker.

use std::time::Duration;

use serde_json::{Value, json};
use sluice_e2e::control::{ControlPlane, Database, with_token};
use sluice_e2e::upstream::Upstream;
use sluice_e2e::{Gateway, GatewayOptions, tempdir::TempDir};
use sluice_proto::wire::audit_service_client::AuditServiceClient;
use sluice_proto::wire::config_service_client::ConfigServiceClient;
use sluice_proto::wire::{AuditBatch, GatewayMessage, Hello, control_message, gateway_message};
use tokio_stream::StreamExt;
use tonic::Code;

fn hello(id: &str) -> tokio_stream::Iter<std::vec::IntoIter<GatewayMessage>> {
    tokio_stream::iter(vec![GatewayMessage {
        msg: Some(gateway_message::Msg::Hello(Hello {
            gateway_id: id.into(),
            labels: [("env".to_string(), "test".to_string())].into(),
            ..Hello::default()
        })),
    }])
}

/// Opens a config stream as `id`, with `token` if given: `Ok("snapshot")`
/// once a snapshot arrives (a `NoDeployment` sent before the control plane
/// has seen the activation is skipped), or the error code.
async fn sync_as(cp: &ControlPlane, id: &str, token: Option<&str>) -> Result<&'static str, Code> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut client = ConfigServiceClient::connect(cp.grpc_url()).await.unwrap();
        let request = match token {
            Some(t) => with_token(t, hello(id)),
            None => tonic::Request::new(hello(id)),
        };
        let mut stream = client
            .sync(request)
            .await
            .map_err(|s| s.code())?
            .into_inner();
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(m))) => match m.msg {
                Some(control_message::Msg::Snapshot(_)) => return Ok("snapshot"),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            },
            Ok(Some(Err(s))) => return Err(s.code()),
            Ok(None) => return Err(Code::Cancelled),
            Err(_) => panic!("no snapshot on the config stream within 10 s"),
        }
    }
}

fn batch(gateway_id: &str) -> AuditBatch {
    AuditBatch {
        gateway_id: gateway_id.into(),
        records: vec![
            json!({"request_id": format!("forged-{gateway_id}"), "time": "2026-12-03T10:00:00Z",
                   "endpoint": "chat.completions", "model": "m", "status": 200})
            .to_string(),
        ],
    }
}

async fn activate_a_pack(cp: &ControlPlane, up: &Upstream) {
    let pack = format!(
        "pack:\n  name: secret-pack\nproviders:\n  targets:\n    - id: chat\n      provider: openai:org/m\n      base_url: {}/v1\n",
        up.base("ok")
    );
    let api = cp.admin();
    let (status, v) = api.post_yaml("/v1/packs", &pack).await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = api
        .post("/v1/packs/secret-pack/activate", json!({"version": 1}))
        .await;
    assert_eq!(status, 200, "{v}");
}

#[tokio::test]
async fn the_grpc_port_serves_only_gateways_with_their_own_credential() {
    let db = Database::create().await;
    let cp = ControlPlane::start(&db);
    let up = Upstream::start().await;
    activate_a_pack(&cp, &up).await;

    // No credential, or a made-up one: no snapshot, no fleet entry.
    assert_eq!(sync_as(&cp, "gw-a", None).await, Err(Code::Unauthenticated));
    assert_eq!(
        sync_as(&cp, "gw-a", Some("sgw-made-up")).await,
        Err(Code::Unauthenticated)
    );
    let token_a = cp.issue_gateway_token("gw-a").await;
    assert!(
        token_a.starts_with("sgw-") && token_a.len() > 60,
        "{token_a}"
    );
    // gw-a's token cannot claim another gateway's id.
    assert_eq!(
        sync_as(&cp, "gw-b", Some(&token_a)).await,
        Err(Code::PermissionDenied)
    );
    assert_eq!(sync_as(&cp, "gw-a", Some(&token_a)).await, Ok("snapshot"));

    // Audit: nothing written without a credential or into another chain.
    let mut audit = AuditServiceClient::connect(cp.grpc_url()).await.unwrap();
    let code = |r: Result<tonic::Response<_>, tonic::Status>| r.err().map(|s| s.code());
    assert_eq!(
        code(audit.ingest(batch("gw-a")).await),
        Some(Code::Unauthenticated)
    );
    assert_eq!(
        code(audit.ingest(with_token(&token_a, batch("gw-b"))).await),
        Some(Code::PermissionDenied)
    );
    let ack = audit
        .ingest(with_token(&token_a, batch("gw-a")))
        .await
        .expect("a gateway writes its own chain")
        .into_inner();
    assert_eq!(ack.stored, 1);
    let (_, v) = cp.admin().get("/v1/audit/verify").await;
    let chains: Vec<&str> = v["chains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["chain"].as_str().unwrap())
        .collect();
    assert_eq!(chains, vec!["gw-a"], "{v}");

    // Fleet status holds only the authenticated gateway.
    assert_eq!(cp.admin().fleet_ids().await, vec!["gw-a"]);

    // A group token (the pods of a Deployment) covers ids with its prefix.
    let pool = cp.issue_gateway_token("sluice-gateway-*").await;
    assert_eq!(
        sync_as(&cp, "sluice-gateway-5d8c-x7k2q", Some(&pool)).await,
        Ok("snapshot")
    );
    assert_eq!(
        sync_as(&cp, "gw-a", Some(&pool)).await,
        Err(Code::PermissionDenied)
    );

    // The token is shown once: listings carry only its prefix.
    let (status, list) = cp.admin().get("/v1/gateways/gw-a/tokens").await;
    assert_eq!(status, 200);
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["data"][0]["token_prefix"], json!(&token_a[..12]));
    assert!(!list.to_string().contains(&token_a));
    assert!(
        !cp.process.logs().contains(&token_a[4..]),
        "a gateway token reached the control plane's log"
    );
}

#[tokio::test]
async fn only_admins_issue_tokens_and_a_revoked_token_stops_working() {
    let db = Database::create().await;
    let cp = ControlPlane::start(&db);
    let up = Upstream::start().await;
    activate_a_pack(&cp, &up).await;

    let (status, op) = cp
        .admin()
        .post("/v1/operators", json!({"name": "ed", "role": "editor"}))
        .await;
    assert_eq!(status, 201, "{op}");
    let editor = cp.api(op["token"].as_str().unwrap());
    let (status, v) = editor.post("/v1/gateways/gw-r/tokens", Value::Null).await;
    assert_eq!(status, 403, "{v}");
    let (status, v) = cp
        .admin()
        .post("/v1/gateways/not%20an%20id/tokens", Value::Null)
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(v.to_string().contains("--gateway-id"), "{v}");

    // A real gateway with its token gets the pack and serves.
    let cache = TempDir::new();
    let gw = Gateway::start_managed(
        &cp.grpc_url(),
        "gw-r",
        "env=test",
        cache.path(),
        cp.gateway_options("gw-r", cache.path()).await,
    );
    cp.admin()
        .wait_gateway("gw-r", "applied", |g| g["last_result"] == "ack")
        .await;
    let token = std::fs::read_to_string(cache.path().join("gateway.token")).unwrap();
    assert!(
        !gw.logs().contains(&token[4..]),
        "the token reached the gateway's log"
    );

    // Revoke it: new streams are refused at once, the open one ends at
    // its next heartbeat, and the gateway keeps serving what it has.
    let (_, list) = cp.admin().get("/v1/gateways/gw-r/tokens").await;
    let id = list["data"][0]["id"].as_i64().unwrap();
    let (status, v) = cp
        .admin()
        .call("DELETE", &format!("/v1/gateways/gw-r/tokens/{id}"), None)
        .await;
    assert_eq!(status, 200, "{v}");
    assert!(
        v["revoked_at"].is_string() && v["revoked_by"] == "bootstrap-admin",
        "{v}"
    );
    assert_eq!(
        sync_as(&cp, "gw-r", Some(&token)).await,
        Err(Code::Unauthenticated)
    );
    assert!(
        cp.process
            .wait_for_log("gateway token revoked", Duration::from_secs(25)),
        "{}",
        cp.process.logs()
    );
    assert!(
        gw.wait_for_log("config stream failed", Duration::from_secs(10)),
        "{}",
        gw.logs()
    );
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .json(&json!({"model": "org/m", "messages": [{"role": "user", "content": "Still there?"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "the last good config keeps serving");
    let (_, history) = cp.admin().get("/v1/history").await;
    let actions: Vec<&str> = history["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"gateway_token.create") && actions.contains(&"gateway_token.revoke"),
        "{actions:?}"
    );
}

#[tokio::test]
async fn a_gateway_without_a_token_is_refused_unless_the_operator_allows_it() {
    let db = Database::create().await;
    let up = Upstream::start().await;

    let cp = ControlPlane::start(&db);
    activate_a_pack(&cp, &up).await;
    let cache = TempDir::new();
    let gw = Gateway::start_managed(
        &cp.grpc_url(),
        "gw-anon",
        "env=test",
        cache.path(),
        GatewayOptions::default(),
    );
    assert!(
        gw.wait_for_log("requires gateways to authenticate", Duration::from_secs(10)),
        "{}",
        gw.logs()
    );
    assert_eq!(reqwest::get(gw.url("/readyz")).await.unwrap().status(), 503);
    drop(gw);
    drop(cp);

    // Development mode: an explicit, logged opt-in.
    let cp = ControlPlane::start_with_env(
        &db,
        &[("SLUICE_ALLOW_UNAUTHENTICATED_GATEWAYS", "true".into())],
    );
    assert!(
        cp.process
            .wait_for_log("--allow-unauthenticated-gateways", Duration::from_secs(5)),
        "{}",
        cp.process.logs()
    );
    assert_eq!(sync_as(&cp, "gw-anon", None).await, Ok("snapshot"));
}
