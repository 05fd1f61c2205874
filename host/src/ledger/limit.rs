//! Caps checked at admission, why a request was refused, and when it may retry.

use super::amount::Metric;
use super::calendar::{Period, Window, bucket, bucket_end_ms, rfc3339};
use super::counters::Counters;
use super::scope::ScopeKey;

/// A cap checked at admission.
#[derive(Clone, Debug, PartialEq)]
pub struct Limit {
    pub name: String,
    pub scope: ScopeKey,
    pub metric: Metric,
    pub period: Period,
    pub window: Window,
    /// In the metric's unit (USD / tokens / requests).
    pub limit: f64,
    /// Alert thresholds, percent of limit (e.g. 50, 80, 100).
    pub alert_at: Vec<u32>,
}

impl Limit {
    /// The cap in the metric's integer unit (see [`Metric::units_of`]); usage is
    /// admitted while strictly below it.
    pub fn cap_units(&self) -> u64 {
        self.metric.units_of(self.limit)
    }
}

/// Why admission failed.
#[derive(Clone, Debug)]
pub struct Exceeded {
    pub limit: Limit,
    /// Usage (settled+reserved) when refused, metric unit.
    pub current: f64,
    /// Calendar: end of the bucket. Rolling: when, without new traffic, usage falls
    /// below the cap again. `Total`: `i64::MAX` (never).
    pub resets_at_ms: i64,
}

impl Exceeded {
    /// What the client is told, e.g. "budget 'team-daily-cost' for team 'engineering'
    /// is exhausted: $5.02 of $5.00 spent this day (calendar); resets at
    /// 2026-11-26T00:00:00Z".
    pub fn message(&self) -> String {
        let l = &self.limit;
        let what = if self.is_rate_limit() {
            "rate limit"
        } else {
            "budget"
        };
        let usage = match l.metric {
            Metric::Cost => format!("{} of {} spent", usd(self.current), usd(l.limit)),
            Metric::Tokens => format!("{} of {} tokens used", self.current, l.limit),
            Metric::Requests => format!("{} of {} requests made", self.current, l.limit),
        };
        let when = match (l.period, l.window) {
            (Period::Total, _) => "in total".to_string(),
            (p, Window::Calendar) => format!("this {} (calendar)", p.as_str()),
            (p, Window::Rolling) => format!("in the last {}", p.as_str()),
        };
        let reset = if l.period == Period::Total {
            "never resets".to_string()
        } else {
            format!("resets at {}", rfc3339(self.resets_at_ms))
        };
        format!(
            "{what} '{}' for {} '{}' is exhausted: {usage} {when}; {reset}",
            l.name,
            l.scope.kind_label(),
            l.scope.value
        )
    }

    /// A per-minute limit is a rate limit (the client should retry soon); longer ones
    /// are budgets.
    pub fn is_rate_limit(&self) -> bool {
        self.limit.period == Period::Minute
    }

    /// Seconds until reset, at least 1 (for `Retry-After`).
    pub fn retry_after_secs(&self, now_ms: i64) -> u64 {
        let ms = self.resets_at_ms.saturating_sub(now_ms).max(0) as u64;
        ms.div_ceil(1000).max(1)
    }
}

/// Dollars with two decimals, or as many more (up to nine) as it takes to show a
/// non-zero amount as non-zero.
fn usd(v: f64) -> String {
    for decimals in 2..9 {
        let s = format!("{v:.decimals$}");
        if v == 0.0 || s.bytes().any(|b| matches!(b, b'1'..=b'9')) {
            return format!("${s}");
        }
    }
    format!("${v:.9}")
}

/// When a refused request could be admitted, assuming no new traffic and that the
/// reserved estimates settle in the current bucket.
pub(super) fn resets_at(limit: &Limit, c: &Counters, now_ms: i64) -> i64 {
    let Some(parts) = c.parts(limit.period, now_ms) else {
        return i64::MAX;
    };
    if limit.window == Window::Calendar {
        return parts.end_ms;
    }
    let m = limit.metric;
    let cap = u128::from(limit.cap_units());
    let here = u128::from(parts.cur.units(m)) + u128::from(c.reserved.units(m));
    let prev = u128::from(parts.prev.units(m));
    let len = parts.end_ms.saturating_sub(parts.start_ms).max(1);
    if here < cap && prev > 0 {
        // Usage is here + round(prev · left / len); it is under the cap once
        // left ≤ ((2·(cap − here) − 1)·len − 1) / (2·prev) (see `Amount::scaled`).
        let left = latest_left(cap - here, prev, len);
        return parts.end_ms.saturating_sub(left).max(now_ms);
    }
    // The current bucket alone is at the cap: wait for it to slide out of the next one.
    let next_end = bucket_end_ms(limit.period, bucket(limit.period, parts.end_ms));
    if cap == 0 || here == 0 {
        return next_end;
    }
    let next_len = next_end.saturating_sub(parts.end_ms).max(1);
    next_end.saturating_sub(latest_left(cap, here, next_len))
}

