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

use std::collections::VecDeque;
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
    /// Missed slots dropped by the misfire policy: exactly this many when
    /// `skipped_exact`, otherwise more than this many (an outage with more
    /// than [`MAX_COUNTED`] missed slots is not counted to the end).
    pub skipped: u64,
    /// Whether `skipped` is the exact count rather than a lower bound.
    pub skipped_exact: bool,
    /// The next slot after now, if the schedule has one.
    pub next: Option<i64>,
}

/// Most missed slots counted one by one. Counting walks the slots from the
/// stale one, so it is bounded to keep a long outage as cheap as a short
/// one; past this the count is reported as a lower bound.
pub const MAX_COUNTED: u64 = 1_000;

/// Most catch-ups `fire_all` fires, whatever the job's cap: each one is a
/// backward search and a task created in one script.
pub const MAX_CATCH_UPS: usize = 10_000;

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

    /// The latest slot strictly before `before_ms` (Unix ms).
    fn prev_before(&self, before_ms: i64) -> Option<i64> {
        // Slots are whole seconds and croner's exclusive search starts from
        // the second below the start's whole second, so round up: from
        // 10:00:00.500 it must still find 10:00:00.
        let ceil =
            before_ms.div_euclid(1000) * 1000 + i64::from(before_ms.rem_euclid(1000) > 0) * 1000;
        let before = self.tz.timestamp_millis_opt(ceil).single()?;
        self.cron
            .find_previous_occurrence(&before, false)
            .ok()
            .map(|t: DateTime<Tz>| t.timestamp_millis())
    }

    /// For a job whose stored next slot is `slot` (≤ `now`): the slots to
    /// fire now and the next one. Slots within `threshold_ms` of `now` are on
    /// time and all fire; older ones are missed and follow `policy`
    /// (`fire_all` keeps at most `cap` of them, the latest, and never more
    /// than [`MAX_CATCH_UPS`]).
    ///
    /// The work does not grow with the outage: the catch-ups are found by
    /// searching backwards from the misfire boundary, not by walking forward
    /// from the stale slot, and the missed slots before them are counted
    /// only up to [`MAX_COUNTED`].
    pub fn due(&self, slot: i64, now: i64, threshold_ms: i64, policy: Misfire, cap: usize) -> Due {
        // Slots before `bound` are missed; from it to `now` they are on time.
        let bound = now.saturating_sub(threshold_ms);
        let keep = match policy {
            Misfire::Skip => 0,
            Misfire::FireOnce => 1,
            Misfire::FireAll => cap.clamp(1, MAX_CATCH_UPS),
        };
        // The forward walk starts `keep` slots before `bound` (or at `bound`
        // itself for `skip`), or at the stale slot if that is later.
        let mut start = slot;
        if slot < bound {
            start = bound;
            for _ in 0..keep {
                match self.prev_before(start) {
                    Some(p) if p >= slot => start = p,
                    _ => {
                        start = slot;
                        break;
                    }
                }
            }
        }
        // The missed slots the walk will not see: counted, up to a limit.
        let (mut missed_total, mut exact) = (0u64, true);
        let mut cursor = Some(slot);
        while let Some(s) = cursor.filter(|&s| s < start) {
            if missed_total == MAX_COUNTED {
                exact = false;
                break;
            }
            missed_total += 1;
            cursor = self.next_after(s);
        }
        // Forward from `start`, with `next_after` alone, so that the slots
        // fired are exactly those a slot-by-slot walk would meet (DST rules
        // included), whatever the backward search made of them.
        let mut cursor = if start == slot {
            Some(slot)
        } else {
            self.next_after(start - 1)
        };
        let mut missed: VecDeque<i64> = VecDeque::with_capacity(keep + 1);
        let mut on_time = Vec::new();
        let mut walked = 0usize;
        while let Some(s) = cursor.filter(|&s| s <= now) {
            cursor = self.next_after(s);
            if s >= bound {
                on_time.push(s);
                continue;
            }
            missed_total += 1;
            walked += 1;
            if keep > 0 {
                missed.push_back(s);
                if missed.len() > keep {
                    missed.pop_front();
                }
            }
            // Only when the backward search failed does the walk start at a
            // stale slot far behind: jump over the rest rather than walk it.
            if walked >= keep + MAX_COUNTED as usize && cursor.is_some_and(|c| c < bound) {
                exact = false;
                cursor = self.next_after(bound - 1);
            }
        }
        let fire: Vec<i64> = missed.into_iter().chain(on_time).collect();
        let fired_missed = fire.iter().filter(|&&s| s < bound).count() as u64;
        Due {
            fire,
            skipped: missed_total - fired_missed,
            skipped_exact: exact,
            next: cursor,
        }
    }
}

