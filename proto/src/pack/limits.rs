//! `limits:` — rate, token and concurrency limits on callers and targets.
//! Documented in docs/configuration.md ("Limits").

use super::reader::{Diagnostics, MapReader, did_you_mean};
use super::yaml::{Mark, Node};

/// What one limit counts separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitScope {
    /// Each client key (callers without a key share one count).
    Key,
    /// Each role (callers without a role share one count).
    Role,
    /// Each target the request is routed to.
    Target,
    /// Everything together.
    Global,
}

impl LimitScope {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitScope::Key => "key",
            LimitScope::Role => "role",
            LimitScope::Target => "target",
            LimitScope::Global => "global",
        }
    }
}

/// One entry of `limits:`. Every rate it sets must hold; the filters
/// (`roles`, `keys`, `targets`) narrow which requests it applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub name: String,
    pub scope: LimitScope,
    pub roles: Vec<String>,
    pub keys: Vec<String>,
    pub targets: Vec<String>,
    pub requests_per_second: Option<u64>,
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
    pub tokens_per_day: Option<u64>,
    pub concurrent: Option<u64>,
    pub mark: Mark,
}

const SCOPES: [&str; 4] = ["key", "role", "target", "global"];

pub fn validate_limits(
    d: &mut Diagnostics,
    node: &Node,
    key_ids: &[&str],
    target_ids: &[&str],
) -> Vec<Limit> {
    let Some(items) = super::reader::items(d, node, "limits", "limits") else {
        return Vec::new();
    };
    let mut out: Vec<Limit> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("limits[{i}]");
        let Some(l) = validate_limit(d, item, &path, key_ids, target_ids) else {
            continue;
        };
        if out.iter().any(|o| o.name == l.name) {
            d.error(
                &format!("{path}.name"),
                item.mark,
                format!("duplicate limit name '{}'; names must be unique", l.name),
            );
            continue;
        }
        out.push(l);
    }
    out
}

fn validate_limit(
    d: &mut Diagnostics,
    node: &Node,
    path: &str,
    key_ids: &[&str],
    target_ids: &[&str],
) -> Option<Limit> {
    let errors_before = d.errors.len();
    let mut r = MapReader::new(d, node, path)?;
    let name = r.string(d, "name").unwrap_or_else(|| path.to_string());
    let scope = match r.choice(d, "scope", &SCOPES) {
        Some("role") => LimitScope::Role,
        Some("target") => LimitScope::Target,
        Some("global") => LimitScope::Global,
        Some(_) => LimitScope::Key,
        None => {
            if r.get("scope").is_none() {
                d.error(
                    path,
                    node.mark,
                    format!(
                        "missing required key 'scope' (one of {})",
                        SCOPES.join(", ")
                    ),
                );
            }
            LimitScope::Key
        }
    };
    let list = |r: &mut MapReader, d: &mut Diagnostics, key: &'static str| {
        r.string_list(d, key)
            .unwrap_or_default()
            .into_iter()
            .collect::<Vec<_>>()
    };
    let roles: Vec<String> = list(&mut r, d, "roles")
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    let keys = list(&mut r, d, "keys");
    let targets = list(&mut r, d, "targets");
    for (j, (id, mark)) in targets.iter().enumerate() {
        if !target_ids.contains(&id.as_str()) {
            d.error(
                &format!("{path}.targets[{j}]"),
                *mark,
                format!(
                    "no target has id '{id}'{}",
                    did_you_mean(id, target_ids.iter().copied())
                ),
            );
        }
    }
    // Keys managed by a control plane join the pack after validation, so
    // an unknown key id is only suspicious here.
    for (j, (id, mark)) in keys.iter().enumerate() {
        if !key_ids.contains(&id.as_str()) {
            d.warn(
                &format!("{path}.keys[{j}]"),
                *mark,
                format!(
                    "no client key in this pack has id '{id}'{} (fine if the control plane manages it)",
                    did_you_mean(id, key_ids.iter().copied())
                ),
            );
        }
    }
    const MAX: u64 = 1 << 40;
    let requests_per_second = r.integer(d, "requests_per_second", 1, MAX);
    let requests_per_minute = r.integer(d, "requests_per_minute", 1, MAX);
    let tokens_per_minute = r.integer(d, "tokens_per_minute", 1, MAX);
    let tokens_per_day = r.integer(d, "tokens_per_day", 1, MAX);
    let concurrent = r.integer(d, "concurrent", 1, MAX);
    r.finish(d);
    let limit = Limit {
        name,
        scope,
        roles,
        keys: keys.into_iter().map(|(s, _)| s).collect(),
        targets: targets.into_iter().map(|(s, _)| s).collect(),
        requests_per_second,
        requests_per_minute,
        tokens_per_minute,
        tokens_per_day,
        concurrent,
        mark: node.mark,
    };
    if [
        requests_per_second,
        requests_per_minute,
        tokens_per_minute,
        tokens_per_day,
        concurrent,
    ]
    .iter()
    .all(Option::is_none)
    {
        d.error(
            path,
            node.mark,
            "a limit needs at least one of requests_per_second, requests_per_minute, tokens_per_minute, tokens_per_day, concurrent",
        );
    }
    (d.errors.len() == errors_before).then_some(limit)
}

