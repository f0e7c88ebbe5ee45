//! One request's bookkeeping along the request path: policy decisions,
//! time spent upstream vs. in Sluice, and the audit record written when the
//! response (or stream) ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::audit::{self, Record, Slot};
use crate::counting;
use crate::error::ApiError;
use crate::limits::Part;
use crate::metrics::{self, OutcomeLabels, PolicyLabels, TargetLabels};
use crate::openai::Usage;
use crate::policies::{self, Decision, Outcome, Stage};
use crate::providers::target::TargetRuntime;
use crate::runtime::{Caller, Runtime};

pub struct Exchange {
    pub rt: Arc<Runtime>,
    started: Instant,
    upstream: Duration,
    pub decisions: Vec<Decision>,
    pub record: Record,
    slot: Option<Slot>,
    first_token: Option<Duration>,
    /// What the request holds under the pack's limits (concurrency slots
    /// are released when the exchange is dropped, i.e. when it ends).
    admission: Option<crate::limits::Admission>,
    /// The same for the limits of the target that is serving (replaced
    /// when a fallback takes over).
    target_admission: Option<crate::limits::Admission>,
    /// The group member serving the request, counted as in flight until
    /// the exchange ends (replaced when another member takes over).
    in_flight: Option<crate::groups::InFlight>,
    caller: Caller,
    /// A streamed request asked for the usage chunk
    /// (`stream_options.include_usage`); providers always produce it.
    pub stream_usage: bool,
    /// What counting needs when the upstream reports no usage (see
    /// `counting`): the texts' bytes always; the texts themselves only when
    /// the serving target has a tokenizer to count them with.
    prompt_bytes: usize,
    prompt_texts: Option<Vec<String>>,
    answer_bytes: usize,
    answer_texts: Option<Vec<String>>,
    /// The serving target: its model (the only model label metrics use),
    /// prices, tokenizer and metric series.
    served: Option<Arc<TargetRuntime>>,
    /// A count already made for the answer (`count_missing_usage`).
    counted: Option<(Usage, counting::Source)>,
    /// `ai_completion`: the request's trace span; it ends when the
    /// exchange is finished (for streams, when the stream ends). Without
    /// trace export, the request's log span (see `Exchange::new`).
    pub span: tracing::Span,
    /// `span` is the trace span: its `gen_ai.*` fields are worth filling.
    traced: bool,
}

impl Exchange {
    pub fn new(rt: Arc<Runtime>, request_id: String, endpoint: &'static str) -> Self {
        use tracing::field::Empty;
        let operation = if endpoint == "embeddings" {
            "embeddings"
        } else {
            "chat"
        };
        let span = tracing::info_span!(
            target: sluice_telemetry::TRACE_ONLY,
            "ai_completion",
            "gen_ai.operation.name" = operation,
            "gen_ai.request.model" = Empty,
            "gen_ai.response.model" = Empty,
            "gen_ai.response.finish_reasons" = Empty,
            "gen_ai.usage.input_tokens" = Empty,
            "gen_ai.usage.output_tokens" = Empty,
            "gen_ai.input.messages" = Empty,
            "gen_ai.output.messages" = Empty,
            "http.response.status_code" = Empty,
            "sluice.target" = Empty,
            "sluice.overhead_ms" = Empty,
            "sluice.usage_source" = Empty,
        );
        // Without an exporter the trace-only span is switched off; the
        // request's own span (its request_id) then frames what the exchange
        // logs, a stream's steps included, which run outside the handler.
        let traced = !span.is_disabled();
        let span = if traced {
            span
        } else {
            tracing::Span::current()
        };
        // `record_id` is drawn in `finish`, only when a record is written.
        let record = Record {
            request_id,
            endpoint,
            ..Record::default()
        };
        Exchange {
            rt,
            started: Instant::now(),
            upstream: Duration::ZERO,
            decisions: Vec::new(),
            record,
            slot: None,
            first_token: None,
            admission: None,
            target_admission: None,
            in_flight: None,
            caller: Caller::default(),
            stream_usage: false,
            prompt_bytes: 0,
            prompt_texts: None,
            answer_bytes: 0,
            answer_texts: None,
            served: None,
            counted: None,
            span,
            traced,
        }
    }

    /// The span to run the request path in: the trace span, or none when
    /// there is none (the request's own span is entered already; entering
    /// it again on every poll was a measurable cost).
    pub fn trace_span(&self) -> tracing::Span {
        if self.traced {
            self.span.clone()
        } else {
            tracing::Span::none()
        }
    }

    /// With content capture on: the request's messages as they leave Sluice.
    pub fn capture_input(&self, messages: &impl serde::Serialize) {
        if sluice_telemetry::capture_content()
            && let Ok(text) = serde_json::to_string(messages)
        {
            self.span.record("gen_ai.input.messages", text.as_str());
        }
    }

