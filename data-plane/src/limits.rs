//! The pack's `limits:`, kept in this process (the embedded default: no
//! extra service; limits shared across a fleet are not built yet).
//!
//! Request rates use GCRA (one "theoretical arrival time" per bucket: a
//! rate of N per period admits a burst of N, then one every period/N).
//! Token limits count fixed UTC windows (the minute, the day): a request is
//! admitted while its window has tokens left and its usage is added when it
//! ends, so the last request of a window may overshoot by its own size.
//! `concurrent` counts requests in flight, streams until their last event.
//! Counts live in a process-wide table keyed by limit name and scope value,
//! so they survive config reloads that keep a limit's name.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sluice_proto::pack::{Limit, LimitScope};

use crate::error::ApiError;
use crate::policies::{Decision, Outcome, Stage};
use crate::runtime::Caller;

/// Beyond this many separate counts per limit (roles can come from a
/// trusted header), new scope values share one count.
const MAX_BUCKETS_PER_LIMIT: usize = 10_000;

#[derive(Default)]
struct Bucket {
    per_second: Option<Instant>,
    per_minute: Option<Instant>,
    tokens_minute: Window,
    tokens_day: Window,
    inflight: u64,
}

/// A fixed window's index (epoch seconds / its length) and its use.
#[derive(Default, Clone, Copy)]
struct Window {
    index: u64,
    used: u64,
}

impl Window {
    fn current(&mut self, now: u64, len: u64) -> &mut Window {
        if self.index != now / len {
            *self = Window {
                index: now / len,
                used: 0,
            };
        }
        self
    }
}

/// GCRA: the new arrival time when one more request is admitted, or how
/// long to wait.
fn gcra(
    tat: Option<Instant>,
    now: Instant,
    rate: u64,
    period: Duration,
) -> Result<Instant, Duration> {
    let interval = period / rate.min(u32::MAX as u64) as u32;
    let tolerance = period.saturating_sub(interval);
    let tat = tat.map_or(now, |t| t.max(now));
    let ahead = tat - now;
    if ahead > tolerance {
        return Err(ahead - tolerance);
    }
    Ok(tat + interval)
}

/// Limit name → scope value → its counts.
type Table = HashMap<String, HashMap<String, Arc<Mutex<Bucket>>>>;

fn table() -> &'static Mutex<Table> {
    static TABLE: OnceLock<Mutex<Table>> = OnceLock::new();
    TABLE.get_or_init(Default::default)
}

fn bucket(limit: &str, value: &str) -> Arc<Mutex<Bucket>> {
    let mut t = table().lock().unwrap_or_else(|e| e.into_inner());
    // Looked up by reference first: the common case allocates nothing.
    if let Some(b) = t.get(limit).and_then(|per| per.get(value)) {
        return b.clone();
    }
    let per = t.entry(limit.to_string()).or_default();
    let value = if per.len() >= MAX_BUCKETS_PER_LIMIT {
        "(other)"
    } else {
        value
    };
    per.entry(value.to_string()).or_default().clone()
}

fn lock(b: &Mutex<Bucket>) -> std::sync::MutexGuard<'_, Bucket> {
    b.lock().unwrap_or_else(|e| e.into_inner())
}

/// Which of a request's limits to check: those of the caller (the same
/// whichever target serves) or those of one target (checked again for each
/// fallback).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Caller,
    Target,
}

impl Part {
    fn of(l: &Limit) -> Part {
        if l.scope == LimitScope::Target || !l.targets.is_empty() {
            Part::Target
        } else {
            Part::Caller
        }
    }
}

/// The limits of one config version.
pub struct Limits(Vec<Arc<Limit>>);

impl Limits {
    pub fn new(limits: &[Limit]) -> Limits {
        Limits(limits.iter().cloned().map(Arc::new).collect())
    }

