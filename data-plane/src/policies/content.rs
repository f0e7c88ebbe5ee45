//! `content-filter`: blocks (or monitors) the configured categories —
//! hate_speech, harassment, self_harm, sexual, violence — on requests and
//! responses, with the classifier of `sluice_guardrails::content`.

use std::sync::{Arc, OnceLock};

use sluice_guardrails::content::{Category, Classifier};
use sluice_proto::pack::policies::{Action, ContentFilter as Config};

use super::scored::Scorer;
use super::{Decision, Stage};

const NAME: &str = "content-filter";

/// Shared by the safety and content filters; compiled-in weights, parsed
/// once per process.
pub fn classifier() -> Arc<Classifier> {
    static CLASSIFIER: OnceLock<Arc<Classifier>> = OnceLock::new();
    CLASSIFIER
        .get_or_init(|| Arc::new(Classifier::new()))
        .clone()
}

#[derive(Clone)]
pub struct ContentFilter {
    categories: Vec<(usize, Category)>,
    action: Action,
    threshold: f32,
    classifier: Arc<Classifier>,
}

impl ContentFilter {
    pub fn new(cfg: &Config) -> Self {
        let categories = Category::ALL
            .iter()
            .enumerate()
            .filter(|(_, c)| cfg.categories.iter().any(|n| n == c.name()))
            .map(|(i, c)| (i, *c))
            .collect();
        ContentFilter {
            categories,
            action: cfg.action,
            threshold: cfg
                .threshold
                .map(|t| t as f32)
                .unwrap_or_else(Classifier::default_category_threshold),
            classifier: classifier(),
        }
    }
}

impl Scorer for ContentFilter {
    const NAME: &'static str = NAME;

    fn blocks(&self) -> bool {
        !self.categories.is_empty() && self.action == Action::Block
    }

    fn check(&self, text: &str, stage: Stage) -> Decision {
        let scores = self.classifier.categories(text);
        let worst = self
            .categories
            .iter()
            .map(|(i, c)| (scores[*i], *c))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        match worst {
            Some((score, cat)) if score >= self.threshold => {
                Decision::found(NAME, stage, self.action, "score_above_threshold")
                    .with_category(cat.name())
                    .with_score(score)
            }
            Some((score, _)) => Decision::pass(NAME, stage).with_score(score),
            None => Decision::pass(NAME, stage),
        }
    }
}
