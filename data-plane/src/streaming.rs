//! A streamed chat completion on its way to the client: every chunk's
//! delta passes the response policies (which may hold text back, rewrite it
//! or block), then goes out as a server-sent event. Each text of a delta —
//! content, reasoning, each tool call's arguments — is a channel with its
//! own guards, since a redaction window must not run across two of them. `[DONE]` follows only a
//! clean end; a block or an upstream failure ends the stream with one
//! `{"error": …}` event. The audit record is written when the stream ends, before its last event goes out.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::exchange::{Exchange, usage_of};
use crate::openai::Usage;
use crate::policies::Decision;
use crate::policies::stream::Pipeline;
use crate::providers::ChunkStream;
use crate::runtime::Runtime;

struct State {
    upstream: ChunkStream,
    channels: Channels,
    ex: Option<Exchange>,
    /// What the client received, for the audit record (when it wants it).
    text: Option<String>,
    usage: Option<Usage>,
    /// Pass usage on to the client (it asked with
    /// `stream_options.include_usage`); it is counted either way.
    send_usage: bool,
    /// The last chunk seen, as the shape for chunks the gateway adds.
    template: Option<Value>,
    flushed: bool,
    out: VecDeque<Event>,
    /// Bytes of text the upstream produced, for the usage estimate when it
    /// reports none.
    answer_bytes: usize,
    /// The same text per channel, kept only when the serving target has a
    /// tokenizer (channels are counted apart: tokens do not span them).
    answer_text: Option<Vec<(Channel, String)>>,
    /// The audit record's write, which the last events wait for.
    written: Option<crate::audit::Written>,
}

pub fn respond(ex: Exchange, upstream: ChunkStream) -> Response {
    let channels = Channels::new(ex.rt.clone());
    let ex_stream_usage = ex.stream_usage;
    let ex_counts_tokens = ex.counts_tokens();
    let text = (ex.audits_response() || sluice_telemetry::capture_content()).then(String::new);
    // Headers go out before the response policies see any text: they carry
    // the request-side decisions; the audit record has all of them.
    let mut head = Sse::new(futures::stream::empty::<Result<Event, Infallible>>()).into_response();
    ex.decorate(&mut head);
    let state = State {
        upstream,
        channels,
        ex: Some(ex),
        text,
        usage: None,
        send_usage: ex_stream_usage,
        template: None,
        flushed: false,
        out: VecDeque::new(),
        answer_bytes: 0,
        answer_text: ex_counts_tokens.then(Vec::new),
        written: None,
    };
    // Each step runs inside the request's span, so the policies and the
    // logs of a stream belong to its trace.
    let steps = futures::stream::unfold(state, |st| {
        let span = st
            .ex
            .as_ref()
            .map_or_else(tracing::Span::none, |e| e.span.clone());
        tracing::Instrument::instrument(next(st), span)
    });
    let mut resp = Sse::new(steps.map(Ok::<_, Infallible>)).into_response();
    for (k, v) in head.headers() {
        if k.as_str().starts_with("x-sluice-") {
            resp.headers_mut().insert(k.clone(), v.clone());
        }
    }
    resp.headers_mut().insert(
        "cache-control",
        axum::http::HeaderValue::from_static("no-cache"),
    );
    resp
}

async fn next(mut st: State) -> Option<(Event, State)> {
    loop {
        // Finished: `[DONE]` (or the error event) goes out once the audit
        // record is written, so a client that saw the end has a record.
        if let Some(written) = st.written.take()
            && let Err(e) = written.wait().await
        {
            // fail_closed and no record: the stream ends with the error
            // instead of what was left of it.
            st.out.clear();
            st.out
                .push_back(Event::default().data(e.body().to_string()));
        }
        if let Some(ev) = st.out.pop_front() {
            return Some((ev, st));
        }
        st.ex.as_ref()?; // finished: the stream is over
        // Waiting for the upstream's next chunk is upstream time, not
        // Sluice's overhead.
        let waited = std::time::Instant::now();
        let item = st.upstream.next().await;
        if let Some(ex) = st.ex.as_mut() {
            ex.add_upstream(waited.elapsed());
        }
        match item {
            Some(Ok(chunk)) => st.chunk(chunk),
            Some(Err(e)) => st.fail(e),
            None => {
                if let Err(e) = st.flush() {
                    st.fail(e);
                    continue;
                }
                st.out.push_back(Event::default().data("[DONE]"));
                st.end(200);
            }
        }
    }
}

