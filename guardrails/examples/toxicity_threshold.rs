//! The toxicity threshold against benign traffic and labelled toxicity,
//! threshold by threshold. Only the train-side benign files take part in
//! choosing (`conversations-train`, English rows, and `benign-train`, both
//! from the prompt-injection data); the held-out files are printed for the
//! report.
//!
//! Run: `cargo run --release -p sluice-guardrails --example toxicity_threshold`
use sluice_guardrails::content::Classifier;

#[path = "data/mod.rs"]
mod data;

const CONTENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/training/content");

/// The texts of a prompt-injection data file (its English rows only).
fn csv_rows(file: &str, english_only: bool) -> Vec<String> {
    data::rows(file)
        .into_iter()
        .filter(|(_, family)| !english_only || family.starts_with("english/"))
        .map(|(text, _)| text)
        .collect()
}

fn labelled(file: &str) -> Vec<(String, bool)> {
    let path = format!("{CONTENT}/{file}");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            let toxic = v["labels"]["toxic"].as_i64() == Some(1);
            (v["text"].as_str().unwrap_or_default().to_string(), toxic)
        })
        .collect()
}

fn main() {
    let c = Classifier::new();
    let score = |rows: &[String]| rows.iter().map(|t| c.toxicity(t)).collect::<Vec<_>>();
    let chat_train = score(&csv_rows("conversations-train.csv", true));
    let benign_train = score(&csv_rows("benign-train.csv", false));
    let chat_heldout = score(&csv_rows("conversations-heldout.csv", true));
    let benign_heldout = score(&csv_rows("benign-heldout.csv", false));
    let heldout: Vec<(f32, bool)> = labelled("eval-heldout.jsonl")
        .iter()
        .map(|(t, y)| (c.toxicity(t), *y))
        .collect();
    let rate = |s: &[f32], t: f32| s.iter().filter(|&&x| x >= t).count() as f64 / s.len() as f64;
    println!(
        "rows: chat-train (English) {}, benign-train {}, chat-heldout (English) {}, benign-heldout {}, eval-heldout {} ({} toxic)\n",
        chat_train.len(),
        benign_train.len(),
        chat_heldout.len(),
        benign_heldout.len(),
        heldout.len(),
        heldout.iter().filter(|(_, y)| *y).count()
    );
    println!(
        "| threshold | chat-train FPR | benign-train FPR | chat-heldout FPR | benign-heldout FPR | eval-heldout P / R / F1 |"
    );
    println!("|---|---|---|---|---|---|");
    for i in 0..=10 {
        let t = 0.5 + 0.05 * i as f32;
        let tp = heldout.iter().filter(|(s, y)| *y && *s >= t).count() as f64;
        let fp = heldout.iter().filter(|(s, y)| !*y && *s >= t).count() as f64;
        let pos = heldout.iter().filter(|(_, y)| *y).count() as f64;
        let (p, r) = (tp / (tp + fp).max(1.0), tp / pos.max(1.0));
        let f1 = if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        };
        println!(
            "| {t:.2} | {:.4} | {:.4} | {:.4} | {:.4} | {p:.3} / {r:.3} / {f1:.3} |",
            rate(&chat_train, t),
            rate(&benign_train, t),
            rate(&chat_heldout, t),
            rate(&benign_heldout, t),
        );
    }
}
