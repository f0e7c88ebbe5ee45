//! Hugging Face token resolution, in the operating guide's order: the
//! explicit secret (`--hf-token-env VAR`), `HF_TOKEN`, the file named by
//! `HF_TOKEN_PATH`, then the CLI's token file (`$HF_HOME/token`, by default
//! `~/.cache/huggingface/token`). The value is never logged: `Debug` and
//! `source()` name only where it came from.

use std::fmt;
use std::path::PathBuf;

use super::HubError;
use super::model_ref::home_dir;

#[derive(Clone)]
pub struct HfToken {
    value: String,
    source: String,
}

impl HfToken {
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Where the token came from, e.g. "environment variable HF_TOKEN".
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl fmt::Debug for HfToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HfToken(<redacted>, from {})", self.source)
    }
}

/// Reads the environment through `env` so tests need not mutate the
/// process's own.
pub fn resolve_with(
    explicit_env: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<HfToken>, HubError> {
    let nonempty = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    if let Some(var) = explicit_env {
        // An explicit secret that is missing is a deployment error, not a
        // reason to fall back silently to some other token.
        return match nonempty(env(var)) {
            Some(value) => Ok(Some(HfToken {
                value,
                source: format!("environment variable {var}"),
            })),
            None => Err(HubError::Token(format!(
                "--hf-token-env names {var}, but {var} is unset or empty; set it from your secret store or drop the flag"
            ))),
        };
    }
    if let Some(value) = nonempty(env("HF_TOKEN")) {
        return Ok(Some(HfToken {
            value,
            source: "environment variable HF_TOKEN".into(),
        }));
    }
    let mut files: Vec<(PathBuf, bool)> = Vec::new();
    if let Some(p) = nonempty(env("HF_TOKEN_PATH")) {
        files.push((PathBuf::from(p), true));
    }
    let hf_home = nonempty(env("HF_HOME"))
        .map(PathBuf::from)
        .unwrap_or_else(|| home_dir().join(".cache/huggingface"));
    files.push((hf_home.join("token"), false));
    for (path, named) in files {
        match std::fs::read_to_string(&path) {
            Ok(s) if !s.trim().is_empty() => {
                return Ok(Some(HfToken {
                    value: s.trim().to_string(),
                    source: format!("token file {}", path.display()),
                }));
            }
            Ok(_) => {}
            Err(e) if named && e.kind() != std::io::ErrorKind::NotFound => {
                return Err(HubError::Token(format!(
                    "HF_TOKEN_PATH names {}, which cannot be read: {e}",
                    path.display()
                )));
            }
            Err(_) => {}
        }
    }
    Ok(None)
}

pub fn resolve(explicit_env: Option<&str>) -> Result<Option<HfToken>, HubError> {
    resolve_with(explicit_env, |k| std::env::var(k).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn order_is_explicit_env_file_then_cli_cache() {
        let dir = std::env::temp_dir().join(format!("sluice-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("tok");
        std::fs::write(&file, "hf_file\n").unwrap();
        std::fs::write(dir.join("token"), "hf_cli").unwrap();
        let path = file.to_str().unwrap();
        let home = dir.to_str().unwrap();

        let all = env(&[
            ("MY_TOKEN", "hf_explicit"),
            ("HF_TOKEN", "hf_env"),
            ("HF_TOKEN_PATH", path),
            ("HF_HOME", home),
        ]);
        let t = resolve_with(Some("MY_TOKEN"), &all).unwrap().unwrap();
        assert_eq!(t.value(), "hf_explicit");
        assert_eq!(resolve_with(None, &all).unwrap().unwrap().value(), "hf_env");
        let no_env = env(&[("HF_TOKEN_PATH", path), ("HF_HOME", home)]);
        assert_eq!(
            resolve_with(None, &no_env).unwrap().unwrap().value(),
            "hf_file"
        );
        let cli = env(&[("HF_HOME", home)]);
        let t = resolve_with(None, &cli).unwrap().unwrap();
        assert_eq!(t.value(), "hf_cli");
        assert!(t.source().contains("token file"));
        let none = env(&[("HF_HOME", "/nonexistent-sluice")]);
        assert!(resolve_with(None, &none).unwrap().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_explicit_secret_is_an_error_not_a_fallback() {
        let e = resolve_with(Some("MY_TOKEN"), env(&[("HF_TOKEN", "hf_env")])).unwrap_err();
        assert!(e.to_string().contains("MY_TOKEN"), "{e}");
    }

    #[test]
    fn debug_never_shows_the_value() {
        let t = resolve_with(None, env(&[("HF_TOKEN", "hf_secret_value")]))
            .unwrap()
            .unwrap();
        assert!(!format!("{t:?}").contains("hf_secret_value"));
    }
}
