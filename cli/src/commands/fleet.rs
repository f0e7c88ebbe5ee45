//! `sluice fleet …`: what each gateway runs, and waiting for a rollout.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::FleetCommand;
use crate::client::Client;
use crate::error::CliError;
use crate::output::{self, Format, Table, cell, rows};

pub async fn run(c: &Client, cmd: FleetCommand, format: Format) -> Result<ExitCode, CliError> {
    match cmd {
        FleetCommand::Status => {
            let v = c.get("/v1/gateways").await?;
            output::print(format, &v, status_table);
            Ok(ExitCode::SUCCESS)
        }
        FleetCommand::Watch { selector, timeout } => watch(c, &selector, timeout, format).await,
    }
}

fn status_table(v: &Value) -> Table {
    let mut t = Table::new(&[
        "GATEWAY",
        "LABELS",
        "RUNNING",
        "RESULT",
        "CONNECTED",
        "LAST SEEN",
        "NACK REASON",
    ]);
    for g in rows(v) {
        t.row(vec![
            cell(&g["id"]),
            labels(&g["labels"]),
            cell(&g["applied_version"]),
            g["last_result"]
                .as_str()
                .map(str::to_uppercase)
                .unwrap_or_else(|| "-".into()),
            if g["connected"] == true { "yes" } else { "no" }.into(),
            cell(&g["last_seen"]),
            if g["last_result"] == "nack" {
                cell(&g["last_error"])
            } else {
                "-".into()
            },
        ]);
    }
    t
}

fn labels(v: &Value) -> String {
    match v.as_object() {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join(","),
        _ => "-".into(),
    }
}

/// A selector with its pairs trimmed and sorted, to compare two spellings.
fn normalize(selector: &str) -> String {
    let mut pairs: Vec<&str> = selector
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    pairs.sort_unstable();
    pairs.join(",")
}

/// Whether gateway labels satisfy a `k=v[,k=v]` selector.
fn matches(selector: &str, labels: &Value) -> bool {
    selector
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .all(|pair| match pair.split_once('=') {
            Some((k, v)) => labels.get(k.trim()).and_then(Value::as_str) == Some(v.trim()),
            None => false,
        })
}

/// Polls fleet status until every connected gateway that the deployment's
/// selector matches has ACKed its version; a NACK of that version or the
/// timeout ends it with exit code 8.
async fn watch(
    c: &Client,
    selector: &str,
    timeout: u64,
    format: Format,
) -> Result<ExitCode, CliError> {
    let deployments = c.get("/v1/deployments").await?;
    let Some(d) = rows(&deployments)
        .iter()
        .find(|d| d["selector"].as_str().map(normalize) == Some(normalize(selector)))
    else {
        return Err(CliError::NotFound(format!(
            "no deployment has selector '{selector}' (see `sluice pack activate`)"
        )));
    };
    let want = format!("{}@{}", d["pack"].as_str().unwrap_or(""), d["version"]);
    let deadline = Instant::now() + Duration::from_secs(timeout);
    loop {
        let fleet = c.get("/v1/gateways").await?;
        let members: Vec<&Value> = rows(&fleet)
            .iter()
            .filter(|g| g["connected"] == true && matches(selector, &g["labels"]))
            .collect();
        let nacked: Vec<String> = members
            .iter()
            .filter(|g| g["offered_version"] == want.as_str() && g["last_result"] == "nack")
            .map(|g| format!("{}: {}", cell(&g["id"]), cell(&g["last_error"])))
            .collect();
        let pending: Vec<String> = members
            .iter()
            .filter(|g| !(g["applied_version"] == want.as_str() && g["last_result"] == "ack"))
            .map(|g| cell(&g["id"]))
            .collect();
        let done = !members.is_empty() && pending.is_empty();
        if done || !nacked.is_empty() || Instant::now() >= deadline {
            let report = json!({
                "version": want,
                "selector": selector,
                "gateways": members.iter().map(|g| &g["id"]).collect::<Vec<_>>(),
                "acked": done,
                "pending": pending,
                "nacked": nacked,
            });
            if format == Format::Json {
                println!("{report:#}");
            }
            if !nacked.is_empty() {
                return Err(CliError::NotApplied(format!(
                    "{want} was refused by {}",
                    nacked.join("; ")
                )));
            }
            if done {
                if format == Format::Table {
                    println!("{want}: ACKed by all {} matching gateway(s)", members.len());
                }
                return Ok(ExitCode::SUCCESS);
            }
            return Err(CliError::NotApplied(if members.is_empty() {
                format!("no connected gateway matches '{selector}' after {timeout} s")
            } else {
                format!(
                    "{want} not ACKed after {timeout} s by: {}",
                    pending.join(", ")
                )
            }));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn selectors_match_every_pair() {
        let labels = json!({"env": "prod", "region": "eu"});
        assert!(super::matches("", &labels));
        assert!(super::matches("env=prod", &labels));
        assert!(super::matches("env=prod, region=eu", &labels));
        assert!(!super::matches("env=prod,region=us", &labels));
        assert!(!super::matches("tier", &labels));
        assert_eq!(
            super::normalize(" region=eu,env=prod"),
            "env=prod,region=eu"
        );
    }
}
