//! OTLP trace export, received by a real OTLP/gRPC collector running in
//! this test: one `ai_completion` span per request with the GenAI
//! attributes, and child spans for each policy and for the upstream call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::json;
use sluice_e2e::upstream::Upstream;
use sluice_e2e::{Gateway, GatewayOptions};

#[derive(Default, Clone)]
struct Collector(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn attrs(span: &Span) -> HashMap<String, String> {
    span.attributes
        .iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.clone()) {
                Some(Any::StringValue(s)) => s,
                Some(Any::IntValue(i)) => i.to_string(),
                Some(Any::DoubleValue(d)) => d.to_string(),
                Some(Any::BoolValue(b)) => b.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), v)
        })
        .collect()
}

/// An OTLP/gRPC collector on a free port.
async fn start_collector() -> (Collector, u16) {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(collector.clone()))
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
    tokio::spawn(server);
    (collector, port)
}

/// A collector on a free port, and a gateway exporting to it (with
/// `extra` environment) in front of a real upstream.
async fn traced_gateway(extra: Vec<(&'static str, String)>) -> (Collector, Gateway, Upstream) {
    let (collector, port) = start_collector().await;
    let up = Upstream::start().await;
    let pack = format!(
        "policies:\n  chain: [prompt-injection, pii-detector]\n  policy:\n    prompt-injection:\n      action: monitor\n    pii-detector:\n      action: redact\n\
         providers:\n  targets:\n    - id: chat\n      provider: openai:org/m\n      base_url: {}/v1\n",
        up.base("ok")
    );
    let mut env = vec![
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{port}"),
        ),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
    ];
    env.extend(extra);
    let gw = Gateway::start_with(
        &pack,
        GatewayOptions {
            env,
            ..GatewayOptions::default()
        },
    );
    (collector, gw, up)
}

