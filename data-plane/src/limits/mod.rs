//! The pack's `limits:`. Counted in this process by default (`local`: the
//! embedded default, no extra service), or in a Redis-compatible store the
//! fleet shares when the pack has `limit_store:` (`shared`).
//!
//! Token limits admit a request while its window has tokens left and add
//! its usage when it ends, so the last request of a window may overshoot
//! by its own size. `concurrent` counts requests in flight, streams until
//! their last event.

mod budgets;
mod local;
mod shared;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sluice_proto::pack::{Action, Budget, FailMode, Limit, LimitScope, LimitStore};

use budgets::Charge;
pub use budgets::Spent;

use crate::error::ApiError;
use crate::metrics::{self, StoreLabels};
use crate::policies::{Decision, Outcome, Stage};
use crate::runtime::Caller;

fn epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Which rate of a limit refused a request, and how long to wait.
#[derive(Debug, Clone, Copy)]
pub struct Refusal {
    what: &'static str,
    rate: u64,
    wait: Duration,
}

impl Refusal {
    fn new(what: &'static str, rate: u64, wait: Duration) -> Refusal {
        Refusal { what, rate, wait }
    }

    /// The rate a store names, as one of ours (its value from the limit).
    fn name(what: &[u8], l: &Limit) -> (&'static str, u64) {
        match what {
            b"requests_per_second" => ("requests_per_second", l.requests_per_second.unwrap_or(0)),
            b"requests_per_minute" => ("requests_per_minute", l.requests_per_minute.unwrap_or(0)),
            b"tokens_per_minute" => ("tokens_per_minute", l.tokens_per_minute.unwrap_or(0)),
            b"tokens_per_day" => ("tokens_per_day", l.tokens_per_day.unwrap_or(0)),
            _ => ("concurrent_requests", l.concurrent.unwrap_or(0)),
        }
    }
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

/// The limits and budgets of one config version.
pub struct Limits {
    limits: Vec<Arc<Limit>>,
    budgets: Vec<Arc<Budget>>,
    store: Option<Arc<shared::Store>>,
}

impl Limits {
    /// Fails only when `limit_store` cannot be used at all (its variable is
    /// unset, its URL malformed): such a version must not serve, or its
    /// limits would silently hold per gateway.
    pub fn new(
        limits: &[Limit],
        budgets: &[Budget],
        store: Option<&LimitStore>,
    ) -> Result<Limits, String> {
        Ok(Limits {
            limits: limits.iter().cloned().map(Arc::new).collect(),
            budgets: budgets.iter().cloned().map(Arc::new).collect(),
            store: store.map(shared::open).transpose()?,
        })
    }

    /// Admits the request under every budget (caller part only) and limit
    /// that applies to it, or answers 429 naming the limit or budget (never
    /// the key) with `Retry-After`. A decision is pushed only when a limit
    /// or budget refuses (or, in `action: monitor`, would have).
    pub async fn admit(
        &self,
        part: Part,
        caller: &Caller,
        target: &str,
        decisions: &mut Vec<Decision>,
    ) -> Result<Admission, ApiError> {
        // Budgets first: they only read, so a refusal costs no rate.
        let charges = match part {
            Part::Caller => self.check_budgets(caller, decisions).await?,
            Part::Target => Vec::new(),
        };
        let mut a = self.admit_limits(part, caller, target, decisions).await?;
        if !charges.is_empty() {
            a.budgets = Some(Budgets {
                charges,
                store: self.store.clone(),
            });
        }
        Ok(a)
    }

