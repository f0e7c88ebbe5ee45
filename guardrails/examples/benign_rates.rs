//! How often each detector fires on benign traffic it was not tuned on, at
//! its default threshold: the held-out everyday prompts (`benign-heldout`,
//! written for Sluice) and held-out chat messages (`conversations-heldout`,
//! chatterbot-corpus, 23 languages; English shown on its own too).
//!
//! For blocking detectors every flag is a false positive. For PII a finding
//! is not necessarily wrong (chat names people), so it is reported as the
//! share of messages that would be redacted, by entity.
//!
//! Run: `cargo run --release -p sluice-guardrails --example benign_rates`
use std::collections::BTreeMap;

use sluice_guardrails::content::Classifier;
use sluice_guardrails::pii::{self, Entity};
use sluice_guardrails::prompt_injection::Detector;

#[path = "data/mod.rs"]
mod data;
use data::rows as load;

fn main() {
    let injection = Detector::new();
    let content = Classifier::new();
    let pii = pii::Detector::new(&Entity::ALL, 0.5);
    let (t_pi, t_tox, t_cat) = (
        Detector::default_threshold(),
        Classifier::default_toxicity_threshold(),
        Classifier::default_category_threshold(),
    );
    let conversations = load("conversations-heldout.csv");
    let english: Vec<_> = conversations
        .iter()
        .filter(|(_, f)| f.starts_with("english/"))
        .cloned()
        .collect();
    let sets = [
        ("benign-heldout", load("benign-heldout.csv")),
        ("conversations-heldout", conversations),
        ("  of which English", english),
    ];
    println!(
        "thresholds: prompt-injection {t_pi}, toxicity {t_tox}, categories {t_cat}; PII min_score 0.5\n"
    );
    println!(
        "{:<24}{:>6}{:>11}{:>10}{:>8}{:>12}{:>11}{:>8}{:>10}{:>11}{:>11}",
        "set",
        "rows",
        "injection",
        "toxicity",
        "hate",
        "harassment",
        "self_harm",
        "sexual",
        "violence",
        "any block",
        "PII found"
    );
    for (name, rows) in &sets {
        let n = rows.len().max(1) as f64;
        let mut flags = [0usize; 8];
        let mut entities: BTreeMap<&str, usize> = BTreeMap::new();
        for (text, _) in rows {
            // Categories in `Category::ALL` order: hate, harassment,
            // self-harm, sexual, violence.
            let s = content.score(text);
            let hits = [
                injection.score(text).score >= t_pi,
                s.toxicity >= t_tox,
                s.categories[0] >= t_cat,
                s.categories[1] >= t_cat,
                s.categories[2] >= t_cat,
                s.categories[3] >= t_cat,
                s.categories[4] >= t_cat,
            ];
            for (i, h) in hits.iter().enumerate() {
                flags[i] += *h as usize;
            }
            flags[7] += hits.iter().any(|h| *h) as usize;
            let found = pii.find(text);
            let mut kinds: Vec<_> = found.iter().map(|f| f.entity.name()).collect();
            kinds.sort_unstable();
            kinds.dedup();
            for k in kinds {
                *entities.entry(k).or_default() += 1;
            }
        }
        let pct = |c: usize| format!("{:.2}%", 100.0 * c as f64 / n);
        let pii_rows: usize = entities.values().sum();
        println!(
            "{name:<24}{:>6}{:>11}{:>10}{:>8}{:>12}{:>11}{:>8}{:>10}{:>11}{:>11}",
            rows.len(),
            pct(flags[0]),
            pct(flags[1]),
            pct(flags[2]),
            pct(flags[3]),
            pct(flags[4]),
            pct(flags[5]),
            pct(flags[6]),
            pct(flags[7]),
            pct(pii_rows),
        );
        if !entities.is_empty() {
            let list: Vec<_> = entities.iter().map(|(k, v)| format!("{k} {v}")).collect();
            println!("{:<24}PII by entity: {}", "", list.join(", "));
        }
    }
}