    /// With content capture on: the answer as the client received it.
    pub fn capture_output(&self, output: &str) {
        if sluice_telemetry::capture_content() {
            self.span.record("gen_ai.output.messages", output);
        }
    }

    /// Notes what a streamed chunk says about the answer: its model and,
    /// once given, its finish reason.
    pub fn response_seen(&self, v: &Value) {
        if self.traced {
            self.answer_seen(
                v.get("model").and_then(Value::as_str),
                v.pointer("/choices/0/finish_reason")
                    .and_then(Value::as_str),
            );
        }
    }

    /// The answer's model and finish reason, on the trace span.
    pub fn answer_seen(&self, model: Option<&str>, finish_reason: Option<&str>) {
        if !self.traced {
            return;
        }
        if let Some(m) = model {
            self.span.record("gen_ai.response.model", m);
        }
        if let Some(r) = finish_reason {
            self.span.record("gen_ai.response.finish_reasons", r);
        }
    }

    /// Reserves the audit record's place before any work is done, so a full
    /// audit queue is answered by `on_failure` up front.
    pub fn admit(&mut self) -> Result<(), ApiError> {
        if let Some(a) = &self.rt.auditor {
            let slot = a.admit()?;
            if slot.is_dropped() {
                metrics::get().audit_dropped.inc();
            }
            self.slot = Some(slot);
        }
        Ok(())
    }

    /// Records where routing sent the request before a target is picked
    /// (a group's member is named by `routed` once admitted).
    pub fn route(&mut self, route: &crate::runtime::Route) {
        match route {
            crate::runtime::Route::Target(t) => self.routed(t),
            crate::runtime::Route::Group(g) => self.record.group = Some(g.spec.id.clone()),
        }
    }

    pub fn routed(&mut self, target: &Arc<TargetRuntime>) {
        self.record.target = Some(target.spec.id.clone());
        self.served = Some(Arc::clone(target));
    }

    /// Marks the first streamed token (once).
    pub fn first_token(&mut self) {
        if self.first_token.is_none() {
            self.first_token = Some(self.started.elapsed());
        }
    }

    pub fn caller(&mut self, caller: &Caller) {
        self.record.key_id = caller.key_id.clone();
        self.record.role = caller.role.clone();
        // Kept only for the limits, which check it again per fallback.
        if !self.rt.limits.is_empty() {
            self.caller = caller.clone();
        }
    }

    /// Admits the request under the pack's limits that follow the caller
    /// (key, role, global), whichever target serves it.
    pub async fn limit_caller(&mut self) -> Result<(), ApiError> {
        if self.rt.limits.is_empty() {
            return Ok(());
        }
        let rt = self.rt.clone();
        // Caller limits name no target (that is what makes them the
        // caller's), so none is given.
        let a = rt
            .limits
            .admit(Part::Caller, &self.caller, "", &mut self.decisions)
            .await?;
        self.admission = Some(a);
        Ok(())
    }

    /// Admits the request under the limits of `target` (scope `target` or
    /// a `targets` filter), replacing those of a target tried before.
    pub async fn limit_target(&mut self, target: &str) -> Result<(), ApiError> {
        if self.rt.limits.is_empty() {
            return Ok(());
        }
        self.target_admission = None;
        let rt = self.rt.clone();
        let a = rt
            .limits
            .admit(Part::Target, &self.caller, target, &mut self.decisions)
            .await?;
        self.target_admission = Some(a);
        Ok(())
    }

    /// Counts the request in flight at a group member (or at none).
    pub fn in_flight(&mut self, slot: Option<crate::groups::InFlight>) {
        self.in_flight = slot;
    }

