//! Where a change came from beyond its actor: the client's address and user agent of the HTTP
//! request that caused it. Set once per request (and per job, from what the request left with
//! the job) as a task-local, and written into the metadata of every entry appended under it,
//! so no call site between the request and the log has to carry it.

use std::future::Future;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
}

tokio::task_local! {
    static ORIGIN: Origin;
}

/// Runs `f` with `origin` as the origin of what it appends.
pub async fn scope<F: Future>(origin: Origin, f: F) -> F::Output {
    ORIGIN.scope(origin, f).await
}

/// The origin of the current task, if one was set.
pub fn current() -> Option<Origin> {
    ORIGIN.try_with(Origin::clone).ok()
}

/// Adds the current origin's fields to an entry's metadata.
pub fn annotate(metadata: &mut serde_json::Map<String, serde_json::Value>) {
    if let Some(o) = current() {
        annotate_with(metadata, &o);
    }
}

/// Adds `origin`'s fields to an entry's metadata (work that appends for several requests at
/// once names each entry's own).
pub fn annotate_with(metadata: &mut serde_json::Map<String, serde_json::Value>, origin: &Origin) {
    for (key, value) in [
        ("client_ip", &origin.client_ip),
        ("user_agent", &origin.user_agent),
    ] {
        if let Some(v) = value {
            metadata.insert(key.into(), v.clone().into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn metadata_gets_the_origin_only_inside_its_scope() {
        let mut outside = serde_json::Map::new();
        annotate(&mut outside);
        assert!(outside.is_empty());
        let origin = Origin {
            client_ip: Some("203.0.113.7".into()),
            user_agent: Some("curl/8".into()),
        };
        let inside = scope(origin, async {
            let mut m = serde_json::Map::new();
            annotate(&mut m);
            m
        })
        .await;
        assert_eq!(inside["client_ip"], "203.0.113.7");
        assert_eq!(inside["user_agent"], "curl/8");
    }
}
