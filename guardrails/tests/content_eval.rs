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
    let floors = [
        (0.99, 0.49),
        (0.99, 0.99),
        (0.86, 0.77),
        (0.99, 0.99),
        (0.99, 0.81),
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
        assert!(
            p >= pf && r >= rf,
            "{}: precision {p:.3} recall {r:.3}",
            cat.name()
        );
    }
}
