//! Apple export timestamps (`2024-03-10 01:59:00 -0800`) → UTC microseconds + zone offset.
//!
//! Hand-rolled because it runs three times per record; the offset is kept (Open Wearables drops it,
//! reference §11, which puts samples on the wrong local day).

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`].
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn digits(b: &[u8]) -> Option<u32> {
    let mut v = 0u32;
    for &c in b {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + d as u32;
    }
    Some(v)
}

/// Parses `YYYY-MM-DD HH:MM:SS ±HHMM` (also `T` as separator, `±HH:MM` or `Z`), returning UTC
/// microseconds since the epoch and the offset in minutes.
pub fn parse_apple_date(b: &[u8]) -> Option<(i64, i16)> {
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if b[10] != b' ' && b[10] != b'T' {
        return None;
    }
    let y = digits(&b[0..4])? as i64;
    let mo = digits(&b[5..7])?;
    let d = digits(&b[8..10])?;
    let h = digits(&b[11..13])? as i64;
    let mi = digits(&b[14..16])? as i64;
    let s = digits(&b[17..19])? as i64;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let tz = b[19..].strip_prefix(b" ").unwrap_or(&b[19..]);
    let offset_min: i64 = match tz {
        b"Z" | b"" => 0,
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (oh, om) = match rest {
                [a, b2, b':', c, d2] | [a, b2, c, d2] => (digits(&[*a, *b2])?, digits(&[*c, *d2])?),
                _ => return None,
            };
            if oh > 18 || om > 59 {
                return None;
            }
            let v = (oh * 60 + om) as i64;
            if *sign == b'-' {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    let local_s = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s;
    Some(((local_s - offset_min * 60) * 1_000_000, offset_min as i16))
}

/// Formats UTC microseconds at a zone offset the way Apple exports do.
pub fn format_apple_date(utc_us: i64, offset_min: i16, out: &mut [u8; 25]) {
    let local = utc_us.div_euclid(1_000_000) + offset_min as i64 * 60;
    let (y, m, d) = civil_from_days(local.div_euclid(86_400));
    let sod = local.rem_euclid(86_400);
    let put2 = |o: &mut [u8], v: i64| {
        o[0] = b'0' + (v / 10) as u8;
        o[1] = b'0' + (v % 10) as u8;
    };
    put2(&mut out[0..2], y / 100);
    put2(&mut out[2..4], y % 100);
    out[4] = b'-';
    put2(&mut out[5..7], m as i64);
    out[7] = b'-';
    put2(&mut out[8..10], d as i64);
    out[10] = b' ';
    put2(&mut out[11..13], sod / 3600);
    out[13] = b':';
    put2(&mut out[14..16], sod / 60 % 60);
    out[16] = b':';
    put2(&mut out[17..19], sod % 60);
    out[19] = b' ';
    out[20] = if offset_min < 0 { b'-' } else { b'+' };
    let o = (offset_min as i64).abs();
    put2(&mut out[21..23], o / 60);
    put2(&mut out[23..25], o % 60);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_offset_and_converts_to_utc() {
        // 01:59 PST is 09:59 UTC.
        let (us, off) = parse_apple_date(b"2024-03-10 01:59:00 -0800").unwrap();
        assert_eq!(off, -480);
        assert_eq!(us, 1_710_064_740_000_000);
        // One minute of wall time later DST has started: 03:00 PDT = 10:00 UTC.
        let (us2, off2) = parse_apple_date(b"2024-03-10 03:00:00 -0700").unwrap();
        assert_eq!(off2, -420);
        assert_eq!(us2 - us, 60_000_000);
        let (_, ist) = parse_apple_date(b"2024-01-01 12:00:00 +0530").unwrap();
        assert_eq!(ist, 330);
        let (_, nepal) = parse_apple_date(b"2024-01-01T12:00:00+05:45").unwrap();
        assert_eq!(nepal, 345);
        assert_eq!(parse_apple_date(b"1970-01-01 00:00:00 +0000"), Some((0, 0)));
    }

    #[test]
    fn rejects_malformed_dates() {
        for bad in [
            &b""[..],
            b"2024-03-10",
            b"2024-13-10 01:59:00 -0800",
            b"2024-03-10 25:59:00 -0800",
            b"2024-03-10 01:59:00 -08",
            b"2024/03/10 01:59:00 -0800",
            b"2024-03-10 01:5x:00 -0800",
        ] {
            assert_eq!(
                parse_apple_date(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn civil_round_trip_and_format() {
        for days in [-800_000, -1, 0, 1, 19_000, 19_792, 2_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        let mut buf = [0u8; 25];
        let src = b"2024-11-03 01:30:00 -0700";
        let (us, off) = parse_apple_date(src).unwrap();
        format_apple_date(us, off, &mut buf);
        assert_eq!(&buf, src);
    }
}