    /// Keeps what counting the prompt takes, should the upstream report no
    /// usage: a copy of the texts only when the target chosen to serve
    /// counts with a tokenizer (a fallback to another target is estimated).
    pub fn note_prompt(&mut self, texts: &[crate::openai::Text<'_>]) {
        self.prompt_bytes = texts.iter().map(|t| t.text.len()).sum();
        if self.counts_tokens() {
            self.prompt_texts = Some(texts.iter().map(|t| t.text.to_string()).collect());
        }
    }

    fn model_label(&self) -> Option<&str> {
        self.served.as_ref().map(|t| t.spec.model.as_str())
    }

    /// Whether the serving target counts with a tokenizer, i.e. whether the
    /// answer's texts are worth keeping for [`Exchange::note_answer`].
    pub fn counts_tokens(&self) -> bool {
        self.served.as_ref().is_some_and(|t| t.tokenizer.is_some())
    }

    /// The answer's texts as the upstream produced them (every choice and
    /// channel), for the count when it reports no usage.
    pub fn note_answer(&mut self, bytes: usize, texts: Option<Vec<String>>) {
        self.answer_bytes = bytes;
        self.answer_texts = texts;
    }

    /// The usage the upstream did not report, counted now because the
    /// answer carries it (embeddings); `finish` records the same count.
    pub fn count_missing_usage(&mut self) -> Usage {
        let (u, s) = self.count_usage();
        self.counted = Some((u.clone(), s));
        u
    }

    /// Usage the upstream did not report: counted with the serving
    /// target's tokenizer when it is ready, else one token per four bytes.
    /// The chat template's few tokens per message are not in the count.
    fn count_usage(&self) -> (Usage, counting::Source) {
        if let Some(tok) = self
            .served
            .as_ref()
            .and_then(|t| t.tokenizer.as_ref())
            .and_then(|h| h.get())
            && let Some(prompt) = &self.prompt_texts
            && let Some(p) = counting::count(tok, prompt)
            && let Some(c) = counting::count(tok, self.answer_texts.as_deref().unwrap_or(&[]))
        {
            return (Usage::new(p, c), counting::Source::Tokenizer);
        }
        (
            Usage::new(
                counting::estimate(self.prompt_bytes),
                counting::estimate(self.answer_bytes),
            ),
            counting::Source::Estimate,
        )
    }

    pub fn audits_request(&self) -> bool {
        self.rt.auditor.as_ref().is_some_and(|a| a.wants_request())
    }

    pub fn audits_response(&self) -> bool {
        self.rt.auditor.as_ref().is_some_and(|a| a.wants_response())
    }

    /// Runs `call` and counts its time as upstream time.
    pub async fn upstream<T>(&mut self, call: impl std::future::Future<Output = T>) -> T {
        use tracing::Instrument;
        let span = tracing::info_span!(
            target: sluice_telemetry::TRACE_ONLY,
            "upstream",
            "otel.kind" = "client",
            "sluice.target" = self.record.target.as_deref().unwrap_or("none")
        );
        let t = Instant::now();
        let out = call.instrument(span).await;
        self.upstream += t.elapsed();
        out
    }

    pub fn add_upstream(&mut self, d: Duration) {
        self.upstream += d;
    }

    pub fn overhead(&self) -> Duration {
        self.started.elapsed().saturating_sub(self.upstream)
    }

    /// Adds `x-sluice-policy-decisions` and `x-sluice-overhead-ms`.
    pub fn decorate(&self, resp: &mut Response) {
        let h = resp.headers_mut();
        if !self.decisions.is_empty()
            && let Ok(v) = HeaderValue::from_str(&policies::header_value(&self.decisions))
        {
            h.insert("x-sluice-policy-decisions", v);
        }
        // Milliseconds with three decimals, formatted as integers (float
        // formatting was a visible share of the plain path).
        let us = self.overhead().as_micros();
        if let Ok(v) = HeaderValue::from_str(&format!("{}.{:03}", us / 1000, us % 1000)) {
            h.insert("x-sluice-overhead-ms", v);
        }
    }

    pub fn fail(mut self, err: ApiError) -> Response {
        let status = err.status().as_u16();
        let mut resp = err.into_response();
        self.decorate(&mut resp);
        self.record.status = status;
        let written = self.finish(None, None);
        audit::answer_after(resp, written)
    }

    /// Counts the request in the metrics and writes its audit record; the
    /// answer is to wait for the returned [`audit::Written`].
    #[must_use = "the answer must wait until its audit record is written"]
    pub fn finish(
        mut self,
        usage: Option<Usage>,
        response: Option<Value>,
    ) -> Option<audit::Written> {
        // Failed requests used no upstream tokens worth counting; a usage
        // the upstream did not report is counted here (and says so).
        let (usage, source) = match usage {
            Some(u) => (Some(u), Some(counting::Source::Upstream)),
            None if self.record.status < 400 => {
                let (u, s) = self.counted.take().unwrap_or_else(|| self.count_usage());
                (Some(u), Some(s))
            }
            None => (None, None),
        };
        if let Some(s) = source {
            if self.traced {
                self.span.record("sluice.usage_source", s.as_str());
            }
            self.record.usage_source = Some(s.as_str());
        }
        self.observe(usage.as_ref());
        let (prompt, completion) = usage
            .as_ref()
            .map_or((0, 0), |u| (u.prompt_tokens, u.completion_tokens));
        let tokens = prompt + completion;
        for a in self.admission.iter().chain(&self.target_admission) {
            a.consume(tokens);
        }
        let cost_micros = self
            .served
            .as_ref()
            .and_then(|t| t.spec.pricing)
            .map(|p| p.micros(prompt, completion));
        if let Some(c) = cost_micros {
            self.record.cost = Some(c as f64 / 1e6);
            metrics::get()
                .cost
                .get_or_create(&TargetLabels {
                    target: self.record.target.clone().unwrap_or_default(),
                    model: self.model_label().unwrap_or_default().to_string(),
                })
                .inc_by(c as f64 / 1e6);
        }
        if let Some(a) = &mut self.admission {
            self.record.budgets = a.budget_names();
            a.charge(crate::limits::Spent {
                tokens,
                cost_micros: cost_micros.unwrap_or(0),
            });
        }
        let auditor = self.rt.auditor.clone()?;
        let slot = self.slot.take()?;
        self.record.record_id = uuid::Uuid::new_v4().to_string();
        self.record.time = audit::now_rfc3339();
        self.record.usage = usage;
        self.record.latency_ms = round3(self.started.elapsed());
        self.record.overhead_ms = round3(self.overhead());
        if self.record.response.is_none() {
            self.record.response = response;
        }
        auditor.record(slot, std::mem::take(&mut self.record), &self.decisions)
    }
}

impl Exchange {
    fn observe(&self, usage: Option<&Usage>) {
        if self.traced {
            let span = &self.span;
            span.record("gen_ai.request.model", self.record.model.as_str());
            span.record("http.response.status_code", self.record.status);
            span.record("sluice.overhead_ms", self.overhead().as_secs_f64() * 1000.0);
            if let Some(t) = &self.record.target {
                span.record("sluice.target", t.as_str());
            }
            if let Some(u) = usage {
                span.record("gen_ai.usage.input_tokens", u.prompt_tokens);
                span.record("gen_ai.usage.output_tokens", u.completion_tokens);
            }
        }
        let m = metrics::get();
        let blocked = self.decisions.iter().any(|d| d.outcome == Outcome::Block);
        let status = self.record.status;
        let outcome = match status {
            _ if blocked => "blocked",
            0..=399 => "success",
            429 => "rate_limited",
            400..=499 => "rejected",
            502 => "upstream_error",
            503 => "unavailable",
            504 => "timeout",
            _ => "error",
        };
        m.overhead_ms.observe(metrics::ms(self.overhead()));
        // A success through a target (the common case) counts in series
        // resolved once per target; everything else looks its labels up.
        if outcome == "success"
            && let Some(served) = &self.served
        {
            let series = served.series();
            series.success.inc();
            series
                .duration_ms
                .observe(metrics::ms(self.started.elapsed()));
            if let Some(u) = usage {
                series.prompt_tokens.inc_by(u.prompt_tokens);
                series.completion_tokens.inc_by(u.completion_tokens);
            }
        } else {
            self.observe_labelled(outcome, usage);
        }
        if let Some(t) = self.first_token {
            m.ttft_ms
                .get_or_create(&self.target_labels())
                .observe(metrics::ms(t));
        }
        for d in &self.decisions {
            let stage = match d.stage {
                Stage::Request => "request",
                Stage::Response => "response",
            };
            m.decisions
                .get_or_create(&PolicyLabels {
                    policy: d.policy,
                    stage,
                    outcome: d.outcome.as_str(),
                })
                .inc();
        }
    }

