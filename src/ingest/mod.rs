//! Ingestion: turning what users and providers send into normalized records.

pub mod apple;
pub mod samples_arrow;
