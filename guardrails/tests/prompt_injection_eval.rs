//! Precision, recall and F1 of the prompt-injection detector (rules + model,
//! as the gateway runs it) on the two validation files of
//! ../shared/data/prompt-injection, at the default threshold. Prints the
//! table with `-- --nocapture`; see training/prompt_injection/README.md.

use sluice_guardrails::prompt_injection::Detector;

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/prompt-injection"
);

fn evaluate(file: &str) -> (f64, f64, f64) {
    let path = format!("{DATA}/{file}");
    let mut reader = csv::Reader::from_path(&path).unwrap_or_else(|e| {
        panic!("{path}: {e} (the data lives in ../shared beside the repository)")
    });
    let d = Detector::new();
    let t = Detector::default_threshold();
    let (mut tp, mut fp, mut fn_) = (0u32, 0u32, 0u32);
    for row in reader.records() {
        let row = row.unwrap();
        let label = &row[1] == "1";
        let predicted = d.score(&row[0]).score >= t;
        match (predicted, label) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fn_ += 1,
            _ => {}
        }
    }
    let p = tp as f64 / (tp + fp).max(1) as f64;
    let r = tp as f64 / (tp + fn_).max(1) as f64;
    (p, r, 2.0 * p * r / (p + r).max(1e-9))
}

#[test]
fn validation_f1_is_at_least_0_95_on_both_datasets() {
    for (file, floor) in [
        ("s-labs-validation.csv", 0.95),
        ("neuralchemy-validation.csv", 0.95),
    ] {
        let (p, r, f1) = evaluate(file);
        println!("{file:<28} precision {p:.4} recall {r:.4} F1 {f1:.4}");
        assert!(f1 >= floor, "{file}: F1 {f1:.4} < {floor}");
    }
}
