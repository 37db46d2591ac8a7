//! Postgres session advisory locks held by a guard. A session lock belongs to its connection,
//! not to a transaction, so a pooled connection returned with the lock still held would keep it
//! for whoever gets the connection next. The guard owns the connection: [`SessionLock::release`]
//! unlocks and gives the connection back to the pool; any other way out (an early return, `?`,
//! a cancelled future, a panic) drops the guard, which detaches the connection from the pool and
//! closes it, and Postgres releases every lock of a closed session.

use deadpool_postgres::Object;
use tokio_postgres::types::ToSql;

/// What a lock is keyed by.
#[derive(Debug, Clone)]
pub enum LockKey {
    /// A fixed 64-bit key.
    Id(i64),
    /// A name, hashed by Postgres (`hashtextextended(name, 7261)`).
    Name(String),
}

impl LockKey {
    fn sql(&self, function: &str) -> String {
        match self {
            LockKey::Id(_) => format!("SELECT {function}($1::int8)"),
            LockKey::Name(_) => format!("SELECT {function}(hashtextextended($1, 7261))"),
        }
    }

    fn param(&self) -> &(dyn ToSql + Sync) {
        match self {
            LockKey::Id(id) => id,
            LockKey::Name(name) => name,
        }
    }

    /// Whether any session holds this lock in the current database, read from `pg_locks`, so
    /// asking never takes the lock from someone about to.
    pub async fn is_held(&self, client: &Object) -> Result<bool, tokio_postgres::Error> {
        let key = match self {
            LockKey::Id(_) => "$1::int8",
            LockKey::Name(_) => "hashtextextended($1, 7261)",
        };
        // A 64-bit key shows in pg_locks as classid (high half) and objid (low half).
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM pg_locks, (SELECT {key} AS k) h \
             WHERE locktype = 'advisory' AND granted AND objsubid = 1 \
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND classid = ((h.k >> 32) & 4294967295)::oid AND objid = (h.k & 4294967295)::oid)"
        );
        Ok(client.query_one(&sql, &[self.param()]).await?.get(0))
    }
}

/// A held session advisory lock and the connection that holds it.
pub struct SessionLock {
    client: Option<Object>,
    key: LockKey,
}

impl SessionLock {
    /// Takes the lock on `client` if it is free; `None` (and the connection back in the pool)
    /// when another session holds it.
    pub async fn try_acquire(
        client: Object,
        key: LockKey,
    ) -> Result<Option<SessionLock>, tokio_postgres::Error> {
        // The guard exists before the lock is asked for: cancelled mid-query, it still closes
        // the connection rather than pool one that may hold the lock.
        let mut lock = SessionLock {
            client: Some(client),
            key,
        };
        let got: bool = lock
            .client()
            .query_one(&lock.key.sql("pg_try_advisory_lock"), &[lock.key.param()])
            .await?
            .get(0);
        if got {
            Ok(Some(lock))
        } else {
            // Holds nothing: the connection can go back to the pool.
            drop(lock.client.take());
            Ok(None)
        }
    }

    /// Waits for the lock on `client`.
    pub async fn acquire(
        client: Object,
        key: LockKey,
    ) -> Result<SessionLock, tokio_postgres::Error> {
        let lock = SessionLock {
            client: Some(client),
            key,
        };
        lock.client()
            .execute(&lock.key.sql("pg_advisory_lock"), &[lock.key.param()])
            .await?;
        Ok(lock)
    }

    /// The connection holding the lock (queries on it run inside the lock's session).
    pub fn client(&self) -> &Object {
        self.client.as_ref().expect("held until release or drop")
    }

    pub fn client_mut(&mut self) -> &mut Object {
        self.client.as_mut().expect("held until release or drop")
    }

    /// Unlocks and returns the connection to the pool. On error the guard is dropped, which
    /// closes the connection (and so releases the lock anyway).
    pub async fn release(mut self) -> Result<(), tokio_postgres::Error> {
        self.client()
            .execute(&self.key.sql("pg_advisory_unlock"), &[self.key.param()])
            .await?;
        drop(self.client.take());
        Ok(())
    }
}

impl Drop for SessionLock {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            drop(Object::take(client));
        }
    }
}
