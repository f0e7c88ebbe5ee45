//! `sluice audit …`: the records gateways shipped, and the hash chains
//! that make them tamper-evident.

use std::process::ExitCode;

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::AuditCommand;
use crate::client::{Client, query};
use crate::error::CliError;
use crate::output::{self, Format, Table, cell, rows};

#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// From this time: RFC 3339, or an age such as `30m`, `2h`, `7d`.
    #[arg(long, value_name = "TIME|AGE")]
    pub since: Option<String>,
    /// Before this time (RFC 3339 or an age).
    #[arg(long, value_name = "TIME|AGE")]
    pub until: Option<String>,
    /// Only this client key id.
    #[arg(long)]
    pub key: Option<String>,
    #[arg(long)]
    pub role: Option<String>,
    /// The strongest decision on the request.
    #[arg(long, value_parser = ["blocked", "redacted", "monitored", "passed"])]
    pub decision: Option<String>,
    #[arg(long)]
    pub gateway: Option<String>,
    /// At most this many records (1 to 1000).
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
}

pub async fn run(c: &Client, cmd: AuditCommand, format: Format) -> Result<ExitCode, CliError> {
    match cmd {
        AuditCommand::Query(q) => {
            let now = OffsetDateTime::now_utc();
            let outcome = q.decision.as_deref().map(|d| {
                match d {
                    "blocked" => "block",
                    "redacted" => "redact",
                    "monitored" => "monitor",
                    _ => "pass",
                }
                .to_string()
            });
            let path = format!(
                "/v1/audit{}",
                query(&[
                    (
                        "from",
                        q.since.as_deref().map(|s| when(s, now)).transpose()?
                    ),
                    ("to", q.until.as_deref().map(|s| when(s, now)).transpose()?),
                    ("key_id", q.key),
                    ("role", q.role),
                    ("outcome", outcome),
                    ("gateway", q.gateway),
                    ("limit", Some(q.limit.to_string())),
                ])
            );
            let v = c.get(&path).await?;
            output::print(format, &v, records_table);
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify { gateway } => {
            let v = c
                .get(&format!(
                    "/v1/audit/verify{}",
                    query(&[("gateway", gateway)])
                ))
                .await?;
            let chains = v["chains"].as_array().cloned().unwrap_or_default();
            output::print(format, &v, |_| {
                let mut t = Table::new(&["CHAIN", "RECORDS", "OK", "BROKEN AT", "REASON"]);
                for ch in &chains {
                    t.row(vec![
                        cell(&ch["chain"]),
                        cell(&ch["records"]),
                        if ch["ok"] == true { "yes" } else { "NO" }.into(),
                        cell(&ch["broken_at"]),
                        cell(&ch["reason"]),
                    ]);
                }
                t
            });
            if v["ok"] == true {
                Ok(ExitCode::SUCCESS)
            } else {
                let broken: Vec<String> = chains
                    .iter()
                    .filter(|ch| ch["ok"] != true)
                    .map(|ch| {
                        format!(
                            "{} at record {}",
                            cell(&ch["chain"]),
                            cell(&ch["broken_at"])
                        )
                    })
                    .collect();
                Err(CliError::ChainBroken(format!(
                    "the audit chain is broken: {}",
                    broken.join("; ")
                )))
            }
        }
    }
}

fn records_table(v: &Value) -> Table {
    let mut t = Table::new(&[
        "TIME",
        "GATEWAY",
        "KEY",
        "ROLE",
        "TARGET",
        "MODEL",
        "STATUS",
        "DECISIONS",
        "TOKENS",
        "LATENCY MS",
    ]);
    for row in rows(v) {
        let r = &row["record"];
        let tokens = r["usage"]["total_tokens"].clone();
        t.row(vec![
            cell(&r["time"]),
            cell(&row["gateway"]),
            cell(&r["key_id"]),
            cell(&r["role"]),
            cell(&r["target"]),
            cell(&r["model"]),
            cell(&r["status"]),
            decisions(&r["decisions"]),
            cell(&tokens),
            cell(&r["latency_ms"]),
        ]);
    }
    t
}

/// `policy=outcome` for every decision that did something.
fn decisions(v: &Value) -> String {
    let parts: Vec<String> = v
        .as_array()
        .map(|ds| {
            ds.iter()
                .filter(|d| d["outcome"] != "pass")
                .map(|d| format!("{}={}", cell(&d["policy"]), cell(&d["outcome"])))
                .collect()
        })
        .unwrap_or_default();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(",")
    }
}

/// An RFC 3339 time as given, or `now` minus an age (`90s`, `30m`, `2h`,
/// `7d`).
fn when(s: &str, now: OffsetDateTime) -> Result<String, CliError> {
    if OffsetDateTime::parse(s, &Rfc3339).is_ok() {
        return Ok(s.to_string());
    }
    let bad = || {
        CliError::Local(format!(
            "'{s}' is neither an RFC 3339 time (2026-12-04T09:00:00Z) nor an age such as 30m, 2h or 7d"
        ))
    };
    let (n, unit) = s.split_at(s.len().saturating_sub(1));
    let n: i64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(bad()),
    };
    let t = now - time::Duration::seconds(secs);
    Ok(t.format(&Rfc3339).expect("RFC 3339 formats"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_times_are_both_accepted() {
        let now = OffsetDateTime::parse("2026-12-04T12:00:00Z", &Rfc3339).unwrap();
        assert_eq!(when("2h", now).unwrap(), "2026-12-04T10:00:00Z");
        assert_eq!(when("7d", now).unwrap(), "2026-11-27T12:00:00Z");
        assert_eq!(
            when("2026-12-01T00:00:00Z", now).unwrap(),
            "2026-12-01T00:00:00Z"
        );
        assert!(when("yesterday", now).is_err());
        assert!(when("5w", now).is_err());
    }
}