/// `limit_store:` — where the limits are counted when several gateways
/// must share them. Without it every gateway counts in its own memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitStore {
    pub url: StoreUrl,
    pub on_unavailable: FailMode,
    /// How long one call to the store may take before it counts as
    /// unavailable (connecting included).
    pub timeout: std::time::Duration,
    /// Prefix of every key Sluice writes, so that one store can serve
    /// several fleets.
    pub prefix: String,
}

/// The store's address: written in the pack, or (when it carries a
/// password) kept in one of the gateway's environment variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Literal(String),
    Env(String),
}

/// What a gateway does when the store cannot be reached in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Count in this gateway's memory until the store is back (limits then
    /// hold per gateway instead of per fleet).
    Open,
    /// Refuse the request with 503.
    Closed,
}

impl FailMode {
    pub fn as_str(self) -> &'static str {
        match self {
            FailMode::Open => "fail_open",
            FailMode::Closed => "fail_closed",
        }
    }
}

pub const DEFAULT_STORE_TIMEOUT_MS: u64 = 100;
pub const DEFAULT_STORE_PREFIX: &str = "sluice";
const STORE_SCHEMES: [&str; 4] = ["redis://", "rediss://", "valkey://", "valkeys://"];

pub fn validate_limit_store(d: &mut Diagnostics, node: &Node) -> Option<LimitStore> {
    let errors_before = d.errors.len();
    let mut r = MapReader::new(d, node, "limit_store")?;
    let literal = r.string(d, "url");
    let env = r.string(d, "url_env");
    let url = match (literal, env) {
        (Some(_), Some(_)) => {
            d.error(
                "limit_store",
                node.mark,
                "set either url or url_env, not both",
            );
            None
        }
        (Some(u), None) => {
            if !STORE_SCHEMES.iter().any(|s| u.starts_with(s)) {
                d.error(
                    "limit_store.url",
                    node.mark,
                    format!(
                        "expected a Redis or Valkey URL starting with {}",
                        STORE_SCHEMES.join(", ")
                    ),
                );
            } else if has_password(&u) {
                // The pack is stored, diffed and shown to editors: a
                // password in it would leak to everyone who can read packs.
                d.error(
                    "limit_store.url",
                    node.mark,
                    "this URL carries a password; put the URL in an environment variable of the gateway and name it with url_env instead",
                );
            }
            Some(StoreUrl::Literal(u))
        }
        (None, Some(e)) => Some(StoreUrl::Env(e)),
        (None, None) => {
            d.error(
                "limit_store",
                node.mark,
                "missing key 'url' (e.g. redis://valkey:6379) or 'url_env' (an environment variable holding it)",
            );
            None
        }
    };
    let on_unavailable = match r.choice(d, "on_unavailable", &["fail_open", "fail_closed"]) {
        Some("fail_closed") => FailMode::Closed,
        _ => FailMode::Open,
    };
    let timeout_ms = r
        .integer(d, "timeout_ms", 1, 60_000)
        .unwrap_or(DEFAULT_STORE_TIMEOUT_MS);
    let prefix = r
        .string(d, "prefix")
        .unwrap_or_else(|| DEFAULT_STORE_PREFIX.to_string());
    r.finish(d);
    let url = url?;
    (d.errors.len() == errors_before).then_some(LimitStore {
        url,
        on_unavailable,
        timeout: std::time::Duration::from_millis(timeout_ms),
        prefix,
    })
}

/// `scheme://user:password@host` or `scheme://:password@host`.
fn has_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

#[cfg(test)]
mod store_tests {
    use super::has_password;

    #[test]
    fn passwords_in_store_urls_are_found() {
        assert!(has_password("redis://:s3cret@valkey:6379/0"));
        assert!(has_password("rediss://user:pw@host"));
        assert!(!has_password("redis://valkey:6379/0"));
        assert!(!has_password("redis://user@valkey:6379"));
        assert!(!has_password("redis://valkey:6379/0?x=a:b@c"));
    }
}
