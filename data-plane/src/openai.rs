//! The OpenAI wire types the gateway reads. Only the fields the gateway acts
//! on are typed; everything else is kept in `extra` and passed through to
//! OpenAI-compatible upstreams untouched (tools, response_format, …).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ApiError;

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s.clone()],
            Stop::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Message {
    pub role: String,
    #[serde(default)]
    pub content: Option<Content>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Message content: a string, or a list of parts of which text parts are read.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<Value>),
}

impl Message {
    /// The text of the message, parts joined.
    pub fn text(&self) -> String {
        match &self.content {
            None => String::new(),
            Some(Content::Text(s)) => s.clone(),
            Some(Content::Parts(parts)) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(""),
        }
    }
}

const ROLES: [&str; 5] = ["system", "developer", "user", "assistant", "tool"];

/// Texts that sit in a message beside its content, in requests and in
/// answers: reasoning (`reasoning_content`, or `reasoning` as some servers
/// name it), tool-call arguments (a JSON document as a string, which a
/// redaction keeps valid: placeholders hold no quote or backslash) and the
/// legacy `function_call`.
pub fn side_texts<'v>(key: &str, v: &'v mut Value) -> Vec<&'v mut String> {
    match (key, v) {
        ("reasoning_content" | "reasoning" | "refusal", Value::String(s)) => vec![s],
        ("tool_calls", Value::Array(calls)) => calls
            .iter_mut()
            .filter_map(|c| match c.pointer_mut("/function/arguments") {
                Some(Value::String(s)) => Some(s),
                _ => None,
            })
            .collect(),
        ("function_call", f) => match f.get_mut("arguments") {
            Some(Value::String(s)) => vec![s],
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// Every text of an answer's `message` that response policies see: its
/// content (a string or parts) and its [`side_texts`].
pub fn answer_texts_mut(message: &mut Value) -> Vec<&mut String> {
    let Some(obj) = message.as_object_mut() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, v) in obj.iter_mut() {
        match (key.as_str(), v) {
            ("content", Value::String(s)) => out.push(s),
            ("content", Value::Array(parts)) => {
                for p in parts.iter_mut() {
                    if let Some(Value::String(s)) = p.get_mut("text") {
                        out.push(s);
                    }
                }
            }
            (key, v) => out.extend(side_texts(key, v)),
        }
    }
    out
}

/// A piece of a request's text that a policy may inspect and rewrite, with
/// the role of the message it came from. What counts as a request's text is
/// decided here, next to the request types, for every endpoint.
pub struct Text<'a> {
    pub role: &'a str,
    pub text: &'a mut String,
}

