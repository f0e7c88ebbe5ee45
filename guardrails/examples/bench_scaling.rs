//! Cost per KB as input grows, for inputs built to be hard for each
//! detector: dense e-mail addresses, IPv4 addresses, digit runs, capitalised
//! names, and benign prose as the baseline. A detector that is linear in its
//! input shows the same µs/KB at 16 KiB and at 1 MiB; the last column is the
//! 1 MiB figure over the 16 KiB one (≈1.0 is linear).
//! Run: `cargo run --release -p sluice-guardrails --example bench_scaling`
use std::time::{Duration, Instant};

use sluice_guardrails::content::Classifier;
use sluice_guardrails::pii::{self, Detector, Entity};
use sluice_guardrails::prompt_injection;

const SIZES: [usize; 4] = [16 << 10, 64 << 10, 256 << 10, 1 << 20];

/// Makes the i-th piece of an input.
type Unit = fn(usize) -> String;

fn filled(unit: Unit, bytes: usize) -> String {
    let mut s = String::with_capacity(bytes + 64);
    let mut i = 0;
    while s.len() < bytes {
        s.push_str(&unit(i));
        i += 1;
    }
    s.truncate(bytes);
    s
}

/// Median wall time of `f` over a few runs (at least 0.2 s in all).
fn time(f: &mut dyn FnMut()) -> Duration {
    let mut runs = Vec::new();
    let start = Instant::now();
    while runs.len() < 3 || (start.elapsed() < Duration::from_millis(200) && runs.len() < 50) {
        let t = Instant::now();
        f();
        runs.push(t.elapsed());
    }
    runs.sort();
    runs[runs.len() / 2]
}

fn main() {
    let inputs: [(&str, Unit); 5] = [
        ("dense e-mails", |i| {
            format!("user{i}.name@mail{}.example.com ", i % 97)
        }),
        ("dense IPv4", |i| {
            format!("10.{}.{}.{} ", i % 250, (i / 7) % 250, (i / 3) % 250)
        }),
        ("digit runs", |i| {
            format!("{} ", 4_000_000_000_000_000u64 + i as u64 * 7919)
        }),
        ("names", |i| {
            [
                "Maria Gonzalez ",
                "John Smith ",
                "Dr. Emily Carter ",
                "Jürgen Schäfer ",
            ][i % 4]
                .to_string()
        }),
        ("benign prose", |_| {
            "Please summarise the quarterly report and list the three largest risks for the team. "
                .to_string()
        }),
    ];
    let pii = Detector::new(&Entity::ALL, 0.0);
    let pi = prompt_injection::Detector::new();
    let content = Classifier::new();
    println!("µs per KB (one core); last column: 1 MiB over 16 KiB\n");
    println!(
        "{:<14} {:<18} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "input", "detector", "16 KiB", "64 KiB", "256 KiB", "1 MiB", "ratio"
    );
    for (label, unit) in &inputs {
        type Run<'a> = Box<dyn Fn(&str) + 'a>;
        let detectors: [(&str, Run); 3] = [
            (
                "pii find+redact",
                Box::new(|t: &str| {
                    let f = pii.find(t);
                    std::hint::black_box(pii::redact(t, &f));
                }),
            ),
            (
                "prompt-injection",
                Box::new(|t: &str| {
                    std::hint::black_box(pi.score(t));
                }),
            ),
            (
                "content+toxicity",
                Box::new(|t: &str| {
                    std::hint::black_box(content.score(t));
                    std::hint::black_box(content.toxicity(t));
                }),
            ),
        ];
        for (name, run) in &detectors {
            let per_kb: Vec<f64> = SIZES
                .iter()
                .map(|&n| {
                    let text = filled(*unit, n);
                    let d = time(&mut || run(&text));
                    d.as_secs_f64() * 1e6 / (n as f64 / 1024.0)
                })
                .collect();
            println!(
                "{label:<14} {name:<18} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>7.2}",
                per_kb[0],
                per_kb[1],
                per_kb[2],
                per_kb[3],
                per_kb[3] / per_kb[0]
            );
        }
    }
}
