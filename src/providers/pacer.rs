//! Per-provider request pacing within one process: each provider's app-wide budget (requests
//! per minute across all of this installation's users) becomes a minimum spacing between
//! requests. The budget normally lives in Postgres and is shared by every `serve` process
//! (`Engine::reserve_slot`); this pacer is its fallback when the database cannot be reached.

use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct Pacer {
    next: HashMap<String, Instant>,
}

impl Pacer {
    /// Reserves the next slot of `key` at or after `now`; returns how long to wait for it.
    pub fn reserve(&mut self, key: &str, now: Instant, spacing: Duration) -> Duration {
        if spacing.is_zero() {
            return Duration::ZERO;
        }
        let slot = self
            .next
            .get(key)
            .copied()
            .filter(|t| *t > now)
            .unwrap_or(now);
        self.next.insert(key.to_string(), slot + spacing);
        slot - now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_spaced_per_key() {
        let mut p = Pacer::default();
        let t0 = Instant::now();
        let s = Duration::from_millis(600);
        assert_eq!(p.reserve("garmin", t0, s), Duration::ZERO);
        assert_eq!(p.reserve("garmin", t0, s), s);
        assert_eq!(p.reserve("garmin", t0, s), s * 2);
        assert_eq!(
            p.reserve("whoop", t0, s),
            Duration::ZERO,
            "keys are independent"
        );
        // After a quiet spell there is nothing to wait for.
        assert_eq!(p.reserve("garmin", t0 + s * 10, s), Duration::ZERO);
        assert_eq!(p.reserve("oura", t0, Duration::ZERO), Duration::ZERO);
    }
}
