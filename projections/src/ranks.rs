//! Reading source priorities and ranking a user's data sources (shared by the read models that
//! merge sources and by the API, so both rank alike).

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use uuid::Uuid;
use wearhouse_domain::priority::Priorities;

/// Defaults overridden by the `source_priorities` read model.
pub async fn priorities(client: &impl GenericClient) -> Result<Priorities, tokio_postgres::Error> {
    let mut p = Priorities::default();
    for r in client
        .query("SELECT kind, name, priority FROM source_priorities", &[])
        .await?
    {
        let (kind, name, priority): (String, String, i32) = (r.get(0), r.get(1), r.get(2));
        match kind.as_str() {
            "provider" => p.providers.insert(name, priority),
            _ => p.device_types.insert(name, priority),
        };
    }
    Ok(p)
}

/// Every data source of `user` with its rank (lower is better).
pub async fn source_ranks(
    client: &impl GenericClient,
    user: Uuid,
) -> Result<HashMap<Uuid, u32>, tokio_postgres::Error> {
    let p = priorities(client).await?;
    Ok(client
        .query(
            "SELECT id, provider, device_type FROM data_sources WHERE user_id = $1",
            &[&user],
        )
        .await?
        .iter()
        .map(|r| {
            let provider: String = r.get(1);
            let device_type: Option<String> = r.get(2);
            (r.get(0), p.rank(&provider, device_type.as_deref()))
        })
        .collect())
}

/// The rank of a source missing from the map (not discovered yet): after every known one.
pub const UNRANKED: u32 = u32::MAX;
