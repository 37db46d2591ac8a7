//! The `SyncRun` aggregate: one pull, push, backfill or import, from queued to its end.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq)]
pub enum SyncRunCommand {
    /// Accepted for later (an async sync request); `Start` follows when a worker picks it up.
    Queue {
        id: Uuid,
        user_id: Uuid,
        provider: String,
        source: String,
        /// The data types asked for; empty: all.
        data_types: Vec<String>,
        at: DateTime<Utc>,
    },
    Start {
        id: Uuid,
        user_id: Uuid,
        provider: String,
        /// `pull`, `push`, `backfill`, `xml_import`, `linked_account`, ...
        source: String,
        /// For data pulled once for a provider account linked to several users: the user
        /// whose connection pulled it.
        primary_user_id: Option<Uuid>,
        at: DateTime<Utc>,
    },
    Progress {
        processed: u64,
        message: Option<String>,
        at: DateTime<Utc>,
    },
    Complete {
        processed: u64,
        at: DateTime<Utc>,
    },
    Fail {
        error: String,
        at: DateTime<Utc>,
    },
    /// Progress within a named stage (`fetching`, `processing`, `saving`), with the expected
    /// total when known.
    Advance {
        stage: Stage,
        processed: u64,
        total: Option<u64>,
        message: Option<String>,
        at: DateTime<Utc>,
    },
    /// The end of a run that did not fail: `success`, `partial` (part of it could not be
    /// done; `error` says what) or `skipped` (there was nothing to do).
    Finish {
        outcome: Outcome,
        processed: u64,
        error: Option<String>,
        metadata: Metadata,
        at: DateTime<Utc>,
    },
    /// Stopped on request before its end.
    Cancel {
        message: Option<String>,
        at: DateTime<Utc>,
    },
}

/// Free-form facts about a run (what it saved, the window it covered), as upstream's
/// `metadata`.
pub type Metadata = serde_json::Map<String, serde_json::Value>;

/// The stages a running sync reports between `started` and its end (the contract's
/// `SyncStage` values other than queued, started and the terminal ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Fetching,
    Processing,
    Saving,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Fetching => "fetching",
            Stage::Processing => "processing",
            Stage::Saving => "saving",
        }
    }
}

