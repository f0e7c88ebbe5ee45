//! Audit records survive the gateway being killed (issue #16): an answer
//! leaves the gateway only once its record is in the audit file, so after
//! `SIGKILL`s in the middle of steady traffic every request a client saw
//! answered has exactly one record, the hash chain still verifies across
//! the restarts, and a one-byte change to any record is reported with its
//! file and line. The same holds with `destination: api`: the records
//! reach the control plane's Postgres chain once each.

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use sluice_e2e::upstream::Upstream;
use sluice_e2e::{Gateway, GatewayOptions, binary, sse_events};

const KEY: &str = "sk-crash-0001";
const ROUNDS: u64 = 4;

fn pack(up: &Upstream, audit: &str) -> String {
    format!(
        "pack:\n  name: crash\npolicies:\n  chain: [prompt-injection, pii-detector, audit-logger]\n  policy:\n    audit-logger:\n      destination: file\n      path: {audit}\n      immutable: true\n      log_all_access: true\n      include_request: true\n      include_response: true\nproviders:\n  targets:\n    - id: ok\n      provider: openai:org/ok\n      base_url: {}/v1\nclients:\n  keys:\n    - id: app\n      role: developer\n      key_sha256: {}\n",
        up.base("ok"),
        sluice_e2e::sha256_hex(KEY.as_bytes())
    )
}

