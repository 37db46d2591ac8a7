//! Crash points: a test hook that kills the process at a named stage boundary.
//!
//! The crash tests (`tests/crash.rs`) prove that a process killed at any stage (an import's
//! parse, between writer batches, a webhook's mapping, a sync between pages, a projection batch)
//! leaves the log consistent and that the next `serve` finishes the work. A signal sent from
//! outside lands at a random moment; these hooks let a test stop the process exactly at the
//! boundary it means to test.
//!
//! `hit("import.parse")` does nothing unless `WEARHOUSE_CRASH_AT` names that point, either
//! `name` (the first hit) or `name:N` (the N-th hit); then the process sends itself SIGKILL:
//! no destructors, no flushes, no graceful shutdown, as when the machine loses power or the
//! kernel kills it. The variable is read once; unset, a hit costs one atomic load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The variable naming the point to crash at (`name` or `name:N`).
pub const VAR: &str = "WEARHOUSE_CRASH_AT";

struct Target {
    point: String,
    nth: u64,
    hits: AtomicU64,
}

fn target() -> Option<&'static Target> {
    static TARGET: OnceLock<Option<Target>> = OnceLock::new();
    TARGET
        .get_or_init(|| {
            let spec = std::env::var(VAR).ok()?;
            let spec = spec.trim();
            if spec.is_empty() {
                return None;
            }
            let (point, nth) = match spec.rsplit_once(':') {
                Some((p, n)) => (p, n.parse().ok()?),
                None => (spec, 1),
            };
            Some(Target {
                point: point.to_string(),
                nth,
                hits: AtomicU64::new(0),
            })
        })
        .as_ref()
}

/// Kills the process if `WEARHOUSE_CRASH_AT` names `point` and this is its N-th hit.
pub fn hit(point: &str) {
    if let Some(t) = target() {
        if t.point == point {
            arrive(t, point);
        }
    }
}

/// Like [`hit`] for a point of one of several things (`projection.batch` of `samples`): the
/// variable may name the point (`projection.batch`, any of them) or the point of one thing
/// (`projection.batch.samples`).
pub fn hit_in(point: &str, of: &str) {
    if let Some(t) = target() {
        let named = t.point == point
            || t.point
                .strip_prefix(point)
                .and_then(|rest| rest.strip_prefix('.'))
                == Some(of);
        if named {
            arrive(t, point);
        }
    }
}

fn arrive(t: &Target, point: &str) {
    if t.hits.fetch_add(1, Ordering::SeqCst) + 1 == t.nth {
        eprintln!("crash point {point} reached: killing the process");
        kill_self();
    }
}

#[cfg(unix)]
fn kill_self() -> ! {
    // SAFETY: getpid and kill have no preconditions; SIGKILL cannot be caught, so kill does
    // not return unless it failed.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    std::process::abort()
}

#[cfg(not(unix))]
fn kill_self() -> ! {
    std::process::abort()
}