/// How a run that did not fail ended (the contract's `SyncStatus` terminal values other
/// than failed and cancelled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Partial,
    Skipped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Partial => "partial",
            Outcome::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum SyncRunEvent {
    SyncRunQueued {
        id: Uuid,
        user_id: Uuid,
        provider: String,
        source: String,
        at: DateTime<Utc>,
        /// The data types asked for; empty (or absent in older events): all.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        data_types: Vec<String>,
    },
    SyncRunStarted {
        id: Uuid,
        user_id: Uuid,
        provider: String,
        source: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        primary_user_id: Option<Uuid>,
        at: DateTime<Utc>,
    },
    SyncRunProgressed {
        processed: u64,
        message: Option<String>,
        at: DateTime<Utc>,
        /// Absent in events written before stages were recorded: `processing`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stage: Option<Stage>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        total: Option<u64>,
    },
    SyncRunCompleted {
        processed: u64,
        at: DateTime<Utc>,
        /// Absent: `success`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outcome: Option<Outcome>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        #[serde(default, skip_serializing_if = "Metadata::is_empty")]
        metadata: Metadata,
    },
    SyncRunFailed {
        error: String,
        at: DateTime<Utc>,
    },
    SyncRunCancelled {
        message: Option<String>,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for SyncRunEvent {
    fn event_type(&self) -> String {
        match self {
            SyncRunEvent::SyncRunQueued { .. } => "SyncRunQueued",
            SyncRunEvent::SyncRunStarted { .. } => "SyncRunStarted",
            SyncRunEvent::SyncRunProgressed { .. } => "SyncRunProgressed",
            SyncRunEvent::SyncRunCompleted { .. } => "SyncRunCompleted",
            SyncRunEvent::SyncRunFailed { .. } => "SyncRunFailed",
            SyncRunEvent::SyncRunCancelled { .. } => "SyncRunCancelled",
        }
        .to_string()
    }
    fn event_version(&self) -> String {
        "1".to_string()
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SyncRunError {
    #[error("Sync run not found")]
    NotFound,
    #[error("sync run already started")]
    AlreadyStarted,
    #[error("sync run already finished")]
    Finished,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncRun {
    pub id: Option<Uuid>,
    #[serde(default)]
    pub queued: bool,
    pub finished: bool,
}

impl Aggregate for SyncRun {
    const TYPE: &'static str = "SyncRun";
    type Command = SyncRunCommand;
    type Event = SyncRunEvent;
    type Error = SyncRunError;
    type Services = ();

    async fn handle(
        &mut self,
        command: SyncRunCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), SyncRunError> {
        if let SyncRunCommand::Queue {
            id,
            user_id,
            provider,
            source,
            data_types,
            at,
        } = command
        {
            if self.id.is_some() {
                return Err(SyncRunError::AlreadyStarted);
            }
            let event = SyncRunEvent::SyncRunQueued {
                id,
                user_id,
                provider,
                source,
                at,
                data_types,
            };
            sink.write(event, self).await;
            return Ok(());
        }
        if let SyncRunCommand::Start {
            id,
            user_id,
            provider,
            source,
            primary_user_id,
            at,
        } = command
        {
            if self.id.is_some() && !self.queued {
                return Err(SyncRunError::AlreadyStarted);
            }
            let event = SyncRunEvent::SyncRunStarted {
                id,
                user_id,
                provider,
                source,
                primary_user_id,
                at,
            };
            sink.write(event, self).await;
            return Ok(());
        }
        if self.id.is_none() {
            return Err(SyncRunError::NotFound);
        }
        if self.finished {
            return Err(SyncRunError::Finished);
        }
        let event = match command {
            SyncRunCommand::Progress {
                processed,
                message,
                at,
            } => SyncRunEvent::SyncRunProgressed {
                processed,
                message,
                at,
                stage: None,
                total: None,
            },
            SyncRunCommand::Advance {
                stage,
                processed,
                total,
                message,
                at,
            } => SyncRunEvent::SyncRunProgressed {
                processed,
                message,
                at,
                stage: Some(stage),
                total,
            },
            SyncRunCommand::Complete { processed, at } => SyncRunEvent::SyncRunCompleted {
                processed,
                at,
                outcome: None,
                error: None,
                metadata: Metadata::new(),
            },
            SyncRunCommand::Finish {
                outcome,
                processed,
                error,
                metadata,
                at,
            } => SyncRunEvent::SyncRunCompleted {
                processed,
                at,
                outcome: Some(outcome),
                error,
                metadata,
            },
            SyncRunCommand::Fail { error, at } => SyncRunEvent::SyncRunFailed { error, at },
            SyncRunCommand::Cancel { message, at } => {
                SyncRunEvent::SyncRunCancelled { message, at }
            }
            SyncRunCommand::Start { .. } | SyncRunCommand::Queue { .. } => {
                unreachable!("handled above")
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: SyncRunEvent) {
        match event {
            SyncRunEvent::SyncRunQueued { id, .. } => {
                self.id = Some(id);
                self.queued = true;
            }
            SyncRunEvent::SyncRunStarted { id, .. } => {
                self.id = Some(id);
                self.queued = false;
            }
            SyncRunEvent::SyncRunProgressed { .. } => {}
            SyncRunEvent::SyncRunCompleted { .. }
            | SyncRunEvent::SyncRunFailed { .. }
            | SyncRunEvent::SyncRunCancelled { .. } => self.finished = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    fn at() -> DateTime<Utc> {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    fn started() -> SyncRunEvent {
        SyncRunEvent::SyncRunStarted {
            id: Uuid::nil(),
            user_id: Uuid::nil(),
            provider: "apple".into(),
            source: "xml_import".into(),
            primary_user_id: None,
            at: at(),
        }
    }

    #[test]
    fn a_queued_run_starts_once() {
        let queued = SyncRunEvent::SyncRunQueued {
            id: Uuid::nil(),
            user_id: Uuid::nil(),
            provider: "oura".into(),
            source: "pull".into(),
            at: at(),
            data_types: vec![],
        };
        let start = SyncRunCommand::Start {
            id: Uuid::nil(),
            user_id: Uuid::nil(),
            provider: "oura".into(),
            source: "pull".into(),
            primary_user_id: None,
            at: at(),
        };
        TestFramework::<SyncRun>::with(())
            .given(vec![queued.clone()])
            .when(start.clone())
            .then_expect_events(vec![SyncRunEvent::SyncRunStarted {
                id: Uuid::nil(),
                user_id: Uuid::nil(),
                provider: "oura".into(),
                source: "pull".into(),
                primary_user_id: None,
                at: at(),
            }]);
        TestFramework::<SyncRun>::with(())
            .given(vec![queued, started()])
            .when(start)
            .then_expect_error(SyncRunError::AlreadyStarted);
    }

    #[test]
    fn progress_then_complete_and_nothing_after() {
        TestFramework::<SyncRun>::with(())
            .given(vec![started()])
            .when(SyncRunCommand::Progress {
                processed: 5,
                message: None,
                at: at(),
            })
            .then_expect_events(vec![SyncRunEvent::SyncRunProgressed {
                processed: 5,
                message: None,
                at: at(),
                stage: None,
                total: None,
            }]);
        TestFramework::<SyncRun>::with(())
            .given(vec![
                started(),
                SyncRunEvent::SyncRunCompleted {
                    processed: 5,
                    at: at(),
                    outcome: None,
                    error: None,
                    metadata: Metadata::new(),
                },
            ])
            .when(SyncRunCommand::Fail {
                error: "x".into(),
                at: at(),
            })
            .then_expect_error(SyncRunError::Finished);
        TestFramework::<SyncRun>::with(())
            .given_no_previous_events()
            .when(SyncRunCommand::Complete {
                processed: 0,
                at: at(),
            })
            .then_expect_error(SyncRunError::NotFound);
    }

    #[test]
    fn stages_outcomes_and_cancel_are_recorded_and_old_events_still_read() {
        TestFramework::<SyncRun>::with(())
            .given(vec![started()])
            .when(SyncRunCommand::Advance {
                stage: Stage::Fetching,
                processed: 0,
                total: Some(3),
                message: None,
                at: at(),
            })
            .then_expect_events(vec![SyncRunEvent::SyncRunProgressed {
                processed: 0,
                message: None,
                at: at(),
                stage: Some(Stage::Fetching),
                total: Some(3),
            }]);
        TestFramework::<SyncRun>::with(())
            .given(vec![started()])
            .when(SyncRunCommand::Cancel {
                message: None,
                at: at(),
            })
            .then_expect_events(vec![SyncRunEvent::SyncRunCancelled {
                message: None,
                at: at(),
            }]);
        TestFramework::<SyncRun>::with(())
            .given(vec![
                started(),
                SyncRunEvent::SyncRunCancelled {
                    message: None,
                    at: at(),
                },
            ])
            .when(SyncRunCommand::Finish {
                outcome: Outcome::Partial,
                processed: 1,
                error: None,
                metadata: Metadata::new(),
                at: at(),
            })
            .then_expect_error(SyncRunError::Finished);
        let old: SyncRunEvent = serde_json::from_value(serde_json::json!({
            "type": "SyncRunCompleted", "processed": 2, "at": "2026-01-01T00:00:00Z"
        }))
        .unwrap();
        assert_eq!(
            old,
            SyncRunEvent::SyncRunCompleted {
                processed: 2,
                at: at(),
                outcome: None,
                error: None,
                metadata: Metadata::new(),
            }
        );
    }
}
