//! Cron schedules: parsing, time zones, next fire times and misfire
//! handling. Pure functions, unit-tested; the leader's scheduler thread
//! calls them for the jobs that are due.
//!
//! Expressions are parsed by `croner`: standard 5-field (`m h dom mon dow`)
//! and 6-field with seconds (`s m h dom mon dow`), POSIX weekdays (0 and 7 =
//! Sunday), `L`, `#`, `W`, names (`MON`, `JAN`), and the macros `@yearly`,
//! `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`.
//! Times are evaluated in the job's IANA time zone (UTC by default).
//!
//! Daylight saving time, as croner and Vixie cron do it:
//! - a local time that does not exist (spring forward) fires once, at the
//!   first valid instant after the gap (for jobs with a fixed hour and
//!   minute; interval jobs such as `*/15 * * * *` simply have no slots in
//!   the gap);
//! - a local time that happens twice (fall back) fires once for fixed-time
//!   jobs; interval jobs keep their real-time cadence through both passes.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use crate::error::{Error, Result};

/// A parsed cron expression in a time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    tz: Tz,
}

/// What to do with slots missed while no leader ran (or the scheduler was
/// far behind): slots older than the misfire threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Misfire {
    /// One catch-up firing (for the latest missed slot), then on schedule.
    #[default]
    FireOnce,
    /// Drop missed slots; continue on schedule.
    Skip,
    /// Fire every missed slot, up to the job's cap (the latest ones).
    FireAll,
}

impl Misfire {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Misfire::FireOnce => "fire_once",
            Misfire::Skip => "skip",
            Misfire::FireAll => "fire_all",
        }
    }

    /// Parses `fire_once`, `skip` or `fire_all` (dashes allowed).
    pub fn parse(text: &str) -> Result<Misfire> {
        match text.replace('-', "_").as_str() {
            "fire_once" => Ok(Misfire::FireOnce),
            "skip" => Ok(Misfire::Skip),
            "fire_all" => Ok(Misfire::FireAll),
            _ => Err(Error::Config(format!(
                "unknown misfire policy `{text}` (expected fire_once, skip or fire_all)"
            ))),
        }
    }
}

/// The slots to fire now and the next fire time, for a job that is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// Slots (Unix ms) to create tasks for, oldest first.
    pub fire: Vec<i64>,
    /// Missed slots dropped by the misfire policy (a lower bound after an
    /// outage longer than 10,000 slots, which is skipped over).
    pub skipped: u64,
    /// The next slot after now, if the schedule has one.
    pub next: Option<i64>,
}

/// Most slots enumerated when catching up; beyond this the schedule skips
/// ahead (a per-second job down for a day has 86,400 missed slots).
const MAX_ENUMERATED: usize = 10_000;

impl Schedule {
    /// Parses `expr` for time zone `tz` (an IANA name; UTC when `None`).
    pub fn parse(expr: &str, tz: Option<&str>) -> Result<Schedule> {
        let tz = match tz {
            None | Some("") | Some("UTC") => Tz::UTC,
            Some(name) => Tz::from_str(name).map_err(|_| {
                Error::Config(format!(
                    "unknown time zone `{name}` (expected an IANA name such as Europe/London)"
                ))
            })?,
        };
        let trimmed = expr.trim();
        let text = if trimmed.eq_ignore_ascii_case("@midnight") {
            "@daily"
        } else {
            trimmed
        };
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(text)
            .map_err(|e| Error::Config(format!("invalid cron expression `{expr}`: {e}")))?;
        let schedule = Schedule { cron, tz };
        if schedule.next_after(Utc::now().timestamp_millis()).is_none() {
            return Err(Error::Config(format!(
                "cron expression `{expr}` never fires"
            )));
        }
        Ok(schedule)
    }

