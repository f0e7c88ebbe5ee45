//! Prompt-injection scoring speed (rules + model, as the gateway calls it):
//! µs per KB of prompt on one core, over 4,000 distinct 1 KB prompts made
//! from a fixed word list (ASCII and some non-ASCII, benign and
//! injection-like words) with a fixed-seed generator.
//!
//! Run: `cargo run --release -p sluice-guardrails --example bench_prompt_injection`
//! With arguments, prints the score and rule of each argument instead.
use std::time::Instant;

use sluice_guardrails::prompt_injection::Detector;

const WORDS: &[&str] = &[
    "the",
    "a",
    "of",
    "to",
    "and",
    "in",
    "is",
    "for",
    "on",
    "with",
    "that",
    "this",
    "you",
    "your",
    "please",
    "could",
    "would",
    "can",
    "me",
    "we",
    "our",
    "report",
    "invoice",
    "customer",
    "order",
    "shipping",
    "refund",
    "account",
    "password",
    "reset",
    "quarterly",
    "sales",
    "revenue",
    "growth",
    "summary",
    "summarise",
    "explain",
    "translate",
    "write",
    "code",
    "function",
    "python",
    "rust",
    "error",
    "stack",
    "trace",
    "database",
    "query",
    "index",
    "table",
    "deploy",
    "server",
    "latency",
    "ignore",
    "previous",
    "instructions",
    "system",
    "prompt",
    "rules",
    "reveal",
    "developer",
    "mode",
    "pretend",
    "roleplay",
    "assistant",
    "unrestricted",
    "policy",
    "guidelines",
    "above",
    "forget",
    "meeting",
    "notes",
    "tuesday",
    "march",
    "2024",
    "42",
    "3.14",
    "v1.2.3",
    "user@example.org",
    "https://example.com/docs?id=7",
    "café",
    "naïve",
    "über",
    "résumé",
    "→",
    "—",
    "“quoted”",
    "Zürich",
    "日本語",
    "😀",
    "Hello,",
    "Thanks!",
    "(see",
    "below)",
    "e.g.",
    "i.e.",
    "etc.",
    "\n",
    "\n\n",
    "-",
    "*",
    "#",
    "1.",
    "2.",
    "Note:",
    "TODO:",
    "FIXME",
    "JSON",
    "{\"key\":",
    "\"value\"}",
];

fn prompts(count: usize, size: usize) -> Vec<String> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    (0..count)
        .map(|_| {
            let mut s = String::with_capacity(size + 32);
            while s.len() < size {
                let w = WORDS[(next() % WORDS.len() as u64) as usize];
                if next() % 7 == 0 {
                    s.push_str(&w.to_uppercase());
                } else {
                    s.push_str(w);
                }
                s.push(if next() % 12 == 0 { '.' } else { ' ' });
            }
            let mut end = size;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
            s
        })
        .collect()
}

fn main() {
    let t = Instant::now();
    let d = Detector::new();
    let build = t.elapsed();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.is_empty() {
        println!("threshold {}", Detector::default_threshold());
        for a in args {
            let v = d.score(&a);
            println!("{:.3} {:?} {a}", v.score, v.rule);
        }
        return;
    }
    let prompts = prompts(4000, 1024);
    let bytes: usize = prompts.iter().map(|p| p.len()).sum();
    for p in prompts.iter().take(500) {
        std::hint::black_box(d.score(p));
    }
    let mut best = f64::MAX;
    for _round in 0..5 {
        let t = Instant::now();
        for p in &prompts {
            std::hint::black_box(d.score(std::hint::black_box(p)));
        }
        let us_per_kb = t.elapsed().as_secs_f64() * 1e6 / (bytes as f64 / 1024.0);
        best = best.min(us_per_kb);
        println!("round: {us_per_kb:.2} µs per KB");
    }
    println!("Detector::new(): {:.2} ms", build.as_secs_f64() * 1e3);
    println!(
        "prompt-injection score(): {best:.2} µs per KB (best of 5 rounds over {} prompts of ~1 KB)",
        prompts.len()
    );
}
