//! Gateway benchmark: a fast OpenAI-compatible stub, the real
//! `sluice-gateway` in front of it (once with no policies, once with the
//! full chain), and a load generator, all on this machine. Prints the
//! latency the gateway adds at concurrency 1 and its throughput relative to
//! calling the stub directly, measured in the same run.
//!
//! Run: `cargo run --release -p sluice-bench` (add `--litellm` to compare
//! with a LiteLLM proxy on the same stub, if `litellm` is installed).
//! `--external` measures with nginx and `wrk` instead (see `external.rs`);
//! `--instructions` counts the gateway's instructions per request under
//! callgrind, the figure that does not drift with the machine's load.

mod external;
mod instructions;
mod load;
mod procs;
mod stub;

use std::time::Duration;

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Sequential requests per round for the latency figures.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Rounds, alternating direct and gateway, so drift hits both alike.
    #[arg(long, default_value_t = 4)]
    rounds: usize,
    /// Seconds per throughput measurement.
    #[arg(long, default_value_t = 5)]
    duration_secs: u64,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Also measure a LiteLLM proxy (needs `litellm` on PATH or --litellm-bin).
    #[arg(long)]
    litellm: bool,
    #[arg(long, default_value = "litellm")]
    litellm_bin: String,
    /// Measure with external tools instead: nginx as the upstream, wrk as
    /// the client (needs `apt-get install wrk nginx-light`).
    #[arg(long)]
    external: bool,
    /// Seconds per point in --external mode.
    #[arg(long, default_value_t = 8)]
    external_secs: u64,
    /// Count the gateway's CPU instructions per request with callgrind
    /// (needs valgrind, wrk and nginx): repeatable where timings are not.
    #[arg(long)]
    instructions: bool,
    /// --external, --instructions: also measure this `sluice-gateway` binary (e.g. the
    /// previous commit's release build), no policies and full chain, in the
    /// same run, for before/after figures.
    #[arg(long)]
    baseline_gateway: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if args.instructions {
        instructions::run(args.external_secs, args.baseline_gateway.as_deref()).await;
        return;
    }
    if args.external {
        external::run(args.external_secs, args.baseline_gateway.as_deref()).await;
        return;
    }
    let stub_port = stub::start().await;
    let stub_url = format!("http://127.0.0.1:{stub_port}/v1/chat/completions");
    let mut systems: Vec<(String, procs::Child, String)> = Vec::new();
    for (name, chain) in [
        ("sluice (no policies)", false),
        ("sluice (full chain)", true),
    ] {
        let (child, url) = procs::gateway(stub_port, chain).await;
        systems.push((name.to_string(), child, url));
    }
    if args.litellm {
        match procs::litellm(&args.litellm_bin, stub_port).await {
            Some((child, url)) => systems.push(("litellm proxy".into(), child, url)),
            None => println!(
                "litellm: not found or did not start; install it with `pip install 'litellm[proxy]'`"
            ),
        }
    }

    println!(
        "machine: {} cores shared by the stub, the systems under test and the load generator",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!("payload: 1 KB user prompt, non-streamed chat completion\n");

    let mut failed = false;
    let mut direct_lat = Vec::new();
    let mut lats: Vec<Vec<Duration>> = vec![Vec::new(); systems.len()];
    for _ in 0..args.rounds {
        let (d, e) = load::sequential(&stub_url, args.requests).await;
        direct_lat.extend(d);
        failed |= e > 0;
        for (i, (_, _, url)) in systems.iter().enumerate() {
            let (l, e) = load::sequential(url, args.requests).await;
            lats[i].extend(l);
            if e > 0 {
                println!("ERRORS: {e} failed requests against {}", systems[i].0);
                failed = true;
            }
        }
    }
    let (d50, d99) = (
        load::percentile(&mut direct_lat, 0.50),
        load::percentile(&mut direct_lat, 0.99),
    );
    println!(
        "latency at concurrency 1 ({} requests each):",
        args.requests * args.rounds
    );
    println!(
        "  {:<22} p50 {:>8.3} ms   p99 {:>8.3} ms",
        "direct to stub",
        ms(d50),
        ms(d99)
    );
    for (i, (name, _, _)) in systems.iter().enumerate() {
        let (p50, p99) = (
            load::percentile(&mut lats[i], 0.50),
            load::percentile(&mut lats[i], 0.99),
        );
        println!(
            "  {name:<22} p50 {:>8.3} ms   p99 {:>8.3} ms   added: p50 {:.3} ms, p99 {:.3} ms",
            ms(p50),
            ms(p99),
            ms(p50.saturating_sub(d50)),
            ms(p99.saturating_sub(d99))
        );
    }

    let secs = Duration::from_secs(args.duration_secs);
    println!(
        "\nthroughput at concurrency {} ({} s each):",
        args.concurrency, args.duration_secs
    );
    let (direct_rps, e) = load::throughput(&stub_url, args.concurrency, secs).await;
    failed |= e > 0;
    println!("  {:<22} {:>9.0} req/s", "direct to stub", direct_rps);
    for (name, _, url) in &systems {
        let (rps, e) = load::throughput(url, args.concurrency, secs).await;
        if e > 0 {
            println!("ERRORS: {e} failed requests against {name}");
            failed = true;
        }
        println!(
            "  {name:<22} {rps:>9.0} req/s   ({:.2}x direct)",
            rps / direct_rps
        );
    }
    drop(systems);
    if failed {
        eprintln!("\nsome requests failed: the figures above are not valid");
        std::process::exit(1);
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
