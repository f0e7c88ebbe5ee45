//! The pack's `budgets:`: tokens and cost spent per key, role or gateway in
//! the current UTC period (day, ISO week, month), checked before a request
//! and charged when it ends. Counted in this process, or in the shared
//! store when the pack has `limit_store:` (then the fleet shares the spend).
//!
//! A budget admits a request while something is left, so the requests in
//! flight when it runs out may overshoot it by their own size (the spend is
//! known only once the upstream reports usage).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use sluice_proto::pack::{Budget, LimitScope, Period};
use time::{Date, Duration as Days, OffsetDateTime};

use crate::metrics::{self, BudgetLabels};
use crate::runtime::Caller;

/// The period a moment falls in: a label for keys and the records, and
/// how many seconds are left of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub label: String,
    pub ends_at: i64,
}

pub fn window(period: Period, now: OffsetDateTime) -> Window {
    let today = now.date();
    let (label, next): (String, Date) = match period {
        Period::Day => (format!("{today}"), today.next_day().unwrap_or(today)),
        Period::Week => {
            let monday = today - Days::days(today.weekday().number_days_from_monday() as i64);
            let (year, week, _) = today.to_iso_week_date();
            (format!("{year}-W{week:02}"), monday + Days::days(7))
        }
        Period::Month => {
            let first = today.replace_day(1).unwrap_or(today);
            let next = if first.month() == time::Month::December {
                Date::from_calendar_date(first.year() + 1, time::Month::January, 1)
            } else {
                Date::from_calendar_date(first.year(), first.month().next(), 1)
            }
            .unwrap_or(first);
            (format!("{}-{:02}", first.year(), first.month() as u8), next)
        }
    };
    Window {
        label,
        ends_at: next.midnight().assume_utc().unix_timestamp(),
    }
}

/// Who a budget counts for this caller.
pub fn subject<'c>(b: &Budget, caller: &'c Caller) -> &'c str {
    match b.scope {
        LimitScope::Key => caller.key_id.as_deref().unwrap_or("(no key)"),
        LimitScope::Role => caller.role.as_deref().unwrap_or("(no role)"),
        _ => "",
    }
}

pub fn applies(b: &Budget, caller: &Caller) -> bool {
    let listed = |list: &[String], v: Option<&str>| {
        list.is_empty() || v.is_some_and(|v| list.iter().any(|x| x == v))
    };
    listed(&b.roles, caller.role.as_deref()) && listed(&b.keys, caller.key_id.as_deref())
}

/// Spent so far in one period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spent {
    pub tokens: u64,
    pub cost_micros: u64,
}

impl Spent {
    /// Which ceiling is reached, if any.
    pub fn over(&self, b: &Budget) -> Option<&'static str> {
        if b.max_tokens.is_some_and(|m| self.tokens >= m) {
            Some("max_tokens")
        } else if b.max_cost_micros.is_some_and(|m| self.cost_micros >= m) {
            Some("max_cost")
        } else {
            None
        }
    }
}

/// Beyond this many subjects per budget (roles can come from a trusted
/// header), new ones share one count.
const MAX_SUBJECTS: usize = 10_000;

type Table = Mutex<HashMap<(String, String), (String, Spent)>>;
static LOCAL: LazyLock<Table> = LazyLock::new(Default::default);

fn local_key(b: &Budget, subject: &str, t: &Table) -> (String, String) {
    let key = (b.name.clone(), subject.to_string());
    let table = t.lock().unwrap_or_else(|p| p.into_inner());
    let count = table.keys().filter(|(n, _)| n == &b.name).count();
    if !table.contains_key(&key) && count >= MAX_SUBJECTS {
        return (b.name.clone(), "(overflow)".into());
    }
    key
}

/// What this process has counted for the budget in `window`.
pub fn local_spent(b: &Budget, subject: &str, window: &Window) -> Spent {
    let key = local_key(b, subject, &LOCAL);
    let table = LOCAL.lock().unwrap_or_else(|p| p.into_inner());
    match table.get(&key) {
        Some((label, s)) if *label == window.label => *s,
        _ => Spent::default(),
    }
}

