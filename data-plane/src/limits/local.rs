//! Limits counted in this process: the embedded default, and what a
//! gateway falls back to when its shared store is down and the pack says
//! `fail_open`.
//!
//! Request rates use GCRA (one "theoretical arrival time" per bucket: a
//! rate of N per period admits a burst of N, then one every period/N).
//! Token limits count fixed UTC windows (the minute, the day).
//! Counts live in a process-wide table keyed by limit name and scope value,
//! so they survive config reloads that keep a limit's name.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sluice_proto::pack::Limit;

use super::{Refusal, epoch};

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

/// One limit's share held by an admitted request: its concurrency slot
/// (released on drop) and the bucket its tokens are added to.
pub(super) struct Held {
    bucket: Arc<Mutex<Bucket>>,
    limit: Arc<Limit>,
}

/// Checks every rate of `limit` for `value` and, when all allow it, takes
/// one request's share of each.
pub(super) fn take(limit: &Arc<Limit>, value: &str) -> Result<Held, Refusal> {
    let b = bucket(&limit.name, value);
    let now = Instant::now();
    let epoch = epoch();
    let secs = epoch.as_secs();
    {
        let mut g = lock(&b);
        let second = match limit.requests_per_second {
            Some(r) => Some(
                gcra(g.per_second, now, r, Duration::from_secs(1))
                    .map_err(|w| Refusal::new("requests_per_second", r, w))?,
            ),
            None => None,
        };
        let minute = match limit.requests_per_minute {
            Some(r) => Some(
                gcra(g.per_minute, now, r, Duration::from_secs(60))
                    .map_err(|w| Refusal::new("requests_per_minute", r, w))?,
            ),
            None => None,
        };
        let until = |len: u64| {
            Duration::from_secs(len - secs % len)
                - Duration::from_nanos(epoch.subsec_nanos() as u64)
        };
        if let Some(max) = limit.tokens_per_minute
            && g.tokens_minute.current(secs, 60).used >= max
        {
            return Err(Refusal::new("tokens_per_minute", max, until(60)));
        }
        if let Some(max) = limit.tokens_per_day
            && g.tokens_day.current(secs, 86_400).used >= max
        {
            return Err(Refusal::new("tokens_per_day", max, until(86_400)));
        }
        if let Some(max) = limit.concurrent
            && g.inflight >= max
        {
            // No time can be promised: one second is a polite guess.
            return Err(Refusal::new(
                "concurrent_requests",
                max,
                Duration::from_secs(1),
            ));
        }
        if second.is_some() {
            g.per_second = second;
        }
        if minute.is_some() {
            g.per_minute = minute;
        }
        if limit.concurrent.is_some() {
            g.inflight += 1;
        }
    }
    Ok(Held {
        bucket: b,
        limit: Arc::clone(limit),
    })
}

impl Held {
    pub(super) fn consume(&self, tokens: u64, secs: u64) {
        let mut b = lock(&self.bucket);
        if self.limit.tokens_per_minute.is_some() {
            b.tokens_minute.current(secs, 60).used += tokens;
        }
        if self.limit.tokens_per_day.is_some() {
            b.tokens_day.current(secs, 86_400).used += tokens;
        }
    }

    /// A later limit refused: the request rates taken are returned, so a
    /// refused request costs no limit anything.
    pub(super) fn give_back_rates(&self) {
        let limit = &self.limit;
        let mut b = lock(&self.bucket);
        if let (Some(r), Some(t)) = (limit.requests_per_second, b.per_second) {
            b.per_second = t.checked_sub(Duration::from_secs(1) / r as u32);
        }
        if let (Some(r), Some(t)) = (limit.requests_per_minute, b.per_minute) {
            b.per_minute = t.checked_sub(Duration::from_secs(60) / r as u32);
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.limit.concurrent.is_some() {
            let mut b = lock(&self.bucket);
            b.inflight = b.inflight.saturating_sub(1);
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
}
