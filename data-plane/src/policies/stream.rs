//! Response policies on a streamed response. Each policy that looks at
//! responses gives a [`StreamGuard`] per stream; the [`Pipeline`] feeds every
//! delta through the guards in chain order. A guard may hold text back (the
//! PII redactor keeps a bounded window so an entity split across chunks is
//! still caught) and returns it at [`StreamGuard::finish`].

use std::sync::Arc;

use super::{Decision, Outcome, Stage};

pub trait StreamGuard: Send {
    /// Takes the next piece of text; returns what may be sent now, or the
    /// decision that blocks the stream.
    fn push(&mut self, text: &str) -> Result<String, Decision>;
    /// End of stream: returns whatever was held back.
    fn finish(&mut self) -> Result<String, Decision>;
    /// The decision so far, for the audit record.
    fn decision(&self) -> Decision;
}

pub struct Pipeline {
    guards: Vec<Box<dyn StreamGuard>>,
}

impl Pipeline {
    pub fn new(guards: Vec<Box<dyn StreamGuard>>) -> Self {
        Pipeline { guards }
    }

    pub fn is_empty(&self) -> bool {
        self.guards.is_empty()
    }

    pub fn push(&mut self, text: &str) -> Result<String, Decision> {
        let mut carry = text.to_string();
        for g in &mut self.guards {
            carry = g.push(&carry)?;
        }
        Ok(carry)
    }

    /// Flushes every guard in order: what one releases still passes the next.
    pub fn finish(&mut self) -> Result<String, Decision> {
        let mut carry = String::new();
        for g in &mut self.guards {
            let mut out = g.push(&carry)?;
            out.push_str(&g.finish()?);
            carry = out;
        }
        Ok(carry)
    }

    pub fn decisions(&self) -> Vec<Decision> {
        self.guards.iter().map(|g| g.decision()).collect()
    }
}

/// Scores a streamed response without holding text back: every `STEP`
/// new characters (and at the end) it scores the most recent `SPAN`
/// characters, so the cost stays linear in the response length.
pub struct ScoringGuard {
    check: Arc<dyn Fn(&str) -> Decision + Send + Sync>,
    recent: String,
    unscored: usize,
    decision: Decision,
}

const STEP: usize = 256;
const SPAN: usize = 1024;

impl ScoringGuard {
    pub fn new(policy: &'static str, check: Arc<dyn Fn(&str) -> Decision + Send + Sync>) -> Self {
        ScoringGuard {
            check,
            recent: String::new(),
            unscored: 0,
            decision: Decision::pass(policy, Stage::Response),
        }
    }

    fn score(&mut self) -> Result<(), Decision> {
        self.unscored = 0;
        let d = (self.check)(&self.recent);
        self.decision.merge(&d);
        if d.outcome == Outcome::Block {
            return Err(d);
        }
        Ok(())
    }
}

impl StreamGuard for ScoringGuard {
    fn push(&mut self, text: &str) -> Result<String, Decision> {
        self.recent.push_str(text);
        self.unscored += text.len();
        if self.recent.len() > 2 * SPAN {
            let mut cut = self.recent.len() - SPAN;
            while !self.recent.is_char_boundary(cut) {
                cut += 1;
            }
            self.recent.drain(..cut);
        }
        if self.unscored >= STEP {
            self.score()?;
        }
        Ok(text.to_string())
    }

    fn finish(&mut self) -> Result<String, Decision> {
        if self.unscored > 0 {
            self.score()?;
        }
        Ok(String::new())
    }

    fn decision(&self) -> Decision {
        self.decision.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_proto::pack::policies::Action;

    fn flag_word(word: &'static str) -> Arc<dyn Fn(&str) -> Decision + Send + Sync> {
        Arc::new(move |t: &str| {
            if t.contains(word) {
                Decision::found("test", Stage::Response, Action::Block, "found")
                    .with_category("bad")
            } else {
                Decision::pass("test", Stage::Response)
            }
        })
    }

    #[test]
    fn scoring_guard_blocks_once_the_text_is_scored() {
        let mut p = Pipeline::new(vec![Box::new(ScoringGuard::new(
            "test",
            flag_word("forbidden"),
        ))]);
        assert_eq!(p.push("harmless ").unwrap(), "harmless ");
        assert_eq!(p.push("forbid").unwrap(), "forbid");
        p.push("den").unwrap(); // under STEP characters: not scored yet
        let err = p.finish().unwrap_err();
        assert_eq!(err.category.as_deref(), Some("bad"));
        assert_eq!(p.decisions()[0].outcome, Outcome::Block);
    }

    #[test]
    fn scoring_guard_scores_every_step_with_bounded_memory() {
        let mut g = ScoringGuard::new("test", flag_word("zzz"));
        for _ in 0..1000 {
            g.push(&"a".repeat(100)).unwrap();
        }
        assert!(g.recent.len() <= 2 * SPAN + 100);
        assert!(g.push(&format!("zzz{}", "b".repeat(STEP))).is_err());
    }
}
