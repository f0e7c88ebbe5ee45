//! Per-target traffic control: `retries` (how often, how long to wait, on
//! which failures) and `fallbacks` (other targets tried in order when this
//! one fails). Documented in docs/configuration.md ("Retries and
//! fallbacks").

use std::time::Duration;

use super::reader::{Diagnostics, MapReader};
use super::targets::Target;
use super::yaml::{Node, Value};

/// Which upstream failures a retry (and a fallback) answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryOn {
    /// The upstream answered 429.
    pub rate_limited: bool,
    /// The upstream answered 500, 502, 503 or 504, or the target is
    /// unavailable (still loading its model, no usable worker).
    pub server_error: bool,
    /// No answer within the target's timeout.
    pub timeout: bool,
    /// The connection could not be made.
    pub connect: bool,
}

impl RetryOn {
    pub const ALL: RetryOn = RetryOn {
        rate_limited: true,
        server_error: true,
        timeout: true,
        connect: true,
    };
    const WORDS: [&'static str; 4] = ["429", "5xx", "timeout", "connect"];
}

/// `retries:` of one target. `attempts` counts the tries after the first,
/// so `attempts: 0` (the default) never retries. Waits grow as
/// `backoff × 2^n`, capped at `max_backoff`, with full jitter (a uniform
/// draw between zero and that), so gateways do not retry in step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
    pub on: RetryOn,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 0,
            backoff: Duration::from_millis(DEFAULT_BACKOFF_MS),
            max_backoff: Duration::from_millis(DEFAULT_MAX_BACKOFF_MS),
            on: RetryOn::ALL,
        }
    }
}

pub const DEFAULT_BACKOFF_MS: u64 = 100;
pub const DEFAULT_MAX_BACKOFF_MS: u64 = 2_000;
const MAX_ATTEMPTS: u64 = 10;

/// `retries: N` or `retries: {attempts, backoff_ms, max_backoff_ms, on}`.
pub fn parse_retries(d: &mut Diagnostics, node: &Node, path: &str) -> RetryPolicy {
    let mut policy = RetryPolicy::default();
    if let Value::Scalar {
        text,
        quoted: false,
    } = &node.value
    {
        match text.parse::<u64>() {
            Ok(n) if n <= MAX_ATTEMPTS => policy.attempts = n as u32,
            _ => d.error(
                path,
                node.mark,
                format!(
                    "retries must be a whole number from 0 to {MAX_ATTEMPTS}, or a mapping with attempts, backoff_ms, max_backoff_ms and on"
                ),
            ),
        }
        return policy;
    }
    let Some(mut r) = MapReader::new(d, node, path) else {
        return policy;
    };
    if let Some(n) = r.integer(d, "attempts", 0, MAX_ATTEMPTS) {
        policy.attempts = n as u32;
    }
    if let Some(ms) = r.integer(d, "backoff_ms", 1, 60_000) {
        policy.backoff = Duration::from_millis(ms);
    }
    if let Some(ms) = r.integer(d, "max_backoff_ms", 1, 600_000) {
        policy.max_backoff = Duration::from_millis(ms);
    }
    if policy.max_backoff < policy.backoff {
        d.error(
            &r.key_path("max_backoff_ms"),
            node.mark,
            format!(
                "max_backoff_ms ({} ms) is below backoff_ms ({} ms); raise it or lower backoff_ms",
                policy.max_backoff.as_millis(),
                policy.backoff.as_millis()
            ),
        );
    }
    let on_path = r.key_path("on");
    if let Some(words) = r.string_list(d, "on") {
        let mut on = RetryOn {
            rate_limited: false,
            server_error: false,
            timeout: false,
            connect: false,
        };
        for (i, (w, mark)) in words.iter().enumerate() {
            match w.as_str() {
                "429" => on.rate_limited = true,
                "5xx" => on.server_error = true,
                "timeout" => on.timeout = true,
                "connect" => on.connect = true,
                other => d.error(
                    &format!("{on_path}[{i}]"),
                    *mark,
                    format!(
                        "unknown failure '{other}'{}",
                        super::reader::did_you_mean(other, RetryOn::WORDS.iter().copied()),
                    ),
                ),
            }
        }
        policy.on = on;
    }
    r.finish(d);
    policy
}

/// Checks every target's `fallbacks` against the whole list: each names
/// another existing target that serves what this one serves.
pub fn check_fallbacks(d: &mut Diagnostics, targets: &[Target], path: &str) {
    for (i, t) in targets.iter().enumerate() {
        for (j, f) in t.fallbacks.iter().enumerate() {
            let at = format!("{path}[{i}].fallbacks[{j}]");
            if f == &t.id {
                d.error(
                    &at,
                    t.mark,
                    format!("target '{f}' cannot fall back to itself"),
                );
                continue;
            }
            let Some(other) = targets.iter().find(|o| &o.id == f) else {
                let ids: Vec<&str> = targets.iter().map(|o| o.id.as_str()).collect();
                d.error(
                    &at,
                    t.mark,
                    format!(
                        "no target has id '{f}'{}",
                        super::reader::did_you_mean(f, ids.iter().copied())
                    ),
                );
                continue;
            };
            if t.serves_chat() && !other.serves_chat() {
                d.error(
                    &at,
                    t.mark,
                    format!(
                        "'{f}' serves embeddings only and cannot stand in for chat target '{}'",
                        t.id
                    ),
                );
            }
            if t.fallbacks[..j].contains(f) {
                d.error(&at, t.mark, format!("'{f}' is listed twice"));
            }
        }
    }
}
