//! `--instructions`: CPU instructions the gateway executes per request,
//! counted by valgrind's callgrind. Timings on a shared 2-core VM move by
//! ±15% from run to run; instruction counts repeat to a fraction of a
//! percent for the same binary and load, so this mode is the regression
//! guard for the request path's own work (with `--baseline-gateway`, two
//! builds side by side).
//!
//! What it does not see: time in the kernel (the loopback TCP path, thread
//! wake-ups), which is about 40% of the gateway's CPU under load, and
//! instructions valgrind emulates differently (SHA-256 runs its portable
//! code under valgrind, not the CPU's SHA extensions, so the audit chain's
//! hashing weighs more here than it does natively).
//!
//! Per row: the gateway starts under callgrind (nginx upstream as in
//! `--external`), wrk warms it up, the counters are zeroed, wrk sends
//! `secs` seconds of requests at c=4, the counters are dumped, and the
//! total is divided by the requests wrk completed.

use std::path::Path;
use std::process::Command;

use crate::external::{FULL_CHAIN, post_script, wrk};
use crate::procs;

fn have(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok()
}

/// Instructions the gateway ran per request, or why not.
async fn measure(
    binary: &Path,
    base: &str,
    policies: &str,
    tag: &str,
    script: &Path,
    secs: u64,
) -> Result<f64, String> {
    let launcher = vec![
        "valgrind".to_string(),
        "--tool=callgrind".into(),
        "--callgrind-out-file=callgrind.out.%p".into(),
    ];
    let (child, url, (dir, pid)) =
        procs::gateway_launched(&launcher, binary, base, policies, tag).await;
    let control = |what: &str| {
        Command::new("callgrind_control")
            .arg(what)
            .arg(pid.to_string())
            .output()
            .map_err(|e| format!("callgrind_control: {e}"))
            .and_then(|o| {
                o.status.success().then_some(()).ok_or_else(|| {
                    format!(
                        "callgrind_control {what}: {}",
                        String::from_utf8_lossy(&o.stderr)
                    )
                })
            })
    };
    wrk(script, &url, 4, 2);
    control("-z")?;
    let point = wrk(script, &url, 4, secs);
    control("-d")?;
    if point.errors > 0 || point.requests == 0 {
        return Err(format!(
            "{} of {} requests failed",
            point.errors, point.requests
        ));
    }
    // The dump is `callgrind.out.<pid>.1`, written in the gateway's
    // working directory (its scratch directory).
    let file = dir.join(format!("callgrind.out.{pid}.1"));
    let mut text = String::new();
    for _ in 0..100 {
        if let Ok(t) = std::fs::read_to_string(&file)
            && t.lines().any(|l| l.starts_with("summary:"))
        {
            text = t;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // For profiling: `SLUICE_BENCH_CALLGRIND_DIR=dir` keeps each row's dump
    // (`callgrind_annotate dir/<tag>.callgrind` shows where it went).
    if let Some(keep) = std::env::var_os("SLUICE_BENCH_CALLGRIND_DIR") {
        let keep = Path::new(&keep);
        let _ = std::fs::create_dir_all(keep);
        let _ = std::fs::write(keep.join(format!("{tag}.callgrind")), &text);
    }
    drop(child);
    let total: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("summary:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| format!("no summary in {}", file.display()))?;
    Ok(total / point.requests as f64)
}

pub async fn run(secs: u64, baseline: Option<&Path>) {
    if !have("valgrind") || !have("wrk") {
        eprintln!(
            "--instructions needs valgrind and wrk: apt-get install valgrind wrk nginx-light"
        );
        std::process::exit(2);
    }
    let Some((_nginx, port)) = procs::nginx(crate::stub::ANSWER) else {
        eprintln!("--instructions needs nginx: apt-get install nginx-light");
        std::process::exit(2);
    };
    let base = format!("http://127.0.0.1:{port}/v1");
    let dir = std::env::temp_dir().join(format!("sluice-bench-cg-{}", std::process::id()));
    let script = post_script(&dir);
    let current = procs::gateway_binary();
    let mut rows: Vec<(String, &Path, &str)> = vec![
        ("no policies".into(), current.as_path(), ""),
        ("full chain + audit".into(), current.as_path(), FULL_CHAIN),
    ];
    if let Some(b) = baseline {
        rows.push(("baseline build, no policies".into(), b, ""));
        rows.push(("baseline build, full chain + audit".into(), b, FULL_CHAIN));
    }
    println!(
        "instructions per request (callgrind; nginx upstream; wrk c=4, {secs} s after a warm-up)\n"
    );
    let mut measured = Vec::new();
    let mut failed = false;
    for (i, (name, binary, policies)) in rows.iter().enumerate() {
        match measure(binary, &base, policies, &format!("cg{i}"), &script, secs).await {
            Ok(n) => measured.push((name.clone(), n)),
            Err(e) => {
                eprintln!("{name}: {e}");
                failed = true;
                break;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    if failed {
        // nginx is stopped here, not left behind by exit().
        drop(_nginx);
        std::process::exit(1);
    }
    println!("| path | instructions / request | vs no policies | vs baseline |");
    println!("|---|---|---|---|");
    let plain = measured[0].1;
    for (i, (name, n)) in measured.iter().enumerate() {
        // Rows 0-1 are this build, 2-3 the baseline's same rows.
        let vs_base = measured
            .get(i + 2)
            .filter(|_| i < 2)
            .map_or("".to_string(), |(_, b)| format!("{:.3}", n / b));
        println!("| {name} | {:.0} | {:.2} | {vs_base} |", n, n / plain);
    }
}
