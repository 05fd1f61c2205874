//! One scope's counters: for each bucketed period the current and previous calendar
//! bucket, a running total and the estimates reserved by running requests. Two
//! buckets per period are enough for every window: calendar reads the current one,
//! rolling weights the previous one by how much of it is still inside the window.

use super::amount::{Amount, Reading};
use super::calendar::{Period, Window, bucket, bucket_end_ms, bucket_start_ms};
use super::limit::Limit;

/// A bucket index and what was counted in it.
#[derive(Clone, Copy, Debug)]
struct Slot {
    bucket: i64,
    amount: Amount,
}

/// Holds no bucket any timestamp maps to, so it reads as zero.
const EMPTY: Slot = Slot {
    bucket: i64::MIN,
    amount: Amount::ZERO,
};

/// The latest bucket seen for one period and the one before it.
#[derive(Clone, Copy, Debug)]
struct Pair {
    cur: Slot,
    prev: Slot,
}

impl Pair {
    const EMPTY: Pair = Pair {
        cur: EMPTY,
        prev: EMPTY,
    };

    fn add(&mut self, bucket: i64, amount: Amount) {
        if bucket == self.cur.bucket {
            self.cur.amount += amount;
        } else if bucket > self.cur.bucket {
            self.prev = if self.cur.bucket.checked_add(1) == Some(bucket) {
                self.cur
            } else {
                Slot {
                    bucket: bucket - 1,
                    amount: Amount::ZERO,
                }
            };
            self.cur = Slot { bucket, amount };
        } else if bucket == self.prev.bucket {
            // A request finishing just after another thread rolled the bucket over.
            self.prev.amount += amount;
        }
        // Anything older is outside every window; only the total keeps it.
    }

    fn get(&self, bucket: i64) -> Amount {
        if bucket == self.cur.bucket {
            self.cur.amount
        } else if bucket == self.prev.bucket {
            self.prev.amount
        } else {
            Amount::ZERO
        }
    }
}

/// An alert already sent: (limit name, period bucket, threshold) per scope, so each
/// fires at most once per bucket.
#[derive(Clone, Debug)]
pub(super) struct Fired {
    pub(super) budget: Box<str>,
    pub(super) period: Period,
    pub(super) bucket: i64,
    pub(super) threshold: u32,
}

/// Everything the ledger keeps for one scope.
#[derive(Debug)]
pub(super) struct Counters {
    pairs: [Pair; 5],
    total: Amount,
    /// Estimates of admitted, unsettled requests; they count in every period.
    pub(super) reserved: Amount,
    /// Limits admitted against this scope (one per name), for the budget view.
    pub(super) limits: Vec<Limit>,
    /// Alerts fired in the current or previous bucket of their period.
    pub(super) fired: Vec<Fired>,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            pairs: [Pair::EMPTY; 5],
            total: Amount::ZERO,
            reserved: Amount::ZERO,
            limits: Vec::new(),
            fired: Vec::new(),
        }
    }
}

/// The raw figures behind a window, for estimating when a rolling window frees up.
pub(super) struct Parts {
    /// Settled in the current bucket.
    pub(super) cur: Amount,
    /// Settled in the previous bucket, unweighted.
    pub(super) prev: Amount,
    pub(super) start_ms: i64,
    pub(super) end_ms: i64,
}

impl Counters {
    /// Counts a finished request in the buckets of `ts_ms` and the total.
    pub(super) fn add(&mut self, amount: Amount, ts_ms: i64) {
        for p in &Period::ALL[..5] {
            self.add_bucket(*p, bucket(*p, ts_ms), amount);
        }
        self.total += amount;
    }

    /// Counts a stored row (start-up) in one period's bucket, or the total.
    pub(super) fn add_bucket(&mut self, period: Period, bucket: i64, amount: Amount) {
        match period.index() {
            Some(i) => self.pairs[i].add(bucket, amount),
            None => self.total += amount,
        }
    }

    /// Settled usage in a window at `now_ms`, with the window's start and reset time
    /// (see [`Reading`]).
    pub(super) fn settled(
        &self,
        period: Period,
        window: Window,
        now_ms: i64,
    ) -> (Amount, i64, i64) {
        let Some(parts) = self.parts(period, now_ms) else {
            return (self.total, 0, i64::MAX);
        };
        match window {
            Window::Calendar => (parts.cur, parts.start_ms, parts.end_ms),
            Window::Rolling => {
                let len = parts.end_ms.saturating_sub(parts.start_ms);
                let left = parts.end_ms.saturating_sub(now_ms);
                let share = parts.prev.scaled(left, len);
                (parts.cur + share, now_ms.saturating_sub(len), parts.end_ms)
            }
        }
    }

