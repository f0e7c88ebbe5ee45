//! Prints the misses and false alarms of one entity on a split, the tuning
//! split unless another is named:
//! `cargo run --release -p sluice-guardrails --example pii_misses -- PERSON [eval-tune.jsonl]`
use sluice_guardrails::pii::{Detector, Entity};

fn main() {
    let want = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "PHONE_NUMBER".into());
    let split = std::env::args()
        .nth(2)
        .unwrap_or_else(|| "eval-tune.jsonl".into());
    let path = format!("{}/training/pii/{split}", env!("CARGO_MANIFEST_DIR"));
    let d = Detector::new(&Entity::ALL, 0.5);
    for line in std::fs::read_to_string(path).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let text = v["text"].as_str().unwrap();
        let found = d.find(text);
        let spans = v["spans"].as_array().unwrap();
        let span = |s: &serde_json::Value| {
            (
                s["start"].as_u64().unwrap() as usize,
                s["end"].as_u64().unwrap() as usize,
            )
        };
        for s in spans.iter().filter(|s| s["entity"] == want.as_str()) {
            let (a, b) = span(s);
            if !found
                .iter()
                .any(|f| f.entity.name() == want && f.start < b && a < f.end)
            {
                println!("MISS  {:?}   in {text:?}", &text[a..b]);
            }
        }
        for f in found.iter().filter(|f| f.entity.name() == want) {
            let hit = spans.iter().any(|s| {
                let (a, b) = span(s);
                s["entity"] == want.as_str() && a < f.end && f.start < b
            });
            if !hit {
                println!(
                    "FALSE {:?} ({:.2})   in {text:?}",
                    &text[f.start..f.end],
                    f.score
                );
            }
        }
    }
}
