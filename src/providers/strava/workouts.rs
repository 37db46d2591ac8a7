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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    #[test]
    fn offset_selects_the_page_holding_it() {
        let start: DateTime<Utc> = "2026-03-01T00:00:00Z".parse().unwrap();
        let q = WorkoutListQuery {
            start,
            end: start + chrono::Duration::days(1),
            limit: 10,
            offset: 25,
        };
        let r = &Strava.list_requests(&q)[0];
        let get = |k: &str| r.query.iter().find(|(n, _)| n == k).unwrap().1.clone();
        assert_eq!((get("page"), get("per_page")), ("3".into(), "10".into()));
        assert_eq!(get("after"), start.timestamp().to_string());
    }
}