impl ChatRequest {
    /// The texts policies see: every message's text and refusal parts, and
    /// what a client may write into a message besides its content (the
    /// reasoning of an earlier assistant turn, tool-call arguments). Tool
    /// results are the content of `tool` messages.
    pub fn texts_mut(&mut self) -> Vec<Text<'_>> {
        let mut out = Vec::new();
        for m in &mut self.messages {
            let role = m.role.as_str();
            match &mut m.content {
                Some(Content::Text(s)) => out.push(Text { role, text: s }),
                Some(Content::Parts(parts)) => {
                    for p in parts.iter_mut() {
                        let key = if p.get("text").is_some() {
                            "text"
                        } else {
                            "refusal"
                        };
                        if let Some(Value::String(s)) = p.get_mut(key) {
                            out.push(Text { role, text: s });
                        }
                    }
                }
                None => {}
            }
            for (key, v) in m.extra.iter_mut() {
                for s in side_texts(key, v) {
                    out.push(Text { role, text: s });
                }
            }
        }
        out
    }

    /// A content part the request policies cannot read, as the 400 that
    /// refuses it; asked only when the chain has policies, so that a
    /// client cannot get text past them in a shape they skip.
    pub fn readable(&self) -> Result<(), ApiError> {
        for (i, m) in self.messages.iter().enumerate() {
            let Some(Content::Parts(parts)) = &m.content else {
                continue;
            };
            for (j, p) in parts.iter().enumerate() {
                let kind = p.get("type").and_then(Value::as_str).unwrap_or("");
                let readable = match kind {
                    "text" | "input_text" | "output_text" => {
                        p.get("text").is_some_and(Value::is_string)
                    }
                    "refusal" => p.get("refusal").is_some_and(Value::is_string),
                    // Not text: passed on unjudged (docs/configuration.md).
                    "image_url" | "input_audio" | "file" => true,
                    _ => false,
                };
                if !readable {
                    return Err(ApiError::InvalidParam {
                        message: format!(
                            "messages[{i}].content[{j}] (type '{kind}') is not a part this gateway's policies can read; send text as {{\"type\": \"text\", \"text\": \"...\"}}"
                        ),
                        param: "messages",
                    });
                }
            }
        }
        Ok(())
    }

    /// Checks what the gateway itself relies on; the upstream checks the rest.
    pub fn validate(&self) -> Result<(), ApiError> {
        if self.messages.is_empty() {
            return Err(ApiError::InvalidParam {
                message: "messages must contain at least one message".into(),
                param: "messages",
            });
        }
        for (i, m) in self.messages.iter().enumerate() {
            if !ROLES.contains(&m.role.as_str()) {
                return Err(ApiError::InvalidParam {
                    message: format!(
                        "messages[{i}].role '{}' is not one of system, developer, user, assistant, tool",
                        m.role
                    ),
                    param: "messages",
                });
            }
        }
        if let Some(n) = self.n
            && n != 1
        {
            return Err(ApiError::InvalidParam {
                message: format!("n={n} is not supported: the gateway returns one choice (n=1)"),
                param: "n",
            });
        }
        Ok(())
    }

    /// Refuses what a plain-text backend cannot honour rather than drop it
    /// silently: a client asking for a tool call or a JSON schema must not
    /// get free text back as if it had been applied. `backend` says which
    /// kind of target in the message.
    pub fn plain_text_only(&self, backend: &str) -> Result<(), ApiError> {
        for key in ["tools", "functions", "response_format"] {
            if self.extra.get(key).is_some_and(|v| !v.is_null()) {
                return Err(ApiError::InvalidParam {
                    message: format!(
                        "{key} is not supported by {backend}, which generate plain text; route this request to an OpenAI-compatible target"
                    ),
                    param: key,
                });
            }
        }
        Ok(())
    }

    pub fn max_tokens(&self) -> Option<u32> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct EmbeddingsRequest {
    pub model: String,
    pub input: EmbeddingInput,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_format: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    One(String),
    Many(Vec<String>),
    /// Token ids: passed through to OpenAI-compatible upstreams only.
    Tokens(Value),
}

impl EmbeddingsRequest {
    /// The input texts, for providers that take text only; `kind` names
    /// the target in the error (e.g. "target 'x' (feature-extraction)").
    pub fn text_inputs(&self, kind: &str) -> Result<Vec<String>, ApiError> {
        match &self.input {
            EmbeddingInput::One(s) => Ok(vec![s.clone()]),
            EmbeddingInput::Many(v) => Ok(v.clone()),
            EmbeddingInput::Tokens(_) => Err(ApiError::InvalidParam {
                message: format!("{kind} takes text input, not token ids"),
                param: "input",
            }),
        }
    }

    /// Token-id input, which no policy can read: refused (400) when the
    /// chain has policies, so it cannot carry text past them.
    pub fn readable(&self) -> Result<(), ApiError> {
        match self.input {
            EmbeddingInput::Tokens(_) => Err(ApiError::InvalidParam {
                message: "input given as token ids cannot be checked by this gateway's policies; send the input as text (a string or a list of strings)".into(),
                param: "input",
            }),
            _ => Ok(()),
        }
    }

    /// The input texts, for request policies (token-id input has none).
    pub fn texts_mut(&mut self) -> Vec<Text<'_>> {
        match &mut self.input {
            EmbeddingInput::One(s) => vec![Text {
                role: "user",
                text: s,
            }],
            EmbeddingInput::Many(v) => v
                .iter_mut()
                .map(|s| Text {
                    role: "user",
                    text: s,
                })
                .collect(),
            EmbeddingInput::Tokens(_) => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

impl Usage {
    pub fn new(prompt: u64, completion: u64) -> Self {
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
        }
    }
}

pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
