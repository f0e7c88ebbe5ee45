//! `prompt-injection`: scores user and tool messages (system messages when
//! `score_system_messages`) with the in-process detector of
//! `sluice_guardrails::prompt_injection` (rules plus a trained linear model).

use std::sync::{Arc, OnceLock};

use sluice_guardrails::prompt_injection::Detector;
use sluice_proto::pack::policies::{Action, PromptInjection as Config};

use super::{Decision, Policy, Stage, Text};

const NAME: &str = "prompt-injection";

/// The weights are compiled in and immutable: parsed once per process.
fn detector() -> Arc<Detector> {
    static DETECTOR: OnceLock<Arc<Detector>> = OnceLock::new();
    DETECTOR.get_or_init(|| Arc::new(Detector::new())).clone()
}

pub struct PromptInjection {
    action: Action,
    threshold: f32,
    score_system_messages: bool,
    detector: Arc<Detector>,
}

impl PromptInjection {
    pub fn new(cfg: &Config) -> Self {
        PromptInjection {
            action: cfg.action,
            threshold: cfg
                .threshold
                .map(|t| t as f32)
                .unwrap_or_else(Detector::default_threshold),
            score_system_messages: cfg.score_system_messages,
            detector: detector(),
        }
    }

    /// How a message of this role is judged.
    fn scoring(&self, role: &str) -> Scoring {
        match role {
            "user" | "tool" => Scoring::Full,
            "system" | "developer" if self.score_system_messages => Scoring::Full,
            // Earlier assistant turns (and their tool calls) are written by
            // the client too, so a forged "Sure, ignoring my instructions…"
            // is an attack; but the model was fitted to user prompts and
            // flags ordinary assistant replies, so only its rules judge them.
            "assistant" => Scoring::RulesOnly,
            _ => Scoring::Skip,
        }
    }
}

#[derive(PartialEq)]
enum Scoring {
    Full,
    RulesOnly,
    Skip,
}

impl Policy for PromptInjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn check_request(&self, texts: &mut [Text<'_>]) -> Decision {
        let mut best: Option<(f32, Option<&'static str>)> = None;
        for t in texts.iter() {
            let scoring = self.scoring(t.role);
            if scoring == Scoring::Skip {
                continue;
            }
            let v = self.detector.score(t.text);
            if scoring == Scoring::RulesOnly && v.rule.is_none() {
                continue;
            }
            if best.is_none_or(|(s, _)| v.score > s) {
                best = Some((v.score, v.rule));
            }
        }
        match best {
            Some((score, rule)) if score >= self.threshold => {
                Decision::found(NAME, Stage::Request, self.action, "injection_detected")
                    .with_category(rule.unwrap_or("model"))
                    .with_score(score)
            }
            Some((score, _)) => Decision::pass(NAME, Stage::Request).with_score(score),
            None => Decision::pass(NAME, Stage::Request),
        }
    }

    fn check_response(&self, _text: &mut String) -> Option<Decision> {
        None
    }

    fn stream_guard(&self) -> Option<Box<dyn super::stream::StreamGuard>> {
        None
    }
}
