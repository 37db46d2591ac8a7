//! The contract's `PaginatedResponse` envelope used by every data endpoint:
//! `{data, pagination: {next_cursor, previous_cursor, has_more, total_count}, metadata}`.

use chrono::{DateTime, Utc};
use poem_openapi::types::{ParseFromJSON, ToJSON};
use poem_openapi::Object;

use super::params::Resolution;

#[derive(Object, Debug, Clone, Default)]
pub struct Pagination {
    pub next_cursor: Option<String>,
    pub previous_cursor: Option<String>,
    pub has_more: bool,
    /// Size of the whole filtered set before cursor filtering; null when not computed.
    pub total_count: Option<i64>,
}

#[derive(Object, Debug, Clone, Default)]
pub struct Metadata {
    /// The contract's enum (`raw`, `1min`, `5min`, `15min`, `1hour`) or null; typed so that no
    /// other value (such as a daily bucket) can be sent.
    pub resolution: Option<Resolution>,
    pub sample_count: Option<i64>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
}

#[derive(Object, Debug, Clone)]
pub struct PaginatedResponse<T: ParseFromJSON + ToJSON> {
    pub data: Vec<T>,
    pub pagination: Pagination,
    pub metadata: Metadata,
}

/// A page fetched with `limit + 1` rows in the direction of travel, put back in ascending order.
pub struct Page<T> {
    pub items: Vec<T>,
    /// More rows exist beyond the page in the direction of travel.
    pub has_more: bool,
}

impl<T> Page<T> {
    /// `rows` come in travel order (descending when going backward); the surplus row only
    /// signals that more exist and is dropped.
    pub fn from_rows(mut rows: Vec<T>, limit: usize, backward: bool) -> Page<T> {
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        if backward {
            rows.reverse();
        }
        Page {
            items: rows,
            has_more,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_drops_the_probe_row_and_restores_ascending_order() {
        let p = Page::from_rows(vec![1, 2, 3], 2, false);
        assert_eq!((p.items, p.has_more), (vec![1, 2], true));
        let p = Page::from_rows(vec![5, 4, 3], 2, true);
        assert_eq!((p.items, p.has_more), (vec![4, 5], true));
        let p = Page::from_rows(vec![5, 4], 2, true);
        assert_eq!((p.items, p.has_more), (vec![4, 5], false));
    }
}
