//! PII detection speed: µs per KB of realistic text, one core.
//! Run: `cargo run --release -p sluice-guardrails --example bench_pii`
use std::time::Instant;

use sluice_guardrails::pii::{Detector, Entity};

fn main() {
    let base = "Hi team, I am writing about the invoice we received last week. Please call John Smith on +44 20 7946 0958 \
or mail jane.doe@example.com; the card 4111 1111 1111 1111 was charged twice on 2024-03-15 at 10:22. Order #100234567 \
shipped from 192.168.1.20. Thanks a lot for your help, and sorry for the long message about the analytics workspace. ";
    let mut text = String::new();
    while text.len() < 1024 {
        text.push_str(base);
    }
    let mut end = 1024;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    let d = Detector::new(&Entity::ALL, 0.5);
    let n = 3000;
    for _ in 0..200 {
        std::hint::black_box(d.find(&text));
    }
    let t = Instant::now();
    let mut found = 0;
    for _ in 0..n {
        found += std::hint::black_box(d.find(std::hint::black_box(&text))).len();
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!(
        "pii find(): {us:.1} µs per KB ({} findings per KB, {n} runs)",
        found / n
    );
}
