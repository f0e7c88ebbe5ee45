//! A Hugging Face Hub played by a real HTTP server on 127.0.0.1, serving
//! the endpoints the `hf-hub` crate calls: repo info at a revision
//! (`/api/models/{repo}/revision/{rev}`), the recursive tree listing
//! (`/api/models/{repo}/tree/{rev}`) and file resolution
//! (`HEAD`/`GET /{repo}/resolve/{rev}/{file}`).
//!
//! Faults the worker must handle are switches on a repo: gated (401
//! without a token, 403 with a token that has not accepted the licence),
//! a file that answers 503 a few times before 200, an extra listing entry
//! with a hostile name, and `main` moved to a new commit.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

type Files = BTreeMap<String, Arc<Vec<u8>>>;

#[derive(Default)]
struct Repo {
    commits: HashMap<String, Files>,
    branches: HashMap<String, String>,
    /// Some(token): gated; only this bearer token gets the files.
    gated_for: Option<String>,
    /// Answer 503 this many more times for a file path.
    failures: HashMap<String, u32>,
    /// Extra listing entries (name, size) that have no content.
    bogus: Vec<(String, u64)>,
}

#[derive(Default)]
struct Shared {
    repos: Mutex<HashMap<String, Repo>>,
    log: Mutex<Vec<String>>,
}

pub struct FakeHub {
    pub port: u16,
    shared: Arc<Shared>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn commit_id(files: &Files, parent: Option<&str>) -> String {
    let mut h = Sha256::new();
    h.update(parent.unwrap_or("").as_bytes());
    for (name, data) in files {
        h.update(name.as_bytes());
        h.update(Sha256::digest(data.as_slice()));
    }
    hex::encode(h.finalize())[..40].to_string()
}

impl FakeHub {
    pub async fn start() -> FakeHub {
        let shared = Arc::new(Shared::default());
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let (port, tx) = crate::serve(app).await;
        FakeHub {
            port,
            shared,
            _shutdown: tx,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Publishes `files` as a new commit on `main` (creating the repo, or
    /// moving its `main`), and returns the commit id.
    pub fn push(&self, repo: &str, files: Vec<(String, Vec<u8>)>) -> String {
        let files: Files = files.into_iter().map(|(n, d)| (n, Arc::new(d))).collect();
        let mut repos = self.shared.repos.lock().unwrap();
        let r = repos.entry(repo.to_string()).or_default();
        let id = commit_id(&files, r.branches.get("main").map(String::as_str));
        r.commits.insert(id.clone(), files);
        r.branches.insert("main".into(), id.clone());
        id
    }

    /// Publishes every file of `dir`.
    pub fn push_dir(&self, repo: &str, dir: &std::path::Path) -> String {
        let mut files = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                files.push((
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                ));
            }
        }
        self.push(repo, files)
    }

    pub fn gate(&self, repo: &str, accepted_token: &str) {
        self.with_repo(repo, |r| r.gated_for = Some(accepted_token.into()));
    }

    pub fn fail_file(&self, repo: &str, path: &str, times: u32) {
        self.with_repo(repo, |r| {
            r.failures.insert(path.into(), times);
        });
    }

    pub fn add_bogus_entry(&self, repo: &str, name: &str, size: u64) {
        self.with_repo(repo, |r| r.bogus.push((name.into(), size)));
    }

    fn with_repo(&self, repo: &str, f: impl FnOnce(&mut Repo)) {
        let mut repos = self.shared.repos.lock().unwrap();
        f(repos.get_mut(repo).expect("push the repo first"));
    }

    /// `"METHOD /path auth=yes|no"` per request, in order.
    pub fn log(&self) -> Vec<String> {
        self.shared.log.lock().unwrap().clone()
    }

    pub fn count(&self, needle: &str) -> usize {
        self.log().iter().filter(|l| l.contains(needle)).count()
    }
}

fn not_found(msg: &str) -> Response {
    (StatusCode::NOT_FOUND, axum::Json(json!({"error": msg}))).into_response()
}

/// Splits `org/name/<rest>` where the repo may be one or two segments;
/// known repos decide.
fn split_repo<'a>(repos: &HashMap<String, Repo>, path: &'a str) -> Option<(String, &'a str)> {
    let mut parts = path.splitn(3, '/');
    let a = parts.next()?;
    let b = parts.next()?;
    let two = format!("{a}/{b}");
    if repos.contains_key(&two) {
        return Some((two, parts.next().unwrap_or("")));
    }
    if repos.contains_key(a) {
        let rest = &path[a.len() + 1..];
        return Some((a.to_string(), rest));
    }
    None
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim_start_matches("Bearer ").to_string());
    shared.log.lock().unwrap().push(format!(
        "{} {} auth={}",
        req.method(),
        path,
        if auth.is_some() { "yes" } else { "no" }
    ));
    let head = req.method() == Method::HEAD;
    let mut repos = shared.repos.lock().unwrap();

