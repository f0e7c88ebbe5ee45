//! `providers.groups`: one model name served by several targets, with
//! weights, a balancing rule and passive health. Documented in
//! docs/configuration.md ("Target groups").

use std::time::Duration;

use super::reader::{Diagnostics, MapReader, did_you_mean, join};
use super::targets::Target;
use super::yaml::{Mark, Node, Value};

/// How a group picks the member that serves a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// A weighted random draw; load is not looked at.
    Weighted,
    /// The member with the fewest requests in flight per unit of weight.
    LeastOutstanding,
    /// The member with the lowest expected wait: a latency average that
    /// jumps up at once and decays slowly, times requests in flight, per
    /// unit of weight.
    PeakEwma,
}

impl Balance {
    const WORDS: [&'static str; 3] = ["least_outstanding", "peak_ewma", "weighted"];

    pub fn as_str(self) -> &'static str {
        match self {
            Balance::Weighted => "weighted",
            Balance::LeastOutstanding => "least_outstanding",
            Balance::PeakEwma => "peak_ewma",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub target: String,
    pub weight: u32,
}

/// Passive health: a member whose calls fail `consecutive_failures` times
/// in a row is left out for `cooldown`. `consecutive_failures: 0` never
/// ejects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ejection {
    pub consecutive_failures: u32,
    pub cooldown: Duration,
}

pub const DEFAULT_EJECT_AFTER: u32 = 5;
pub const DEFAULT_COOLDOWN_SECONDS: u64 = 30;
const MAX_WEIGHT: u64 = 1000;

impl Default for Ejection {
    fn default() -> Self {
        Ejection {
            consecutive_failures: DEFAULT_EJECT_AFTER,
            cooldown: Duration::from_secs(DEFAULT_COOLDOWN_SECONDS),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub id: String,
    /// A second name clients may send as `model` (often the members'
    /// shared model id); it wins over targets with that model id.
    pub model: Option<String>,
    pub balance: Balance,
    pub members: Vec<Member>,
    pub ejection: Ejection,
    /// Targets tried in order once every member has failed.
    pub fallbacks: Vec<String>,
    /// Every member serves chat (then the group does).
    pub serves_chat: bool,
    /// Every member serves embeddings (then the group does).
    pub serves_embeddings: bool,
    pub mark: Mark,
}

pub fn validate_groups(
    d: &mut Diagnostics,
    node: &Node,
    path: &str,
    targets: &[Target],
) -> Vec<Group> {
    let Some(items) = super::reader::items(d, node, path, "groups") else {
        return Vec::new();
    };
    let mut groups: Vec<Group> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        let Some(g) = validate_group(d, item, &item_path, targets) else {
            continue;
        };
        let taken = |name: &str| {
            targets.iter().any(|t| t.id == name)
                || groups
                    .iter()
                    .any(|o| o.id == name || o.model.as_deref() == Some(name))
        };
        if taken(&g.id) {
            d.error(
                &format!("{item_path}.id"),
                g.mark,
                format!(
                    "'{}' is already the id of a target or a group; group ids must be unique among both",
                    g.id
                ),
            );
            continue;
        }
        if let Some(m) = &g.model
            && (taken(m) || *m == g.id)
        {
            d.error(
                &format!("{item_path}.model"),
                g.mark,
                format!(
                    "'{m}' is already a target id or another group's name; a group's model must not hide them"
                ),
            );
            continue;
        }
        groups.push(g);
    }
    groups
}

fn validate_group(
    d: &mut Diagnostics,
    node: &Node,
    path: &str,
    targets: &[Target],
) -> Option<Group> {
    let errors_before = d.errors.len();
    let mut r = MapReader::new(d, node, path)?;
    let id = r.id(d, "group");
    let model = r.string(d, "model");
    let balance = match r.choice(d, "balance", &Balance::WORDS) {
        Some("weighted") => Balance::Weighted,
        Some("peak_ewma") => Balance::PeakEwma,
        _ => Balance::LeastOutstanding,
    };
    let members = r
        .required(d, "members")
        .map(|n| members(d, n, &r.key_path("members"), targets))
        .unwrap_or_default();
    let ejection = r
        .get("ejection")
        .and_then(|n| {
            let mut e = MapReader::new(d, n, &r.key_path("ejection"))?;
            let after = e.integer(d, "consecutive_failures", 0, 1000);
            let cooldown = e.number(d, "cooldown_seconds", 0.001, 86_400.0);
            e.finish(d);
            Some(Ejection {
                consecutive_failures: after.map_or(DEFAULT_EJECT_AFTER, |v| v as u32),
                cooldown: cooldown.map_or(
                    Duration::from_secs(DEFAULT_COOLDOWN_SECONDS),
                    Duration::from_secs_f64,
                ),
            })
        })
        .unwrap_or_default();
    let fallbacks_path = r.key_path("fallbacks");
    let fallbacks = r.string_list(d, "fallbacks").unwrap_or_default();
    r.finish(d);

    let serves_chat = !members.is_empty()
        && members
            .iter()
            .all(|m| target(targets, &m.target).is_some_and(Target::serves_chat));
    let serves_embeddings = !members.is_empty()
        && members
            .iter()
            .all(|m| target(targets, &m.target).is_some_and(Target::serves_embeddings));
    if !members.is_empty() && !serves_chat && !serves_embeddings {
        d.error(
            &join(path, "members"),
            node.mark,
            "the members serve different things: a group's members must all serve chat, or all serve embeddings",
        );
    }
    for (j, (f, mark)) in fallbacks.iter().enumerate() {
        let at = format!("{fallbacks_path}[{j}]");
        match target(targets, f) {
            None => d.error(
                &at,
                *mark,
                format!(
                    "no target has id '{f}'{}",
                    did_you_mean(f, targets.iter().map(|t| t.id.as_str()))
                ),
            ),
            Some(_) if members.iter().any(|m| &m.target == f) => d.error(
                &at,
                *mark,
                format!("'{f}' is a member of this group; fallbacks are tried after every member"),
            ),
            Some(t) if serves_chat && !t.serves_chat() => d.error(
                &at,
                *mark,
                format!("'{f}' serves embeddings only and cannot stand in for a chat group"),
            ),
            Some(_) if fallbacks[..j].iter().any(|(o, _)| o == f) => {
                d.error(&at, *mark, format!("'{f}' is listed twice"))
            }
            Some(_) => {}
        }
    }
    if d.errors.len() > errors_before {
        return None;
    }
    Some(Group {
        id: id?,
        model,
        balance,
        members,
        ejection,
        fallbacks: fallbacks.into_iter().map(|(f, _)| f).collect(),
        serves_chat,
        serves_embeddings,
        mark: node.mark,
    })
}

fn target<'t>(targets: &'t [Target], id: &str) -> Option<&'t Target> {
    targets.iter().find(|t| t.id == id)
}

