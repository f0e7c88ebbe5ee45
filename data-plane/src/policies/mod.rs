//! The policy chain: the pack's `policies.chain`, compiled once per config
//! version into trait objects and run in the declared order on the request
//! and on the response (whole or streamed).
//!
//! Each policy is one module behind [`Policy`]. A policy looks at text,
//! returns a [`Decision`], and may rewrite the text (redaction). The router
//! and the audit logger are in the chain too but act elsewhere: routing in
//! `Runtime::route_chat`, auditing in `crate::audit` after the response.

mod content;
mod pii;
mod prompt_injection;
mod safety;
mod scored;
pub mod stream;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use sluice_proto::pack::Policy as PolicyConfig;
use sluice_proto::pack::policies::Action;

use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Request,
    Response,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Nothing found.
    Pass,
    /// Found and rewritten; the traffic went on.
    Redact,
    /// Found and refused.
    Block,
    /// Found, but the policy is in `action: monitor` (dry run): recorded only.
    Monitor,
    /// Traffic control (`retry`): a failed upstream call was tried again.
    Retried,
    /// Traffic control (`fallback`): another target took over the request.
    FellBack,
    /// Traffic control (`limits`): a limit refused the request (429).
    Limited,
    /// Traffic control (`group`): a group member failed too often in a row
    /// and is left out for its cool-down.
    Ejected,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Redact => "redact",
            Outcome::Block => "block",
            Outcome::Monitor => "monitor",
            Outcome::Retried => "retried",
            Outcome::FellBack => "fell_back",
            Outcome::Limited => "limited",
            Outcome::Ejected => "ejected",
        }
    }
}

/// What one policy decided about one stage of one request. It names what was
/// found (category, entity counts, score) and never the content itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub policy: &'static str,
    pub stage: Stage,
    pub outcome: Outcome,
    /// The category, entity type or rule behind a non-pass outcome.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Stable, machine-readable reason.
    pub reason: &'static str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub entities: BTreeMap<&'static str, u32>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "three_decimals"
    )]
    pub score: Option<f32>,
}

/// Scores are kept to three decimals; written through f32 → f64 they would
/// print as `0.013000000268220901`.
fn three_decimals<S: serde::Serializer>(score: &Option<f32>, s: S) -> Result<S::Ok, S::Error> {
    match score {
        Some(v) => s.serialize_f64((f64::from(*v) * 1000.0).round() / 1000.0),
        None => s.serialize_none(),
    }
}

impl Decision {
    pub fn pass(policy: &'static str, stage: Stage) -> Self {
        Decision {
            policy,
            stage,
            outcome: Outcome::Pass,
            category: None,
            reason: "nothing_found",
            entities: BTreeMap::new(),
            score: None,
        }
    }

    /// The outcome for a finding under `action`: block, redact, or monitor.
    pub fn found(policy: &'static str, stage: Stage, action: Action, reason: &'static str) -> Self {
        let outcome = match action {
            Action::Block => Outcome::Block,
            Action::Redact => Outcome::Redact,
            Action::Monitor => Outcome::Monitor,
        };
        Decision {
            outcome,
            reason,
            ..Decision::pass(policy, stage)
        }
    }

    pub fn with_category(mut self, category: impl Into<String>) -> Self {
        self.category = Some(category.into());
        self
    }

    pub fn with_score(mut self, score: f32) -> Self {
        self.score = Some((score * 1000.0).round() / 1000.0);
        self
    }

    /// The client-facing error for a block: policy, category and reason,
    /// never the offending content.
    pub fn violation(&self) -> ApiError {
        let what = self
            .category
            .as_deref()
            .map(|c| format!(" ({c})"))
            .unwrap_or_default();
        let stage = match self.stage {
            Stage::Request => "request",
            Stage::Response => "response",
        };
        ApiError::PolicyViolation(format!(
            "{stage} blocked by policy '{}'{what}: {}",
            self.policy, self.reason
        ))
    }

