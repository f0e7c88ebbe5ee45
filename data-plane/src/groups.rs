//! Target groups (`providers.groups`): one name served by several targets.
//! A group orders its members for each request — the chosen one first,
//! then the others the traffic layer moves on to when one fails — and
//! keeps each member's passive health: requests in flight, a peak-EWMA of
//! its latency, and consecutive failures, which eject it for a cool-down.
//!
//! Member state lives in a process-wide table keyed by group and target id,
//! so health and load survive config reloads (a pushed key change must not
//! put an ejected endpoint back into service).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use sluice_proto::pack::{Balance, Group};

use crate::providers::target::TargetRuntime;

/// How fast the latency average forgets: a sample's weight halves in
/// about 7 s (the decay constant Finagle and Linkerd use).
const DECAY: Duration = Duration::from_secs(10);

/// The cost of a member with a request out and no latency known yet.
const UNMEASURED_PENALTY: f64 = 1e12;

/// One member's live state.
pub struct Member {
    outstanding: AtomicU64,
    failures: AtomicU32,
    /// Milliseconds since `BASE` until which the member is ejected (0: not).
    ejected_until: AtomicU64,
    ewma: Mutex<Ewma>,
}

#[derive(Clone, Copy)]
struct Ewma {
    /// Milliseconds; `None` until the first sample.
    value: Option<f64>,
    at: Instant,
}

static BASE: LazyLock<Instant> = LazyLock::new(Instant::now);

fn now_ms() -> u64 {
    BASE.elapsed().as_millis() as u64 + 1
}

impl Member {
    fn new() -> Member {
        Member {
            outstanding: AtomicU64::new(0),
            failures: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            ewma: Mutex::new(Ewma {
                value: None,
                at: Instant::now(),
            }),
        }
    }

    fn ejected(&self) -> bool {
        self.ejected_until.load(Ordering::Relaxed) > now_ms()
    }

    fn latency(&self) -> Option<f64> {
        self.ewma.lock().unwrap_or_else(|p| p.into_inner()).value
    }

    /// A call answered: the failure run ends and the latency is averaged
    /// in (a slower sample is taken at once, a faster one decays in).
    pub fn succeeded(&self, took: Duration) {
        self.failures.store(0, Ordering::Relaxed);
        let sample = took.as_secs_f64() * 1000.0;
        let mut e = self.ewma.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        e.value = Some(match e.value {
            Some(v) if sample < v => {
                let w = (-(now - e.at).as_secs_f64() / DECAY.as_secs_f64()).exp();
                v * w + sample * (1.0 - w)
            }
            _ => sample,
        });
        e.at = now;
    }

    /// A call failed (5xx, timeout, connection): true when this failure
    /// ejects the member. A member back from a cool-down still has its run
    /// of failures, so one more failure sends it straight back.
    pub fn failed(&self, after: u32, cooldown: Duration) -> bool {
        let run = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if after == 0 || run < after || self.ejected() {
            return false;
        }
        self.ejected_until
            .store(now_ms() + cooldown.as_millis() as u64, Ordering::Relaxed);
        true
    }

    pub fn start(self: &Arc<Self>) -> InFlight {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }
}

