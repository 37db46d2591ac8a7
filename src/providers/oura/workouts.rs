//! Oura's workouts passed through live: the `workout` collection over a date window, and one
//! workout by its id.

use super::{Oura, COLLECTION};
use crate::providers::{PullRequest, VendorWorkouts, WorkoutListQuery};

impl VendorWorkouts for Oura {
    /// Oura pages with its own `next_token`, so `limit` and `offset` have no counterpart.
    fn list_requests(&self, q: &WorkoutListQuery) -> Vec<PullRequest> {
        vec![PullRequest {
            path: format!("{COLLECTION}workout"),
            query: vec![
                ("start_date".into(), q.start.date_naive().to_string()),
                ("end_date".into(), q.end.date_naive().to_string()),
            ],
        }]
    }

    fn detail_request(&self, id: &str) -> Option<PullRequest> {
        Some(PullRequest {
            path: format!("{COLLECTION}workout/{id}"),
            query: vec![],
        })
    }
}
