//! Control-plane harness: a fresh Postgres database per test, the real
//! `sluice-control-plane` process, and a small operator-API client.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::Connection;

use crate::{GatewayOptions, Process, binary, free_port};

/// The server every test database is created on. CI's Postgres: trust
/// auth, database `test` (scripts/test starts it).
pub fn admin_url() -> String {
    std::env::var("SLUICE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A database of its own, dropped (with its connections) at the end.
pub struct Database {
    pub name: String,
    pub url: String,
}

impl Database {
    pub async fn create() -> Database {
        let admin = admin_url();
        let name = format!("sluice_test_{}", uuid_hex());
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
            panic!("cannot reach Postgres at {admin}: {e} (scripts/test starts it; or set SLUICE_TEST_DATABASE_URL)")
        });
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("CREATE DATABASE");
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        Database {
            url: format!("{base}/{name}"),
            name,
        }
    }

    pub async fn connect(&self) -> sqlx::PgConnection {
        sqlx::PgConnection::connect(&self.url)
            .await
            .expect("connect to the test database")
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // Drop runs outside any runtime; a plain thread with its own keeps
        // this usable from async tests.
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async move {
                let mut conn = sqlx::PgConnection::connect(&admin_url()).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        })
        .join();
    }
}

fn uuid_hex() -> String {
    use rand::Rng;
    format!("{:016x}", rand::rng().random::<u64>())
}

pub const ADMIN_TOKEN: &str = "sop-test-bootstrap-admin-token-0123456789";

/// A running `sluice-control-plane run`, killed on drop.
pub struct ControlPlane {
    pub process: Process,
    pub http_port: u16,
    pub grpc_port: u16,
}

impl ControlPlane {
    pub fn start(db: &Database) -> ControlPlane {
        Self::start_with_env(db, &[])
    }

    /// Starts `n` replicas on one database at the same moment (they race
    /// to migrate it).
    pub fn start_replicas(db: &Database, n: usize) -> Vec<ControlPlane> {
        let spawned: Vec<ControlPlane> = (0..n)
            .map(|_| Self::spawn(db, free_port(), free_port(), &[]))
            .collect();
        spawned.into_iter().map(Self::ready).collect()
    }

    /// Starts on given ports (a restart keeps the gateways' URL valid).
    pub fn start_on(db: &Database, http_port: u16, grpc_port: u16) -> ControlPlane {
        Self::ready(Self::spawn(db, http_port, grpc_port, &[]))
    }

    /// Starts with extra environment (e.g. the gRPC TLS settings) on free
    /// ports; if another test took one of them first, tries new ones.
    pub fn start_with_env(db: &Database, env: &[(&str, String)]) -> ControlPlane {
        let mut attempt = 0;
        loop {
            let mut cp = Self::spawn(db, free_port(), free_port(), env);
            let port = cp.http_port;
            match cp.process.wait_listening(port) {
                Ok(()) => return cp,
                Err((_, logs)) if logs.contains("binding 127.0.0.1") && attempt < 3 => attempt += 1,
                Err((code, logs)) => panic!("control plane exited ({code:?}):\n{logs}"),
            }
        }
    }

    fn ready(mut cp: ControlPlane) -> ControlPlane {
        let port = cp.http_port;
        cp.process
            .wait_listening(port)
            .unwrap_or_else(|(code, logs)| panic!("control plane exited ({code:?}):\n{logs}"));
        cp
    }

    fn spawn(
        db: &Database,
        http_port: u16,
        grpc_port: u16,
        env: &[(&str, String)],
    ) -> ControlPlane {
        Self::spawn_url(&db.url, http_port, grpc_port, env)
    }

