//! Sluice's shared contract.
//!
//! - [`pack`]: the policy-pack schema and its validation — the one code path
//!   behind `sluice-gateway check`, the gateway's loader and the control
//!   plane's API.
//! - [`wire`]: the gRPC messages and services between gateways and the
//!   control plane (`proto/sluice/v1/control.proto`), plus the snapshot
//!   digest both sides compute.
//! - [`audit_chain`]: the audit hash chain (canonical JSON, seal, check),
//!   used by the gateway's audit files and the control plane's audit table.
//! - [`labels`]: `k=v,k2=v2` gateway labels and selectors.
//! - [`backoff`]: jittered exponential back-off for every retry loop.

pub mod audit_chain;
pub mod backoff;
pub mod labels;
pub mod pack;
pub mod wire;
