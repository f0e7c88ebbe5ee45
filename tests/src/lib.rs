//! Harness for the end-to-end tests: real Sluice binaries as child
//! processes, and real HTTP upstreams (see [`upstream`]) on 127.0.0.1.

pub mod control;
pub mod hub;
pub mod pki;
pub mod relay;
pub mod store;
pub mod tiny_model;
pub mod upstream;
pub mod worker;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where cargo put this test's binaries: `<target>/<profile>/deps/<test>`
/// → `<target>/<profile>`.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_path_buf()
}

pub fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace --bins` first (scripts/test does)",
        path.display()
    );
    path
}

/// Serves `app` on a free 127.0.0.1 port until the returned sender is
/// dropped.
pub async fn serve(app: axum::Router) -> (u16, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    (port, tx)
}

/// The virtualenv's Python with the `openai` package (scripts/test makes
/// it; `SLUICE_PYTHON` points elsewhere).
pub fn python() -> PathBuf {
    let path = std::env::var_os("SLUICE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/sluice-venv/bin/python")
        });
    assert!(
        path.exists(),
        "{} not found: run ./scripts/test, which creates the virtualenv with the openai package (or set SLUICE_PYTHON)",
        path.display()
    );
    path
}

/// Runs `tests/python/<script>` with the openai package against the
/// gateway at `base_url` (…/v1).
pub async fn run_python(script: &str, base_url: String) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(script);
    tokio::task::spawn_blocking(move || {
        Command::new(python())
            .arg(script)
            .env("SLUICE_BASE_URL", base_url)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed on drop, with its stderr kept so tests can read
/// the logs (e.g. to prove no secret was logged).
pub struct Process {
    child: Child,
    logs: Arc<Mutex<String>>,
}

impl Process {
    pub fn spawn(mut cmd: Command) -> Process {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()));
        let logs = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        Process { child, logs }
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// Waits until the logs contain `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.logs().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        false
    }

    /// Waits until the process has logged that it listens and `port`
    /// accepts connections (a connection alone could reach another process
    /// that took the port first); `Err` carries the exit status and the
    /// logs if the process exits first.
    pub fn wait_listening(&mut self, port: u16) -> Result<(), (Option<i32>, String)> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                return Err((status.code(), self.logs()));
            }
            if self.logs().contains(" listening")
                && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            {
                return Ok(());
            }
            assert!(
                Instant::now() < deadline,
                "process did not start listening on {port}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The exit code once the process has exited (`Some(-1)` for a
    /// signal), `None` while it runs.
    pub fn try_exit_code(&mut self) -> Option<i32> {
        match self.child.try_wait() {
            Ok(Some(status)) => {
                // Let the log reader catch up with the last lines.
                std::thread::sleep(Duration::from_millis(100));
                Some(status.code().unwrap_or(-1))
            }
            _ => None,
        }
    }

    /// SIGTERM, then waits for the exit: a graceful shutdown, as in a
    /// rolling restart.
    pub fn terminate(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("process did not exit on SIGTERM:\n{}", self.logs());
    }

    /// Resident memory of the process, from `/proc` (Linux).
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Sockets the process holds open (client and upstream connections,
    /// listeners), from `/proc` (Linux).
    pub fn open_sockets(&self) -> Option<usize> {
        let fds = std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).ok()?;
        Some(
            fds.filter_map(Result::ok)
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter(|t| t.to_string_lossy().starts_with("socket:"))
                .count(),
        )
    }

    /// SIGKILL: no graceful shutdown, as in a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running `sluice-gateway run`, killed on drop.
pub struct Gateway {
    pub process: Process,
    pub port: u16,
    pub dir: tempdir::TempDir,
}

pub struct GatewayOptions<'a> {
    pub env: Vec<(&'a str, String)>,
    pub hf_inference_url: Option<String>,
    /// `--hf-router-url`: where targets without a `base_url` go.
    pub hf_router_url: Option<String>,
    pub rust_log: &'a str,
    /// `--control-plane-token-file` (control-plane mode).
    pub token_file: Option<PathBuf>,
    /// Control-plane mode: keep the gateway's default allow-lists. Off, the
    /// harness lets packs use the test stand-ins on 127.0.0.1 and audit
    /// directories under the temp dir, as an operator of a test fleet would.
    pub default_allow_lists: bool,
    /// More `sluice-gateway run` flags.
    pub args: Vec<String>,
}

impl Default for GatewayOptions<'_> {
    fn default() -> Self {
        GatewayOptions {
            env: Vec::new(),
            hf_inference_url: None,
            hf_router_url: None,
            rust_log: "info",
            token_file: None,
            default_allow_lists: false,
            args: Vec::new(),
        }
    }
}

