//! The load generator: keep-alive HTTP/1.1 connections, every answer
//! checked for status 200.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A 1 KB user prompt of ordinary text with one email address in it, so the
/// PII policy has something to redact.
pub fn body() -> String {
    let base = "Hi team, I am writing about the invoice we received last week for the analytics workspace. \
The totals look higher than the quote we agreed in March, and two of the line items seem to be duplicated. \
Could you check the usage report for the second half of the month? Reply to accounts.payable@example.org. ";
    let mut p = String::new();
    while p.len() < 1024 {
        p.push_str(base);
    }
    p.truncate(1024);
    serde_json::json!({"model": "bench-model", "messages": [{"role": "user", "content": p}]})
        .to_string()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(1024)
        .build()
        .expect("client")
}

/// `n` requests one after another; their latencies and the failure count.
pub async fn sequential(url: &str, n: usize) -> (Vec<Duration>, u64) {
    let c = client();
    let body = body();
    let mut out = Vec::with_capacity(n);
    let mut errors = 0;
    for _ in 0..n.min(50) {
        let _ = send(&c, url, &body).await; // warm-up
    }
    for _ in 0..n {
        let t = Instant::now();
        if !send(&c, url, &body).await {
            errors += 1;
        }
        out.push(t.elapsed());
    }
    (out, errors)
}

async fn send(c: &reqwest::Client, url: &str, body: &str) -> bool {
    match c
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
    {
        Ok(r) if r.status() == 200 => r.bytes().await.is_ok(),
        _ => false,
    }
}

/// Requests per second over `duration` with `concurrency` workers.
pub async fn throughput(url: &str, concurrency: usize, duration: Duration) -> (f64, u64) {
    let c = client();
    let body = Arc::new(body());
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let end = start + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (c, url, body, done, errors) = (
                c.clone(),
                url.to_string(),
                body.clone(),
                done.clone(),
                errors.clone(),
            );
            tokio::spawn(async move {
                while Instant::now() < end {
                    if send(&c, &url, &body).await {
                        done.fetch_add(1, Ordering::Relaxed);
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    (
        done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64(),
        errors.load(Ordering::Relaxed),
    )
}

pub fn percentile(v: &mut [Duration], q: f64) -> Duration {
    v.sort_unstable();
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}