    /// The first slot strictly after `after_ms` (Unix ms), in whole seconds.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let after = self.tz.timestamp_millis_opt(after_ms).single()?;
        self.cron
            .find_next_occurrence(&after, false)
            .ok()
            .map(|t: DateTime<Tz>| t.timestamp_millis())
    }

    /// For a job whose stored next slot is `slot` (≤ `now`): the slots to
    /// fire now and the next one. Slots within `threshold_ms` of `now` are on
    /// time and all fire; older ones are missed and follow `policy`
    /// (`fire_all` keeps at most `cap` of them, the latest).
    pub fn due(&self, slot: i64, now: i64, threshold_ms: i64, policy: Misfire, cap: usize) -> Due {
        let mut missed: Vec<i64> = Vec::new();
        let mut missed_total = 0u64;
        let mut on_time = Vec::new();
        let mut cursor = Some(slot);
        let mut seen = 0usize;
        while let Some(s) = cursor.filter(|&s| s <= now) {
            if now - s <= threshold_ms {
                on_time.push(s);
            } else {
                missed_total += 1;
                missed.push(s);
                if missed.len() > cap.max(1) {
                    missed.remove(0);
                }
            }
            seen += 1;
            cursor = if seen >= MAX_ENUMERATED {
                // Jump over the rest of a long outage: everything up to the
                // threshold is missed anyway.
                let jump_from = now - threshold_ms;
                missed_total += 1; // at least one more slot was passed over
                self.next_after(jump_from.max(s))
            } else {
                self.next_after(s)
            };
        }
        let mut fire = match policy {
            Misfire::Skip => Vec::new(),
            Misfire::FireOnce => missed.last().copied().into_iter().collect(),
            Misfire::FireAll => missed,
        };
        let fired_missed = fire.len() as u64;
        fire.extend(on_time);
        Due {
            fire,
            skipped: missed_total.saturating_sub(fired_missed),
            next: cursor,
        }
    }
}

