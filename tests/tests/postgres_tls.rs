//! The control plane on a Postgres that speaks TLS, as managed Postgres
//! services require: `sslmode` and `sslrootcert` in the database URL are
//! honoured, the server's certificate is checked, and a certificate the
//! operator did not trust stops the control plane with a clear error.
//!
//! The server is the machine's own Postgres: Debian enables `ssl = on` with
//! its self-signed "snakeoil" certificate for `localhost`, which serves as
//! its own root here. `SLUICE_TEST_PG_TLS_ROOT` names another root (and
//! `SLUICE_TEST_PG_TLS_HOST` another host name) for a differently set-up
//! server.

use std::time::Duration;

use sluice_e2e::control::{ControlPlane, Database};
use sluice_e2e::{free_port, pki::Ca, tempdir::TempDir};

fn root_cert() -> String {
    std::env::var("SLUICE_TEST_PG_TLS_ROOT")
        .unwrap_or_else(|_| "/etc/ssl/certs/ssl-cert-snakeoil.pem".into())
}

/// `db`'s URL on the certificate's host name, with TLS settings.
fn tls_url(db: &Database, query: &str) -> String {
    let host = std::env::var("SLUICE_TEST_PG_TLS_HOST").unwrap_or_else(|_| "localhost".into());
    let url = db.url.replacen("127.0.0.1", &host, 1);
    format!("{url}?{query}")
}

async fn server_has_tls(db: &Database) {
    let mut conn = db.connect().await;
    let ssl: String = sqlx::query_scalar("SHOW ssl")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        ssl, "on",
        "this test needs a Postgres with TLS on (Debian's default, `ssl = on` with the snakeoil certificate)"
    );
    assert!(
        std::path::Path::new(&root_cert()).exists(),
        "the server's root certificate {} is missing (set SLUICE_TEST_PG_TLS_ROOT)",
        root_cert()
    );
}

#[tokio::test]
async fn the_control_plane_connects_over_verified_tls() {
    let db = Database::create().await;
    server_has_tls(&db).await;
    let url = tls_url(
        &db,
        &format!("sslmode=verify-full&sslrootcert={}", root_cert()),
    );
    let mut cp = ControlPlane::spawn_url(&url, free_port(), free_port(), &[]);
    let port = cp.http_port;
    cp.process
        .wait_listening(port)
        .unwrap_or_else(|(code, logs)| panic!("control plane exited ({code:?}):\n{logs}"));
    // A write and a read through the API: the pool is in use.
    let (status, v) = cp
        .admin()
        .post_yaml(
            "/v1/packs",
            "pack:\n  name: tls-pack\nproviders:\n  targets:\n    - id: chat\n      provider: openai:org/m\n      base_url: http://127.0.0.1:9/v1\n",
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = cp.admin().get("/v1/packs").await;
    assert_eq!(status, 200, "{v}");

    // Every connection the control plane holds to its database is
    // encrypted (the test's own connection goes to another database).
    let mut conn: sqlx::PgConnection = sqlx::Connection::connect(&sluice_e2e::control::admin_url())
        .await
        .unwrap();
    let (tls, plain): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl)
         FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
         WHERE a.datname = $1 AND a.pid <> pg_backend_pid()",
    )
    .bind(&db.name)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(tls >= 1, "no TLS connection from the control plane");
    assert_eq!(plain, 0, "plain-text connections to {}", db.name);
}

#[tokio::test]
async fn a_server_certificate_from_an_untrusted_root_stops_the_control_plane() {
    let db = Database::create().await;
    server_has_tls(&db).await;
    let dir = TempDir::new();
    let other = Ca::new("not-the-postgres-ca").write(dir.path());
    let url = tls_url(
        &db,
        &format!("sslmode=verify-full&sslrootcert={}", other.display()),
    );
    let mut cp = ControlPlane::spawn_url(&url, free_port(), free_port(), &[]);
    // Waiting cannot fix a certificate: it exits at once, naming the cause.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(code) = cp.process.try_exit_code() {
            break code;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running: {}",
            cp.process.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_ne!(code, 0);
    let logs = cp.process.logs();
    assert!(logs.contains("connecting to the database"), "{logs}");
    assert!(
        logs.to_lowercase().contains("certificate") || logs.contains("UnknownIssuer"),
        "{logs}"
    );
    assert!(!logs.contains("database unreachable; waiting"), "{logs}");
}

#[tokio::test]
async fn sslmode_disable_still_works_for_a_local_database() {
    let db = Database::create().await;
    let url = format!("{}?sslmode=disable", db.url);
    let mut cp = ControlPlane::spawn_url(&url, free_port(), free_port(), &[]);
    let port = cp.http_port;
    cp.process
        .wait_listening(port)
        .unwrap_or_else(|(code, logs)| panic!("control plane exited ({code:?}):\n{logs}"));
    let (status, v) = cp.admin().get("/v1/packs").await;
    assert_eq!(status, 200, "{v}");
}
