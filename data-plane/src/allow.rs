//! What a pack may ask of the machine it runs on, decided by the gateway's
//! operator and not by the pack: which environment variables a pack may
//! read (as target secrets, client keys or the limit store's URL), which
//! hosts a target that carries a secret may be sent to, and under which
//! directory audit logs are written.
//!
//! In control-plane mode a pack comes from anyone with the editor role, so
//! without these an editor could send `SLUICE_DATABASE_URL` to a server of
//! their own (`secret_key_ref.env` + `base_url`) or write audit files over
//! the gateway's own. Checked when a version is compiled: a pack that asks
//! for more is refused whole (the previous version keeps serving, the
//! control plane sees a NACK naming the key). A standalone gateway reads a
//! file its operator wrote, so there it restricts nothing unless asked.

use std::path::{Component, Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};
use sluice_proto::pack::{KeySecret, Pack, Policy, limits::StoreUrl};

/// Secrets a control-plane pack may name when the operator set no list.
/// No pattern here matches a `SLUICE_*` name: the gateway's own settings
/// are not for packs to read, except the limit store's documented URL
/// variable, named exactly.
pub const DEFAULT_SECRET_ENV: &[&str] = &[
    "SLUICE_LIMIT_STORE_URL",
    "HF_TOKEN",
    "HF_API_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "*_API_KEY",
    "*_API_TOKEN",
];

/// Hosts a control-plane target with a secret may use when the operator
/// set no list: Hugging Face's router, serverless API and dedicated
/// endpoints, and OpenAI. The hosts of `--hf-router-url` and
/// `--hf-inference-url` are always allowed too.
pub const DEFAULT_UPSTREAM_HOSTS: &[&str] = &[
    "router.huggingface.co",
    "api-inference.huggingface.co",
    "*.endpoints.huggingface.cloud",
    "api.openai.com",
];

/// Where control-plane packs may put audit logs unless `--audit-root` says
/// otherwise (the k8s manifests mount the spool volume here).
pub const DEFAULT_AUDIT_ROOT: &str = "/var/lib/sluice/audit";

/// A list of glob patterns (`*` matches any run of characters) together
/// with its text, for error messages.
#[derive(Debug, Clone)]
struct Patterns {
    set: GlobSet,
    list: Vec<String>,
    /// Defaults match `SLUICE_*` names only where they name them exactly;
    /// a list the operator wrote applies as written.
    exact_sluice: bool,
}

impl Patterns {
    fn new(list: &[String], exact_sluice: bool) -> Result<Patterns, String> {
        let mut b = GlobSetBuilder::new();
        for p in list {
            b.add(Glob::new(p).map_err(|e| format!("'{p}' is not a valid pattern: {e}"))?);
        }
        Ok(Patterns {
            set: b.build().map_err(|e| e.to_string())?,
            list: list.to_vec(),
            exact_sluice,
        })
    }

    fn allows(&self, name: &str) -> bool {
        if self.exact_sluice && name.starts_with("SLUICE_") {
            return self.list.iter().any(|p| p == name);
        }
        self.set.is_match(name)
    }

    fn text(&self) -> String {
        self.list.join(", ")
    }
}

/// The operator's limits on packs. `Default` restricts nothing.
#[derive(Debug, Clone, Default)]
pub struct Allow {
    secret_env: Option<Patterns>,
    upstream_hosts: Option<Patterns>,
    /// Set when the operator did not give a host list: the list then
    /// applies only to targets that carry a secret.
    hosts_for_secrets_only: bool,
    audit_root: Option<PathBuf>,
}

/// What the operator gave on the command line; `None`: the mode's default.
#[derive(Debug, Clone, Default)]
pub struct AllowArgs {
    pub secret_env: Option<Vec<String>>,
    pub upstream_hosts: Option<Vec<String>>,
    pub audit_root: Option<PathBuf>,
}

