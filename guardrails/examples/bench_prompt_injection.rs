//! Prompt-injection scoring speed: µs per KB of prompt, one core.
//! Run: `cargo run --release -p sluice-guardrails --example bench_prompt_injection`
//! With arguments, prints the score of each argument instead.
use std::time::Instant;

use sluice_guardrails::prompt_injection::Detector;

fn main() {
    let d = Detector::new();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.is_empty() {
        for a in args {
            let v = d.score(&a);
            println!("{:.3} {:?} {a}", v.score, v.rule);
        }
        return;
    }
    let base = "Hi team, I am writing about the invoice we received last week for the analytics workspace. \
The totals look higher than the quote we agreed in March, and two of the line items seem to be duplicated. \
Could you check the usage report for the second half of the month and tell me whether the overage is real? \
You can reply to accounts.payable@example.org or to me directly. ";
    let mut text = String::new();
    while text.len() < 1024 {
        text.push_str(base);
    }
    text.truncate(1024);
    let n: usize = std::env::var("BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(3000);
    for _ in 0..200 {
        std::hint::black_box(d.score(&text));
    }
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(d.score(std::hint::black_box(&text)));
    }
    println!(
        "prompt-injection score(): {:.1} µs per KB ({n} runs)",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    split_timing(&d, &text);
}

fn split_timing(d: &Detector, text: &str) {
    let n: usize = std::env::var("BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(3000);
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(d.model_score(std::hint::black_box(text)));
    }
    println!(
        "  model only: {:.1} µs per KB",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
}
