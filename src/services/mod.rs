//! Application services: the workflows behind the HTTP handlers.

pub mod backfills;
pub mod webhooks;