/// The most time left in a bucket of `len` ms at which `round(weight · left / len)`
/// is below `room` (both ≥ 1).
fn latest_left(room: u128, weight: u128, len: i64) -> i64 {
    let len_u = len as u128;
    let left = ((2 * room - 1) * len_u - 1) / (2 * weight);
    left.min(len_u) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::amount::Amount;
    use crate::ledger::calendar::{DAY_MS, days_from_civil};
    use crate::ledger::scope::ScopeKind;

    fn limit(
        name: &str,
        kind: ScopeKind,
        value: &str,
        m: Metric,
        p: Period,
        w: Window,
        cap: f64,
    ) -> Limit {
        Limit {
            name: name.into(),
            scope: ScopeKey::new("acme", kind, value),
            metric: m,
            period: p,
            window: w,
            limit: cap,
            alert_at: vec![],
        }
    }

    fn refused(l: Limit, current: f64, resets_at_ms: i64) -> Exceeded {
        Exceeded {
            limit: l,
            current,
            resets_at_ms,
        }
    }

    #[test]
    fn messages_for_each_metric_period_and_window() {
        let nov26 = days_from_civil(2026, 11, 26) * DAY_MS;
        let e = refused(
            limit(
                "team-daily-cost",
                ScopeKind::Team,
                "engineering",
                Metric::Cost,
                Period::Day,
                Window::Calendar,
                5.0,
            ),
            5.02,
            nov26,
        );
        assert_eq!(
            e.message(),
            "budget 'team-daily-cost' for team 'engineering' is exhausted: $5.02 of $5.00 \
             spent this day (calendar); resets at 2026-11-26T00:00:00Z"
        );
        assert!(!e.is_rate_limit());

        let e = refused(
            limit(
                "rpm",
                ScopeKind::Key,
                "key_1",
                Metric::Requests,
                Period::Minute,
                Window::Rolling,
                10.0,
            ),
            10.0,
            nov26 + 31_501,
        );
        assert_eq!(
            e.message(),
            "rate limit 'rpm' for key 'key_1' is exhausted: 10 of 10 requests made \
             in the last minute; resets at 2026-11-26T00:00:31Z"
        );
        assert!(e.is_rate_limit());
        assert_eq!(e.retry_after_secs(nov26 + 15_000), 17);
        assert_eq!(e.retry_after_secs(nov26 + 40_000), 1);

        let e = refused(
            limit(
                "tpw",
                ScopeKind::User,
                "ann",
                Metric::Tokens,
                Period::Week,
                Window::Calendar,
                100_000.0,
            ),
            100_250.0,
            nov26 + 4 * DAY_MS,
        );
        assert_eq!(
            e.message(),
            "budget 'tpw' for user 'ann' is exhausted: 100250 of 100000 tokens used \
             this week (calendar); resets at 2026-11-30T00:00:00Z"
        );

        let e = refused(
            limit(
                "hourly",
                ScopeKind::Tenant,
                "acme",
                Metric::Tokens,
                Period::Hour,
                Window::Rolling,
                5_000.0,
            ),
            5_001.0,
            nov26 + 3_600_000,
        );
        assert!(
            e.message().contains(
                "5001 of 5000 tokens used in the last hour; resets at 2026-11-26T01:00:00Z"
            )
        );

        let e = refused(
            limit(
                "m",
                ScopeKind::Metadata("project".into()),
                "apollo",
                Metric::Cost,
                Period::Month,
                Window::Rolling,
                0.01,
            ),
            0.0123,
            nov26 + 5 * DAY_MS,
        );
        assert_eq!(
            e.message(),
            "budget 'm' for metadata.project 'apollo' is exhausted: $0.01 of $0.01 spent \
             in the last month; resets at 2026-12-01T00:00:00Z"
        );

        let e = refused(
            limit(
                "lifetime",
                ScopeKind::Tenant,
                "acme",
                Metric::Cost,
                Period::Total,
                Window::Calendar,
                0.002,
            ),
            0.0025,
            i64::MAX,
        );
        assert_eq!(
            e.message(),
            "budget 'lifetime' for tenant 'acme' is exhausted: $0.003 of $0.002 spent \
             in total; never resets"
        );
        assert!(e.retry_after_secs(nov26) > 1_000_000_000);

        let e = refused(
            limit(
                "daily-req",
                ScopeKind::Team,
                "ops",
                Metric::Requests,
                Period::Day,
                Window::Rolling,
                500.0,
            ),
            500.0,
            nov26,
        );
        assert!(
            e.message()
                .contains("500 of 500 requests made in the last day;")
        );
    }

    #[test]
    fn usd_shows_enough_decimals() {
        assert_eq!(usd(5.0), "$5.00");
        assert_eq!(usd(0.0), "$0.00");
        assert_eq!(usd(0.004), "$0.004");
        assert_eq!(usd(0.000_000_2), "$0.0000002");
        assert_eq!(usd(0.000_000_000_1), "$0.000000000");
        assert_eq!(usd(123.456), "$123.46");
    }

    #[test]
    fn rolling_reset_estimate() {
        let l = limit(
            "rpm",
            ScopeKind::Key,
            "k",
            Metric::Requests,
            Period::Minute,
            Window::Rolling,
            10.0,
        );
        let t0 = 1_000 * 60_000;
        let one = Amount {
            requests: 1,
            ..Amount::ZERO
        };
        let mut c = Counters::default();
        for _ in 0..20 {
            c.add(one, t0 + 1);
        }
        // 15 s into the next minute, 20 × 45/60 = 15 ≥ 10: refused. Usage is 20·left/60000
        // rounded, below 10 once left ≤ 28 499 ms.
        let now = t0 + 75_000;
        let at = resets_at(&l, &c, now);
        assert_eq!(at, t0 + 120_000 - 28_499);
        let share = |t: i64| c.settled(Period::Minute, Window::Rolling, t).0.requests;
        assert_eq!(share(at), 9);
        assert_eq!(share(at - 1), 10);

        // The current minute alone is full: it must slide out of the next one.
        let at = resets_at(&l, &c, t0 + 30_000);
        assert_eq!(at, t0 + 120_000 - 28_499);
        // Calendar windows reset at the bucket end; Total never.
        let cal = Limit {
            window: Window::Calendar,
            ..l.clone()
        };
        assert_eq!(resets_at(&cal, &c, now), t0 + 120_000);
        let total = Limit {
            period: Period::Total,
            ..l
        };
        assert_eq!(resets_at(&total, &c, now), i64::MAX);
    }
}
