//! `policies`: the ordered chain and each policy's settings.

use super::reader::{Diagnostics, MapReader, did_you_mean, join};
use super::yaml::{Mark, Node, Value};

pub const POLICY_NAMES: [&str; 6] = [
    "prompt-injection",
    "pii-detector",
    "safety-filter",
    "content-filter",
    "audit-logger",
    "router",
];
pub const PII_ENTITIES: [&str; 7] = [
    "PERSON",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN",
    "US_SSN",
    "IP_ADDRESS",
];
/// Presidio's names for entities Sluice detects under another name
/// (accepted in `entities`, stored under Sluice's name).
const PII_ALIASES: [(&str, &str); 1] = [("IBAN_CODE", "IBAN")];
/// Presidio entities Sluice does not detect: refused with that reason, so
/// an operator does not believe they are enforced.
const PRESIDIO_ONLY: [&str; 17] = [
    "LOCATION",
    "DATE_TIME",
    "NRP",
    "ORGANIZATION",
    "MEDICAL_LICENSE",
    "URL",
    "CRYPTO",
    "US_BANK_NUMBER",
    "US_DRIVER_LICENSE",
    "US_ITIN",
    "US_PASSPORT",
    "UK_NHS",
    "UK_NINO",
    "ES_NIF",
    "IT_FISCAL_CODE",
    "SG_NRIC_FIN",
    "AU_TFN",
];
/// Default bound of the `api` destination's on-disk spool.
pub const DEFAULT_SPOOL_BYTES: u64 = 1 << 30;
pub const CONTENT_CATEGORIES: [&str; 5] = [
    "hate_speech",
    "harassment",
    "self_harm",
    "sexual",
    "violence",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Block,
    Redact,
    /// Dry run: the decision is recorded, the traffic passes.
    Monitor,
}

