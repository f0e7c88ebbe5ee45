//! Simulated gateways: each speaks the real gateway's side of
//! `ConfigService.Sync` (`data-plane/src/control.rs`) on a gRPC channel of
//! its own — Hello, then an Ack for every snapshot whose digest checks out —
//! but compiles nothing, so what is measured is the control plane's push.

use std::time::Instant;

use sluice_proto::wire::config_service_client::ConfigServiceClient;
use sluice_proto::wire::{Ack, GatewayMessage, Hello, Nack, control_message, gateway_message};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_stream::wrappers::ReceiverStream;

/// What a simulated gateway reports to the benchmark.
#[derive(Debug)]
pub enum Event {
    /// It sent the Ack for this snapshot at `at`.
    Acked {
        gateway: usize,
        version: String,
        sha256: String,
        at: Instant,
    },
    /// Anything a healthy push never causes: the run is invalid.
    Failed { gateway: usize, error: String },
}

pub fn gateway_id(i: usize) -> String {
    format!("bench-gw-{i:04}")
}

/// Starts `n` simulated gateways against `url`; they run until the set is
/// dropped.
pub fn start(url: &str, n: usize, events: mpsc::UnboundedSender<Event>) -> JoinSet<()> {
    let mut set = JoinSet::new();
    for gateway in 0..n {
        let (url, events) = (url.to_string(), events.clone());
        set.spawn(async move {
            let error = match run(&url, gateway, &events).await {
                Ok(()) => "the control plane closed the config stream".to_string(),
                Err(e) => e,
            };
            let _ = events.send(Event::Failed { gateway, error });
        });
    }
    set
}

async fn run(
    url: &str,
    gateway: usize,
    events: &mpsc::UnboundedSender<Event>,
) -> Result<(), String> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let (tx, rx) = mpsc::channel(8);
    let hello = Hello {
        gateway_id: gateway_id(gateway),
        labels: [("bench".to_string(), "push-latency".to_string())].into(),
        ..Default::default()
    };
    send(&tx, gateway_message::Msg::Hello(hello)).await?;
    let mut inbound = ConfigServiceClient::new(channel)
        .sync(ReceiverStream::new(rx))
        .await
        .map_err(|s| format!("stream refused: {}", s.message()))?
        .into_inner();
    while let Some(msg) = inbound
        .message()
        .await
        .map_err(|s| format!("stream error: {}", s.message()))?
    {
        match msg.msg {
            Some(control_message::Msg::Snapshot(snap)) => {
                // The one check a real gateway makes before compiling; a
                // failure here means the push itself is broken.
                if !snap.is_intact() {
                    let nack = Nack {
                        version: snap.version.clone(),
                        sha256: snap.sha256.clone(),
                        error: "snapshot digest mismatch".into(),
                    };
                    send(&tx, gateway_message::Msg::Nack(nack)).await?;
                    return Err(format!("NACKed {}: digest mismatch", snap.version));
                }
                let ack = Ack {
                    version: snap.version.clone(),
                    sha256: snap.sha256.clone(),
                };
                send(&tx, gateway_message::Msg::Ack(ack)).await?;
                let at = Instant::now();
                let _ = events.send(Event::Acked {
                    gateway,
                    version: snap.version,
                    sha256: snap.sha256,
                    at,
                });
            }
            // What a real gateway does too: keep waiting. A stream opened
            // just after the first activation, before the control plane has
            // reloaded its state, is told this first.
            Some(control_message::Msg::NoDeployment(_)) | None => {}
        }
    }
    Ok(())
}

async fn send(tx: &mpsc::Sender<GatewayMessage>, msg: gateway_message::Msg) -> Result<(), String> {
    tx.send(GatewayMessage { msg: Some(msg) })
        .await
        .map_err(|_| "stream closed".to_string())
}
