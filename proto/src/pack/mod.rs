//! The policy-pack schema: the YAML format of the reference guide, parsed
//! loosely into a marked tree ([`yaml`]) and validated into strict types,
//! with every problem reported by key path and `line:column`.
//!
//! The gateway (`sluice-gateway check`, hot reload) and the control plane
//! (422 answers) both validate through [`load`], so they can never disagree.

pub mod budgets;
pub mod groups;
pub mod limits;
pub mod policies;
pub mod reader;
pub mod targets;
pub mod traffic;
pub mod yaml;

pub use budgets::{Budget, Period, Pricing};
pub use groups::{Balance, Ejection, Group, Member};
pub use limits::{FailMode, Limit, LimitScope, LimitStore, StoreUrl};
pub use policies::{Action, Policy, Router};
pub use reader::ConfigError;
pub use targets::{Family, Protocol, Target, TokenizerSource};
pub use traffic::{RetryOn, RetryPolicy};

use reader::{Diagnostics, MapReader, did_you_mean};
use sha2::{Digest, Sha256};
use std::fmt;
use yaml::Value;

/// A validated pack.
#[derive(Debug, Clone, PartialEq)]
pub struct Pack {
    pub name: String,
    pub version: String,
    /// A disabled pack serves nothing (fail closed): see docs/configuration.md.
    pub enabled: bool,
    pub chain: Vec<Policy>,
    pub targets: Vec<Target>,
    /// `providers.groups`: names served by several targets.
    pub groups: Vec<Group>,
    pub clients: Clients,
    /// Rate, token and concurrency limits, checked in order.
    pub limits: Vec<Limit>,
    /// Token and cost ceilings per period.
    pub budgets: Vec<Budget>,
    /// Where limits are counted across a fleet; `None`: in each gateway.
    pub limit_store: Option<LimitStore>,
    pub gateway: GatewaySettings,
    /// SHA-256 of the source text, hex.
    pub sha256: String,
}

impl Pack {
    pub fn target(&self, id: &str) -> Option<&Target> {
        self.targets.iter().find(|t| t.id == id)
    }

    pub fn router(&self) -> Option<&Router> {
        self.chain.iter().find_map(|p| match p {
            Policy::Router(r) => Some(r),
            _ => None,
        })
    }
}

/// Who may call the gateway, and with which role.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Clients {
    pub keys: Vec<ClientKey>,
    /// Honour the role header from callers. Off by default: any caller could
    /// otherwise claim any role.
    pub trust_role_header: bool,
    pub role_header: String,
    /// Refuse callers without a valid key even when `keys` is empty. Set
    /// for control-plane snapshots once the control plane manages keys, so
    /// that disabling the last key locks the gateway rather than opening it.
    pub require_key: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientKey {
    /// A public name for the key (audit records and logs use this, never the key).
    pub id: String,
    pub role: String,
    pub secret: KeySecret,
    /// Unix seconds after which the key is refused. Set only for keys a
    /// control plane issues; pack files have no expiry.
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySecret {
    /// The key is in this environment variable.
    Env(String),
    /// SHA-256 of the key, lowercase hex.
    Sha256(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewaySettings {
    pub max_request_bytes: usize,
}

pub const DEFAULT_MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
pub const DEFAULT_ROLE_HEADER: &str = "x-sluice-role";

/// What [`load`] returns when a pack is valid: the pack and the warnings.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub pack: Pack,
    pub warnings: Vec<ConfigError>,
}

/// Every error found in a pack, in source order.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} error{} in pack",
            self.0.len(),
            if self.0.len() == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Parses and validates a pack from YAML (or JSON) text.
pub fn load(text: &str) -> Result<Loaded, ConfigErrors> {
    let root = yaml::parse(text).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            path: String::new(),
            line: e.mark.line,
            column: e.mark.col,
            message: format!("not valid YAML: {}", e.message),
        }])
    })?;
    let mut d = Diagnostics::default();
    if root.value == Value::Null {
        d.error(
            "",
            root.mark,
            "the pack is empty: expected the keys pack, policies and providers",
        );
        return Err(ConfigErrors(d.errors));
    }
    let Some(mut r) = MapReader::new(&mut d, &root, "") else {
        return Err(ConfigErrors(d.errors));
    };

    // The guide's routing example has no `pack:` section, so it is optional.
    let (name, version, enabled) = match r
        .get("pack")
        .and_then(|n| MapReader::new(&mut d, n, "pack"))
    {
        Some(mut p) => {
            let name = p.required_string(&mut d, "name").unwrap_or_default();
            let version = p
                .string(&mut d, "version")
                .unwrap_or_else(|| "0".to_string());
            let enabled = p.bool(&mut d, "enabled", true);
            p.string(&mut d, "description");
            p.finish(&mut d);
            (name, version, enabled)
        }
        None => {
            if r.get("pack").is_none() {
                d.warn(
                    "pack",
                    root.mark,
                    "no pack: section; the pack is named 'unnamed', version '0'",
                );
            }
            ("unnamed".to_string(), "0".to_string(), true)
        }
    };

    let (targets, groups) = match r.required(&mut d, "providers") {
        Some(n) => match MapReader::new(&mut d, n, "providers") {
            Some(mut p) => {
                let t = p
                    .required(&mut d, "targets")
                    .map(|t| targets::validate_targets(&mut d, t, "providers.targets"))
                    .unwrap_or_default();
                let g = p
                    .get("groups")
                    .map(|g| groups::validate_groups(&mut d, g, "providers.groups", &t))
                    .unwrap_or_default();
                p.finish(&mut d);
                (t, g)
            }
            None => Default::default(),
        },
        None => Default::default(),
    };
    // What the router may name: targets and groups.
    let ids: Vec<(&str, bool)> = targets
        .iter()
        .map(|t| (t.id.as_str(), t.serves_chat()))
        .chain(groups.iter().map(|g| (g.id.as_str(), g.serves_chat)))
        .collect();
    let chain = match r.get("policies") {
        Some(n) => policies::validate_policies(&mut d, n, "policies", &ids),
        None => Vec::new(),
    };
    let clients = r
        .get("clients")
        .map(|n| validate_clients(&mut d, n))
        .unwrap_or_else(|| Clients {
            role_header: DEFAULT_ROLE_HEADER.to_string(),
            ..Clients::default()
        });
    let limits = match r.get("limits") {
        Some(n) => {
            let key_ids: Vec<&str> = clients.keys.iter().map(|k| k.id.as_str()).collect();
            let target_ids: Vec<&str> = targets.iter().map(|t| t.id.as_str()).collect();
            limits::validate_limits(&mut d, n, &key_ids, &target_ids)
        }
        None => Vec::new(),
    };
    let budgets = match r.get("budgets") {
        Some(n) => {
            let key_ids: Vec<&str> = clients.keys.iter().map(|k| k.id.as_str()).collect();
            let priced = targets.iter().any(|t| t.pricing.is_some());
            budgets::validate_budgets(&mut d, n, &key_ids, priced)
        }
        None => Vec::new(),
    };
    let limit_store = r
        .get("limit_store")
        .and_then(|n| limits::validate_limit_store(&mut d, n));
    let gateway = match r
        .get("gateway")
        .and_then(|n| MapReader::new(&mut d, n, "gateway"))
    {
        Some(mut g) => {
            let max = g
                .integer(&mut d, "max_request_bytes", 1024, 1 << 30)
                .map(|v| v as usize);
            g.finish(&mut d);
            GatewaySettings {
                max_request_bytes: max.unwrap_or(DEFAULT_MAX_REQUEST_BYTES),
            }
        }
        None => GatewaySettings {
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
        },
    };
    r.finish(&mut d);

    if !d.errors.is_empty() {
        d.errors.sort_by_key(|e| (e.line, e.column));
        return Err(ConfigErrors(d.errors));
    }
    let sha256 = hex::encode(Sha256::digest(text.as_bytes()));
    Ok(Loaded {
        pack: Pack {
            name,
            version,
            enabled,
            chain,
            targets,
            groups,
            clients,
            limits,
            budgets,
            limit_store,
            gateway,
            sha256,
        },
        warnings: d.warnings,
    })
}

