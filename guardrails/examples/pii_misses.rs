//! Prints the tuning split's misses and false alarms for one entity:
//! `cargo run -p sluice-guardrails --example pii_misses -- PHONE_NUMBER`
use sluice_guardrails::pii::{Detector, Entity};

fn main() {
    let want = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "PHONE_NUMBER".into());
    let split = std::env::args()
        .nth(2)
        .unwrap_or_else(|| "eval-tune.jsonl".into());
    let path = format!("{}/training/pii/splits/{split}", env!("CARGO_MANIFEST_DIR"));
    let d = Detector::new(&Entity::ALL, 0.5);
    for line in std::fs::read_to_string(path).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let text = v["text"].as_str().unwrap();
        let found = d.find(text);
        for s in v["spans"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["entity"] == want.as_str())
        {
            let (a, b) = (
                s["start"].as_u64().unwrap() as usize,
                s["end"].as_u64().unwrap() as usize,
            );
            if !found
                .iter()
                .any(|f| f.entity.name() == want && f.start < b && a < f.end)
            {
                println!("MISS  {:?}   in {text:?}", &text[a..b]);
            }
        }
        for f in found.iter().filter(|f| f.entity.name() == want) {
            let hit = v["spans"].as_array().unwrap().iter().any(|s| {
                s["entity"] == want.as_str()
                    && (s["start"].as_u64().unwrap() as usize) < f.end
                    && f.start < s["end"].as_u64().unwrap() as usize
            });
            if !hit {
                println!("FALSE {:?}   in {text:?}", &text[f.start..f.end]);
            }
        }
    }
}
