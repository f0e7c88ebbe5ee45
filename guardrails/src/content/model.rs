//! The trained category models (`assets/content/categories.bin`, written by
//! `training/content/build.py`): per category a logistic regression over
//! hashed unigram and bigram keys (binary, scaled by 1/sqrt(distinct
//! keys)), lexicon classes folded into the keys' weights, and the toxicity
//! score. Scores match the Python scorer to about 1e-6 (unit test against
//! `training/content/category_reference.json`).

const ASSET: &[u8] = include_bytes!("../../assets/content/categories.bin");
const CATEGORIES: usize = 5;

/// The model probability at which a category fires. Chosen on the
/// hand-written set of hard negatives ("kill the zombie process", "breast
/// cancer"): at 0.5 the models flag them; at 0.9 they keep precision ≥ 0.8
/// on the public held-out data and still multiply recall (README).
pub const DECISION: f32 = 0.9;

/// Maps a model probability onto the filters' scale, where 0.5 is the
/// default threshold: [0, DECISION) → [0, 0.5), [DECISION, 1] → [0.5, 1].
pub fn rescale(p: f32) -> f32 {
    if p >= DECISION {
        0.5 + 0.5 * (p - DECISION) / (1.0 - DECISION)
    } else {
        0.5 * p / DECISION
    }
}

pub struct Model {
    bias: [f32; CATEGORIES],
    toxicity: [f32; CATEGORIES],
    weights: crate::fx::FxMap<u64, [f32; CATEGORIES]>,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a 64, continuing from `h`.
fn fnv(h: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(h, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Distinct unigram and bigram keys of lowercased text; tokens are runs of
/// two or more word characters (Python's `(?u)\b\w\w+\b`).
fn keys(lower: &str, out: &mut Vec<u64>) {
    out.clear();
    let mut prev: Option<u64> = None;
    for token in lower
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|t| t.chars().nth(1).is_some())
    {
        let h = fnv(FNV_OFFSET, token.as_bytes());
        out.push(h);
        if let Some(p) = prev {
            out.push(fnv(fnv(p, b" "), token.as_bytes()));
        }
        prev = Some(h);
    }
    out.sort_unstable();
    out.dedup();
}

fn f32s<const N: usize>(bytes: &[u8], at: &mut usize) -> [f32; N] {
    let mut out = [0f32; N];
    for x in &mut out {
        *x = f32::from_le_bytes(bytes[*at..*at + 4].try_into().expect("f32"));
        *at += 4;
    }
    out
}

impl Model {
    pub fn load() -> Model {
        let b = ASSET;
        assert_eq!(&b[..4], b"SLCC", "categories.bin: bad magic");
        let n = u32::from_le_bytes(b[4..8].try_into().expect("count")) as usize;
        assert_eq!(n, CATEGORIES, "categories.bin: five categories");
        let mut at = 8;
        let bias = f32s(b, &mut at);
        let toxicity = f32s(b, &mut at);
        let keys = u32::from_le_bytes(b[at..at + 4].try_into().expect("keys")) as usize;
        at += 4;
        let mut weights = crate::fx::FxMap::with_capacity_and_hasher(keys, Default::default());
        for _ in 0..keys {
            let k = u64::from_le_bytes(b[at..at + 8].try_into().expect("key"));
            at += 8;
            weights.insert(k, f32s(b, &mut at));
        }
        Model {
            bias,
            toxicity,
            weights,
        }
    }

    /// Probabilities per category (indexed like `Category::ALL`) for
    /// lowercased text whose toxicity score is `toxicity`.
    pub fn scores(&self, lower: &str, toxicity: f32) -> [f32; CATEGORIES] {
        thread_local! {
            static KEYS: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        KEYS.with(|k| {
            let mut ks = k.borrow_mut();
            keys(lower, &mut ks);
            let norm = if ks.is_empty() {
                0.0
            } else {
                1.0 / (ks.len() as f64).sqrt()
            };
            let mut z: [f64; CATEGORIES] = std::array::from_fn(|i| {
                f64::from(self.bias[i]) + f64::from(self.toxicity[i]) * f64::from(toxicity)
            });
            for key in ks.iter() {
                if let Some(w) = self.weights.get(key) {
                    for i in 0..CATEGORIES {
                        z[i] += f64::from(w[i]) * norm;
                    }
                }
            }
            z.map(|z| (1.0 / (1.0 + (-z).exp())) as f32)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Python scorer's outputs (build.py writes them) for a few texts,
    /// with the toxicity the Rust toxicity model gives them.
    #[test]
    fn scores_match_the_python_exporter() {
        let reference: serde_json::Value = serde_json::from_str(include_str!(
            "../../training/content/category_reference.json"
        ))
        .unwrap();
        let model = Model::load();
        let toxicity = crate::content::Classifier::new();
        for (text, want) in reference.as_object().unwrap() {
            let lower = text.to_lowercase();
            let got = model.scores(&lower, toxicity.toxicity(text));
            for (i, w) in want.as_array().unwrap().iter().enumerate() {
                let w = w.as_f64().unwrap() as f32;
                assert!(
                    (got[i] - w).abs() < 2e-3,
                    "{text:?} category {i}: rust {} python {w}",
                    got[i]
                );
            }
        }
    }

    #[test]
    fn rescaling_puts_the_decision_point_at_one_half() {
        assert!((rescale(DECISION) - 0.5).abs() < 1e-6);
        assert!(rescale(DECISION - 0.01) < 0.5);
        assert_eq!(rescale(1.0), 1.0);
        assert_eq!(rescale(0.0), 0.0);
    }
}