/// Unix ms for a UTC date-time, for tests and tools.
pub fn utc_ms(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
        .single()
        .map(|t| t.timestamp_millis())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(ms: i64, tz: &str) -> String {
        let tz = Tz::from_str(tz).unwrap();
        tz.timestamp_millis_opt(ms)
            .unwrap()
            .format("%Y-%m-%d %H:%M:%S %Z")
            .to_string()
    }

    fn next_n(s: &Schedule, from: i64, n: usize) -> Vec<i64> {
        let mut out = Vec::new();
        let mut t = from;
        for _ in 0..n {
            t = s.next_after(t).unwrap();
            out.push(t);
        }
        out
    }

    #[test]
    fn five_and_six_fields() {
        let five = Schedule::parse("30 9 * * 1", None).unwrap();
        // 2026-11-23 is a Monday; POSIX weekday 1 = Monday (not Sunday).
        let t = five.next_after(utc_ms(2026, 11, 22, 0, 0, 0)).unwrap();
        assert_eq!(t, utc_ms(2026, 11, 23, 9, 30, 0));
        let six = Schedule::parse("*/10 * * * * *", None).unwrap();
        let from = utc_ms(2026, 1, 1, 0, 0, 3);
        assert_eq!(
            next_n(&six, from, 3),
            [from + 7_000, from + 17_000, from + 27_000]
        );
        let sunday = Schedule::parse("0 0 * * 7", None).unwrap();
        assert_eq!(
            sunday.next_after(utc_ms(2026, 11, 23, 0, 0, 0)),
            Some(utc_ms(2026, 11, 29, 0, 0, 0)),
            "7 is Sunday"
        );
    }

    #[test]
    fn macros() {
        let from = utc_ms(2026, 11, 23, 10, 17, 0);
        let cases = [
            ("@hourly", utc_ms(2026, 11, 23, 11, 0, 0)),
            ("@daily", utc_ms(2026, 11, 24, 0, 0, 0)),
            ("@midnight", utc_ms(2026, 11, 24, 0, 0, 0)),
            ("@weekly", utc_ms(2026, 11, 29, 0, 0, 0)),
            ("@monthly", utc_ms(2026, 12, 1, 0, 0, 0)),
            ("@yearly", utc_ms(2027, 1, 1, 0, 0, 0)),
            ("@annually", utc_ms(2027, 1, 1, 0, 0, 0)),
        ];
        for (expr, want) in cases {
            let s = Schedule::parse(expr, None).unwrap();
            assert_eq!(s.next_after(from), Some(want), "{expr}");
        }
    }

    #[test]
    fn bad_input() {
        for bad in [
            "",
            "* * *",
            "61 * * * *",
            "* * * * * * * *",
            "@sometimes",
            "0 0 31 2 *",
        ] {
            assert!(
                Schedule::parse(bad, None).is_err(),
                "`{bad}` should be refused"
            );
        }
        let err = Schedule::parse("0 * * * *", Some("Mars/Olympus")).unwrap_err();
        assert!(err.to_string().contains("Mars/Olympus"), "{err}");
    }

    #[test]
    fn new_york_spring_forward_fires_once_after_the_gap() {
        // 2026-03-08: 02:00 EST jumps to 03:00 EDT; 02:30 does not exist.
        let s = Schedule::parse("30 2 * * *", Some("America/New_York")).unwrap();
        let t = s.next_after(utc_ms(2026, 3, 8, 0, 0, 0)).unwrap();
        assert_eq!(local(t, "America/New_York"), "2026-03-08 03:00:00 EDT");
        let next = s.next_after(t).unwrap();
        assert_eq!(local(next, "America/New_York"), "2026-03-09 02:30:00 EDT");
    }

    #[test]
    fn new_york_fall_back_fires_a_fixed_time_once() {
        // 2026-11-01: 02:00 EDT falls back to 01:00 EST; 01:30 happens twice.
        let s = Schedule::parse("30 1 * * *", Some("America/New_York")).unwrap();
        let fires = next_n(&s, utc_ms(2026, 11, 1, 0, 0, 0), 2);
        assert_eq!(
            local(fires[0], "America/New_York"),
            "2026-11-01 01:30:00 EDT"
        );
        assert_eq!(
            local(fires[1], "America/New_York"),
            "2026-11-02 01:30:00 EST"
        );
    }

    #[test]
    fn new_york_fall_back_interval_job_keeps_its_cadence() {
        let s = Schedule::parse("0 * * * *", Some("America/New_York")).unwrap();
        // From 00:30 EDT: 01:00 EDT, 01:00 EST (an hour later), 02:00 EST.
        let fires = next_n(&s, utc_ms(2026, 11, 1, 4, 30, 0), 3);
        assert_eq!(fires[1] - fires[0], 3_600_000);
        assert_eq!(fires[2] - fires[1], 3_600_000);
    }

    #[test]
    fn london_and_utc() {
        // London is UTC+1 in summer: 09:00 BST = 08:00 UTC.
        let s = Schedule::parse("0 9 * * *", Some("Europe/London")).unwrap();
        assert_eq!(
            s.next_after(utc_ms(2026, 7, 1, 0, 0, 0)),
            Some(utc_ms(2026, 7, 1, 8, 0, 0))
        );
        assert_eq!(
            s.next_after(utc_ms(2026, 12, 1, 0, 0, 0)),
            Some(utc_ms(2026, 12, 1, 9, 0, 0))
        );
        // London spring forward 2026-03-29: 01:30 does not exist.
        let gap = Schedule::parse("30 1 * * *", Some("Europe/London")).unwrap();
        let t = gap.next_after(utc_ms(2026, 3, 29, 0, 0, 0)).unwrap();
        assert_eq!(local(t, "Europe/London"), "2026-03-29 02:00:00 BST");
    }

    #[test]
    fn due_on_time_fires_every_slot_within_the_threshold() {
        let s = Schedule::parse("* * * * * *", None).unwrap();
        let slot = utc_ms(2026, 1, 1, 0, 0, 0);
        let due = s.due(slot, slot + 1_500, 5_000, Misfire::FireOnce, 100);
        assert_eq!(due.fire, [slot, slot + 1000]);
        assert_eq!((due.skipped, due.next), (0, Some(slot + 2000)));
    }

    #[test]
    fn misfire_policies() {
        let s = Schedule::parse("* * * * * *", None).unwrap();
        let slot = utc_ms(2026, 1, 1, 0, 0, 0);
        let now = slot + 10_000; // 11 slots due: 0..=10 s; threshold 2 s
        let once = s.due(slot, now, 2_000, Misfire::FireOnce, 100);
        assert_eq!(
            once.fire,
            [slot + 7_000, slot + 8_000, slot + 9_000, slot + 10_000]
        );
        assert_eq!(once.skipped, 7);
        let skip = s.due(slot, now, 2_000, Misfire::Skip, 100);
        assert_eq!(skip.fire, [slot + 8_000, slot + 9_000, slot + 10_000]);
        assert_eq!(skip.skipped, 8);
        let all = s.due(slot, now, 2_000, Misfire::FireAll, 5);
        assert_eq!(all.fire.len(), 5 + 3, "cap of 5 missed plus 3 on time");
        assert_eq!(
            all.fire[0],
            slot + 3_000,
            "the latest missed slots are kept"
        );
        assert_eq!(all.skipped, 3);
        assert_eq!(all.next, Some(slot + 11_000));
    }

    #[test]
    fn a_long_outage_is_bounded_work() {
        let s = Schedule::parse("* * * * * *", None).unwrap();
        let slot = utc_ms(2026, 1, 1, 0, 0, 0);
        let now = slot + 86_400_000; // a day of per-second slots
        let due = s.due(slot, now, 1_000, Misfire::FireOnce, 100);
        assert!(due.fire.len() <= 3, "{:?}", due.fire);
        assert_eq!(due.next, Some(now + 1_000));
        assert!(due.skipped > 0);
    }
}
