//! wearhouse-log: the event log, both halves. Writing: [`append`] (many events in one statement),
//! the cqrs-es [`PgEventRepository`] over it and the [`writer`] of normalized data (sample
//! batches with their `SamplesRecorded` events). Reading: the [`Cursor`] and the ordered,
//! gap-free reads of [`read`]. And the Arrow codec of sample batches ([`arrow_batch`]), which
//! both halves share.
//!
//! Why here, nested under `projections/`: the top-level layout is fixed, so the crate goes inside
//! an existing folder. `domain/` holds no I/O, `src/` is the application that writes through this
//! crate, and `kafka/` is an optional transport that the embedded setup never starts; the
//! projections are the log's first reader and were where its read half lived, so the crate sits
//! next to them as their own foundation. It depends on nothing of the workspace but the domain,
//! so the write side (`wearhouse`), the projections and Kafka all depend on it and on no one
//! else for the log.

pub mod append;
pub mod arrow_batch;
pub mod origin;
pub mod read;
pub mod repository;
pub mod writer;

pub use append::{append, to_payload, Actor, AppendError, NewEvent};
pub use read::{Cursor, LogEntry, Payload};
pub use repository::PgEventRepository;

/// tokio-postgres displays server errors as just "db error"; this includes the server's message.
pub fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    }
}
