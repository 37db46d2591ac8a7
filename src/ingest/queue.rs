//! Runs uploaded imports in the background of `serve`, a few at a time, and removes each
//! uploaded file once its bytes are safely in the raw store and it has been processed.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use tokio::sync::Semaphore;
use tracing::{error, info};

use super::import::{self, ImportRequest, Outcome, Progress};
use crate::store::Commands;

#[derive(Clone)]
pub struct ImportQueue {
    commands: Commands,
    slots: Arc<Semaphore>,
    running: Arc<Mutex<HashSet<Uuid>>>,
    pub uploads: PathBuf,
}

impl ImportQueue {
    pub fn new(commands: Commands, uploads: PathBuf, concurrent: usize) -> Self {
        ImportQueue {
            commands,
            slots: Arc::new(Semaphore::new(concurrent.max(1))),
            running: Arc::default(),
            uploads,
        }
    }

    /// Whether import `id` was accepted by this process and has not finished.
    pub fn is_running(&self, id: Uuid) -> bool {
        self.running
            .lock()
            .map(|r| r.contains(&id))
            .unwrap_or(false)
    }

    /// Starts `req` in the background; its progress is visible through the imports read model.
    pub fn spawn(&self, req: ImportRequest) {
        let me = self.clone();
        if let Ok(mut r) = self.running.lock() {
            r.insert(req.import_id);
        }
        let running = Running {
            set: self.running.clone(),
            id: req.import_id,
        };
        tokio::spawn(async move {
            let _running = running;
            let _slot = me.slots.acquire().await;
            let path = req.path.clone();
            let id = req.import_id;
            let result = import::run(
                &me.commands.pool,
                &me.commands,
                req,
                Arc::new(Progress::default()),
            )
            .await;
            match result {
                Ok(Outcome::Completed { counts, .. }) => {
                    info!(import = %id, records = counts.records, "import completed")
                }
                Ok(Outcome::Failed { error }) => info!(import = %id, %error, "import failed"),
                Err(e) => error!(import = %id, error = %e, "import could not run"),
            }
            let _ = tokio::fs::remove_file(&path).await;
        });
    }
}

/// Marks an import as running in this process until dropped, however its task ends (a panic
/// included).
struct Running {
    set: Arc<Mutex<HashSet<Uuid>>>,
    id: Uuid,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(mut r) = self.set.lock() {
            r.remove(&self.id);
        }
    }
}
