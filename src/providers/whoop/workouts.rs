//! Whoop's workouts passed through live: `/v2/activity/workout` over an instant window, and
//! one workout by its id.

use super::{path, Whoop};
use crate::providers::{PullRequest, VendorWorkouts, WorkoutListQuery};

/// The largest page Whoop serves.
const MAX_LIMIT: u32 = 25;

impl VendorWorkouts for Whoop {
    /// Whoop pages with its own `nextToken`: `offset` has no counterpart.
    fn list_requests(&self, q: &WorkoutListQuery) -> Vec<PullRequest> {
        vec![PullRequest {
            path: path("workout").into(),
            query: vec![
                ("start".into(), q.start.to_rfc3339()),
                ("end".into(), q.end.to_rfc3339()),
                ("limit".into(), q.limit.clamp(1, MAX_LIMIT).to_string()),
            ],
        }]
    }

    fn detail_request(&self, id: &str) -> Option<PullRequest> {
        Some(PullRequest {
            path: format!("{}/{id}", path("workout")),
            query: vec![],
        })
    }
}
