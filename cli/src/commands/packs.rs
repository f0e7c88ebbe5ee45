//! `sluice pack …`: versions are immutable and numbered by the control
//! plane; `apply` adds one (or creates the pack), `activate` and
//! `rollback` move a deployment.

use std::io::Read;
use std::process::ExitCode;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::PackCommand;
use crate::client::{Body, Client, segment};
use crate::error::CliError;
use crate::output::{self, Format, Table, cell, rows};

pub async fn run(c: &Client, cmd: PackCommand, format: Format) -> Result<ExitCode, CliError> {
    match cmd {
        PackCommand::Apply { file } => apply(c, &file, format).await,
        PackCommand::List => {
            let v = c.get("/v1/packs").await?;
            output::print(format, &v, |v| {
                let mut t = Table::new(&["NAME", "LATEST", "CREATED", "BY"]);
                for p in rows(v) {
                    t.row(vec![
                        cell(&p["name"]),
                        cell(&p["latest_version"]),
                        cell(&p["created_at"]),
                        cell(&p["created_by"]),
                    ]);
                }
                t
            });
            Ok(ExitCode::SUCCESS)
        }
        PackCommand::Get { name, version } => {
            let path = match version {
                Some(n) => format!("/v1/packs/{}/versions/{n}", segment(&name)),
                None => format!("/v1/packs/{}", segment(&name)),
            };
            let v = c.get(&path).await?;
            match format {
                Format::Json => output::print(format, &v, |_| Table::new(&[])),
                // The body as stored, so `get > pack.yaml` round-trips.
                Format::Table => {
                    let body = v["body"].as_str().unwrap_or("");
                    print!("{body}");
                    if !body.ends_with('\n') {
                        println!();
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        PackCommand::Versions { name } => {
            let v = c
                .get(&format!("/v1/packs/{}/versions", segment(&name)))
                .await?;
            output::print(format, &v, |v| {
                let mut t = Table::new(&["VERSION", "SHA256", "AUTHOR", "CREATED"]);
                for p in rows(v) {
                    t.row(vec![
                        cell(&p["version"]),
                        p["sha256"]
                            .as_str()
                            .unwrap_or("")
                            .chars()
                            .take(12)
                            .collect(),
                        cell(&p["author"]),
                        cell(&p["created_at"]),
                    ]);
                }
                t
            });
            Ok(ExitCode::SUCCESS)
        }
        PackCommand::Diff { name, from, to } => {
            let v = c
                .get(&format!(
                    "/v1/packs/{}/diff?from={from}&to={to}",
                    segment(&name)
                ))
                .await?;
            match format {
                Format::Json => output::print(format, &v, |_| Table::new(&[])),
                Format::Table => print!("{}", v["diff"].as_str().unwrap_or("")),
            }
            Ok(ExitCode::SUCCESS)
        }
        PackCommand::Activate {
            name,
            version,
            selector,
        } => {
            let v = c
                .post(
                    &format!("/v1/packs/{}/activate", segment(&name)),
                    json!({"version": version, "selector": selector}),
                )
                .await?;
            print_deployment(format, &v, "Activated");
            Ok(ExitCode::SUCCESS)
        }
        PackCommand::Rollback { name, selector } => {
            let selector = match selector {
                Some(s) => s,
                None => only_deployment_of(c, &name).await?,
            };
            let v = c
                .post("/v1/deployments/rollback", json!({"selector": selector}))
                .await?;
            print_deployment(format, &v, "Rolled back");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_deployment(format: Format, v: &Value, done: &str) {
    match format {
        Format::Json => output::print(format, v, |_| Table::new(&[])),
        Format::Table => println!(
            "{done}: gateways matching '{}' now run {}@{}",
            v["selector"].as_str().unwrap_or(""),
            v["pack"].as_str().unwrap_or("?"),
            v["version"]
        ),
    }
}

/// The selector of the one deployment that runs pack `name`.
async fn only_deployment_of(c: &Client, name: &str) -> Result<String, CliError> {
    let deployments = c.get("/v1/deployments").await?;
    let mine: Vec<&str> = rows(&deployments)
        .iter()
        .filter(|d| d["pack"] == name)
        .filter_map(|d| d["selector"].as_str())
        .collect();
    match mine.as_slice() {
        [one] => Ok(one.to_string()),
        [] => Err(CliError::NotFound(format!(
            "pack '{name}' is not active for any gateway group; nothing to roll back"
        ))),
        many => Err(CliError::Refused(format!(
            "pack '{name}' is active for several gateway groups ({}); say which with --selector",
            many.iter()
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Adds a version (or creates the pack): the name is read from the file's
/// `pack.name`, as the control plane reads it.
async fn apply(c: &Client, file: &std::path::Path, format: Format) -> Result<ExitCode, CliError> {
    let shown = file.display().to_string();
    let body = if shown == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| CliError::Local(format!("reading stdin: {e}")))?;
        s
    } else {
        std::fs::read_to_string(file)
            .map_err(|e| CliError::Local(format!("{shown}: cannot read: {e}")))?
    };
    let name = pack_name(&body);
    let in_file = |e: CliError| match e {
        CliError::InvalidPack { errors, .. } => CliError::InvalidPack {
            file: shown.clone(),
            errors,
        },
        other => other,
    };
    // An existing pack gets a version; a new one is created. Without a
    // readable name the create call reports the errors by position.
    let answer = match &name {
        Some(n) => {
            c.call(
                Method::POST,
                &format!("/v1/packs/{}/versions", segment(n)),
                Some(Body::Yaml(&body)),
            )
            .await
        }
        None => Err(CliError::NotFound(String::new())),
    };
    let (status, v) = match answer {
        Err(CliError::NotFound(_)) => c
            .call(Method::POST, "/v1/packs", Some(Body::Yaml(&body)))
            .await
            .map_err(in_file)?,
        other => other.map_err(in_file)?,
    };
    match format {
        Format::Json => output::print(format, &v, |_| Table::new(&[])),
        Format::Table => {
            let what = if status == StatusCode::OK {
                "unchanged (same as the latest version)"
            } else {
                "created"
            };
            println!(
                "{shown}: {}@{} {what}, sha256 {}",
                v["pack"].as_str().unwrap_or("?"),
                v["version"],
                v["sha256"]
                    .as_str()
                    .unwrap_or("")
                    .chars()
                    .take(12)
                    .collect::<String>()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `pack.name` of a YAML or JSON document, if it has a readable one.
fn pack_name(body: &str) -> Option<String> {
    let docs = yaml_rust2::YamlLoader::load_from_str(body).ok()?;
    docs.first()?["pack"]["name"].as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_pack_name_is_read_from_yaml_and_json() {
        assert_eq!(
            super::pack_name("pack:\n  name: team\n").as_deref(),
            Some("team")
        );
        assert_eq!(
            super::pack_name(r#"{"pack": {"name": "j"}}"#).as_deref(),
            Some("j")
        );
        assert_eq!(super::pack_name("pack: [").as_deref(), None);
    }
}