/// A request being served by a member; counted until dropped (for a
/// stream, until its last event).
pub struct InFlight(Arc<Member>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

type Table = Mutex<HashMap<(String, String), Arc<Member>>>;
static MEMBERS: LazyLock<Table> = LazyLock::new(Default::default);

fn member_state(group: &str, target: &str) -> Arc<Member> {
    let mut t = MEMBERS.lock().unwrap_or_else(|p| p.into_inner());
    Arc::clone(
        t.entry((group.to_string(), target.to_string()))
            .or_insert_with(|| Arc::new(Member::new())),
    )
}

/// One compiled group.
pub struct GroupRuntime {
    pub spec: Group,
    /// Members with their weight, in declaration order.
    members: Vec<(Arc<TargetRuntime>, u32, Arc<Member>)>,
    /// The group's `fallbacks`, tried after every member.
    pub fallbacks: Vec<Arc<TargetRuntime>>,
}

/// One target to try, with the group member state it reports to.
#[derive(Clone)]
pub struct Pick {
    pub target: Arc<TargetRuntime>,
    pub member: Option<Arc<Member>>,
}

impl GroupRuntime {
    pub fn compile(spec: Group, targets: &[Arc<TargetRuntime>]) -> GroupRuntime {
        let find = |id: &str| targets.iter().find(|t| t.spec.id == id).cloned();
        let members = spec
            .members
            .iter()
            .filter_map(|m| {
                let t = find(&m.target)?;
                Some((t, m.weight, member_state(&spec.id, &m.target)))
            })
            .collect();
        let fallbacks = spec.fallbacks.iter().filter_map(|id| find(id)).collect();
        GroupRuntime {
            spec,
            members,
            fallbacks,
        }
    }

    /// The members in the order to try them: the best by the group's
    /// `balance` first. Ejected members and members that cannot serve (no
    /// token, placeholder URL) are left out while any other is healthy; when
    /// none is, all are tried rather than refusing every request.
    pub fn order(&self) -> Vec<Pick> {
        let healthy: Vec<usize> = (0..self.members.len())
            .filter(|&i| {
                let (t, _, m) = &self.members[i];
                !m.ejected() && t.unavailable.is_none()
            })
            .collect();
        let mut pool = if healthy.is_empty() {
            (0..self.members.len()).collect()
        } else {
            healthy
        };
        let costs = self.costs(&pool);
        let mut rng = rand::rng();
        let mut out = Vec::with_capacity(pool.len());
        while !pool.is_empty() {
            // The cheapest, ties broken by a weighted draw (so idle members
            // share traffic by weight).
            let best = pool.iter().map(|i| costs[*i]).fold(f64::INFINITY, f64::min);
            let tied: Vec<usize> = (0..pool.len())
                .filter(|&j| costs[pool[j]] <= best * (1.0 + 1e-9))
                .collect();
            let total: u64 = tied.iter().map(|&j| self.members[pool[j]].1 as u64).sum();
            let mut draw = rng.random_range(0..total.max(1));
            let mut chosen = tied[0];
            for &j in &tied {
                let w = self.members[pool[j]].1 as u64;
                if draw < w {
                    chosen = j;
                    break;
                }
                draw -= w;
            }
            let (t, _, m) = &self.members[pool.remove(chosen)];
            out.push(Pick {
                target: Arc::clone(t),
                member: Some(Arc::clone(m)),
            });
        }
        out
    }

    /// Cost per member index (only those in `pool` are meaningful).
    fn costs(&self, pool: &[usize]) -> Vec<f64> {
        let mut costs = vec![0.0; self.members.len()];
        for &i in pool {
            let (_, weight, m) = &self.members[i];
            let w = *weight as f64;
            let inflight = m.outstanding.load(Ordering::Relaxed) as f64;
            costs[i] = match self.spec.balance {
                Balance::Weighted => 0.0,
                Balance::LeastOutstanding => inflight / w,
                Balance::PeakEwma => match m.latency() {
                    Some(ms) => ms.max(0.001) * (inflight + 1.0) / w,
                    // Not measured yet: free while idle, so it gets its
                    // first request at once; a penalty while that request
                    // is out, so a burst does not pile onto an unknown.
                    None if inflight == 0.0 => 0.0,
                    None => UNMEASURED_PENALTY,
                },
            };
        }
        costs
    }

    /// The member's state for `target`, if it is one.
    pub fn member(&self, target: &str) -> Option<&Arc<Member>> {
        self.members
            .iter()
            .find(|(t, _, _)| t.spec.id == target)
            .map(|(_, _, m)| m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_proto::pack::{Ejection, Member as Spec};

    fn group(id: &str, balance: Balance, weights: &[u32]) -> GroupRuntime {
        let yaml = {
            let mut y = String::from("providers:\n  targets:\n");
            for i in 0..weights.len() {
                y += &format!(
                    "    - id: m{i}\n      provider: openai:org/m\n      base_url: http://m{i}.test/v1\n"
                );
            }
            y
        };
        let pack = sluice_proto::pack::load(&yaml).unwrap().pack;
        let settings = crate::settings::Settings {
            hf_router_url: "http://router.test".into(),
            hf_inference_url: Some("http://hf.test/".into()),
            control_plane: None,
            worker_tls: None,
            metrics_token_file: None,
            allow: Default::default(),
            http: Default::default(),
        };
        let targets: Vec<Arc<TargetRuntime>> = pack
            .targets
            .iter()
            .map(|t| Arc::new(TargetRuntime::compile(t.clone(), &settings).unwrap()))
            .collect();
        let spec = Group {
            id: id.into(),
            model: None,
            balance,
            members: weights
                .iter()
                .enumerate()
                .map(|(i, w)| Spec {
                    target: format!("m{i}"),
                    weight: *w,
                })
                .collect(),
            ejection: Ejection::default(),
            fallbacks: vec![],
            serves_chat: true,
            serves_embeddings: true,
            mark: Default::default(),
        };
        GroupRuntime::compile(spec, &targets)
    }

    fn first(g: &GroupRuntime) -> String {
        g.order()[0].target.spec.id.clone()
    }

    #[test]
    fn idle_members_share_by_weight() {
        let g = group("unit-weights", Balance::LeastOutstanding, &[3, 1]);
        let n = 4000;
        let m0 = (0..n).filter(|_| first(&g) == "m0").count();
        // Expected 3000; a binomial's spread is ~27.
        assert!((2800..3200).contains(&m0), "m0 got {m0} of {n}");
        assert_eq!(g.order().len(), 2, "every member is in the order");
    }

    #[test]
    fn least_outstanding_avoids_the_busy_member() {
        let g = group("unit-outstanding", Balance::LeastOutstanding, &[1, 1]);
        let busy = g.member("m0").unwrap().start();
        for _ in 0..50 {
            assert_eq!(first(&g), "m1");
        }
        drop(busy);
        let picks: std::collections::HashSet<String> = (0..200).map(|_| first(&g)).collect();
        assert_eq!(picks.len(), 2, "both idle again");
    }

    #[test]
    fn peak_ewma_prefers_the_fast_member_and_reacts_to_a_slow_sample_at_once() {
        let g = group("unit-ewma", Balance::PeakEwma, &[1, 1]);
        g.member("m0").unwrap().succeeded(Duration::from_millis(20));
        g.member("m1")
            .unwrap()
            .succeeded(Duration::from_millis(200));
        for _ in 0..50 {
            assert_eq!(first(&g), "m0");
        }
        g.member("m0")
            .unwrap()
            .succeeded(Duration::from_millis(2000));
        assert_eq!(first(&g), "m1", "a peak is taken at once");
    }

    #[test]
    fn an_unmeasured_member_gets_one_request_at_a_time_until_it_answers() {
        let g = group("unit-ewma-new", Balance::PeakEwma, &[1, 1]);
        g.member("m0").unwrap().succeeded(Duration::from_millis(20));
        assert_eq!(first(&g), "m1", "idle and unmeasured: probed first");
        let probe = g.member("m1").unwrap().start();
        assert_eq!(first(&g), "m0", "its first request is still out");
        drop(probe);
        g.member("m1")
            .unwrap()
            .succeeded(Duration::from_millis(200));
        assert_eq!(first(&g), "m0");
    }

    #[test]
    fn consecutive_failures_eject_for_the_cooldown_and_one_more_sends_it_back() {
        let g = group("unit-eject", Balance::LeastOutstanding, &[1, 1]);
        let m0 = g.member("m0").unwrap();
        let cool = Duration::from_millis(150);
        assert!(!m0.failed(3, cool));
        assert!(!m0.failed(3, cool));
        m0.succeeded(Duration::from_millis(1));
        assert!(!m0.failed(3, cool), "a success ends the run");
        assert!(!m0.failed(3, cool));
        assert!(m0.failed(3, cool), "third in a row ejects");
        assert!(!m0.failed(3, cool), "already ejected: counted once");
        let order: Vec<String> = g.order().iter().map(|p| p.target.spec.id.clone()).collect();
        assert_eq!(order, ["m1"], "an ejected member is left out");
        std::thread::sleep(cool + Duration::from_millis(20));
        assert_eq!(g.order().len(), 2, "back after the cool-down");
        assert!(m0.failed(3, cool), "one more failure ejects again");
    }

    #[test]
    fn with_every_member_ejected_all_are_tried() {
        let g = group("unit-all-ejected", Balance::Weighted, &[1, 1]);
        for id in ["m0", "m1"] {
            assert!(g.member(id).unwrap().failed(1, Duration::from_secs(60)));
        }
        assert_eq!(g.order().len(), 2);
    }
}