    fn target_labels(&self) -> TargetLabels {
        TargetLabels {
            target: self
                .record
                .target
                .clone()
                .unwrap_or_else(|| "none".to_string()),
            model: self.model_label().unwrap_or("unknown").to_string(),
        }
    }

    /// The counts of [`Exchange::observe`] by label lookup.
    fn observe_labelled(&self, outcome: &'static str, usage: Option<&Usage>) {
        let m = metrics::get();
        let labels = self.target_labels();
        let outcome_labels = OutcomeLabels {
            target: labels.target.clone(),
            model: labels.model.clone(),
            outcome,
        };
        m.requests.get_or_create(&outcome_labels).inc();
        if outcome != "success" {
            m.failures.get_or_create(&outcome_labels).inc();
        }
        m.duration_ms
            .get_or_create(&labels)
            .observe(metrics::ms(self.started.elapsed()));
        if let Some(u) = usage {
            m.prompt_tokens
                .get_or_create(&labels)
                .inc_by(u.prompt_tokens);
            m.completion_tokens
                .get_or_create(&labels)
                .inc_by(u.completion_tokens);
        }
    }
}

fn round3(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// The `usage` an answer (or a stream's chunk) reports, if it is one.
pub fn usage_of(v: &Value) -> Option<Usage> {
    usage_in(v.get("usage")?)
}

/// `usage` read as a [`Usage`], without copying it first.
pub fn usage_in(usage: &Value) -> Option<Usage> {
    serde::Deserialize::deserialize(usage).ok()
}
