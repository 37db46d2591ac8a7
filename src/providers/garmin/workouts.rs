//! Garmin's activity summaries passed through live: `/wellness-api/rest/activities` by upload
//! time, which Garmin answers for at most a day per request, and one activity by its id.

use chrono::Duration;

use super::Garmin;
use crate::providers::{PullRequest, VendorWorkouts, WorkoutListQuery};

const ACTIVITIES: &str = "/wellness-api/rest/activities";

impl VendorWorkouts for Garmin {
    fn default_lookback(&self) -> Duration {
        Duration::days(1)
    }

    /// A month: 31 requests.
    fn max_window(&self) -> Option<Duration> {
        Some(Duration::days(31))
    }

    /// One request per day of the window (Garmin refuses longer upload ranges); Garmin does
    /// not page, so `limit` and `offset` have no counterpart.
    fn list_requests(&self, q: &WorkoutListQuery) -> Vec<PullRequest> {
        let mut out = Vec::new();
        let mut from = q.start;
        while from < q.end {
            let to = (from + Duration::days(1)).min(q.end);
            out.push(PullRequest {
                path: ACTIVITIES.into(),
                query: vec![
                    (
                        "uploadStartTimeInSeconds".into(),
                        from.timestamp().to_string(),
                    ),
                    ("uploadEndTimeInSeconds".into(), to.timestamp().to_string()),
                ],
            });
            from = to;
        }
        out
    }

    fn detail_request(&self, id: &str) -> Option<PullRequest> {
        Some(PullRequest {
            path: format!("{ACTIVITIES}/{id}"),
            query: vec![],
        })
    }
}
