//! The detector (rules + model, as the gateway runs it) on the two
//! validation files in training/prompt_injection/data, at the default
//! threshold:
//!
//! * every row's Rust score equals train.py's (validation_scores.csv) to
//!   1e-6 and the same rule fires;
//! * precision, recall and F1 are printed and F1 is at least the figure
//!   claimed in training/prompt_injection/README.md minus 0.005;
//! * on benign-heldout.csv (everyday prompts no training saw) the
//!   false-positive rate is at most the README's figure plus 0.005.
//!
//! Fails if a data file is missing: the figures cannot be checked without
//! it. Table: `cargo test -p sluice-guardrails --release --lib
//! prompt_injection::validation_tests -- --nocapture`.

use super::Detector;

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/training/prompt_injection/data"
);
const REFERENCE: &str = include_str!("../../training/prompt_injection/validation_scores.csv");

/// (file, precision, recall, F1) as claimed in the README.
const CLAIMED: [(&str, f64, f64, f64); 2] = [
    ("s-labs-validation.csv", 0.9771, 0.9762, 0.9767),
    ("neuralchemy-validation.csv", 0.9571, 0.9607, 0.9589),
];

/// False-positive rate on benign-heldout.csv as claimed in the README.
const CLAIMED_BENIGN_FPR: f64 = 0.1904;

fn load(file: &str) -> Vec<(String, bool)> {
    let path = format!("{DATA}/{file}");
    let mut reader = csv::Reader::from_path(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {path}: {e}. The prompt-injection validation data ships in the \
             repository (guardrails/training/prompt_injection/data); restore it with git"
        )
    });
    let headers = reader.headers().expect("CSV header").clone();
    let text = headers
        .iter()
        .position(|h| h == "text")
        .expect("text column");
    let label = headers
        .iter()
        .position(|h| h == "label")
        .expect("label column");
    reader
        .records()
        .map(|r| {
            let r = r.unwrap_or_else(|e| panic!("{path}: {e}"));
            (r[text].to_string(), &r[label] == "1")
        })
        .collect()
}

/// train.py's (score, rule) for each row of a validation file, in order.
fn reference(file: &str) -> Vec<(f64, Option<&'static str>)> {
    let dataset = file.trim_end_matches("-validation.csv");
    REFERENCE
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split(',');
            (f.next()? == dataset).then(|| {
                let score = f.next().expect("score").parse().expect("score is a number");
                let rule = f.next().filter(|r| !r.is_empty());
                (score, rule)
            })
        })
        .collect()
}

#[test]
fn validation_scores_match_python_and_f1_holds() {
    let d = Detector::new();
    let t = Detector::default_threshold();
    let mut failures = Vec::new();
    println!("threshold {t}");
    println!(
        "{:<28}{:>10}{:>10}{:>10}{:>7}",
        "file", "precision", "recall", "F1", "rows"
    );
    for (file, _, _, claimed_f1) in CLAIMED {
        let rows = load(file);
        let expected = reference(file);
        assert_eq!(
            rows.len(),
            expected.len(),
            "{file}: {} rows, validation_scores.csv has {} (re-run train.py?)",
            rows.len(),
            expected.len()
        );
        let (mut tp, mut fp, mut fn_) = (0u32, 0u32, 0u32);
        let mut max_diff = 0f64;
        for (i, ((text, label), (want, want_rule))) in rows.iter().zip(&expected).enumerate() {
            let v = d.score(text);
            let diff = (v.score as f64 - want).abs();
            max_diff = max_diff.max(diff);
            if diff > 1e-6 || v.rule != *want_rule {
                failures.push(format!(
                    "{file} row {i}: Rust {} {:?}, Python {want} {want_rule:?}",
                    v.score, v.rule
                ));
            }
            match (v.score >= t, *label) {
                (true, true) => tp += 1,
                (true, false) => fp += 1,
                (false, true) => fn_ += 1,
                _ => {}
            }
        }
        let p = tp as f64 / (tp + fp).max(1) as f64;
        let r = tp as f64 / (tp + fn_).max(1) as f64;
        let f1 = 2.0 * p * r / (p + r).max(1e-12);
        println!(
            "{file:<28}{p:>10.4}{r:>10.4}{f1:>10.4}{:>7}   (max |Rust - Python| {max_diff:.1e})",
            rows.len()
        );
        if f1 < claimed_f1 - 0.005 {
            failures.push(format!("{file}: F1 {f1:.4} < claimed {claimed_f1} - 0.005"));
        }
    }
    // Everyday traffic the model never saw (benign.py's held-out half):
    // every flag is a false positive.
    let benign = load("benign-heldout.csv");
    assert!(benign.len() >= 2000 && benign.iter().all(|(_, l)| !l));
    let flagged = benign
        .iter()
        .filter(|(text, _)| d.score(text).score >= t)
        .count();
    let fpr = flagged as f64 / benign.len() as f64;
    println!(
        "{:<28}false-positive rate {fpr:.4} ({flagged} of {} rows)",
        "benign-heldout.csv",
        benign.len()
    );
    if fpr > CLAIMED_BENIGN_FPR + 0.005 {
        failures.push(format!(
            "benign-heldout.csv: false-positive rate {fpr:.4} > claimed {CLAIMED_BENIGN_FPR} + 0.005"
        ));
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures[..failures.len().min(20)].join("\n")
    );
}
