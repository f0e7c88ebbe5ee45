//! Resolving, listing and fetching one model into the cache (see the module
//! docs of `hub` for the guarantees).

use std::collections::HashMap;
use std::future::Future;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hf_hub::repository::RepoTreeEntry;
use hf_hub::{HFClient, HFError, HFRepository, RepoTypeModel};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{HfToken, HubError, HubModel};

#[derive(Debug, Clone)]
pub struct HubOptions {
    /// `<cache-dir>`; a model lands in `<cache-dir>/<org>/<model>/<revision>/`.
    pub cache_dir: PathBuf,
    /// The hub's base URL; `None`: `HF_ENDPOINT`, else huggingface.co.
    pub endpoint: Option<String>,
    pub token: Option<HfToken>,
    /// Fetch only this GGUF file (and no safetensors).
    pub gguf_file: Option<String>,
    /// Tries per request, the first included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    /// Limit for a metadata call, and for a pause in a file's byte stream.
    pub request_timeout: Duration,
    /// Draw a progress bar on stderr (the `pull` command).
    pub progress: bool,
}

impl HubOptions {
    pub fn new(cache_dir: PathBuf) -> HubOptions {
        HubOptions {
            cache_dir,
            endpoint: None,
            token: None,
            gguf_file: None,
            max_attempts: 6,
            base_delay: Duration::from_millis(500),
            request_timeout: Duration::from_secs(60),
            progress: false,
        }
    }
}

/// What `fetch` produced.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub dir: PathBuf,
    /// The commit the revision resolved to, when the hub reported one.
    pub commit: Option<String>,
    pub downloaded: Vec<String>,
    pub skipped: Vec<String>,
    /// The hub was not reachable and a complete earlier download was used.
    pub offline: bool,
}

/// Recorded after a complete download, so a later start knows which commit
/// the files came from (a moved `main` must not keep stale files that happen
/// to have the same size) and can start without the hub.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    repo: String,
    revision: String,
    commit: Option<String>,
    /// The selection it covers: a GGUF file, or safetensors when `None`.
    #[serde(default)]
    gguf_file: Option<String>,
    files: Vec<ManifestFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct ManifestFile {
    path: String,
    size: u64,
    oid: String,
}

const MANIFEST: &str = ".cache/sluice/download.json";

/// A file as the hub lists it.
#[derive(Debug, Clone)]
struct Listed {
    path: String,
    size: u64,
    oid: String,
    sha256: Option<String>,
}

enum Failure {
    Fatal(HubError),
    Transient(String),
}

pub struct Hub {
    client: HFClient,
    opts: HubOptions,
}

impl Hub {
    pub fn new(opts: HubOptions) -> Result<Hub, HubError> {
        let mut b = HFClient::builder()
            .user_agent(concat!("sluice-worker/", env!("CARGO_PKG_VERSION")))
            // One retry policy for everything, ours (it also covers bodies).
            .retry_max_attempts(0);
        if let Some(e) = &opts.endpoint {
            b = b.endpoint(e.clone());
        }
        if let Some(t) = &opts.token {
            b = b.token(t.value());
        }
        let client = b.build().map_err(|e| HubError::Malformed {
            what: "the hub client".into(),
            detail: e.to_string(),
        })?;
        Ok(Hub { client, opts })
    }

    pub fn model_dir(&self, model: &HubModel) -> PathBuf {
        let mut dir = self.opts.cache_dir.clone();
        for part in model.repo.split('/') {
            dir.push(part);
        }
        dir.push(&model.revision);
        dir
    }

