//! Token counting for upstreams that report no usage: the target model's
//! own `tokenizer.json`, fetched from the Hugging Face Hub into the standard
//! cache, or one token per four bytes while there is none.
//!
//! Why it looks like this:
//! - Fetching is never on the request path. A target that names a tokenizer
//!   asks for it when its config version is built; a background task
//!   downloads and parses it, and until it is ready the request is counted
//!   by the estimate and says so (`usage_source: estimate`).
//! - Tokenizers outlive config versions: every version that names the same
//!   `repo@revision` shares one, and the fetch stops retrying once no
//!   version names it any more (the task holds only a weak reference).
//! - The hub, its token and its cache follow `hf-hub`'s rules (`HF_ENDPOINT`,
//!   `HF_TOKEN`, `HF_HOME`/`HF_HUB_CACHE`); a Hugging Face target's own
//!   secret is sent as the token, no other target's secret ever is. When the
//!   hub cannot be reached, a copy already in the cache is used.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex, OnceLock, Weak};
use std::time::Duration;

use sluice_proto::pack::TokenizerSource;
use tokenizers::Tokenizer;

/// Where a request's usage came from, as audit records and spans say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The upstream reported it.
    Upstream,
    /// Counted here with the target model's tokenizer.
    Tokenizer,
    /// One token per four bytes of text: no tokenizer (yet).
    Estimate,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Upstream => "upstream",
            Source::Tokenizer => "tokenizer",
            Source::Estimate => "estimate",
        }
    }
}

/// One tokenizer, ready or still being fetched; targets hold it.
#[derive(Debug)]
pub struct Handle {
    source: TokenizerSource,
    ready: OnceLock<Arc<Tokenizer>>,
    /// The Hub token for the next attempt: the latest a Hugging Face
    /// target naming this tokenizer brought (a rotated secret is used at
    /// the next retry). Never logged.
    token: Mutex<Option<String>>,
}

impl Handle {
    /// The tokenizer, once fetched.
    pub fn get(&self) -> Option<&Tokenizer> {
        self.ready.get().map(|t| t.as_ref())
    }

    /// `repo@revision`, for logs.
    pub fn name(&self) -> String {
        match &self.source.revision {
            Some(r) => format!("{}@{r}", self.source.repo),
            None => self.source.repo.clone(),
        }
    }
}

/// The most of one text that is tokenized: counting runs on the request
/// path, so a huge text is counted on its first 64 KiB and the rest is
/// scaled from that sample's bytes per token.
pub const COUNT_LIMIT: usize = 64 << 10;

/// Tokens in `texts` by `tokenizer`, without special tokens: the texts the
/// request carried, not the chat template's markers around them.
pub fn count(tokenizer: &Tokenizer, texts: &[String]) -> Option<u64> {
    let mut n = 0u64;
    for t in texts {
        let mut cut = t.len().min(COUNT_LIMIT);
        while !t.is_char_boundary(cut) {
            cut -= 1;
        }
        let sample = tokenizer.encode_fast(&t[..cut], false).ok()?.len() as u64;
        n += if cut == t.len() || cut == 0 {
            sample
        } else {
            (sample as f64 * t.len() as f64 / cut as f64).ceil() as u64
        };
    }
    Some(n)
}

/// The estimate used when no tokenizer is ready.
pub fn estimate(bytes: usize) -> u64 {
    bytes.div_ceil(4) as u64
}

static REGISTRY: LazyLock<Mutex<HashMap<TokenizerSource, Weak<Handle>>>> =
    LazyLock::new(Default::default);

