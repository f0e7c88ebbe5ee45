//! Who is calling the gRPC port. Every config stream and audit batch must
//! come from an authenticated gateway, and a gateway may speak only for the
//! gateway id its credential names:
//!
//! - a **gateway token** (`authorization: Bearer sgw-…` metadata), issued
//!   through the operator API for one gateway id, or for a group of ids
//!   `prefix*` (the pods of a Kubernetes Deployment), stored as SHA-256;
//! - with mutual TLS (`--grpc-client-ca`), the **client certificate**, whose
//!   subjectAltName DNS entries must include the gateway id.
//!
//! Every credential presented must name the id the gateway claims (a token
//! for `gw-a` over a certificate for `gw-b` is refused). A caller with
//! neither gets no snapshot and can write no audit record, unless the
//! operator started the control plane with `--allow-unauthenticated-gateways`
//! (development only; logged loudly at start).
//!
//! Token lookups are cached so that a gateway can reconnect while Postgres
//! is briefly down (the config stream itself works from memory then); a
//! revoked token stops working at the next lookup that reaches Postgres.

use std::collections::HashMap;
use std::sync::Mutex;

use sluice_tls::grpc::PeerCertificates;
use sqlx::PgPool;
use tonic::{Request, Status};

use crate::db::sha256_hex;

pub struct GatewayAuth {
    pool: PgPool,
    allow_unauthenticated: bool,
    /// token SHA-256 → gateway id, for tokens Postgres confirmed.
    known: Mutex<HashMap<String, String>>,
}

/// An authenticated caller of the gRPC port.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The gateway id the caller's token is bound to.
    token_for: Option<String>,
    /// SHA-256 of that token, to check later that it was not revoked.
    token_sha256: Option<String>,
    certificate: PeerCertificates,
}

impl Caller {
    /// Refuses unless every credential the caller presented names
    /// `gateway_id`.
    pub fn may_act_as(&self, gateway_id: &str) -> Result<(), Status> {
        if let Some(bound) = &self.token_for
            && !token_covers(bound, gateway_id)
        {
            return Err(Status::permission_denied(format!(
                "this gateway token belongs to gateway '{bound}', not '{gateway_id}'"
            )));
        }
        if self.certificate.0.is_some() && !self.certificate.names(gateway_id) {
            return Err(Status::permission_denied(format!(
                "the client certificate does not name gateway '{gateway_id}': issue it with a \
                 subjectAltName DNS entry equal to the gateway id"
            )));
        }
        Ok(())
    }
}

/// Whether a token issued for `bound` may act as `gateway_id`: the same id,
/// or, for a group token `prefix*` (one Secret for the pods of a Deployment,
/// whose names are random), any id that starts with `prefix`.
fn token_covers(bound: &str, gateway_id: &str) -> bool {
    match bound.strip_suffix('*') {
        Some(prefix) => gateway_id.starts_with(prefix) && gateway_id.len() > prefix.len(),
        None => bound == gateway_id,
    }
}

impl GatewayAuth {
    pub fn new(pool: PgPool, allow_unauthenticated: bool) -> GatewayAuth {
        GatewayAuth {
            pool,
            allow_unauthenticated,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// The caller of `request`, or UNAUTHENTICATED.
    pub async fn authenticate<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let certificate = request
            .extensions()
            .get::<PeerCertificates>()
            .cloned()
            .unwrap_or_default();
        let token =
            match request.metadata().get("authorization") {
                None => None,
                Some(v) => Some(v.to_str().ok().and_then(crate::auth::bearer).ok_or_else(
                    || {
                        Status::unauthenticated(
                            "malformed authorization metadata: send 'Bearer <gateway token>'",
                        )
                    },
                )?),
            };
        let token_sha256 = token.map(sha256_hex);
        let token_for = match &token_sha256 {
            Some(hash) => Some(self.lookup(hash).await?),
            None => None,
        };
        let anonymous = token_for.is_none() && certificate.0.is_none();
        if anonymous && !self.allow_unauthenticated {
            return Err(Status::unauthenticated(
                "this control plane requires gateways to authenticate: give the gateway \
                 --control-plane-token-file with a token from POST /v1/gateways/{id}/tokens, \
                 or a client certificate naming its gateway id (mutual TLS)",
            ));
        }
        Ok(Caller {
            token_for,
            token_sha256,
            certificate,
        })
    }

    /// False once Postgres says the caller's token was revoked (a config
    /// stream checks this on its heartbeat and ends); true while Postgres
    /// cannot be asked, and for callers without a token.
    pub async fn still_valid(&self, caller: &Caller) -> bool {
        let Some(hash) = &caller.token_sha256 else {
            return true;
        };
        !matches!(self.lookup(hash).await, Err(s) if s.code() == tonic::Code::Unauthenticated)
    }

    async fn lookup(&self, hash: &str) -> Result<String, Status> {
        let hash = hash.to_string();
        let found: Result<Option<String>, sqlx::Error> = sqlx::query_scalar(
            "SELECT gateway_id FROM gateway_tokens WHERE token_sha256 = $1 AND revoked_at IS NULL",
        )
        .bind(&hash)
        .fetch_optional(&self.pool)
        .await;
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        match found {
            Ok(Some(id)) => {
                known.insert(hash, id.clone());
                Ok(id)
            }
            Ok(None) => {
                known.remove(&hash);
                Err(Status::unauthenticated(
                    "invalid gateway token (unknown or revoked): issue a new one with \
                     POST /v1/gateways/{id}/tokens",
                ))
            }
            Err(e) => match known.get(&hash) {
                Some(id) => {
                    tracing::warn!(gateway_id = %id, error = %e, "database unreachable; accepting a gateway token it confirmed earlier");
                    Ok(id.clone())
                }
                None => {
                    tracing::warn!(error = %e, "cannot check a gateway token: database unreachable");
                    Err(Status::unavailable(
                        "the control plane cannot check gateway tokens right now; retry",
                    ))
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::token_covers;

    #[test]
    fn a_token_covers_its_id_or_its_prefix_group() {
        assert!(token_covers("gw-a", "gw-a"));
        assert!(!token_covers("gw-a", "gw-ab"));
        assert!(!token_covers("gw-a", "gw-"));
        assert!(token_covers(
            "sluice-gateway-*",
            "sluice-gateway-7d9f-x2k4q"
        ));
        assert!(!token_covers("sluice-gateway-*", "sluice-gateway-"));
        assert!(!token_covers("sluice-gateway-*", "other-gateway-1"));
        assert!(!token_covers("prod-*", "staging-prod-1"));
    }
}
