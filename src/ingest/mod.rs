//! Ingestion: turning what users and providers send into normalized records.

pub mod apple;
pub mod import;
pub mod queue;
pub mod raw;
pub mod renormalize;
pub mod sdk;
pub mod sleep_sessions;