    async fn admit_limits(
        &self,
        part: Part,
        caller: &Caller,
        target: &str,
        decisions: &mut Vec<Decision>,
    ) -> Result<Admission, ApiError> {
        let applicable: Vec<(&Arc<Limit>, &str)> = self
            .limits
            .iter()
            .filter(|l| Part::of(l) == part && applies(l, caller, target))
            .map(|l| {
                let value = match l.scope {
                    LimitScope::Key => caller.key_id.as_deref().unwrap_or("(no key)"),
                    LimitScope::Role => caller.role.as_deref().unwrap_or("(no role)"),
                    LimitScope::Target => target,
                    LimitScope::Global => "",
                };
                (l, value)
            })
            .collect();
        if applicable.is_empty() {
            return Ok(Admission::default());
        }
        if let Some(store) = &self.store {
            match admit_shared(store, &applicable).await {
                Ok(Ok(a)) => return Ok(a),
                Ok(Err((limit, r))) => return Err(refuse(&limit, r, decisions)),
                // fail_open falls through: this gateway counts on its own
                // meanwhile.
                Err(why) => store_unavailable(store.mode, why, decisions)?,
            }
        }
        let mut admitted = Admission::default();
        for (limit, value) in applicable {
            match local::take(limit, value) {
                Ok(held) => admitted.local.push(held),
                Err(r) => {
                    for h in &admitted.local {
                        h.give_back_rates();
                    }
                    return Err(refuse(limit, r, decisions));
                }
            }
        }
        Ok(admitted)
    }

    pub fn is_empty(&self) -> bool {
        self.limits.is_empty() && self.budgets.is_empty()
    }

