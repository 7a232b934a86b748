//! Times on the command line: RFC 3339 in, RFC 3339 (UTC) out.

use super::{CliResult, Failure};

/// Parses RFC 3339 (`2026-01-02T03:04:05Z`, `…+02:00`, fractional seconds
/// allowed) or Unix seconds into Unix ms.
pub fn parse_time(text: &str) -> CliResult<u64> {
    let bad = || {
        Failure::usage(format!(
            "invalid time `{text}`: expected RFC 3339 like 2026-01-02T03:04:05Z, or Unix seconds"
        ))
    };
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(secs * 1000);
    }
    let b = text.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let n = |r: std::ops::Range<usize>| {
        text.get(r)
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(bad)
    };
    let (y, mo, d, h, mi, s) = (
        n(0..4)?,
        n(5..7)?,
        n(8..10)?,
        n(11..13)?,
        n(14..16)?,
        n(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return Err(bad());
    }
    let mut rest = &text[19..];
    let mut ms = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.len() - frac.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let f = &frac[..digits];
        ms = format!("{f:0<3}")[..3].parse().map_err(|_| bad())?;
        rest = &frac[digits..];
    }
    let offset_min = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && &rest[3..4] == ":" =>
        {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (n(text.len() - 5..text.len() - 3)? * 60 + n(text.len() - 2..text.len())?)
        }
        _ => return Err(bad()),
    };
    // Days from civil (Howard Hinnant's algorithm).
    let (y2, m2) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86400 + h * 3600 + mi * 60 + s - offset_min * 60;
    u64::try_from(secs * 1000 + ms).map_err(|_| bad())
}

/// Unix ms → `2026-01-02T03:04:05.678Z`.
pub fn format_time(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z").ok(), Some(0));
        assert_eq!(
            parse_time("2026-11-23T18:00:00Z").ok(),
            Some(1_795_456_800_000)
        );
        assert_eq!(
            parse_time("2026-11-23T20:00:00+02:00").ok(),
            Some(1_795_456_800_000)
        );
        assert_eq!(
            parse_time("2026-11-23T18:00:00.250Z").ok(),
            Some(1_795_456_800_250)
        );
        assert_eq!(parse_time("1795456800").ok(), Some(1_795_456_800_000));
        assert_eq!(format_time(1_795_456_800_250), "2026-11-23T18:00:00.250Z");
        for bad in [
            "tomorrow",
            "2026-13-01T00:00:00Z",
            "2026-11-23T18:00:00",
            "2026-11-23",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}
