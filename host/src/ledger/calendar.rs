//! UTC calendar buckets, shared by the in-memory windows and the stored rows so both
//! always agree on which bucket a timestamp falls in. The civil-date arithmetic and
//! RFC 3339 text live in [`crate::time`].

pub(crate) use crate::time::DAY_MS;
pub use crate::time::{civil_from_days, days_from_civil, rfc3339};
use serde::{Deserialize, Serialize};

/// How long a counting window runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    /// A UTC minute, or a rolling 60 s.
    Minute,
    /// A UTC hour, or a rolling 60 min.
    Hour,
    /// A UTC day, or a rolling 24 h.
    Day,
    /// A UTC week from Monday 00:00, or a rolling 7 days.
    Week,
    /// A UTC calendar month, or a rolling 30 days.
    Month,
    /// All time: one bucket that never resets.
    Total,
}

/// Whether a window is the current calendar bucket or slides with time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Window {
    /// The bucket `now` falls in; usage resets at once when the bucket ends.
    Calendar,
    /// The last period up to `now`; usage leaves the window as it ages.
    Rolling,
}

impl Period {
    /// Every period: the bucketed ones in slot order, then `Total`.
    pub const ALL: [Period; 6] = [
        Period::Minute,
        Period::Hour,
        Period::Day,
        Period::Week,
        Period::Month,
        Period::Total,
    ];

    /// The lowercase name, as stored and serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Minute => "minute",
            Period::Hour => "hour",
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
            Period::Total => "total",
        }
    }

    /// Inverse of [`Period::as_str`]; `None` for anything else (stored rows may be foreign).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Slot of a bucketed period in per-scope arrays; `None` for `Total`.
    pub(crate) fn index(self) -> Option<usize> {
        match self {
            Period::Minute => Some(0),
            Period::Hour => Some(1),
            Period::Day => Some(2),
            Period::Week => Some(3),
            Period::Month => Some(4),
            Period::Total => None,
        }
    }
}

impl Window {
    /// The lowercase name, as stored and serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Window::Calendar => "calendar",
            Window::Rolling => "rolling",
        }
    }

    /// Inverse of [`Window::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [Window::Calendar, Window::Rolling]
            .into_iter()
            .find(|w| w.as_str() == s)
    }
}

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;

/// 1970-01-01 was a Thursday: weeks are counted from Monday 1969-12-29, day -3.
const WEEK_OFFSET_DAYS: i64 = 3;
/// Month indices beyond ±300 million years only come from corrupt rows; clamping
/// them keeps the date arithmetic from overflowing.
const MAX_MONTH: i64 = 12 * 300_000_000;

/// The calendar bucket `ts_ms` falls in: consecutive integers per period (months are
/// `year * 12 + month - 1`), so the previous bucket is always `bucket - 1`. `Total`
/// has the single bucket 0.
pub fn bucket(period: Period, ts_ms: i64) -> i64 {
    match period {
        Period::Minute => ts_ms.div_euclid(MINUTE_MS),
        Period::Hour => ts_ms.div_euclid(HOUR_MS),
        Period::Day => ts_ms.div_euclid(DAY_MS),
        Period::Week => (ts_ms.div_euclid(DAY_MS) + WEEK_OFFSET_DAYS).div_euclid(7),
        Period::Month => {
            let (y, m, _) = civil_from_days(ts_ms.div_euclid(DAY_MS));
            y * 12 + i64::from(m) - 1
        }
        Period::Total => 0,
    }
}

/// First millisecond of a bucket (0 for `Total`). Saturates instead of overflowing
/// on absurd bucket numbers.
pub fn bucket_start_ms(period: Period, bucket: i64) -> i64 {
    match period {
        Period::Minute => bucket.saturating_mul(MINUTE_MS),
        Period::Hour => bucket.saturating_mul(HOUR_MS),
        Period::Day => bucket.saturating_mul(DAY_MS),
        Period::Week => bucket
            .saturating_mul(7)
            .saturating_sub(WEEK_OFFSET_DAYS)
            .saturating_mul(DAY_MS),
        Period::Month => {
            let b = bucket.clamp(-MAX_MONTH, MAX_MONTH);
            let month = u32::try_from(b.rem_euclid(12) + 1).unwrap_or(1);
            days_from_civil(b.div_euclid(12), month, 1).saturating_mul(DAY_MS)
        }
        Period::Total => 0,
    }
}

/// First millisecond after a bucket; `i64::MAX` (never) for `Total`.
pub fn bucket_end_ms(period: Period, bucket: i64) -> i64 {
    match period {
        Period::Total => i64::MAX,
        p => bucket_start_ms(p, bucket.saturating_add(1)),
    }
}

