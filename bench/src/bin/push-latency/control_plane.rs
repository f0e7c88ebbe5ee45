//! The system under test: a database of its own on the local Postgres, the
//! real `sluice-control-plane` process on it, and the two operator-API
//! calls the benchmark makes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rand::Rng;
use serde_json::{Value, json};
use sqlx::Connection;

/// A fresh database, dropped by [`Database::drop_database`]. Dropping needs
/// async, so it is an explicit call rather than `Drop`.
pub struct Database {
    admin_url: String,
    name: String,
    pub url: String,
}

impl Database {
    pub async fn create(admin_url: &str) -> anyhow::Result<Database> {
        let name = format!("sluice_bench_{:016x}", rand::rng().random::<u64>());
        let mut conn = sqlx::PgConnection::connect(admin_url)
            .await
            .with_context(|| {
                format!("cannot reach Postgres at {admin_url} (set --database-url)")
            })?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .context("CREATE DATABASE")?;
        let base = admin_url.rsplit_once('/').map_or(admin_url, |(b, _)| b);
        Ok(Database {
            url: format!("{base}/{name}"),
            admin_url: admin_url.to_string(),
            name,
        })
    }

    /// Drops the database, closing the control plane's leftover connections.
    pub async fn drop_database(self) -> anyhow::Result<()> {
        let mut conn = sqlx::PgConnection::connect(&self.admin_url).await?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut conn)
        .await?;
        Ok(())
    }
}

/// `sluice-control-plane`, beside this binary (same profile). cargo is run
/// every time (a no-op when it is current) so a stale binary is never
/// measured.
pub fn binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("current_exe")?;
    let dir = exe.parent().context("exe dir")?;
    let path = dir.join("sluice-control-plane");
    let release = dir.file_name().is_some_and(|n| n == "release");
    eprintln!(
        "building sluice-control-plane ({}) if it is out of date…",
        if release { "release" } else { "debug" }
    );
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args([
        "build",
        "--manifest-path",
        manifest,
        "-p",
        "sluice-control-plane",
    ]);
    if release {
        cmd.arg("--release");
    }
    let ok = cmd.status().is_ok_and(|s| s.success());
    if !ok || !path.exists() {
        bail!(
            "{} is missing and could not be built: run `cargo build --release -p sluice-control-plane` first",
            path.display()
        );
    }
    Ok(path)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A running `sluice-control-plane run`, killed on drop. Its log goes to a
/// file, removed on drop unless [`ControlPlane::keep_log`] was called.
pub struct ControlPlane {
    child: std::process::Child,
    log: PathBuf,
    keep_log: bool,
    pub grpc_url: String,
    pub api: Api,
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.keep_log {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

impl ControlPlane {
    /// Starts the control plane with only LISTEN/NOTIFY to deliver changes
    /// within the run (the backstop poll is `poll_ms`), and waits until its
    /// operator API answers.
    pub async fn start(binary: &Path, db: &Database, poll_ms: u64) -> anyhow::Result<Self> {
        let (http_port, grpc_port) = (free_port()?, free_port()?);
        let token = format!("sop-bench-{:032x}", rand::rng().random::<u128>());
        let log = std::env::temp_dir().join(format!(
            "sluice-push-latency-{}-control-plane.log",
            std::process::id()
        ));
        let child = Command::new(binary)
            .args(["run", "--database-url", &db.url])
            .args(["--http-listen", &format!("127.0.0.1:{http_port}")])
            .args(["--grpc-listen", &format!("127.0.0.1:{grpc_port}")])
            .args(["--poll-ms", &poll_ms.to_string()])
            // The simulated gateways present no credential. Authentication
            // costs one lookup when a stream opens, outside what this
            // benchmark times (a push over streams already open).
            .arg("--allow-unauthenticated-gateways")
            .env("SLUICE_BOOTSTRAP_ADMIN_TOKEN", &token)
            // The default level: it logs one line per ACK, as in production.
            .env("RUST_LOG", "info,sqlx=warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut cp = ControlPlane {
            child,
            log,
            keep_log: false,
            grpc_url: format!("http://127.0.0.1:{grpc_port}"),
            api: Api::new(format!("http://127.0.0.1:{http_port}"), token),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = cp.child.try_wait()? {
                cp.keep_log = true;
                bail!(
                    "the control plane exited ({status}); its log: {}",
                    cp.log.display()
                );
            }
            if cp.api.healthy().await {
                return Ok(cp);
            }
            if Instant::now() > deadline {
                cp.keep_log = true;
                bail!(
                    "the control plane did not answer within 60 s; its log: {}",
                    cp.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Keeps the log file after exit, for a failed run; returns its path.
    pub fn keep_log(&mut self) -> PathBuf {
        self.keep_log = true;
        self.log.clone()
    }
}

/// The operator API, as the bootstrap admin.
pub struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    fn new(base: String, token: String) -> Api {
        Api {
            base,
            token,
            http: reqwest::Client::new(),
        }
    }

    async fn healthy(&self) -> bool {
        let url = format!("{}/healthz", self.base);
        self.http
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    async fn call(&self, req: reqwest::RequestBuilder, what: &str) -> anyhow::Result<Value> {
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| what.to_string())?;
        let status = resp.status();
        let text = resp.text().await.with_context(|| what.to_string())?;
        if !status.is_success() {
            bail!("{what}: {status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("{what}: answer is not JSON: {text}"))
    }

    /// Adds `body` as the next version of pack `name` (creating the pack on
    /// the first call); returns the version number.
    pub async fn add_version(&self, name: &str, body: &str, create: bool) -> anyhow::Result<i64> {
        let path = if create {
            "/v1/packs".to_string()
        } else {
            format!("/v1/packs/{name}/versions")
        };
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/yaml")
            .body(body.to_string());
        let v = self.call(req, &format!("POST {path}")).await?;
        v["version"]
            .as_i64()
            .with_context(|| format!("POST {path}: no version in {v}"))
    }

    /// Deploys a version to every gateway (the empty selector).
    pub async fn activate(&self, name: &str, version: i64) -> anyhow::Result<()> {
        let path = format!("/v1/packs/{name}/activate");
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&json!({"version": version, "selector": ""}));
        self.call(req, &format!("POST {path}")).await.map(drop)
    }

    /// Fleet status: one JSON object per gateway.
    pub async fn gateways(&self) -> anyhow::Result<Vec<Value>> {
        let req = self.http.get(format!("{}/v1/gateways", self.base));
        let mut v = self.call(req, "GET /v1/gateways").await?;
        match v["data"].take() {
            Value::Array(a) => Ok(a),
            other => bail!("GET /v1/gateways: no data array: {other}"),
        }
    }
}
