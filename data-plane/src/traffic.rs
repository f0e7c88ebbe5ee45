//! Retries and fallbacks around one upstream call. The routed target is
//! called; a failure its `retries.on` lists is retried after a jittered,
//! growing wait; when it still fails (or cannot be retried), the targets in
//! its `fallbacks` are tried in order, each with its own retries. A stream
//! counts as answered once the upstream accepted it: nothing is retried
//! after that, so no client ever sees a streamed answer twice.
//!
//! A request routed to a group (`providers.groups`) tries the member the
//! group picks, then its other members in the group's order, then the
//! group's `fallbacks`; each member's calls feed its passive health, and
//! the failure that ejects one is a decision (`group=ejected(target)`).
//!
//! Each retry and each fall-back is a decision (`retry=retried(target)`,
//! `fallback=fell_back(target)`) in `x-sluice-policy-decisions`, the audit
//! record and `sluice_policy_decisions`; the named target is the one that
//! failed.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use rand::Rng;
use sluice_proto::pack::RetryPolicy;

use crate::error::ApiError;
use crate::exchange::Exchange;
use crate::groups::{GroupRuntime, Member, Pick};
use crate::openai::{ChatRequest, EmbeddingsRequest};
use crate::policies::{Decision, Outcome, Stage};
use crate::providers::ChatReply;
use crate::runtime::{Route, Runtime, TargetRuntime};

/// One upstream call that may be made more than once, to one target or
/// another.
pub trait Call {
    type Output;
    fn call<'a>(
        &'a mut self,
        target: &'a Arc<TargetRuntime>,
    ) -> BoxFuture<'a, Result<Self::Output, ApiError>>;
}

pub struct Chat<'r> {
    pub http: &'r crate::providers::http::Client,
    pub req: &'r mut ChatRequest,
    /// A whole answer will be read through (response policies, the audit
    /// record): parse it at once (see `providers::Completion`).
    pub whole: bool,
}

impl Call for Chat<'_> {
    type Output = ChatReply;
    fn call<'a>(
        &'a mut self,
        target: &'a Arc<TargetRuntime>,
    ) -> BoxFuture<'a, Result<ChatReply, ApiError>> {
        Box::pin(target.chat(self.http, self.req, self.whole))
    }
}

pub struct Embeddings<'r> {
    pub http: &'r crate::providers::http::Client,
    pub req: &'r EmbeddingsRequest,
}

impl Call for Embeddings<'_> {
    type Output = serde_json::Value;
    fn call<'a>(
        &'a mut self,
        target: &'a Arc<TargetRuntime>,
    ) -> BoxFuture<'a, Result<serde_json::Value, ApiError>> {
        Box::pin(target.embeddings(self.http, self.req))
    }
}

/// What kind of failure an upstream error is, for `retries.on`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    RateLimited,
    ServerError,
    Timeout,
    Connect,
}

impl Failure {
    /// `None`: the request itself was refused (4xx, auth, policy): trying
    /// again, here or elsewhere, would get the same answer.
    fn of(e: &ApiError) -> Option<Failure> {
        match e {
            ApiError::RateLimited { .. } => Some(Failure::RateLimited),
            ApiError::Upstream(_) | ApiError::Unavailable(_) => Some(Failure::ServerError),
            ApiError::UpstreamTimeout(_) => Some(Failure::Timeout),
            ApiError::UpstreamUnreachable(_) => Some(Failure::Connect),
            _ => None,
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Failure::RateLimited => "upstream_rate_limited",
            Failure::ServerError => "upstream_failed",
            Failure::Timeout => "upstream_timeout",
            Failure::Connect => "upstream_unreachable",
        }
    }

    fn retried_by(self, policy: &RetryPolicy) -> bool {
        match self {
            Failure::RateLimited => policy.on.rate_limited,
            Failure::ServerError => policy.on.server_error,
            Failure::Timeout => policy.on.timeout,
            Failure::Connect => policy.on.connect,
        }
    }
}

