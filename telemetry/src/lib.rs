//! Logs and traces for every Sluice binary. Logs go to stderr through
//! `tracing-subscriber` (text or JSON, filter from `RUST_LOG`); every line
//! logged while serving a request carries its span, hence its `request_id`.
//! When the standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, spans are also exported over
//! OTLP/gRPC. In the gateway: one `ai_completion` span per request with the
//! GenAI semantic-convention attributes, a child span per policy and one for
//! the upstream call; in the worker: an `ai_completion` span per generation,
//! a child of the gateway's upstream span through W3C trace context in the
//! gRPC metadata ([`inject`], [`extract`]), and `health` spans for probes.
//! Prompts and completions go into spans only when the operator opts in
//! with `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true` (the name
//! the OpenTelemetry GenAI instrumentations use), and then as they left
//! Sluice, i.e. after redaction.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The target of spans that exist for traces only (`ai_completion`,
/// `upstream`, `policy`, …): log lines do not show them, so when no OTLP
/// exporter is configured no layer wants them and creating one costs a
/// branch, not an allocation per field. Spans that log lines should carry
/// (the request's id) use their module's own target.
pub const TRACE_ONLY: &str = "sluice::trace";

/// Whether the operator asked for prompts and completions in spans.
pub fn capture_content() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        std::env::var("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
            .is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"))
    })
}

/// Keeps the exporter alive; flushes pending spans when dropped.
pub struct Guard(Option<SdkTracerProvider>, &'static str);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take()
            && let Err(e) = p.shutdown()
        {
            eprintln!("{}: flushing traces at exit failed: {e}", self.1);
        }
    }
}

/// Whether spans are exported over OTLP (read once: the environment of a
/// running process does not change).
pub fn traces_exported() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(otlp_configured)
}

fn otlp_configured() -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|k| std::env::var(k).is_ok_and(|v| !v.trim().is_empty()))
}

/// Installs the global subscriber. Must run inside the tokio runtime (the
/// OTLP exporter's batches are sent from it). `json`: JSON log lines;
/// `default_filter`: the filter when `RUST_LOG` is unset.
pub fn init(json: bool, service: &'static str, default_filter: &str) -> Guard {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| default_filter.into());
    // hf-hub logs every exhausted retry at ERROR; the worker and the
    // gateway retry on their own schedules and say once what failed. Its
    // lines stay available by naming it: RUST_LOG=info,hf_hub=debug.
    if !std::env::var("RUST_LOG").is_ok_and(|v| v.contains("hf_hub")) {
        filter = filter.add_directive("hf_hub::retry=off".parse().expect("a valid directive"));
    }
    if !otlp_configured() {
        // With no exporter, trace-only spans have no reader: switched off
        // here, they are never built (at `info`, each request would build
        // and record several that only the log layer's filter throws away).
        filter = filter.add_directive(
            format!("{TRACE_ONLY}=off")
                .parse()
                .expect("a valid directive"),
        );
    }
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let fmt = if json {
        fmt.json().boxed()
    } else {
        fmt.boxed()
    };
    // Trace-only spans never reach the log formatter (see TRACE_ONLY).
    let fmt = fmt.with_filter(tracing_subscriber::filter::filter_fn(|meta| {
        !(meta.is_span() && meta.target() == TRACE_ONLY)
    }));
    let mut provider = None;
    let mut otel_error = None;
    let otel = if otlp_configured() {
        match opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
        {
            Ok(exporter) => {
                let processor = opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
                    exporter,
                    opentelemetry_sdk::runtime::Tokio,
                )
                .build();
                let p = SdkTracerProvider::builder()
                    .with_span_processor(processor)
                    .with_resource(
                        opentelemetry_sdk::Resource::builder()
                            .with_service_name(service)
                            .build(),
                    )
                    .build();
                let tracer = p.tracer(service);
                provider = Some(p);
                Some(tracing_opentelemetry::layer().with_tracer(tracer))
            }
            Err(e) => {
                otel_error = Some(e.to_string());
                None
            }
        }
    } else {
        None
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .init();
    if let Some(e) = otel_error {
        tracing::error!("OTLP trace export is configured but could not start: {e}");
    } else if provider.is_some() {
        tracing::info!("exporting traces over OTLP");
    }
    Guard(provider, service)
}

struct Metadata<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for Metadata<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            value.parse(),
        ) {
            self.0.insert(k, v);
        }
    }
}

struct ReadMetadata<'a>(&'a tonic::metadata::MetadataMap);

impl Extractor for ReadMetadata<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|k| match k {
                tonic::metadata::KeyRef::Ascii(k) => Some(k.as_str()),
                tonic::metadata::KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

/// Writes the current span's trace context (`traceparent`) into outgoing
/// gRPC metadata, so the callee's spans join this trace.
pub fn inject(metadata: &mut tonic::metadata::MetadataMap) {
    let cx = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&cx, &mut Metadata(metadata));
}

/// Makes `span` a child of the trace context in incoming gRPC metadata
/// (nothing happens when there is none).
pub fn extract(metadata: &tonic::metadata::MetadataMap, span: &tracing::Span) {
    let cx = TraceContextPropagator::new().extract(&ReadMetadata(metadata));
    let _ = span.set_parent(cx);
}
