//! A tiny random-weight Llama, written by the tests themselves (there is no
//! internet here to download one): `config.json`, `model.safetensors`, a BPE
//! `tokenizer.json` and a `tokenizer_config.json` with a chat template, or
//! the same weights as one Q8_0 GGUF file with the tokenizer in its metadata.
//!
//! Why it looks like this:
//! - The vocabulary is printable ASCII and newline only. A random model
//!   over all 256 bytes emits invalid UTF-8, and the engine then streams
//!   nothing.
//! - The EOS row of the output head is zero while the other rows are large,
//!   so the model almost never ends on its own: tests that need a long
//!   stream (killing a worker mid-stream) get one, and tests that need an end
//!   use `max_tokens` or a stop string.
//! - GGUF's BPE tokenizer needs at least one merge, so there are a few.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// The model's dimensions. Matrix widths must be multiples of 32 (Q8_0
/// blocks in the GGUF variant).
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub hidden: usize,
    pub intermediate: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
}

impl Shape {
    fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }
}

/// What the tests use: loads in milliseconds, thousands of tokens/s.
pub const TINY: Shape = Shape {
    hidden: 64,
    intermediate: 128,
    layers: 2,
    heads: 4,
    kv_heads: 2,
};

/// For the benchmark: enough work per token that the engine, not the
/// plumbing, dominates (about 25 M parameters).
pub const SMALL: Shape = Shape {
    hidden: 512,
    intermediate: 1536,
    layers: 6,
    heads: 8,
    kv_heads: 4,
};

pub const CONTEXT: usize = 2048;

pub const UNK: &str = "<unk>";
pub const BOS: &str = "<s>";
pub const EOS: &str = "</s>";
const MERGES: [(&str, &str); 4] = [("t", "h"), ("e", "r"), ("i", "n"), ("th", "e")];

/// The chat template: plain markers, printable ASCII like the vocabulary.
pub const CHAT_TEMPLATE: &str = "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}";

/// Token strings in id order: specials, newline and the 95 printable
/// ASCII characters, then one token per merge; spelt the way GPT-2's
/// byte-level BPE spells bytes (space is `Ġ`, newline `Ċ`). Byte-level
/// decoding is what mistral.rs's grammar support (llguidance) requires.
fn vocab() -> Vec<String> {
    let mut v: Vec<String> = vec![UNK.into(), BOS.into(), EOS.into(), "\u{10A}".into()];
    for b in 0x20u8..=0x7e {
        v.push(if b == b' ' {
            "\u{120}".to_string()
        } else {
            (b as char).to_string()
        });
    }
    for (a, b) in MERGES {
        v.push(format!("{a}{b}"));
    }
    v
}

pub fn vocab_size() -> usize {
    vocab().len()
}

/// Named tensors in the Hugging Face Llama layout, `[rows, cols]` row-major.
struct Weights(Vec<(String, Vec<usize>, Vec<f32>)>);