impl Allow {
    /// The limits for a gateway. `control_plane`: packs come from the
    /// control plane, so unset lists take the defaults above; otherwise
    /// unset means unrestricted. `operator_hosts` are the Hugging Face base
    /// URLs the operator set, always allowed.
    pub fn new(
        args: AllowArgs,
        control_plane: bool,
        operator_hosts: &[&str],
    ) -> Result<Allow, String> {
        let words = |d: &[&str]| d.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let secret_env = match (args.secret_env, control_plane) {
            (Some(list), _) => Some(
                Patterns::new(&list, false).map_err(|e| format!("--allowed-secret-env: {e}"))?,
            ),
            (None, true) => Some(Patterns::new(&words(DEFAULT_SECRET_ENV), true)?),
            (None, false) => None,
        };
        let hosts_for_secrets_only = args.upstream_hosts.is_none();
        let upstream_hosts = match (args.upstream_hosts, control_plane) {
            (Some(list), _) => Some(list),
            (None, true) => Some(words(DEFAULT_UPSTREAM_HOSTS)),
            (None, false) => None,
        }
        .map(|mut list| {
            list.extend(operator_hosts.iter().filter_map(|u| host_of(u)));
            Patterns::new(&list, false).map_err(|e| format!("--allowed-upstream-hosts: {e}"))
        })
        .transpose()?;
        let audit_root = match (args.audit_root, control_plane) {
            (Some(root), _) => Some(root),
            (None, true) => Some(PathBuf::from(DEFAULT_AUDIT_ROOT)),
            (None, false) => None,
        };
        if let Some(root) = &audit_root
            && (!root.is_absolute() || has_parent_steps(root))
        {
            return Err(format!(
                "--audit-root: '{}' must be an absolute path without '..'",
                root.display()
            ));
        }
        Ok(Allow {
            secret_env,
            upstream_hosts,
            hosts_for_secrets_only,
            audit_root,
        })
    }

    /// Every way `pack` exceeds the limits, each naming the pack key and
    /// the flag that would allow it; empty when it may be served.
    pub fn check(&self, pack: &Pack) -> Vec<String> {
        let mut errors = Vec::new();
        let mut env = |key: String, var: &str| {
            if let Some(p) = &self.secret_env
                && !p.allows(var)
            {
                errors.push(format!(
                    "{key}: this gateway does not let packs read the environment variable {var}; it allows {} (its operator sets --allowed-secret-env)",
                    p.text()
                ));
            }
        };
        for t in &pack.targets {
            if let Some(var) = &t.secret_env {
                env(format!("target '{}': secret_key_ref.env", t.id), var);
            }
        }
        for k in &pack.clients.keys {
            if let KeySecret::Env(var) = &k.secret {
                env(format!("client key '{}': key_ref.env", k.id), var);
            }
        }
        if let Some(StoreUrl::Env(var)) = pack.limit_store.as_ref().map(|s| &s.url) {
            env("limit_store.url_env".into(), var);
        }
        if let Some(hosts) = &self.upstream_hosts {
            for t in &pack.targets {
                let Some(url) = &t.base_url else { continue };
                if self.hosts_for_secrets_only && t.secret_env.is_none() {
                    continue;
                }
                let host = host_of(url).unwrap_or_default();
                if !hosts.allows(&host.to_ascii_lowercase()) {
                    let what = if self.hosts_for_secrets_only {
                        "for targets that carry a secret"
                    } else {
                        "for targets"
                    };
                    errors.push(format!(
                        "target '{}': base_url host '{host}' is not among this gateway's allowed upstream hosts {what} ({}); its operator sets --allowed-upstream-hosts",
                        t.id, hosts.text()
                    ));
                }
            }
        }
        errors.extend(self.audit_path(pack).err());
        errors
    }

    /// Where the pack's audit log goes on this gateway: a relative `path`
    /// is taken inside the audit root; an absolute one must lie in it.
    pub fn audit_path(&self, pack: &Pack) -> Result<Option<PathBuf>, String> {
        let Some(cfg) = pack.chain.iter().find_map(|p| match p {
            Policy::AuditLogger(cfg) => Some(cfg),
            _ => None,
        }) else {
            return Ok(None);
        };
        let path = Path::new(&cfg.path);
        let Some(root) = &self.audit_root else {
            return Ok(Some(path.to_path_buf()));
        };
        let resolved = if path.is_absolute() {
            path.to_path_buf()
        } else {
            root.join(path)
        };
        if has_parent_steps(path) || !resolved.starts_with(root) {
            return Err(format!(
                "policies.policy.audit-logger.path: '{}' is outside this gateway's audit root {}; use a path inside it, or a relative one (taken inside it); its operator sets --audit-root",
                cfg.path,
                root.display()
            ));
        }
        Ok(Some(resolved))
    }
}

fn has_parent_steps(p: &Path) -> bool {
    p.components().any(|c| c == Component::ParentDir)
}

