//! Hugging Face as it serves today, through the real `sluice-gateway`:
//! serverless chat through the Inference Providers router (model in the
//! body, `:provider` choice passed on), HF Inference embeddings under the
//! router's `hf-inference` pipeline path, and dedicated endpoints that
//! scale to zero (`X-Scale-Up-Timeout`, a plain 503 waited out within the
//! target's deadline); usage an upstream does not report, counted with the
//! model's tokenizer from the Hub. The retired serverless layout is covered by
//! `gateway.rs`, which starts gateways with `--hf-inference-url`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_e2e::hub::FakeHub;
use sluice_e2e::tempdir::TempDir;
use sluice_e2e::upstream::{COLD_START, Upstream};
use sluice_e2e::{Gateway, GatewayOptions, tiny_model};

const TOKEN: &str = "hf_router_test_token_0123456789";

fn gateway(up: &Upstream, targets: &str) -> Gateway {
    Gateway::start_with(
        &format!("pack:\n  name: hf\nproviders:\n  targets:\n{targets}"),
        GatewayOptions {
            env: vec![("HF_API_TOKEN", TOKEN.to_string())],
            hf_router_url: Some(up.base("router")),
            ..GatewayOptions::default()
        },
    )
}

const SERVERLESS: &str = "    - id: llama\n      provider: huggingface:chat:meta-llama/Llama-3.1-8B-Instruct:fastest\n      secret_key_ref: {env: HF_API_TOKEN}\n    - id: bge\n      provider: huggingface\n      model: BAAI/bge-small-en-v1.5\n      secret_key_ref: {env: HF_API_TOKEN}\n    - id: tgi-serverless\n      provider: huggingface:chat:org/tgi\n      format: huggingface\n      provider_type: huggingface\n      secret_key_ref: {env: HF_API_TOKEN}\n";