    /// Merges a later decision of the same policy and stage (streamed chunks).
    pub fn merge(&mut self, other: &Decision) {
        let rank = |o: Outcome| match o {
            Outcome::Pass | Outcome::Retried | Outcome::FellBack | Outcome::Ejected => 0,
            Outcome::Monitor => 1,
            Outcome::Redact => 2,
            Outcome::Block | Outcome::Limited => 3,
        };
        if rank(other.outcome) > rank(self.outcome) {
            self.outcome = other.outcome;
            self.reason = other.reason;
            self.category = other.category.clone();
        }
        for (k, v) in &other.entities {
            *self.entities.entry(k).or_insert(0) += v;
        }
        self.score = match (self.score, other.score) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

pub use crate::openai::Text;

/// A child span of `ai_completion` for one policy's check.
fn policy_span(policy: &'static str, stage: &'static str) -> tracing::Span {
    tracing::info_span!(target: sluice_telemetry::TRACE_ONLY, "policy", "sluice.policy" = policy, "sluice.stage" = stage)
}

/// One policy of the chain.
pub trait Policy: Send + Sync {
    fn name(&self) -> &'static str;

    /// Inspects (and may rewrite) the texts of a request.
    fn check_request(&self, texts: &mut [Text<'_>]) -> Decision;

    /// Inspects (and may rewrite) a whole response text; `None` for a
    /// policy that looks at requests only.
    fn check_response(&self, text: &mut String) -> Option<Decision>;

    /// A guard for one streamed response, or `None` if the policy does not
    /// look at responses.
    fn stream_guard(&self) -> Option<Box<dyn stream::StreamGuard>>;
}

/// The compiled chain of one config version.
pub struct Chain {
    policies: Vec<Box<dyn Policy>>,
}

impl Chain {
    pub fn build(configs: &[PolicyConfig]) -> Chain {
        let mut policies: Vec<Box<dyn Policy>> = Vec::new();
        for c in configs {
            match c {
                PolicyConfig::PromptInjection(cfg) => {
                    policies.push(Box::new(prompt_injection::PromptInjection::new(cfg)))
                }
                PolicyConfig::PiiDetector(cfg) => policies.push(Box::new(pii::PiiPolicy::new(cfg))),
                PolicyConfig::SafetyFilter(cfg) => {
                    policies.push(Box::new(scored::Scored(safety::SafetyFilter::new(cfg))))
                }
                PolicyConfig::ContentFilter(cfg) => {
                    policies.push(Box::new(scored::Scored(content::ContentFilter::new(cfg))))
                }
                // Routing happens in Runtime::route_chat, auditing after the response.
                PolicyConfig::Router(_) | PolicyConfig::AuditLogger(_) => {}
            }
        }
        Chain { policies }
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Runs the request stage; stops at the first block.
    pub fn check_request(
        &self,
        texts: &mut [Text<'_>],
        decisions: &mut Vec<Decision>,
    ) -> Result<(), ApiError> {
        for p in &self.policies {
            let _span = policy_span(p.name(), "request").entered();
            let d = p.check_request(texts);
            let blocked = d.outcome == Outcome::Block;
            decisions.push(d);
            if blocked {
                return Err(decisions.last().unwrap().violation());
            }
        }
        Ok(())
    }

    /// Runs the response stage on the texts of a whole answer; each
    /// policy's verdicts over them merge into one decision.
    pub fn check_response(
        &self,
        texts: &mut [&mut String],
        decisions: &mut Vec<Decision>,
    ) -> Result<(), ApiError> {
        for p in &self.policies {
            let _span = policy_span(p.name(), "response").entered();
            let mut merged: Option<Decision> = None;
            for t in texts.iter_mut() {
                // None: the policy has no response stage at all.
                let Some(d) = p.check_response(t) else { break };
                let blocked = d.outcome == Outcome::Block;
                match &mut merged {
                    Some(m) => m.merge(&d),
                    None => merged = Some(d),
                }
                if blocked {
                    break;
                }
            }
            let Some(d) = merged else { continue };
            let blocked = d.outcome == Outcome::Block;
            decisions.push(d);
            if blocked {
                return Err(decisions.last().unwrap().violation());
            }
        }
        Ok(())
    }

    pub fn stream_guards(&self) -> stream::Pipeline {
        stream::Pipeline::new(
            self.policies
                .iter()
                .filter_map(|p| p.stream_guard())
                .collect(),
        )
    }
}

/// The compact `x-sluice-policy-decisions` header value:
/// `prompt-injection=block(model:0.993);pii-detector=redact(EMAIL_ADDRESS:2)`.
/// A finding names its category (rule, model, category or limit) and, when
/// a detector scored it, the score, so an operator can see why without the
/// audit log; never the text.
pub fn header_value(decisions: &[Decision]) -> String {
    let mut out = String::new();
    for d in decisions {
        if !out.is_empty() {
            out.push(';');
        }
        let _ = write!(out, "{}", d.policy);
        if d.stage == Stage::Response {
            out.push_str("@response");
        }
        let _ = write!(out, "={}", d.outcome.as_str());
        if !d.entities.is_empty() {
            let parts: Vec<String> = d.entities.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            let _ = write!(out, "({})", parts.join(","));
        } else if let Some(c) = &d.category
            && d.outcome != Outcome::Pass
        {
            match d.score {
                Some(score) => {
                    let _ = write!(out, "({c}:{score:.3})");
                }
                None => {
                    let _ = write!(out, "({c})");
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_compact_and_names_no_content() {
        let mut pii = Decision::found(
            "pii-detector",
            Stage::Request,
            Action::Redact,
            "entities_found",
        );
        pii.entities.insert("EMAIL_ADDRESS", 2);
        let pi = Decision::pass("prompt-injection", Stage::Request);
        let tox = Decision::found(
            "safety-filter",
            Stage::Response,
            Action::Monitor,
            "score_above_threshold",
        )
        .with_category("toxicity")
        .with_score(0.9123);
        let limit = Decision::found("limits", Stage::Request, Action::Monitor, "over_limit")
            .with_category("limit_store");
        assert_eq!(
            header_value(&[pi, pii, tox, limit]),
            "prompt-injection=pass;pii-detector=redact(EMAIL_ADDRESS:2);\
             safety-filter@response=monitor(toxicity:0.912);limits=monitor(limit_store)"
        );
    }

    #[test]
    fn violations_are_400_policy_violation_with_policy_and_reason() {
        let d = Decision::found(
            "content-filter",
            Stage::Request,
            Action::Block,
            "score_above_threshold",
        )
        .with_category("hate_speech");
        let e = d.violation();
        assert_eq!(e.status(), 400);
        let body = e.body();
        assert_eq!(body["error"]["code"], "policy_violation");
        assert_eq!(
            body["error"]["message"],
            "request blocked by policy 'content-filter' (hate_speech): score_above_threshold"
        );
    }

    #[test]
    fn merge_keeps_the_strongest_outcome_and_sums_entities() {
        let mut a = Decision::pass("pii-detector", Stage::Response);
        let mut b = Decision::found(
            "pii-detector",
            Stage::Response,
            Action::Redact,
            "entities_found",
        );
        b.entities.insert("PHONE_NUMBER", 1);
        a.merge(&b);
        a.merge(&b);
        assert_eq!(a.outcome, Outcome::Redact);
        assert_eq!(a.entities["PHONE_NUMBER"], 2);
    }
}
