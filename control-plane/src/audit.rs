//! Audit ingestion, retention and verification.
//!
//! Gateways send batches of their audit records (`AuditService.Ingest`).
//! A batch is sealed into the sending gateway's hash chain and committed in
//! one transaction, and only then acknowledged: the gateway deletes nothing
//! it has not seen acknowledged, so delivery is at least once, and a resent
//! record (same `record_id`, which the gateway mints; never the client's
//! request id) is ignored, so storage is exactly once.

use serde_json::{Map, Value};
use sluice_proto::audit_chain::{self, GENESIS, Shipped};
use sluice_proto::wire::audit_service_server::AuditService;
use sluice_proto::wire::{AuditAck, AuditBatch};
use sqlx::{PgPool, Postgres, Transaction};
use time::OffsetDateTime;
use tonic::{Request, Response, Status};

/// Largest batch accepted; gateways send at most 256 records per batch.
const MAX_BATCH: usize = 1000;

pub struct Ingest {
    pub pool: PgPool,
    pub auth: std::sync::Arc<crate::gateway_auth::GatewayAuth>,
}

fn parse(i: usize, text: &str) -> Result<Shipped, Status> {
    Shipped::parse(text).map_err(|why| Status::invalid_argument(format!("records[{i}]: {why}")))
}

/// The strongest outcome among the record's policy decisions.
fn outcome(record: &Map<String, Value>) -> Option<String> {
    let rank = |o: &str| match o {
        "block" => 4,
        "redact" => 3,
        "monitor" => 2,
        "pass" => 1,
        _ => 0,
    };
    record
        .get("decisions")?
        .as_array()?
        .iter()
        .filter_map(|d| d.get("outcome")?.as_str())
        .max_by_key(|o| rank(o))
        .map(str::to_string)
}

fn text(record: &Map<String, Value>, k: &str) -> Option<String> {
    record.get(k).and_then(Value::as_str).map(str::to_string)
}

#[tonic::async_trait]
impl AuditService for Ingest {
    async fn ingest(&self, request: Request<AuditBatch>) -> Result<Response<AuditAck>, Status> {
        let caller = self.auth.authenticate(&request).await?;
        let batch = request.into_inner();
        let chain = batch.gateway_id.trim().to_string();
        if chain.is_empty() || chain.len() > 128 {
            return Err(Status::invalid_argument(
                "gateway_id must be 1–128 characters",
            ));
        }
        // A gateway writes only into its own chain.
        caller.may_act_as(&chain)?;
        if batch.records.len() > MAX_BATCH {
            return Err(Status::invalid_argument(format!(
                "at most {MAX_BATCH} records per batch"
            )));
        }
        let records = batch
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| parse(i, r))
            .collect::<Result<Vec<_>, _>>()?;
        let count = |result, n: u32| {
            crate::metrics::get()
                .audit_records
                .get_or_create(&crate::metrics::ResultLabels { result })
                .inc_by(u64::from(n));
        };
        let ack = store(&self.pool, &chain, records).await.map_err(|e| {
            tracing::error!(gateway_id = %chain, error = %e, "audit batch not stored");
            count("refused", batch.records.len() as u32);
            Status::unavailable("the audit batch could not be stored; resend it")
        })?;
        count("stored", ack.stored);
        count("duplicate", ack.duplicates);
        Ok(Response::new(ack))
    }
}

async fn store(pool: &PgPool, chain: &str, records: Vec<Shipped>) -> Result<AuditAck, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO audit_chain_heads (chain) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(chain)
        .execute(&mut *tx)
        .await?;
    let (mut seq, mut prev): (i64, String) =
        sqlx::query_as("SELECT seq, hash FROM audit_chain_heads WHERE chain = $1 FOR UPDATE")
            .bind(chain)
            .fetch_one(&mut *tx)
            .await?;
    let mut ack = AuditAck::default();
    for r in records {
        match insert(&mut tx, chain, seq + 1, &prev, r).await? {
            Some(hash) => {
                prev = hash;
                seq += 1;
                ack.stored += 1;
            }
            None => ack.duplicates += 1,
        }
    }
    sqlx::query("UPDATE audit_chain_heads SET seq = $2, hash = $3 WHERE chain = $1")
        .bind(chain)
        .bind(seq)
        .bind(&prev)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(ack)
}

/// Seals and inserts one record; `None` if it is a duplicate.
async fn insert(
    tx: &mut Transaction<'_, Postgres>,
    chain: &str,
    seq: i64,
    prev: &str,
    mut r: Shipped,
) -> Result<Option<String>, sqlx::Error> {
    let day = r.time.date();
    sqlx::query("SELECT sluice_audit_partition($1)")
        .bind(day)
        .execute(&mut **tx)
        .await?;
    let hash = audit_chain::seal(&mut r.record, seq as u64, prev);
    let record = Value::Object(r.record);
    let mut body = Vec::with_capacity(512);
    audit_chain::canonical(&record, &mut body);
    let Value::Object(map) = &record else {
        unreachable!("built as an object")
    };
    let inserted = sqlx::query(
        "INSERT INTO audit_records (day, request_id, chain, seq, time, key_id, role, target, model,
             status, outcome, prev_hash, hash, body, record, record_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
         ON CONFLICT (day, chain, record_id) DO NOTHING",
    )
    .bind(day)
    .bind(&r.request_id)
    .bind(chain)
    .bind(seq)
    .bind(r.time)
    .bind(text(map, "key_id"))
    .bind(text(map, "role"))
    .bind(text(map, "target"))
    .bind(text(map, "model"))
    .bind(map.get("status").and_then(Value::as_i64).map(|s| s as i32))
    .bind(outcome(map))
    .bind(prev)
    .bind(&hash)
    .bind(String::from_utf8_lossy(&body).into_owned())
    .bind(&record)
    .bind(&r.record_id)
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1;
    Ok(inserted.then_some(hash))
}