/// Unix ms for a UTC date-time, for tests.
#[cfg(test)]
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

    /// What `due` must return, by walking every slot from the stale one:
    /// fine for the short outages it is used on.
    fn full_walk(
        s: &Schedule,
        slot: i64,
        now: i64,
        threshold: i64,
        policy: Misfire,
        cap: usize,
    ) -> Due {
        let mut cursor = Some(slot);
        let (mut missed, mut on_time) = (Vec::new(), Vec::new());
        while let Some(t) = cursor.filter(|&t| t <= now) {
            if now - t > threshold {
                missed.push(t);
            } else {
                on_time.push(t);
            }
            cursor = s.next_after(t);
        }
        let keep = match policy {
            Misfire::Skip => 0,
            Misfire::FireOnce => 1,
            Misfire::FireAll => cap,
        };
        let kept = missed[missed.len().saturating_sub(keep)..].to_vec();
        Due {
            skipped: (missed.len() - kept.len()) as u64,
            skipped_exact: true,
            fire: kept.into_iter().chain(on_time).collect(),
            next: cursor,
        }
    }

    const POLICIES: [(Misfire, usize); 4] = [
        (Misfire::FireOnce, 100),
        (Misfire::Skip, 100),
        (Misfire::FireAll, 3),
        (Misfire::FireAll, 100),
    ];

    #[test]
    fn due_matches_a_slot_by_slot_walk_across_dst() {
        // Outages of a few days over both New York transitions of 2026 (and
        // a UTC control), with thresholds that put the boundary on, before
        // and between slots.
        let cases = [
            (
                "30 2 * * *",
                "America/New_York",
                utc_ms(2026, 3, 4, 0, 0, 0),
                utc_ms(2026, 3, 10, 12, 0, 0),
            ),
            (
                "30 1 * * *",
                "America/New_York",
                utc_ms(2026, 10, 28, 0, 0, 0),
                utc_ms(2026, 11, 3, 12, 0, 0),
            ),
            (
                "*/20 * * * *",
                "America/New_York",
                utc_ms(2026, 11, 1, 4, 0, 0),
                utc_ms(2026, 11, 1, 8, 10, 0),
            ),
            (
                "0 * * * *",
                "America/New_York",
                utc_ms(2026, 3, 8, 5, 0, 0),
                utc_ms(2026, 3, 8, 9, 30, 0),
            ),
            (
                "*/7 * * * * *",
                "UTC",
                utc_ms(2026, 1, 1, 0, 0, 0),
                utc_ms(2026, 1, 1, 0, 20, 0),
            ),
        ];
        for (expr, tz, from, now) in cases {
            let s = Schedule::parse(expr, Some(tz)).unwrap();
            let slot = s.next_after(from).unwrap();
            for threshold in [0, 1_500, 7_000, 3_600_000] {
                for (policy, cap) in POLICIES {
                    assert_eq!(
                        s.due(slot, now, threshold, policy, cap),
                        full_walk(&s, slot, now, threshold, policy, cap),
                        "{expr} {tz}, threshold {threshold} ms, {policy:?} cap {cap}"
                    );
                }
            }
        }
    }

    /// Every slot of `due.fire` one `step` ms after the other.
    fn evenly(due: &Due, step: i64) -> bool {
        due.fire.windows(2).all(|w| w[1] - w[0] == step)
    }

    #[test]
    fn a_long_per_second_outage_fires_the_latest_slots() {
        let s = Schedule::parse("* * * * * *", None).unwrap();
        let base = utc_ms(2026, 6, 1, 12, 0, 0);
        // 2 s threshold at 12:00:00.400: 11:59:58 is the latest missed slot,
        // 11:59:59 and 12:00:00 are on time.
        let now = base + 400;
        let latest_missed = base - 2_000;
        // Three hours (10,800 slots), then three months (7.9 M): the same
        // answer, and the work does not grow with the outage.
        for stale in [base - 3 * 3_600_000, utc_ms(2026, 3, 1, 0, 0, 0)] {
            let once = s.due(stale, now, 2_000, Misfire::FireOnce, 100);
            assert_eq!(once.fire, [latest_missed, base - 1_000, base]);
            assert_eq!(once.next, Some(base + 1_000));
            assert!(
                !once.skipped_exact && once.skipped >= MAX_COUNTED,
                "{once:?}"
            );
            let all = s.due(stale, now, 2_000, Misfire::FireAll, 3);
            assert_eq!(all.fire.len(), 3 + 2, "{all:?}");
            assert_eq!(all.fire[0], latest_missed - 2_000);
            assert!(evenly(&all, 1_000), "no gap after the catch-ups: {all:?}");
            let skip = s.due(stale, now, 2_000, Misfire::Skip, 100);
            assert_eq!(skip.fire, [base - 1_000, base]);
            assert!(!skip.skipped_exact && skip.skipped >= MAX_COUNTED);
        }
        // fire_all keeps at most MAX_CATCH_UPS whatever the cap.
        let all = s.due(
            utc_ms(2026, 1, 1, 0, 0, 0),
            now,
            2_000,
            Misfire::FireAll,
            usize::MAX,
        );
        assert_eq!(all.fire.len(), MAX_CATCH_UPS + 2);
        assert!(evenly(&all, 1_000));
    }

    #[test]
    fn a_long_hourly_outage_fires_the_latest_slots() {
        let s = Schedule::parse("@hourly", Some("Europe/London")).unwrap();
        let now = utc_ms(2026, 6, 1, 12, 30, 0);
        let hour = 3_600_000;
        // Two years of hours, DST changes included: too many to count.
        let stale = utc_ms(2024, 6, 1, 0, 0, 0);
        let once = s.due(stale, now, 60_000, Misfire::FireOnce, 100);
        assert_eq!(once.fire, [utc_ms(2026, 6, 1, 12, 0, 0)]);
        assert_eq!(once.next, Some(utc_ms(2026, 6, 1, 13, 0, 0)));
        assert!(!once.skipped_exact && once.skipped >= MAX_COUNTED);
        let all = s.due(stale, now, 60_000, Misfire::FireAll, 3);
        let want: Vec<i64> = (0..3)
            .rev()
            .map(|h| utc_ms(2026, 6, 1, 12, 0, 0) - h * hour)
            .collect();
        assert_eq!(all.fire, want);
        // A week, 168 missed hours: counted exactly.
        let week = s.due(
            now - 30 * 60_000 - 168 * hour,
            now,
            60_000,
            Misfire::Skip,
            100,
        );
        assert_eq!(
            (week.fire.len(), week.skipped, week.skipped_exact),
            (0, 169, true)
        );
        let week = s.due(
            now - 30 * 60_000 - 168 * hour,
            now,
            60_000,
            Misfire::FireAll,
            3,
        );
        assert_eq!(
            (week.fire, week.skipped, week.skipped_exact),
            (want, 166, true)
        );
    }

    #[test]
    fn a_yearly_job_missed_for_years_fires_the_latest_years() {
        let s = Schedule::parse("@yearly", None).unwrap();
        let stale = utc_ms(2000, 1, 1, 0, 0, 0);
        let now = utc_ms(2026, 6, 1, 0, 0, 0);
        let once = s.due(stale, now, 60_000, Misfire::FireOnce, 100);
        assert_eq!(once.fire, [utc_ms(2026, 1, 1, 0, 0, 0)]);
        assert_eq!(
            (once.skipped, once.skipped_exact),
            (26, true),
            "2000..=2025"
        );
        assert_eq!(once.next, Some(utc_ms(2027, 1, 1, 0, 0, 0)));
        let all = s.due(stale, now, 60_000, Misfire::FireAll, 3);
        let years: Vec<i64> = (2024..=2026).map(|y| utc_ms(y, 1, 1, 0, 0, 0)).collect();
        assert_eq!((all.fire, all.skipped), (years, 24));
        let skip = s.due(stale, now, 60_000, Misfire::Skip, 100);
        assert_eq!((skip.fire.len(), skip.skipped), (0, 27));
        // A cap above the missed slots fires them all.
        let every = s.due(stale, now, 60_000, Misfire::FireAll, 100);
        assert_eq!((every.fire.len(), every.skipped), (27, 0));
        assert_eq!(every.fire[0], stale);
    }
}
