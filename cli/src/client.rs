//! The operator API over HTTP: one call shape, and the control plane's
//! OpenAI-shaped errors turned into [`CliError`]s by status.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::credentials::Credentials;
use crate::error::{CliError, PackError};

pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

pub enum Body<'a> {
    Json(Value),
    Yaml(&'a str),
}

impl Client {
    pub fn new(creds: &Credentials) -> Client {
        Client {
            base: creds.control_plane.trim_end_matches('/').to_string(),
            token: creds.token.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("an HTTP client"),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub async fn get(&self, path: &str) -> Result<Value, CliError> {
        self.call(Method::GET, path, None).await.map(|(_, v)| v)
    }

    pub async fn post(&self, path: &str, body: Value) -> Result<Value, CliError> {
        self.call(Method::POST, path, Some(Body::Json(body)))
            .await
            .map(|(_, v)| v)
    }

    pub async fn patch(&self, path: &str, body: Value) -> Result<Value, CliError> {
        self.call(Method::PATCH, path, Some(Body::Json(body)))
            .await
            .map(|(_, v)| v)
    }

    /// The answer's status with its body (for callers that tell 200 from
    /// 201), or the error the status means.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Body<'_>>,
    ) -> Result<(StatusCode, Value), CliError> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url).bearer_auth(&self.token);
        req = match body {
            Some(Body::Json(v)) => req.json(&v),
            Some(Body::Yaml(y)) => req
                .header("content-type", "application/yaml")
                .body(y.to_string()),
            None => req,
        };
        let resp = req.send().await.map_err(|e| CliError::Unreachable {
            url: self.base.clone(),
            // reqwest's message repeats the URL; the cause is what helps.
            reason: root_cause(&e),
        })?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| CliError::Unreachable {
            url: self.base.clone(),
            reason: root_cause(&e),
        })?;
        let value: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|_| {
                CliError::Server(format!(
                    "{url} answered HTTP {} with a body that is not JSON: is this a Sluice control plane?",
                    status.as_u16()
                ))
            })?
        };
        if status.is_success() {
            return Ok((status, value));
        }
        Err(status_error(status, &value))
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

fn status_error(status: StatusCode, body: &Value) -> CliError {
    let message = body
        .pointer("/error/message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("the control plane answered HTTP {}", status.as_u16()));
    match status.as_u16() {
        401 => CliError::NotAuthenticated(format!(
            "{message} (run `sluice login` with a valid operator token)"
        )),
        403 => CliError::Forbidden(message),
        404 => CliError::NotFound(message),
        422 => CliError::InvalidPack {
            file: String::new(),
            errors: body
                .pointer("/error/errors")
                .and_then(Value::as_array)
                .map(|errors| errors.iter().map(pack_error).collect())
                .unwrap_or_default(),
        },
        400 | 409 => CliError::Refused(message),
        _ => CliError::Server(message),
    }
}

fn pack_error(e: &Value) -> PackError {
    PackError {
        path: e["path"].as_str().unwrap_or("(document)").to_string(),
        line: e["line"].as_u64().unwrap_or(0),
        column: e["column"].as_u64().unwrap_or(0),
        message: e["message"].as_str().unwrap_or("").to_string(),
    }
}

/// A path segment or query value, percent-encoded (pack names and key ids
/// are plain, but a user may type anything).
pub fn segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A query string from pairs, skipping absent values.
pub fn query(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", segment(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}
