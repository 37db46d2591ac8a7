//! Crash points for the crash tests: `crashpoint::hit("import.parse")` kills the process with
//! SIGKILL when `WEARHOUSE_CRASH_AT` names that point, and does nothing otherwise. It exists so
//! `tests/crash.rs` can stop the server exactly at a stage boundary and prove that a restart
//! finishes the work without losing or doubling anything. The implementation is shared with
//! the projections crate (its runner has a point too), so it lives in the domain crate.

pub use wearhouse_domain::crashpoint::{hit, hit_in, VAR};
