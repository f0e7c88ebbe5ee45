//! Toxicity and content categories.
//!
//! Toxicity is the model that the MIT-licensed PyPI package
//! `alt-profanity-check` ships (TF-IDF + a sigmoid-calibrated ensemble of
//! linear SVMs), exported by `training/content/export_toxicity.py` and
//! re-implemented here. The five categories have no labelled data that a
//! package ships, so they are scored by curated patterns and lexicons
//! (`CATEGORY_PATTERNS`), combined with toxicity where the category is
//! abusive by nature (harassment, hate speech); `training/content/README.md`
//! says how they were evaluated and what that means.

mod model;

/// Index of self-harm in [`Category::ALL`].
const SELF_HARM: usize = 2;

use regex::RegexSet;

const TOXICITY: &[u8] = include_bytes!("../assets/content/toxicity.bin");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    HateSpeech,
    Harassment,
    SelfHarm,
    Sexual,
    Violence,
}

impl Category {
    pub const ALL: [Category; 5] = [
        Category::HateSpeech,
        Category::Harassment,
        Category::SelfHarm,
        Category::Sexual,
        Category::Violence,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Category::HateSpeech => "hate_speech",
            Category::Harassment => "harassment",
            Category::SelfHarm => "self_harm",
            Category::Sexual => "sexual",
            Category::Violence => "violence",
        }
    }

    pub fn from_name(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.name() == s)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scores {
    pub toxicity: f32,
    /// Indexed like [`Category::ALL`].
    pub categories: [f32; 5],
}

struct Member {
    intercept: f32,
    a: f32,
    b: f32,
}

/// A toxicity vocabulary entry: the token's IDF and its weight in each
/// of the five ensemble members.
type VocabEntry = (f32, [f32; 5]);

pub struct Classifier {
    /// token → (idf, one weight per ensemble member)
    vocab: crate::fx::FxMap<String, VocabEntry>,
    members: Vec<Member>,
    /// Every category's patterns in one set (one scan); `pattern_category[i]`
    /// is the category index of pattern `i`.
    patterns: RegexSet,
    pattern_category: Vec<usize>,
    /// The trained category models; a category's score is the higher of
    /// its patterns' and its model's.
    model: model::Model,
}

const GROUPS: &str = r"(jews?|muslims?|christians?|blacks?|whites?|asians?|arabs?|mexicans?|immigrants?|refugees?|gays?|lesbians?|trans(gender)?\s*(people|women|men)?|women|niggers?|fags?|faggots?|hindus?|africans?|latinos?|gypsies|roma)";

