//! Limits counted in a Redis-compatible store (Valkey, Redis) that every
//! gateway of a fleet shares, so a limit of N per minute admits N in total
//! however many replicas serve.
//!
//! One Lua script checks and takes all of a request's limits atomically on
//! the store, with the store's clock (`TIME`), so gateways with skewed
//! clocks still agree. The same GCRA and fixed windows as in-process
//! counting (`local.rs`) are used; concurrency is a sorted set of leases
//! that expire after `LEASE`, so a gateway killed mid-request frees its
//! slots by itself.
//!
//! When the store does not answer within `limit_store.timeout_ms`, the
//! pack's `on_unavailable` decides (see `Limits::admit`); after a failure
//! the store is not asked again for `PAUSE_AFTER_FAILURE`, so an outage
//! costs one timeout per second, not one per request.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, OnceLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sluice_proto::pack::{FailMode, Limit, LimitStore, StoreUrl};
use tokio::sync::OnceCell;

use super::Refusal;
use super::budgets::{Charge, Spent};

/// How long a concurrency slot lasts when its request never says it ended
/// (its gateway died). Longer requests stop counting after this.
pub const LEASE: Duration = Duration::from_secs(600);
const PAUSE_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// Checks every limit (one key base per limit) and takes a share of each
/// only when all allow it. ARGV: lease length (µs), lease id, then five
/// numbers per key (requests per second, per minute, tokens per minute,
/// per day, concurrent; 0 = not set). Returns {0} or {index, what, wait µs}.
const ADMIT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local secs = tonumber(t[1])
local lease_us = tonumber(ARGV[1])
local lease = ARGV[2]
local function num(i, j) return tonumber(ARGV[2 + (i - 1) * 5 + j]) end
local function tat_of(key)
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then tat = now end
  return tat
end
local tats = {}
for i, base in ipairs(KEYS) do
  local rps, rpm, tpm, tpd, conc = num(i, 1), num(i, 2), num(i, 3), num(i, 4), num(i, 5)
  for _, rate in ipairs({{rps, 1000000, ':s', 'requests_per_second'}, {rpm, 60000000, ':m', 'requests_per_minute'}}) do
    if rate[1] > 0 then
      local interval = rate[2] / rate[1]
      local tat = tat_of(base .. rate[3])
      local ahead = tat - now
      local tolerance = rate[2] - interval
      if ahead > tolerance then return {i, rate[4], math.ceil(ahead - tolerance)} end
      tats[base .. rate[3]] = {tat + interval, rate[2]}
    end
  end
  if tpm > 0 and (tonumber(redis.call('GET', base .. ':tm:' .. math.floor(secs / 60))) or 0) >= tpm then
    return {i, 'tokens_per_minute', (60 - secs % 60) * 1000000}
  end
  if tpd > 0 and (tonumber(redis.call('GET', base .. ':td:' .. math.floor(secs / 86400))) or 0) >= tpd then
    return {i, 'tokens_per_day', (86400 - secs % 86400) * 1000000}
  end
  if conc > 0 then
    redis.call('ZREMRANGEBYSCORE', base .. ':c', '-inf', now)
    if redis.call('ZCARD', base .. ':c') >= conc then return {i, 'concurrent_requests', 1000000} end
  end
end
for key, v in pairs(tats) do
  redis.call('SET', key, string.format('%.0f', v[1]), 'PX', math.ceil((v[1] - now + v[2]) / 1000))
end
for i, base in ipairs(KEYS) do
  if num(i, 5) > 0 then
    redis.call('ZADD', base .. ':c', now + lease_us, lease)
    redis.call('PEXPIRE', base .. ':c', math.ceil(lease_us / 1000))
  end
end
return {0}
"#;

/// Adds ARGV[1] tokens to the current windows: ARGV[1 + i] says which of
/// key i's windows count (1 minute, 2 day, 3 both).
const CONSUME: &str = r#"
local secs = tonumber(redis.call('TIME')[1])
local tokens = tonumber(ARGV[1])
for i, base in ipairs(KEYS) do
  local which = tonumber(ARGV[1 + i])
  if which % 2 == 1 then
    local k = base .. ':tm:' .. math.floor(secs / 60)
    redis.call('INCRBY', k, tokens)
    redis.call('EXPIRE', k, 120)
  end
  if which >= 2 then
    local k = base .. ':td:' .. math.floor(secs / 86400)
    redis.call('INCRBY', k, tokens)
    redis.call('EXPIRE', k, 172800)
  end
end
return 0
"#;

/// Budgets: each key is a hash of tokens (`t`) and cost in millionths
/// (`c`) for one budget, subject and period.
const BUDGET_READ: &str = r#"
local out = {}
for i, k in ipairs(KEYS) do
  local v = redis.call('HMGET', k, 't', 'c')
  out[i] = {tonumber(v[1]) or 0, tonumber(v[2]) or 0}
