//! An upstream that misbehaves at the socket level (issue #16): a reset in
//! the middle of a stream, a 10 MB answer, a stream that never ends, an
//! upstream that never answers or stops after its status line, bytes that
//! are not HTTP, a close before any answer. Each request ends in a bounded
//! time with a specific answer, and afterwards the gateway holds no
//! connection to the upstream (the upstream sees every one closed), no
//! more sockets than before, and about the same memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_e2e::{Gateway, sse_events};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ROUNDS: usize = 5;
const HUGE: usize = 10_000_000;

/// A raw TCP "upstream": the first path segment says how to misbehave.
/// `Connection: close` on every answer, so the gateway's pool keeps none:
/// any connection still open at the end is one the gateway leaked.
async fn misbehaving_upstream() -> (u16, Arc<AtomicI64>) {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let open = Arc::new(AtomicI64::new(0));
    let counter = open.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let counter = counter.clone();
            tokio::spawn(async move {
                serve(sock).await;
                counter.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (port, open)
}

/// Reads one request head and its body; returns the path.
async fn read_request(sock: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    head.split_whitespace().nth(1).map(str::to_string)
}

/// Waits until the gateway closes its end.
async fn until_closed(sock: &mut TcpStream) {
    let mut chunk = [0u8; 1024];
    while let Ok(n) = sock.read(&mut chunk).await {
        if n == 0 {
            break;
        }
    }
}

const SSE_HEAD: &str =
    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";

fn event(text: &str) -> String {
    format!(
        "data: {}\n\n",
        json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]})
    )
}

