//! Compiles `proto/sluice/v1/*.proto` into Rust. `protoc` comes from the
//! `protoc-bin-vendored` crate so a fresh machine needs no extra install.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; prost-build reads PROTOC.
    unsafe { std::env::set_var("PROTOC", protoc) };
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure().compile_protos(
        &[
            "proto/sluice/v1/control.proto",
            "proto/sluice/v1/inference.proto",
        ],
        &["proto"],
    )?;
    Ok(())
}