/// One client: whole and streamed requests in turn until `stop`; the ids
/// of the requests it saw answered in full (a whole body, `[DONE]`, or a
/// whole refusal).
async fn client(
    url: String,
    key: String,
    n: usize,
    stop: Arc<AtomicBool>,
    answered: Arc<Mutex<Vec<String>>>,
) {
    let http = reqwest::Client::new();
    // Long texts make long records, so the writer is still busy when the
    // kill comes: an answer that did not wait for its record would show.
    let filler = "The quarterly figures are in line with the plan for the region. ".repeat(400);
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let stream = i.is_multiple_of(2);
        let sent = http
            .post(&url)
            .bearer_auth(&key)
            .json(&json!({"model": "org/ok", "stream": stream, "messages": [{"role": "user", "content": format!("client {n} request {i}: write to jane.doe@example.com. {filler}")}]}))
            .send()
            .await;
        let Ok(resp) = sent else { continue };
        let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
        // A refusal (the chain blocks some of these texts) is an answer too.
        let complete = if resp.status() != 200 {
            resp.bytes().await.is_ok()
        } else if stream {
            sse_events(resp).await.last().is_some_and(|e| e == "[DONE]")
        } else {
            resp.json::<serde_json::Value>()
                .await
                .is_ok_and(|v| v["choices"][0]["message"]["content"].is_string())
        };
        if complete {
            answered.lock().unwrap().push(id);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_answered_request_has_exactly_one_record_across_sigkills() {
    let up = Upstream::start().await;
    let dir = sluice_e2e::tempdir::TempDir::new();
    let audit = dir.path().join("audit");
    let pack = pack(&up, audit.to_str().unwrap());
    let answered = Arc::new(Mutex::new(Vec::new()));

    for round in 0..ROUNDS {
        let mut gw = Gateway::start_with(&pack, GatewayOptions::default());
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..16)
            .map(|n| {
                tokio::spawn(client(
                    gw.url("/v1/chat/completions"),
                    KEY.to_string(),
                    n,
                    stop.clone(),
                    answered.clone(),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(800 + 200 * round)).await;
        gw.process.kill(); // SIGKILL, mid-load
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.await.unwrap();
        }
    }
    // A last start recovers the log (cutting any torn line), then a clean
    // stop drains it.
    let mut gw = Gateway::start_with(&pack, GatewayOptions::default());
    gw.process.terminate();

    let answered = answered.lock().unwrap().clone();
    assert!(
        answered.len() >= 100,
        "only {} requests answered: too little load to prove anything",
        answered.len()
    );
    let records = sluice_e2e::audit_records(&audit);
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for r in &records {
        *per_id
            .entry(r["request_id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let missing: Vec<_> = answered
        .iter()
        .filter(|id| !per_id.contains_key(*id))
        .collect();
    let doubled: Vec<_> = per_id.iter().filter(|(_, n)| **n > 1).collect();
    println!(
        "{} answered requests over {ROUNDS} SIGKILLs; {} records; {} missing; {} doubled",
        answered.len(),
        records.len(),
        missing.len(),
        doubled.len()
    );
    assert!(missing.is_empty(), "answered without a record: {missing:?}");
    assert!(doubled.is_empty(), "records written twice: {doubled:?}");

    let verify = |what: &str| {
        let out = Command::new(binary("sluice-gateway"))
            .args(["audit", "verify"])
            .arg(&audit)
            .output()
            .unwrap();
        (
            out.status.code(),
            format!(
                "{what}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (code, out) = verify("after the kills");
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("{} record(s)", records.len())),
        "{out}"
    );

    // One byte changed in a record in the middle of the log: verify names
    // its file and line.
    let file = std::fs::read_dir(&audit)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let lines: Vec<usize> = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i)
        .collect();
    let line = lines.len() / 2; // 0-based: the record after this newline
    let record = lines[line - 1] + 1..lines[line];
    let at = bytes[record.clone()]
        .windows(9)
        .position(|w| w == b"\"status\":")
        .expect("every record has a status")
        + record.start
        + 9;
    bytes[at] = if bytes[at] == b'2' { b'3' } else { b'2' };
    std::fs::write(&file, &bytes).unwrap();
    println!("changed record {} of {}", line + 1, lines.len());
    let (code, out) = verify("after the change");
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!("{}:{}: BROKEN", file.display(), line + 1)),
        "{out}"
    );
}

/// Each id in `answered` once in `ids`: (missing, doubled).
fn compare(answered: &[String], ids: &[String]) -> (Vec<String>, Vec<String>) {
    let mut per_id: HashMap<&str, usize> = HashMap::new();
    for id in ids {
        *per_id.entry(id).or_default() += 1;
    }
    let missing = answered
        .iter()
        .filter(|id| !per_id.contains_key(id.as_str()))
        .cloned()
        .collect();
    let doubled = per_id
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| id.to_string())
        .collect();
    (missing, doubled)
}

#[tokio::test(flavor = "multi_thread")]
async fn shipped_records_reach_the_control_plane_once_across_gateway_sigkills() {
    use sluice_e2e::control::{ControlPlane, Database, token_options};
    let db = Database::create().await;
    let cp = ControlPlane::start(&db);
    let up = Upstream::start().await;
    let cache = sluice_e2e::tempdir::TempDir::new();
    let start =
        |opts| Gateway::start_managed(&cp.grpc_url(), "gw-kill", "env=test", cache.path(), opts);
    let mut gw = start(cp.gateway_options("gw-kill", cache.path()).await);
    let (status, key) = cp
        .admin()
        .post(
            "/v1/keys",
            json!({"id": "app", "owner": "team-a", "role": "analyst"}),
        )
        .await;
    assert_eq!(status, 201, "{key}");
    let secret = key["key"].as_str().unwrap().to_string();
    let pack = format!(
        "pack:\n  name: kill-pack\npolicies:\n  chain: [pii-detector, audit-logger]\n  policy:\n    pii-detector:\n      action: redact\n    audit-logger:\n      destination: api\n      path: {}/spool\n      immutable: true\n      include_request: true\nproviders:\n  targets:\n    - id: ok\n      provider: openai:org/ok\n      base_url: {}/v1\n",
        cache.path().display(),
        up.base("ok")
    );
    let (status, v) = cp.admin().post_yaml("/v1/packs", &pack).await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = cp
        .admin()
        .post(
            "/v1/packs/kill-pack/activate",
            json!({"version": 1, "selector": "env=test"}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    cp.admin()
        .wait_gateway("gw-kill", "applied kill-pack@1", |g| {
            g["applied_version"] == "kill-pack@1" && g["last_result"] == "ack"
        })
        .await;

    let answered = Arc::new(Mutex::new(Vec::new()));
    for round in 0..3u64 {
        if round > 0 {
            gw = start(token_options(cache.path()));
        }
        // The key must be known before the clients start (a 401 is an
        // answer too, but not one this test is about).
        sluice_e2e::wait_serving(&gw, "org/ok", &secret).await;
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..8)
            .map(|n| {
                tokio::spawn(client(
                    gw.url("/v1/chat/completions"),
                    secret.clone(),
                    n,
                    stop.clone(),
                    answered.clone(),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(700 + 200 * round)).await;
        gw.process.kill(); // SIGKILL, mid-load and mid-shipping
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.await.unwrap();
        }
    }
    // A last start ships what the spool still holds.
    let _gw = start(token_options(cache.path()));
    let answered = answered.lock().unwrap().clone();
    assert!(
        answered.len() >= 50,
        "only {} requests answered",
        answered.len()
    );

    let mut conn = db.connect().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let ids = loop {
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT request_id FROM audit_records WHERE chain = 'gw-kill'")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        let (missing, _) = compare(&answered, &ids);
        if missing.is_empty() {
            break ids;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} answered requests have no record at the control plane after 30 s: {missing:?}",
            missing.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (_, doubled) = compare(&answered, &ids);
    println!(
        "destination api: {} answered requests over 3 SIGKILLs; {} records at the control plane; 0 missing; {} doubled",
        answered.len(),
        ids.len(),
        doubled.len()
    );
    assert!(doubled.is_empty(), "records stored twice: {doubled:?}");
    let (status, v) = cp.admin().get("/v1/audit/verify?gateway=gw-kill").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["ok"], true, "{v}");

    // One byte changed in a stored record (by someone able to bypass the
    // table's append-only triggers): verify names its position.
    let middle: i64 = sqlx::query_scalar(
        "SELECT seq FROM audit_records WHERE chain = 'gw-kill' ORDER BY seq OFFSET (SELECT count(*) / 2 FROM audit_records WHERE chain = 'gw-kill') LIMIT 1",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    for sql in [
        "ALTER TABLE audit_records DISABLE TRIGGER USER".to_string(),
        format!(
            "UPDATE audit_records SET body = replace(body, '\"status\":200', '\"status\":201') WHERE chain = 'gw-kill' AND seq = {middle}"
        ),
        "ALTER TABLE audit_records ENABLE TRIGGER USER".to_string(),
    ] {
        sqlx::query(&sql).execute(&mut conn).await.unwrap();
    }
    let (_, v) = cp.admin().get("/v1/audit/verify?gateway=gw-kill").await;
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["chains"][0]["broken_at"], middle, "{v}");
}