    let (api, rest) = match path.strip_prefix("/api/models/") {
        Some(r) => (true, r),
        None => (false, path.trim_start_matches('/')),
    };
    let Some((repo_id, rest)) = split_repo(&repos, rest) else {
        return not_found("Repository not found");
    };
    let repo = repos.get_mut(&repo_id).unwrap();
    if let Some(accepted) = &repo.gated_for {
        match &auth {
            None => {
                return (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(json!({"error": "Access to this model requires a token"})),
                )
                    .into_response();
            }
            Some(t) if t != accepted => {
                return (
                    StatusCode::FORBIDDEN,
                    axum::Json(
                        json!({"error": "You must accept the license to access this model"}),
                    ),
                )
                    .into_response();
            }
            Some(_) => {}
        }
    }
    let resolve = |repo: &Repo, rev: &str| -> Option<String> {
        let rev = decode(rev);
        if repo.commits.contains_key(&rev) {
            return Some(rev);
        }
        repo.branches.get(&rev).cloned()
    };

    if api {
        // info: "", "revision/{rev}"; tree: "tree/{rev}[/...]"
        let (kind, rev) = match rest.split_once('/') {
            Some(("revision", rev)) => ("info", rev.to_string()),
            Some(("tree", r)) => ("tree", r.split('/').next().unwrap_or("main").to_string()),
            _ if rest.is_empty() => ("info", "main".to_string()),
            _ => return not_found("unknown API path"),
        };
        let Some(sha) = resolve(repo, &rev) else {
            return not_found("Revision not found");
        };
        let files = &repo.commits[&sha];
        let mut entries: Vec<Value> = files
            .iter()
            .map(|(name, data)| {
                let digest = sha256_hex(data);
                let mut e = json!({
                    "type": "file",
                    "path": name,
                    "size": data.len(),
                    "oid": &digest[..40],
                });
                if name.ends_with(".safetensors") || name.ends_with(".gguf") {
                    e["lfs"] = json!({"oid": digest, "sha256": digest, "size": data.len(), "pointerSize": 134});
                }
                e
            })
            .collect();
        for (name, size) in &repo.bogus {
            entries
                .push(json!({"type": "file", "path": name, "size": size, "oid": "0".repeat(40)}));
        }
        if kind == "tree" {
            return axum::Json(Value::Array(entries)).into_response();
        }
        let siblings: Vec<Value> = entries
            .iter()
            .map(|e| json!({"rfilename": e["path"], "size": e["size"]}))
            .collect();
        return axum::Json(json!({"id": repo_id, "sha": sha, "siblings": siblings}))
            .into_response();
    }

    // /{repo}/resolve/{rev}/{file}
    let Some(rest) = rest.strip_prefix("resolve/") else {
        return not_found("unknown path");
    };
    let Some((rev, file)) = rest.split_once('/') else {
        return not_found("no file");
    };
    let file = decode(file);
    let Some(sha) = resolve(repo, rev) else {
        return not_found("Revision not found");
    };
    if let Some(n) = repo.failures.get_mut(&file)
        && *n > 0
    {
        // HEADs pass, bodies fail: what a flaky CDN looks like.
        if !head {
            *n -= 1;
            return (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response();
        }
    }
    let Some(data) = repo.commits[&sha].get(&file).cloned() else {
        return not_found("Entry not found");
    };
    let digest = sha256_hex(&data);
    let mut resp = Response::builder()
        .status(StatusCode::OK)
        .header(header::ETAG, format!("\"{digest}\""))
        .header("x-repo-commit", sha)
        .header(header::CONTENT_LENGTH, data.len());
    if head {
        resp = resp.header("x-linked-size", data.len());
        return resp.body(Body::empty()).unwrap();
    }
    resp.body(Body::from(data.as_ref().clone())).unwrap()
}
