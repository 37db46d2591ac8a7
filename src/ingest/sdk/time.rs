//! Dates and zone offsets as the SDKs write them: ISO 8601 date-times (`Z` or `±HH:MM`,
//! fractional seconds optional) and `zoneOffset` strings (`+02:00`).

use chrono::{DateTime, NaiveDateTime, Utc};

/// Offsets beyond ±18 h do not exist (ISO 8601 / java.time bound).
const MAX_OFFSET_MIN: i32 = 18 * 60;

/// The instant, and the offset the string was written in (`None` for `Z` or no offset).
pub fn parse_date(s: &str) -> Option<(DateTime<Utc>, Option<i16>)> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        let secs = t.offset().local_minus_utc();
        let offset = (secs != 0 || !s.ends_with(['Z', 'z'])).then_some((secs / 60) as i16);
        return Some((
            t.with_timezone(&Utc),
            offset.filter(|o| *o != 0 || secs == 0),
        ));
    }
    // Android's `Instant.toString()` always has `Z`; a bare local time is read as UTC.
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some((t.and_utc(), None));
        }
    }
    None
}

/// `+HH:MM`, `-HHMM`, `+HH`, `Z` or `UTC` → minutes east of UTC.
pub fn parse_offset(s: &str) -> Option<i16> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("z") || s.eq_ignore_ascii_case("utc") {
        return Some(0);
    }
    let s = s
        .strip_prefix("UTC")
        .or_else(|| s.strip_prefix("GMT"))
        .unwrap_or(s);
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m) = match digits.len() {
        1 | 2 => (digits.parse::<i32>().ok()?, 0),
        4 => (
            digits[..2].parse::<i32>().ok()?,
            digits[2..].parse::<i32>().ok()?,
        ),
        _ => return None,
    };
    let total = sign * (h * 60 + m);
    (m < 60 && total.abs() <= MAX_OFFSET_MIN).then_some(total as i16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_offsets() {
        let (t, o) = parse_date("2026-03-01T08:00:00.250+02:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-03-01T06:00:00.250+00:00");
        assert_eq!(o, Some(120));
        assert_eq!(parse_date("2026-03-01T08:00:00Z").unwrap().1, None);
        assert!(parse_date("yesterday").is_none());
        assert_eq!(parse_offset("+02:00"), Some(120));
        assert_eq!(parse_offset("-0530"), Some(-330));
        assert_eq!(parse_offset("Z"), Some(0));
        assert_eq!(parse_offset("+25:00"), None);
        assert_eq!(parse_offset("Europe/Berlin"), None);
    }
}