/// `members: [{target, weight}]` (a bare target id means weight 1).
fn members(d: &mut Diagnostics, node: &Node, path: &str, targets: &[Target]) -> Vec<Member> {
    let Some(items) = super::reader::items(d, node, path, "members") else {
        return Vec::new();
    };
    if items.is_empty() {
        d.error(path, node.mark, "a group needs at least one member");
    }
    let mut out: Vec<Member> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let member = match &item.value {
            Value::Scalar { text, .. } => Some(Member {
                target: text.clone(),
                weight: 1,
            }),
            _ => MapReader::new(d, item, &at).and_then(|mut m| {
                let t = m.required_string(d, "target");
                let w = m.integer(d, "weight", 1, MAX_WEIGHT).unwrap_or(1) as u32;
                m.finish(d);
                t.map(|target| Member { target, weight: w })
            }),
        };
        let Some(member) = member else { continue };
        if target(targets, &member.target).is_none() {
            d.error(
                &at,
                item.mark,
                format!(
                    "no target has id '{}'{}",
                    member.target,
                    did_you_mean(&member.target, targets.iter().map(|t| t.id.as_str()))
                ),
            );
            continue;
        }
        if out.iter().any(|o| o.target == member.target) {
            d.error(
                &at,
                item.mark,
                format!("'{}' is listed twice", member.target),
            );
            continue;
        }
        out.push(member);
    }
    out
}
