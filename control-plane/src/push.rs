//! The gRPC config push: one `Sync` stream per gateway.
//!
//! The gateway's Hello registers it in fleet status; from then on the stream
//! offers the snapshot of the deployment matching its labels whenever that
//! changes (and not when the gateway already runs it), and records each ACK
//! or NACK. The stream keeps working from memory while the database is
//! down; only fleet status falls behind.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sluice_proto::wire::config_service_server::ConfigService;
use sluice_proto::wire::{
    ControlMessage, GatewayMessage, NoDeployment, control_message, gateway_message,
};
use sqlx::PgPool;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::fleet::FleetState;
use crate::gateway_auth::{Caller, GatewayAuth};

pub struct ConfigPush {
    pub pool: PgPool,
    pub state: watch::Receiver<Arc<FleetState>>,
    pub auth: Arc<GatewayAuth>,
}

type Outbound = mpsc::Sender<Result<ControlMessage, Status>>;

#[tonic::async_trait]
impl ConfigService for ConfigPush {
    type SyncStream = ReceiverStream<Result<ControlMessage, Status>>;

    async fn sync(
        &self,
        request: Request<Streaming<GatewayMessage>>,
    ) -> Result<Response<Self::SyncStream>, Status> {
        // Before anything is read or sent: no snapshot for strangers.
        let caller = self.auth.authenticate(&request).await?;
        let mut inbound = request.into_inner();
        let hello = match inbound.message().await? {
            Some(GatewayMessage {
                msg: Some(gateway_message::Msg::Hello(h)),
            }) => h,
            _ => {
                return Err(Status::invalid_argument(
                    "the first message on a config stream must be a Hello",
                ));
            }
        };
        let id = hello.gateway_id.trim().to_string();
        if id.is_empty() || id.len() > 128 {
            return Err(Status::invalid_argument(
                "Hello.gateway_id must be 1–128 characters (set --gateway-id)",
            ));
        }
        caller.may_act_as(&id)?;
        let labels: BTreeMap<String, String> = hello.labels.into_iter().collect();
        let session = uuid_like();
        let applied = (!hello.applied_sha256.is_empty())
            .then(|| (hello.applied_version.clone(), hello.applied_sha256.clone()));
        if let Err(e) = register(&self.pool, &id, &labels, &session, applied.as_ref()).await {
            tracing::warn!(gateway_id = %id, error = %e, "cannot record the gateway in fleet status");
        }
        tracing::info!(gateway_id = %id, ?labels, "gateway connected");
        crate::metrics::get().gateways_connected.inc();
        let (tx, rx) = mpsc::channel(4);
        let stream = GatewayStream {
            pool: self.pool.clone(),
            auth: self.auth.clone(),
            caller,
            id,
            labels,
            session,
            offered: String::new(),
            applied_sha256: hello.applied_sha256,
        };
        tokio::spawn(stream.run(self.state.clone(), inbound, tx));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

struct GatewayStream {
    pool: PgPool,
    auth: Arc<GatewayAuth>,
    caller: Caller,
    id: String,
    labels: BTreeMap<String, String>,
    session: String,
    /// sha256 of the last thing offered ("none" for NoDeployment).
    offered: String,
    applied_sha256: String,
}

impl GatewayStream {
    async fn run(
        mut self,
        mut state: watch::Receiver<Arc<FleetState>>,
        mut inbound: Streaming<GatewayMessage>,
        tx: Outbound,
    ) {
        let current = state.borrow_and_update().clone();
        let mut open = self.offer(&current, &tx).await;
        let mut heartbeat = tokio::time::interval(Duration::from_secs(15));
        heartbeat.tick().await;
        while open {
            tokio::select! {
                changed = state.changed() => {
                    if changed.is_err() { break }
                    let current = state.borrow_and_update().clone();
                    open = self.offer(&current, &tx).await;
                }
                msg = inbound.message() => match msg {
                    Ok(Some(GatewayMessage { msg: Some(m) })) => self.record(m).await,
                    Ok(Some(GatewayMessage { msg: None })) => {}
                    Ok(None) => break,
                    Err(status) => {
                        tracing::info!(gateway_id = %self.id, "config stream ended: {}", status.message());
                        break;
                    }
                },
                _ = heartbeat.tick() => {
                    // A revoked token ends the stream it opened.
                    if !self.auth.still_valid(&self.caller).await {
                        tracing::warn!(gateway_id = %self.id, "gateway token revoked; closing its config stream");
                        let _ = tx.send(Err(Status::unauthenticated("this gateway token was revoked"))).await;
                        break;
                    }
                    self.touch().await
                }
                _ = tx.closed() => break,
            }
        }
        let r = sqlx::query(
            "UPDATE gateways SET connected = FALSE, last_seen = now() WHERE id = $1 AND session = $2",
        )
        .bind(&self.id)
        .bind(&self.session)
        .execute(&self.pool)
        .await;
        if let Err(e) = r {
            tracing::warn!(gateway_id = %self.id, error = %e, "cannot record the disconnect");
        }
        crate::metrics::get().gateways_connected.dec();
        tracing::info!(gateway_id = %self.id, "gateway disconnected");
    }

    /// Sends what the gateway should run if that changed. Returns false once
    /// the gateway is gone.
    async fn offer(&mut self, state: &FleetState, tx: &Outbound) -> bool {
        let (msg, offered_version) = match state.snapshot_for(&self.labels) {
            Some(snap) if snap.sha256 == self.offered => return true,
            Some(snap) if snap.sha256 == self.applied_sha256 => {
                self.offered = snap.sha256.clone();
                return true;
            }
            Some(snap) => {
                self.offered = snap.sha256.clone();
                crate::metrics::get().snapshots_sent.inc();
                let version = snap.version.clone();
                (
                    control_message::Msg::Snapshot((*snap).clone()),
                    Some(version),
                )
            }
            None if self.offered == "none" => return true,
            None => {
                self.offered = "none".into();
                let reason = format!(
                    "no deployment's selector matches the labels {:?}; activate a pack for them",
                    self.labels
                );
                (
                    control_message::Msg::NoDeployment(NoDeployment { reason }),
                    None,
                )
            }
        };
        // Send first: fleet status is bookkeeping and must not delay the push.
        if tx
            .send(Ok(ControlMessage { msg: Some(msg) }))
            .await
            .is_err()
        {
            return false;
        }
        if let Some(version) = offered_version {
            let r = sqlx::query("UPDATE gateways SET offered_version = $2 WHERE id = $1")
                .bind(&self.id)
                .bind(&version)
                .execute(&self.pool)
                .await;
            if let Err(e) = r {
                tracing::warn!(gateway_id = %self.id, error = %e, "cannot record the offered version");
            }
        }
        true
    }

    async fn record(&mut self, msg: gateway_message::Msg) {
        let r = match msg {
            gateway_message::Msg::Ack(a) => {
                result("ack");
                tracing::info!(gateway_id = %self.id, version = %a.version, "gateway ACKed");
                self.applied_sha256 = a.sha256.clone();
                sqlx::query(
                    "UPDATE gateways SET applied_version = $2, applied_sha256 = $3, last_result = 'ack',
                         last_error = NULL, last_ack_at = now(), last_seen = now() WHERE id = $1",
                )
                .bind(&self.id)
                .bind(&a.version)
                .bind(&a.sha256)
                .execute(&self.pool)
                .await
            }
            gateway_message::Msg::Nack(n) => {
                result("nack");
                tracing::warn!(gateway_id = %self.id, version = %n.version, error = %n.error, "gateway NACKed a snapshot");
                sqlx::query(
                    "UPDATE gateways SET last_result = 'nack', last_error = $2, last_nack_at = now(),
                         last_seen = now() WHERE id = $1",
                )
                .bind(&self.id)
                .bind(format!("{}: {}", n.version, n.error))
                .execute(&self.pool)
                .await
            }
            gateway_message::Msg::Hello(_) => return,
        };
        if let Err(e) = r {
            tracing::warn!(gateway_id = %self.id, error = %e, "cannot record the gateway's answer");
        }
    }

    async fn touch(&self) {
        let _ = sqlx::query("UPDATE gateways SET last_seen = now() WHERE id = $1 AND session = $2")
            .bind(&self.id)
            .bind(&self.session)
            .execute(&self.pool)
            .await;
    }
}

fn result(result: &'static str) {
    crate::metrics::get()
        .snapshot_results
        .get_or_create(&crate::metrics::ResultLabels { result })
        .inc();
}

async fn register(
    pool: &PgPool,
    id: &str,
    labels: &BTreeMap<String, String>,
    session: &str,
    applied: Option<&(String, String)>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO gateways (id, labels, session, connected, applied_version, applied_sha256)
         VALUES ($1, $2, $3, TRUE, $4, $5)
         ON CONFLICT (id) DO UPDATE SET labels = $2, session = $3, connected = TRUE, last_seen = now(),
             applied_version = COALESCE($4, gateways.applied_version),
             applied_sha256 = COALESCE($5, gateways.applied_sha256)",
    )
    .bind(id)
    .bind(serde_json::to_value(labels).unwrap_or_default())
    .bind(session)
    .bind(applied.map(|a| a.0.as_str()))
    .bind(applied.map(|a| a.1.as_str()))
    .execute(pool)
    .await?;
    Ok(())
}

fn uuid_like() -> String {
    crate::db::new_secret("")[..32].to_string()
}