    /// Admits the request under every limit that applies to it, or answers
    /// 429 naming the limit (never the key) with `Retry-After`. The
    /// decision is pushed either way only when a limit refuses.
    pub fn admit(
        &self,
        part: Part,
        caller: &Caller,
        target: &str,
        decisions: &mut Vec<Decision>,
    ) -> Result<Admission, ApiError> {
        let mut admitted = Admission::default();
        let applicable = self
            .0
            .iter()
            .filter(|l| Part::of(l) == part && applies(l, caller, target));
        for limit in applicable {
            let value = match limit.scope {
                LimitScope::Key => caller.key_id.as_deref().unwrap_or("(no key)"),
                LimitScope::Role => caller.role.as_deref().unwrap_or("(no role)"),
                LimitScope::Target => target,
                LimitScope::Global => "",
            };
            let b = bucket(&limit.name, value);
            match check_and_take(limit, &b) {
                Ok(()) => admitted.held.push((b, Arc::clone(limit))),
                Err((what, rate, wait)) => {
                    // The earlier limits' shares go back (Admission's drop
                    // releases concurrency; rates are returned here).
                    admitted.give_back_rates();
                    decisions.push(Decision {
                        outcome: Outcome::Limited,
                        reason: what,
                        ..Decision::pass("limits", Stage::Request).with_category(&limit.name)
                    });
                    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
                    return Err(ApiError::RateLimited {
                        message: format!(
                            "limit '{}' reached: at most {rate} {} per {}; retry after {secs} s",
                            limit.name,
                            what.replace('_', " "),
                            limit.scope.as_str()
                        ),
                        retry_after: axum::http::HeaderValue::from_str(&secs.to_string()).ok(),
                    });
                }
            }
        }
        Ok(admitted)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn applies(l: &Limit, caller: &Caller, target: &str) -> bool {
    let listed = |list: &[String], v: Option<&str>| {
        list.is_empty() || v.is_some_and(|v| list.iter().any(|x| x == v))
    };
    listed(&l.roles, caller.role.as_deref())
        && listed(&l.keys, caller.key_id.as_deref())
        && listed(&l.targets, Some(target))
}

type Refusal = (&'static str, u64, Duration);

/// Checks every rate of `limit` in `b` and, when all allow it, takes one
/// request's share of each.
fn check_and_take(limit: &Limit, b: &Mutex<Bucket>) -> Result<(), Refusal> {
    let now = Instant::now();
    let epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = epoch.as_secs();
    let mut b = lock(b);
    let second = match limit.requests_per_second {
        Some(r) => Some(
            gcra(b.per_second, now, r, Duration::from_secs(1))
                .map_err(|w| ("requests_per_second", r, w))?,
        ),
        None => None,
    };
    let minute = match limit.requests_per_minute {
        Some(r) => Some(
            gcra(b.per_minute, now, r, Duration::from_secs(60))
                .map_err(|w| ("requests_per_minute", r, w))?,
        ),
        None => None,
    };
    let until = |len: u64| {
        Duration::from_secs(len - secs % len) - Duration::from_nanos(epoch.subsec_nanos() as u64)
    };
    if let Some(max) = limit.tokens_per_minute
        && b.tokens_minute.current(secs, 60).used >= max
    {
        return Err(("tokens_per_minute", max, until(60)));
    }
    if let Some(max) = limit.tokens_per_day
        && b.tokens_day.current(secs, 86_400).used >= max
    {
        return Err(("tokens_per_day", max, until(86_400)));
    }
    if let Some(max) = limit.concurrent
        && b.inflight >= max
    {
        // No time can be promised: one second is a polite guess.
        return Err(("concurrent_requests", max, Duration::from_secs(1)));
    }
    if second.is_some() {
        b.per_second = second;
    }
    if minute.is_some() {
        b.per_minute = minute;
    }
    if limit.concurrent.is_some() {
        b.inflight += 1;
    }
    Ok(())
}

/// What an admitted request holds: its concurrency slots (released on
/// drop) and the buckets its token usage is added to when it ends.
#[derive(Default)]
pub struct Admission {
    held: Vec<(Arc<Mutex<Bucket>>, Arc<Limit>)>,
}

impl Admission {
    /// Adds the request's tokens to every token limit it was admitted under.
    pub fn consume(&self, tokens: u64) {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        for (b, limit) in &self.held {
            let mut b = lock(b);
            if limit.tokens_per_minute.is_some() {
                b.tokens_minute.current(secs, 60).used += tokens;
            }
            if limit.tokens_per_day.is_some() {
                b.tokens_day.current(secs, 86_400).used += tokens;
            }
        }
    }

    /// A later limit refused: the request rates taken so far are returned,
    /// so a refused request costs no limit anything.
    fn give_back_rates(&mut self) {
        for (b, limit) in &self.held {
            let mut b = lock(b);
            if let (Some(r), Some(t)) = (limit.requests_per_second, b.per_second) {
                b.per_second = t.checked_sub(Duration::from_secs(1) / r as u32);
            }
            if let (Some(r), Some(t)) = (limit.requests_per_minute, b.per_minute) {
                b.per_minute = t.checked_sub(Duration::from_secs(60) / r as u32);
            }
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        for (b, limit) in &self.held {
            if limit.concurrent.is_some() {
                let mut b = lock(b);
                b.inflight = b.inflight.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_admits_a_burst_of_the_rate_then_one_per_interval() {
        let start = Instant::now();
        let mut tat = None;
        for _ in 0..5 {
            tat = Some(gcra(tat, start, 5, Duration::from_secs(1)).expect("within the burst"));
        }
        let wait = gcra(tat, start, 5, Duration::from_secs(1)).unwrap_err();
        assert_eq!(wait, Duration::from_millis(200));
        // One interval later, one more fits.
        let later = start + Duration::from_millis(200);
        assert!(gcra(tat, later, 5, Duration::from_secs(1)).is_ok());
    }

    fn limit(name: &str) -> Limit {
        Limit {
            name: name.into(),
            scope: LimitScope::Key,
            roles: vec![],
            keys: vec![],
            targets: vec![],
            requests_per_second: None,
            requests_per_minute: None,
            tokens_per_minute: None,
            tokens_per_day: None,
            concurrent: None,
            mark: Default::default(),
        }
    }

    fn caller(key: &str) -> Caller {
        Caller {
            key_id: Some(key.into()),
            role: Some("r".into()),
        }
    }

    #[test]
    fn concurrency_is_released_when_the_request_ends() {
        let limits = Limits::new(&[Limit {
            concurrent: Some(1),
            ..limit("unit-concurrency")
        }]);
        let mut d = Vec::new();
        let first = limits
            .admit(Part::Caller, &caller("a"), "t", &mut d)
            .expect("first");
        assert!(
            limits
                .admit(Part::Caller, &caller("a"), "t", &mut d)
                .is_err()
        );
        assert_eq!(d.len(), 1);
        assert!(
            limits
                .admit(Part::Caller, &caller("b"), "t", &mut d)
                .is_ok(),
            "per key"
        );
        drop(first);
        assert!(
            limits
                .admit(Part::Caller, &caller("a"), "t", &mut d)
                .is_ok()
        );
    }

    #[test]
    fn a_refusal_by_a_later_limit_costs_the_earlier_ones_nothing() {
        let limits = Limits::new(&[
            Limit {
                requests_per_minute: Some(2),
                ..limit("unit-rpm")
            },
            Limit {
                tokens_per_minute: Some(10),
                ..limit("unit-tpm")
            },
        ]);
        let mut d = Vec::new();
        let a = limits
            .admit(Part::Caller, &caller("k"), "t", &mut d)
            .expect("first");
        a.consume(10);
        for _ in 0..5 {
            let Err(e) = limits.admit(Part::Caller, &caller("k"), "t", &mut d) else {
                panic!("the token budget is used up: admission must be refused")
            };
            assert!(e.to_string().contains("limit 'unit-tpm' reached"), "{e}");
        }
        // The rpm limit still has its second request.
        let rpm_only = Limits::new(&[Limit {
            requests_per_minute: Some(2),
            ..limit("unit-rpm")
        }]);
        assert!(
            rpm_only
                .admit(Part::Caller, &caller("k"), "t", &mut d)
                .is_ok()
        );
        assert!(
            rpm_only
                .admit(Part::Caller, &caller("k"), "t", &mut d)
                .is_err()
        );
    }
}