async fn root_span(collector: &Collector, gw: &Gateway) -> Vec<Span> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let spans = collector.0.lock().unwrap().clone();
        if spans.iter().any(|s| s.name == "ai_completion")
            && spans.iter().filter(|s| s.name == "policy").count() >= 4
        {
            return spans;
        }
        assert!(
            Instant::now() < deadline,
            "spans never arrived: {:?}\n{}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>(),
            gw.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn content_goes_into_spans_only_when_enabled_and_only_redacted() {
    let (collector, gw, _up) = traced_gateway(vec![(
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
        "true".into(),
    )])
    .await;
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .json(&json!({"model": "org/m", "messages": [{"role": "user", "content": "Write to jane.doe@example.com about the launch."}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let spans = root_span(&collector, &gw).await;
    let a = attrs(spans.iter().find(|s| s.name == "ai_completion").unwrap());
    let input = &a["gen_ai.input.messages"];
    assert!(
        input.contains("<EMAIL_ADDRESS>") && !input.contains("jane.doe"),
        "{input}"
    );
    assert!(a.contains_key("gen_ai.output.messages"), "{a:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn completions_are_traced_with_policy_and_upstream_child_spans() {
    let (collector, gw, _up) = traced_gateway(Vec::new()).await;
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .json(&json!({"model": "org/m", "messages": [{"role": "user", "content": "Write to jane.doe@example.com about the launch."}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_string();

    let spans = root_span(&collector, &gw).await;
    let root = spans.iter().find(|s| s.name == "ai_completion").unwrap();
    let a = attrs(root);
    assert_eq!(a["gen_ai.operation.name"], "chat");
    assert_eq!(a["gen_ai.request.model"], "org/m");
    assert_eq!(a["gen_ai.response.model"], "org/m");
    assert_eq!(a["gen_ai.response.finish_reasons"], "stop");
    assert!(
        a["gen_ai.usage.input_tokens"].parse::<u64>().unwrap() > 0,
        "{a:?}"
    );
    assert!(a.contains_key("gen_ai.usage.output_tokens"), "{a:?}");
    assert_eq!(a["http.response.status_code"], "200");
    assert_eq!(a["sluice.target"], "chat");
    let http = spans
        .iter()
        .find(|s| s.span_id == root.parent_span_id)
        .expect("ai_completion's parent");
    assert_eq!(http.name, "request");
    assert!(
        http.parent_span_id.is_empty(),
        "the HTTP request span is the trace's root"
    );
    assert_eq!(attrs(http)["request_id"], request_id);

    let children: Vec<&Span> = spans
        .iter()
        .filter(|s| s.parent_span_id == root.span_id)
        .collect();
    let policies: Vec<(String, String)> = children
        .iter()
        .filter(|s| s.name == "policy")
        .map(|s| {
            let a = attrs(s);
            (a["sluice.policy"].clone(), a["sluice.stage"].clone())
        })
        .collect();
    for want in [
        ("prompt-injection", "request"),
        ("pii-detector", "request"),
        ("pii-detector", "response"),
    ] {
        assert!(
            policies.contains(&(want.0.into(), want.1.into())),
            "{want:?} missing from {policies:?}"
        );
    }
    let upstream = children
        .iter()
        .find(|s| s.name == "upstream")
        .expect("an upstream child span");
    assert_eq!(attrs(upstream)["sluice.target"], "chat");
    assert!(children.iter().all(|s| s.trace_id == root.trace_id));

    // Content stays out of traces unless capture is enabled.
    assert!(!a.contains_key("gen_ai.input.messages"));
    let all = format!("{spans:?}");
    assert!(!all.contains("jane.doe"), "prompt text leaked into a span");
}

#[tokio::test(flavor = "multi_thread")]
async fn trace_context_flows_from_the_gateway_into_the_worker() {
    let (collector, port) = start_collector().await;
    let env = vec![
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{port}"),
        ),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_string()),
    ];
    let (_dir, model) = sluice_e2e::worker::tiny_model(91);
    let worker = sluice_e2e::worker::Worker::start(&["--model", model.to_str().unwrap()], &env);
    worker.wait_ready(Duration::from_secs(60)).await;
    let gw = Gateway::start_with(
        &format!(
            "providers:\n  targets:\n    - id: tiny\n      provider: local:huggingface:org/tiny\n      workers: [\"{}\"]\n",
            worker.grpc
        ),
        GatewayOptions {
            env: env.clone(),
            ..GatewayOptions::default()
        },
    );
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .json(&json!({"model": "tiny", "max_tokens": 3, "temperature": 0,
                      "messages": [{"role": "user", "content": "hello"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(15);
    let (upstream, inner) = loop {
        let spans = collector.0.lock().unwrap().clone();
        let inner = spans
            .iter()
            .find(|s| {
                s.name == "ai_completion"
                    && attrs(s).get("gen_ai.system").map(String::as_str) == Some("mistral.rs")
            })
            .cloned();
        let upstream = spans.iter().find(|s| s.name == "upstream").cloned();
        if let (Some(u), Some(i)) = (upstream, inner) {
            break (u, i);
        }
        assert!(
            Instant::now() < deadline,
            "spans never arrived: {:?}\n{}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>(),
            worker.process.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        inner.trace_id, upstream.trace_id,
        "one trace across gateway and worker"
    );
    assert_eq!(
        inner.parent_span_id, upstream.span_id,
        "the worker's span is the upstream call's child"
    );
    let a = attrs(&inner);
    assert_eq!(a["gen_ai.usage.output_tokens"], "3", "{a:?}");
    assert_eq!(a["gen_ai.response.finish_reasons"], "length");
    assert_eq!(a["gen_ai.request.model"], model.to_str().unwrap());

    // Probes leave health spans.
    reqwest::get(format!("http://{}/readyz", worker.http))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !collector
        .0
        .lock()
        .unwrap()
        .iter()
        .any(|s| s.name == "health")
    {
        assert!(Instant::now() < deadline, "no health span");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
