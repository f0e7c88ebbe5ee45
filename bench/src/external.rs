//! `--external`: the gateway measured as a user would measure it. nginx
//! returns a fixed chat completion, `wrk` (one thread) is the client, the
//! release gateway sits in between, and nothing shares a process with the
//! system under test. Direct-to-nginx is measured first and last, so drift
//! over the run shows.
//!
//! Why these figures are lower than the in-process mode's: there the stub,
//! the load generator and its HTTP client share one tokio runtime, and the
//! client's own cost (reqwest, allocation, JSON) is paid on the direct path
//! too, which hides part of the gateway's. `wrk` costs almost nothing per
//! request, so direct-to-nginx is several times faster and every
//! microsecond the gateway adds shows in the ratio.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::procs;

/// The guide's full governance chain with the audit logger writing whole
/// bodies to an immutable, hash-chained file (`{dir}` is the gateway's
/// temp dir).
pub(crate) const FULL_CHAIN: &str = "policies:
  chain: [prompt-injection, pii-detector, safety-filter, content-filter, audit-logger]
  policy:
    prompt-injection:
      action: monitor
    pii-detector:
      action: redact
      entities: [PERSON, EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD]
    safety-filter:
      check_toxicity: true
      action: block
    content-filter:
      categories: [hate_speech, harassment]
      action: block
    audit-logger:
      destination: file
      path: {dir}/audit
      immutable: true
      include_request: true
      include_response: true
      include_policy_decisions: true
";

/// A per-key limit high enough never to refuse, so the run measures what
/// checking it costs (every bench request is the same keyless caller, so
/// all share one count: the contended case).
const LIMITED: &str = "limits:
  - name: bench-per-key
    scope: key
    requests_per_second: 1000000000
    tokens_per_minute: 1000000000000
";

/// A second target on the same upstream and a group of both that takes the
/// bench's model name: what least-outstanding choice costs per request.
fn group(base: &str) -> String {
    format!(
        "    - id: stub-b
      provider: openai:bench-model
      base_url: {base}
  groups:
    - id: bench-group
      model: bench-model
      balance: least_outstanding
      members: [stub, stub-b]
"
    )
}

/// A ~400-byte chat request, as in issue #17's measurements.
fn request_body() -> String {
    let text = "Hello! Could you summarise the attached meeting notes in three bullet points? \
We talked about the release date, the open bugs in the billing page and who owns the \
migration. Please keep it short and send the summary to dana.reyes@example.com. Thanks!";
    let body = serde_json::json!({
        "model": "bench-model",
        "messages": [
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": text}
        ]
    })
    .to_string();
    debug_assert!((350..=500).contains(&body.len()), "{}", body.len());
    body
}

/// Writes the wrk script that POSTs [`request_body`] into `dir`.
pub(crate) fn post_script(dir: &Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).expect("temp dir");
    let script = dir.join("post.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = {}\n",
            serde_json::to_string(&request_body()).expect("lua string")
        ),
    )
    .expect("write wrk script");
    script
}

/// One wrk run's figures.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Point {
    p50: Duration,
    p99: Duration,
    rps: f64,
    pub(crate) errors: u64,
    /// Requests completed (`N requests in …`).
    pub(crate) requests: u64,
}

/// Runs `wrk -t1 -cC -dDs --latency` with a POST script and reads its output.
pub(crate) fn wrk(script: &Path, url: &str, connections: usize, secs: u64) -> Point {
    let out = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{secs}s"),
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(url)
        .output()
        .expect("run wrk (install it: apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "wrk failed: {text}");
    parse_wrk(&text).unwrap_or_else(|| panic!("unreadable wrk output:\n{text}"))
}

fn parse_wrk(text: &str) -> Option<Point> {
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix).map(|r| r.trim().to_string()))
    };
    let rps = field("Requests/sec:")?.parse().ok()?;
    // Non-2xx answers and socket errors both count as failures.
    let non2xx = field("Non-2xx or 3xx responses:")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let socket = field("Socket errors:")
        .map(|v| {
            v.split(',')
                .filter_map(|kv| kv.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>()
        })
        .unwrap_or(0);
    Some(Point {
        p50: duration(&field("50%")?)?,
        p99: duration(&field("99%")?)?,
        rps,
        errors: non2xx + socket,
        requests: text
            .lines()
            .find_map(|l| l.trim().split_once(" requests in "))
            .and_then(|(n, _)| n.parse().ok())
            .unwrap_or(0),
    })
}

/// wrk prints `139.00us`, `1.03ms`, `2.00s`.
fn duration(v: &str) -> Option<Duration> {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic())?);
    let n: f64 = num.parse().ok()?;
    let micros = match unit {
        "us" => n,
        "ms" => n * 1e3,
        "s" => n * 1e6,
        "m" => n * 60e6,
        _ => return None,
    };
    Some(Duration::from_nanos((micros * 1e3) as u64))
}