end
return out
"#;

const BUDGET_CHARGE: &str = r#"
local out = {}
for i, k in ipairs(KEYS) do
  local t = redis.call('HINCRBY', k, 't', ARGV[1])
  local c = redis.call('HINCRBY', k, 'c', ARGV[2])
  redis.call('EXPIREAT', k, ARGV[2 + i])
  out[i] = {t, c}
end
return out
"#;

static BUDGET_READ_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(BUDGET_READ));
static BUDGET_CHARGE_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(BUDGET_CHARGE));
static ADMIT_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(ADMIT));
static CONSUME_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(CONSUME));

/// Why the store gave no answer. Never carries the URL (it may hold a
/// password) nor the store's own error text.
#[derive(Debug, Clone, Copy)]
pub enum Unavailable {
    Timeout,
    Failed,
    /// A call failed less than `PAUSE_AFTER_FAILURE` ago.
    Paused,
}

impl Unavailable {
    pub fn as_str(self) -> &'static str {
        match self {
            Unavailable::Timeout => "timed out",
            Unavailable::Failed => "failed",
            Unavailable::Paused => "failed less than a second ago",
        }
    }
}

pub struct Store {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    pub mode: FailMode,
    timeout: Duration,
    prefix: String,
    paused_until: Mutex<Option<Instant>>,
}

/// The store of a pack's `limit_store:`, shared by every config version
/// that names the same one, so reloads keep their connection.
pub fn open(cfg: &LimitStore) -> Result<Arc<Store>, String> {
    let url = match &cfg.url {
        StoreUrl::Literal(u) => u.clone(),
        StoreUrl::Env(var) => match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => v.trim().to_string(),
            _ => {
                return Err(format!(
                    "limit_store.url_env: the environment variable {var} is not set on this gateway; set it to the store's URL (redis://…) or remove limit_store"
                ));
            }
        },
    };
    static STORES: OnceLock<Mutex<HashMap<String, Arc<Store>>>> = OnceLock::new();
    let cache_key = format!(
        "{url}\n{}\n{:?}\n{}",
        cfg.prefix, cfg.timeout, cfg.on_unavailable as u8
    );
    let mut stores = STORES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(s) = stores.get(&cache_key) {
        return Ok(s.clone());
    }
    let client = redis::Client::open(url.as_str()).map_err(|_| {
        "limit_store: the store's URL is not a valid Redis URL (expected redis://[user[:password]@]host[:port][/db], or rediss:// for TLS)".to_string()
    })?;
    let store = Arc::new(Store {
        client,
        conn: OnceCell::new(),
        mode: cfg.on_unavailable,
        timeout: cfg.timeout,
        prefix: cfg.prefix.clone(),
        paused_until: Mutex::new(None),
    });
    stores.insert(cache_key, store.clone());
    Ok(store)
}

impl Store {
    /// The key base of one limit's count for one scope value.
    pub fn key(&self, limit: &Limit, value: &str) -> String {
        format!("{}:limit:{}:{}", self.prefix, limit.name, value)
    }

    pub fn budget_key(&self, c: &Charge) -> String {
        format!(
            "{}:budget:{}:{}:{}",
            self.prefix, c.budget.name, c.subject, c.window.label
        )
    }

    /// What the fleet has spent of each budget.
    pub async fn budget_spent(&self, charges: &[Charge]) -> Result<Vec<Spent>, Unavailable> {
        let mut call = BUDGET_READ_SCRIPT.prepare_invoke();
        for c in charges {
            call.key(self.budget_key(c));
        }
        Ok(spent(self.run(call).await?))
    }

    /// Adds one request's spend to each budget; the fleet's new totals.
    pub async fn budget_charge(
        &self,
        charges: &[Charge],
        add: Spent,
    ) -> Result<Vec<Spent>, Unavailable> {
        let mut call = BUDGET_CHARGE_SCRIPT.prepare_invoke();
        call.arg(add.tokens).arg(add.cost_micros);
        for c in charges {
            // Kept a day past its period, for operators to look at.
            call.key(self.budget_key(c)).arg(c.window.ends_at + 86_400);
        }
        Ok(spent(self.run(call).await?))
    }