    /// Spawns on `database_url` without waiting for it to listen (the
    /// database may not be reachable yet).
    pub fn spawn_url(
        database_url: &str,
        http_port: u16,
        grpc_port: u16,
        env: &[(&str, String)],
    ) -> ControlPlane {
        let mut cmd = Command::new(binary("sluice-control-plane"));
        cmd.arg("run")
            .arg("--database-url")
            .arg(database_url)
            .arg("--http-listen")
            .arg(format!("127.0.0.1:{http_port}"))
            .arg("--grpc-listen")
            .arg(format!("127.0.0.1:{grpc_port}"))
            .env("SLUICE_BOOTSTRAP_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        ControlPlane {
            process: Process::spawn(cmd),
            http_port,
            grpc_port,
        }
    }

    pub fn grpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    pub fn api(&self, token: &str) -> Api {
        Api {
            base: format!("http://127.0.0.1:{}", self.http_port),
            token: token.to_string(),
            http: reqwest::Client::new(),
        }
    }

    pub fn admin(&self) -> Api {
        self.api(ADMIN_TOKEN)
    }

    /// Issues a gateway token for `gateway_id` through the operator API.
    pub async fn issue_gateway_token(&self, gateway_id: &str) -> String {
        let (status, v) = self
            .admin()
            .post(&format!("/v1/gateways/{gateway_id}/tokens"), Value::Null)
            .await;
        assert_eq!(status, 201, "issuing a gateway token: {v}");
        v["token"]
            .as_str()
            .expect("token in the answer")
            .to_string()
    }

    /// Options for a managed gateway `gateway_id`: a fresh token, written to
    /// `dir/gateway.token` (see [`token_options`] to reuse it).
    pub async fn gateway_options(&self, gateway_id: &str, dir: &Path) -> GatewayOptions<'static> {
        let token = self.issue_gateway_token(gateway_id).await;
        std::fs::write(dir.join(TOKEN_FILE), token).unwrap();
        token_options(dir)
    }
}

const TOKEN_FILE: &str = "gateway.token";

/// `message` as a gRPC request that carries a gateway token.
pub fn with_token<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// Options that reuse the token [`ControlPlane::gateway_options`] wrote to
/// `dir` (e.g. for a gateway restarted while the control plane is down).
pub fn token_options(dir: &Path) -> GatewayOptions<'static> {
    GatewayOptions {
        token_file: Some(dir.join(TOKEN_FILE)),
        ..GatewayOptions::default()
    }
}

/// The operator API as one operator sees it.
pub struct Api {
    pub base: String,
    pub token: String,
    http: reqwest::Client,
}

impl Api {
    pub async fn call(&self, method: &str, path: &str, body: Option<Body<'_>>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        match body {
            Some(Body::Json(v)) => req = req.json(&v),
            Some(Body::Yaml(text)) => {
                req = req
                    .header("content-type", "application/yaml")
                    .body(text.to_string())
            }
            None => {}
        }
        let resp = req.send().await.expect("operator API request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, Some(Body::Json(body))).await
    }

    pub async fn post_yaml(&self, path: &str, yaml: &str) -> (u16, Value) {
        self.call("POST", path, Some(Body::Yaml(yaml))).await
    }

    /// The ids in fleet status, in the API's order.
    pub async fn fleet_ids(&self) -> Vec<String> {
        let (status, v) = self.get("/v1/gateways").await;
        assert_eq!(status, 200, "{v}");
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["id"].as_str().unwrap().to_string())
            .collect()
    }

    /// Polls fleet status until `check` holds for gateway `id`.
    pub async fn wait_gateway(
        &self,
        id: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (status, v) = self.get("/v1/gateways").await;
            assert_eq!(status, 200, "{v}");
            let gw = v["data"]
                .as_array()
                .unwrap()
                .iter()
                .find(|g| g["id"] == id)
                .cloned();
            if let Some(g) = gw.filter(|g| check(g)) {
                return g;
            }
            assert!(
                Instant::now() < deadline,
                "gateway '{id}' never reached: {what}; fleet: {v}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub enum Body<'a> {
    Json(Value),
    Yaml(&'a str),
}
