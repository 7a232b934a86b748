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
        return secs.checked_mul(1000).ok_or_else(bad);
    }
    let at = chrono::DateTime::parse_from_rfc3339(text).map_err(|_| bad())?;
    u64::try_from(at.timestamp_millis()).map_err(|_| bad())
}

/// Unix ms → `2026-01-02T03:04:05.678Z`.
pub fn format_time(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(
            || format!("{ms} ms"),
            |t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
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
            "2026-02-30T00:00:00Z",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}
