//! Compatibility with the official `openai` Python package (installed into a
//! virtualenv by scripts/test): chat, streaming, embeddings, models, errors.

use sluice_e2e::upstream::Upstream;
use sluice_e2e::{Gateway, GatewayOptions, run_python};

#[tokio::test(flavor = "multi_thread")]
async fn the_official_openai_client_works_against_the_gateway() {
    let up = Upstream::start().await;
    let target = |id: &str, mode: &str, extra: &str| {
        format!(
            "    - id: {id}\n      provider: huggingface:chat:org/{id}\n      base_url: {}\n      secret_key_ref: {{env: HF_API_TOKEN}}\n{extra}",
            up.base(mode)
        )
    };
    let mut targets =
        target("chat", "ok", "").replace(&up.base("ok"), &format!("{}/v1", up.base("ok")));
    targets += &target("broken", "broken", "")
        .replace(&up.base("broken"), &format!("{}/v1", up.base("broken")));
    targets += &target(
        "native",
        "ok",
        "      format: huggingface\n      provider_type: huggingface\n",
    );
    targets += &format!(
        "    - id: fe\n      provider: huggingface\n      model: org/fe\n      base_url: {}/fe\n      secret_key_ref: {{env: HF_API_TOKEN}}\n",
        up.base("ok")
    );
    let gw = Gateway::start_with(
        &format!("pack:\n  name: py\nproviders:\n  targets:\n{targets}"),
        GatewayOptions {
            env: vec![("HF_API_TOKEN", "hf_py".into())],
            ..Default::default()
        },
    );
    let out = run_python("openai_compat.py", gw.url("/v1")).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python client failed:\n{stdout}\n{stderr}\ngateway logs:\n{}",
        gw.logs()
    );
    assert!(
        stdout.contains("python openai compat: 10 passed, 0 failed"),
        "{stdout}"
    );
}
