//! `destination: api`: ships the audit directory's records to the control
//! plane (`AuditService.Ingest`). The directory is the spool — the writer
//! appends as always, bounded by `max_disk_bytes` — and this task reads it
//! in order, sends batches, and only after the control plane has committed
//! a batch advances a cursor file (`ship-cursor.json`, replaced atomically)
//! and deletes days fully shipped. A crash or an unreachable control plane
//! means a resend, never a loss; the control plane ignores resent records.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_proto::audit_chain::Shipped;
use sluice_proto::backoff::Backoff;
use sluice_proto::wire::AuditBatch;
use sluice_proto::wire::audit_service_client::AuditServiceClient;
use tonic::transport::Channel;

use super::sink;
use crate::settings::{ControlPlaneLink, authorized, connect};

const CURSOR: &str = "ship-cursor.json";
/// Where records that cannot be shipped are kept (not an `audit-*.jsonl`
/// name, so neither the shipper nor retention touches it).
const QUARANTINE: &str = "quarantine.jsonl";
const BATCH_RECORDS: usize = 256;
const BATCH_BYTES: usize = 1 << 20;

/// Starts the shipper for `dir` unless one runs already (one per directory,
/// however many config versions use it).
pub fn ensure(dir: PathBuf, link: ControlPlaneLink) {
    static RUNNING: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
    let mut running = RUNNING
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if !running.insert(dir.clone()) {
        return;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(run(dir, link));
        }
        Err(_) => {
            running.remove(&dir);
            tracing::error!(dir = %dir.display(), "no async runtime to ship audit records from");
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Cursor {
    /// The file being shipped and how many of its bytes are acknowledged.
    file: String,
    offset: u64,
}

async fn run(dir: PathBuf, link: ControlPlaneLink) {
    let mut client = None;
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(15));
    loop {
        match ship_once(&dir, &link, &mut client).await {
            Ok(true) => backoff.reset(),
            Ok(false) => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), "audit records not shipped yet (kept on disk): {e}");
                client = None;
                tokio::time::sleep(backoff.next_pause()).await;
            }
        }
    }
}

/// Ships one batch if there is one. Ok(true): progress was made.
async fn ship_once(
    dir: &Path,
    link: &ControlPlaneLink,
    client: &mut Option<AuditServiceClient<Channel>>,
) -> Result<bool, String> {
    let files = sink::files(dir).map_err(|e| format!("listing {}: {e}", dir.display()))?;
    let cursor = read_cursor(dir);
    let name = |p: &PathBuf| {
        p.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string()
    };
    // Files before the cursor's are fully shipped; a cursor whose file is
    // gone (shipped and deleted) points before the next one.
    let Some((i, path)) = files
        .iter()
        .enumerate()
        .find(|(_, p)| name(p) >= cursor.file)
    else {
        return Ok(false);
    };
    let offset = if name(path) == cursor.file {
        cursor.offset
    } else {
        0
    };
    let (records, consumed) =
        read_batch(path, offset).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let records = set_aside_unshippable(dir, records)
        .map_err(|e| format!("writing {}: {e}", dir.join(QUARANTINE).display()))?;
    if records.is_empty() && consumed > 0 {
        // Only set-aside lines: move past them.
        advance(dir, name(path), offset + consumed)?;
        return Ok(true);
    }
    if records.is_empty() {
        if i + 1 < files.len() {
            // A newer day exists, so the writer is done with this file.
            std::fs::remove_file(path).map_err(|e| format!("removing {}: {e}", path.display()))?;
            advance(dir, name(&files[i + 1]), 0)?;
            return Ok(true);
        }
        return Ok(false);
    }
    if client.is_none() {
        let channel = connect(link).await?;
        *client = Some(
            AuditServiceClient::new(channel)
                .max_encoding_message_size(sluice_proto::wire::MAX_MESSAGE_BYTES),
        );
    }
    let n = records.len();
    let ack = client
        .as_mut()
        .expect("connected above")
        .ingest(authorized(
            link,
            AuditBatch {
                gateway_id: link.gateway_id.clone(),
                records,
            },
        )?)
        .await
        .map_err(|s| format!("control plane refused the batch: {}", s.message()))?
        .into_inner();
    advance(dir, name(path), offset + consumed)?;
    tracing::debug!(
        records = n,
        stored = ack.stored,
        duplicates = ack.duplicates,
        "audit batch shipped"
    );
    Ok(true)
}