async fn serve(mut sock: TcpStream) {
    let Some(path) = read_request(&mut sock).await else {
        return;
    };
    let mode = path.trim_start_matches('/').split('/').next().unwrap_or("");
    match mode {
        "reset" => {
            let _ = sock
                .write_all(format!("{SSE_HEAD}{}{}", event("Hello"), event(" there")).as_bytes())
                .await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            #[allow(deprecated)]
            let _ = sock.set_linger(Some(Duration::ZERO));
        }
        "huge" => {
            let body = json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "a".repeat(HUGE)}, "finish_reason": "stop"}]})
            .to_string();
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(body.as_bytes()).await;
            until_closed(&mut sock).await;
        }
        "endless" => {
            if sock.write_all(SSE_HEAD.as_bytes()).await.is_err() {
                return;
            }
            let mut i = 0u64;
            loop {
                i += 1;
                if sock
                    .write_all(event(&format!("word{i} ")).as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        "silent" => until_closed(&mut sock).await,
        "slowheaders" => {
            let _ = sock.write_all(b"HTTP/1.1 200 OK\r\n").await;
            until_closed(&mut sock).await;
        }
        "garbage" => {
            let _ = sock.write_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n").await;
            until_closed(&mut sock).await;
        }
        // "close": hang up without a word.
        _ => {}
    }
}

fn pack(port: u16) -> String {
    let mut targets = String::new();
    for mode in [
        "reset",
        "huge",
        "endless",
        "silent",
        "slowheaders",
        "garbage",
        "close",
    ] {
        targets += &format!(
            "    - id: {mode}\n      provider: openai:org/{mode}\n      base_url: http://127.0.0.1:{port}/{mode}/v1\n      timeout_seconds: 1\n      stream_timeout_seconds: 1\n"
        );
    }
    format!("providers:\n  targets:\n{targets}")
}

async fn chat(gw: &Gateway, model: &str, stream: bool) -> reqwest::Response {
    // A client of its own per request: no idle keep-alive connection of the
    // test's stays open in the gateway's socket count.
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
        .post(gw.url("/v1/chat/completions"))
        .json(&json!({"model": format!("org/{model}"), "stream": stream, "messages": [{"role": "user", "content": "Hi"}]}))
        .send()
        .await
        .unwrap()
}

async fn error_code(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    (
        status,
        v["error"]["code"].as_str().unwrap_or("").to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_misbehaving_upstream_ends_every_request_in_bounded_time_and_leaks_nothing() {
    let (port, open) = misbehaving_upstream().await;
    let gw = Gateway::start(&pack(port));
    // Warm the gateway up (one of each) before the baseline.
    for mode in ["close", "huge"] {
        let _ = chat(&gw, mode, false).await.bytes().await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sockets_before = gw.process.open_sockets().unwrap();
    let rss_before = gw.process.rss_kib().unwrap();

    let mut report = Vec::new();
    let mut timed = |case: &str, start: Instant| {
        let took = start.elapsed();
        assert!(took < Duration::from_secs(5), "{case} took {took:?}");
        report.push((case.to_string(), took));
    };
    for _ in 0..ROUNDS {
        // Reset mid-stream: the events before it, then an error event.
        let t = Instant::now();
        let events = sse_events(chat(&gw, "reset", true).await).await;
        assert!(events.iter().any(|e| e.contains("Hello")), "{events:?}");
        let last = events.last().unwrap();
        assert!(last.contains("upstream_error"), "{events:?}");
        assert!(!events.contains(&"[DONE]".to_string()));
        timed("reset mid-stream", t);

        // Reset before a whole answer's body is read: 502.
        let t = Instant::now();
        assert_eq!(
            error_code(chat(&gw, "reset", false).await).await,
            (502, "upstream_error".into())
        );
        timed("reset mid-answer", t);

        // 10 MB answer: passed through whole.
        let t = Instant::now();
        let v: Value = chat(&gw, "huge", false).await.json().await.unwrap();
        assert_eq!(
            v["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .len(),
            HUGE
        );
        timed("10 MB answer", t);

        // An endless stream the client leaves after 100 events: the gateway
        // drops the upstream connection (checked below via `open`).
        let t = Instant::now();
        let mut resp = chat(&gw, "endless", true).await;
        let mut seen = 0;
        while seen < 100 {
            let chunk = resp.chunk().await.unwrap().expect("the stream goes on");
            seen += String::from_utf8_lossy(&chunk).matches("word").count();
        }
        drop(resp);
        timed("endless stream, client leaves", t);

        // An endless stream asked for as a whole answer: the deadline.
        let t = Instant::now();
        assert_eq!(
            error_code(chat(&gw, "endless", false).await).await,
            (504, "upstream_timeout".into())
        );
        timed("endless body for a whole answer", t);

        for (mode, case, want) in [
            ("silent", "no answer", (504, "upstream_timeout")),
            (
                "slowheaders",
                "status line, no headers",
                (504, "upstream_timeout"),
            ),
            ("garbage", "not HTTP", (502, "upstream_error")),
            ("close", "closed without answer", (502, "upstream_error")),
        ] {
            for stream in [false, true] {
                let t = Instant::now();
                assert_eq!(
                    error_code(chat(&gw, mode, stream).await).await,
                    (want.0, want.1.to_string()),
                    "{case}, stream {stream}"
                );
                timed(case, t);
            }
        }
    }

    // Every upstream connection closed by the gateway; no socket kept.
    let deadline = Instant::now() + Duration::from_secs(5);
    while open.load(Ordering::SeqCst) > 0 || gw.process.open_sockets().unwrap() > sockets_before {
        assert!(
            Instant::now() < deadline,
            "after the faults the upstream still sees {} connection(s) open; the gateway holds {} sockets (before: {sockets_before})",
            open.load(Ordering::SeqCst),
            gw.process.open_sockets().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rss_after = gw.process.rss_kib().unwrap();
    assert!(
        rss_after < rss_before + 64 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    let logs = gw.logs();
    assert!(!logs.contains("panicked"), "{logs}");
    let mut worst: std::collections::BTreeMap<String, (usize, Duration)> = Default::default();
    for (case, took) in report {
        let e = worst.entry(case).or_default();
        e.0 += 1;
        e.1 = e.1.max(took);
    }
    for (case, (n, took)) in worst {
        eprintln!("upstream fault: {case:<32} {n:>3} request(s), slowest {took:?}");
    }
    eprintln!(
        "sockets {sockets_before} before, {} after; RSS {rss_before} KiB before, {rss_after} KiB after",
        gw.process.open_sockets().unwrap()
    );
}