/// Adds a request's spend here; the new totals.
pub fn local_charge(b: &Budget, subject: &str, window: &Window, add: Spent) -> Spent {
    let key = local_key(b, subject, &LOCAL);
    let mut table = LOCAL.lock().unwrap_or_else(|p| p.into_inner());
    let entry = table
        .entry(key)
        .or_insert_with(|| (window.label.clone(), Spent::default()));
    if entry.0 != window.label {
        *entry = (window.label.clone(), Spent::default());
    }
    entry.1.tokens += add.tokens;
    entry.1.cost_micros += add.cost_micros;
    entry.1
}

/// Shows the spend of one budget and subject in `/metrics`.
pub fn report(b: &Budget, subject: &str, spent: Spent) {
    let m = metrics::get();
    let labels = |unit: &'static str| BudgetLabels {
        budget: b.name.clone(),
        subject: subject.to_string(),
        unit,
    };
    m.budget_spent
        .get_or_create(&labels("tokens"))
        .set(spent.tokens as f64);
    m.budget_spent
        .get_or_create(&labels("cost"))
        .set(spent.cost_micros as f64 / 1e6);
    if let Some(max) = b.max_tokens {
        m.budget_limit
            .get_or_create(&labels("tokens"))
            .set(max as f64);
    }
    if let Some(max) = b.max_cost_micros {
        m.budget_limit
            .get_or_create(&labels("cost"))
            .set(max as f64 / 1e6);
    }
}

/// One budget a request is charged to when it ends.
pub struct Charge {
    pub budget: Arc<Budget>,
    pub subject: String,
    pub window: Window,
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn periods_follow_the_utc_calendar() {
        let t = datetime!(2026-12-03 18:30:00 UTC);
        let day = window(Period::Day, t);
        assert_eq!(day.label, "2026-12-03");
        assert_eq!(
            day.ends_at,
            datetime!(2026-12-04 00:00:00 UTC).unix_timestamp()
        );
        // 2026-12-03 is a Thursday; its ISO week runs Monday 11-30 to
        // Sunday 12-06.
        let week = window(Period::Week, t);
        assert_eq!(week.label, "2026-W49");
        assert_eq!(
            week.ends_at,
            datetime!(2026-12-07 00:00:00 UTC).unix_timestamp()
        );
        let month = window(Period::Month, t);
        assert_eq!(month.label, "2026-12");
        assert_eq!(
            month.ends_at,
            datetime!(2027-01-01 00:00:00 UTC).unix_timestamp()
        );
        let feb = window(Period::Month, datetime!(2028-02-29 23:59:59 UTC));
        assert_eq!(feb.label, "2028-02");
        assert_eq!(
            feb.ends_at,
            datetime!(2028-03-01 00:00:00 UTC).unix_timestamp()
        );
    }

    fn budget(name: &str) -> Budget {
        Budget {
            name: name.into(),
            scope: LimitScope::Key,
            roles: vec![],
            keys: vec![],
            period: Period::Day,
            max_tokens: Some(100),
            max_cost_micros: Some(5_000),
            action: sluice_proto::pack::Action::Block,
            mark: Default::default(),
        }
    }

    #[test]
    fn spend_is_counted_per_subject_and_starts_again_each_period() {
        let b = budget("unit-budget-periods");
        let today = window(Period::Day, datetime!(2026-12-03 10:00:00 UTC));
        let add = Spent {
            tokens: 60,
            cost_micros: 1_000,
        };
        local_charge(&b, "a", &today, add);
        let both = local_charge(&b, "a", &today, add);
        assert_eq!(both.tokens, 120);
        assert_eq!(both.over(&b), Some("max_tokens"));
        assert_eq!(local_spent(&b, "b", &today), Spent::default(), "per key");
        let tomorrow = window(Period::Day, datetime!(2026-12-04 00:00:01 UTC));
        assert_eq!(local_spent(&b, "a", &tomorrow), Spent::default());
        let cost_only = Spent {
            tokens: 1,
            cost_micros: 5_000,
        };
        assert_eq!(cost_only.over(&b), Some("max_cost"));
    }
}