/// Where the window of `period` that contains `now_ms` starts: the calendar bucket's
/// start, or for a rolling window one period ago (a month counts as 30 days).
pub fn window_start_ms(period: Period, window: Window, now_ms: i64) -> i64 {
    let length = match period {
        Period::Minute => MINUTE_MS,
        Period::Hour => HOUR_MS,
        Period::Day => DAY_MS,
        Period::Week => 7 * DAY_MS,
        Period::Month => 30 * DAY_MS,
        Period::Total => return 0,
    };
    match window {
        Window::Calendar => bucket_start_ms(period, bucket(period, now_ms)),
        Window::Rolling => now_ms.saturating_sub(length),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i64, mo: u32, d: u32, h: i64, mi: i64, s: i64) -> i64 {
        days_from_civil(y, mo, d) * DAY_MS + h * HOUR_MS + mi * MINUTE_MS + s * 1000
    }

    fn start_of(p: Period, ts: i64) -> String {
        rfc3339(bucket_start_ms(p, bucket(p, ts)))
    }

    fn end_of(p: Period, ts: i64) -> String {
        rfc3339(bucket_end_ms(p, bucket(p, ts)))
    }

    #[test]
    fn civil_round_trip_and_known_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        for days in (-800_000..800_000).step_by(97) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(rfc3339(at(2026, 11, 26, 0, 0, 0)), "2026-11-26T00:00:00Z");
        assert_eq!(
            rfc3339(at(2024, 2, 29, 23, 59, 59) + 999),
            "2024-02-29T23:59:59Z"
        );
        assert_eq!(rfc3339(-1000), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn minute_hour_day_buckets() {
        let t = at(2026, 3, 14, 15, 9, 26) + 535;
        assert_eq!(start_of(Period::Minute, t), "2026-03-14T15:09:00Z");
        assert_eq!(end_of(Period::Minute, t), "2026-03-14T15:10:00Z");
        assert_eq!(start_of(Period::Hour, t), "2026-03-14T15:00:00Z");
        assert_eq!(end_of(Period::Hour, t), "2026-03-14T16:00:00Z");
        assert_eq!(start_of(Period::Day, t), "2026-03-14T00:00:00Z");
        assert_eq!(end_of(Period::Day, t), "2026-03-15T00:00:00Z");
        // Boundaries belong to the bucket they start.
        let midnight = at(2026, 3, 15, 0, 0, 0);
        assert_eq!(bucket(Period::Day, midnight), bucket(Period::Day, t) + 1);
        assert_eq!(bucket(Period::Day, midnight - 1), bucket(Period::Day, t));
        assert_eq!(bucket(Period::Minute, -1), -1);
    }

    #[test]
    fn weeks_start_on_monday_across_year_boundary() {
        // 1970-01-01 (Thursday) is in the week of Monday 1969-12-29.
        assert_eq!(start_of(Period::Week, 0), "1969-12-29T00:00:00Z");
        // Thursday 2026-01-01 is in the week that began Monday 2025-12-29.
        let new_year = at(2026, 1, 1, 12, 0, 0);
        assert_eq!(start_of(Period::Week, new_year), "2025-12-29T00:00:00Z");
        assert_eq!(end_of(Period::Week, new_year), "2026-01-05T00:00:00Z");
        assert_eq!(
            bucket(Period::Week, at(2025, 12, 28, 23, 59, 59)) + 1,
            bucket(Period::Week, at(2025, 12, 29, 0, 0, 0))
        );
        assert_eq!(
            bucket(Period::Week, at(2025, 12, 29, 0, 0, 0)),
            bucket(Period::Week, at(2026, 1, 4, 23, 59, 59))
        );
        // A Sunday closes its week; Monday opens the next.
        assert_eq!(
            start_of(Period::Week, at(2026, 11, 29, 18, 0, 0)),
            "2026-11-23T00:00:00Z"
        );
        assert_eq!(
            start_of(Period::Week, at(2026, 11, 30, 0, 0, 0)),
            "2026-11-30T00:00:00Z"
        );
    }

    #[test]
    fn months_follow_the_calendar() {
        let leap = at(2024, 2, 29, 23, 0, 0);
        assert_eq!(start_of(Period::Month, leap), "2024-02-01T00:00:00Z");
        assert_eq!(end_of(Period::Month, leap), "2024-03-01T00:00:00Z");
        assert_eq!(
            end_of(Period::Month, at(2023, 2, 10, 0, 0, 0)),
            "2023-03-01T00:00:00Z"
        );
        assert_eq!(
            end_of(Period::Month, at(2024, 1, 31, 23, 59, 59)),
            "2024-02-01T00:00:00Z"
        );
        assert_eq!(
            end_of(Period::Month, at(2024, 4, 30, 1, 0, 0)),
            "2024-05-01T00:00:00Z"
        );
        let dec = at(2025, 12, 31, 23, 59, 59);
        assert_eq!(start_of(Period::Month, dec), "2025-12-01T00:00:00Z");
        assert_eq!(end_of(Period::Month, dec), "2026-01-01T00:00:00Z");
        // Consecutive across the year: the previous bucket is always `b - 1`.
        assert_eq!(
            bucket(Period::Month, dec) + 1,
            bucket(Period::Month, at(2026, 1, 1, 0, 0, 0))
        );
        assert_eq!(bucket(Period::Month, 0), 1970 * 12);
    }

    #[test]
    fn every_bucket_contains_its_start_and_total_never_ends() {
        for p in Period::ALL {
            for ts in [
                0,
                1_764_000_000_123,
                -5_000_000_000,
                at(2024, 2, 29, 12, 0, 0),
            ] {
                if p == Period::Total && ts < 0 {
                    continue; // Total starts at the epoch
                }
                let b = bucket(p, ts);
                assert!(
                    bucket_start_ms(p, b) <= ts && ts < bucket_end_ms(p, b),
                    "{p:?}"
                );
                assert_eq!(bucket(p, bucket_start_ms(p, b)), b);
            }
        }
        assert_eq!(bucket_end_ms(Period::Total, 0), i64::MAX);
        // Absurd stored bucket numbers saturate instead of panicking.
        for p in Period::ALL {
            let _ = bucket_start_ms(p, i64::MAX);
            let _ = bucket_end_ms(p, i64::MIN);
        }
        assert_eq!(Period::parse("week"), Some(Period::Week));
        assert_eq!(Period::parse("Week"), None);
        assert_eq!(Window::parse("rolling"), Some(Window::Rolling));
    }
}
