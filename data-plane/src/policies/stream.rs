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

/// Scores a streamed response in a bounded window: it scores the most
/// recent `SPAN` characters at growing steps (after 32, 64, 128, then every
/// `STEP` new characters) and at the end, so the cost stays linear in the
/// response length.
///
/// A guard whose policy blocks (`hold`) releases text only once a score
/// has covered it: nothing reaches the client before the policy judged
/// it, at the price of holding at most `STEP` characters (and the first
/// 32 before the first one leaves). A guard that only records (monitor)
/// passes text on at once.
pub struct ScoringGuard {
    check: Arc<dyn Fn(&str) -> Decision + Send + Sync>,
    hold: bool,
    recent: String,
    held: String,
    unscored: usize,
    step: usize,
    decision: Decision,
}

const FIRST_STEP: usize = 32;
const STEP: usize = 256;
const SPAN: usize = 1024;

impl ScoringGuard {
    pub fn new(
        policy: &'static str,
        hold: bool,
        check: Arc<dyn Fn(&str) -> Decision + Send + Sync>,
    ) -> Self {
        ScoringGuard {
            check,
            hold,
            recent: String::new(),
            held: String::new(),
            unscored: 0,
            step: FIRST_STEP,
            decision: Decision::pass(policy, Stage::Response),
        }
    }

    fn score(&mut self) -> Result<(), Decision> {
        self.unscored = 0;
        self.step = (self.step * 2).min(STEP);
        let d = (self.check)(&self.recent);
        self.decision.merge(&d);
        if d.outcome == Outcome::Block {
            self.held.clear();
            return Err(d);
        }
        Ok(())
    }
}

impl StreamGuard for ScoringGuard {
    fn push(&mut self, text: &str) -> Result<String, Decision> {
        self.recent.push_str(text);
        self.unscored += text.len();
        // Held text is always inside `recent`: held <= STEP < SPAN.
        if self.recent.len() > 2 * SPAN {
            let mut cut = self.recent.len() - SPAN;
            while !self.recent.is_char_boundary(cut) {
                cut += 1;
            }
            self.recent.drain(..cut);
        }
        if !self.hold {
            if self.unscored >= self.step {
                self.score()?;
            }
            return Ok(text.to_string());
        }
        self.held.push_str(text);
        if self.unscored >= self.step {
            self.score()?;
            return Ok(std::mem::take(&mut self.held));
        }
        Ok(String::new())
    }

    fn finish(&mut self) -> Result<String, Decision> {
        if self.unscored > 0 {
            self.score()?;
        }
        Ok(std::mem::take(&mut self.held))
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
            false,
            flag_word("forbidden"),
        ))]);
        assert_eq!(p.push("harmless ").unwrap(), "harmless ");
        assert_eq!(p.push("forbid").unwrap(), "forbid");
        p.push("den").unwrap(); // under a step: not scored yet
        let err = p.finish().unwrap_err();
        assert_eq!(err.category.as_deref(), Some("bad"));
        assert_eq!(p.decisions()[0].outcome, Outcome::Block);
    }

    #[test]
    fn scoring_guard_scores_every_step_with_bounded_memory() {
        let mut g = ScoringGuard::new("test", false, flag_word("zzz"));
        for _ in 0..1000 {
            g.push(&"a".repeat(100)).unwrap();
        }
        assert!(g.recent.len() <= 2 * SPAN + 100);
        assert!(g.push(&format!("zzz{}", "b".repeat(STEP))).is_err());
    }

    #[test]
    fn a_blocking_guard_releases_only_judged_text() {
        let mut g = ScoringGuard::new("test", true, flag_word("forbidden"));
        // Under the first step nothing leaves.
        assert_eq!(g.push("Sure, here is").unwrap(), "");
        let first = g.push(" the part you asked for, in full").unwrap();
        assert_eq!(first, "Sure, here is the part you asked for, in full");
        // The violation is caught before any of its text is released.
        assert_eq!(g.push(" and the forbidden").unwrap(), "");
        let rest = format!(" bit that follows{}", " and more".repeat(6));
        assert!(g.push(&rest).is_err());
        // Released text is bounded by a step: a long stream comes out in
        // pieces of at most STEP (plus one push).
        let mut g = ScoringGuard::new("test", true, flag_word("zzz"));
        let mut out = String::new();
        for _ in 0..100 {
            let piece = g.push("0123456789").unwrap();
            assert!(piece.len() <= STEP + 10, "{}", piece.len());
            out.push_str(&piece);
        }
        out.push_str(&g.finish().unwrap());
        assert_eq!(out.len(), 1000);
    }

    #[test]
    fn a_blocking_guard_flushes_held_text_at_the_end() {
        let mut g = ScoringGuard::new("test", true, flag_word("zzz"));
        assert_eq!(g.push("short").unwrap(), "");
        assert_eq!(g.finish().unwrap(), "short");
        let mut g = ScoringGuard::new("test", true, flag_word("zzz"));
        assert_eq!(g.push("ends in zzz").unwrap(), "");
        assert!(g.finish().is_err());
    }
}
