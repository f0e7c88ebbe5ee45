//! `sluice-control-plane`: not built yet. The binary exists so the workspace
//! has its final shape; it refuses to run rather than pretend (issue #4:
//! packs in Postgres, operator API, gRPC config push).

fn main() -> std::process::ExitCode {
    eprintln!(
        "sluice-control-plane: the control plane is not implemented in this build yet; run the gateway standalone with `sluice-gateway run --policy-config FILE`"
    );
    std::process::ExitCode::from(2)
}
