//! Cost of each policy, and of the whole chain, on a 1 KB chat request —
//! measured against a baseline from the same run: decoding the same
//! request's JSON, which the gateway pays for every request anyway.
//!
//! Run: `cargo bench -p sluice-data-plane --bench policy_chain`

use std::hint::black_box;
use std::time::Instant;

use sluice_data_plane::openai::ChatRequest;
use sluice_data_plane::policies::Chain;

const CHAIN: &str = "providers:\n  targets:\n    - id: t\n      provider: openai:m\n      base_url: http://127.0.0.1:1/v1\npolicies:\n  chain: [prompt-injection, pii-detector, safety-filter, content-filter]\n  policy:\n    pii-detector:\n      action: redact\n    content-filter:\n      categories: [hate_speech, harassment, self_harm, sexual, violence]\n";

/// About 1 KB of ordinary support-chat text with one email address in it.
fn prompt() -> String {
    let base = "Hi team, I am writing about the invoice we received last week for the analytics workspace. \
The totals look higher than the quote we agreed in March, and two of the line items seem to be duplicated. \
Could you check the usage report for the second half of the month and tell me whether the overage is real? \
You can reply to accounts.payable@example.org or to me directly. We would also like to understand how the \
new pricing tiers apply to teams that share a single workspace across regions, because our finance people \
need a forecast for next quarter. Thanks a lot for your help, and sorry for the long message. ";
    let mut s = String::new();
    while s.len() < 1024 {
        s.push_str(base);
    }
    s.truncate(1024);
    s
}

fn request_json(p: &str) -> String {
    serde_json::json!({"model": "m", "messages": [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": p}]}).to_string()
}

/// Median nanoseconds per call over `rounds` rounds of `iters` calls.
fn measure(rounds: usize, iters: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..iters {
        f();
    }
    let mut per_call: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    per_call.sort_by(f64::total_cmp);
    per_call[rounds / 2]
}

fn main() {
    let pack = sluice_proto::pack::load(CHAIN).expect("bench pack").pack;
    let body = request_json(&prompt());
    let (rounds, iters) = (15, 400);

    let baseline = measure(rounds, iters, || {
        black_box(serde_json::from_str::<ChatRequest>(black_box(&body)).unwrap());
    });
    // Distinct prompts, cycled, so no per-thread memo can answer from the
    // previous iteration: each call pays for its text.
    let reqs: Vec<ChatRequest> = (0..64)
        .map(|i| {
            let mut p = prompt();
            p.truncate(1000);
            p.push_str(&format!(" ref {i:04}"));
            serde_json::from_str(&request_json(&p)).unwrap()
        })
        .collect();
    let req = &reqs[0];
    let next = std::cell::Cell::new(0usize);
    let run = |chain: &Chain| {
        let i = next.get();
        next.set((i + 1) % reqs.len());
        let mut r = reqs[i].clone();
        let mut decisions = Vec::new();
        let _ = black_box(chain.check_request(&mut r.texts_mut(), &mut decisions));
    };
    let clone_only = measure(rounds, iters, || {
        black_box(req.clone());
    });

    println!(
        "policy cost on a 1 KB chat request (median of {rounds} rounds x {iters} calls, one core)"
    );
    println!(
        "baseline: decoding the request JSON = {:.1} µs",
        baseline / 1000.0
    );
    println!("{:<18} {:>10} {:>14}", "policy", "µs/request", "x baseline");
    for p in &pack.chain {
        let chain = Chain::build(std::slice::from_ref(p));
        let ns = (measure(rounds, iters, || run(&chain)) - clone_only).max(0.0);
        println!(
            "{:<18} {:>10.1} {:>14.2}",
            p.name(),
            ns / 1000.0,
            ns / baseline
        );
    }
    let full = Chain::build(&pack.chain);
    let ns = (measure(rounds, iters, || run(&full)) - clone_only).max(0.0);
    println!(
        "{:<18} {:>10.1} {:>14.2}",
        "full chain",
        ns / 1000.0,
        ns / baseline
    );
    let target_us = 100.0;
    println!(
        "target: full chain <= {target_us} µs per 1 KB request: {}",
        if ns / 1000.0 <= target_us {
            "met"
        } else {
            "NOT met"
        }
    );
}