pub async fn run(secs: u64, baseline: Option<&Path>) {
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("--external needs wrk and nginx: apt-get install wrk nginx-light");
        std::process::exit(2);
    }
    let Some((_nginx, port)) = procs::nginx(crate::stub::ANSWER) else {
        eprintln!("--external needs nginx: apt-get install nginx-light");
        std::process::exit(2);
    };
    let base = format!("http://127.0.0.1:{port}/v1");
    let direct = format!("{base}/chat/completions");
    let (_plain, plain_url) = procs::gateway_with(&base, "", "ext-plain").await;
    let (_full, full_url) = procs::gateway_with(&base, FULL_CHAIN, "ext-full").await;
    let (_limited, limited_url) = procs::gateway_with(&base, LIMITED, "ext-limited").await;
    let (_group, group_url) = procs::gateway_with(&base, &group(&base), "ext-group").await;
    // The same limit counted in Valkey/Redis (one script call per request).
    let store = procs::limit_store();
    let shared = match &store {
        Some((_, store_port)) => {
            let pack = format!(
                "limit_store:\n  url: redis://127.0.0.1:{store_port}/0\n  on_unavailable: fail_closed\n{LIMITED}"
            );
            Some(procs::gateway_with(&base, &pack, "ext-shared").await)
        }
        None => {
            eprintln!("no valkey-server or redis-server: the shared-limit row is left out");
            None
        }
    };

    let baseline = match baseline {
        Some(bin) => Some((
            procs::gateway_from(bin, &base, "", "ext-base-plain").await,
            procs::gateway_from(bin, &base, FULL_CHAIN, "ext-base-full").await,
        )),
        None => None,
    };

    let dir = std::env::temp_dir().join(format!("sluice-bench-wrk-{}", std::process::id()));
    let script = post_script(&dir);
    let body = request_body();

    println!(
        "external: nginx upstream, wrk -t1 client, {secs} s per point, {}-byte chat request, {} cores shared by all\n",
        body.len(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut systems = vec![
        ("direct to nginx", direct.as_str()),
        ("sluice, no policies", plain_url.as_str()),
        ("sluice, no policies + per-key limit", limited_url.as_str()),
        ("sluice, no policies, two-target group", group_url.as_str()),
    ];
    if let Some((_, url)) = &shared {
        systems.push((
            "sluice, no policies + per-key limit in Valkey/Redis",
            url.as_str(),
        ));
    }
    systems.push(("sluice, full chain + audit", full_url.as_str()));
    if let Some(((_, plain), (_, full))) = &baseline {
        systems.push(("baseline build, no policies", plain.as_str()));
        systems.push(("baseline build, full chain + audit", full.as_str()));
    }
    systems.push(("direct to nginx (after)", direct.as_str()));
    let mut rows = Vec::new();
    let mut failed = false;
    for (name, url) in systems {
        // A short warm-up fills connection pools and caches.
        wrk(&script, url, 8, 1);
        let c1 = wrk(&script, url, 1, secs);
        let c64 = wrk(&script, url, 64, secs);
        failed |= c1.errors + c64.errors > 0;
        rows.push((name, c1, c64));
    }
    let _ = std::fs::remove_dir_all(&dir);

    let before = rows[0].1;
    let direct_rps = (rows[0].2.rps + rows[rows.len() - 1].2.rps) / 2.0;
    let plain_rps = rows[1].2.rps;
    println!(
        "| path | c=1 p50 / p99 | added p50 / p99 | c=64 req/s | vs direct | vs no policies |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, c1, c64) in &rows {
        let added = |a: Duration, b: Duration| us(a) - us(b);
        println!(
            "| {name} | {:.0} µs / {:.0} µs | {:+.0} µs / {:+.0} µs | {:.0} | {:.2} | {:.2} |",
            us(c1.p50),
            us(c1.p99),
            added(c1.p50, before.p50),
            added(c1.p99, before.p99),
            c64.rps,
            c64.rps / direct_rps,
            c64.rps / plain_rps,
        );
    }
    println!(
        "\ntargets (#17): no policies >= 0.40 of direct at c=64 and <= 80 µs added p50; \
full chain >= 20k req/s or >= 0.50 of no policies; full chain added p99 <= 300 µs"
    );
    if failed {
        eprintln!("\nsome requests failed: the figures above are not valid");
        std::process::exit(1);
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Running 1s test @ http://127.0.0.1:1/v1/chat/completions
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.10ms  200.00us   5.00ms   90.00%
    Req/Sec    58.20k     1.00k   60.00k    80.00%
  Latency Distribution
     50%  139.00us
     75%  200.00us
     90%  300.00us
     99%    1.03ms
  58000 requests in 1.00s, 20.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  58000.12
Transfer/sec:     20.00MB
";

    #[test]
    fn reads_wrk_output() {
        let p = parse_wrk(SAMPLE).expect("parsed");
        assert_eq!(p.p50, Duration::from_micros(139));
        assert_eq!(p.p99, Duration::from_micros(1030));
        assert!((p.rps - 58000.12).abs() < 1e-6);
        assert_eq!(p.errors, 7);
        assert_eq!(p.requests, 58000);
    }

    #[test]
    fn the_request_is_about_400_bytes() {
        let n = request_body().len();
        assert!((350..=500).contains(&n), "{n}");
    }
}
