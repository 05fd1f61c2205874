//! One scope's counters: for each bucketed period the current and previous calendar
//! bucket, a running total, the estimates reserved by running requests, and (once a
//! rolling limit or read asks for one) a [`Ring`] per period for rolling windows.

use super::amount::{Amount, Reading};
use super::calendar::{Period, Window, bucket, bucket_end_ms, bucket_start_ms};
use super::limit::Limit;
use super::rolling::{Ring, SlidingLog};
use std::collections::HashMap;
use std::sync::Arc;

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

/// A limit admitted against a scope, with its exact log when it has one.
#[derive(Debug)]
pub(super) struct Tracked {
    pub(super) limit: Limit,
    /// Admission times, for rolling request limits small enough to log exactly.
    pub(super) log: Option<SlidingLog>,
    /// When the limit was last handed to the store (it is re-sent daily so the stored
    /// `last_seen_ms` says which limits are still granted).
    pub(super) persisted_ms: i64,
    /// When a plugin last granted it.
    pub(super) seen_ms: i64,
}

impl Tracked {
    /// Not granted for longer than its window plus a day: no plugin grants it now.
    pub(super) fn stale(&self, now_ms: i64) -> bool {
        let window = super::rolling::window_len_ms(self.limit.period).unwrap_or(i64::MAX / 4);
        now_ms.saturating_sub(self.seen_ms) > window.saturating_add(super::calendar::DAY_MS)
    }
}

/// Everything the ledger keeps for one scope.
#[derive(Debug)]
pub(super) struct Counters {
    pairs: [Pair; 5],
    total: Amount,
    /// Estimates of admitted, unsettled requests; they count in every period.
    pub(super) reserved: Amount,
    /// Limits admitted against this scope, by name.
    pub(super) limits: HashMap<Arc<str>, Tracked>,
    /// Alerts fired in the current or previous bucket of their period.
    pub(super) fired: Vec<Fired>,
    /// Rolling-window sub-buckets per bucketed period, created on first use.
    rings: [Option<Ring>; 5],
    /// When a request last used the scope (admission or settlement).
    pub(super) last_used_ms: i64,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            pairs: [Pair::EMPTY; 5],
            total: Amount::ZERO,
            reserved: Amount::ZERO,
            limits: HashMap::new(),
            fired: Vec::new(),
            rings: Default::default(),
            last_used_ms: 0,
        }
    }
}

/// The raw figures behind a calendar window.
pub(super) struct Parts {
    /// Settled in the current bucket.
    pub(super) cur: Amount,
    /// Settled in the previous bucket.
    pub(super) prev: Amount,
    pub(super) start_ms: i64,
    pub(super) end_ms: i64,
}

