//! The `sluice` command-line client, run as a process against the real
//! control plane on Postgres and a real gateway: login and its 0600 file,
//! the pack lifecycle with errors by position, activation watched until
//! the gateway ACKs (and a NACK reported with its reason), keys, operators,
//! the audit query and chain verification, JSON output and exit codes.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};
use sluice_e2e::control::{ADMIN_TOKEN, ControlPlane, Database};
use sluice_e2e::upstream::Upstream;
use sluice_e2e::{Gateway, binary, tempdir::TempDir};

/// Runs `sluice` with its own config directory and nothing inherited that
/// could log it in.
fn sluice(config: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(binary("sluice"));
    cmd.args(args)
        .env("XDG_CONFIG_HOME", config)
        .env("HOME", config)
        .env_remove("SLUICE_TOKEN")
        .env_remove("SLUICE_CONTROL_PLANE")
        .env_remove("SLUICE_CREDENTIALS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn sluice");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json_of(out: &Output) -> Value {
    serde_json::from_str(&ok(out)).expect("--output json prints JSON")
}

/// Waits (30 s at most) until every `env=test` gateway ACKs its version.
const WATCH: &[&str] = &[
    "fleet",
    "watch",
    "--selector",
    "env=test",
    "--timeout",
    "30",
];

fn pack(model: &str, up: &Upstream, extra: &str) -> String {
    format!(
        "pack:\n  name: cli-pack\nproviders:\n  targets:\n    - id: chat\n      provider: openai:org/{model}\n      base_url: {}/v1\n{extra}",
        up.base("ok")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_manages_packs_and_watches_the_fleet_from_the_command_line() {
    let db = Database::create().await;
    let cp = ControlPlane::start(&db);
    let url = format!("http://127.0.0.1:{}", cp.http_port);
    let up = Upstream::start().await;
    let home = TempDir::new();
    let cfg = home.path();

    // Not logged in: a clear message and exit code 3.
    let out = sluice(cfg, &["pack", "list"], None);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("sluice login"), "{}", stderr(&out));

    // A wrong token is refused and nothing is saved.
    let out = sluice(
        cfg,
        &["login", "--control-plane", &url],
        Some("sop-not-a-token\n"),
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let creds = cfg.join("sluice/credentials.json");
    assert!(!creds.exists());

    // The right one is kept, readable by its owner only.
    ok(&sluice(
        cfg,
        &["login", "--control-plane", &url],
        Some(&format!("{ADMIN_TOKEN}\n")),
    ));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&creds).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "credentials file mode {mode:o}");
    assert!(
        std::fs::read_to_string(&creds)
            .unwrap()
            .contains(ADMIN_TOKEN)
    );
    let me = json_of(&sluice(cfg, &["whoami", "--output", "json"], None));
    assert_eq!(me, json!({"name": "bootstrap-admin", "role": "admin"}));
    assert!(ok(&sluice(cfg, &["whoami"], None)).contains("bootstrap-admin"));

    // apply: created, unchanged, next version.
    let dir = TempDir::new();
    let v1 = dir.path().join("pack.yaml");
    std::fs::write(&v1, pack("m1", &up, "")).unwrap();
    let v1s = v1.to_str().unwrap();
    assert!(ok(&sluice(cfg, &["pack", "apply", "-f", v1s], None)).contains("cli-pack@1 created"));
    assert!(ok(&sluice(cfg, &["pack", "apply", "-f", v1s], None)).contains("unchanged"));
    let v2 = dir.path().join("pack-v2.yaml");
    std::fs::write(&v2, pack("m2", &up, "")).unwrap();
    let applied = json_of(&sluice(
        cfg,
        &["pack", "apply", "-f", v2.to_str().unwrap(), "-o", "json"],
        None,
    ));
    assert_eq!(applied["version"], 2, "{applied}");

    // An invalid pack: each error at FILE:line:col, exit 6, nothing created.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "pack:\n  name: cli-pack\nproviders:\n  targets:\n    - id: chat\n      provider: openai:org/m\n      base_url: http://127.0.0.1:9/v1\n      timeout_seconds: -1\n",
    )
    .unwrap();
    let out = sluice(cfg, &["pack", "apply", "-f", bad.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{}:8:24: error: providers.targets[0].timeout_seconds:",
            bad.display()
        )),
        "{err}"
    );
    assert!(err.contains("the pack was not accepted"), "{err}");

    // list, get (the body as stored), versions, diff.
    let list = ok(&sluice(cfg, &["pack", "list"], None));
    assert!(list.starts_with("NAME"), "{list}");
    assert!(
        list.lines()
            .any(|l| l.starts_with("cli-pack") && l.contains(" 2 ")),
        "{list}"
    );
    let body = ok(&sluice(
        cfg,
        &["pack", "get", "cli-pack", "--version", "1"],
        None,
    ));
    assert_eq!(body, pack("m1", &up, ""));
    let diff = ok(&sluice(cfg, &["pack", "diff", "cli-pack", "1", "2"], None));
    assert!(
        diff.contains("-      provider: openai:org/m1")
            && diff.contains("+      provider: openai:org/m2"),
        "{diff}"
    );
    let out = sluice(cfg, &["pack", "get", "no-such-pack"], None);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));

    // A gateway in the fleet; activate, watch until it ACKs.
    let cache = TempDir::new();
    let _gw = Gateway::start_managed(
        &cp.grpc_url(),
        "gw-cli",
        "env=test",
        cache.path(),
        cp.gateway_options("gw-cli", cache.path()).await,
    );
    let out = ok(&sluice(
        cfg,
        &[
            "pack",
            "activate",
            "cli-pack",
            "--version",
            "1",
            "--selector",
            "env=test",
        ],
        None,
    ));
    assert!(out.contains("cli-pack@1"), "{out}");
    let watched = ok(&sluice(cfg, WATCH, None));
    assert!(watched.contains("cli-pack@1: ACKed by all 1"), "{watched}");
    let status = ok(&sluice(cfg, &["fleet", "status"], None));
    let row = status
        .lines()
        .find(|l| l.starts_with("gw-cli"))
        .unwrap_or_else(|| panic!("{status}"));
    assert!(
        row.contains("env=test") && row.contains("cli-pack@1") && row.contains("ACK"),
        "{row}"
    );

    ok(&sluice(
        cfg,
        &[
            "pack",
            "activate",
            "cli-pack",
            "--version",
            "2",
            "--selector",
            "env=test",
        ],
        None,
    ));
    let w = json_of(&sluice(
        cfg,
        &[
            "fleet",
            "watch",
            "--selector",
            "env=test",
            "--timeout",
            "30",
            "-o",
            "json",
        ],
        None,
    ));
    assert_eq!(
        (w["version"].as_str(), w["acked"].as_bool()),
        (Some("cli-pack@2"), Some(true)),
        "{w}"
    );
    // Rollback finds the pack's only deployment by itself.
    assert!(ok(&sluice(cfg, &["pack", "rollback", "cli-pack"], None)).contains("cli-pack@1"));
    ok(&sluice(cfg, WATCH, None));

    // A version this gateway cannot compile (its audit directory's parent
    // is a file): watch exits 8 with the gateway's reason.
    let file = cache.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let v3 = dir.path().join("pack-v3.yaml");
    std::fs::write(
        &v3,
        pack(
            "m3",
            &up,
            &format!(
                "policies:\n  chain: [audit-logger]\n  policy:\n    audit-logger:\n      path: {}/audit\n",
                file.display()
            ),
        ),
    )
    .unwrap();
    ok(&sluice(
        cfg,
        &["pack", "apply", "-f", v3.to_str().unwrap()],
        None,
    ));
    ok(&sluice(
        cfg,
        &[
            "pack",
            "activate",
            "cli-pack",
            "--version",
            "3",
            "--selector",
            "env=test",
        ],
        None,
    ));
    let out = sluice(
        cfg,
        &[
            "fleet",
            "watch",
            "--selector",
            "env=test",
            "--timeout",
            "20",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("gw-cli") && err.contains("audit"), "{err}");
    let status = ok(&sluice(cfg, &["fleet", "status"], None));
    assert!(
        status.contains("NACK") && status.contains("cli-pack@1"),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_operators_and_the_audit_from_the_command_line() {
    let db = Database::create().await;
    let cp = ControlPlane::start(&db);
    let url = format!("http://127.0.0.1:{}", cp.http_port);
    let up = Upstream::start().await;
    let home = TempDir::new();
    let cfg = home.path();
    let token_file = home.path().join("admin.token");
    std::fs::write(&token_file, ADMIN_TOKEN).unwrap();
    ok(&sluice(
        cfg,
        &[
            "login",
            "--control-plane",
            &url,
            "--token-file",
            token_file.to_str().unwrap(),
        ],
        None,
    ));

    // Keys: the key is printed once, never listed.
    let key = ok(&sluice(
        cfg,
        &[
            "keys",
            "create",
            "--owner",
            "team-a",
            "--role",
            "analyst",
            "--id",
            "team-a-key",
        ],
        None,
    ));
    let key = key.trim().to_string();
    assert!(key.starts_with("sk-"), "{key}");
    let list = ok(&sluice(cfg, &["keys", "list"], None));
    assert!(
        list.contains("team-a-key") && list.contains("analyst"),
        "{list}"
    );
    assert!(!list.contains(&key), "the key itself is never listed");
    ok(&sluice(cfg, &["keys", "revoke", "team-a-key"], None));
    let keys = json_of(&sluice(cfg, &["keys", "list", "-o", "json"], None));
    assert_eq!(keys["data"][0]["enabled"], false, "{keys}");
    let out = sluice(cfg, &["keys", "revoke", "no-such-key"], None);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));

    // Operators: a viewer may read but not write (exit 4).
    let viewer_token = ok(&sluice(
        cfg,
        &["operators", "create", "--name", "vera", "--role", "viewer"],
        None,
    ));
    let ops = ok(&sluice(cfg, &["operators", "list"], None));
    assert!(ops.contains("vera") && ops.contains("viewer"), "{ops}");
    let viewer_home = TempDir::new();
    let vcfg = viewer_home.path();
    ok(&sluice(
        vcfg,
        &["login", "--control-plane", &url],
        Some(&viewer_token),
    ));
    ok(&sluice(vcfg, &["keys", "list"], None));
    let out = sluice(
        vcfg,
        &["keys", "create", "--owner", "x", "--role", "analyst"],
        None,
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("editor"), "{}", stderr(&out));
    ok(&sluice(vcfg, &["logout"], None));
    assert_eq!(sluice(vcfg, &["whoami"], None).status.code(), Some(3));

    // Audit: records shipped by a gateway, filtered by decision.
    let cache = TempDir::new();
    let gw = Gateway::start_managed(
        &cp.grpc_url(),
        "gw-audit",
        "env=test",
        cache.path(),
        cp.gateway_options("gw-audit", cache.path()).await,
    );
    let body = format!(
        "pack:\n  name: audited\nproviders:\n  targets:\n    - id: chat\n      provider: openai:org/m1\n      base_url: {}/v1\npolicies:\n  chain: [pii-detector, audit-logger]\n  policy:\n    pii-detector:\n      action: redact\n    audit-logger:\n      destination: api\n      path: {}/spool\n      immutable: true\n",
        up.base("ok"),
        cache.path().display()
    );
    // Gateways know client keys now: the traffic needs one, created before
    // the activation so the snapshot the gateway ACKs carries it.
    let app_key = ok(&sluice(
        cfg,
        &[
            "keys", "create", "--owner", "app", "--role", "apps", "--id", "app-key",
        ],
        None,
    ));
    let app_key = app_key.trim().to_string();
    let file = home.path().join("audited.yaml");
    std::fs::write(&file, body).unwrap();
    ok(&sluice(
        cfg,
        &["pack", "apply", "-f", file.to_str().unwrap()],
        None,
    ));
    ok(&sluice(
        cfg,
        &[
            "pack",
            "activate",
            "audited",
            "--version",
            "1",
            "--selector",
            "env=test",
        ],
        None,
    ));
    ok(&sluice(cfg, WATCH, None));
    for text in ["hello", "write to jane.doe@example.com please"] {
        let resp = reqwest::Client::new()
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(&app_key)
            .json(&json!({"model": "org/m1", "messages": [{"role": "user", "content": text}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let all = loop {
        let v = json_of(&sluice(
            cfg,
            &["audit", "query", "--since", "1h", "-o", "json"],
            None,
        ));
        if v["data"].as_array().unwrap().len() >= 2 {
            break v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "records never arrived: {v}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(all["data"].as_array().unwrap().len(), 2, "{all}");
    let redacted = ok(&sluice(
        cfg,
        &["audit", "query", "--since", "1h", "--decision", "redacted"],
        None,
    ));
    let lines: Vec<&str> = redacted.lines().collect();
    assert_eq!(lines.len(), 2, "a header and one record: {redacted}");
    assert!(
        lines[0].starts_with("TIME") && lines[0].contains("DECISIONS"),
        "{redacted}"
    );
    assert!(
        lines[1].contains("gw-audit") && lines[1].contains("pii-detector=redact"),
        "{redacted}"
    );
    assert!(!redacted.contains("jane.doe"), "{redacted}");
    let none = ok(&sluice(
        cfg,
        &["audit", "query", "--since", "1h", "--decision", "blocked"],
        None,
    ));
    assert_eq!(none.lines().count(), 1, "{none}");
    let out = sluice(cfg, &["audit", "query", "--since", "yesterday"], None);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("RFC 3339"), "{}", stderr(&out));

    // Verification: intact, then one changed byte is found (exit 9).
    let verified = ok(&sluice(cfg, &["audit", "verify"], None));
    assert!(
        verified.contains("gw-audit") && verified.contains("yes"),
        "{verified}"
    );
    let mut conn = db.connect().await;
    for sql in [
        "ALTER TABLE audit_records DISABLE TRIGGER audit_records_append_only",
        "UPDATE audit_records SET body = replace(body, '\"status\":200', '\"status\":201') WHERE seq = 1",
        "ALTER TABLE audit_records ENABLE TRIGGER audit_records_append_only",
    ] {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    let out = sluice(cfg, &["audit", "verify"], None);
    assert_eq!(
        out.status.code(),
        Some(9),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr(&out).contains("gw-audit at record 1"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn help_and_completion_are_there_for_every_command() {
    let home = TempDir::new();
    for args in [
        &["--help"][..],
        &["pack", "--help"],
        &["pack", "apply", "--help"],
        &["fleet", "watch", "--help"],
        &["audit", "query", "--help"],
    ] {
        let out = ok(&sluice(home.path(), args, None));
        assert!(out.contains("Usage: sluice"), "{args:?}: {out}");
    }
    let bash = ok(&sluice(home.path(), &["completion", "bash"], None));
    assert!(
        bash.contains("_sluice") && bash.contains("rollback"),
        "bash completion"
    );
    // A usage error is clap's exit code 2.
    assert_eq!(
        sluice(home.path(), &["pack", "frobnicate"], None)
            .status
            .code(),
        Some(2)
    );
}

/// Typed at a terminal, the login token is not echoed. The CLI runs on a
/// real pseudo-terminal (Python's `pty`, which the test set-up has anyway);
/// everything the terminal showed is checked.
#[test]
fn a_token_typed_at_a_terminal_is_not_echoed() {
    let cfg = TempDir::new();
    let token = "sop-typed-at-a-terminal-4b1d";
    let script = r#"
import os, pty, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], [sys.argv[1], "login", "--control-plane", "http://127.0.0.1:1"])
seen = b""
def read_for(seconds):
    global seen
    end = time.time() + seconds
    while time.time() < end:
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            return
        if not chunk:
            return
        seen += chunk
        if b"token for" in seen and seconds < 5:
            return
read_for(4)
# Type only once the prompt has turned echo off, as a person would after
# seeing it (the prompt is printed just before).
import termios
end = time.time() + 5
while time.time() < end and termios.tcgetattr(fd)[3] & termios.ECHO:
    time.sleep(0.01)
os.write(fd, sys.argv[2].encode() + b"\n")
read_for(10)
os.waitpid(pid, 0)
sys.stdout.write(seen.decode(errors="replace"))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(binary("sluice"))
        .arg(token)
        .env("XDG_CONFIG_HOME", cfg.path())
        .env("HOME", cfg.path())
        .env_remove("SLUICE_TOKEN")
        .env_remove("SLUICE_CONTROL_PLANE")
        .output()
        .expect("python3 runs");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("Operator token for http://127.0.0.1:1"),
        "{shown}"
    );
    assert!(!shown.contains(token), "the token was echoed: {shown}");
    // It was read: the login went on to the (unreachable) control plane.
    assert!(shown.contains("cannot reach the control plane"), "{shown}");
}
