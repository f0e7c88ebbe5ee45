//! `safety-filter`: toxicity scoring (`check_toxicity`) on requests and
//! responses, with the classifier of `sluice_guardrails::content`.

use std::sync::Arc;

use sluice_guardrails::content::Classifier;
use sluice_proto::pack::policies::{Action, SafetyFilter as Config};

use super::content::classifier;
use super::scored::Scorer;
use super::{Decision, Stage};

const NAME: &str = "safety-filter";

#[derive(Clone)]
pub struct SafetyFilter {
    check_toxicity: bool,
    action: Action,
    threshold: f32,
    classifier: Arc<Classifier>,
}

impl SafetyFilter {
    pub fn new(cfg: &Config) -> Self {
        SafetyFilter {
            check_toxicity: cfg.check_toxicity,
            action: cfg.action,
            threshold: cfg
                .threshold
                .map(|t| t as f32)
                .unwrap_or_else(Classifier::default_toxicity_threshold),
            classifier: classifier(),
        }
    }
}

impl Scorer for SafetyFilter {
    const NAME: &'static str = NAME;

    fn blocks(&self) -> bool {
        self.check_toxicity && self.action == Action::Block
    }

    fn check(&self, text: &str, stage: Stage) -> Decision {
        if !self.check_toxicity {
            return Decision::pass(NAME, stage);
        }
        let score = self.classifier.toxicity(text);
        if score >= self.threshold {
            Decision::found(NAME, stage, self.action, "score_above_threshold")
                .with_category("toxicity")
                .with_score(score)
        } else {
            Decision::pass(NAME, stage).with_score(score)
        }
    }
}