impl State {
    fn chunk(&mut self, mut chunk: Value) {
        if let Some(u) = usage_of(&chunk) {
            self.usage = Some(u);
            // Reported: nothing left to count.
            self.answer_text = None;
            if !self.send_usage {
                chunk.as_object_mut().map(|o| o.remove("usage"));
                // The usage-only chunk itself is not sent at all.
                if chunk
                    .get("choices")
                    .and_then(Value::as_array)
                    .is_some_and(|c| c.is_empty())
                {
                    return;
                }
            }
        }
        if let Some(ex) = &self.ex {
            ex.response_seen(&chunk);
        }
        let finishing = chunk
            .pointer("/choices/0/finish_reason")
            .is_some_and(|f| !f.is_null());
        let mut texts = Vec::new();
        if let Some(Value::Object(delta)) = chunk.pointer_mut("/choices/0/delta") {
            delta_texts(delta, &mut texts);
        }
        for (channel, text) in texts {
            self.answer_bytes += text.len();
            if let Some(kept) = &mut self.answer_text {
                match kept.iter_mut().find(|(c, _)| *c == channel) {
                    Some((_, t)) => t.push_str(text),
                    None => kept.push((channel.clone(), text.clone())),
                }
            }
            if !text.is_empty()
                && let Some(ex) = &mut self.ex
            {
                ex.first_token();
            }
            match self.channels.push(&channel, text) {
                Ok(out) => *text = out,
                Err(d) => return self.fail(d.violation()),
            }
            if channel == Channel::Content
                && let Some(t) = &mut self.text
            {
                t.push_str(text);
            }
        }
        if finishing && let Err(e) = self.flush() {
            return self.fail(e);
        }
        self.template = Some(chunk.clone());
        if !is_empty_delta(&chunk) {
            self.out.push_back(Event::default().data(chunk.to_string()));
        }
    }

    /// Releases what the policies held back, one chunk per channel.
    fn flush(&mut self) -> Result<(), ApiError> {
        if self.flushed {
            return Ok(());
        }
        self.flushed = true;
        for (channel, rest) in self.channels.finish().map_err(|d| d.violation())? {
            if channel == Channel::Content
                && let Some(t) = &mut self.text
            {
                t.push_str(&rest);
            }
            let mut chunk = self.template.clone().unwrap_or_else(
                || json!({"object": "chat.completion.chunk", "choices": [{"index": 0}]}),
            );
            chunk["choices"] =
                json!([{"index": 0, "delta": channel.delta(rest), "finish_reason": null}]);
            chunk.as_object_mut().map(|o| o.remove("usage"));
            self.out.push_back(Event::default().data(chunk.to_string()));
        }
        Ok(())
    }

    fn fail(&mut self, err: ApiError) {
        tracing::warn!(error = %err, "stream ended with an error");
        self.out
            .push_back(Event::default().data(err.body().to_string()));
        let status = err.status().as_u16();
        self.end(status);
    }

    fn end(&mut self, status: u16) {
        if let Some(mut ex) = self.ex.take() {
            ex.decisions.extend(self.channels.decisions());
            ex.record.status = status;
            ex.record.stream = true;
            if self.usage.is_none() {
                let texts = self
                    .answer_text
                    .take()
                    .map(|kept| kept.into_iter().map(|(_, t)| t).collect());
                ex.note_answer(self.answer_bytes, texts);
            }
            let response = self.text.take();
            if let Some(text) = &response {
                ex.capture_output(text);
            }
            self.written = ex.finish(self.usage.take(), response.map(Value::String));
        }
    }
}

/// The client went away mid-stream (axum drops the body): the request
/// still gets its audit record and metrics, with status 499 ("client closed
/// request"), and the upstream stream is dropped with it.
impl Drop for State {
    fn drop(&mut self) {
        if self.ex.is_some() {
            tracing::info!("client disconnected mid-stream");
            self.end(499);
        }
    }
}