    pub async fn fetch(&self, model: &HubModel) -> Result<Fetched, HubError> {
        let dir = self.model_dir(model);
        // A record of another selection (another --gguf-file) says nothing
        // about the files this start needs.
        let manifest = read_manifest(&dir).filter(|m| m.gguf_file == self.opts.gguf_file);
        // A commit is immutable: a complete download of it needs no hub.
        if is_commit(&model.revision)
            && let Some(m) = manifest.as_ref().filter(|m| complete(&dir, m))
        {
            return Ok(from_cache(dir, m, false));
        }
        let (owner, name) = hf_hub::split_id(&model.repo);
        let repo = self.client.model(owner, name);
        let listing = match self.resolve_and_list(&repo, model).await {
            Ok(l) => l,
            Err(HubError::Unavailable {
                what,
                attempts,
                last,
            }) => {
                return match manifest.as_ref().filter(|m| complete(&dir, m)) {
                    Some(m) => {
                        tracing::warn!(model = %model, %last, "the hub is unreachable; starting from the files downloaded earlier");
                        Ok(from_cache(dir, m, true))
                    }
                    None => Err(HubError::Unavailable {
                        what,
                        attempts,
                        last,
                    }),
                };
            }
            Err(e) => return Err(e),
        };
        let (commit, files) = listing;
        for f in &files {
            check_name(&f.path)?;
        }
        let wanted = select(&files, self.opts.gguf_file.as_deref(), model)?;
        std::fs::create_dir_all(&dir)
            .map_err(|e| HubError::io(format!("creating {}", dir.display()), e))?;

        let known: HashMap<&str, &ManifestFile> = manifest
            .as_ref()
            .map(|m| m.files.iter().map(|f| (f.path.as_str(), f)).collect())
            .unwrap_or_default();
        let rev = commit.clone().unwrap_or_else(|| model.revision.clone());
        let (mut downloaded, mut skipped) = (Vec::new(), Vec::new());
        let mut record_cleared = false;
        for f in &wanted {
            let dst = dir.join(&f.path);
            let size_ok = std::fs::metadata(&dst).is_ok_and(|m| m.is_file() && m.len() == f.size);
            // Files put there by another tool (no manifest) are trusted on
            // size, as with `huggingface-cli download`; ours also on oid.
            let same = known.get(f.path.as_str()).is_none_or(|k| k.oid == f.oid);
            if size_ok && same {
                skipped.push(f.path.clone());
                continue;
            }
            if !record_cleared {
                // Until the update completes the folder holds no complete
                // download: an interrupted update must not be served
                // offline as a mix of two commits.
                remove_manifest(&dir)?;
                record_cleared = true;
            }
            self.download(&repo, &rev, f, &dst).await?;
            downloaded.push(f.path.clone());
        }
        // Files of the earlier download that this revision no longer has
        // (e.g. after a re-shard) would be loaded next to the new ones.
        if let Some(old) = &manifest {
            for f in old
                .files
                .iter()
                .filter(|f| !wanted.iter().any(|w| w.path == f.path))
            {
                match std::fs::remove_file(dir.join(&f.path)) {
                    Ok(()) => {
                        tracing::info!(file = %f.path, "removed a file the revision no longer has")
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(HubError::io(format!("removing {}", f.path), e)),
                }
            }
        }
        let m = Manifest {
            repo: model.repo.clone(),
            revision: model.revision.clone(),
            commit: commit.clone(),
            gguf_file: self.opts.gguf_file.clone(),
            files: wanted
                .iter()
                .map(|f| ManifestFile {
                    path: f.path.clone(),
                    size: f.size,
                    oid: f.oid.clone(),
                })
                .collect(),
        };
        write_manifest(&dir, &m)?;
        Ok(Fetched {
            dir,
            commit,
            downloaded,
            skipped,
            offline: false,
        })
    }

    async fn resolve_and_list(
        &self,
        repo: &HFRepository<RepoTypeModel>,
        model: &HubModel,
    ) -> Result<(Option<String>, Vec<Listed>), HubError> {
        let what = format!("{model}");
        let info = self
            .with_retries(&format!("resolving {what}"), || async {
                timeout(
                    self.opts.request_timeout,
                    repo.info().revision(model.revision.clone()).send(),
                )
                .await
                .and_then(|r| r.map_err(|e| classify(&e, &what)))
            })
            .await?;
        let commit = info.sha.filter(|s| is_commit(s));
        let rev = commit.clone().unwrap_or_else(|| model.revision.clone());
        let files = self
            .with_retries(&format!("listing {what}"), || async {
                let list = async {
                    let stream = repo
                        .list_tree()
                        .revision(rev.clone())
                        .recursive(true)
                        .send()
                        .map_err(|e| classify(&e, &what))?;
                    futures::pin_mut!(stream);
                    let mut out = Vec::new();
                    while let Some(entry) = stream.next().await {
                        if let RepoTreeEntry::File {
                            oid,
                            size,
                            path,
                            lfs,
                            ..
                        } = entry.map_err(|e| classify(&e, &what))?
                        {
                            let sha256 = lfs.and_then(|l| l.sha256).filter(|s| s.len() == 64);
                            out.push(Listed {
                                path,
                                size,
                                oid,
                                sha256,
                            });
                        }
                    }
                    Ok(out)
                };
                timeout(self.opts.request_timeout, list)
                    .await
                    .and_then(|r| r)
            })
            .await?;
        Ok((commit, files))
    }

    async fn download(
        &self,
        repo: &HFRepository<RepoTypeModel>,
        rev: &str,
        f: &Listed,
        dst: &Path,
    ) -> Result<(), HubError> {
        let parent = dst.parent().expect("a file in the model folder");
        std::fs::create_dir_all(parent)
            .map_err(|e| HubError::io(format!("creating {}", parent.display()), e))?;
        let base = dst.file_name().unwrap().to_string_lossy();
        let partial = parent.join(format!(".{base}.sluice-partial"));
        let started = Instant::now();
        tracing::info!(file = %f.path, bytes = f.size, "downloading");
        let bar = self.opts.progress.then(|| progress_bar(&f.path, f.size));
        let what = format!("{} ({})", f.path, rev);
        let result = self
            .with_retries(&format!("downloading {what}"), || async {
                if let Some(b) = &bar {
                    b.set_position(0);
                }
                let send = repo
                    .download_file_stream()
                    .filename(f.path.clone())
                    .revision(rev.to_string())
                    .send();
                let (_, mut body) = timeout(self.opts.request_timeout, send)
                    .await?
                    .map_err(|e| classify(&e, &what))?;
                let mut file = tokio::fs::File::create(&partial).await.map_err(|e| {
                    Failure::Fatal(HubError::io(format!("creating {}", partial.display()), e))
                })?;
                let mut hash = Sha256::new();
                let mut written = 0u64;
                loop {
                    let chunk = match tokio::time::timeout(self.opts.request_timeout, body.next())
                        .await
                    {
                        Err(_) => return Err(Failure::Transient("the transfer stalled".into())),
                        Ok(None) => break,
                        Ok(Some(Err(e))) => return Err(classify(&e, &what)),
                        Ok(Some(Ok(c))) => c,
                    };
                    hash.update(&chunk);
                    written += chunk.len() as u64;
                    if let Some(b) = &bar {
                        b.set_position(written);
                    }
                    file.write_all(&chunk).await.map_err(|e| {
                        Failure::Fatal(HubError::io(format!("writing {}", partial.display()), e))
                    })?;
                }
                if written != f.size {
                    return Err(Failure::Transient(format!(
                        "got {written} bytes, the listing says {}",
                        f.size
                    )));
                }
                if let Some(want) = &f.sha256
                    && hex::encode(hash.finalize()) != *want
                {
                    return Err(Failure::Transient(
                        "the SHA-256 does not match the listing".into(),
                    ));
                }
                file.sync_all().await.map_err(|e| {
                    Failure::Fatal(HubError::io(format!("syncing {}", partial.display()), e))
                })?;
                Ok(())
            })
            .await;
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        if let Err(e) = result {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
        std::fs::rename(&partial, dst)
            .map_err(|e| HubError::io(format!("renaming into {}", dst.display()), e))?;
        tracing::info!(file = %f.path, secs = started.elapsed().as_secs_f64(), "downloaded");
        Ok(())
    }

    /// Exponential backoff with jitter on transient failures only.
    async fn with_retries<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T, HubError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let attempts = self.opts.max_attempts.max(1);
        let mut backoff = sluice_proto::backoff::Backoff::new(
            self.opts.base_delay,
            Duration::from_secs(30).max(self.opts.base_delay),
        );
        let mut last = String::new();
        for attempt in 0..attempts {
            match op().await {
                Ok(v) => return Ok(v),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Transient(msg)) => {
                    last = msg;
                    if attempt + 1 == attempts {
                        break;
                    }
                    let pause = backoff.next_pause();
                    tracing::warn!(what, attempt = attempt + 1, error = %last, retry_in_s = pause.as_secs_f64(), "hub request failed; retrying");
                    tokio::time::sleep(pause).await;
                }
            }
        }
        Err(HubError::Unavailable {
            what: what.to_string(),
            attempts,
            last,
        })
    }
}

