//! Config-push latency of the control plane: the time from an operator-API
//! write until every gateway of a fleet has ACKed the new snapshot.
//!
//! It creates a database of its own on the local Postgres, starts the real
//! `sluice-control-plane` on it (built beside this binary if missing), opens
//! N simulated gateway streams (one gRPC channel each; they ACK every
//! snapshot without compiling it), then W times adds a pack version and
//! activates it for every gateway, timing until the last gateway's ACK. The
//! two API calls alone are timed in the same run as the baseline. The
//! control plane runs with `--poll-ms 60000`, so within a run only
//! LISTEN/NOTIFY can deliver a change: this measures the fast path. At the
//! end fleet status must show every gateway on the last version; the
//! control plane is stopped and the database dropped.
//!
//! Run: `cargo run --release -p sluice-bench --bin push-latency`
//! (options: `-- --gateways 100 --writes 50 --warmup 2 --pause-ms 50
//! --timeout-secs 10 --database-url postgres://postgres@127.0.0.1:5432/test`).
//! Target: p99 ≤ 200 ms for 100 gateways. Exits non-zero on any failure
//! (a round past its timeout, a NACK, a stream error, wrong fleet status).

mod control_plane;
mod gateways;

use std::collections::HashSet;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use clap::Parser;
use sluice_proto::wire::snapshot_sha256;
use tokio::sync::mpsc;

use control_plane::{Api, ControlPlane, Database};
use gateways::Event;

#[derive(Parser)]
struct Args {
    /// Simulated gateways, each on a gRPC channel of its own.
    #[arg(long, default_value_t = 100)]
    gateways: usize,
    /// Measured writes (add a version, activate it).
    #[arg(long, default_value_t = 50)]
    writes: usize,
    /// Unmeasured writes first, so pools and caches are warm.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Pause before each write, in milliseconds.
    #[arg(long, default_value_t = 50)]
    pause_ms: u64,
    /// How long one write may take to reach every gateway before the run fails.
    #[arg(long, default_value_t = 10)]
    timeout_secs: u64,
    /// Postgres server (trust auth) on which the benchmark database is created.
    #[arg(
        long,
        env = "SLUICE_TEST_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    database_url: String,
}

const PACK: &str = "bench";
/// Longer than any run, so the backstop poll never delivers a change.
const POLL_MS: u64 = 60_000;
const TARGET_P99: Duration = Duration::from_millis(200);

/// A minimal valid pack; `revision` changes its text, hence its digest.
fn pack_body(revision: usize) -> String {
    format!(
        "pack:\n  name: {PACK}\n  version: \"r{revision}\"\nproviders:\n  targets:\n    - id: t\n      provider: openai:org/m\n      base_url: http://127.0.0.1:9/v1\n"
    )
}

/// The snapshot a write must reach every gateway as.
struct Expected {
    version: String,
    sha256: String,
}

impl Expected {
    /// The fresh database has no client keys, so the snapshot digest covers
    /// the pack text alone.
    fn new(version: i64, body: &str) -> Expected {
        Expected {
            version: format!("{PACK}@{version}"),
            sha256: snapshot_sha256(body, &[], false),
        }
    }
}