/// Records the control plane would refuse (a line torn by a crash, an
/// oversized record) go to `quarantine.jsonl` in the spool, with the
/// reason, instead of blocking every later record; each is logged and
/// counted. They are kept, never deleted, for an operator to inspect.
fn set_aside_unshippable(dir: &Path, records: Vec<String>) -> std::io::Result<Vec<String>> {
    let mut keep = Vec::with_capacity(records.len());
    for text in records {
        match Shipped::parse(&text) {
            Ok(_) => keep.push(text),
            Err(why) => {
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join(QUARANTINE))?;
                let entry = serde_json::json!({"reason": why, "line": text});
                writeln!(f, "{entry}")?;
                f.sync_all()?;
                crate::metrics::get().audit_quarantined.inc();
                tracing::error!(dir = %dir.display(), reason = %why, "an audit record the control plane would refuse was set aside in {QUARANTINE}");
            }
        }
    }
    Ok(keep)
}

/// Up to a batch of whole lines from `offset`; a line still being written
/// (no newline yet) is left for next time.
fn read_batch(path: &Path, offset: u64) -> std::io::Result<(Vec<String>, u64)> {
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut reader = BufReader::new(f);
    let (mut records, mut consumed, mut bytes) = (Vec::new(), 0u64, 0usize);
    let mut line = String::new();
    while records.len() < BATCH_RECORDS && bytes < BATCH_BYTES {
        line.clear();
        let n = reader.read_line(&mut line)?;
        if n == 0 || !line.ends_with('\n') {
            break;
        }
        consumed += n as u64;
        bytes += n;
        let text = line.trim_end();
        if !text.is_empty() {
            records.push(text.to_string());
        }
    }
    Ok((records, consumed))
}

fn advance(dir: &Path, file: String, offset: u64) -> Result<(), String> {
    write_cursor(dir, &Cursor { file, offset }).map_err(|e| format!("writing the cursor: {e}"))
}

fn read_cursor(dir: &Path) -> Cursor {
    std::fs::read(dir.join(CURSOR))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn write_cursor(dir: &Path, cursor: &Cursor) -> std::io::Result<()> {
    let tmp = dir.join(format!("{CURSOR}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec(cursor)?)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, dir.join(CURSOR))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_stop_at_a_line_still_being_written() {
        let dir = std::env::temp_dir().join(format!("sluice-ship-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("audit-2026-11-24.jsonl");
        std::fs::write(&f, "{\"a\":1}\n{\"b\":2}\n{\"c\":").unwrap();
        let (records, consumed) = read_batch(&f, 0).unwrap();
        assert_eq!(records, vec!["{\"a\":1}", "{\"b\":2}"]);
        assert_eq!(consumed, 16);
        let (rest, n) = read_batch(&f, consumed).unwrap();
        assert!(rest.is_empty() && n == 0);
        let c = Cursor {
            file: "audit-2026-11-24.jsonl".into(),
            offset: consumed,
        };
        write_cursor(&dir, &c).unwrap();
        assert_eq!(read_cursor(&dir), c);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_torn_or_oversized_line_is_set_aside_and_the_rest_still_ships() {
        let dir = std::env::temp_dir().join(format!("sluice-ship-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = |id: &str| {
            serde_json::json!({"request_id": id, "record_id": format!("rec-{id}"),
                "time": "2026-12-04T10:00:00Z", "seq": 1, "prev_hash": "0", "hash": "0"})
            .to_string()
        };
        let huge = format!(
            "{{\"request_id\":\"x\",\"pad\":\"{}\"}}",
            "a".repeat(sluice_proto::audit_chain::MAX_SHIPPED_RECORD_BYTES)
        );
        let lines = vec![
            good("a"),
            "{\"request_id\":\"tor".to_string(),
            huge,
            good("b"),
        ];
        let kept = set_aside_unshippable(&dir, lines).unwrap();
        assert_eq!(kept, vec![good("a"), good("b")]);
        let quarantine = std::fs::read_to_string(dir.join(QUARANTINE)).unwrap();
        let entries: Vec<serde_json::Value> = quarantine
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(entries.len(), 2, "{quarantine}");
        assert_eq!(entries[0]["line"], "{\"request_id\":\"tor");
        assert!(
            entries[0]["reason"].as_str().unwrap().contains("JSON"),
            "{}",
            entries[0]["reason"]
        );
        assert!(
            entries[1]["reason"].as_str().unwrap().contains("bytes"),
            "{}",
            entries[1]["reason"]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
