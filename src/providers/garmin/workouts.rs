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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    #[test]
    fn a_window_is_listed_a_day_per_request() {
        let start: DateTime<Utc> = "2026-03-01T06:00:00Z".parse().unwrap();
        let q = WorkoutListQuery {
            start,
            end: start + Duration::hours(50),
            limit: 50,
            offset: 0,
        };
        let bounds: Vec<(String, String)> = Garmin
            .list_requests(&q)
            .into_iter()
            .map(|r| (r.query[0].1.clone(), r.query[1].1.clone()))
            .collect();
        let t = |h: i64| (start + Duration::hours(h)).timestamp().to_string();
        assert_eq!(
            bounds,
            vec![(t(0), t(24)), (t(24), t(48)), (t(48), t(50))],
            "contiguous, the last one short"
        );
        assert_eq!(
            Garmin.detail_request("a-2026-03-01").unwrap().path,
            "/wellness-api/rest/activities/a-2026-03-01"
        );
    }
}