/// The wait before retry number `n` (0-based): full jitter over
/// `backoff × 2^n`, capped at `max_backoff`.
fn backoff(policy: &RetryPolicy, n: u32) -> Duration {
    let ceiling = policy
        .backoff
        .saturating_mul(1u32.checked_shl(n).unwrap_or(u32::MAX))
        .min(policy.max_backoff);
    ceiling.mul_f64(rand::rng().random_range(0.0..=1.0))
}

fn decision(
    policy: &'static str,
    outcome: Outcome,
    target: &str,
    reason: &'static str,
) -> Decision {
    Decision {
        outcome,
        reason,
        ..Decision::pass(policy, Stage::Request).with_category(target)
    }
}

/// Which target serves first, admitted under its own limits, and the
/// targets still left to try: a target's `fallbacks`, or a group's other
/// members (best first) and then the group's `fallbacks`.
pub struct Plan {
    pub target: Arc<TargetRuntime>,
    member: Option<Arc<Member>>,
    group: Option<Arc<GroupRuntime>>,
    rest: std::vec::IntoIter<Pick>,
}

/// Admits the request under the first target's limits; a target over its
/// limit hands the request to the next one that has room. When none has,
/// the first target's refusal (429) stands.
pub async fn admit(rt: &Runtime, route: Route, ex: &mut Exchange) -> Result<Plan, ApiError> {
    let (group, picks) = match route {
        Route::Target(t) => {
            let fallbacks = t
                .spec
                .fallbacks
                .iter()
                .filter_map(|id| rt.targets.iter().find(|o| &o.spec.id == id))
                .map(|o| Pick {
                    target: Arc::clone(o),
                    member: None,
                });
            let picks = std::iter::once(Pick {
                target: Arc::clone(&t),
                member: None,
            })
            .chain(fallbacks)
            .collect::<Vec<_>>();
            (None, picks)
        }
        Route::Group(g) => {
            let picks = g
                .order()
                .into_iter()
                .chain(g.fallbacks.iter().map(|t| Pick {
                    target: Arc::clone(t),
                    member: None,
                }))
                .collect::<Vec<_>>();
            (Some(g), picks)
        }
    };
    let mut rest = picks.into_iter();
    let Some(first) = rest.next() else {
        return Err(ApiError::Unavailable("the group has no member".into()));
    };
    ex.routed(&first.target);
    let refusal = match ex.limit_target(&first.target.spec.id).await {
        Ok(()) => return Ok(plan(first, group, rest)),
        Err(e) => e,
    };
    let mut over = first.target;
    for next in rest.by_ref() {
        ex.decisions.push(decision(
            "fallback",
            Outcome::FellBack,
            &over.spec.id,
            OVER_LIMIT,
        ));
        if ex.limit_target(&next.target.spec.id).await.is_ok() {
            ex.routed(&next.target);
            return Ok(plan(next, group, rest));
        }
        over = next.target;
    }
    Err(refusal)
}

fn plan(pick: Pick, group: Option<Arc<GroupRuntime>>, rest: std::vec::IntoIter<Pick>) -> Plan {
    Plan {
        target: pick.target,
        member: pick.member,
        group,
        rest,
    }
}

const OVER_LIMIT: &str = "over_limit";

/// Calls the plan's target, retrying and falling back as the pack says
/// (skipping fallbacks over their own limits). Returns the answer and the
/// target that gave it; the error is the last tried target's last failure.
pub async fn call<C: Call>(
    plan: Plan,
    ex: &mut Exchange,
    mut call: C,
) -> Result<(C::Output, Arc<TargetRuntime>), ApiError> {
    let Plan {
        mut target,
        mut member,
        group,
        mut rest,
    } = plan;
    loop {
        ex.in_flight(member.as_ref().map(Member::start));
        let health = group.as_deref().zip(member.as_deref());
        let err = match attempt(&target, health, ex, &mut call).await {
            Ok(out) => return Ok((out, target)),
            Err(e) => e,
        };
        let Some(failure) = Failure::of(&err) else {
            return Err(err);
        };
        let mut reason = failure.reason();
        loop {
            let Some(next) = rest.next() else {
                return Err(err);
            };
            tracing::info!(target_id = %target.spec.id, fallback = %next.target.spec.id, reason, "falling back to another target");
            ex.decisions.push(decision(
                "fallback",
                Outcome::FellBack,
                &target.spec.id,
                reason,
            ));
            let admitted = ex.limit_target(&next.target.spec.id).await.is_ok();
            target = next.target;
            member = next.member;
            if admitted {
                break;
            }
            reason = OVER_LIMIT;
        }
    }
}

