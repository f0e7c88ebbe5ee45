//! `budgets:` — token and cost ceilings per key, role or the whole gateway
//! per calendar period, and the per-target `pricing` costs come from.
//! Documented in docs/configuration.md ("Budgets").

use super::limits::LimitScope;
use super::policies::Action;
use super::reader::{Diagnostics, MapReader};
use super::yaml::{Mark, Node};

/// What one target charges, in the operator's currency per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pricing {
    pub input_per_million: f64,
    pub output_per_million: f64,
}

impl Pricing {
    /// The cost of one request in millionths of the currency unit.
    pub fn micros(&self, prompt_tokens: u64, completion_tokens: u64) -> u64 {
        // price per 1M tokens × tokens / 1M, counted in 1/1M units.
        (prompt_tokens as f64 * self.input_per_million
            + completion_tokens as f64 * self.output_per_million)
            .round() as u64
    }
}

/// A budget's period: UTC calendar days, ISO weeks (from Monday) or months.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    Week,
    Month,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    pub name: String,
    /// `key`, `role` or `global` (a budget follows the caller).
    pub scope: LimitScope,
    pub roles: Vec<String>,
    pub keys: Vec<String>,
    pub period: Period,
    /// Ceiling on prompt + completion tokens in one period.
    pub max_tokens: Option<u64>,
    /// Ceiling on cost in one period, in millionths of the currency unit.
    pub max_cost_micros: Option<u64>,
    /// `block` refuses once spent (429); `monitor` records and lets on.
    pub action: Action,
    pub mark: Mark,
}

/// `pricing: {input_per_million, output_per_million}` of one target.
pub fn parse_pricing(d: &mut Diagnostics, node: &Node, path: &str) -> Option<Pricing> {
    let mut r = MapReader::new(d, node, path)?;
    let input = r.number(d, "input_per_million", 0.0, 1e9);
    let output = r.number(d, "output_per_million", 0.0, 1e9);
    let missing = input.is_none() && r.get("input_per_million").is_none()
        || output.is_none() && r.get("output_per_million").is_none();
    r.finish(d);
    if missing {
        d.error(
            path,
            node.mark,
            "pricing needs both input_per_million and output_per_million (the price of one million prompt and completion tokens)",
        );
    }
    Some(Pricing {
        input_per_million: input?,
        output_per_million: output?,
    })
}

pub fn validate_budgets(
    d: &mut Diagnostics,
    node: &Node,
    key_ids: &[&str],
    priced: bool,
) -> Vec<Budget> {
    let Some(items) = super::reader::items(d, node, "budgets", "budgets") else {
        return Vec::new();
    };
    let mut out: Vec<Budget> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("budgets[{i}]");
        let Some(b) = validate_budget(d, item, &path, key_ids) else {
            continue;
        };
        if out.iter().any(|o| o.name == b.name) {
            d.error(
                &format!("{path}.name"),
                item.mark,
                format!("duplicate budget name '{}'; names must be unique", b.name),
            );
            continue;
        }
        if b.max_cost_micros.is_some() && !priced {
            d.warn(
                &format!("{path}.max_cost"),
                item.mark,
                "no target has pricing, so nothing is ever charged to this cost ceiling; add pricing: {input_per_million, output_per_million} to the targets",
            );
        }
        out.push(b);
    }
    out
}

const SCOPES: [&str; 3] = ["key", "role", "global"];

fn validate_budget(
    d: &mut Diagnostics,
    node: &Node,
    path: &str,
    key_ids: &[&str],
) -> Option<Budget> {
    let errors_before = d.errors.len();
    let mut r = MapReader::new(d, node, path)?;
    let name = r.required_string(d, "name");
    let scope = match r.choice(d, "scope", &SCOPES) {
        Some("role") => LimitScope::Role,
        Some("global") => LimitScope::Global,
        Some(_) => LimitScope::Key,
        None => {
            if r.get("scope").is_none() {
                d.error(
                    path,
                    node.mark,
                    "missing required key 'scope' (one of key, role, global)",
                );
            }
            LimitScope::Key
        }
    };
    let period = match r.choice(d, "period", &["day", "week", "month"]) {
        Some("day") => Period::Day,
        Some("week") => Period::Week,
        Some(_) => Period::Month,
        None => {
            if r.get("period").is_none() {
                d.error(
                    path,
                    node.mark,
                    "missing required key 'period' (one of day, week, month; UTC calendar)",
                );
            }
            Period::Month
        }
    };
    let roles = r.string_list(d, "roles").unwrap_or_default();
    let keys = r.string_list(d, "keys").unwrap_or_default();
    for (j, (id, mark)) in keys.iter().enumerate() {
        if !key_ids.contains(&id.as_str()) {
            d.warn(
                &format!("{path}.keys[{j}]"),
                *mark,
                format!("no client key in this pack has id '{id}' (fine if the control plane manages it)"),
            );
        }
    }
    let max_tokens = r.integer(d, "max_tokens", 1, 1 << 50);
    let max_cost = r.number(d, "max_cost", 0.000_001, 1e12);
    let action = match r.choice(d, "action", &["block", "monitor"]) {
        Some("monitor") => Action::Monitor,
        _ => Action::Block,
    };
    r.finish(d);
    if max_tokens.is_none() && max_cost.is_none() && d.errors.len() == errors_before {
        d.error(
            path,
            node.mark,
            "a budget needs max_tokens, max_cost (in the currency of the targets' pricing), or both",
        );
    }
    if d.errors.len() > errors_before {
        return None;
    }
    Some(Budget {
        name: name?,
        scope,
        roles: roles.into_iter().map(|(s, _)| s).collect(),
        keys: keys.into_iter().map(|(s, _)| s).collect(),
        period,
        max_tokens,
        max_cost_micros: max_cost.map(|c| (c * 1e6).round() as u64),
        action,
        mark: node.mark,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_counted_in_millionths() {
        let p = Pricing {
            input_per_million: 0.60,
            output_per_million: 2.40,
        };
        // 1000 prompt tokens at $0.60/M = $0.0006 = 600 µ$; 500 completion
        // tokens at $2.40/M = $0.0012 = 1200 µ$.
        assert_eq!(p.micros(1000, 500), 1800);
        assert_eq!(p.micros(0, 0), 0);
    }
}