fn action(
    d: &mut Diagnostics,
    r: &mut MapReader<'_>,
    allowed: &[&'static str],
    default: Action,
) -> Action {
    match r.choice(d, "action", allowed) {
        Some("block") => Action::Block,
        Some("redact") => Action::Redact,
        Some("monitor") => Action::Monitor,
        _ => default,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PromptInjection {
    pub action: Action,
    /// `None`: the detector's tuned default.
    pub threshold: Option<f64>,
    pub score_system_messages: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PiiDetector {
    pub action: Action,
    pub entities: Vec<String>,
    pub min_score: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SafetyFilter {
    pub check_toxicity: bool,
    pub action: Action,
    /// `None`: the classifier's tuned default.
    pub threshold: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContentFilter {
    pub categories: Vec<String>,
    pub action: Action,
    /// `None`: the classifier's tuned default.
    pub threshold: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditDestination {
    File,
    Api,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    FailClosed,
    FailOpen,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuditLogger {
    pub destination: AuditDestination,
    /// Directory of the daily JSONL files (`destination: file`).
    pub path: String,
    pub immutable: bool,
    pub retention_days: Option<u64>,
    pub log_all_access: bool,
    pub include_request: bool,
    pub include_response: bool,
    pub include_policy_decisions: bool,
    pub on_failure: OnFailure,
    /// Records waiting for the writer before `on_failure` applies.
    pub queue_capacity: usize,
    /// Bound on the audit files' total size; beyond it writes wait, the
    /// queue fills and `on_failure` decides. Default: 1 GiB for the `api`
    /// spool, unbounded for `file`.
    pub max_disk_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRule {
    /// `None` for the `default` rule.
    pub when_role: Option<String>,
    pub target: String,
    pub mark: Mark,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Router {
    pub rules: Vec<RouteRule>,
}

impl Router {
    /// The target for a caller's role: the first matching rule, else the default.
    pub fn route(&self, role: Option<&str>) -> Option<&str> {
        let by_role = role.and_then(|role| {
            self.rules
                .iter()
                .find(|r| r.when_role.as_deref() == Some(role))
        });
        by_role
            .or_else(|| self.rules.iter().find(|r| r.when_role.is_none()))
            .map(|r| r.target.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Policy {
    PromptInjection(PromptInjection),
    PiiDetector(PiiDetector),
    SafetyFilter(SafetyFilter),
    ContentFilter(ContentFilter),
    AuditLogger(AuditLogger),
    Router(Router),
}

impl Policy {
    pub fn name(&self) -> &'static str {
        match self {
            Policy::PromptInjection(_) => "prompt-injection",
            Policy::PiiDetector(_) => "pii-detector",
            Policy::SafetyFilter(_) => "safety-filter",
            Policy::ContentFilter(_) => "content-filter",
            Policy::AuditLogger(_) => "audit-logger",
            Policy::Router(_) => "router",
        }
    }
}

/// Validates `policies:`; returns the chain in declared order.
pub fn validate_policies(
    d: &mut Diagnostics,
    node: &Node,
    path: &str,
    targets: &[(&str, bool)],
) -> Vec<Policy> {
    let Some(mut r) = MapReader::new(d, node, path) else {
        return Vec::new();
    };
    let chain = r.string_list(d, "chain").unwrap_or_default();
    let configs = r.get("policy");
    let configs_path = r.key_path("policy");
    r.finish(d);

    let config_entries: &[(String, Mark, Node)] = match configs.map(|n| &n.value) {
        Some(Value::Map(entries)) => entries,
        Some(_) => {
            let n = configs.unwrap();
            d.error(
                &configs_path,
                n.mark,
                format!(
                    "expected a mapping of policy name to settings, found {}",
                    n.kind_name()
                ),
            );
            &[]
        }
        None => &[],
    };
    for (name, mark, _) in config_entries {
        if !POLICY_NAMES.contains(&name.as_str()) {
            d.error(
                &join(&configs_path, name),
                *mark,
                format!(
                    "unknown policy '{name}'{}",
                    did_you_mean(name, POLICY_NAMES)
                ),
            );
        } else if !chain.iter().any(|(c, _)| c == name) {
            d.warn(
                &join(&configs_path, name),
                *mark,
                format!(
                    "policy '{name}' is configured but not in policies.chain, so it never runs"
                ),
            );
        }
    }

    let mut policies = Vec::new();
    for (i, (name, mark)) in chain.iter().enumerate() {
        let item_path = format!("{path}.chain[{i}]");
        if !POLICY_NAMES.contains(&name.as_str()) {
            d.error(
                &item_path,
                *mark,
                format!(
                    "unknown policy '{name}'{}",
                    did_you_mean(name, POLICY_NAMES)
                ),
            );
            continue;
        }
        if chain[..i].iter().any(|(c, _)| c == name) {
            d.error(
                &item_path,
                *mark,
                format!("policy '{name}' appears twice in the chain"),
            );
            continue;
        }
        let config = config_entries
            .iter()
            .find(|(k, _, _)| k == name)
            .map(|(_, _, n)| n);
        let cpath = join(&configs_path, name);
        let empty = Node {
            value: Value::Map(Vec::new()),
            mark: *mark,
        };
        let cnode = match config {
            Some(n) if n.value != Value::Null => n,
            _ => &empty,
        };
        if let Some(p) = validate_policy(d, name, cnode, &cpath, targets) {
            policies.push(p);
        }
    }
    policies
}

fn validate_policy(
    d: &mut Diagnostics,
    name: &str,
    node: &Node,
    path: &str,
    targets: &[(&str, bool)],
) -> Option<Policy> {
    let mut r = MapReader::new(d, node, path)?;
    let policy = match name {
        "prompt-injection" => Policy::PromptInjection(PromptInjection {
            action: action(d, &mut r, &["block", "monitor"], Action::Block),
            threshold: r.number(d, "threshold", 0.0, 1.0),
            score_system_messages: r.bool(d, "score_system_messages", false),
        }),
        "pii-detector" => {
            let action = action(d, &mut r, &["redact", "block", "monitor"], Action::Redact);
            let entities = match r.string_list(d, "entities") {
                None => PII_ENTITIES.iter().map(|e| e.to_string()).collect(),
                Some(list) => list
                    .into_iter()
                    .enumerate()
                    .map(|(i, (e, m))| {
                        if let Some((_, ours)) = PII_ALIASES.iter().find(|(alias, _)| *alias == e) {
                            return ours.to_string();
                        }
                        if PRESIDIO_ONLY.contains(&e.as_str()) {
                            d.error(
                                &format!("{path}.entities[{i}]"),
                                m,
                                format!(
                                    "Presidio entity '{e}' is one Sluice does not detect; remove it (Sluice detects {})",
                                    PII_ENTITIES.join(", ")
                                ),
                            );
                        } else if !PII_ENTITIES.contains(&e.as_str()) {
                            d.error(
                                &format!("{path}.entities[{i}]"),
                                m,
                                format!(
                                    "unknown entity type '{e}'{}",
                                    did_you_mean(&e, PII_ENTITIES)
                                ),
                            );
                        }
                        e
                    })
                    .collect(),
            };
            Policy::PiiDetector(PiiDetector {
                action,
                entities,
                min_score: r.number(d, "min_score", 0.0, 1.0).unwrap_or(0.5),
            })
        }
        "safety-filter" => Policy::SafetyFilter(SafetyFilter {
            check_toxicity: r.bool(d, "check_toxicity", true),
            action: action(d, &mut r, &["block", "monitor"], Action::Block),
            threshold: r.number(d, "threshold", 0.0, 1.0),
        }),
        "content-filter" => {
            let categories = match r.string_list(d, "categories") {
                None => {
                    d.error(
                        path,
                        node.mark,
                        format!(
                            "content-filter needs 'categories': a list from {}",
                            CONTENT_CATEGORIES.join(", ")
                        ),
                    );
                    Vec::new()
                }
                Some(list) => {
                    for (i, (c, m)) in list.iter().enumerate() {
                        if !CONTENT_CATEGORIES.contains(&c.as_str()) {
                            d.error(
                                &format!("{path}.categories[{i}]"),
                                *m,
                                format!(
                                    "unknown category '{c}'{}",
                                    did_you_mean(c, CONTENT_CATEGORIES)
                                ),
                            );
                        }
                    }
                    list.into_iter().map(|(c, _)| c).collect()
                }
            };
            Policy::ContentFilter(ContentFilter {
                categories,
                action: action(d, &mut r, &["block", "monitor"], Action::Block),
                threshold: r.number(d, "threshold", 0.0, 1.0),
            })
        }
        "audit-logger" => {
            let destination = match r.choice(d, "destination", &["file", "api"]) {
                Some("api") => AuditDestination::Api,
                _ => AuditDestination::File,
            };
            let spool_default =
                (destination == AuditDestination::Api).then_some(DEFAULT_SPOOL_BYTES);
            Policy::AuditLogger(AuditLogger {
                destination,
                path: r
                    .string(d, "path")
                    .unwrap_or_else(|| "sluice-audit".to_string()),
                immutable: r.bool(d, "immutable", false),
                retention_days: r.integer(d, "retention_days", 1, 36_500),
                log_all_access: r.bool(d, "log_all_access", true),
                include_request: r.bool(d, "include_request", false),
                include_response: r.bool(d, "include_response", false),
                include_policy_decisions: r.bool(d, "include_policy_decisions", true),
                on_failure: match r.choice(d, "on_failure", &["fail_closed", "fail_open"]) {
                    Some("fail_open") => OnFailure::FailOpen,
                    _ => OnFailure::FailClosed,
                },
                queue_capacity: r.integer(d, "queue_capacity", 1, 1_000_000).unwrap_or(4096)
                    as usize,
                max_disk_bytes: r
                    .integer(d, "max_disk_bytes", 1024, u64::MAX)
                    .or(spool_default),
            })
        }
        "router" => Policy::Router(validate_router(d, &mut r, targets)?),
        _ => unreachable!("chain names are checked against POLICY_NAMES first"),
    };
    r.finish(d);
    Some(policy)
}

fn validate_router(
    d: &mut Diagnostics,
    r: &mut MapReader<'_>,
    targets: &[(&str, bool)],
) -> Option<Router> {
    let rules_path = r.key_path("rules");
    let node = r.required(d, "rules")?;
    let Value::Seq(items) = &node.value else {
        d.error(
            &rules_path,
            node.mark,
            format!("expected a list of rules, found {}", node.kind_name()),
        );
        return None;
    };
    let mut rules = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let ipath = format!("{rules_path}[{i}]");
        let Some(mut ir) = MapReader::new(d, item, &ipath) else {
            continue;
        };
        let rule = if let Some(def) = ir.get("default") {
            let dpath = ir.key_path("default");
            let target = MapReader::new(d, def, &dpath).and_then(|mut dr| {
                let t = dr.required_string(d, "target");
                dr.finish(d);
                t
            });
            if ir.get("when_role").is_some() || ir.get("target").is_some() {
                d.error(
                    &ipath,
                    item.mark,
                    "a rule is either `default: {target: …}` or `when_role` + `target`, not both",
                );
            }
            target.map(|t| (None, t, def.mark))
        } else {
            let role = ir.required_string(d, "when_role");
            let target = ir.required_string(d, "target");
            let mark = ir.get("target").map(|n| n.mark).unwrap_or(item.mark);
            role.zip(target).map(|(role, t)| (Some(role), t, mark))
        };
        ir.finish(d);
        let Some((when_role, target, mark)) = rule else {
            continue;
        };
        match targets.iter().find(|(id, _)| *id == target) {
            None => {
                d.error(
                    &ipath.to_string(),
                    mark,
                    format!(
                        "rule names '{target}', which is neither a target nor a group{}",
                        did_you_mean(&target, targets.iter().map(|(id, _)| *id))
                    ),
                );
                continue;
            }
            Some((_, false)) => {
                d.error(
                    &ipath.to_string(),
                    mark,
                    format!(
                        "target '{target}' serves embeddings only; the router picks chat targets"
                    ),
                );
                continue;
            }
            Some(_) => {}
        }
        if when_role.is_none() && rules.iter().any(|r: &RouteRule| r.when_role.is_none()) {
            d.error(&ipath, item.mark, "only one default rule is allowed");
            continue;
        }
        rules.push(RouteRule {
            when_role,
            target,
            mark,
        });
    }
    Some(Router { rules })
}