/// One target: the first try and its retries. A group member reports each
/// try to its passive health.
async fn attempt<C: Call>(
    target: &Arc<TargetRuntime>,
    health: Option<(&GroupRuntime, &Member)>,
    ex: &mut Exchange,
    call: &mut C,
) -> Result<C::Output, ApiError> {
    let policy = &target.spec.retries;
    let mut retries = 0;
    loop {
        let started = std::time::Instant::now();
        let err = match ex.upstream(call.call(target)).await {
            Ok(out) => {
                if let Some((_, m)) = health {
                    m.succeeded(started.elapsed());
                }
                return Ok(out);
            }
            Err(e) => e,
        };
        let failure = Failure::of(&err);
        if let (Some((g, m)), Some(f)) = (health, failure)
            && f != Failure::RateLimited
        {
            report_failure(g, m, target, ex);
        }
        // A target that cannot serve at all (no token, placeholder URL)
        // will not recover by waiting.
        let retry = failure.filter(|f| {
            retries < policy.attempts && f.retried_by(policy) && target.unavailable.is_none()
        });
        let Some(f) = retry else { return Err(err) };
        let wait = backoff(policy, retries);
        tracing::info!(target_id = %target.spec.id, reason = f.reason(), wait_ms = wait.as_millis() as u64, "retrying the upstream call");
        ex.decisions.push(decision(
            "retry",
            Outcome::Retried,
            &target.spec.id,
            f.reason(),
        ));
        tokio::time::sleep(wait).await;
        // Waiting for the upstream is upstream time, not Sluice's.
        ex.add_upstream(wait);
        retries += 1;
    }
}

/// A member's call failed (a 429 is the upstream being busy, not broken,
/// and is not counted); the failure that ejects it is a decision.
fn report_failure(g: &GroupRuntime, m: &Member, target: &TargetRuntime, ex: &mut Exchange) {
    let e = g.spec.ejection;
    if !m.failed(e.consecutive_failures, e.cooldown) {
        return;
    }
    tracing::warn!(group = %g.spec.id, target_id = %target.spec.id, failures = e.consecutive_failures, cooldown_s = e.cooldown.as_secs_f64(), "ejecting a group member after consecutive failures");
    crate::metrics::get()
        .ejections
        .get_or_create(&crate::metrics::GroupLabels {
            group: g.spec.id.clone(),
            target: target.spec.id.clone(),
        })
        .inc();
    ex.decisions.push(decision(
        "group",
        Outcome::Ejected,
        &target.spec.id,
        "consecutive_failures",
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_and_stay_under_the_cap() {
        let policy = RetryPolicy {
            attempts: 10,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
            ..RetryPolicy::default()
        };
        for n in 0..40 {
            let cap = [100, 200, 350].get(n as usize).copied().unwrap_or(350);
            let w = backoff(&policy, n);
            assert!(w <= Duration::from_millis(cap), "retry {n}: {w:?}");
        }
        // Jitter: 200 draws under a 350 ms ceiling are not all alike.
        let draws: std::collections::BTreeSet<u128> =
            (0..200).map(|_| backoff(&policy, 5).as_micros()).collect();
        assert!(draws.len() > 50, "{}", draws.len());
    }

    #[test]
    fn client_errors_are_never_retried() {
        assert_eq!(Failure::of(&ApiError::BadRequest("x".into())), None);
        assert_eq!(
            Failure::of(&ApiError::UpstreamRejected {
                status: axum::http::StatusCode::BAD_REQUEST,
                message: "x".into()
            }),
            None
        );
        assert_eq!(
            Failure::of(&ApiError::UpstreamAuth {
                message: "x".into(),
                code: "upstream_unauthorized"
            }),
            None
        );
        assert_eq!(
            Failure::of(&ApiError::UpstreamUnreachable("x".into())),
            Some(Failure::Connect)
        );
    }
}