/// The shared handle for `source`, starting its fetch if no live config
/// version has asked for it yet. `token`: the target's Hugging Face token.
pub fn want(source: &TokenizerSource, token: Option<String>) -> Arc<Handle> {
    let mut map = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(h) = map.get(source).and_then(Weak::upgrade) {
        if token.is_some() {
            *h.token.lock().unwrap_or_else(|e| e.into_inner()) = token;
        }
        return h;
    }
    let handle = Arc::new(Handle {
        source: source.clone(),
        ready: OnceLock::new(),
        token: Mutex::new(token),
    });
    map.insert(source.clone(), Arc::downgrade(&handle));
    map.retain(|_, w| w.strong_count() > 0);
    // Versions are built inside the runtime; a unit test without one simply
    // never gets a tokenizer and counts by the estimate.
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(fetch_until_ready(Arc::downgrade(&handle)));
    }
    handle
}

const FIRST_RETRY: Duration = Duration::from_secs(2);
const LAST_RETRY: Duration = Duration::from_secs(300);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);

async fn fetch_until_ready(handle: Weak<Handle>) {
    let mut delay = FIRST_RETRY;
    let mut attempt = 0u32;
    loop {
        let Some(h) = handle.upgrade() else { return };
        let source = h.source.clone();
        let name = h.name();
        let token = h.token.lock().unwrap_or_else(|e| e.into_inner()).clone();
        drop(h);
        attempt += 1;
        match load(&source, token).await {
            Ok((tokenizer, from)) => {
                if let Some(h) = handle.upgrade() {
                    let _ = h.ready.set(Arc::new(tokenizer));
                    tracing::info!(tokenizer = %name, from = %from, "tokenizer ready; usage the upstream does not report is counted with it");
                }
                return;
            }
            Err(e) => {
                // The first failure is worth a warning; the retries that
                // follow would only repeat it.
                if attempt == 1 {
                    tracing::warn!(tokenizer = %name, retry_in_s = delay.as_secs(), "cannot fetch the tokenizer; usage the upstream does not report is estimated (one token per four bytes) until it arrives: {e}");
                } else {
                    tracing::debug!(tokenizer = %name, attempt, "tokenizer fetch failed again: {e}");
                }
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(LAST_RETRY);
    }
}

/// Downloads `tokenizer.json` (or finds it in the cache when the hub cannot
/// be reached) and parses it. Returns where it came from.
async fn load(
    source: &TokenizerSource,
    token: Option<String>,
) -> Result<(Tokenizer, String), String> {
    let mut b = hf_hub::HFClient::builder()
        .user_agent(concat!("sluice-gateway/", env!("CARGO_PKG_VERSION")))
        // One retry schedule, ours (`fetch_until_ready`): a failed attempt
        // falls back to the cache at once.
        .retry_max_attempts(0);
    if let Some(t) = token {
        b = b.token(t);
    }
    let client = b.build().map_err(|e| format!("the hub client: {e}"))?;
    let (owner, name) = hf_hub::split_id(&source.repo);
    let repo = client.model(owner, name);
    let download = |local_only: bool| {
        repo.download_file()
            .filename("tokenizer.json")
            .maybe_revision(source.revision.clone())
            .local_files_only(local_only)
            .send()
    };
    let path: PathBuf = match tokio::time::timeout(ATTEMPT_TIMEOUT, download(false)).await {
        Ok(Ok(p)) => p,
        online => {
            let why = match online {
                Ok(Err(e)) => e.to_string(),
                _ => format!("no answer within {}s", ATTEMPT_TIMEOUT.as_secs()),
            };
            match download(true).await {
                Ok(p) => p,
                Err(_) => return Err(why),
            }
        }
    };
    let from = path.display().to_string();
    let tokenizer = tokio::task::spawn_blocking(move || Tokenizer::from_file(&path))
        .await
        .map_err(|e| format!("parsing tokenizer.json: {e}"))?
        .map_err(|e| format!("{from} is not a tokenizer.json this gateway can read: {e}"))?;
    let tokenizer = uncapped(tokenizer).map_err(|e| format!("{from}: {e}"))?;
    Ok((tokenizer, from))
}

/// Counting wants every token: many Hub tokenizers (embedding models
/// especially) ship truncation at 512 or padding to a fixed length.
fn uncapped(mut tokenizer: Tokenizer) -> Result<Tokenizer, String> {
    tokenizer
        .with_truncation(None)
        .map_err(|e| format!("cannot turn its truncation off: {e}"))?;
    tokenizer.with_padding(None);
    Ok(tokenizer)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A word-level tokenizer: one token per whitespace-separated word.
    fn words() -> Tokenizer {
        let json = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],
            "normalizer":null,"pre_tokenizer":{"type":"Whitespace"},"post_processor":null,
            "decoder":null,"model":{"type":"WordLevel","vocab":{"[UNK]":0,"hello":1},"unk_token":"[UNK]"}}"#;
        Tokenizer::from_bytes(json).unwrap()
    }

    #[test]
    fn counts_every_text_with_the_tokenizer() {
        let t = words();
        let texts = vec!["hello there world".to_string(), "hello".to_string()];
        assert_eq!(count(&t, &texts), Some(4));
        assert_eq!(count(&t, &[]), Some(0));
    }

    #[test]
    fn the_estimate_is_one_token_per_four_bytes_rounded_up() {
        assert_eq!(estimate(0), 0);
        assert_eq!(estimate(1), 1);
        assert_eq!(estimate(8), 2);
        assert_eq!(estimate(9), 3);
    }

    /// Without a runtime no fetch starts (none may reach the real Hub from
    /// a unit test), so the registry is seen alone.
    #[test]
    fn versions_naming_the_same_tokenizer_share_one_handle() {
        let source = TokenizerSource {
            repo: "sluice-test/shared-handle".into(),
            revision: None,
        };
        let a = want(&source, None);
        let b = want(&source, Some("hf_rotated".into()));
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(
            a.token.lock().unwrap().as_deref(),
            Some("hf_rotated"),
            "a later version's token is used at the next attempt"
        );
        let other = want(
            &TokenizerSource {
                repo: "sluice-test/shared-handle".into(),
                revision: Some("v2".into()),
            },
            None,
        );
        assert!(!Arc::ptr_eq(&a, &other));
        let old = Arc::downgrade(&a);
        drop((a, b));
        assert!(old.upgrade().is_none(), "no version holds it any more");
        // The next version that names it starts afresh.
        let c = want(&source, None);
        assert!(old.upgrade().is_none());
        assert_eq!(c.name(), "sluice-test/shared-handle");
        assert_eq!(c.token.lock().unwrap().as_deref(), None);
    }

    #[test]
    fn a_huge_text_is_counted_on_a_sample_and_scaled() {
        let t = words();
        let small = "hello ".repeat(100);
        assert_eq!(count(&t, &[small]), Some(100));
        // 2 × COUNT_LIMIT bytes of one-word tokens: the sample's count, doubled.
        let huge = "hello ".repeat(2 * COUNT_LIMIT / 6);
        let n = count(&t, std::slice::from_ref(&huge)).unwrap();
        let exact = (huge.len() / 6) as u64;
        assert!(n.abs_diff(exact) <= 2, "{n} vs {exact}");
    }

    #[test]
    fn truncation_and_padding_in_the_file_do_not_cap_the_count() {
        let json = r#"{"version":"1.0","truncation":{"direction":"Right","max_length":2,"strategy":"LongestFirst","stride":0},
            "padding":{"strategy":{"Fixed":8},"direction":"Right","pad_to_multiple_of":null,"pad_id":0,"pad_type_id":0,"pad_token":"[UNK]"},
            "added_tokens":[],"normalizer":null,"pre_tokenizer":{"type":"Whitespace"},"post_processor":null,
            "decoder":null,"model":{"type":"WordLevel","vocab":{"[UNK]":0,"hello":1},"unk_token":"[UNK]"}}"#;
        let t = Tokenizer::from_bytes(json).unwrap();
        let texts = vec!["hello a b c".to_string()];
        assert_ne!(count(&t, &texts), Some(4), "the file's settings apply");
        assert_eq!(count(&uncapped(t).unwrap(), &texts), Some(4));
    }
}
