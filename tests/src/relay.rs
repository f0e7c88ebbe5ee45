//! A TCP relay that can be cut and restored, to play a server restarting
//! under a client (Postgres under the control plane) without restarting
//! the machine's shared server: [`Relay::cut`] resets every relayed
//! connection and stops listening, so new connections are refused, as
//! they are while a server is down; [`Relay::restore`] listens again on
//! the same port.

use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Relay {
    pub port: u16,
    up: watch::Sender<bool>,
}

impl Relay {
    /// Relays 127.0.0.1:`port` to `target` (`host:port`). Runs on the
    /// caller's runtime: use a multi-threaded test runtime when the test
    /// also blocks its own thread.
    pub async fn start(target: &str) -> Relay {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (up, rx) = watch::channel(true);
        tokio::spawn(run(Some(listener), port, target.to_string(), rx));
        Relay { port, up }
    }

    /// The server "goes down": open connections are reset, new ones refused.
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    /// The server is back on the same address.
    pub fn restore(&self) {
        self.up.send_replace(true);
    }
}

async fn run(
    mut listener: Option<TcpListener>,
    port: u16,
    target: String,
    mut up: watch::Receiver<bool>,
) {
    loop {
        match listener.take() {
            Some(l) => {
                let conns = up.clone();
                tokio::select! {
                    accepted = l.accept() => {
                        if let Ok((inbound, _)) = accepted {
                            tokio::spawn(relay(inbound, target.clone(), conns));
                        }
                        listener = Some(l);
                    }
                    // Dropping the listener closes the port.
                    changed = up.wait_for(|u| !*u) => if changed.is_err() { return },
                }
            }
            None => {
                if up.wait_for(|u| *u).await.is_err() {
                    return;
                }
                listener = Some(rebind(port).await);
            }
        }
    }
}

async fn rebind(port: u16) -> TcpListener {
    for _ in 0..100 {
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)).await {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the relay could not listen on 127.0.0.1:{port} again");
}

async fn relay(mut inbound: TcpStream, target: String, mut up: watch::Receiver<bool>) {
    let Ok(mut outbound) = TcpStream::connect(&target).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
        _ = up.wait_for(|u| !*u) => {
            // A reset, not a clean close: what a client sees when the
            // server process is gone.
            let _ = socket_linger_zero(&inbound);
        }
    }
}

fn socket_linger_zero(s: &TcpStream) -> std::io::Result<()> {
    #[allow(deprecated)]
    s.set_linger(Some(Duration::ZERO))
}
