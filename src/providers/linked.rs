//! Linked accounts (the contract's multi-account rule): several users may connect the same
//! provider account. Whatever that account's data is, every linked user receives it; one
//! connection talks to the provider for all of them. This module is the only place that says
//! who is linked and whose token is used; pulls, pushes, pings and backfills all ask it.

use deadpool_postgres::Pool;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum LinkedError {
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
}

/// The users of one provider account: `primary` talks to the provider (its token fetches,
/// downloads and pulls), `others` receive what it brings.
#[derive(Debug, Clone, PartialEq)]
pub struct Linked {
    pub primary: Uuid,
    pub others: Vec<Uuid>,
}

impl Linked {
    /// Every linked user, the primary first.
    pub fn all(&self) -> Vec<Uuid> {
        std::iter::once(self.primary)
            .chain(self.others.iter().copied())
            .collect()
    }
}

/// The users whose active connection to `provider` is account `account`, oldest connection
/// first. For a delivery the provider addressed to the account (a push, a ping), the oldest
/// connection is the primary: it is the one most likely to hold a working grant.
pub async fn of_account(
    pool: &Pool,
    provider: &str,
    account: &str,
) -> Result<Option<Linked>, LinkedError> {
    let users: Vec<Uuid> = pool
        .get()
        .await?
        .query(
            "SELECT user_id FROM connections WHERE provider = $1 AND provider_user_id = $2 \
             AND status = 'active' ORDER BY created_at, user_id",
            &[&provider, &account],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(users.split_first().map(|(first, rest)| Linked {
        primary: *first,
        others: rest.to_vec(),
    }))
}

/// For work a user asked for (a pull, a backfill): that user's connection is the primary and
/// the other users linked to the same account receive what it brings.
pub async fn around(pool: &Pool, user: Uuid, provider: &str) -> Result<Linked, LinkedError> {
    let others = match account_of(pool, user, provider).await? {
        Some(account) => of_account(pool, provider, &account)
            .await?
            .map(|l| l.all().into_iter().filter(|u| *u != user).collect())
            .unwrap_or_default(),
        None => Vec::new(),
    };
    Ok(Linked {
        primary: user,
        others,
    })
}

/// The provider account of `user`'s active connection to `provider`.
pub async fn account_of(
    pool: &Pool,
    user: Uuid,
    provider: &str,
) -> Result<Option<String>, LinkedError> {
    Ok(pool
        .get()
        .await?
        .query_opt(
            "SELECT provider_user_id FROM connections WHERE user_id = $1 AND provider = $2 \
             AND status = 'active' AND provider_user_id IS NOT NULL",
            &[&user, &provider],
        )
        .await?
        .map(|r| r.get(0)))
}