/// A text of a streamed delta that the response policies read.
#[derive(Debug, Clone, PartialEq)]
enum Channel {
    Content,
    /// `reasoning_content`, or `reasoning` as some servers name it.
    Reasoning(String),
    /// `tool_calls[index].function.arguments`.
    ToolArguments(u64),
    /// The legacy `function_call.arguments`.
    FunctionArguments,
}

impl Channel {
    /// A delta that carries `text` in this channel.
    fn delta(&self, text: String) -> Value {
        match self {
            Channel::Content => json!({"content": text}),
            Channel::Reasoning(key) => json!({key.as_str(): text}),
            Channel::ToolArguments(index) => {
                json!({"tool_calls": [{"index": index, "function": {"arguments": text}}]})
            }
            Channel::FunctionArguments => json!({"function_call": {"arguments": text}}),
        }
    }
}

/// The texts of a delta, by channel.
fn delta_texts<'d>(
    delta: &'d mut serde_json::Map<String, Value>,
    out: &mut Vec<(Channel, &'d mut String)>,
) {
    for (key, v) in delta.iter_mut() {
        match (key.as_str(), v) {
            ("content", Value::String(s)) => out.push((Channel::Content, s)),
            ("reasoning_content" | "reasoning", Value::String(s)) => {
                out.push((Channel::Reasoning(key.clone()), s))
            }
            ("tool_calls", Value::Array(calls)) => {
                for c in calls {
                    let index = c.get("index").and_then(Value::as_u64).unwrap_or(0);
                    if let Some(Value::String(s)) = c.pointer_mut("/function/arguments") {
                        out.push((Channel::ToolArguments(index), s));
                    }
                }
            }
            ("function_call", f) => {
                if let Some(Value::String(s)) = f.get_mut("arguments") {
                    out.push((Channel::FunctionArguments, s));
                }
            }
            _ => {}
        }
    }
}

/// The response policies' guards, one pipeline per channel, made when the
/// channel first carries text.
struct Channels {
    rt: std::sync::Arc<Runtime>,
    /// The chain has no response guard at all: nothing to do.
    none: bool,
    open: Vec<(Channel, Pipeline)>,
}

impl Channels {
    fn new(rt: std::sync::Arc<Runtime>) -> Self {
        let none = rt.chain.stream_guards().is_empty();
        Channels {
            rt,
            none,
            open: Vec::new(),
        }
    }

    fn push(&mut self, channel: &Channel, text: &str) -> Result<String, Decision> {
        if self.none {
            return Ok(text.to_string());
        }
        let at = match self.open.iter().position(|(c, _)| c == channel) {
            Some(i) => i,
            None => {
                self.open
                    .push((channel.clone(), self.rt.chain.stream_guards()));
                self.open.len() - 1
            }
        };
        self.open[at].1.push(text)
    }

    /// What each channel held back, in the order the channels opened.
    fn finish(&mut self) -> Result<Vec<(Channel, String)>, Decision> {
        let mut out = Vec::new();
        for (channel, pipeline) in &mut self.open {
            let rest = pipeline.finish()?;
            if !rest.is_empty() {
                out.push((channel.clone(), rest));
            }
        }
        Ok(out)
    }

    /// One decision per policy, merged over the channels; a stream that
    /// carried no text still reports each policy's pass.
    fn decisions(&self) -> Vec<Decision> {
        let mut open = self.open.iter();
        let mut merged = match open.next() {
            Some((_, p)) => p.decisions(),
            None if self.none => return Vec::new(),
            None => return self.rt.chain.stream_guards().decisions(),
        };
        for (_, p) in open {
            for (m, d) in merged.iter_mut().zip(p.decisions()) {
                m.merge(&d);
            }
        }
        merged
    }
}

/// A chunk whose delta became empty (its text is held back) and that
/// carries nothing else is not worth an event.
fn is_empty_delta(chunk: &Value) -> bool {
    let Some(choice) = chunk.pointer("/choices/0") else {
        return false;
    };
    let delta_empty = match choice.get("delta") {
        Some(Value::Object(d)) => d.iter().all(|(k, v)| {
            matches!(k.as_str(), "content" | "reasoning_content" | "reasoning")
                && v.as_str() == Some("")
        }),
        _ => false,
    };
    delta_empty
        && choice.get("finish_reason").is_none_or(Value::is_null)
        && chunk.get("usage").is_none_or(Value::is_null)
}