/// The host of a URL, without port or brackets; `None` if it has none.
fn host_of(url: &str) -> Option<String> {
    reqwest::Url::parse(url.trim())
        .ok()?
        .host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(extra_target: &str, audit: &str) -> Pack {
        let text = format!(
            "policies:\n  chain: [audit-logger]\n  policy:\n    audit-logger:\n      path: {audit}\nproviders:\n  targets:\n{extra_target}"
        );
        sluice_proto::pack::load(&text).unwrap().pack
    }

    fn target(env: &str, url: &str) -> String {
        format!(
            "    - id: t\n      provider: openai:m\n      base_url: {url}\n      secret_key_ref:\n        env: {env}\n"
        )
    }

    #[test]
    fn control_plane_defaults_keep_gateway_settings_and_foreign_hosts_away() {
        let allow = Allow::new(AllowArgs::default(), true, &["http://127.0.0.1:9/hf"]).unwrap();
        let env = allow.secret_env.as_ref().unwrap();
        for (name, allowed) in [
            ("HF_TOKEN", true),
            ("MISTRAL_API_KEY", true),
            ("SLUICE_LIMIT_STORE_URL", true),
            ("SLUICE_OPENAI_API_KEY", false),
            ("SLUICE_DATABASE_URL", false),
            ("AWS_SECRET_ACCESS_KEY", false),
        ] {
            assert_eq!(env.allows(name), allowed, "{name}");
        }
        let ok = pack(
            &target("OPENAI_API_KEY", "https://api.openai.com/v1"),
            "/var/lib/sluice/audit",
        );
        assert_eq!(allow.check(&ok), Vec::<String>::new());
        // The operator's own router URL is allowed.
        let local = pack(&target("HF_TOKEN", "http://127.0.0.1:9/v1"), "spool");
        assert_eq!(allow.check(&local), Vec::<String>::new());
        assert_eq!(
            allow.audit_path(&local).unwrap(),
            Some(PathBuf::from("/var/lib/sluice/audit/spool"))
        );
        let bad = pack(
            &target("SLUICE_DB_API_KEY", "https://collector.evil.example/v1"),
            "/var/lib/sluice/audit/../../../etc",
        );
        let errors = allow.check(&bad);
        assert_eq!(errors.len(), 3, "{errors:#?}");
        assert!(
            errors[0].starts_with("target 't': secret_key_ref.env: ")
                && errors[0].contains("SLUICE_DB_API_KEY"),
            "{errors:#?}"
        );
        assert!(
            errors[1].contains("'collector.evil.example'"),
            "{errors:#?}"
        );
        assert!(
            errors[2].starts_with("policies.policy.audit-logger.path: "),
            "{errors:#?}"
        );
    }

    #[test]
    fn an_operator_list_replaces_the_defaults_and_applies_to_every_target() {
        let args = AllowArgs {
            secret_env: Some(vec!["SLUICE_UPSTREAM_KEY".into()]),
            upstream_hosts: Some(vec!["*.internal.example".into()]),
            audit_root: Some("/srv/audit".into()),
        };
        let allow = Allow::new(args, true, &[]).unwrap();
        let ok = pack(
            &target("SLUICE_UPSTREAM_KEY", "https://llm.internal.example/v1"),
            "/srv/audit/gw",
        );
        assert_eq!(allow.check(&ok), Vec::<String>::new());
        let no_secret = pack(
            "    - id: t\n      provider: openai:m\n      base_url: https://api.openai.com/v1\n",
            "/srv/audit",
        );
        let errors = allow.check(&no_secret);
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(errors[0].contains("'api.openai.com'"), "{errors:#?}");
        let env = pack(
            &target("HF_TOKEN", "https://llm.internal.example/v1"),
            "/srv/audit",
        );
        assert_eq!(allow.check(&env).len(), 1);
    }

    #[test]
    fn standalone_restricts_nothing_unless_asked() {
        let allow = Allow::new(AllowArgs::default(), false, &[]).unwrap();
        let p = pack(&target("SLUICE_ANYTHING", "http://10.0.0.1/v1"), "../audit");
        assert_eq!(allow.check(&p), Vec::<String>::new());
        assert_eq!(
            allow.audit_path(&p).unwrap(),
            Some(PathBuf::from("../audit"))
        );
        let relative_root = AllowArgs {
            audit_root: Some("audit".into()),
            ..Default::default()
        };
        assert!(
            Allow::new(relative_root, false, &[])
                .unwrap_err()
                .contains("absolute")
        );
    }
}
