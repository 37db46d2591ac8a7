//! Query-parameter rules shared by the data endpoints: the contract's datetime parsing (Unix
//! seconds or ISO 8601, date-only allowed, naive = UTC), the end-of-day rule, zone offsets, and
//! the opaque keyset cursors.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use uuid::Uuid;

use poem_openapi::Enum;

use super::ApiError;

fn bad_datetime(v: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Invalid datetime format: '{v}'. Expected ISO 8601 format or Unix timestamp."
    ))
}

/// Naive forms accepted (Python's `fromisoformat` family); a missing offset means UTC.
const NAIVE_FORMATS: [&str; 4] = [
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
];
const OFFSET_FORMATS: [&str; 4] = [
    "%Y-%m-%dT%H:%M:%S%.f%:z",
    "%Y-%m-%dT%H:%M%:z",
    "%Y-%m-%d %H:%M:%S%.f%:z",
    "%Y-%m-%dT%H:%M:%S%.f%z",
];

/// Parses a contract datetime: a number is Unix seconds (fractions allowed) in UTC, anything
/// else ISO 8601. The written offset is kept because the end-of-day rule looks at the local
/// time of day.
pub fn parse_datetime(raw: &str) -> Result<DateTime<FixedOffset>, ApiError> {
    let v = raw.trim();
    let utc = FixedOffset::east_opt(0).expect("zero offset");
    if let Ok(secs) = v.parse::<f64>() {
        if !secs.is_finite() {
            return Err(bad_datetime(raw));
        }
        let micros = (secs * 1e6).round();
        // Outside chrono's range (about ±262,000 years) is not a date.
        if micros.abs() > 8.0e18 {
            return Err(bad_datetime(raw));
        }
        return DateTime::from_timestamp_micros(micros as i64)
            .map(|d| d.with_timezone(&utc))
            .ok_or_else(|| bad_datetime(raw));
    }
    if let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        return Ok(utc.from_utc_datetime(&d.and_time(NaiveTime::MIN)));
    }
    // `Z` is the same instant as `+00:00`; normalise it so one format list covers both.
    let normalized = match v.strip_suffix(['Z', 'z']) {
        Some(rest) => format!("{rest}+00:00"),
        None => v.to_string(),
    };
    for f in OFFSET_FORMATS {
        if let Ok(d) = DateTime::parse_from_str(&normalized, f) {
            return Ok(d);
        }
    }
    for f in NAIVE_FORMATS {
        if let Ok(d) = NaiveDateTime::parse_from_str(v, f) {
            return Ok(utc.from_utc_datetime(&d));
        }
    }
    Err(bad_datetime(raw))
}

/// The exclusive upper bound for `end_time`: a value at exactly midnight (in its own offset)
/// covers that whole day, so `end_time=2024-03-10` includes the 10th.
pub fn end_bound(end: DateTime<FixedOffset>) -> DateTime<Utc> {
    let end_utc = end.with_timezone(&Utc);
    if end.time() == NaiveTime::MIN {
        end_utc + Duration::days(1)
    } else {
        end_utc
    }
}

/// Minutes east of UTC as the contract's `"+HH:MM"`.
pub fn format_offset(minutes: i16) -> String {
    let sign = if minutes < 0 { '-' } else { '+' };
    let m = minutes.unsigned_abs();
    format!("{sign}{:02}:{:02}", m / 60, m % 60)
}

/// Which way a page goes from its cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Backward,
}

/// A keyset position: the last (or, backward, the first) row of a page, ordered by
/// (time, data source, series type), which is unique per sample and per aggregated bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub time: DateTime<Utc>,
    pub data_source_id: Uuid,
    pub series_type: i16,
}

const PREV: &str = "prev_";

impl Cursor {
    /// The opaque form; `Backward` adds the contract's `prev_` prefix.
    pub fn encode(&self, direction: Direction) -> String {
        let plain = format!(
            "{}|{}|{}",
            self.time
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            self.data_source_id,
            self.series_type
        );
        let body = URL_SAFE_NO_PAD.encode(plain);
        match direction {
            Direction::Forward => body,
            Direction::Backward => format!("{PREV}{body}"),
        }
    }

    pub fn decode(raw: &str) -> Result<(Cursor, Direction), ApiError> {
        let bad = || {
            ApiError::bad_request(format!(
                "Invalid cursor format: '{raw}'. Expected 'timestamp|data_source_id|series_type'."
            ))
        };
        let (body, direction) = match raw.strip_prefix(PREV) {
            Some(rest) => (rest, Direction::Backward),
            None => (raw, Direction::Forward),
        };
        // Padding is optional on input: some clients re-pad what they were given.
        let bytes = URL_SAFE_NO_PAD
            .decode(body.trim_end_matches('='))
            .map_err(|_| bad())?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        let mut parts = text.split('|');
        let (Some(t), Some(ds), Some(st), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let cursor = Cursor {
            time: DateTime::parse_from_rfc3339(t)
                .map_err(|_| bad())?
                .with_timezone(&Utc),
            data_source_id: ds.parse().map_err(|_| bad())?,
            series_type: st.parse().map_err(|_| bad())?,
        };
        Ok((cursor, direction))
    }
}

/// The contract's record cursor, `"<ISO timestamp>|<uuid>"`: the position of a record in
/// (time, id) order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordCursor {
    pub time: DateTime<Utc>,
    pub id: Uuid,
}