    /// The budgets that apply to the caller, each with what is spent of it
    /// this period; refuses (429) when a `block` budget is used up.
    async fn check_budgets(
        &self,
        caller: &Caller,
        decisions: &mut Vec<Decision>,
    ) -> Result<Vec<Charge>, ApiError> {
        let now = time::OffsetDateTime::now_utc();
        let charges: Vec<Charge> = self
            .budgets
            .iter()
            .filter(|b| budgets::applies(b, caller))
            .map(|b| Charge {
                subject: budgets::subject(b, caller).to_string(),
                window: budgets::window(b.period, now),
                budget: Arc::clone(b),
            })
            .collect();
        if charges.is_empty() {
            return Ok(charges);
        }
        let local = |charges: &[Charge]| -> Vec<Spent> {
            charges
                .iter()
                .map(|c| budgets::local_spent(&c.budget, &c.subject, &c.window))
                .collect()
        };
        let spent = match &self.store {
            Some(store) => match store.budget_spent(&charges).await {
                Ok(s) => s,
                Err(why) => {
                    store_unavailable(store.mode, why, decisions)?;
                    local(&charges)
                }
            },
            None => local(&charges),
        };
        for (c, s) in charges.iter().zip(spent) {
            budgets::report(&c.budget, &c.subject, s);
            let Some(which) = s.over(&c.budget) else {
                continue;
            };
            let blocks = c.budget.action == Action::Block;
            decisions.push(Decision {
                outcome: if blocks {
                    Outcome::Limited
                } else {
                    Outcome::Monitor
                },
                reason: which,
                ..Decision::pass("budgets", Stage::Request).with_category(&c.budget.name)
            });
            if blocks {
                return Err(budget_spent(c, s, now.unix_timestamp()));
            }
        }
        Ok(charges)
    }
}

fn budget_spent(c: &Charge, s: Spent, now: i64) -> ApiError {
    let b = &c.budget;
    let spent = match (b.max_tokens, b.max_cost_micros) {
        (Some(max), _) if s.tokens >= max => format!("{} of {max} tokens", s.tokens),
        (_, Some(max)) => format!(
            "{:.6} of {:.6} in cost",
            s.cost_micros as f64 / 1e6,
            max as f64 / 1e6
        ),
        _ => String::new(),
    };
    let secs = (c.window.ends_at - now).max(1);
    ApiError::BudgetSpent {
        message: format!(
            "budget '{}' is used up for this {} ({} ending {}): {spent} spent; it resets in {secs} s",
            b.name,
            b.period.as_str(),
            b.period.as_str(),
            c.window.label,
        ),
        retry_after: axum::http::HeaderValue::from_str(&secs.to_string()).ok(),
    }
}

/// Counts and records a store that did not answer; `Err` (503) under
/// `fail_closed`.
fn store_unavailable(
    mode: FailMode,
    why: shared::Unavailable,
    decisions: &mut Vec<Decision>,
) -> Result<(), ApiError> {
    metrics::get()
        .limit_store_unavailable
        .get_or_create(&StoreLabels {
            on_unavailable: mode.as_str(),
        })
        .inc();
    decisions.push(Decision {
        // fail_open lets the request on, counted here: recorded like a
        // dry-run finding.
        outcome: if mode == FailMode::Closed {
            Outcome::Block
        } else {
            Outcome::Monitor
        },
        reason: mode.as_str(),
        ..Decision::pass("limits", Stage::Request).with_category("limit_store")
    });
    if mode == FailMode::Closed {
        return Err(ApiError::Unavailable(format!(
            "the shared limit store {}; requests are refused until it answers again (limit_store.on_unavailable: fail_closed)",
            why.as_str()
        )));
    }
    Ok(())
}

async fn admit_shared(
    store: &Arc<shared::Store>,
    applicable: &[(&Arc<Limit>, &str)],
) -> Result<Result<Admission, (Arc<Limit>, Refusal)>, shared::Unavailable> {
    let entries: Vec<(String, Arc<Limit>)> = applicable
        .iter()
        .map(|(l, v)| (store.key(l, v), Arc::clone(l)))
        .collect();
    let lease = uuid::Uuid::new_v4().simple().to_string();
    match store.admit(&entries, &lease).await? {
        Ok(()) => Ok(Ok(Admission {
            local: Vec::new(),
            shared: Some(Shared {
                store: Arc::clone(store),
                lease,
                entries,
            }),
            budgets: None,
        })),
        Err((i, r)) => Ok(Err((Arc::clone(&entries[i].1), r))),
    }
}

fn refuse(limit: &Limit, r: Refusal, decisions: &mut Vec<Decision>) -> ApiError {
    decisions.push(Decision {
        outcome: Outcome::Limited,
        reason: r.what,
        ..Decision::pass("limits", Stage::Request).with_category(&limit.name)
    });
    let secs = r.wait.as_secs_f64().ceil().max(1.0) as u64;
    ApiError::RateLimited {
        message: format!(
            "limit '{}' reached: at most {} {} per {}; retry after {secs} s",
            limit.name,
            r.rate,
            r.what.replace('_', " "),
            limit.scope.as_str()
        ),
        retry_after: axum::http::HeaderValue::from_str(&secs.to_string()).ok(),
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

/// What an admitted request holds: its concurrency slots (released on
/// drop), the counts its token usage is added to when it ends, and the
/// budgets it is charged to.
#[derive(Default)]
pub struct Admission {
    local: Vec<local::Held>,
    shared: Option<Shared>,
    budgets: Option<Budgets>,
}

struct Budgets {
    charges: Vec<Charge>,
    store: Option<Arc<shared::Store>>,
}

struct Shared {
    store: Arc<shared::Store>,
    lease: String,
    entries: Vec<(String, Arc<Limit>)>,
}

impl Admission {
    /// The names of the budgets this request is charged to.
    pub fn budget_names(&self) -> Vec<String> {
        self.budgets
            .iter()
            .flat_map(|b| &b.charges)
            .map(|c| c.budget.name.clone())
            .collect()
    }

    /// Charges the request's spend to its budgets: in the shared store in
    /// the background (or here, when the store does not answer), else here.
    pub fn charge(&mut self, add: Spent) {
        let Some(b) = self.budgets.take() else { return };
        if add == Spent::default() {
            return;
        }
        let here = move |charges: &[Charge]| {
            for c in charges {
                let total = budgets::local_charge(&c.budget, &c.subject, &c.window, add);
                budgets::report(&c.budget, &c.subject, total);
            }
        };
        let Some(store) = b.store else {
            here(&b.charges);
            return;
        };
        shared::spawn(async move {
            match store.budget_charge(&b.charges, add).await {
                Ok(totals) => {
                    for (c, t) in b.charges.iter().zip(totals) {
                        budgets::report(&c.budget, &c.subject, t);
                    }
                }
                Err(_) => {
                    tracing::warn!(
                        tokens = add.tokens,
                        "budget spend not added to the shared store; counted in this gateway only"
                    );
                    here(&b.charges);
                }
            }
        });
    }

    /// Adds the request's tokens to every token limit it was admitted under.
    pub fn consume(&self, tokens: u64) {
        let secs = epoch().as_secs();
        for h in &self.local {
            h.consume(tokens, secs);
        }
        if let Some(s) = &self.shared {
            let windows = s
                .entries
                .iter()
                .filter_map(|(k, l)| {
                    let which = u8::from(l.tokens_per_minute.is_some())
                        | (u8::from(l.tokens_per_day.is_some()) << 1);
                    (which != 0).then(|| (k.clone(), which))
                })
                .collect();
            s.store.consume(windows, tokens);
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(s) = self.shared.take() {
            let keys = s
                .entries
                .iter()
                .filter(|(_, l)| l.concurrent.is_some())
                .map(|(k, _)| k.clone())
                .collect();
            s.store.release(keys, s.lease);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn limits(l: &[Limit]) -> Limits {
        Limits::new(l, &[], None).expect("no store")
    }

    #[tokio::test]
    async fn concurrency_is_released_when_the_request_ends() {
        let limits = limits(&[Limit {
            concurrent: Some(1),
            ..limit("unit-concurrency")
        }]);
        let mut d = Vec::new();
        let first = limits
            .admit(Part::Caller, &caller("a"), "t", &mut d)
            .await
            .expect("first");
        assert!(
            limits
                .admit(Part::Caller, &caller("a"), "t", &mut d)
                .await
                .is_err()
        );
        assert_eq!(d.len(), 1);
        assert!(
            limits
                .admit(Part::Caller, &caller("b"), "t", &mut d)
                .await
                .is_ok(),
            "per key"
        );
        drop(first);
        assert!(
            limits
                .admit(Part::Caller, &caller("a"), "t", &mut d)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_refusal_by_a_later_limit_costs_the_earlier_ones_nothing() {
        let both = limits(&[
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
        let a = both
            .admit(Part::Caller, &caller("k"), "t", &mut d)
            .await
            .expect("first");
        a.consume(10);
        for _ in 0..5 {
            let Err(e) = both.admit(Part::Caller, &caller("k"), "t", &mut d).await else {
                panic!("the token budget is used up: admission must be refused")
            };
            assert!(e.to_string().contains("limit 'unit-tpm' reached"), "{e}");
        }
        // The rpm limit still has its second request.
        let rpm_only = limits(&[Limit {
            requests_per_minute: Some(2),
            ..limit("unit-rpm")
        }]);
        let mut admit = async || {
            rpm_only
                .admit(Part::Caller, &caller("k"), "t", &mut d)
                .await
        };
        assert!(admit().await.is_ok());
        assert!(admit().await.is_err());
    }

    #[test]
    fn a_store_url_variable_that_is_unset_stops_the_version() {
        let store = LimitStore {
            url: sluice_proto::pack::StoreUrl::Env("SLUICE_UNIT_UNSET_STORE_URL".into()),
            on_unavailable: FailMode::Open,
            timeout: Duration::from_millis(50),
            prefix: "t".into(),
        };
        let Err(e) = Limits::new(&[limit("x")], &[], Some(&store)) else {
            panic!("an unset url_env must fail the build");
        };
        assert!(e.contains("SLUICE_UNIT_UNSET_STORE_URL is not set"), "{e}");
    }
}