fn weights(seed: u64, sh: &Shape) -> Weights {
    let (hidden, head_dim) = (sh.hidden, sh.head_dim());
    let mut rng = StdRng::seed_from_u64(seed);
    let v = vocab_size();
    let mut out = Vec::new();
    let mut mat = |name: String, rows: usize, cols: usize, scale: f32, rng: &mut StdRng| {
        let data = (0..rows * cols)
            .map(|_| rng.random_range(-scale..scale))
            .collect();
        out.push((name, vec![rows, cols], data));
    };
    // Scales keep activations of order one whatever the width, so the
    // output head stays decisive (see the module docs).
    let s = (1.0 / hidden as f32).sqrt() * 1.6;
    let (q, kv, inter) = (sh.heads * head_dim, sh.kv_heads * head_dim, sh.intermediate);
    mat("model.embed_tokens.weight".into(), v, hidden, 1.0, &mut rng);
    for l in 0..sh.layers {
        let p = format!("model.layers.{l}");
        mat(
            format!("{p}.self_attn.q_proj.weight"),
            q,
            hidden,
            s,
            &mut rng,
        );
        mat(
            format!("{p}.self_attn.k_proj.weight"),
            kv,
            hidden,
            s,
            &mut rng,
        );
        mat(
            format!("{p}.self_attn.v_proj.weight"),
            kv,
            hidden,
            s,
            &mut rng,
        );
        mat(
            format!("{p}.self_attn.o_proj.weight"),
            hidden,
            q,
            s,
            &mut rng,
        );
        mat(
            format!("{p}.mlp.gate_proj.weight"),
            inter,
            hidden,
            s,
            &mut rng,
        );
        mat(
            format!("{p}.mlp.up_proj.weight"),
            inter,
            hidden,
            s,
            &mut rng,
        );
        mat(
            format!("{p}.mlp.down_proj.weight"),
            hidden,
            inter,
            s,
            &mut rng,
        );
    }
    mat("lm_head.weight".into(), v, hidden, 1.0, &mut rng);
    // Norms at one; the EOS row of the head at zero (see the module docs).
    for l in 0..sh.layers {
        for n in ["input_layernorm", "post_attention_layernorm"] {
            out.push((
                format!("model.layers.{l}.{n}.weight"),
                vec![hidden],
                vec![1.0; hidden],
            ));
        }
    }
    out.push(("model.norm.weight".into(), vec![hidden], vec![1.0; hidden]));
    let head = out.iter_mut().find(|t| t.0 == "lm_head.weight").unwrap();
    let eos = vocab().iter().position(|t| t == EOS).unwrap();
    head.2[eos * hidden..(eos + 1) * hidden].fill(0.0);
    Weights(out)
}

fn config_json(sh: &Shape) -> Value {
    json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": sh.hidden,
        "intermediate_size": sh.intermediate,
        "num_hidden_layers": sh.layers,
        "num_attention_heads": sh.heads,
        "num_key_value_heads": sh.kv_heads,
        "vocab_size": vocab_size(),
        "max_position_embeddings": CONTEXT,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "bos_token_id": 1,
        "eos_token_id": 2,
        "tie_word_embeddings": false,
        "torch_dtype": "float32"
    })
}

/// The model's `tokenizer.json` as bytes: byte-level BPE over printable
/// ASCII, where text without `th`, `er` or `in` is one token per character.
pub fn tokenizer_json_bytes() -> Vec<u8> {
    serde_json::to_vec(&tokenizer_json()).expect("a JSON value serialises")
}

fn tokenizer_json() -> Value {
    let vocab = vocab();
    let ids: serde_json::Map<String, Value> = vocab
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), json!(i)))
        .collect();
    let added: Vec<Value> = [UNK, BOS, EOS]
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({"id": i, "content": t, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
        "model": {
            "type": "BPE",
            "dropout": null,
            "unk_token": UNK,
            "continuing_subword_prefix": null,
            "end_of_word_suffix": null,
            "fuse_unk": false,
            "byte_fallback": false,
            "ignore_merges": false,
            "vocab": ids,
            "merges": MERGES.iter().map(|(a, b)| format!("{a} {b}")).collect::<Vec<_>>()
        }
    })
}

fn tokenizer_config_json() -> Value {
    json!({
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": UNK,
        "add_bos_token": false,
        "model_max_length": CONTEXT,
        "chat_template": CHAT_TEMPLATE
    })
}

fn write_json(path: &Path, v: &Value) -> io::Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(v)?)
}

/// Writes the safetensors variant of the tiny model into `dir` (created
/// if missing) and returns the names of the files written.
pub fn write_safetensors_model(dir: &Path, seed: u64) -> io::Result<Vec<String>> {
    write_safetensors_model_shaped(dir, seed, &TINY)
}