    /// The current and previous bucket of a bucketed period at `now_ms`; `None` for
    /// `Total`.
    pub(super) fn parts(&self, period: Period, now_ms: i64) -> Option<Parts> {
        let pair = &self.pairs[period.index()?];
        let b = bucket(period, now_ms);
        Some(Parts {
            cur: pair.get(b),
            prev: pair.get(b.saturating_sub(1)),
            start_ms: bucket_start_ms(period, b),
            end_ms: bucket_end_ms(period, b),
        })
    }

    /// Settled plus reserved usage in a window.
    pub(super) fn reading(&self, period: Period, window: Window, now_ms: i64) -> Reading {
        let (settled, window_start_ms, resets_at_ms) = self.settled(period, window, now_ms);
        Reading {
            settled,
            reserved: self.reserved,
            window_start_ms,
            resets_at_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::calendar::days_from_civil;

    fn reqs(n: u64) -> Amount {
        Amount {
            requests: n,
            tokens: n * 100,
            cost_nano: n * 1_000,
        }
    }

    #[test]
    fn calendar_reads_the_current_bucket_only() {
        let mut c = Counters::default();
        let t0 = 1_000 * 60_000; // a minute boundary
        c.add(reqs(3), t0 + 5_000);
        c.add(reqs(2), t0 + 59_999);
        let (a, start, end) = c.settled(Period::Minute, Window::Calendar, t0 + 30_000);
        assert_eq!((a, start, end), (reqs(5), t0, t0 + 60_000));
        // Rolled over: calendar is empty, the total keeps everything.
        let (a, ..) = c.settled(Period::Minute, Window::Calendar, t0 + 60_000);
        assert_eq!(a, Amount::ZERO);
        assert_eq!(c.settled(Period::Total, Window::Calendar, 0).0, reqs(5));
        assert_eq!(c.settled(Period::Total, Window::Rolling, 0).2, i64::MAX);
    }

    #[test]
    fn rolling_weights_the_previous_bucket() {
        let mut c = Counters::default();
        let t0 = 1_000 * 60_000;
        c.add(reqs(100), t0 + 10_000); // previous minute
        c.add(reqs(10), t0 + 60_000 + 1_000); // current minute
        // 15 s into the current minute, 45/60 of the previous one is still in the window.
        let now = t0 + 75_000;
        let (a, start, end) = c.settled(Period::Minute, Window::Rolling, now);
        assert_eq!(a.requests, 10 + 75);
        assert_eq!(a.tokens, 1_000 + 7_500);
        assert_eq!((start, end), (now - 60_000, t0 + 120_000));
        // At the start of the bucket the previous one counts fully, at the end not at all.
        assert_eq!(
            c.settled(Period::Minute, Window::Rolling, t0 + 60_000)
                .0
                .requests,
            110
        );
        assert_eq!(
            c.settled(Period::Minute, Window::Rolling, t0 + 119_999)
                .0
                .requests,
            10
        );
        // Two buckets later nothing is left.
        assert_eq!(
            c.settled(Period::Minute, Window::Rolling, t0 + 180_000).0,
            Amount::ZERO
        );
    }

    #[test]
    fn rolling_month_weights_the_previous_calendar_month() {
        let day = crate::ledger::calendar::DAY_MS;
        let mut c = Counters::default();
        c.add(reqs(310), days_from_civil(2026, 1, 20) * day); // January
        c.add(reqs(7), days_from_civil(2026, 2, 3) * day);
        // Half of February (28 days) elapsed: half of January still counts.
        let now = days_from_civil(2026, 2, 15) * day;
        let (a, start, end) = c.settled(Period::Month, Window::Rolling, now);
        assert_eq!(a.requests, 7 + 155);
        assert_eq!(end, days_from_civil(2026, 3, 1) * day);
        assert_eq!(start, now - 28 * day);
        assert_eq!(
            c.settled(Period::Month, Window::Calendar, now).0.requests,
            7
        );
    }

    #[test]
    fn late_and_skipped_buckets() {
        let mut c = Counters::default();
        c.add(reqs(1), 10 * 60_000);
        c.add(reqs(2), 12 * 60_000); // skips minute 11: previous becomes empty
        assert_eq!(
            c.parts(Period::Minute, 12 * 60_000).map(|p| p.prev),
            Some(Amount::ZERO)
        );
        c.add(reqs(4), 11 * 60_000 + 5); // late, still in the previous bucket
        c.add(reqs(8), 10 * 60_000 + 5); // too old for any window
        let p = c
            .parts(Period::Minute, 12 * 60_000)
            .map(|p| (p.cur, p.prev));
        assert_eq!(p, Some((reqs(2), reqs(4))));
        assert_eq!(c.settled(Period::Total, Window::Calendar, 0).0, reqs(15));
    }
}
