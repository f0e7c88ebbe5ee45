//! Postgres restarted under the control plane (issue #16), played by a TCP
//! relay between the two that resets every connection and refuses new ones
//! for a few seconds (the machine's Postgres is shared by the other tests,
//! so it is not restarted for real). While it is down, operator writes are
//! refused with a specific 503, gateways keep serving from what they have;
//! once it is back the API answers within 5 s, no write acknowledged to an
//! operator is lost, and a pack change reaches the gateway again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_e2e::control::{ControlPlane, Database, admin_url};
use sluice_e2e::relay::Relay;
use sluice_e2e::upstream::Upstream;
use sluice_e2e::{Gateway, free_port, steady_traffic, tempdir::TempDir};

const OUTAGE: Duration = Duration::from_secs(4);

fn pack(note: &str, up: &Upstream) -> String {
    format!(
        "pack:\n  name: pg-pack\n  version: \"{note}\"\nproviders:\n  targets:\n    - id: chat\n      provider: openai:org/m1\n      base_url: {}/v1\n",
        up.base("ok")
    )
}

async fn publish(cp: &ControlPlane, body: &str, create: bool) -> i64 {
    let api = cp.admin();
    let (status, v) = if create {
        api.post_yaml("/v1/packs", body).await
    } else {
        api.post_yaml("/v1/packs/pg-pack/versions", body).await
    };
    assert_eq!(status, 201, "{v}");
    let version = v["version"].as_i64().unwrap();
    let (status, v) = api
        .post(
            "/v1/packs/pg-pack/activate",
            json!({"version": version, "selector": "env=test"}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    version
}

async fn create_key(cp: &ControlPlane, id: &str) -> (u16, Value) {
    cp.admin()
        .post(
            "/v1/keys",
            json!({"id": id, "owner": "team-a", "role": "analyst"}),
        )
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_restart_loses_no_acknowledged_write_and_does_not_disturb_gateways() {
    let db = Database::create().await;
    let admin = admin_url();
    // host:port of the server, between the credentials and the database.
    let server = admin
        .split_once('@')
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(hp, _)| hp.to_string())
        .expect("the test database URL names user@host:port/db");
    let relay = Relay::start(&server).await;
    let url = db
        .url
        .replacen(&server, &format!("127.0.0.1:{}", relay.port), 1);
    let (http, grpc) = (free_port(), free_port());
    let mut cp = ControlPlane::spawn_url(&url, http, grpc, &[]);
    cp.process
        .wait_listening(http)
        .unwrap_or_else(|(code, logs)| panic!("control plane exited ({code:?}):\n{logs}"));

    let up = Upstream::start().await;
    let cache = TempDir::new();
    let gw = Gateway::start_managed(
        &cp.grpc_url(),
        "gw-pg",
        "env=test",
        cache.path(),
        cp.gateway_options("gw-pg", cache.path()).await,
    );
    publish(&cp, &pack("one", &up), true).await;
    let (status, key) = create_key(&cp, "steady").await;
    assert_eq!(status, 201, "{key}");
    let secret = key["key"].as_str().unwrap().to_string();
    let mut acknowledged = vec!["steady".to_string()];
    // The gateway has the key (and with it, requires keys) once it answers.
    sluice_e2e::wait_serving(&gw, "org/m1", &secret).await;

    let stop = Arc::new(AtomicBool::new(false));
    let steady = tokio::spawn(steady_traffic(
        gw.url("/v1/chat/completions"),
        "org/m1",
        Some(secret.clone()),
        stop.clone(),
    ));
    for i in 0..3 {
        let id = format!("before-{i}");
        assert_eq!(create_key(&cp, &id).await.0, 201);
        acknowledged.push(id);
    }

    // Postgres goes away: every connection reset, new ones refused.
    relay.cut();
    let down = Instant::now();
    let refused = AtomicU64::new(0);
    let mut i = 0;
    while down.elapsed() < OUTAGE {
        i += 1;
        let id = format!("during-{i}");
        let (status, v) = create_key(&cp, &id).await;
        match status {
            201 => acknowledged.push(id),
            503 => {
                refused.fetch_add(1, Ordering::Relaxed);
                assert_eq!(v["error"]["code"], "database_unavailable", "{v}");
                assert!(
                    v["error"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("retry in a few seconds"),
                    "{v}"
                );
            }
            other => panic!("a write during the outage got {other}: {v}"),
        }
    }
    assert!(
        refused.load(Ordering::Relaxed) > 0,
        "no write was refused while the database was down"
    );

    // Back: the API answers within 5 s.
    relay.restore();
    let back = Instant::now();
    loop {
        let (status, v) = cp.admin().get("/v1/packs").await;
        if status == 200 {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "the API still answers {status} 5 s after Postgres is back: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered = back.elapsed();
    for i in 0..3 {
        let id = format!("after-{i}");
        let (status, v) = create_key(&cp, &id).await;
        assert_eq!(status, 201, "{v}");
        acknowledged.push(id);
    }

    // Every acknowledged write is there.
    let (status, v) = cp.admin().get("/v1/keys").await;
    assert_eq!(status, 200, "{v}");
    let stored: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["id"].as_str())
        .collect();
    for id in &acknowledged {
        assert!(
            stored.contains(&id.as_str()),
            "{id} was acknowledged and lost: {stored:?}"
        );
    }

    // A pack change reaches the gateway and is ACKed.
    let v2 = publish(&cp, &pack("two", &up), false).await;
    let want = format!("pg-pack@{v2}");
    cp.admin()
        .wait_gateway("gw-pg", "applied the new version", move |g| {
            g["applied_version"] == want.as_str() && g["last_result"] == "ack"
        })
        .await;

    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = steady.await.unwrap();
    assert!(failed.is_empty(), "client requests failed: {failed:?}");
    assert!(ok > 50, "only {ok} requests ran");
    eprintln!(
        "postgres restart: {ok} requests answered, 0 failed; {} writes acknowledged, {} refused with 503; API back {recovered:?} after Postgres",
        acknowledged.len(),
        refused.load(Ordering::Relaxed)
    );
}
