//! Sluice's shared contract.
//!
//! - [`pack`]: the policy-pack schema and its validation — the one code path
//!   behind `sluice-gateway check`, the gateway's loader and the control
//!   plane's API.
//! - [`wire`]: the gRPC messages and services between gateways and the
//!   control plane (`proto/sluice/v1/control.proto`), plus the snapshot
//!   digest both sides compute.

pub mod pack;
pub mod wire;
