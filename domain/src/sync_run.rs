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
        at: DateTime<Utc>,
    },
    Start {
        id: Uuid,
        user_id: Uuid,
        provider: String,
        /// `pull`, `push`, `backfill`, `apple_xml_import`, `linked_account`, ...
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
    },
    SyncRunCompleted {
        processed: u64,
        at: DateTime<Utc>,
    },
    SyncRunFailed {
        error: String,
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
            },
            SyncRunCommand::Complete { processed, at } => {
                SyncRunEvent::SyncRunCompleted { processed, at }
            }
            SyncRunCommand::Fail { error, at } => SyncRunEvent::SyncRunFailed { error, at },
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
            SyncRunEvent::SyncRunCompleted { .. } | SyncRunEvent::SyncRunFailed { .. } => {
                self.finished = true
            }
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
            source: "apple_xml_import".into(),
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
            }]);
        TestFramework::<SyncRun>::with(())
            .given(vec![
                started(),
                SyncRunEvent::SyncRunCompleted {
                    processed: 5,
                    at: at(),
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
}
