//! Strava's activities passed through live: the athlete's activities in a window, paged by
//! `limit` and `offset`, and one activity's detail.

use super::Strava;
use crate::providers::{PullRequest, VendorWorkouts, WorkoutListQuery};

impl VendorWorkouts for Strava {
    /// Strava pages by number: `offset` selects the page holding it (`limit` per page).
    fn list_requests(&self, q: &WorkoutListQuery) -> Vec<PullRequest> {
        let per_page = q.limit.max(1);
        vec![PullRequest {
            path: "/athlete/activities".into(),
            query: vec![
                ("after".into(), q.start.timestamp().to_string()),
                ("before".into(), q.end.timestamp().to_string()),
                ("page".into(), (q.offset / per_page + 1).to_string()),
                ("per_page".into(), per_page.to_string()),
            ],
        }]
    }

    fn detail_request(&self, id: &str) -> Option<PullRequest> {
        Some(PullRequest {
            path: format!("/activities/{id}"),
            query: vec![],
        })
    }
}
