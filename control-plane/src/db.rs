//! Postgres: connecting, the embedded migrations, the bootstrap admin, and
//! the helpers every write shares (secret hashing, the admin history).

use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

/// The SQL in `migrations/`, compiled in. sqlx takes a Postgres advisory
/// lock while it migrates, so replicas that start together apply each
/// migration once.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

pub async fn connect(url: &str) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect(url)
        .await
}

/// [`connect`], waiting while Postgres cannot be reached (still starting,
/// restarting, its Service not ready): the control plane comes up with its
/// database instead of crash-looping before it. Errors that waiting cannot
/// fix (credentials, a missing database) are returned at once.
pub async fn connect_waiting(url: &str) -> Result<PgPool, sqlx::Error> {
    use std::time::Duration;
    let mut backoff =
        sluice_proto::backoff::Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
    loop {
        match connect(url).await {
            // A TLS failure (a certificate that does not verify) arrives as
            // an I/O error of kind InvalidData: waiting cannot fix it.
            Err(sqlx::Error::Io(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(sqlx::Error::Io(e));
            }
            Err(e @ (sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut)) => {
                let pause = backoff.next_pause();
                tracing::warn!(
                    error = %e,
                    retry_in_ms = pause.as_millis() as u64,
                    "database unreachable; waiting for it"
                );
                tokio::time::sleep(pause).await;
            }
            other => return other,
        }
    }
}

pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

/// SHA-256 of a token or key, lowercase hex: what the database stores.
pub fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A new random secret with a recognisable prefix (`sk-sluice-…` for client
/// keys, `sop-…` for operator tokens), 256 bits of entropy.
pub fn new_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// Creates the first admin from `token` if no operator exists yet. Safe when
/// several replicas start at once: the insert is conditional in one
/// statement under an advisory lock. Returns whether it was created.
pub async fn bootstrap_admin(pool: &PgPool, token: &str) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(7262737)")
        .execute(&mut *tx)
        .await?;
    let created = sqlx::query(
        "INSERT INTO operators (name, role, token_sha256, created_by)
         SELECT 'bootstrap-admin', 'admin', $1, 'bootstrap'
         WHERE NOT EXISTS (SELECT 1 FROM operators)",
    )
    .bind(sha256_hex(token))
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if created {
        history(
            &mut tx,
            "bootstrap",
            "operator.create",
            "operator/bootstrap-admin",
            None,
            Some(serde_json::json!({"name": "bootstrap-admin", "role": "admin"})),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(created)
}

/// Records an operator write in the admin history, inside the write's own
/// transaction so that the two cannot disagree.
pub async fn history(
    tx: &mut Transaction<'_, Postgres>,
    actor: &str,
    action: &str,
    object: &str,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO admin_history (actor, action, object, before, after) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(actor)
    .bind(action)
    .bind(object)
    .bind(before)
    .bind(after)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// RFC 3339 text for a timestamp, the form every API answer uses.
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