async fn timeout<T>(limit: Duration, fut: impl Future<Output = T>) -> Result<T, Failure> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| Failure::Transient(format!("no answer within {} s", limit.as_secs_f64())))
}

fn status_of(e: &HFError) -> Option<u16> {
    match e {
        HFError::Http { context }
        | HFError::AuthRequired { context }
        | HFError::Forbidden { context }
        | HFError::Conflict { context }
        | HFError::RateLimited { context, .. } => Some(context.status.as_u16()),
        HFError::RepoNotFound { .. }
        | HFError::RevisionNotFound { .. }
        | HFError::EntryNotFound { .. } => Some(404),
        _ => None,
    }
}

fn classify(e: &HFError, what: &str) -> Failure {
    let repo = what.split('@').next().unwrap_or(what).to_string();
    match status_of(e) {
        Some(401) => Failure::Fatal(HubError::Unauthorized { repo }),
        Some(403) => Failure::Fatal(HubError::Gated { repo }),
        Some(404) => Failure::Fatal(HubError::NotFound {
            what: what.to_string(),
        }),
        Some(s) if s == 408 || s == 429 || s >= 500 => Failure::Transient(format!("HTTP {s}")),
        Some(s) => Failure::Fatal(HubError::Malformed {
            what: what.to_string(),
            detail: format!("HTTP {s}"),
        }),
        None => match e {
            HFError::Request { source, .. } => {
                // Transport errors (refused, reset, timed out) are worth
                // another try; the message names no secret (reqwest never
                // prints headers).
                Failure::Transient(format!("{source}"))
            }
            HFError::Io(_) => Failure::Transient(e.to_string()),
            other => Failure::Fatal(HubError::Malformed {
                what: what.to_string(),
                detail: other.to_string(),
            }),
        },
    }
}

fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A name from the hub, refused unless it is a plain relative path that
/// stays inside the model folder.
pub fn check_name(name: &str) -> Result<(), HubError> {
    let bad = || {
        Err(HubError::PathTraversal(format!(
            "the hub listed a file named '{}', which would land outside the model folder; refusing the whole model (is HF_ENDPOINT pointing at a trustworthy hub?)",
            name.escape_debug()
        )))
    };
    if name.is_empty() || name.contains('\\') || name.contains('\0') {
        return bad();
    }
    let path = Path::new(name);
    if !path.components().all(|c| matches!(c, Component::Normal(_))) {
        return bad();
    }
    if name
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return bad();
    }
    Ok(())
}

/// The files a model needs: configs, tokenizer, and either the safetensors
/// weights or the one GGUF file asked for.
fn select(files: &[Listed], gguf: Option<&str>, model: &HubModel) -> Result<Vec<Listed>, HubError> {
    const SIDE_FILES: [&str; 9] = [
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "tokenizer.model",
        "chat_template.json",
        "chat_template.jinja",
        "model.safetensors.index.json",
    ];
    if let Some(g) = gguf {
        return match files.iter().find(|f| f.path == g) {
            Some(f) => Ok(vec![f.clone()]),
            None => {
                let ggufs: Vec<&str> = files
                    .iter()
                    .filter(|f| f.path.ends_with(".gguf"))
                    .map(|f| f.path.as_str())
                    .collect();
                Err(HubError::NotFound {
                    what: format!(
                        "{model} has no file '{g}'{}",
                        if ggufs.is_empty() {
                            String::new()
                        } else {
                            format!("; its GGUF files are: {}", ggufs.join(", "))
                        }
                    ),
                })
            }
        };
    }
    let top = |f: &&Listed| !f.path.contains('/');
    let sharded = files
        .iter()
        .filter(top)
        .any(|f| f.path.starts_with("model-") && f.path.ends_with(".safetensors"));
    let weights: Vec<Listed> = files
        .iter()
        .filter(top)
        .filter(|f| f.path.ends_with(".safetensors"))
        // Mistral-style repos ship the same weights twice; mistral.rs would
        // load both.
        .filter(|f| !(sharded && f.path == "consolidated.safetensors"))
        .cloned()
        .collect();
    if weights.is_empty() {
        let ggufs: Vec<&str> = files
            .iter()
            .filter(|f| f.path.ends_with(".gguf"))
            .map(|f| f.path.as_str())
            .collect();
        return Err(HubError::NotFound {
            what: if ggufs.is_empty() {
                format!(
                    "{model} has no safetensors weights (sluice-worker loads safetensors or GGUF)"
                )
            } else {
                format!(
                    "{model} has no safetensors weights; pass --gguf-file with one of: {}",
                    ggufs.join(", ")
                )
            },
        });
    }
    let mut out: Vec<Listed> = files
        .iter()
        .filter(top)
        .filter(|f| SIDE_FILES.contains(&f.path.as_str()))
        .cloned()
        .collect();
    // A sentence-transformers embedding model: its module list and the
    // modules' folders (`1_Pooling/`, `2_Dense/`, …).
    if files.iter().any(|f| f.path == "modules.json") {
        out.extend(
            files
                .iter()
                .filter(|f| is_sentence_transformers_file(&f.path))
                .cloned(),
        );
    }
    out.extend(weights);
    Ok(out)
}

