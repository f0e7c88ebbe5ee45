//! TLS with certificates generated at test time: the gateway's HTTPS
//! listener (and a certificate rotated under it), and mutual TLS between
//! gateway and control plane (a wrong client certificate is refused).

use std::time::{Duration, Instant};

use serde_json::json;
use sluice_e2e::control::{ControlPlane, Database};
use sluice_e2e::pki::Ca;
use sluice_e2e::tempdir::TempDir;
use sluice_e2e::upstream::Upstream;
use sluice_e2e::{Gateway, GatewayOptions};

fn client_trusting(ca_pem: &std::path::Path) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca_pem).unwrap()).unwrap();
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .build()
        .unwrap()
}

const PACK: &str = "providers:\n  targets:\n    - id: t\n      provider: openai:m\n      base_url: http://127.0.0.1:9/v1\n";

#[tokio::test]
async fn the_gateway_serves_https_and_picks_up_a_rotated_certificate() {
    let dir = TempDir::new();
    let (old_ca, new_ca) = (Ca::new("old-ca"), Ca::new("new-ca"));
    let (old_pem, new_pem) = (old_ca.write(dir.path()), new_ca.write(dir.path()));
    let server = old_ca.issue(dir.path(), "gateway", false);
    let gw = Gateway::start_with(
        PACK,
        GatewayOptions {
            env: vec![
                ("SLUICE_TLS_CERT", server.cert.display().to_string()),
                ("SLUICE_TLS_KEY", server.key.display().to_string()),
            ],
            ..GatewayOptions::default()
        },
    );
    let url = format!("https://127.0.0.1:{}/healthz", gw.port);
    let old_client = client_trusting(&old_pem);
    assert_eq!(old_client.get(&url).send().await.unwrap().status(), 200);
    assert!(
        client_trusting(&new_pem).get(&url).send().await.is_err(),
        "not yet signed by the new CA"
    );
    assert!(
        reqwest::get(gw.url("/healthz")).await.is_err(),
        "plain HTTP is not served"
    );

    // Rotate: the same file names now hold a certificate from the new CA.
    let rotated = new_ca.issue(dir.path(), "rotated", false);
    std::fs::copy(&rotated.key, &server.key).unwrap();
    std::fs::copy(&rotated.cert, &server.cert).unwrap();
    assert!(
        gw.wait_for_log("TLS certificate reloaded", Duration::from_secs(10)),
        "{}",
        gw.logs()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // Fresh clients: new connections get the new certificate.
        if client_trusting(&new_pem)
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rotated certificate was never served:\n{}",
            gw.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(client_trusting(&old_pem).get(&url).send().await.is_err());

    // A broken file is refused and the running certificate keeps serving.
    std::fs::write(&server.cert, "not a certificate").unwrap();
    assert!(
        gw.wait_for_log("NOT reloaded", Duration::from_secs(10)),
        "{}",
        gw.logs()
    );
    assert_eq!(
        client_trusting(&new_pem)
            .get(&url)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn gateway_and_control_plane_use_mutual_tls_and_refuse_a_wrong_client_certificate() {
    let dir = TempDir::new();
    let (ca, rogue) = (Ca::new("fleet-ca"), Ca::new("rogue-ca"));
    let ca_pem = ca.write(dir.path());
    let server = ca.issue(dir.path(), "control-plane", false);
    let db = Database::create().await;
    let cp = ControlPlane::start_with_env(
        &db,
        &[
            ("SLUICE_GRPC_TLS_CERT", server.cert.display().to_string()),
            ("SLUICE_GRPC_TLS_KEY", server.key.display().to_string()),
            ("SLUICE_GRPC_CLIENT_CA", ca_pem.display().to_string()),
        ],
    );
    let url = format!("https://127.0.0.1:{}", cp.grpc_port);
    let gateway = |id: &str, client: Option<&sluice_e2e::pki::Issued>, cache: &TempDir| {
        let mut env = vec![("SLUICE_CONTROL_PLANE_CA", ca_pem.display().to_string())];
        if let Some(c) = client {
            env.push(("SLUICE_CONTROL_PLANE_CERT", c.cert.display().to_string()));
            env.push(("SLUICE_CONTROL_PLANE_KEY", c.key.display().to_string()));
        }
        Gateway::start_managed(
            &url,
            id,
            "env=test",
            cache.path(),
            GatewayOptions {
                env,
                ..GatewayOptions::default()
            },
        )
    };
    let (c1, c2, c3) = (TempDir::new(), TempDir::new(), TempDir::new());
    let good_cert = ca.issue(dir.path(), "gw-good", true);
    let rogue_cert = rogue.issue(dir.path(), "gw-rogue", true);
    let good = gateway("gw-good", Some(&good_cert), &c1);
    let bad = gateway("gw-rogue", Some(&rogue_cert), &c2);
    let anonymous = gateway("gw-anonymous", None, &c3);
    // A certificate from the fleet CA speaks only for the gateway it names.
    let c4 = TempDir::new();
    let impostor = gateway("gw-impostor", Some(&good_cert), &c4);

    let up = Upstream::start().await;
    let pack = format!(
        "pack:\n  name: tls-pack\nproviders:\n  targets:\n    - id: chat\n      provider: openai:org/m\n      base_url: {}/v1\n",
        up.base("ok")
    );
    let api = cp.admin();
    let (status, v) = api.post_yaml("/v1/packs", &pack).await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = api
        .post("/v1/packs/tls-pack/activate", json!({"version": 1}))
        .await;
    assert_eq!(status, 200, "{v}");
    api.wait_gateway("gw-good", "applied over mutual TLS", |g| {
        g["applied_version"] == "tls-pack@1" && g["last_result"] == "ack"
    })
    .await;
    let resp = reqwest::Client::new()
        .post(good.url("/v1/chat/completions"))
        .json(
            &json!({"model": "org/m", "messages": [{"role": "user", "content": "Hello over TLS"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    for gw in [&bad, &anonymous] {
        assert!(
            gw.wait_for_log("config stream failed", Duration::from_secs(10)),
            "{}",
            gw.logs()
        );
    }
    assert!(
        impostor.wait_for_log(
            "the client certificate does not name gateway 'gw-impostor'",
            Duration::from_secs(10)
        ),
        "{}",
        impostor.logs()
    );
    assert!(
        cp.process
            .wait_for_log("TLS handshake refused", Duration::from_secs(5)),
        "{}",
        cp.process.logs()
    );
    assert_eq!(
        api.fleet_ids().await,
        vec!["gw-good"],
        "only the gateway with a certificate from the fleet CA, naming it, got in"
    );
    assert_eq!(
        reqwest::get(bad.url("/readyz")).await.unwrap().status(),
        503
    );
}
