//! Hugging Face feature-extraction (bare `provider: huggingface` + `model`):
//! `{"inputs": [...]}` → one vector per input, mean-pooled when the model
//! returns one vector per token, answered in the OpenAI embeddings shape.

use std::sync::Arc;

use base64::Engine;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::target::{self, TargetRuntime};
use super::{http, json_body};
use crate::error::ApiError;
use crate::openai::EmbeddingsRequest;
use crate::settings::Settings;
use sluice_proto::pack::Target;

/// The feature-extraction URL: `base_url` as written, else the model's
/// serverless URL.
pub fn url(spec: &Target, settings: &Settings) -> String {
    match target::base_url(spec) {
        Some(b) => b.to_string(),
        None => match settings.serverless() {
            crate::settings::Serverless::Router(_) => format!(
                "{}/pipeline/feature-extraction",
                target::serverless_model(spec, settings)
            ),
            crate::settings::Serverless::Legacy(_) => target::serverless_model(spec, settings),
        },
    }
}

pub async fn embeddings(
    client: &crate::providers::http::Client,
    target: &Arc<TargetRuntime>,
    url: &http::Endpoint,
    req: &EmbeddingsRequest,
) -> Result<Value, ApiError> {
    let inputs = req.text_inputs(&format!("target '{}' (feature-extraction)", target.spec.id))?;
    if inputs.is_empty() {
        return Err(ApiError::InvalidParam {
            message: "input must not be empty".into(),
            param: "input",
        });
    }
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::InvalidParam {
                message: format!("encoding_format '{other}' is not one of float, base64"),
                param: "encoding_format",
            });
        }
    };
    let deadline = Instant::now() + target.spec.timeout;
    let body = http::json(&json!({ "inputs": inputs }))?;
    let resp = http::post(client, target, url, body, deadline).await?;
    let (body, _) = json_body(target, resp, deadline).await?;
    let vectors = vectors(&body, inputs.len()).ok_or_else(|| {
        ApiError::Upstream(format!(
            "target '{}' answered feature-extraction with an unexpected shape",
            target.spec.id
        ))
    })?;
    let data: Vec<Value> = vectors
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    // Feature-extraction reports no token counts: the handler fills in the
    // usage the gateway counts (see `counting`).
    Ok(json!({"object": "list", "data": data, "model": target.spec.model}))
}

/// One vector per input, from a `[n][dim]` answer, a `[n][tokens][dim]`
/// answer (mean-pooled) or, for one input, a bare `[dim]` vector.
fn vectors(body: &Value, n: usize) -> Option<Vec<Vec<f32>>> {
    let depth = {
        let mut d = 0;
        let mut cur = body;
        while let Some(first) = cur.as_array().and_then(|a| a.first()) {
            d += 1;
            cur = first;
        }
        d
    };
    let out: Vec<Vec<f32>> = match depth {
        1 if n == 1 => vec![floats(body)?],
        2 => body.as_array()?.iter().map(floats).collect::<Option<_>>()?,
        3 => body
            .as_array()?
            .iter()
            .map(mean_pool)
            .collect::<Option<_>>()?,
        _ => return None,
    };
    (out.len() == n).then_some(out)
}

fn floats(v: &Value) -> Option<Vec<f32>> {
    v.as_array()?
        .iter()
        .map(|x| x.as_f64().map(|f| f as f32))
        .collect()
}

fn mean_pool(tokens: &Value) -> Option<Vec<f32>> {
    let rows: Vec<Vec<f32>> = tokens
        .as_array()?
        .iter()
        .map(floats)
        .collect::<Option<_>>()?;
    let dim = rows.first()?.len();
    if rows.iter().any(|r| r.len() != dim) {
        return None;
    }
    let mut sum = vec![0f32; dim];
    for r in &rows {
        for (s, x) in sum.iter_mut().zip(r) {
            *s += x;
        }
    }
    Some(sum.into_iter().map(|s| s / rows.len() as f32).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentence_level_token_level_and_bare_vectors() {
        assert_eq!(
            vectors(&json!([[1.0, 2.0], [3.0, 4.0]]), 2),
            Some(vec![vec![1.0, 2.0], vec![3.0, 4.0]])
        );
        assert_eq!(
            vectors(&json!([[[1.0, 2.0], [3.0, 6.0]]]), 1),
            Some(vec![vec![2.0, 4.0]])
        );
        assert_eq!(vectors(&json!([0.5, 0.25]), 1), Some(vec![vec![0.5, 0.25]]));
        assert_eq!(
            vectors(&json!([[1.0], [2.0]]), 3),
            None,
            "count mismatch must be refused"
        );
        assert_eq!(vectors(&json!({"error": "x"}), 1), None);
    }
}
