//! Content classifier speed: µs per KB of text, one core.
//! Run: `cargo run --release -p sluice-guardrails --example bench_content`
use std::time::Instant;

use sluice_guardrails::content::Classifier;

fn main() {
    let base = "Hi team, I am writing about the invoice we received last week for the analytics workspace. \
The totals look higher than the quote we agreed in March, and two of the line items seem to be duplicated. ";
    let mut text = String::new();
    while text.len() < 1024 {
        text.push_str(base);
    }
    text.truncate(1024);
    let c = Classifier::new();
    let n = 3000;
    for _ in 0..200 {
        std::hint::black_box(c.score(&text));
    }
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(c.score(std::hint::black_box(&text)));
    }
    println!(
        "content score(): {:.1} µs per KB ({n} runs)",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
}
