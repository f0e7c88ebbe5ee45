//! The shape shared by policies that score text and compare with a
//! threshold (safety-filter, content-filter): the same check on every
//! non-system request message, on the whole response, and on a stream.

use std::sync::Arc;

use super::stream::{ScoringGuard, StreamGuard};
use super::{Decision, Policy, Stage, Text};

pub trait Scorer: Clone + Send + Sync + 'static {
    const NAME: &'static str;
    fn check(&self, text: &str, stage: Stage) -> Decision;
    /// Whether a finding stops the traffic (then a stream holds text until
    /// it is judged).
    fn blocks(&self) -> bool;
}

pub struct Scored<S>(pub S);

impl<S: Scorer> Policy for Scored<S> {
    fn name(&self) -> &'static str {
        S::NAME
    }

    fn check_request(&self, texts: &mut [Text<'_>]) -> Decision {
        let mut out = Decision::pass(S::NAME, Stage::Request);
        // System prompts are the operator's own text, not the user's.
        for t in texts
            .iter()
            .filter(|t| t.role != "system" && t.role != "developer")
        {
            out.merge(&self.0.check(t.text, Stage::Request));
        }
        out
    }

    fn check_response(&self, text: &mut String) -> Option<Decision> {
        Some(self.0.check(text, Stage::Response))
    }

    fn stream_guard(&self) -> Option<Box<dyn StreamGuard>> {
        let scorer = self.0.clone();
        Some(Box::new(ScoringGuard::new(
            S::NAME,
            self.0.blocks(),
            Arc::new(move |t: &str| scorer.check(t, Stage::Response)),
        )))
    }
}
