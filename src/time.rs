//! The one time conversion of the product: Unix seconds (always UTC) to and from text.
//!
//! The seed mixed local time and UTC (`datetime.fromtimestamp` next to `utcnow`); here every
//! instant is an `i64` of Unix seconds and is only ever printed as UTC.

/// Seconds in a day.
pub const DAY: i64 = 86_400;

/// Days since 1970-01-01 to a (year, month, day) civil date (proleptic Gregorian).
///
/// The classic era-based algorithm: exact for every `i64` day this product can meet.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The inverse of [`civil_from_days`].
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Day of the week, 0 = Monday .. 6 = Sunday.
pub fn weekday(unix_seconds: i64) -> u32 {
    // 1970-01-01 was a Thursday (3).
    (unix_seconds.div_euclid(DAY) + 3).rem_euclid(7) as u32
}

/// Seconds since midnight UTC.
pub fn seconds_of_day(unix_seconds: i64) -> i64 {
    unix_seconds.rem_euclid(DAY)
}

/// Length of [`write_ts`]'s output.
pub const TS_LEN: usize = 23;

/// Writes `YYYY-MM-DD HH:MM:SS.000` (the event `ts` format) for years 0..=9999.
pub fn write_ts(unix_seconds: i64, out: &mut [u8; TS_LEN]) {
    let (year, month, day) = civil_from_days(unix_seconds.div_euclid(DAY));
    let sod = seconds_of_day(unix_seconds) as u32;
    let year = year.clamp(0, 9999) as u32;
    put4(&mut out[0..4], year);
    out[4] = b'-';
    put2(&mut out[5..7], month);
    out[7] = b'-';
    put2(&mut out[8..10], day);
    out[10] = b' ';
    put2(&mut out[11..13], sod / 3600);
    out[13] = b':';
    put2(&mut out[14..16], sod / 60 % 60);
    out[16] = b':';
    put2(&mut out[17..19], sod % 60);
    out[19..23].copy_from_slice(b".000");
}

/// The `ts` text of an instant, as a `String` (for messages and tests).
pub fn format_ts(unix_seconds: i64) -> String {
    let mut buf = [0u8; TS_LEN];
    write_ts(unix_seconds, &mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// RFC 3339 UTC text, `YYYY-MM-DDTHH:MM:SSZ`, for checkpoints and logs.
pub fn format_rfc3339(unix_seconds: i64) -> String {
    let mut s = format_ts(unix_seconds);
    s.truncate(19);
    s.replace_range(10..11, "T");
    s.push('Z');
    s
}

/// Parses RFC 3339 (`2026-11-24T18:00:00Z`, `...T18:00:00.5+01:00`) or the `ts` format
/// (taken as UTC) into Unix seconds; a fraction of a second is truncated.
pub fn parse_rfc3339(text: &str) -> Result<i64, String> {
    let bad = || format!("'{text}' is not an RFC 3339 time (expected e.g. 2026-11-24T18:00:00Z)");
    let b = text.trim().as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return Err(bad());
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64, String> {
        let s = std::str::from_utf8(&b[r]).map_err(|_| bad())?;
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse::<i64>().map_err(|_| bad())
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return Err(bad());
    }
    if second > 60 {
        return Err(bad());
    }
    let mut rest = &b[19..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let digits = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(bad());
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        b"" | b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digits = [*h1, *h2, *m1, *m2];
            if !digits.iter().all(u8::is_ascii_digit) {
                return Err(bad());
            }
            let d = |c: u8| i64::from(c - b'0');
            let secs = (d(*h1) * 10 + d(*h2)) * 3600 + (d(*m1) * 10 + d(*m2)) * 60;
            if *sign == b'+' { secs } else { -secs }
        }
        _ => return Err(bad()),
    };
    let days = days_from_civil(year, month as u32, day as u32);
    Ok(days * DAY + hour * 3600 + minute * 60 + second - offset)
}

/// The wall clock now, in Unix seconds (fraction kept, for speed arithmetic).
pub fn now_unix_f64() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn put2(out: &mut [u8], v: u32) {
    out[0] = b'0' + (v / 10 % 10) as u8;
    out[1] = b'0' + (v % 10) as u8;
}

fn put4(out: &mut [u8], v: u32) {
    put2(&mut out[0..2], v / 100);
    put2(&mut out[2..4], v % 100);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_ts(0), "1970-01-01 00:00:00.000");
        assert_eq!(format_ts(1_704_067_221), "2024-01-01 00:00:21.000");
        // Leap day and the end of a leap year.
        assert_eq!(format_ts(1_709_164_800), "2024-02-29 00:00:00.000");
        assert_eq!(format_ts(1_735_689_599), "2024-12-31 23:59:59.000");
        assert_eq!(format_rfc3339(1_795_543_200), "2026-11-24T18:00:00Z");
    }

    #[test]
    fn civil_round_trip_over_centuries() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn parses_rfc3339_variants() {
        assert_eq!(parse_rfc3339("2026-11-24T18:00:00Z"), Ok(1_795_543_200));
        assert_eq!(parse_rfc3339("2026-11-24T18:00:00.999Z"), Ok(1_795_543_200));
        assert_eq!(
            parse_rfc3339("2026-11-24T19:00:00+01:00"),
            Ok(1_795_543_200)
        );
        assert_eq!(parse_rfc3339("2026-11-24 18:00:00"), Ok(1_795_543_200));
        for bad in [
            "",
            "2026-11-24",
            "2026-13-01T00:00:00Z",
            "2026-11-24T18:00:00X",
            "yesterday",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn weekday_of_dataset_start_is_monday() {
        assert_eq!(weekday(1_704_067_200), 0);
        assert_eq!(weekday(1_704_067_200 + 6 * DAY), 6);
    }
}