#[derive(Default)]
struct Samples {
    push: Vec<Duration>,
    write: Vec<Duration>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if args.gateways == 0 || args.writes == 0 {
        eprintln!("push-latency: --gateways and --writes must be at least 1");
        return ExitCode::FAILURE;
    }
    let result = async {
        let binary = control_plane::binary()?;
        let db = Database::create(&args.database_url).await?;
        let result = bench(&args, &binary, &db).await;
        if let Err(e) = db.drop_database().await {
            eprintln!("push-latency: warning: cannot drop the benchmark database: {e}");
        }
        result
    }
    .await;
    match result {
        Ok(mut samples) => {
            report(&args, &mut samples);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("push-latency: FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the benchmark on a control plane of its own, stopped on return.
async fn bench(args: &Args, binary: &Path, db: &Database) -> anyhow::Result<Samples> {
    let mut cp = ControlPlane::start(binary, db, POLL_MS).await?;
    let result = measure(args, &cp).await;
    if result.is_err() {
        eprintln!("control plane log kept at {}", cp.keep_log().display());
    }
    result
}

async fn measure(args: &Args, cp: &ControlPlane) -> anyhow::Result<Samples> {
    let api = &cp.api;
    let n = args.gateways;
    let body = pack_body(0);
    let version = api.add_version(PACK, &body, true).await?;
    api.activate(PACK, version).await?;

    let (tx, mut events) = mpsc::unbounded_channel();
    let started = Instant::now();
    // Dropping the set at return ends every stream before the control plane stops.
    let _fleet = gateways::start(&cp.grpc_url, n, tx);
    let deadline = started + Duration::from_secs(args.timeout_secs.max(30));
    wait_all_acked(&mut events, n, &Expected::new(version, &body), deadline)
        .await
        .context("initial snapshot")?;
    println!(
        "{n} simulated gateways connected and ACKed {PACK}@{version} in {:.0} ms",
        ms(started.elapsed())
    );

    let mut samples = Samples::default();
    let mut last = Expected::new(version, &body);
    let timeout = Duration::from_secs(args.timeout_secs);
    for round in 1..=args.warmup + args.writes {
        tokio::time::sleep(Duration::from_millis(args.pause_ms)).await;
        let body = pack_body(round);
        let start = Instant::now();
        let version = api.add_version(PACK, &body, false).await?;
        api.activate(PACK, version).await?;
        let write = start.elapsed();
        last = Expected::new(version, &body);
        // ACKs that beat the API answer wait in the channel, timestamped.
        let last_ack = wait_all_acked(&mut events, n, &last, start + timeout)
            .await
            .with_context(|| format!("write {round}"))?;
        if round > args.warmup {
            samples.push.push(last_ack.saturating_duration_since(start));
            samples.write.push(write);
        }
    }
    check_fleet_status(api, n, &last).await?;
    println!(
        "fleet status: all {n} gateways show applied_version {}, last_result ack",
        last.version
    );
    Ok(samples)
}

/// Waits until `n` distinct gateways have ACKed `want`; returns when the
/// last of those ACKs was sent.
async fn wait_all_acked(
    events: &mut mpsc::UnboundedReceiver<Event>,
    n: usize,
    want: &Expected,
    deadline: Instant,
) -> anyhow::Result<Instant> {
    let mut acked = HashSet::new();
    let mut last = None;
    while acked.len() < n {
        let event = tokio::time::timeout_at(deadline.into(), events.recv())
            .await
            .map_err(|_| {
                anyhow!(
                    "only {} of {n} gateways ACKed {} before the timeout",
                    acked.len(),
                    want.version
                )
            })?
            .context("every simulated gateway stopped")?;
        match event {
            Event::Failed { gateway, error } => {
                bail!(
                    "simulated gateway {}: {error}",
                    gateways::gateway_id(gateway)
                )
            }
            Event::Acked {
                gateway,
                version,
                sha256,
                at,
            } if version == want.version => {
                if sha256 != want.sha256 {
                    bail!(
                        "{} reached {} with sha256 {sha256}, expected {}",
                        want.version,
                        gateways::gateway_id(gateway),
                        want.sha256
                    );
                }
                acked.insert(gateway);
                last = last.max(Some(at));
            }
            // A gateway ACKs each snapshot once, and each round waits for
            // all of them, so an older version here is a late duplicate.
            Event::Acked { .. } => {}
        }
    }
    last.context("no gateway")
}

/// The control plane must have recorded every ACK in fleet status (it
/// writes them asynchronously, hence the short poll).
async fn check_fleet_status(api: &Api, n: usize, want: &Expected) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let fleet = api.gateways().await?;
        let current = fleet
            .iter()
            .filter(|g| {
                g["applied_version"] == want.version.as_str()
                    && g["applied_sha256"] == want.sha256.as_str()
                    && g["last_result"] == "ack"
            })
            .count();
        if current == n && fleet.len() == n {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "fleet status lists {} gateways, {current} of them on {} with last_result ack; expected {n}",
                fleet.len(),
                want.version
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn report(args: &Args, s: &mut Samples) {
    let n = args.gateways;
    let (push50, push99, push_max) = (
        percentile(&mut s.push, 0.50),
        percentile(&mut s.push, 0.99),
        percentile(&mut s.push, 1.0),
    );
    let (write50, write99, write_max) = (
        percentile(&mut s.write, 0.50),
        percentile(&mut s.write, 0.99),
        percentile(&mut s.write, 1.0),
    );
    println!(
        "\nconfig push: {n} simulated gateways (one gRPC channel each), {} writes (+{} warm-up), {} ms apart",
        args.writes, args.warmup, args.pause_ms
    );
    println!(
        "changes delivered by LISTEN/NOTIFY only (--poll-ms {POLL_MS}): the fast path, not the backstop poll"
    );
    println!(
        "machine: {} cores shared by the control plane, the simulated gateways and (when local) Postgres\n",
        std::thread::available_parallelism().map_or(0, |c| c.get())
    );
    println!("  {:<26} {:>10} {:>10} {:>10}", "", "p50", "p99", "max");
    let row = |name: &str, a: Duration, b: Duration, c: Duration| {
        println!(
            "  {name:<26} {:>7.2} ms {:>7.2} ms {:>7.2} ms",
            ms(a),
            ms(b),
            ms(c)
        )
    };
    row(&format!("write → all {n} ACKed"), push50, push99, push_max);
    row("API write alone", write50, write99, write_max);
    println!(
        "  {:<26} {:>9.2}x {:>9.2}x",
        "push ÷ API write",
        push50.as_secs_f64() / write50.as_secs_f64(),
        push99.as_secs_f64() / write99.as_secs_f64()
    );
    println!(
        "  (API write = POST /v1/packs/{PACK}/versions + POST /v1/packs/{PACK}/activate, awaited in turn)"
    );
    println!(
        "\ntarget p99 ≤ {} ms: {} (p99 {:.2} ms)",
        TARGET_P99.as_millis(),
        if push99 <= TARGET_P99 {
            "met"
        } else {
            "NOT MET"
        },
        ms(push99)
    );
}

/// Same definition as the gateway benchmark's (`src/load.rs`).
fn percentile(v: &mut [Duration], q: f64) -> Duration {
    v.sort_unstable();
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
