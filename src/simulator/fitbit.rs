//! Fitbit's data, built from the payload structs its mapper reads: one run a day at 07:00
//! local (-05:00), log id `yyyymmdd·10 + 2`, `5 + D/10` km and `300 + D` kcal on day D of the
//! month, 30 minutes 30 seconds long.

use chrono::{Datelike, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::providers::fitbit::payload::{
    Activity, ActivityList, Pagination, Profile, ProfileUser, Source,
};
use crate::providers::payload::Lenient;

fn value<T: Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or_default()
}

pub fn profile(account: Option<String>) -> Profile {
    Profile {
        user: ProfileUser {
            encoded_id: account.unwrap_or_else(|| "FB1234".into()).into(),
            display_name: "Sim".into(),
        }
        .into(),
    }
}

pub fn activity(d: NaiveDate) -> Activity {
    let n = d.day() as i64;
    Activity {
        log_id: ((d.year() as i64 * 10_000 + d.month() as i64 * 100 + n) * 10 + 2).into(),
        activity_name: "Run".into(),
        activity_type_id: 90009.into(),
        start_time: format!("{d}T07:00:00.000-05:00").into(),
        duration: 1_830_000.into(),
        active_duration: 1_830_000.into(),
        calories: (300 + n).into(),
        distance: (5.0 + n as f64 / 10.0).into(),
        distance_unit: "Kilometer".into(),
        steps: 6000.into(),
        average_heart_rate: (145 + n % 10).into(),
        log_type: "auto_detected".into(),
        source: Source {
            id: "1".into(),
            name: "Charge 6".into(),
            kind: "tracker".into(),
        }
        .into(),
    }
}

/// A page of `/1/user/-/activities/list.json`: the runs after `after`, oldest first.
pub fn list(after: NaiveDate, offset: usize, limit: usize) -> ActivityList {
    let now = Utc::now();
    let all: Vec<NaiveDate> = after
        .succ_opt()
        .unwrap_or(after)
        .iter_days()
        .take(400)
        .take_while(|d| d.and_hms_opt(12, 0, 0).is_some_and(|t| t.and_utc() <= now))
        .collect();
    let page: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(limit)
        .map(|d| value(activity(*d)))
        .collect();
    let next = if offset + limit < all.len() {
        format!(
            "https://api.fitbit.com/1/user/-/activities/list.json?afterDate={after}&sort=asc&limit={limit}&offset={}",
            offset + limit
        )
    } else {
        String::new()
    };
    ActivityList {
        activities: page,
        pagination: Pagination {
            after_date: after.to_string().into(),
            limit: (limit as i64).into(),
            next: next.into(),
            offset: (offset as i64).into(),
            previous: Lenient(None),
            sort: "asc".into(),
        }
        .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::fitbit::{Fitbit, ACTIVITIES};
    use crate::providers::Provider;

    #[test]
    fn pages_round_trip_and_map() {
        let page = list("2026-03-01".parse().unwrap(), 0, 2);
        let body = value(&page);
        let back: ActivityList = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(back, page);
        assert!(!page
            .pagination
            .get()
            .unwrap()
            .next
            .str()
            .unwrap()
            .is_empty());
        let m = Fitbit.map(ACTIVITIES, &body, uuid::Uuid::nil()).unwrap();
        assert_eq!(m.workouts.len(), 2);
        assert_eq!(m.workouts[0].stats["distance_m"], 5200.0);
        assert_eq!(
            Fitbit.provider_user_id(&value(profile(None))).as_deref(),
            Some("FB1234")
        );
    }
}