/// Drops the day partitions older than `days` days, first recording, per
/// chain, the last link they held so the chain still verifies.
pub async fn enforce_retention(pool: &PgPool, days: u32) -> Result<usize, sqlx::Error> {
    let cutoff = OffsetDateTime::now_utc().date() - time::Duration::days(i64::from(days));
    let parts: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'audit_records'::regclass ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    let mut dropped = 0;
    for part in parts {
        let Some(day) = part.strip_prefix("audit_records_").and_then(|d| {
            time::Date::parse(d, time::macros::format_description!("[year][month][day]")).ok()
        }) else {
            continue;
        };
        if day >= cutoff {
            continue;
        }
        let mut tx = pool.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO audit_anchors (chain, seq, hash)
             SELECT DISTINCT ON (chain) chain, seq, hash FROM {part} ORDER BY chain, seq DESC
             ON CONFLICT (chain) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash
             WHERE audit_anchors.seq < EXCLUDED.seq"
        ))
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!("DROP TABLE {part}"))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(partition = %part, "audit retention dropped a day");
        dropped += 1;
    }
    Ok(dropped)
}

/// The result of walking one chain.
#[derive(Debug, serde::Serialize)]
pub struct ChainReport {
    pub chain: String,
    pub records: u64,
    pub ok: bool,
    /// The first broken link: its seq and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Walks every chain (or one) in seq order: each record's hash must match
/// its content, link to the previous hash, and seqs must have no gaps.
pub async fn verify(pool: &PgPool, only: Option<&str>) -> Result<Vec<ChainReport>, sqlx::Error> {
    let chains: Vec<(String, i64)> = sqlx::query_as(
        "SELECT chain, seq FROM audit_chain_heads WHERE $1::text IS NULL OR chain = $1 ORDER BY chain",
    )
    .bind(only)
    .fetch_all(pool)
    .await?;
    let mut reports = Vec::new();
    for (chain, head_seq) in chains {
        let anchor: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit_anchors WHERE chain = $1")
                .bind(&chain)
                .fetch_optional(pool)
                .await?;
        let (mut seq, mut prev) = anchor.unwrap_or((0, GENESIS.to_string()));
        let mut report = ChainReport {
            chain: chain.clone(),
            records: 0,
            ok: true,
            broken_at: None,
            reason: None,
        };
        let mut rows = sqlx::query_as::<_, (i64, String)>(
            "SELECT seq, body FROM audit_records WHERE chain = $1 AND seq > $2 ORDER BY seq",
        )
        .bind(&chain)
        .bind(seq)
        .fetch(pool);
        use futures::TryStreamExt;
        while let Some((row_seq, body)) = rows.try_next().await? {
            let problem = match audit_chain::check(&body) {
                Err(e) => Some(e),
                Ok(link) if link.seq as i64 != row_seq => {
                    Some("the seq column disagrees with the sealed record".into())
                }
                Ok(_) if row_seq != seq + 1 => Some(format!(
                    "records {} to {} are missing",
                    seq + 1,
                    row_seq - 1
                )),
                Ok(link) if link.prev_hash != prev => {
                    Some("prev_hash does not match the previous record's hash".into())
                }
                Ok(link) => {
                    prev = link.hash;
                    None
                }
            };
            if let Some(reason) = problem {
                report.ok = false;
                report.broken_at = Some(row_seq);
                report.reason = Some(reason);
                break;
            }
            seq = row_seq;
            report.records += 1;
        }
        if report.ok && seq != head_seq {
            report.ok = false;
            report.broken_at = Some(seq + 1);
            report.reason = Some(format!(
                "the chain head is at {head_seq} but the records end at {seq}"
            ));
        }
        reports.push(report);
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_need_an_id_and_a_time_and_lose_the_gateways_chain_fields() {
        let ok = parse(0, r#"{"request_id":"r","time":"2026-11-24T10:00:00Z","seq":9,"hash":"x","prev_hash":"y","decisions":[{"outcome":"pass"},{"outcome":"redact"}]}"#).unwrap();
        assert!(!ok.record.contains_key("seq") && !ok.record.contains_key("hash"));
        assert_eq!(outcome(&ok.record).as_deref(), Some("redact"));
        let e = parse(3, r#"{"time":"2026-11-24T10:00:00Z"}"#).unwrap_err();
        assert!(e.message().contains("records[3]") && e.message().contains("request_id"));
        assert!(parse(0, r#"{"request_id":"r","time":"yesterday"}"#).is_err());
        assert!(parse(0, "[1]").is_err());
    }
}
