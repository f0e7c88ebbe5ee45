//! `sluice-worker pull` against a hub played by a real HTTP server: the
//! cache layout, skipping, only the needed files, tokens (never logged),
//! gated repos, retries, path traversal, and a moved `main`.

use std::process::Output;

use sluice_e2e::hub::FakeHub;
use sluice_e2e::tempdir::TempDir;
use sluice_e2e::tiny_model;
use sluice_e2e::worker::command;

const SECRET: &str = "hf_secret_token_value_123";

async fn pull(hub: &FakeHub, home: &TempDir, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = command(home.path());
    cmd.arg("pull")
        .args(args)
        .args(["--cache-dir", home.path().join("cache").to_str().unwrap()])
        .env("HF_ENDPOINT", hub.url());
    for (k, v) in env {
        cmd.env(k, v);
    }
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A hub with the tiny model under `org/tiny` plus files the worker must
/// not fetch.
async fn hub_with_model() -> (FakeHub, TempDir) {
    let hub = FakeHub::start().await;
    let src = TempDir::new();
    tiny_model::write_safetensors_model(src.path(), 7).unwrap();
    std::fs::write(src.path().join("README.md"), "# tiny").unwrap();
    std::fs::write(src.path().join("pytorch_model.bin"), vec![1u8; 1000]).unwrap();
    hub.push_dir("org/tiny", src.path());
    (hub, src)
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_lays_out_the_cache_fetches_only_what_is_needed_and_skips_what_exists() {
    let (hub, src) = hub_with_model().await;
    let home = TempDir::new();
    let out = pull(&hub, &home, &["org/tiny"], &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = home.path().join("cache/org/tiny/main");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .split(' ')
            .next()
            .unwrap(),
        dir.to_str().unwrap()
    );
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        assert_eq!(
            std::fs::read(dir.join(f)).unwrap(),
            std::fs::read(src.path().join(f)).unwrap(),
            "{f}"
        );
    }
    assert!(!dir.join("README.md").exists());
    assert!(!dir.join("pytorch_model.bin").exists());
    // No temporary files left behind.
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.contains("partial"), "{name}");
    }
    let gets = hub.count("GET /org/tiny/resolve/");
    assert_eq!(gets, 5, "{:#?}", hub.log());

    // Second run: everything is there, nothing is downloaded again.
    let out = pull(&hub, &home, &["org/tiny@latest"], &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        hub.count("GET /org/tiny/resolve/"),
        gets,
        "{:#?}",
        hub.log()
    );

    // A truncated file (as a crash of another tool would leave) is fetched again.
    let weights = dir.join("model.safetensors");
    let len = std::fs::metadata(&weights).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&weights)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let out = pull(&hub, &home, &["org/tiny"], &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::metadata(&weights).unwrap().len(), len);
    assert_eq!(hub.count("GET /org/tiny/resolve/"), gets + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn gated_models_need_a_token_that_accepted_the_license_and_it_is_never_logged() {
    let (hub, _src) = hub_with_model().await;
    hub.gate("org/tiny", SECRET);
    let home = TempDir::new();

    let out = pull(&hub, &home, &["org/tiny"], &[]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("set or verify the token"),
        "{}",
        stderr(&out)
    );
    // 401 is not retried.
    assert_eq!(hub.log().len(), 1, "{:#?}", hub.log());

    let out = pull(
        &hub,
        &home,
        &["org/tiny"],
        &[("HF_TOKEN", "hf_other_account")],
    )
    .await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("gated: accept its license"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("hf_other_account"));

    // The explicit secret wins over HF_TOKEN, and is sent as bearer auth.
    let out = pull(
        &hub,
        &home,
        &["org/tiny", "--hf-token-env", "MY_HF_SECRET"],
        &[("MY_HF_SECRET", SECRET), ("HF_TOKEN", "hf_other_account")],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("environment variable MY_HF_SECRET"));
    assert!(!stderr(&out).contains(SECRET), "the token was logged");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(SECRET));

    // The token file of the Hugging Face CLI is the last resort.
    let home2 = TempDir::new();
    std::fs::create_dir_all(home2.path().join("hf")).unwrap();
    std::fs::write(home2.path().join("hf/token"), format!("{SECRET}\n")).unwrap();
    let out = pull(&hub, &home2, &["org/tiny"], &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains(SECRET));
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_are_retried_but_missing_models_are_not() {
    let (hub, _src) = hub_with_model().await;
    hub.fail_file("org/tiny", "model.safetensors", 2);
    let home = TempDir::new();
    let out = pull(&hub, &home, &["org/tiny"], &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        hub.count("GET /org/tiny/resolve/"),
        5 + 2,
        "{:#?}",
        hub.log()
    );
    assert!(stderr(&out).contains("retrying"), "{}", stderr(&out));

    let before = hub.log().len();
    let out = pull(&hub, &home, &["org/missing"], &[]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no such model or revision"),
        "{}",
        stderr(&out)
    );
    assert_eq!(hub.log().len(), before + 1, "404 must not be retried");

    let out = pull(&hub, &home, &["org/tiny@v9"], &[]).await;
    assert!(
        stderr(&out).contains("no such model or revision"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_names_and_revisions_are_path_traversal_errors() {
    let (hub, _src) = hub_with_model().await;
    let home = TempDir::new();
    let out = pull(&hub, &home, &["org/tiny@../../etc"], &[]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("path traversal error"),
        "{}",
        stderr(&out)
    );
    assert!(
        hub.log().is_empty(),
        "nothing may be asked for a bad revision"
    );

    hub.add_bogus_entry("org/tiny", "../../escaped.safetensors", 10);
    let out = pull(&hub, &home, &["org/tiny"], &[]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("path traversal error"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("escaped.safetensors"),
        "{}",
        stderr(&out)
    );
    assert_eq!(hub.count("/resolve/"), 0, "nothing may be downloaded");
    assert!(!home.path().join("escaped.safetensors").exists());
    assert!(!home.path().join("cache/escaped.safetensors").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_moved_main_replaces_changed_files_and_pinned_commits_need_no_hub() {
    let (hub, src) = hub_with_model().await;
    let home = TempDir::new();
    let out = pull(&hub, &home, &["org/tiny"], &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let first_rev = String::from_utf8_lossy(&out.stdout).to_string();

    // New weights, same size: a size check alone would keep the old file.
    let newer = TempDir::new();
    tiny_model::write_safetensors_model(newer.path(), 8).unwrap();
    let old = std::fs::read(src.path().join("model.safetensors")).unwrap();
    let new = std::fs::read(newer.path().join("model.safetensors")).unwrap();
    assert_eq!(old.len(), new.len());
    assert_ne!(old, new);
    let commit = hub.push_dir("org/tiny", newer.path());

    let out = pull(&hub, &home, &["org/tiny"], &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(stdout.contains(&commit), "{stdout} vs first {first_rev}");
    let dir = home.path().join("cache/org/tiny/main");
    assert_eq!(std::fs::read(dir.join("model.safetensors")).unwrap(), new);

    // Pinned to a commit: its own folder; a second start needs no hub at all.
    let pinned = format!("org/tiny@{commit}");
    let out = pull(&hub, &home, &[&pinned], &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        home.path()
            .join(format!("cache/org/tiny/{commit}/model.safetensors"))
            .exists()
    );
    let asked = hub.log().len();
    let out = pull(&hub, &home, &[&pinned], &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(hub.log().len(), asked);
}
