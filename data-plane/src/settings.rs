//! What the gateway is started with rather than what a pack says: the
//! command-line settings, its link to the control plane (and the one place
//! that dials it), and the `Secret` wrapper for credentials. Nearly a
//! leaf: it imports only `allow` and `serve::HttpLimits` from the gateway, so any module
//! may use it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tonic::transport::Channel;

/// Gateway-wide settings that come from the command line, not the pack.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Base of the Hugging Face Inference Providers router, which serves
    /// targets without a `base_url`. Overridable so that mirrors, proxies
    /// and tests can stand in for it.
    pub hf_router_url: String,
    /// Set: serverless targets use the retired serverless Inference API's
    /// URL layout (`{url}/models/{model}/…`) at this base instead of the
    /// router's (a mirror or proxy that still speaks it).
    pub hf_inference_url: Option<String>,
    /// Set in control-plane mode: where `audit-logger` `destination: api`
    /// ships records.
    pub control_plane: Option<ControlPlaneLink>,
    /// TLS towards inference workers (`local:huggingface:` targets).
    pub worker_tls: Option<ClientTls>,
    /// `/metrics` answers only to `Authorization: Bearer <the file's
    /// content>`; re-read at every scrape, so rotating it needs no restart.
    pub metrics_token_file: Option<std::path::PathBuf>,
    /// What packs may ask of this machine (secrets, hosts, audit root).
    pub allow: crate::allow::Allow,
    /// The HTTP listener's connection, request and timeout limits.
    pub http: crate::serve::HttpLimits,
}

/// The token in a token file (trimmed), or why there is none. The error
/// names the file, never its content.
pub fn read_token_file(path: &std::path::Path) -> Result<Secret, String> {
    match std::fs::read_to_string(path) {
        Ok(t) if !t.trim().is_empty() => Ok(Secret(t.trim().to_string())),
        Ok(_) => Err(format!("{} is empty", path.display())),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// A gateway's identity towards its control plane.
#[derive(Debug, Clone)]
pub struct ControlPlaneLink {
    /// gRPC URL, e.g. `http://control-plane:41001` (`https://` with TLS).
    pub url: String,
    pub gateway_id: String,
    pub tls: Option<ClientTls>,
    /// The file holding this gateway's token for the gRPC port.
    pub token_file: Option<std::path::PathBuf>,
}

/// TLS towards the control plane: the CA that signed its certificate and,
/// for mutual TLS, this gateway's certificate.
#[derive(Debug, Clone)]
pub struct ClientTls {
    pub ca: std::path::PathBuf,
    pub identity: Option<Arc<sluice_tls::Reloading>>,
}

/// Hugging Face moved serverless chat from `api-inference.huggingface.co`
/// to its Inference Providers router (docs/configuration.md, "Upstream
/// URLs").
pub const DEFAULT_HF_ROUTER_URL: &str = "https://router.huggingface.co";

/// Where a target without a `base_url` goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serverless<'s> {
    /// The router: OpenAI-compatible chat at `{base}/v1/chat/completions`
    /// with the model in the body; HF Inference pipelines under
    /// `{base}/hf-inference/models/{model}`.
    Router(&'s str),
    /// The retired layout: `{base}/models/{model}`.
    Legacy(&'s str),
}

impl Settings {
    pub fn serverless(&self) -> Serverless<'_> {
        match &self.hf_inference_url {
            Some(legacy) => Serverless::Legacy(legacy.trim_end_matches('/')),
            None => Serverless::Router(self.hf_router_url.trim_end_matches('/')),
        }
    }
}

/// A credential read from the environment. It has no `Display` and its
/// `Debug` never shows the value, so it cannot leak through a log line or
/// an error; `expose` is the one way to read it.
#[derive(Clone)]
pub struct Secret(pub(crate) String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Opens a gRPC channel to the control plane (TLS when configured: the CA
/// is re-read on every connect, so a reconnect picks up a rotated bundle;
/// the client certificate follows its files). Shared by the config stream
/// and the audit shipper.
pub async fn connect(link: &ControlPlaneLink) -> Result<Channel, String> {
    let endpoint = tonic::transport::Endpoint::from_shared(link.url.clone())
        .map_err(|e| format!("invalid --control-plane URL '{}': {e}", link.url))?
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true);
    let Some(tls) = &link.tls else {
        return endpoint
            .connect()
            .await
            .map_err(|e| format!("cannot connect: {e}"));
    };
    let config =
        sluice_tls::client_config(&tls.ca, tls.identity.clone()).map_err(|e| e.to_string())?;
    let host = endpoint
        .uri()
        .host()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_string();
    let name = sluice_tls::ServerName::try_from(host.clone())
        .map_err(|_| format!("'{host}' in --control-plane is not a valid TLS server name"))?;
    let service = sluice_tls::grpc::Connector::new(config, name);
    endpoint
        .connect_with_connector(service)
        .await
        .map_err(|e| format!("cannot connect over TLS: {e}"))
}

/// `message` as a request carrying the gateway's token, read from
/// `--control-plane-token-file` now (so a rotated token is picked up by the
/// next call). The metadata value is marked sensitive and never logged.
pub fn authorized<T>(link: &ControlPlaneLink, message: T) -> Result<tonic::Request<T>, String> {
    let mut request = tonic::Request::new(message);
    let Some(path) = &link.token_file else {
        return Ok(request);
    };
    let token = read_token_file(path).map_err(|e| {
        format!("--control-plane-token-file: {e} (it holds the token from POST /v1/gateways/{{id}}/tokens)")
    })?;
    let mut value = tonic::metadata::MetadataValue::try_from(format!("Bearer {}", token.expose()))
        .map_err(|_| {
            format!(
                "--control-plane-token-file {} holds characters a token cannot have",
                path.display()
            )
        })?;
    value.set_sensitive(true);
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(format!("{:?}", Secret("hf_secret".into())), "Secret(***)");
    }
}