    /// Made at the first call rather than in `open`: the manager spawns a
    /// task (so needs a Tokio runtime, which `Runtime::build` does not
    /// require), and a store no request needs is never dialled.
    async fn connection(&self) -> Result<ConnectionManager, Unavailable> {
        let conn = self
            .conn
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_secs(1));
                ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            })
            .await
            .map_err(|_| Unavailable::Failed)?;
        Ok(conn.clone())
    }

    fn paused(&self) -> bool {
        let p = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        p.is_some_and(|until| Instant::now() < until)
    }

    fn failed(&self) {
        *self.paused_until.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Instant::now() + PAUSE_AFTER_FAILURE);
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        call: redis::ScriptInvocation<'_>,
    ) -> Result<T, Unavailable> {
        if self.paused() {
            return Err(Unavailable::Paused);
        }
        let mut conn = self.connection().await?;
        let result = tokio::time::timeout(self.timeout, call.invoke_async::<T>(&mut conn)).await;
        match result {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                // The store's message is logged here, once, and never sent
                // to a client.
                tracing::warn!(error_kind = ?e.kind(), "limit store call failed");
                self.failed();
                Err(Unavailable::Failed)
            }
            Err(_) => {
                tracing::warn!(
                    timeout_ms = self.timeout.as_millis() as u64,
                    "limit store call timed out"
                );
                self.failed();
                Err(Unavailable::Timeout)
            }
        }
    }

    /// Checks and takes every entry's share: `Ok(Ok(()))` admitted,
    /// `Ok(Err((i, refusal)))` entry `i` refused (nothing was taken).
    pub async fn admit(
        &self,
        entries: &[(String, Arc<Limit>)],
        lease: &str,
    ) -> Result<Result<(), (usize, Refusal)>, Unavailable> {
        let mut call = ADMIT_SCRIPT.prepare_invoke();
        call.arg(LEASE.as_micros() as u64).arg(lease);
        for (key, l) in entries {
            call.key(key);
            for v in [
                l.requests_per_second,
                l.requests_per_minute,
                l.tokens_per_minute,
                l.tokens_per_day,
                l.concurrent,
            ] {
                call.arg(v.unwrap_or(0));
            }
        }
        let answer: Vec<redis::Value> = self.run(call).await?;
        let int = |v: Option<&redis::Value>| match v {
            Some(redis::Value::Int(i)) => Some(*i),
            _ => None,
        };
        match int(answer.first()) {
            Some(0) => Ok(Ok(())),
            Some(i) if i >= 1 && (i as usize) <= entries.len() => {
                let index = i as usize - 1;
                let what = match answer.get(1) {
                    Some(redis::Value::BulkString(b)) => b.as_slice(),
                    _ => b"",
                };
                let (what, rate) = Refusal::name(what, &entries[index].1);
                let wait =
                    Duration::from_micros(int(answer.get(2)).unwrap_or(1_000_000).max(0) as u64);
                Ok(Err((index, Refusal::new(what, rate, wait))))
            }
            _ => {
                tracing::warn!(
                    "limit store answered the admission script with an unexpected shape"
                );
                Err(Unavailable::Failed)
            }
        }
    }

    /// Adds a finished request's tokens to its token windows, in the
    /// background (the answer has been sent already).
    pub fn consume(self: &Arc<Self>, entries: Vec<(String, u8)>, tokens: u64) {
        if entries.is_empty() || tokens == 0 {
            return;
        }
        let store = Arc::clone(self);
        spawn(async move {
            let mut call = CONSUME_SCRIPT.prepare_invoke();
            call.arg(tokens);
            for (key, which) in &entries {
                call.key(key).arg(*which);
            }
            if store.run::<i64>(call).await.is_err() {
                tracing::warn!(tokens, "token usage not added to the shared limit store");
            }
        });
    }

    /// Gives back a request's concurrency slots (its lease), in the
    /// background. Lost releases expire with the lease.
    pub fn release(self: &Arc<Self>, keys: Vec<String>, lease: String) {
        if keys.is_empty() {
            return;
        }
        let store = Arc::clone(self);
        spawn(async move {
            let Ok(mut conn) = store.connection().await else {
                return;
            };
            let mut pipe = redis::pipe();
            for k in &keys {
                pipe.zrem(format!("{k}:c"), &lease).ignore();
            }
            let done = tokio::time::timeout(store.timeout, pipe.query_async::<()>(&mut conn)).await;
            if !matches!(done, Ok(Ok(()))) {
                tracing::warn!(
                    "concurrency slot not released in the shared limit store; it expires with its lease"
                );
            }
        });
    }
}

/// The scripts' `{tokens, cost}` rows.
fn spent(rows: Vec<(u64, u64)>) -> Vec<Spent> {
    rows.into_iter()
        .map(|(tokens, cost_micros)| Spent {
            tokens,
            cost_micros,
        })
        .collect()
}

pub fn spawn(f: impl std::future::Future<Output = ()> + Send + 'static) {
    if let Ok(h) = tokio::runtime::Handle::try_current() {
        h.spawn(f);
    }
}