pub fn write_safetensors_model_shaped(
    dir: &Path,
    seed: u64,
    shape: &Shape,
) -> io::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    write_json(&dir.join("config.json"), &config_json(shape))?;
    write_json(&dir.join("tokenizer.json"), &tokenizer_json())?;
    write_json(&dir.join("tokenizer_config.json"), &tokenizer_config_json())?;
    write_json(
        &dir.join("generation_config.json"),
        &json!({"bos_token_id": 1, "eos_token_id": 2}),
    )?;
    let Weights(tensors) = weights(seed, shape);
    write_safetensors(&dir.join("model.safetensors"), tensors)?;
    Ok(vec![
        "config.json".into(),
        "generation_config.json".into(),
        "model.safetensors".into(),
        "tokenizer.json".into(),
        "tokenizer_config.json".into(),
    ])
}

// --- An embedding model ------------------------------------------------------

/// Writes a tiny sentence-transformers embedding model (a Qwen3 body, mean
/// pooling, normalisation) into `dir`: what mistral.rs loads with its
/// embedding builder. Its tokenizer appends EOS, so every input has at least
/// two tokens (mistral.rs 0.8.1 cannot embed a single token).
pub fn write_embedding_model(dir: &Path, seed: u64) -> io::Result<()> {
    let sh = TINY;
    std::fs::create_dir_all(dir.join("1_Pooling"))?;
    write_json(
        &dir.join("config.json"),
        &json!({
            "architectures": ["Qwen3ForCausalLM"],
            "model_type": "qwen3",
            "vocab_size": vocab_size(),
            "hidden_size": sh.hidden,
            "intermediate_size": sh.intermediate,
            "num_hidden_layers": sh.layers,
            "num_attention_heads": sh.heads,
            "num_key_value_heads": sh.kv_heads,
            "head_dim": sh.head_dim(),
            "hidden_act": "silu",
            "max_position_embeddings": 512,
            "rms_norm_eps": 1e-6,
            "rope_theta": 10000.0,
            "sliding_window": null,
            "use_sliding_window": false,
            "max_window_layers": sh.layers,
            "tie_word_embeddings": true,
            "torch_dtype": "float32"
        }),
    )?;
    let mut tok = tokenizer_json();
    tok["post_processor"] = json!({
        "type": "TemplateProcessing",
        "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": EOS, "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}},
                 {"SpecialToken": {"id": EOS, "type_id": 1}}],
        "special_tokens": {EOS: {"id": EOS, "ids": [2], "tokens": [EOS]}}
    });
    write_json(&dir.join("tokenizer.json"), &tok)?;
    write_json(
        &dir.join("modules.json"),
        &json!([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
        ]),
    )?;
    write_json(
        &dir.join("1_Pooling/config.json"),
        &json!({
            "word_embedding_dimension": sh.hidden,
            "pooling_mode_cls_token": false,
            "pooling_mode_mean_tokens": true,
            "pooling_mode_max_tokens": false,
            "pooling_mode_mean_sqrt_len_tokens": false,
            "pooling_mode_weightedmean_tokens": false,
            "pooling_mode_lasttoken": false,
            "include_prompt": true
        }),
    )?;
    // The Llama body's tensors without the `model.` prefix and the head,
    // plus Qwen3's per-head query/key norms.
    let Weights(llama) = weights(seed, &sh);
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = llama
        .into_iter()
        .filter(|t| t.0 != "lm_head.weight")
        .map(|(n, shape, data)| (n.trim_start_matches("model.").to_string(), shape, data))
        .collect();
    for l in 0..sh.layers {
        for n in ["q_norm", "k_norm"] {
            tensors.push((
                format!("layers.{l}.self_attn.{n}.weight"),
                vec![sh.head_dim()],
                vec![1.0; sh.head_dim()],
            ));
        }
    }
    write_safetensors(&dir.join("model.safetensors"), tensors)
}

