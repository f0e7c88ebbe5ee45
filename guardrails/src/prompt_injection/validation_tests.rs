//! The detector (rules + model, as the gateway runs it) on the files in
//! training/prompt_injection/data that training never used, at the default
//! threshold:
//!
//! * on the two validation files every row's Rust score equals train.py's
//!   (validation_scores.csv) to 1e-6 and the same rule fires; precision,
//!   recall and F1 are printed and F1 is at least the figure claimed in
//!   training/prompt_injection/README.md minus 0.005;
//! * on the held-out benign files (everyday prompts, chat messages in 23
//!   languages, task-style prompts written before any model was scored on
//!   them) the false-positive rate is at most the README's figure plus
//!   0.005;
//! * on the held-out attack files (families and languages no train file
//!   has) recall is at least the README's figure minus 0.005.
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
    ("s-labs-validation.csv", 0.9889, 0.9324, 0.9598),
    ("neuralchemy-validation.csv", 0.9679, 0.9045, 0.9351),
];

/// Held-out benign files and their false-positive rates as claimed in the
/// README (every row is benign: every flag is a false positive).
const CLAIMED_BENIGN_FPR: [(&str, f64); 3] = [
    ("benign-heldout.csv", 0.0069),
    ("conversations-heldout.csv", 0.0015),
    ("tasks-fresh-heldout.csv", 0.0028),
];

/// Held-out attack files and their recall as claimed in the README.
const CLAIMED_ATTACK_RECALL: [(&str, f64); 2] = [
    ("attacks-unseen.csv", 0.9510),
    ("attacks-multilingual-heldout.csv", 0.0278),
];

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
    // Files no training saw, every row of one label: the share flagged is
    // the false-positive rate (benign) or the recall (attacks).
    let held_out = CLAIMED_BENIGN_FPR
        .iter()
        .map(|&(f, c)| (f, false, c))
        .chain(CLAIMED_ATTACK_RECALL.iter().map(|&(f, c)| (f, true, c)));
    for (file, attacks, claimed) in held_out {
        let rows = load(file);
        assert!(
            rows.iter().all(|(_, l)| *l == attacks),
            "{file}: mixed labels"
        );
        let flagged = rows
            .iter()
            .filter(|(text, _)| d.score(text).score >= t)
            .count();
        let rate = flagged as f64 / rows.len().max(1) as f64;
        let what = if attacks {
            "recall"
        } else {
            "false-positive rate"
        };
        println!(
            "{file:<34}{what} {rate:.4} ({flagged} of {} rows)",
            rows.len()
        );
        let off = if attacks {
            rate < claimed - 0.005
        } else {
            rate > claimed + 0.005
        };
        if off {
            failures.push(format!("{file}: {what} {rate:.4}, README claims {claimed}"));
        }
    }
    // The benign sets are the yardstick of issue #15: at least 2,000 rows.
    assert!(load("benign-heldout.csv").len() >= 2000);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures[..failures.len().min(20)].join("\n")
    );
}
