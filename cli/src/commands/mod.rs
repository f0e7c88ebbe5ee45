//! One function per command; each takes the client and the output format
//! and returns the process's exit code.

mod access;
pub mod audit;
mod fleet;
mod packs;

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use clap::CommandFactory;
use serde_json::{Value, json};

use crate::client::Client;
use crate::credentials::{self, Credentials};
use crate::error::CliError;
use crate::output::{self, Format, Table};
use crate::{Cli, Command, LoginArgs};

pub async fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let format = cli.output;
    let url = cli.control_plane.as_deref();
    let client = || credentials::resolve(url).map(|c| Client::new(&c));
    match cli.command {
        Command::Login(args) => login(url, args, format).await,
        Command::Logout => {
            let removed = credentials::remove()?;
            eprintln!(
                "{}",
                if removed {
                    "Logged out."
                } else {
                    "Not logged in."
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Whoami => {
            let c = client()?;
            let me = c.get("/v1/whoami").await?;
            output::print(format, &me, |v| {
                let mut t = Table::new(&["OPERATOR", "ROLE", "CONTROL PLANE"]);
                t.row(vec![
                    output::cell(&v["name"]),
                    output::cell(&v["role"]),
                    c.base().to_string(),
                ]);
                t
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::Pack(cmd) => packs::run(&client()?, cmd, format).await,
        Command::Fleet(cmd) => fleet::run(&client()?, cmd, format).await,
        Command::Keys(cmd) => access::keys(&client()?, cmd, format).await,
        Command::Operators(cmd) => access::operators(&client()?, cmd, format).await,
        Command::Audit(cmd) => audit::run(&client()?, cmd, format).await,
        Command::Completion { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "sluice", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Reads the token (file, `SLUICE_TOKEN`, or stdin), checks it against the
/// control plane, and saves both only if it is accepted.
async fn login(url: Option<&str>, args: LoginArgs, format: Format) -> Result<ExitCode, CliError> {
    let control_plane = url
        .ok_or_else(|| {
            CliError::Local(
                "which control plane? pass --control-plane URL (or set SLUICE_CONTROL_PLANE)"
                    .into(),
            )
        })?
        .trim_end_matches('/')
        .to_string();
    let token = match (&args.token_file, std::env::var("SLUICE_TOKEN")) {
        (Some(path), _) => std::fs::read_to_string(path)
            .map_err(|e| CliError::Local(format!("{}: {e}", path.display())))?,
        (None, Ok(t)) if !t.is_empty() => t,
        _ => {
            if std::io::stdin().is_terminal() {
                // Typed at a terminal: not echoed, so it is not left on
                // screen or in a terminal recording.
                rpassword::prompt_password(format!("Operator token for {control_plane}: "))
                    .map_err(|e| CliError::Local(format!("reading the token: {e}")))?
            } else {
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .map_err(|e| CliError::Local(format!("reading the token: {e}")))?;
                line
            }
        }
    };
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err(CliError::Local(
            "no token given: use --token-file FILE, SLUICE_TOKEN, or type it on stdin".into(),
        ));
    }
    let creds = Credentials {
        control_plane,
        token,
    };
    let me = Client::new(&creds).get("/v1/whoami").await?;
    let path = credentials::save(&creds)?;
    match format {
        Format::Json => println!(
            "{}",
            json!({"control_plane": creds.control_plane, "name": me["name"], "role": me["role"], "saved_to": path})
        ),
        Format::Table => eprintln!(
            "Logged in to {} as {} ({}); saved to {}",
            creds.control_plane,
            me["name"].as_str().unwrap_or("?"),
            me["role"].as_str().unwrap_or("?"),
            path.display()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a secret shown once (a new key or token) with the warning that
/// goes with it; JSON output carries it as the API answered.
fn print_secret(format: Format, v: &Value, field: &str, what: &str) {
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(v).expect("JSON serialises")
        ),
        Format::Table => {
            println!("{}", v[field].as_str().unwrap_or(""));
            eprintln!("{what} — shown only now; store it in a secret manager.");
        }
    }
}