fn write_safetensors(path: &Path, tensors: Vec<(String, Vec<usize>, Vec<f32>)>) -> io::Result<()> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(n, shape, data)| {
            (
                n,
                shape,
                data.iter().flat_map(|f| f.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bytes
        .iter()
        .map(|(n, shape, b)| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b)
                    .expect("consistent tensor");
            (n.clone(), view)
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).map_err(io::Error::other)
}

// --- GGUF (version 3) -------------------------------------------------------

const GGUF_ALIGN: usize = 32;
const GGML_F32: u32 = 0;
const GGML_Q8_0: u32 = 8;

enum Kv {
    U32(u32),
    F32(f32),
    Str(String),
    Strs(Vec<String>),
    I32s(Vec<i32>),
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

fn put_kv(out: &mut Vec<u8>, key: &str, v: &Kv) {
    put_str(out, key);
    match v {
        Kv::U32(x) => {
            out.extend(4u32.to_le_bytes());
            out.extend(x.to_le_bytes());
        }
        Kv::F32(x) => {
            out.extend(6u32.to_le_bytes());
            out.extend(x.to_le_bytes());
        }
        Kv::Str(s) => {
            out.extend(8u32.to_le_bytes());
            put_str(out, s);
        }
        Kv::Strs(items) => {
            out.extend(9u32.to_le_bytes());
            out.extend(8u32.to_le_bytes());
            out.extend((items.len() as u64).to_le_bytes());
            for s in items {
                put_str(out, s);
            }
        }
        Kv::I32s(items) => {
            out.extend(9u32.to_le_bytes());
            out.extend(5u32.to_le_bytes());
            out.extend((items.len() as u64).to_le_bytes());
            for x in items {
                out.extend(x.to_le_bytes());
            }
        }
    }
}

/// Q8_0: blocks of 32 values, each an f16 scale and 32 signed bytes.
fn quantize_q8_0(data: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 32 * 34);
    for block in data.chunks(32) {
        let amax = block.iter().fold(0f32, |m, x| m.max(x.abs()));
        let d = amax / 127.0;
        let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
        out.extend(half::f16::from_f32(d).to_le_bytes());
        out.extend(
            block
                .iter()
                .map(|x| (x * inv).round().clamp(-127.0, 127.0) as i8 as u8),
        );
    }
    out
}

fn gguf_name(hf: &str) -> String {
    let hf = hf.strip_suffix(".weight").unwrap_or(hf);
    let name = match hf {
        "model.embed_tokens" => "token_embd".to_string(),
        "model.norm" => "output_norm".to_string(),
        "lm_head" => "output".to_string(),
        _ => {
            let rest = hf.strip_prefix("model.layers.").expect("layer tensor");
            let (l, part) = rest.split_once('.').unwrap();
            let part = match part {
                "self_attn.q_proj" => "attn_q",
                "self_attn.k_proj" => "attn_k",
                "self_attn.v_proj" => "attn_v",
                "self_attn.o_proj" => "attn_output",
                "mlp.gate_proj" => "ffn_gate",
                "mlp.up_proj" => "ffn_up",
                "mlp.down_proj" => "ffn_down",
                "input_layernorm" => "attn_norm",
                "post_attention_layernorm" => "ffn_norm",
                other => panic!("unmapped tensor {other}"),
            };
            format!("blk.{l}.{part}")
        }
    };
    format!("{name}.weight")
}

/// Writes the same model as one GGUF file `dir/file_name` (matrices Q8_0,
/// norms F32, tokenizer and chat template in the metadata).
pub fn write_gguf_model(dir: &Path, file_name: &str, seed: u64) -> io::Result<()> {
    let sh = TINY;
    std::fs::create_dir_all(dir)?;
    let vocab = vocab();
    let mut token_types = vec![1i32; vocab.len()];
    token_types[0] = 2; // unknown
    token_types[1] = 3; // control
    token_types[2] = 3;
    let kvs: Vec<(&str, Kv)> = vec![
        ("general.architecture", Kv::Str("llama".into())),
        ("general.name", Kv::Str("sluice-tiny-llama".into())),
        ("general.file_type", Kv::U32(7)), // mostly Q8_0
        ("general.alignment", Kv::U32(GGUF_ALIGN as u32)),
        ("llama.context_length", Kv::U32(CONTEXT as u32)),
        ("llama.embedding_length", Kv::U32(sh.hidden as u32)),
        ("llama.block_count", Kv::U32(sh.layers as u32)),
        ("llama.feed_forward_length", Kv::U32(sh.intermediate as u32)),
        ("llama.attention.head_count", Kv::U32(sh.heads as u32)),
        ("llama.attention.head_count_kv", Kv::U32(sh.kv_heads as u32)),
        ("llama.rope.dimension_count", Kv::U32(sh.head_dim() as u32)),
        ("llama.attention.layer_norm_rms_epsilon", Kv::F32(1e-5)),
        ("llama.rope.freq_base", Kv::F32(10000.0)),
        ("tokenizer.ggml.model", Kv::Str("gpt2".into())),
        ("tokenizer.ggml.tokens", Kv::Strs(vocab.clone())),
        ("tokenizer.ggml.token_type", Kv::I32s(token_types)),
        (
            "tokenizer.ggml.merges",
            Kv::Strs(MERGES.iter().map(|(a, b)| format!("{a} {b}")).collect()),
        ),
        ("tokenizer.ggml.unknown_token_id", Kv::U32(0)),
        ("tokenizer.ggml.bos_token_id", Kv::U32(1)),
        ("tokenizer.ggml.eos_token_id", Kv::U32(2)),
        ("tokenizer.chat_template", Kv::Str(CHAT_TEMPLATE.into())),
    ];

    let Weights(tensors) = weights(seed, &sh);
    let mut infos = Vec::new();
    let mut data = Vec::new();
    for (name, shape, values) in &tensors {
        let (ty, bytes) = if shape.len() == 2 {
            (GGML_Q8_0, quantize_q8_0(values))
        } else {
            (
                GGML_F32,
                values.iter().flat_map(|f| f.to_le_bytes()).collect(),
            )
        };
        while data.len() % GGUF_ALIGN != 0 {
            data.push(0);
        }
        let offset = data.len() as u64;
        data.extend(bytes);
        // GGUF lists dimensions innermost first.
        let dims: Vec<u64> = shape.iter().rev().map(|d| *d as u64).collect();
        infos.push((gguf_name(name), dims, ty, offset));
    }

    let mut out = Vec::new();
    out.extend(b"GGUF");
    out.extend(3u32.to_le_bytes());
    out.extend((infos.len() as u64).to_le_bytes());
    out.extend((kvs.len() as u64).to_le_bytes());
    for (k, v) in &kvs {
        put_kv(&mut out, k, v);
    }
    for (name, dims, ty, offset) in &infos {
        put_str(&mut out, name);
        out.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            out.extend(d.to_le_bytes());
        }
        out.extend(ty.to_le_bytes());
        out.extend(offset.to_le_bytes());
    }
    while out.len() % GGUF_ALIGN != 0 {
        out.push(0);
    }
    out.extend(data);
    let mut f = std::fs::File::create(dir.join(file_name))?;
    f.write_all(&out)?;
    f.sync_all()
}

/// Size and SHA-256 of every file in `dir` (what a hub listing reports).
pub fn file_digests(dir: &Path) -> io::Result<HashMap<String, (u64, String)>> {
    use sha2::{Digest, Sha256};
    let mut out = HashMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            let bytes = std::fs::read(entry.path())?;
            out.insert(
                entry.file_name().to_string_lossy().into_owned(),
                (bytes.len() as u64, hex::encode(Sha256::digest(&bytes))),
            );
        }
    }
    Ok(out)
}
