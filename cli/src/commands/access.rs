//! `sluice keys …` and `sluice operators …`: who may call gateways, and
//! who may operate the control plane.

use std::process::ExitCode;

use serde_json::{Value, json};

use super::print_secret;
use crate::client::{Client, segment};
use crate::error::CliError;
use crate::output::{self, Format, Table, cell, rows};
use crate::{KeysCommand, OperatorsCommand};

pub async fn keys(c: &Client, cmd: KeysCommand, format: Format) -> Result<ExitCode, CliError> {
    match cmd {
        KeysCommand::Create {
            owner,
            role,
            id,
            expires_at,
        } => {
            let mut body = json!({"owner": owner, "role": role});
            if let Some(id) = id {
                body["id"] = Value::String(id);
            }
            if let Some(t) = expires_at {
                body["expires_at"] = Value::String(t);
            }
            let v = c.post("/v1/keys", body).await?;
            print_secret(
                format,
                &v,
                "key",
                &format!("client key '{}' for {}", cell(&v["id"]), cell(&v["owner"])),
            );
        }
        KeysCommand::List => {
            let v = c.get("/v1/keys").await?;
            output::print(format, &v, |v| {
                let mut t = Table::new(&["ID", "OWNER", "ROLE", "PREFIX", "EXPIRES", "ENABLED"]);
                for k in rows(v) {
                    t.row(vec![
                        cell(&k["id"]),
                        cell(&k["owner"]),
                        cell(&k["role"]),
                        cell(&k["key_prefix"]),
                        cell(&k["expires_at"]),
                        cell(&k["enabled"]),
                    ]);
                }
                t
            });
        }
        KeysCommand::Revoke { id } => {
            let v = c
                .patch(
                    &format!("/v1/keys/{}", segment(&id)),
                    json!({"enabled": false}),
                )
                .await?;
            match format {
                Format::Json => output::print(format, &v, |_| Table::new(&[])),
                Format::Table => println!(
                    "Revoked client key '{id}': gateways refuse it once they have the change"
                ),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn operators(
    c: &Client,
    cmd: OperatorsCommand,
    format: Format,
) -> Result<ExitCode, CliError> {
    match cmd {
        OperatorsCommand::Create { name, role } => {
            let v = c
                .post("/v1/operators", json!({"name": name, "role": role}))
                .await?;
            print_secret(
                format,
                &v,
                "token",
                &format!("operator token for '{name}' ({role})"),
            );
        }
        OperatorsCommand::List => {
            let v = c.get("/v1/operators").await?;
            output::print(format, &v, |v| {
                let mut t = Table::new(&["NAME", "ROLE", "ENABLED", "CREATED", "BY"]);
                for o in rows(v) {
                    t.row(vec![
                        cell(&o["name"]),
                        cell(&o["role"]),
                        cell(&o["enabled"]),
                        cell(&o["created_at"]),
                        cell(&o["created_by"]),
                    ]);
                }
                t
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}
