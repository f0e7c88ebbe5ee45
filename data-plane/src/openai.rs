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

/// A piece of a request's text that a policy may inspect and rewrite, with
/// the role of the message it came from. What counts as a request's text is
/// decided here, next to the request types, for every endpoint.
pub struct Text<'a> {
    pub role: &'a str,
    pub text: &'a mut String,
}

impl ChatRequest {
    /// The texts policies see: every message's text parts.
    pub fn texts_mut(&mut self) -> Vec<Text<'_>> {
        let mut out = Vec::new();
        for m in &mut self.messages {
            let role = m.role.as_str();
            match &mut m.content {
                Some(Content::Text(s)) => out.push(Text { role, text: s }),
                Some(Content::Parts(parts)) => {
                    for p in parts.iter_mut() {
                        if let Some(serde_json::Value::String(s)) = p.get_mut("text") {
                            out.push(Text { role, text: s });
                        }
                    }
                }
                None => {}
            }
        }
        out
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