impl RecordCursor {
    pub fn encode(&self, direction: Direction) -> String {
        let plain = format!(
            "{}|{}",
            self.time
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            self.id
        );
        let body = URL_SAFE_NO_PAD.encode(plain);
        match direction {
            Direction::Forward => body,
            Direction::Backward => format!("{PREV}{body}"),
        }
    }

    pub fn decode(raw: &str) -> Result<(RecordCursor, Direction), ApiError> {
        let bad = || {
            ApiError::bad_request(format!(
                "Invalid cursor format: '{raw}'. Expected 'timestamp|id'."
            ))
        };
        let (body, direction) = match raw.strip_prefix(PREV) {
            Some(rest) => (rest, Direction::Backward),
            None => (raw, Direction::Forward),
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(body.trim_end_matches('='))
            .map_err(|_| bad())?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        let (t, id) = text.split_once('|').ok_or_else(bad)?;
        Ok((
            RecordCursor {
                time: DateTime::parse_from_rfc3339(t)
                    .map_err(|_| bad())?
                    .with_timezone(&Utc),
                id: id.parse().map_err(|_| bad())?,
            },
            direction,
        ))
    }
}

/// A date cursor for the daily summaries: `"<date>"`, opaque like the others.
pub fn encode_date_cursor(date: NaiveDate, direction: Direction) -> String {
    let body = URL_SAFE_NO_PAD.encode(date.to_string());
    match direction {
        Direction::Forward => body,
        Direction::Backward => format!("{PREV}{body}"),
    }
}

pub fn decode_date_cursor(raw: &str) -> Result<(NaiveDate, Direction), ApiError> {
    let bad = || ApiError::bad_request(format!("Invalid cursor format: '{raw}'. Expected 'date'."));
    let (body, direction) = match raw.strip_prefix(PREV) {
        Some(rest) => (rest, Direction::Backward),
        None => (raw, Direction::Forward),
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(body.trim_end_matches('='))
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    // Tolerate the upstream's three-field form, whose first field is the date.
    let date = text.split('|').next().unwrap_or_default();
    Ok((date.parse().map_err(|_| bad())?, direction))
}

/// A request's local date from a contract datetime: the date as written (its own offset).
pub fn local_date_param(raw: &str) -> Result<NaiveDate, ApiError> {
    Ok(parse_datetime(raw)?.date_naive())
}

/// Bucket width of an aggregated response; `raw` returns the samples themselves.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    #[oai(rename = "raw")]
    Raw,
    #[oai(rename = "1min")]
    OneMinute,
    #[oai(rename = "5min")]
    FiveMinutes,
    #[oai(rename = "15min")]
    FifteenMinutes,
    #[oai(rename = "1hour")]
    OneHour,
}

impl Resolution {
    /// The bucket width as a Postgres interval literal; `None` for raw.
    pub fn interval(self) -> Option<&'static str> {
        match self {
            Resolution::Raw => None,
            Resolution::OneMinute => Some("1 minute"),
            Resolution::FiveMinutes => Some("5 minutes"),
            Resolution::FifteenMinutes => Some("15 minutes"),
            Resolution::OneHour => Some("1 hour"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn detail(e: ApiError) -> String {
        match e {
            ApiError::BadRequest(d) => d.0.detail,
            _ => panic!("expected 400"),
        }
    }

    #[test]
    fn parses_unix_seconds_including_fractions() {
        assert_eq!(
            parse_datetime("1710035940").unwrap(),
            utc("2024-03-10T01:59:00Z")
        );
        assert_eq!(
            parse_datetime("1710035940.25").unwrap(),
            utc("2024-03-10T01:59:00.25Z")
        );
        assert_eq!(parse_datetime("0").unwrap(), utc("1970-01-01T00:00:00Z"));
    }

    #[test]
    fn parses_iso_forms_keeping_the_written_offset() {
        let d = parse_datetime("2024-03-10T01:59:00-08:00").unwrap();
        assert_eq!(d, utc("2024-03-10T09:59:00Z"));
        assert_eq!(d.offset().local_minus_utc(), -8 * 3600);
        assert_eq!(
            parse_datetime("2024-03-10T01:59:00Z").unwrap(),
            utc("2024-03-10T01:59:00Z")
        );
        assert_eq!(
            parse_datetime("2024-03-10T01:59:00.5+0100").unwrap(),
            utc("2024-03-10T00:59:00.5Z")
        );
        assert_eq!(
            parse_datetime("2024-03-10 01:59").unwrap(),
            utc("2024-03-10T01:59:00Z")
        );
        // Naive and date-only values are UTC.
        assert_eq!(
            parse_datetime("2024-03-10T01:59:00").unwrap(),
            utc("2024-03-10T01:59:00Z")
        );
        assert_eq!(
            parse_datetime("2024-03-10").unwrap(),
            utc("2024-03-10T00:00:00Z")
        );
    }

    #[test]
    fn rejects_garbage_with_the_contract_message() {
        for bad in [
            "",
            "yesterday",
            "2024-13-01",
            "2024-03-10T25:00:00",
            "NaN",
            "inf",
            "1e30",
        ] {
            let msg = detail(parse_datetime(bad).unwrap_err());
            assert_eq!(
                msg,
                format!(
                    "Invalid datetime format: '{bad}'. Expected ISO 8601 format or Unix timestamp."
                )
            );
        }
    }

    #[test]
    fn end_of_day_rule_extends_only_exact_local_midnight() {
        let date_only = parse_datetime("2024-03-10").unwrap();
        assert_eq!(end_bound(date_only), utc("2024-03-11T00:00:00Z"));
        // Midnight in the written offset counts, whatever the UTC time of day is.
        let local_midnight = parse_datetime("2024-03-10T00:00:00-08:00").unwrap();
        assert_eq!(end_bound(local_midnight), utc("2024-03-11T08:00:00Z"));
        let one_second_later = parse_datetime("2024-03-10T00:00:01Z").unwrap();
        assert_eq!(end_bound(one_second_later), utc("2024-03-10T00:00:01Z"));
        let a_microsecond_later = parse_datetime("2024-03-10T00:00:00.000001Z").unwrap();
        assert_eq!(
            end_bound(a_microsecond_later),
            utc("2024-03-10T00:00:00.000001Z")
        );
        // Unix seconds are UTC, so UTC midnight extends.
        let unix_midnight = parse_datetime("1710028800").unwrap();
        assert_eq!(end_bound(unix_midnight), utc("2024-03-11T00:00:00Z"));
    }

    #[test]
    fn offsets_format_as_hh_mm() {
        assert_eq!(format_offset(0), "+00:00");
        assert_eq!(format_offset(-480), "-08:00");
        assert_eq!(format_offset(330), "+05:30");
        assert_eq!(format_offset(-30), "-00:30");
    }

    #[test]
    fn cursor_round_trips_both_directions() {
        let c = Cursor {
            time: utc("2024-03-10T01:59:00.123456Z"),
            data_source_id: Uuid::new_v4(),
            series_type: 81,
        };
        let fwd = c.encode(Direction::Forward);
        assert!(fwd
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(Cursor::decode(&fwd).unwrap(), (c, Direction::Forward));
        let back = c.encode(Direction::Backward);
        assert!(back.starts_with("prev_"));
        assert_eq!(Cursor::decode(&back).unwrap(), (c, Direction::Backward));
        // Re-padded input still decodes.
        assert_eq!(Cursor::decode(&format!("{fwd}==")).unwrap().0, c);
    }

    #[test]
    fn record_and_date_cursors_round_trip() {
        let c = RecordCursor {
            time: utc("2024-03-10T01:59:00.5Z"),
            id: Uuid::new_v4(),
        };
        for d in [Direction::Forward, Direction::Backward] {
            assert_eq!(RecordCursor::decode(&c.encode(d)).unwrap(), (c, d));
        }
        assert!(RecordCursor::decode("nope").is_err());
        let day = NaiveDate::from_ymd_opt(2024, 3, 10).unwrap();
        assert_eq!(
            decode_date_cursor(&encode_date_cursor(day, Direction::Backward)).unwrap(),
            (day, Direction::Backward)
        );
        assert!(decode_date_cursor(&URL_SAFE_NO_PAD.encode("x|y")).is_err());
    }

    #[test]
    fn garbage_cursors_are_rejected() {
        let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s);
        let id = Uuid::new_v4();
        for bad in [
            "!!!".to_string(),
            "prev_".to_string(),
            b64("2024-03-10T01:59:00Z"),
            b64(&format!("2024-03-10T01:59:00Z|{id}")),
            b64(&format!("not-a-time|{id}|1")),
            b64("2024-03-10T01:59:00Z|not-a-uuid|1"),
            b64(&format!("2024-03-10T01:59:00Z|{id}|x")),
            b64(&format!("2024-03-10T01:59:00Z|{id}|1|extra")),
        ] {
            let msg = detail(Cursor::decode(&bad).unwrap_err());
            assert!(
                msg.starts_with(&format!("Invalid cursor format: '{bad}'.")),
                "{msg}"
            );
        }
    }
}