fn validate_clients(d: &mut Diagnostics, node: &yaml::Node) -> Clients {
    let mut clients = Clients {
        role_header: DEFAULT_ROLE_HEADER.to_string(),
        ..Clients::default()
    };
    let Some(mut r) = MapReader::new(d, node, "clients") else {
        return clients;
    };
    clients.trust_role_header = r.bool(d, "trust_role_header", false);
    if let Some(h) = r.string(d, "role_header") {
        clients.role_header = h.to_ascii_lowercase();
    }
    if let Some(keys) = r.get("keys") {
        match &keys.value {
            Value::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    let path = format!("clients.keys[{i}]");
                    if let Some(k) = validate_client_key(d, item, &path) {
                        if clients.keys.iter().any(|o| o.id == k.id) {
                            d.error(
                                &format!("{path}.id"),
                                item.mark,
                                format!("duplicate client key id '{}'", k.id),
                            );
                        }
                        clients.keys.push(k);
                    }
                }
            }
            _ => d.error(
                "clients.keys",
                keys.mark,
                format!("expected a list of keys, found {}", keys.kind_name()),
            ),
        }
    }
    r.finish(d);
    clients
}

fn validate_client_key(d: &mut Diagnostics, node: &yaml::Node, path: &str) -> Option<ClientKey> {
    let mut r = MapReader::new(d, node, path)?;
    let id = r.required_string(d, "id");
    let role = r.required_string(d, "role");
    let env = r.get("key_ref").and_then(|n| {
        let mut k = MapReader::new(d, n, &format!("{path}.key_ref"))?;
        let env = k.required_string(d, "env");
        k.finish(d);
        env
    });
    let hash = r.string(d, "key_sha256");
    r.finish(d);
    let secret = match (env, hash) {
        (Some(env), None) => KeySecret::Env(env),
        (None, Some(h)) => {
            let h = h.to_ascii_lowercase();
            if h.len() != 64 || !h.chars().all(|c| c.is_ascii_hexdigit()) {
                d.error(&format!("{path}.key_sha256"), node.mark, "expected 64 hex digits (the SHA-256 of the key); never write the key itself here");
                return None;
            }
            KeySecret::Sha256(h)
        }
        _ => {
            d.error(path, node.mark, "give exactly one of key_ref.env (variable holding the key) or key_sha256 (its SHA-256)");
            return None;
        }
    };
    Some(ClientKey {
        expires_at: None,
        id: id?,
        role: role?,
        secret,
    })
}

/// Suggestion helper re-exported for callers that validate related input
/// (e.g. CLI flags naming targets).
pub fn suggest<'a>(given: &str, known: impl IntoIterator<Item = &'a str> + Clone) -> String {
    did_you_mean(given, known)
}

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tests;