fn is_sentence_transformers_file(path: &str) -> bool {
    const TOP: [&str; 3] = [
        "modules.json",
        "config_sentence_transformers.json",
        "sentence_bert_config.json",
    ];
    if TOP.contains(&path) {
        return true;
    }
    // Module folders are named `<index>_<Kind>`.
    path.split_once('/').is_some_and(|(dir, _)| {
        dir.split_once('_').is_some_and(|(n, kind)| {
            !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && !kind.is_empty()
        })
    })
}

fn manifest_path(dir: &Path) -> PathBuf {
    dir.join(MANIFEST)
}

fn read_manifest(dir: &Path) -> Option<Manifest> {
    let bytes = std::fs::read(manifest_path(dir)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn write_manifest(dir: &Path, m: &Manifest) -> Result<(), HubError> {
    let path = manifest_path(dir);
    let parent = path.parent().unwrap();
    std::fs::create_dir_all(parent)
        .map_err(|e| HubError::io(format!("creating {}", parent.display()), e))?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(m).expect("serialisable"))
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(|e| HubError::io(format!("writing {}", path.display()), e))
}

fn remove_manifest(dir: &Path) -> Result<(), HubError> {
    match std::fs::remove_file(manifest_path(dir)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(HubError::io(
            format!("removing {}", manifest_path(dir).display()),
            e,
        )),
        _ => Ok(()),
    }
}

fn complete(dir: &Path, m: &Manifest) -> bool {
    m.files.iter().all(|f| {
        std::fs::metadata(dir.join(&f.path)).is_ok_and(|md| md.is_file() && md.len() == f.size)
    })
}

fn from_cache(dir: PathBuf, m: &Manifest, offline: bool) -> Fetched {
    Fetched {
        dir,
        commit: m.commit.clone(),
        downloaded: Vec::new(),
        skipped: m.files.iter().map(|f| f.path.clone()).collect(),
        offline,
    }
}

fn progress_bar(name: &str, size: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(size);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:30!} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(name.to_string());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_outside_the_folder_are_refused() {
        for bad in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a//b",
            "./x",
            "",
            "a\\..\\b",
            "x\0",
            "a/",
        ] {
            let e = check_name(bad).unwrap_err();
            assert!(
                e.to_string().starts_with("path traversal error"),
                "{bad}: {e}"
            );
        }
        for ok in ["config.json", "onnx/model.onnx", "a.b..c"] {
            check_name(ok).unwrap();
        }
    }

    fn listed(path: &str) -> Listed {
        Listed {
            path: path.into(),
            size: 1,
            oid: "x".into(),
            sha256: None,
        }
    }

    #[test]
    fn selection_takes_what_the_model_needs() {
        let model = HubModel {
            repo: "o/m".into(),
            revision: "main".into(),
        };
        let files: Vec<Listed> = [
            "config.json",
            "tokenizer.json",
            "README.md",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
            "pytorch_model.bin",
            "m.Q4_K_M.gguf",
            "onnx/model.safetensors",
        ]
        .into_iter()
        .map(listed)
        .collect();
        let mut got: Vec<String> = select(&files, None, &model)
            .unwrap()
            .into_iter()
            .map(|f| f.path)
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                "config.json",
                "model-00001-of-00002.safetensors",
                "model-00002-of-00002.safetensors",
                "tokenizer.json"
            ]
        );
        let g = select(&files, Some("m.Q4_K_M.gguf"), &model).unwrap();
        assert_eq!(g.len(), 1);
        let e = select(&files, Some("m.Q8_0.gguf"), &model).unwrap_err();
        assert!(e.to_string().contains("m.Q4_K_M.gguf"), "{e}");
        let st: Vec<Listed> = [
            "config.json",
            "modules.json",
            "1_Pooling/config.json",
            "2_Dense/model.safetensors",
            "onnx/model.onnx",
            "model.safetensors",
        ]
        .into_iter()
        .map(listed)
        .collect();
        let mut got: Vec<String> = select(&st, None, &model)
            .unwrap()
            .into_iter()
            .map(|f| f.path)
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                "1_Pooling/config.json",
                "2_Dense/model.safetensors",
                "config.json",
                "model.safetensors",
                "modules.json"
            ]
        );
        let mistral: Vec<Listed> = [
            "consolidated.safetensors",
            "model-00001-of-00001.safetensors",
        ]
        .into_iter()
        .map(listed)
        .collect();
        let got = select(&mistral, None, &model).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].path, "model-00001-of-00001.safetensors");
        let only_gguf = vec![listed("config.json"), listed("m.Q4_K_M.gguf")];
        let e = select(&only_gguf, None, &model).unwrap_err();
        assert!(e.to_string().contains("--gguf-file"), "{e}");
    }
}