impl Counters {
    /// Counts a finished request in the buckets of `ts_ms`, the total and the rings.
    pub(super) fn add(&mut self, amount: Amount, ts_ms: i64) {
        for p in &Period::ALL[..5] {
            self.add_bucket(*p, bucket(*p, ts_ms), amount);
        }
        for ring in self.rings.iter_mut().flatten() {
            ring.add(amount, ts_ms);
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

    /// The ring of `period`'s rolling window, created on first use from the calendar
    /// buckets: the previous bucket counted at its last instant and the current one at
    /// `now_ms`, so seeded usage stays in the window at least as long as it really does.
    pub(super) fn ring(&mut self, period: Period, now_ms: i64) -> Option<&mut Ring> {
        let i = period.index()?;
        if self.rings[i].is_none() {
            let mut ring = Ring::new(period)?;
            if let Some(parts) = self.parts(period, now_ms) {
                ring.add(parts.prev, parts.start_ms.saturating_sub(1));
                ring.add(parts.cur, now_ms.min(parts.end_ms.saturating_sub(1)));
            }
            self.rings[i] = Some(ring);
        }
        self.rings[i].as_mut()
    }

    /// Seeds `period`'s ring (start-up) with stored usage, each amount counted at the
    /// latest instant it can have happened.
    pub(super) fn seed_ring(&mut self, period: Period, parts: &[(i64, Amount)]) {
        let Some(i) = period.index() else { return };
        if self.rings[i].is_none() {
            self.rings[i] = Ring::new(period);
        }
        if let Some(ring) = &mut self.rings[i] {
            for (at, a) in parts {
                ring.add(*a, *at);
            }
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
            Window::Rolling => match period.index().and_then(|i| self.rings[i].as_ref()) {
                Some(ring) => {
                    let resets = ring.parts(now_ms).first().map_or(now_ms, |(at, _)| {
                        at.saturating_add(1).saturating_add(ring.len_ms())
                    });
                    (
                        ring.sum(now_ms),
                        now_ms.saturating_sub(ring.len_ms()),
                        resets,
                    )
                }
                None => {
                    // No ring yet: the previous bucket counts whole (never less than the
                    // true window, except before a month shorter than the window).
                    let len = super::rolling::window_len_ms(period).unwrap_or(0);
                    let next_end = bucket_end_ms(period, bucket(period, parts.end_ms));
                    (parts.cur + parts.prev, now_ms.saturating_sub(len), next_end)
                }
            },
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

    /// Whether the scope can be forgotten without changing any answer a limit gives: no
    /// estimate reserved, no `Total` limit, and unused for longer than every window of
    /// its limits (calendar windows: their period, a month counted as 31 days).
    pub(super) fn evictable(&self, now_ms: i64) -> bool {
        if self.reserved != Amount::ZERO {
            return false;
        }
        let mut keep_ms = 0i64;
        for t in self.limits.values() {
            let len = match t.limit.period {
                Period::Total => return false,
                Period::Month => 31 * super::calendar::DAY_MS,
                p => super::rolling::window_len_ms(p).unwrap_or(0),
            };
            keep_ms = keep_ms.max(len);
        }
        now_ms.saturating_sub(self.last_used_ms) > keep_ms
    }

    /// The ring of `period`, if it exists.
    pub(super) fn ring_ref(&self, period: Period) -> Option<&Ring> {
        self.rings[period.index()?].as_ref()
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
    fn rolling_without_a_ring_counts_the_previous_bucket_whole() {
        let mut c = Counters::default();
        let t0 = 1_000 * 60_000;
        c.add(reqs(100), t0 + 10_000); // previous minute
        c.add(reqs(10), t0 + 60_000 + 1_000); // current minute
        let now = t0 + 75_000;
        let (a, start, _) = c.settled(Period::Minute, Window::Rolling, now);
        assert_eq!(a.requests, 110);
        assert_eq!(start, now - 60_000);
        assert_eq!(
            c.settled(Period::Minute, Window::Rolling, t0 + 180_000).0,
            Amount::ZERO
        );
    }

    #[test]
    fn a_ring_created_late_is_seeded_no_earlier_than_the_usage() {
        let mut c = Counters::default();
        let t0 = 1_000 * 60_000;
        c.add(reqs(100), t0 + 10_000); // previous minute
        c.add(reqs(10), t0 + 60_000 + 1_000); // current minute
        let now = t0 + 75_000;
        assert!(c.ring(Period::Minute, now).is_some());
        // The previous minute counts as if at its last instant: until t0 + 120 s.
        assert_eq!(
            c.settled(Period::Minute, Window::Rolling, now).0.requests,
            110
        );
        assert_eq!(
            c.settled(Period::Minute, Window::Rolling, t0 + 119_999)
                .0
                .requests,
            110
        );
        // The current minute's 10 were seeded at `now`; they leave once the window's
        // start passes the end of now's sub-bucket.
        assert_eq!(
            c.settled(Period::Minute, Window::Rolling, t0 + 120_000)
                .0
                .requests,
            10
        );
        assert_eq!(
            c.settled(Period::Minute, Window::Rolling, now + 60_999)
                .0
                .requests,
            10
        );
        assert_eq!(
            c.settled(Period::Minute, Window::Rolling, now + 61_000)
                .0
                .requests,
            0
        );
        // From now on, new usage is counted where it happens.
        c.add(reqs(1), now + 1);
        assert_eq!(
            c.settled(Period::Minute, Window::Rolling, now + 30_000)
                .0
                .requests,
            111
        );
    }

    #[test]
    fn a_rolling_month_uses_thirty_day_windows() {
        let day = crate::ledger::calendar::DAY_MS;
        let mut c = Counters::default();
        let now = days_from_civil(2026, 2, 15) * day;
        assert!(c.ring(Period::Month, now).is_some());
        c.add(reqs(7), now - 20 * day);
        c.add(reqs(3), now - 31 * day); // before the window
        let (a, start, _) = c.settled(Period::Month, Window::Rolling, now);
        assert_eq!(a.requests, 7);
        assert_eq!(start, now - 30 * day);
        assert_eq!(
            c.settled(Period::Month, Window::Calendar, now).0.requests,
            0
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
