//! `sluice-worker`: not built yet. The binary exists so the workspace has its
//! final shape; it refuses to run rather than pretend (issue #6: mistral.rs
//! behind gRPC with the Hugging Face download cache).

fn main() -> std::process::ExitCode {
    eprintln!(
        "sluice-worker: the inference worker is not implemented in this build yet; point an openai:{{model}} target at an OpenAI-compatible server instead"
    );
    std::process::ExitCode::from(2)
}
