//! The `Import` aggregate: one upload of an Apple Health export (or another file), from the
//! moment its bytes are stored to its completion or failure.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where the raw bytes of a payload are stored (content-addressed by SHA-256).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawPayloadRef {
    pub sha256: String,
    pub size: i64,
    pub chunks: i32,
    pub content_type: String,
    pub provider: String,
    pub kind: String,
}

/// What an import found: per kind, per series type, per skip reason and unknown type.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImportCounts {
    pub records: u64,
    /// Distinct writers (apps and devices) found.
    #[serde(default)]
    pub sources: u64,
    pub samples: u64,
    pub sleep_intervals: u64,
    pub sleep_sessions: u64,
    /// Menstrual-flow records read, and the cycles folded from them.
    #[serde(default)]
    pub menstrual_flows: u64,
    #[serde(default)]
    pub menstrual_cycles: u64,
    pub workouts: u64,
    pub activity_summaries: u64,
    pub per_series: BTreeMap<String, u64>,
    pub skipped: BTreeMap<String, u64>,
    pub unknown_types: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ImportCommand {
    Receive {
        id: Uuid,
        user_id: Uuid,
        filename: Option<String>,
        raw: RawPayloadRef,
        at: DateTime<Utc>,
    },
    Start {
        at: DateTime<Utc>,
    },
    Complete {
        counts: ImportCounts,
        /// Set when the same bytes were already imported for this user: nothing was re-parsed.
        duplicate_of: Option<Uuid>,
        at: DateTime<Utc>,
    },
    Fail {
        error: String,
        position: Option<u64>,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ImportEvent {
    RawPayloadReceived {
        id: Uuid,
        user_id: Uuid,
        filename: Option<String>,
        raw: RawPayloadRef,
        at: DateTime<Utc>,
    },
    ImportStarted {
        at: DateTime<Utc>,
    },
    ImportCompleted {
        counts: ImportCounts,
        duplicate_of: Option<Uuid>,
        at: DateTime<Utc>,
    },
    ImportFailed {
        error: String,
        position: Option<u64>,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for ImportEvent {
    fn event_type(&self) -> String {
        match self {
            ImportEvent::RawPayloadReceived { .. } => "RawPayloadReceived",
            ImportEvent::ImportStarted { .. } => "ImportStarted",
            ImportEvent::ImportCompleted { .. } => "ImportCompleted",
            ImportEvent::ImportFailed { .. } => "ImportFailed",
        }
        .to_string()
    }
    fn event_version(&self) -> String {
        "1".to_string()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImportStatus {
    #[default]
    New,
    Received,
    Parsing,
    Completed,
    Failed,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ImportError {
    #[error("Import not found")]
    NotFound,
    #[error("import is {0:?}; cannot {1}")]
    WrongState(ImportStatus, &'static str),
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Import {
    pub id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub status: ImportStatus,
}

impl Aggregate for Import {
    const TYPE: &'static str = "Import";
    type Command = ImportCommand;
    type Event = ImportEvent;
    type Error = ImportError;
    type Services = ();

    async fn handle(
        &mut self,
        command: ImportCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), ImportError> {
        use ImportStatus::*;
        match command {
            ImportCommand::Receive {
                id,
                user_id,
                filename,
                raw,
                at,
            } => {
                if self.status != New {
                    return Err(ImportError::WrongState(self.status, "receive"));
                }
                sink.write(
                    ImportEvent::RawPayloadReceived {
                        id,
                        user_id,
                        filename,
                        raw,
                        at,
                    },
                    self,
                )
                .await;
            }
            ImportCommand::Start { at } => {
                match self.status {
                    New => return Err(ImportError::NotFound),
                    Received => {}
                    s => return Err(ImportError::WrongState(s, "start")),
                }
                sink.write(ImportEvent::ImportStarted { at }, self).await;
            }
            ImportCommand::Complete {
                counts,
                duplicate_of,
                at,
            } => {
                match self.status {
                    New => return Err(ImportError::NotFound),
                    Received | Parsing => {}
                    s => return Err(ImportError::WrongState(s, "complete")),
                }
                sink.write(
                    ImportEvent::ImportCompleted {
                        counts,
                        duplicate_of,
                        at,
                    },
                    self,
                )
                .await;
            }
            ImportCommand::Fail {
                error,
                position,
                at,
            } => {
                match self.status {
                    New => return Err(ImportError::NotFound),
                    Received | Parsing => {}
                    s => return Err(ImportError::WrongState(s, "fail")),
                }
                sink.write(
                    ImportEvent::ImportFailed {
                        error,
                        position,
                        at,
                    },
                    self,
                )
                .await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: ImportEvent) {
        match event {
            ImportEvent::RawPayloadReceived { id, user_id, .. } => {
                self.id = Some(id);
                self.user_id = Some(user_id);
                self.status = ImportStatus::Received;
            }
            ImportEvent::ImportStarted { .. } => self.status = ImportStatus::Parsing,
            ImportEvent::ImportCompleted { .. } => self.status = ImportStatus::Completed,
            ImportEvent::ImportFailed { .. } => self.status = ImportStatus::Failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    type T = TestFramework<Import>;

    fn at() -> DateTime<Utc> {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    fn received() -> ImportEvent {
        ImportEvent::RawPayloadReceived {
            id: Uuid::nil(),
            user_id: Uuid::nil(),
            filename: Some("export.zip".into()),
            raw: RawPayloadRef {
                sha256: "ab".into(),
                size: 10,
                chunks: 1,
                content_type: "application/zip".into(),
                provider: "apple".into(),
                kind: "apple_health_export".into(),
            },
            at: at(),
        }
    }

    #[test]
    fn lifecycle_received_started_completed() {
        T::with(())
            .given(vec![received()])
            .when(ImportCommand::Start { at: at() })
            .then_expect_events(vec![ImportEvent::ImportStarted { at: at() }]);
        T::with(())
            .given(vec![received(), ImportEvent::ImportStarted { at: at() }])
            .when(ImportCommand::Complete {
                counts: ImportCounts::default(),
                duplicate_of: None,
                at: at(),
            })
            .then_expect_events(vec![ImportEvent::ImportCompleted {
                counts: ImportCounts::default(),
                duplicate_of: None,
                at: at(),
            }]);
    }

    #[test]
    fn a_finished_import_cannot_fail_or_restart() {
        let done = vec![
            received(),
            ImportEvent::ImportStarted { at: at() },
            ImportEvent::ImportFailed {
                error: "malformed XML at byte 10".into(),
                position: Some(10),
                at: at(),
            },
        ];
        T::with(())
            .given(done.clone())
            .when(ImportCommand::Start { at: at() })
            .then_expect_error(ImportError::WrongState(ImportStatus::Failed, "start"));
        T::with(())
            .given(done)
            .when(ImportCommand::Complete {
                counts: ImportCounts::default(),
                duplicate_of: None,
                at: at(),
            })
            .then_expect_error(ImportError::WrongState(ImportStatus::Failed, "complete"));
    }

    #[test]
    fn unknown_import_is_not_found() {
        T::with(())
            .given_no_previous_events()
            .when(ImportCommand::Start { at: at() })
            .then_expect_error(ImportError::NotFound);
    }
}
