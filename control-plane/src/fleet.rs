//! What each gateway should run. [`FleetState`] is every deployment
//! rendered as a ready-to-send snapshot; it is loaded from Postgres once
//! per change and shared (through a watch channel) by every config stream,
//! so a change costs a few queries however large the fleet.
//!
//! Wake-ups come from Postgres LISTEN/NOTIFY (`sluice_config`, raised by
//! triggers on deployments and client keys) and from a periodic poll, the
//! backstop for notifications lost while a replica was disconnected. Bursts
//! are debounced into one reload. Every replica computes the same state from
//! the same rows, so replicas serve the fleet consistently.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sluice_proto::wire::{self, ClientKey, Snapshot};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::watch;

/// A gateway group: labels a gateway must all carry. Canonical text form
/// `k=v,k2=v2` (sorted); the empty selector matches every gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector(BTreeMap<String, String>, String);

impl Selector {
    pub fn parse(text: &str) -> Result<Selector, String> {
        let labels =
            sluice_proto::labels::parse(text).map_err(|e| format!("selector '{text}': {e}"))?;
        let canonical = labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        Ok(Selector(labels, canonical))
    }

    pub fn as_str(&self) -> &str {
        &self.1
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// Every deployment's snapshot, most specific selector first.
#[derive(Debug, Default)]
pub struct FleetState {
    deployments: Vec<(Selector, Arc<Snapshot>)>,
    /// Digest of the whole state, to skip publishing unchanged reloads.
    digest: String,
}

impl FleetState {
    fn new(mut deployments: Vec<(Selector, Arc<Snapshot>)>) -> Self {
        deployments.sort_by(|(a, _), (b, _)| b.0.len().cmp(&a.0.len()).then_with(|| a.1.cmp(&b.1)));
        let digest = deployments
            .iter()
            .map(|(s, snap)| format!("{}:{}", s.1, snap.sha256))
            .collect::<Vec<_>>()
            .join(";");
        FleetState {
            deployments,
            digest,
        }
    }

    /// The snapshot for a gateway with these labels: the matching selector
    /// with the most labels; ties go to the selector that sorts first.
    pub fn snapshot_for(&self, labels: &BTreeMap<String, String>) -> Option<Arc<Snapshot>> {
        self.deployments
            .iter()
            .find(|(s, _)| s.matches(labels))
            .map(|(_, snap)| snap.clone())
    }
}

/// Reads the state from the database.
pub async fn load(pool: &PgPool) -> Result<FleetState, sqlx::Error> {
    let rows: Vec<(String, String, i32, String)> = sqlx::query_as(
        "SELECT d.selector, p.name, d.version, v.body FROM deployments d
         JOIN packs p ON p.id = d.pack_id
         JOIN pack_versions v ON v.pack_id = d.pack_id AND v.version = d.version",
    )
    .fetch_all(pool)
    .await?;
    let keys: Vec<(String, String, String, Option<time::OffsetDateTime>)> = sqlx::query_as(
        "SELECT id, role, key_sha256, expires_at FROM client_keys
         WHERE enabled AND (expires_at IS NULL OR expires_at > now()) ORDER BY id",
    )
    .fetch_all(pool)
    .await?;
    // Any key row, usable or not: once keys are managed, none usable means
    // nobody gets in.
    let require_key: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM client_keys)")
        .fetch_one(pool)
        .await?;
    let keys: Vec<ClientKey> = keys
        .into_iter()
        .map(|(id, role, key_sha256, exp)| ClientKey {
            id,
            role,
            key_sha256,
            expires_at: exp.map_or(0, |t| t.unix_timestamp()),
        })
        .collect();
    let deployments: Vec<(Selector, Arc<Snapshot>)> = rows
        .into_iter()
        .filter_map(|(selector, pack_name, version, body)| {
            let sel = Selector::parse(&selector).ok()?;
            let sha256 = wire::snapshot_sha256(&body, &keys, require_key);
            let snap = Snapshot {
                version: format!("{pack_name}@{version}"),
                sha256,
                pack_name,
                pack_version: version as u32,
                pack_text: body,
                client_keys: keys.clone(),
                selector,
                require_client_key: require_key,
            };
            Some((sel, Arc::new(snap)))
        })
        .collect();
    Ok(FleetState::new(deployments))
}

/// Loads the state, then keeps it current until the process ends.
pub async fn watch_state(
    pool: PgPool,
    poll: Duration,
) -> Result<watch::Receiver<Arc<FleetState>>, sqlx::Error> {
    let first = load(&pool).await?;
    let (tx, rx) = watch::channel(Arc::new(first));
    let (wake_tx, mut wake_rx) = tokio::sync::mpsc::channel::<()>(1);
    tokio::spawn(listen(pool.clone(), wake_tx.clone()));
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(poll);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                Some(()) = wake_rx.recv() => {
                    // Debounce: a burst of writes becomes one reload.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    while wake_rx.try_recv().is_ok() {}
                }
            }
            match load(&pool).await {
                Ok(state) if state.digest != tx.borrow().digest => {
                    tracing::info!(
                        deployments = state.deployments.len(),
                        "fleet config changed"
                    );
                    crate::metrics::get().config_reloads.inc();
                    if tx.send(Arc::new(state)).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reload the fleet config; gateways keep the last one")
                }
            }
        }
    });
    Ok(rx)
}

/// LISTENs for change notifications, reconnecting when the database goes
/// away (the poll covers the gap).
async fn listen(pool: PgPool, wake: tokio::sync::mpsc::Sender<()>) {
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot LISTEN for config changes; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen("sluice_config").await {
            tracing::warn!(error = %e, "LISTEN sluice_config failed; retrying");
            tokio::time::sleep(Duration::from_secs(2)).await;
            continue;
        }
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => {
                    let _ = wake.try_send(());
                }
                // The connection dropped: notifications may have been lost.
                Ok(None) => {
                    let _ = wake.try_send(());
                }
                Err(e) => {
                    tracing::warn!(error = %e, "config change listener failed; reconnecting");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_are_canonical_and_match_subsets() {
        let s = Selector::parse(" region=eu , env=prod").unwrap();
        assert_eq!(s.as_str(), "env=prod,region=eu");
        assert!(s.matches(&labels(&[("env", "prod"), ("region", "eu"), ("x", "y")])));
        assert!(!s.matches(&labels(&[("env", "prod")])));
        assert!(Selector::parse("").unwrap().matches(&labels(&[])));
        let e = Selector::parse("env").unwrap_err();
        assert!(e.contains("'env'"), "{e}");
    }

    #[test]
    fn the_most_specific_matching_deployment_wins() {
        let snap = |v: &str| {
            Arc::new(Snapshot {
                version: v.into(),
                ..Default::default()
            })
        };
        let state = FleetState::new(vec![
            (Selector::parse("").unwrap(), snap("all")),
            (
                Selector::parse("env=prod,region=eu").unwrap(),
                snap("prod-eu"),
            ),
            (Selector::parse("env=prod").unwrap(), snap("prod")),
        ]);
        let pick = |l: &[(&str, &str)]| state.snapshot_for(&labels(l)).unwrap().version.clone();
        assert_eq!(pick(&[("env", "prod"), ("region", "eu")]), "prod-eu");
        assert_eq!(pick(&[("env", "prod"), ("region", "us")]), "prod");
        assert_eq!(pick(&[("env", "dev")]), "all");
    }
}