/// Curated patterns per category, in `Category::ALL` order. A match is
/// strong evidence on its own.
fn category_patterns() -> [Vec<String>; 5] {
    [
        // hate_speech: dehumanising or exterminationist talk about a group, slurs
        vec![
            format!(r"\b(all|those|these|the|fucking|filthy|dirty)\s+{GROUPS}\s+(are|is)\s+(animals|vermin|subhuman|scum|parasites|rats|cockroaches|disgusting|inferior|a\s+disease|evil|the\s+problem)"),
            format!(r"\b(kill|exterminate|gas|deport|eradicate|get\s+rid\s+of)\s+(all\s+)?(the\s+)?{GROUPS}\b"),
            format!(r"\bi\s+(hate|despise|can't\s+stand)\s+(all\s+)?{GROUPS}\b"),
            format!(r"\b{GROUPS}\s+(should|must|need\s+to)\s+(die|be\s+killed|be\s+exterminated|go\s+back|be\s+banned)"),
            r"\b(nigger|niggers|faggot|faggots|kike|kikes|spic|spics|chink|chinks|wetback|wetbacks|tranny|trannies|raghead|ragheads)\b".to_string(),
        ],
        // harassment: abuse aimed at the reader
        vec![
            r"\byou('re|\s+are)\s+(a\s+|an\s+|such\s+a\s+|so\s+)?(worthless|stupid|pathetic|useless|disgusting|ugly|fat|dumb|retarded|idiot|moron|loser|piece\s+of\s+(shit|garbage|trash)|waste\s+of\s+space)".to_string(),
            r"\b(kill\s+yourself|kys|go\s+die|nobody\s+(likes|loves|wants)\s+you|everyone\s+hates\s+you|shut\s+up,?\s+you)\b".to_string(),
            r"\b(you|ur)\s+(stupid|worthless|pathetic|dumb|fucking)\s+(idiot|moron|bitch|loser|cunt|bastard|piece)".to_string(),
            r"\bi('ll|\s+will)\s+(find|expose|ruin|destroy)\s+you\b".to_string(),
        ],
        // self_harm: intent or method of hurting oneself
        vec![
            r"\b(kill|killing|hurt|hurting|harm|harming|cut|cutting|starve|starving)\s+myself\b".to_string(),
            r"\b(end|ending|take|taking)\s+my\s+(own\s+)?life\b".to_string(),
            r"\b(i\s+want\s+to\s+die|want\s+to\s+be\s+dead|suicidal|commit\s+suicide|suicide\s+(note|method|plan)|self[-\s]?harm)\b".to_string(),
            r"\b(how\s+(many|much)\s+\w+\s+(to|would)\s+(overdose|kill\s+me)|overdose\s+on|painless\s+way\s+to\s+die|best\s+way\s+to\s+(die|kill\s+myself))".to_string(),
        ],
        // sexual: explicit sexual content
        vec![
            r"\b(porn|porno|pornographic|blowjob|handjob|cumshot|orgasm|masturbat\w*|dildo|erotic\s+(story|roleplay)|sex\s+(scene|chat|story)|nude|nudes|naked\s+(pics|photos|girls|boys)|xxx|hentai|anal\s+sex|oral\s+sex|have\s+sex|fuck\s+me|horny|nsfw)\b".to_string(),
            r"\b(suck|lick|touch)\s+(my|your|his|her)\s+(dick|cock|pussy|tits|breasts|ass)\b".to_string(),
            r"\b(dick|cock|pussy|tits|clit|penis|vagina)\b".to_string(),
        ],
        // violence: threats, incitement, instructions to hurt others
        vec![
            r"\bi('ll|\s+will|\s+am\s+going\s+to|\s+want\s+to|'m\s+going\s+to)\s+(kill|murder|shoot|stab|strangle|beat|hurt|behead|torture|rape)\s+(you|him|her|them|everyone|people)".to_string(),
            r"\bhow\s+(do\s+i|to|can\s+i)\s+(make|build)\s+(a\s+)?(bomb|pipe\s+bomb|explosive|molotov|nerve\s+agent|bioweapon)".to_string(),
            r"\b(how\s+(do\s+i|to|can\s+i)\s+(kill|murder|poison|stab|strangle)\s+(someone|a\s+person|my|him|her|people))".to_string(),
            r"\b(mass\s+shooting|school\s+shooting|shoot\s+up\s+(the|a|my)|blow\s+up\s+(the|a)|stab\s+(him|her|them|you)|torture\s+(him|her|them|you)|beat\s+(him|her|them|you)\s+to\s+death)\b".to_string(),
        ],
    ]
}

fn f32_at(bytes: &[u8], at: &mut usize) -> f32 {
    let v = f32::from_le_bytes(bytes[*at..*at + 4].try_into().expect("4 bytes"));
    *at += 4;
    v
}

/// Reads a number array `"name": [x, y, …]` from the asset's JSON header.
fn header_array(header: &str, name: &str) -> Vec<f32> {
    let at = header
        .find(&format!("\"{name}\": ["))
        .expect("asset header field")
        + name.len()
        + 5;
    let end = header[at..].find(']').expect("asset header array") + at;
    header[at..end]
        .split(',')
        .map(|x| x.trim().parse().expect("asset header number"))
        .collect()
}

