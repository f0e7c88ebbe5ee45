//! What `--model` names: a Hub repository at a revision, or a local folder.
//!
//! Revisions become folder names in the cache, so they are checked before
//! anything touches the disk: a revision like `../../etc` must never turn
//! into a path. The error wording follows the operating guide's
//! troubleshooting table ("path traversal error … use a clean revision").

use std::fmt;
use std::path::PathBuf;

use super::HubError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRef {
    Hub(HubModel),
    /// A folder already laid out like a model snapshot; nothing is fetched.
    LocalDir(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubModel {
    /// `org/model` (or a legacy single-part name).
    pub repo: String,
    /// As requested, sanitised; `latest` and an empty revision mean `main`.
    pub revision: String,
}

impl fmt::Display for HubModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.repo, self.revision)
    }
}

impl ModelRef {
    /// Parses `ORG/MODEL[@REVISION]`, or a path to a local model folder
    /// (absolute, `./…`, `../…`, `~/…`, or any existing directory).
    pub fn parse(spec: &str) -> Result<ModelRef, HubError> {
        let spec = spec.trim();
        let looks_like_path = spec.starts_with('/')
            || spec.starts_with("./")
            || spec.starts_with("../")
            || spec.starts_with("~/");
        if looks_like_path || std::path::Path::new(spec).is_dir() {
            let path = match spec.strip_prefix("~/") {
                Some(rest) => home_dir().join(rest),
                None => PathBuf::from(spec),
            };
            if !path.is_dir() {
                return Err(HubError::BadModel(format!(
                    "'{spec}' is not a directory; give a local model folder or ORG/MODEL[@REVISION]"
                )));
            }
            return Ok(ModelRef::LocalDir(path));
        }
        let (repo, revision) = match spec.split_once('@') {
            Some((r, rev)) => (r, rev),
            None => (spec, "main"),
        };
        Ok(ModelRef::Hub(HubModel {
            repo: check_repo(repo)?,
            revision: sanitise_revision(revision)?,
        }))
    }
}

fn check_repo(repo: &str) -> Result<String, HubError> {
    if !sluice_proto::pack::targets::is_hub_model_id(repo) {
        return Err(HubError::BadModel(format!(
            "'{repo}' is not a Hub model id: write ORG/MODEL[@REVISION] (letters, digits, '-', '_', '.')"
        )));
    }
    Ok(repo.to_string())
}

/// `latest` → `main`; otherwise letters, digits, `_`, `-`, `.`, never `..`.
pub fn sanitise_revision(revision: &str) -> Result<String, HubError> {
    let revision = revision.trim();
    if revision.is_empty() || revision == "latest" {
        return Ok("main".into());
    }
    if !sluice_proto::pack::targets::is_clean_revision(revision) {
        return Err(HubError::PathTraversal(format!(
            "revision '{}' is not a clean revision name; use letters, digits, '_', '-' and '.' only (commit SHAs are safe)",
            revision.escape_debug()
        )));
    }
    Ok(revision.to_string())
}

pub fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(spec: &str) -> HubModel {
        match ModelRef::parse(spec).unwrap() {
            ModelRef::Hub(h) => h,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn revisions_default_and_pin() {
        assert_eq!(hub("org/m").revision, "main");
        assert_eq!(hub("org/m@latest").revision, "main");
        assert_eq!(hub("org/m@v1.0").revision, "v1.0");
        let sha = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(hub(&format!("org/m@{sha}")).revision, sha);
        assert_eq!(hub("gpt2").repo, "gpt2");
    }

    #[test]
    fn unsafe_revisions_are_path_traversal_errors() {
        for bad in ["../x", "a/b", "..", "refs/pr/1", "a b", "x\0y", "."] {
            let err = ModelRef::parse(&format!("org/m@{bad}")).unwrap_err();
            assert!(matches!(err, HubError::PathTraversal(_)), "{bad}: {err:?}");
            assert!(err.to_string().contains("path traversal"), "{err}");
        }
    }

    #[test]
    fn bad_repo_ids_are_refused() {
        for bad in ["org/../m", "a/b/c", "org/.hidden", "org/m m", "/"] {
            if bad == "/" {
                continue; // an absolute path: parsed as a (missing) folder
            }
            assert!(
                matches!(ModelRef::parse(bad), Err(HubError::BadModel(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            ModelRef::parse("/definitely/not/here"),
            Err(HubError::BadModel(_))
        ));
    }

    #[test]
    fn existing_directories_are_local_models() {
        let dir = std::env::temp_dir();
        assert_eq!(
            ModelRef::parse(dir.to_str().unwrap()).unwrap(),
            ModelRef::LocalDir(dir)
        );
    }
}
