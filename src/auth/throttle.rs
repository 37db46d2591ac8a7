//! Sign-in throttling: failed logins slow down further attempts per account and per client
//! address (exponential backoff after a few free attempts), and at most a few Argon2 hashes
//! run at once, with a short queue, so a flood of logins costs neither memory (each hash
//! takes 19 MiB) nor every CPU.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

/// Failures allowed per account before backoff starts.
const ACCOUNT_FREE: u32 = 5;
/// Failures allowed per client address before backoff starts (one address may front several
/// people, so more than per account).
const ADDRESS_FREE: u32 = 20;
/// Longest backoff.
const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);
/// Failures are forgotten after this long without one.
const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);
/// Entries kept at most; beyond it, stale ones are pruned and the oldest dropped.
const MAX_ENTRIES: usize = 100_000;

#[derive(Clone, Copy)]
struct Entry {
    failures: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

pub struct LoginThrottle {
    entries: Mutex<HashMap<String, Entry>>,
    hashes: Semaphore,
    waiting: AtomicUsize,
    max_waiting: usize,
}

/// Why an attempt is refused before its password is checked.
#[derive(Debug, PartialEq)]
pub enum Refused {
    /// Too many recent failures: retry after this many seconds.
    Backoff(u64),
    /// Too many sign-ins are being checked at once.
    Busy,
}

fn backoff(failures: u32, free: u32) -> Option<Duration> {
    if failures < free {
        return None;
    }
    let exp = (failures - free).min(20);
    Some(Duration::from_secs(1u64 << exp).min(MAX_BACKOFF))
}

impl LoginThrottle {
    /// `concurrency` hashes at once; up to `max_waiting` more wait for a turn.
    pub fn new(concurrency: usize, max_waiting: usize) -> Self {
        LoginThrottle {
            entries: Mutex::new(HashMap::new()),
            hashes: Semaphore::new(concurrency.max(1)),
            waiting: AtomicUsize::new(0),
            max_waiting,
        }
    }

    fn keys(account: &str, address: &str) -> [String; 2] {
        [
            format!("account:{}", account.trim().to_lowercase()),
            format!("address:{address}"),
        ]
    }

    /// Refuses the attempt while the account or the address is backing off.
    pub fn check(&self, account: &str, address: &str) -> Result<(), Refused> {
        let now = Instant::now();
        let entries = self.entries.lock().expect("throttle lock");
        let wait = Self::keys(account, address)
            .iter()
            .filter_map(|k| entries.get(k)?.blocked_until)
            .filter(|until| *until > now)
            .map(|until| (until - now).as_secs().max(1))
            .max();
        match wait {
            Some(secs) => Err(Refused::Backoff(secs)),
            None => Ok(()),
        }
    }

    pub fn failed(&self, account: &str, address: &str) {
        let now = Instant::now();
        let mut entries = self.entries.lock().expect("throttle lock");
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, e| now.duration_since(e.last) < FORGET_AFTER);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        for (key, free) in Self::keys(account, address)
            .into_iter()
            .zip([ACCOUNT_FREE, ADDRESS_FREE])
        {
            let e = entries.entry(key).or_insert(Entry {
                failures: 0,
                last: now,
                blocked_until: None,
            });
            if now.duration_since(e.last) >= FORGET_AFTER {
                e.failures = 0;
            }
            e.failures = e.failures.saturating_add(1);
            e.last = now;
            e.blocked_until = backoff(e.failures, free).map(|d| now + d);
        }
    }

    /// A successful sign-in clears the account's failures (not the address's).
    pub fn succeeded(&self, account: &str, address: &str) {
        let [account_key, _] = Self::keys(account, address);
        self.entries
            .lock()
            .expect("throttle lock")
            .remove(&account_key);
    }

    /// A turn to hash, or `Busy` when the queue is full.
    pub async fn hash_permit(&self) -> Result<SemaphorePermit<'_>, Refused> {
        if let Ok(p) = self.hashes.try_acquire() {
            return Ok(p);
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(Refused::Busy);
        }
        let permit = self.hashes.acquire().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        permit.map_err(|_| Refused::Busy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_after_the_free_attempts_and_doubles() {
        assert_eq!(backoff(4, 5), None);
        assert_eq!(backoff(5, 5), Some(Duration::from_secs(1)));
        assert_eq!(backoff(7, 5), Some(Duration::from_secs(4)));
        assert_eq!(backoff(60, 5), Some(MAX_BACKOFF));
    }

    #[test]
    fn an_account_backs_off_and_success_clears_it() {
        let t = LoginThrottle::new(1, 1);
        for _ in 0..ACCOUNT_FREE {
            assert_eq!(t.check("A@x.io", "1.2.3.4"), Ok(()));
            t.failed("a@x.io", "1.2.3.4");
        }
        assert!(matches!(
            t.check(" a@X.io", "5.6.7.8"),
            Err(Refused::Backoff(_))
        ));
        assert_eq!(t.check("b@x.io", "1.2.3.4"), Ok(()));
        t.succeeded("a@x.io", "1.2.3.4");
        assert_eq!(t.check("a@x.io", "5.6.7.8"), Ok(()));
    }

    #[test]
    fn an_address_backs_off_across_accounts() {
        let t = LoginThrottle::new(1, 1);
        for i in 0..ADDRESS_FREE {
            t.failed(&format!("u{i}@x.io"), "9.9.9.9");
        }
        assert!(matches!(
            t.check("new@x.io", "9.9.9.9"),
            Err(Refused::Backoff(_))
        ));
        assert_eq!(t.check("new@x.io", "8.8.8.8"), Ok(()));
    }
}