#[tokio::test(flavor = "multi_thread")]
async fn serverless_chat_goes_through_the_router_with_the_provider_choice() {
    let up = Upstream::start().await;
    let gw = gateway(&up, SERVERLESS);
    for stream in [false, true] {
        // Clients name the model without the choice, as they know it.
        let resp = sluice_e2e::chat_as(&gw, None, "meta-llama/Llama-3.1-8B-Instruct", stream).await;
        assert_eq!(resp.status(), 200);
        let _ = resp.bytes().await.unwrap();
        let sent = up.last_request();
        assert_eq!(sent.path, "/router/v1/chat/completions");
        assert_eq!(
            sent.body["model"], "meta-llama/Llama-3.1-8B-Instruct:fastest",
            "the router picks the provider from the suffix"
        );
        assert_eq!(
            sent.authorization.as_deref(),
            Some(&*format!("Bearer {TOKEN}"))
        );
        assert_eq!(
            sent.scale_up_timeout, None,
            "serverless is not scaled to zero"
        );
    }

    let resp = reqwest::Client::new()
        .post(gw.url("/v1/embeddings"))
        .json(&json!({"model": "BAAI/bge-small-en-v1.5", "input": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        up.last_request().path,
        "/router/hf-inference/models/BAAI/bge-small-en-v1.5/pipeline/feature-extraction"
    );

    // TGI's native API has no router route: refused with the way out,
    // never sent somewhere that cannot answer.
    let before = up.requests().len();
    let resp = sluice_e2e::chat_as(&gw, None, "tgi-serverless", false).await;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("no serverless route through the Hugging Face router")
            && message.contains("set base_url"),
        "{message}"
    );
    assert_eq!(up.requests().len(), before);
}

#[test]
fn a_provider_choice_is_refused_where_it_cannot_apply() {
    let err = sluice_e2e::check_refuses(
        "providers:\n  targets:\n    - id: t\n      provider: huggingface:chat:org/m:fastest\n      base_url: http://e.test\n      format: huggingface\n      provider_type: huggingface\n      secret_key_ref: {env: X}\n    - id: u\n      provider: 'huggingface:chat:org/m:'\n      secret_key_ref: {env: X}\n",
    );
    assert!(
        err.contains("providers.targets[0].provider: the provider choice ':fastest' applies to the router's OpenAI-compatible chat"),
        "{err}"
    );
    assert!(
        err.contains("providers.targets[1].provider: '' after the model is not a provider choice"),
        "{err}"
    );
}

fn dedicated(up: &Upstream, id: &str, mode: &str, timeout: f64) -> String {
    format!(
        "    - id: {id}\n      provider: huggingface:chat:meta-llama/Llama-3.1-70B-Instruct\n      base_url: {}/v1\n      secret_key_ref: {{env: HF_API_TOKEN}}\n      timeout_seconds: {timeout}\n      stream_timeout_seconds: {timeout}\n",
        up.base(mode)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dedicated_endpoint_scaling_up_from_zero_is_waited_for() {
    let up = Upstream::start().await;
    let targets = dedicated(&up, "cold", "coldstart", 10.0)
        + &dedicated(&up, "cold-stream", "coldstart-stream", 10.0)
        + &dedicated(&up, "impatient", "coldstart-short", 1.0);
    let gw = gateway(&up, &targets);

    for (model, stream) in [("cold", false), ("cold-stream", true)] {
        let started = Instant::now();
        let resp = sluice_e2e::chat_as(&gw, None, model, stream).await;
        assert_eq!(resp.status(), 200, "{model}");
        let text = resp.text().await.unwrap();
        let waited = started.elapsed();
        assert!(
            waited >= COLD_START - Duration::from_millis(100) && waited < Duration::from_secs(8),
            "{model}: answered after {waited:?}"
        );
        if stream {
            assert!(text.contains("[DONE]"), "{text}");
        }
        let sent = up.last_request();
        let asked: f64 = sent
            .scale_up_timeout
            .expect("X-Scale-Up-Timeout")
            .parse()
            .unwrap();
        assert!((1.0..=10.0).contains(&asked), "{model}: {asked}");
    }
    assert!(up.hits("coldstart") >= 2, "the 503 was asked again");

    // A deadline shorter than the cold start: 503 saying why, in time.
    let started = Instant::now();
    let resp = sluice_e2e::chat_as(&gw, None, "impatient", false).await;
    assert_eq!(resp.status(), 503);
    assert!(started.elapsed() < Duration::from_millis(1500));
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("scaling up from zero"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_router_account_out_of_credits_is_named_and_not_retried() {
    let up = Upstream::start().await;
    let gw = Gateway::start_with(
        "pack:\n  name: hf\nproviders:\n  targets:\n    - id: llama\n      provider: huggingface:chat:meta-llama/Llama-3.1-8B-Instruct\n      secret_key_ref: {env: HF_API_TOKEN}\n      retries: {attempts: 3, on: [429, 5xx]}\n",
        GatewayOptions {
            env: vec![("HF_API_TOKEN", TOKEN.to_string())],
            hf_router_url: Some(up.base("nocredit")),
            ..GatewayOptions::default()
        },
    );
    let resp = sluice_e2e::chat_as(&gw, None, "meta-llama/Llama-3.1-8B-Instruct", false).await;
    assert_eq!(resp.status(), 502);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_payment_required", "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("HTTP 402") && msg.contains("HF_API_TOKEN"),
        "{msg}"
    );
    assert!(!msg.contains(TOKEN), "{msg}");
    assert_eq!(up.hits("nocredit"), 1, "billing refusals are not retried");
}

fn counted_pack(up: &Upstream, audit: &std::path::Path) -> String {
    let target = |id: &str, model: &str| {
        format!(
            "    - id: {id}\n      provider: huggingface:chat:{model}\n      base_url: {}/v1\n      secret_key_ref: {{env: HF_API_TOKEN}}\n",
            up.base("nousage")
        )
    };
    let tools = format!(
        "    - id: counted-tools\n      provider: huggingface:chat:org/counted\n      base_url: {}/v1\n      secret_key_ref: {{env: HF_API_TOKEN}}\n",
        up.base("toolcall")
    ) + &format!(
        "    - id: counted-vectors\n      provider: huggingface\n      model: org/counted\n      base_url: {}/pipeline\n      secret_key_ref: {{env: HF_API_TOKEN}}\n",
        up.base("vectors")
    );
    format!(
        "pack:\n  name: counted\nproviders:\n  targets:\n{}{}{tools}policies:\n  chain: [audit-logger]\n  policy:\n    audit-logger:\n      destination: file\n      path: {}\n",
        target("counted", "org/counted"),
        target("uncounted", "org/absent"),
        audit.display()
    )
}

async fn ask(gw: &Gateway, model: &str, stream: bool) {
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .json(&json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "pack my box"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{model}");
    let body = resp.text().await.unwrap();
    assert!(
        !body.contains("\"usage\""),
        "{model}: the client asked for no usage and the upstream sent none: {body}"
    );
}

/// An upstream that reports no usage, streamed or not: the gateway counts
/// it with the model's own tokenizer, fetched from the Hub into the cache
/// (and read from that cache when the Hub is gone), or estimates it when
/// there is no tokenizer; the audit record says which.
#[tokio::test(flavor = "multi_thread")]
async fn usage_an_upstream_does_not_report_is_counted_with_the_models_tokenizer() {
    let hub = FakeHub::start().await;
    hub.push(
        "org/counted",
        vec![("tokenizer.json".into(), tiny_model::tokenizer_json_bytes())],
    );
    let up = Upstream::start().await;
    let audit = TempDir::new();
    let hf_home = TempDir::new();
    let opts = |endpoint: String| GatewayOptions {
        env: vec![
            ("HF_API_TOKEN", TOKEN.to_string()),
            ("HF_ENDPOINT", endpoint),
            ("HF_HOME", hf_home.path().display().to_string()),
        ],
        ..GatewayOptions::default()
    };
    let gw = Gateway::start_with(&counted_pack(&up, audit.path()), opts(hub.url()));
    assert!(
        gw.wait_for_log("tokenizer ready", Duration::from_secs(10)),
        "{}",
        gw.logs()
    );
    assert!(
        hub.count("/org/counted/resolve/main/tokenizer.json auth=yes") >= 1,
        "the target's Hugging Face token goes to the Hub: {:?}",
        hub.log()
    );
    assert!(gw.wait_for_log("cannot fetch the tokenizer", Duration::from_secs(10)));
    for (model, stream) in [
        ("counted", false),
        ("counted", true),
        ("uncounted", false),
        ("uncounted", true),
        ("counted-tools", true),
    ] {
        ask(&gw, model, stream).await;
    }
    // Feature-extraction never reports usage: the answer carries the count.
    let vectors: Value = reqwest::Client::new()
        .post(gw.url("/v1/embeddings"))
        .json(&json!({"model": "counted-vectors", "input": "pack my box"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        vectors["usage"],
        json!({"prompt_tokens": 11, "total_tokens": 11}),
        "{vectors}"
    );
    let records = sluice_e2e::wait_audit_records(audit.path(), 6).await;
    let usage: Vec<(String, bool, Value, Value)> = records
        .iter()
        .map(|r| {
            (
                r["target"].as_str().unwrap().to_string(),
                r["stream"].as_bool().unwrap(),
                r["usage"].clone(),
                r["usage_source"].clone(),
            )
        })
        .collect();
    // "pack my box" is 11 tokens of the tiny tokenizer (one per character,
    // no merge applies) and 3 by the four-bytes estimate; the answers are
    // "echo: pack my box" (17 / 5) and, streamed, "Hello world" (11 / 3).
    let want =
        |p: u64, c: u64| json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c});
    assert_eq!(
        usage,
        vec![
            ("counted".into(), false, want(11, 17), json!("tokenizer")),
            ("counted".into(), true, want(11, 11), json!("tokenizer")),
            ("uncounted".into(), false, want(3, 5), json!("estimate")),
            ("uncounted".into(), true, want(3, 3), json!("estimate")),
            // A streamed tool call without usage: its reasoning (56 tokens)
            // and its arguments (54) are each counted.
            (
                "counted-tools".into(),
                true,
                want(11, 110),
                json!("tokenizer")
            ),
            (
                "counted-vectors".into(),
                false,
                want(11, 0),
                json!("tokenizer")
            ),
        ]
    );
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("llm_prompt_tokens_total{target=\"counted\",model=\"org/counted\"} 22"),
        "{metrics}"
    );
    assert!(!gw.logs().contains(TOKEN), "{}", gw.logs());
    drop(gw);

    // The Hub is gone: the copy in the cache counts.
    let gw = Gateway::start_with(
        &counted_pack(&up, audit.path()),
        opts("http://127.0.0.1:9".into()),
    );
    assert!(
        gw.wait_for_log("tokenizer ready", Duration::from_secs(10)),
        "{}",
        gw.logs()
    );
    ask(&gw, "counted", false).await;
    let records = sluice_e2e::wait_audit_records(audit.path(), 7).await;
    let last = records.last().unwrap();
    assert_eq!(last["usage_source"], "tokenizer", "{last}");
    assert_eq!(last["usage"], want(11, 17));
}