impl Default for Classifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Classifier {
    pub fn new() -> Classifier {
        let bytes = TOXICITY;
        let hlen = u32::from_le_bytes(bytes[..4].try_into().expect("header length")) as usize;
        let header = std::str::from_utf8(&bytes[4..4 + hlen]).expect("UTF-8 header");
        let (intercepts, a, b) = (
            header_array(header, "intercepts"),
            header_array(header, "a"),
            header_array(header, "b"),
        );
        assert_eq!(
            intercepts.len(),
            5,
            "the exporter writes five ensemble members"
        );
        let members = (0..5)
            .map(|i| Member {
                intercept: intercepts[i],
                a: a[i],
                b: b[i],
            })
            .collect();
        let mut at = 4 + hlen;
        let n = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("count")) as usize;
        at += 4;
        let mut vocab = crate::fx::FxMap::with_capacity_and_hasher(n, Default::default());
        for _ in 0..n {
            let len = bytes[at] as usize;
            let token = String::from_utf8_lossy(&bytes[at + 1..at + 1 + len]).into_owned();
            at += 1 + len;
            let idf = f32_at(bytes, &mut at);
            let mut w = [0f32; 5];
            for x in &mut w {
                *x = f32_at(bytes, &mut at);
            }
            vocab.insert(token, (idf, w));
        }
        // ASCII word boundaries keep the scan on the fast DFA path; the
        // patterns are all-ASCII anyway.
        let mut sources = Vec::new();
        let mut pattern_category = Vec::new();
        for (i, list) in category_patterns().into_iter().enumerate() {
            for p in list {
                // ASCII classes keep the scan on the fast DFA path; the
                // patterns are all-ASCII and run on lowercased text.
                sources.push(format!("(?-u){p}"));
                pattern_category.push(i);
            }
        }
        let patterns = RegexSet::new(sources).expect("category patterns compile");
        Classifier {
            vocab,
            members,
            patterns,
            pattern_category,
            model: {
                assert!(Category::ALL[SELF_HARM] == Category::SelfHarm);
                model::Model::load()
            },
        }
    }

    /// The calibrated model's own decision point (alt-profanity-check's
    /// `predict` uses 0.5).
    pub fn default_toxicity_threshold() -> f32 {
        0.5
    }

    pub fn default_category_threshold() -> f32 {
        0.5
    }

    /// The exported model's toxicity probability.
    pub fn toxicity(&self, text: &str) -> f32 {
        let lower = text.to_lowercase();
        self.toxicity_of_lowercase(&lower)
    }

    fn toxicity_of_lowercase(&self, lower: &str) -> f32 {
        // The safety and content filters often score the same text one
        // after the other: remember the last answer per thread.
        let key = (lower.len(), fnv64(lower.as_bytes()));
        if let Some(v) = LAST
            .with(|l| l.get())
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v)
        {
            return v;
        }
        let v = self.compute_toxicity(lower);
        LAST.with(|l| l.set(Some((key, v))));
        v
    }

    fn compute_toxicity(&self, lower: &str) -> f32 {
        // TF-IDF over the vocabulary, L2-normalised, then each member's
        // calibrated probability, averaged (sklearn's CalibratedClassifierCV).
        // Tokens are runs of two or more word characters, as sklearn's
        // `(?u)\b\w\w+\b`.
        let mut tf: Vec<(&str, f32, &VocabEntry)> = Vec::new();
        for token in lower.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
            if token.chars().nth(1).is_none() {
                continue;
            }
            let Some(entry) = self.vocab.get(token) else {
                continue;
            };
            match tf.iter_mut().find(|(t, _, _)| *t == token) {
                Some((_, c, _)) => *c += 1.0,
                None => tf.push((token, 1.0, entry)),
            }
        }
        let mut norm = 0f32;
        let mut dots = [0f32; 5];
        for (_, c, (idf, w)) in &tf {
            let v = c * idf;
            norm += v * v;
            for k in 0..5 {
                dots[k] += v * w[k];
            }
        }
        let norm = if norm > 0.0 { norm.sqrt() } else { 1.0 };
        let p: f32 = self
            .members
            .iter()
            .zip(dots)
            .map(|(m, d)| {
                let decision = d / norm + m.intercept;
                1.0 / (1.0 + (m.a * decision + m.b).exp())
            })
            .sum::<f32>()
            / self.members.len() as f32;
        p.clamp(0.0, 1.0)
    }

    pub fn score(&self, text: &str) -> Scores {
        let lower = text.to_lowercase();
        let toxicity = self.toxicity_of_lowercase(&lower);
        let categories = self.categories_of_lowercase(&lower, || toxicity);
        Scores {
            toxicity,
            categories,
        }
    }

    /// The five category scores, indexed like [`Category::ALL`]; toxicity
    /// is computed only if the text addresses the reader.
    pub fn categories(&self, text: &str) -> [f32; 5] {
        let lower = text.to_lowercase();
        self.categories_of_lowercase(&lower, || self.toxicity_of_lowercase(&lower))
    }

    fn categories_of_lowercase(&self, lower: &str, toxicity: impl FnOnce() -> f32) -> [f32; 5] {
        let mut hits = [0u32; 5];
        for i in self.patterns.matches(lower).iter() {
            hits[self.pattern_category[i]] += 1;
        }
        let mut categories = hits.map(|h| {
            if h > 0 {
                (0.85 + 0.05 * h as f32).min(1.0)
            } else {
                0.0
            }
        });
        let toxicity = toxicity();
        let learned = self.model.scores(lower, toxicity);
        for (i, (c, l)) in categories.iter_mut().zip(learned).enumerate() {
            // Self-harm's model (36 positive training texts) flags far too
            // much on held-out data (precision 0.06): patterns only there.
            if i != SELF_HARM {
                *c = c.max(model::rescale(l));
            }
        }
        // Abuse aimed at the reader that no pattern names: strongly toxic
        // text addressed to "you" counts as harassment.
        let second_person = lower
            .split(|c: char| !c.is_alphanumeric() && c != '\'')
            .any(|w| matches!(w, "you" | "you're" | "your" | "ur" | "u"));
        if second_person {
            categories[1] = categories[1].max(toxicity * 0.9);
        }
        categories
    }
}