impl Gateway {
    /// The text of `/metrics`.
    pub async fn metrics(&self) -> String {
        reqwest::get(self.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub fn start(pack: &str) -> Gateway {
        Self::start_with(pack, GatewayOptions::default())
    }

    pub fn start_with(pack: &str, opts: GatewayOptions<'_>) -> Gateway {
        Self::try_start(pack, opts)
            .unwrap_or_else(|(code, logs)| panic!("gateway exited ({code:?}) at start:\n{logs}"))
    }

    /// Starts the gateway on a pack file; `Err` carries the exit status and
    /// the logs if it exits before becoming ready.
    pub fn try_start(
        pack: &str,
        opts: GatewayOptions<'_>,
    ) -> Result<Gateway, (Option<i32>, String)> {
        let dir = tempdir::TempDir::new();
        let config = dir.path().join("policy-config.yaml");
        std::fs::write(&config, pack).unwrap();
        let args = vec!["--policy-config".into(), config.display().to_string()];
        Self::launch(dir, args, opts)
    }

    /// Starts a gateway in control-plane mode; its cache lives in
    /// `cache_dir` so a test can restart it on the same cache.
    pub fn start_managed(
        control_plane: &str,
        gateway_id: &str,
        labels: &str,
        cache_dir: &Path,
        opts: GatewayOptions<'_>,
    ) -> Gateway {
        let mut args = vec![
            "--control-plane".into(),
            control_plane.into(),
            "--gateway-id".into(),
            gateway_id.into(),
            "--labels".into(),
            labels.into(),
            "--cache-dir".into(),
            cache_dir.display().to_string(),
        ];
        if !opts.default_allow_lists {
            args.extend([
                "--allowed-upstream-hosts".into(),
                "127.0.0.1,localhost".into(),
                "--audit-root".into(),
                std::env::temp_dir().display().to_string(),
            ]);
        }
        Self::launch(tempdir::TempDir::new(), args, opts)
            .unwrap_or_else(|(code, logs)| panic!("gateway exited ({code:?}) at start:\n{logs}"))
    }

    fn launch(
        dir: tempdir::TempDir,
        args: Vec<String>,
        opts: GatewayOptions<'_>,
    ) -> Result<Gateway, (Option<i32>, String)> {
        // A free port can be taken by another test between `free_port` and
        // the gateway's bind: try again on another port.
        let mut attempt = 0;
        loop {
            match Self::launch_once(&dir, &args, &opts) {
                Err((_, logs)) if logs.contains("binding 127.0.0.1") && attempt < 3 => attempt += 1,
                Err(e) => return Err(e),
                Ok((process, port)) => return Ok(Gateway { process, port, dir }),
            }
        }
    }

    fn launch_once(
        dir: &tempdir::TempDir,
        args: &[String],
        opts: &GatewayOptions<'_>,
    ) -> Result<(Process, u16), (Option<i32>, String)> {
        let port = free_port();
        let mut cmd = Command::new(binary("sluice-gateway"));
        cmd.arg("run")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(args);
        if let Some(url) = &opts.hf_inference_url {
            cmd.arg("--hf-inference-url").arg(url);
        }
        if let Some(url) = &opts.hf_router_url {
            cmd.arg("--hf-router-url").arg(url);
        }
        if let Some(file) = &opts.token_file {
            cmd.arg("--control-plane-token-file").arg(file);
        }
        cmd.args(&opts.args);
        cmd.env("RUST_LOG", opts.rust_log)
            .env_remove("SLUICE_HF_INFERENCE_URL")
            .env_remove("SLUICE_HF_ROUTER_URL")
            .env_remove("SLUICE_ALLOWED_SECRET_ENV")
            .env_remove("SLUICE_ALLOWED_UPSTREAM_HOSTS")
            .env_remove("SLUICE_AUDIT_ROOT")
            // Hugging Face targets fetch their tokenizer from the Hub: no
            // test reaches the real one or the user's cache unless it sets
            // these itself (opts.env comes after).
            .env("HF_ENDPOINT", "http://127.0.0.1:9")
            .env("HF_HOME", dir.path().join("hf-home"))
            .env_remove("HF_HUB_CACHE")
            .env_remove("HF_TOKEN")
            .env_remove("HF_TOKEN_PATH")
            .current_dir(dir.path());
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let mut process = Process::spawn(cmd);
        process.wait_listening(port)?;
        Ok((process, port))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("policy-config.yaml")
    }

    pub fn logs(&self) -> String {
        self.process.logs()
    }

    /// Waits until the logs contain `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        self.process.wait_for_log(needle, timeout)
    }
}

/// One chat request with a user message, as client `key` (when given).
pub async fn chat_as(
    gw: &Gateway,
    key: Option<&str>,
    model: &str,
    stream: bool,
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .json(&serde_json::json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hello there"}]}));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    req.send().await.unwrap()
}

/// The `x-sluice-policy-decisions` header ("" when absent).
pub fn decisions(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("x-sluice-policy-decisions")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// A temporary directory removed on drop (kept tiny to avoid a dependency).
pub mod tempdir {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};

    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new() -> TempDir {
            static N: AtomicU64 = AtomicU64::new(0);
            let p = std::env::temp_dir().join(format!(
                "sluice-e2e-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ));
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Default for TempDir {
        fn default() -> Self {
            Self::new()
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Server-sent events of a response body, as the `data:` payloads.
pub async fn sse_events(resp: reqwest::Response) -> Vec<String> {
    use eventsource_stream::Eventsource;
    use futures::StreamExt;
    let mut out = Vec::new();
    let mut events = resp.bytes_stream().eventsource();
    while let Some(ev) = events.next().await {
        match ev {
            Ok(ev) => out.push(ev.data),
            Err(e) => {
                out.push(format!("<transport error: {e}>"));
                break;
            }
        }
    }
    out
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Every audit record in the `.jsonl` files of `dir`, in file order.
pub fn audit_records(dir: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().and_then(|x| x.to_str()) == Some("jsonl") {
            for line in std::fs::read_to_string(p).unwrap().lines() {
                out.push(serde_json::from_str(line).unwrap());
            }
        }
    }
    out
}

/// Waits (up to 5 s) until `dir` holds at least `n` audit records (an
/// answer waits for its own record; records of requests the client gave up
/// on, and metrics-only work, may still be on their way).
pub async fn wait_audit_records(dir: &Path, n: usize) -> Vec<serde_json::Value> {
    for _ in 0..100 {
        let r = if dir.exists() {
            audit_records(dir)
        } else {
            Vec::new()
        };
        if r.len() >= n {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("expected {n} audit records, found {:?}", audit_records(dir));
}

/// Runs `sluice-gateway check` on `pack`, which must be refused; its
/// error output.
pub fn check_refuses(pack: &str) -> String {
    let dir = tempdir::TempDir::new();
    let path = dir.path().join("pack.yaml");
    std::fs::write(&path, pack).unwrap();
    let out = Command::new(binary("sluice-gateway"))
        .arg("check")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success(), "the pack was accepted");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Chat requests one after another (20 ms apart) until `stop`: how many
/// were answered 200, and what each other answer or error was.
pub async fn steady_traffic(
    url: String,
    model: &'static str,
    key: Option<String>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> (u64, Vec<String>) {
    use std::sync::atomic::Ordering;
    let http = reqwest::Client::new();
    let (mut ok, mut failed) = (0, Vec::new());
    while !stop.load(Ordering::Relaxed) {
        let mut req = http.post(&url).json(&serde_json::json!({"model": model, "messages": [{"role": "user", "content": "What is the capital of France?"}]}));
        if let Some(k) = &key {
            req = req.bearer_auth(k);
        }
        match req.send().await {
            Ok(r) if r.status() == 200 => ok += 1,
            Ok(r) => failed.push(format!(
                "{}: {}",
                r.status(),
                r.text().await.unwrap_or_default()
            )),
            Err(e) => failed.push(e.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (ok, failed)
}

/// Waits (up to 15 s) until `gw` answers a chat request with `key` with 200:
/// a managed gateway has its pack and the key from the control plane.
pub async fn wait_serving(gw: &Gateway, model: &str, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = reqwest::Client::new()
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&serde_json::json!({"model": model, "messages": [{"role": "user", "content": "Hi"}]}))
            .send()
            .await
            .map(|r| r.status().as_u16());
        if let Ok(200) = status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway never served: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
