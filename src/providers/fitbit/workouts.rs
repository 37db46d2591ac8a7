//! Fitbit's activity log passed through live. Fitbit's Web API reads logged activities only
//! as a list (one activity's TCX is not a JSON workout): no detail.

use super::{Fitbit, LIST};
use crate::providers::{PullRequest, VendorWorkouts, WorkoutListQuery};

impl VendorWorkouts for Fitbit {
    /// Fitbit takes one bound only (`afterDate`, ascending), `limit` up to 100 and `offset`.
    fn list_requests(&self, q: &WorkoutListQuery) -> Vec<PullRequest> {
        vec![PullRequest {
            path: LIST.into(),
            query: vec![
                ("afterDate".into(), q.start.format("%Y-%m-%d").to_string()),
                ("sort".into(), "asc".into()),
                ("limit".into(), q.limit.clamp(1, 100).to_string()),
                ("offset".into(), q.offset.to_string()),
            ],
        }]
    }

    fn detail_request(&self, _id: &str) -> Option<PullRequest> {
        None
    }
}