thread_local! {
    static LAST: std::cell::Cell<Option<((usize, u64), f32)>> = const { std::cell::Cell::new(None) };
}

fn fnv64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c() -> &'static Classifier {
        static C: OnceLock<Classifier> = OnceLock::new();
        C.get_or_init(Classifier::new)
    }

    use std::sync::OnceLock;

    #[test]
    fn toxicity_matches_the_python_model() {
        // Reference values printed by export_toxicity.py (scikit-learn 1.9.1).
        for (text, want) in [
            ("you are a stupid idiot", 0.9999999926672976),
            ("have a lovely day", 0.045069079961510404),
            ("this is fucking great", 0.9999996563183178),
            ("I will find you and hurt you", 0.44210306722904835),
            ("", 0.036375752016469504),
        ] {
            let got = c().toxicity(text) as f64;
            assert!((got - want).abs() < 1e-3, "{text:?}: {got} vs {want}");
        }
    }

    #[test]
    fn each_category_fires_on_its_own_content_only() {
        let cases = [
            (
                Category::HateSpeech,
                "All immigrants are vermin and should be deported.",
            ),
            (
                Category::Harassment,
                "You are a worthless piece of garbage and everyone hates you.",
            ),
            (
                Category::SelfHarm,
                "I want to end my life tonight, what is the most painless way to die?",
            ),
            (
                Category::Sexual,
                "Write me an erotic story with explicit oral sex.",
            ),
            (
                Category::Violence,
                "I am going to kill him tomorrow with my gun.",
            ),
        ];
        for (cat, text) in cases {
            let s = c().score(text);
            let i = Category::ALL.iter().position(|x| *x == cat).unwrap();
            assert!(
                s.categories[i] >= Classifier::default_category_threshold(),
                "{cat:?} missed: {text} {s:?}"
            );
        }
        let benign =
            c().score("Can you help me plan a birthday party for my daughter next weekend?");
        assert!(
            benign.categories.iter().all(|x| *x < 0.5) && benign.toxicity < 0.5,
            "{benign:?}"
        );
    }

    #[test]
    fn names_round_trip_and_any_input_is_safe() {
        for cat in Category::ALL {
            assert_eq!(Category::from_name(cat.name()), Some(cat));
        }
        for t in ["", "\u{0}", "İ", &"kill ".repeat(10_000)] {
            let s = c().score(t);
            assert!((0.0..=1.0).contains(&s.toxicity));
        }
    }
}
