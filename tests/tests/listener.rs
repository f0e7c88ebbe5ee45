//! The gateway's listener limits, through the real binary: slow or silent
//! connections are closed, a body that does not arrive in time gets 408,
//! requests over the concurrency limit get 503 `overloaded` at once.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_e2e::upstream::Upstream;
use sluice_e2e::{Gateway, GatewayOptions};

fn gateway(up: &Upstream, args: &[&str]) -> Gateway {
    let pack = format!(
        "providers:\n  targets:\n    - id: slow\n      provider: openai:org/slow\n      base_url: {}/v1\n    - id: fast\n      provider: openai:org/fast\n      base_url: {}/v1\n",
        up.base("slowstream"),
        up.base("ok")
    );
    Gateway::start_with(
        &pack,
        GatewayOptions {
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
    )
}

/// Reads until the gateway closes the connection; how long that took.
fn time_to_close(mut s: TcpStream, trickle: &[u8]) -> Duration {
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 1024];
    let mut sent = 0;
    while start.elapsed() < Duration::from_secs(10) {
        if sent < trickle.len() && s.write_all(&trickle[sent..sent + 1]).is_err() {
            return start.elapsed();
        }
        sent += 1;
        match s.read(&mut buf) {
            Ok(0) => return start.elapsed(),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return start.elapsed(),
        }
    }
    panic!("the gateway kept a slow connection open for 10 s");
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_and_silent_connections_are_closed_after_the_header_timeout() {
    let up = Upstream::start().await;
    let gw = gateway(&up, &["--header-timeout-seconds", "1"]);
    let addr = format!("127.0.0.1:{}", gw.port);
    // Slowloris: one byte every 200 ms, never finishing the head.
    let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let t = time_to_close(TcpStream::connect(&addr).unwrap(), head);
    assert!(t < Duration::from_secs(4), "slowloris held for {t:?}");
    // One byte, then nothing (stuck before the protocol is chosen).
    let t = time_to_close(TcpStream::connect(&addr).unwrap(), b"G");
    assert!(
        t < Duration::from_secs(4),
        "one-byte connection held for {t:?}"
    );
    // Nothing at all.
    let t = time_to_close(TcpStream::connect(&addr).unwrap(), b"");
    assert!(
        t < Duration::from_secs(4),
        "silent connection held for {t:?}"
    );
    // Ordinary clients are unaffected.
    let r = reqwest::get(gw.url("/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_does_not_arrive_in_time_gets_408() {
    let up = Upstream::start().await;
    let gw = gateway(&up, &["--body-timeout-seconds", "1"]);
    let mut s = TcpStream::connect(format!("127.0.0.1:{}", gw.port)).unwrap();
    s.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n{\"model\":",
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let start = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        if answer.windows(4).any(|w| w == b"}}\r\n") || answer.ends_with(b"}}") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    let body: Value = serde_json::from_str(&text[text.find('{').unwrap()..]).unwrap();
    assert_eq!(body["error"]["code"], "request_timeout", "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_over_the_concurrency_limit_get_503_overloaded_at_once() {
    let up = Upstream::start().await;
    let gw = gateway(&up, &["--max-concurrent-requests", "2"]);
    let client = reqwest::Client::new();
    let stream = || {
        client
            .post(gw.url("/v1/chat/completions"))
            .json(&json!({"model": "slow", "stream": true, "messages": [{"role": "user", "content": "Tell me a story."}]}))
            .send()
    };
    // Two streams hold both slots while they run.
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut r = stream().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.chunk().await.unwrap().is_some());
        open.push(r);
    }
    let fast = || async {
        client
            .post(gw.url("/v1/chat/completions"))
            .json(&json!({"model": "fast", "messages": [{"role": "user", "content": "Hi"}]}))
            .send()
            .await
            .unwrap()
    };
    let start = Instant::now();
    let r = fast().await;
    assert_eq!(r.status(), 503);
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "refusal waited {:?}",
        start.elapsed()
    );
    assert_eq!(r.headers()["retry-after"], "1");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "overloaded", "{body}");
    // Probes and metrics still answer.
    assert_eq!(
        reqwest::get(gw.url("/healthz")).await.unwrap().status(),
        200
    );
    assert!(
        gw.metrics()
            .await
            .contains("sluice_overloaded_requests_total 1")
    );
    // A finished (or abandoned) stream gives its slot back.
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = fast().await;
        if r.status() == 200 {
            break;
        }
        assert_eq!(r.status(), 503);
        assert!(Instant::now() < deadline, "the slot never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
