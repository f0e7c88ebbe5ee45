//! Running the real `sluice-worker` binary: on free ports (it binds port 0
//! and logs what it got), with `HF_HOME` in a temp folder (mistral.rs
//! creates its cache there even for local models) and no ambient token.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sluice_proto::wire::inference_client::InferenceClient;
use sluice_proto::wire::{
    Finish, GenerateRequest, ModelInfoRequest, ModelInfoResponse, generate_response,
};
use tonic::transport::Channel;

use crate::{Process, binary, tempdir::TempDir};

pub struct Worker {
    pub process: Process,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    _home: TempDir,
}

/// A command for `sluice-worker` with a clean Hugging Face environment.
pub fn command(home: &Path) -> Command {
    let mut cmd = Command::new(binary("sluice-worker"));
    cmd.env_remove("HF_TOKEN")
        .env_remove("HF_TOKEN_PATH")
        .env_remove("HF_ENDPOINT")
        .env("HF_HOME", home.join("hf"))
        .env("HOME", home)
        .env("RUST_LOG", "info");
    cmd
}

/// The first `key=ADDR` on the worker's "listening" log line.
fn addr_after(logs: &str, key: &str) -> Option<SocketAddr> {
    let line = logs
        .lines()
        .find(|l| l.contains("sluice-worker listening"))?;
    let start = line.find(&format!("{key}="))? + key.len() + 1;
    line[start..].split_whitespace().next()?.parse().ok()
}

impl Worker {
    /// Starts `sluice-worker run` with `args` (after `run`), listening on
    /// free ports; `env` is added to the clean environment.
    pub fn start(args: &[&str], env: &[(&str, String)]) -> Worker {
        let home = TempDir::new();
        let mut cmd = command(home.path());
        cmd.arg("run")
            .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let process = Process::spawn(cmd);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let logs = process.logs();
            if let (Some(grpc), Some(http)) = (addr_after(&logs, "grpc"), addr_after(&logs, "http"))
            {
                return Worker {
                    process,
                    grpc,
                    http,
                    _home: home,
                };
            }
            assert!(
                Instant::now() < deadline,
                "sluice-worker did not start listening:\n{logs}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for `/readyz` to answer 200 (the model is loaded).
    pub async fn wait_ready(&self, timeout: Duration) {
        let url = format!("http://{}/readyz", self.http);
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(r) = reqwest::get(&url).await
                && r.status() == 200
            {
                return;
            }
            let logs = self.process.logs();
            // main prints its fatal error last, prefixed with its name.
            assert!(
                !logs.lines().any(|l| l.starts_with("sluice-worker: ")),
                "the worker exited:\n{logs}"
            );
            assert!(
                Instant::now() < deadline,
                "worker not ready within {timeout:?}:\n{logs}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// A gRPC client for the worker.
    pub async fn client(&self) -> InferenceClient<Channel> {
        InferenceClient::connect(self.grpc_url()).await.unwrap()
    }

    pub async fn model_info(&self) -> ModelInfoResponse {
        self.client()
            .await
            .model_info(ModelInfoRequest {})
            .await
            .unwrap()
            .into_inner()
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.http))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// Writes the tiny safetensors model into a new temp folder.
pub fn tiny_model(seed: u64) -> (TempDir, PathBuf) {
    let dir = TempDir::new();
    let model = dir.path().join("model");
    crate::tiny_model::write_safetensors_model(&model, seed).unwrap();
    (dir, model)
}

/// The sum of a Prometheus metric's samples over all label sets (0 when
/// there are none).
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Runs one generation to its end: the text and the `Finish` (if any).
pub async fn generate(
    client: &mut InferenceClient<Channel>,
    request: GenerateRequest,
) -> (String, Option<Finish>) {
    let mut stream = client.generate(request).await.unwrap().into_inner();
    let (mut text, mut finish) = (String::new(), None);
    while let Some(m) = stream.message().await.unwrap() {
        match m.event.unwrap() {
            generate_response::Event::Text(t) => text.push_str(&t.text),
            generate_response::Event::Finish(f) => finish = Some(f),
        }
    }
    (text, finish)
}
