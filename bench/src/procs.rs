//! The systems under test, as child processes killed on drop.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct Child(std::process::Child, #[allow(dead_code)] Option<PathBuf>);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        if let Some(dir) = &self.1 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("address")
        .port()
}

/// The release `sluice-gateway` of this target directory, built first (a
/// no-op when current): never measure a stale or unoptimised binary, even
/// when the bench itself runs from a dev build.
pub fn gateway_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/sluice-bench → target/release/sluice-gateway
    let target_dir = exe
        .parent()
        .and_then(|profile| profile.parent())
        .expect("the bench runs from a cargo target directory");
    let path = target_dir.join("release").join("sluice-gateway");
    eprintln!("building sluice-gateway (release) if it is out of date…");
    let ok = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "-p",
            "sluice-data-plane",
            "--bin",
            "sluice-gateway",
        ])
        .env("CARGO_TARGET_DIR", target_dir)
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok && path.exists(),
        "could not build sluice-gateway; run `cargo build --release -p sluice-data-plane` first"
    );
    path
}

async fn wait_ready(url: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(180);
    while Instant::now() < deadline {
        if reqwest::get(url)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

const CHAIN: &str = "policies:\n  chain: [prompt-injection, pii-detector, safety-filter, content-filter]\n  policy:\n    prompt-injection:\n      action: monitor\n    pii-detector:\n      action: redact\n    content-filter:\n      categories: [hate_speech, harassment, self_harm, sexual, violence]\n";

/// A gateway on one OpenAI-compatible target at `base_url` (`…/v1`), with
/// `policies`: more pack text after that target — a `policies:` section,
/// other top-level sections, or more target lines and `groups:` (empty for
/// none).
pub async fn gateway_with(base_url: &str, policies: &str, tag: &str) -> (Child, String) {
    gateway_from(&gateway_binary(), base_url, policies, tag).await
}

/// [`gateway_with`] from a given `sluice-gateway` binary (another build,
/// to compare side by side in one run).
pub async fn gateway_from(
    binary: &std::path::Path,
    base_url: &str,
    policies: &str,
    tag: &str,
) -> (Child, String) {
    let (child, url, _) = gateway_launched(&[], binary, base_url, policies, tag).await;
    (child, url)
}

/// [`gateway_from`] run by `launcher` (e.g. `valgrind --tool=callgrind`);
/// also returns the gateway's scratch directory and its process id.
pub async fn gateway_launched(
    launcher: &[String],
    binary: &std::path::Path,
    base_url: &str,
    policies: &str,
    tag: &str,
) -> (Child, String, (PathBuf, u32)) {
    let dir = std::env::temp_dir().join(format!("sluice-bench-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let policies = policies.replace("{dir}", &dir.display().to_string());
    let pack = format!(
        "pack:\n  name: bench\nproviders:\n  targets:\n    - id: stub\n      provider: openai:bench-model\n      base_url: {base_url}\n{policies}"
    );
    let config = dir.join("pack.yaml");
    std::fs::write(&config, pack).expect("write pack");
    let port = free_port();
    let mut cmd = match launcher.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(binary);
            c
        }
        None => Command::new(binary),
    };
    let child = cmd
        .args([
            "run",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--policy-config",
        ])
        .arg(&config)
        // Whatever the gateway (or its launcher) writes lands here.
        .current_dir(&dir)
        // The level operators run at (the default), so the bench pays what
        // they pay; its lines go to a file beside the pack, not the table.
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(
            std::fs::File::create(dir.join("gateway.log"))
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::inherit()),
        )
        .spawn()
        .expect("start sluice-gateway");
    let log = dir.join("gateway.log");
    let pid = child.id();
    let child = Child(child, Some(dir.clone()));
    assert!(
        wait_ready(&format!("http://127.0.0.1:{port}/readyz")).await,
        "sluice-gateway did not become ready:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    (
        child,
        format!("http://127.0.0.1:{port}/v1/chat/completions"),
        (dir, pid),
    )
}

pub async fn gateway(stub_port: u16, chain: bool) -> (Child, String) {
    gateway_with(
        &format!("http://127.0.0.1:{stub_port}/v1"),
        if chain { CHAIN } else { "" },
        if chain { "chain" } else { "plain" },
    )
    .await
}

/// nginx answering every request with `answer` (JSON): the fastest
/// external upstream there is. `None` when nginx is not installed.
pub fn nginx(answer: &str) -> Option<(Child, u16)> {
    let bin = ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
    let dir = std::env::temp_dir().join(format!("sluice-bench-nginx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let port = free_port();
    let d = dir.display();
    // One worker, like one upstream replica; the body is discarded unread.
    let conf = format!(
        "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
events {{ worker_connections 4096; }}\n\
http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  keepalive_requests 1000000;\n\
  server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      default_type application/json;\n      return 200 '{answer}';\n    }}\n  }}\n}}\n"
    );
    let config = dir.join("nginx.conf");
    std::fs::write(&config, conf).ok()?;
    let child = Command::new(bin)
        .arg("-c")
        .arg(&config)
        .arg("-p")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .ok()?;
    let child = Child(child, Some(dir));
    accepting(port).then_some((child, port))
}

/// Whether `port` accepts connections within 10 s.
fn accepting(port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A Valkey or Redis server on a free port, keeping nothing on disk.
/// `None` when neither is installed.
pub fn limit_store() -> Option<(Child, u16)> {
    let bin = ["valkey-server", "redis-server"].into_iter().find(|b| {
        Command::new(b)
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok()
    })?;
    let port = free_port();
    let child = Command::new(bin)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .ok()?;
    let child = Child(child, None);
    accepting(port).then_some((child, port))
}

pub async fn litellm(bin: &str, stub_port: u16) -> Option<(Child, String)> {
    let dir = std::env::temp_dir().join(format!("sluice-bench-litellm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let config = dir.join("litellm.yaml");
    std::fs::write(
        &config,
        format!("model_list:\n  - model_name: bench-model\n    litellm_params:\n      model: openai/bench-model\n      api_base: http://127.0.0.1:{stub_port}/v1\n      api_key: unused\n"),
    )
    .ok()?;
    let port = free_port();
    let child = Command::new(bin)
        .arg("--config")
        .arg(&config)
        .args(["--port", &port.to_string(), "--num_workers", "1"])
        // A local, loopback-only benchmark: no master key to manage.
        .env(
            "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY",
            "true",
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let child = Child(child, Some(dir));
    wait_ready(&format!("http://127.0.0.1:{port}/health/liveliness"))
        .await
        .then(|| {
            (
                child,
                format!("http://127.0.0.1:{port}/v1/chat/completions"),
            )
        })
}
