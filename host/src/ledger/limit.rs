//! Caps checked at admission, why a request was refused, and when it may retry.

use super::amount::Metric;
use super::calendar::{Period, Window, rfc3339};
use super::counters::Counters;
use super::rolling::SlidingLog;
use super::scope::ScopeKey;
use std::sync::Arc;

/// A cap checked at admission.
#[derive(Clone, Debug, PartialEq)]
pub struct Limit {
    /// The budget's name (e.g. `team-daily-cost`), unique within its scope value.
    pub name: String,
    /// The scope value whose usage is capped.
    pub scope: ScopeKey,
    /// What is counted against the cap.
    pub metric: Metric,
    /// How long the window runs.
    pub period: Period,
    /// Whether the window is a calendar bucket or rolls with time.
    pub window: Window,
    /// In the metric's unit (USD / tokens / requests).
    pub limit: f64,
    /// Alert thresholds, percent of limit (e.g. 50, 80, 100).
    pub alert_at: Vec<u32>,
    /// The plugin that granted it (named in errors about it).
    pub plugin: Arc<str>,
}

/// When a request fits under a limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Admit {
    /// While usage (settled and reserved) is below the cap: a request may overshoot it
    /// by its own estimate.
    #[default]
    BelowCap,
    /// While usage plus the request's estimate is at most the cap: no overshoot, at
    /// the price of refusing a request that might have fitted.
    EstimateFits,
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
    /// The exhausted limit.
    pub limit: Limit,
    /// Usage (settled+reserved) when refused, metric unit.
    pub current: f64,
    /// Calendar: end of the bucket. Rolling: when, without new traffic, usage falls
    /// far enough below the cap to admit the request. `Total` (or a cap no usage fits
    /// under): `i64::MAX` (never).
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
        let reset = if l.period == Period::Total || self.resets_at_ms == i64::MAX {
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

/// When a request refused by `limit` could be admitted, assuming no new traffic and
/// that reserved estimates settle now: the usage must come down to `target` units.
pub(super) fn resets_at(
    limit: &Limit,
    c: &Counters,
    log: Option<&SlidingLog>,
    target: i64,
    now_ms: i64,
) -> i64 {
    let Some(parts) = c.parts(limit.period, now_ms) else {
        return i64::MAX;
    };
    if limit.window == Window::Calendar {
        return parts.end_ms;
    }
    if let Some(log) = log {
        return log.frees_at(now_ms);
    }
    match c.ring_ref(limit.period) {
        Some(ring) => ring
            .frees_at(limit.metric, c.reserved.units(limit.metric), target, now_ms)
            .unwrap_or(i64::MAX),
        // Admission always creates the ring; an upper bound otherwise.
        None => parts
            .end_ms
            .saturating_add(super::rolling::window_len_ms(limit.period).unwrap_or(0)),
    }
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
            plugin: "test".into(),
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
    fn resets_say_when_the_window_frees() {
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
        assert!(c.ring(Period::Minute, t0).is_some());
        for i in 0..20 {
            c.add(one, t0 + i * 1_000);
        }
        // 20 in the last minute; the 11th oldest (at t0 + 10 s) must leave for usage to
        // be 9: its sub-bucket ends at t0 + 11 s, so the window frees at t0 + 71 s.
        let now = t0 + 30_000;
        assert_eq!(resets_at(&l, &c, None, 9, now), t0 + 71_000);
        assert_eq!(
            c.settled(Period::Minute, Window::Rolling, t0 + 70_999)
                .0
                .requests,
            10
        );
        assert_eq!(
            c.settled(Period::Minute, Window::Rolling, t0 + 71_000)
                .0
                .requests,
            9
        );
        // With an exact log the answer is to the millisecond.
        let mut log = SlidingLog::new(60_000, 10);
        for i in 0..10 {
            log.push(t0 + 500 + i * 1_000);
        }
        assert_eq!(resets_at(&l, &c, Some(&log), 9, now), t0 + 60_500);
        // Calendar windows reset at the bucket end; Total never.
        let cal = Limit {
            window: Window::Calendar,
            ..l.clone()
        };
        assert_eq!(resets_at(&cal, &c, None, 9, now), t0 + 60_000);
        let total = Limit {
            period: Period::Total,
            ..l
        };
        assert_eq!(resets_at(&total, &c, None, 9, now), i64::MAX);
    }
}
