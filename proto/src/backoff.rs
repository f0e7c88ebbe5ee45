//! Retry pacing shared by every component that reconnects or retries: the
//! gateway's config stream and audit shipper, the control plane waiting for
//! Postgres, the worker's Hub downloads.
//!
//! Exponential: each pause doubles up to a cap. Jittered: the pause is drawn
//! from `[delay/2, delay]`, so a fleet that lost its peer at the same moment
//! does not retry in lock-step.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    delay: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            delay: min,
        }
    }

    /// The pause before the next attempt; doubles the delay for the one
    /// after.
    pub fn next_pause(&mut self) -> Duration {
        let pause = rand::rng().random_range(self.delay / 2..=self.delay);
        self.delay = (self.delay * 2).min(self.max);
        pause
    }

    /// After a success: the next failure starts from the shortest delay.
    pub fn reset(&mut self) {
        self.delay = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_cap_with_jitter_and_reset() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(700));
        let bounds = [100, 200, 400, 700, 700];
        for hi in bounds {
            let p = b.next_pause();
            let hi = Duration::from_millis(hi);
            assert!(
                p >= hi / 2 && p <= hi,
                "{p:?} outside [{:?}, {hi:?}]",
                hi / 2
            );
        }
        b.reset();
        assert!(b.next_pause() <= Duration::from_millis(100));
    }
}
