//! Rolling windows that never admit more than their cap in any window of their length.
//!
//! A rolling window of length `T` is read from a [`Ring`] of sixty sub-buckets of
//! `T / 60` each. The sub-bucket that the window's start falls in is counted whole, so a
//! reading is never below the true usage of the last `T`: admission errs only towards
//! refusing, by at most what was used in one sub-bucket (1/60 of the window). Request
//! limits small enough to keep one timestamp per admission use a [`SlidingLog`]
//! instead, which is exact: at most `cap` admissions in any `T`, and a refused request
//! learns the exact instant a slot frees up.

use super::amount::{Amount, Metric};
use super::calendar::{DAY_MS, Period};

/// Sub-buckets per window; the ring holds one more so the partial oldest one fits.
const SUBS: i64 = 60;
const SLOTS: usize = SUBS as usize + 1;

/// The length of a rolling window of `period` (a month is 30 days); `None` for `Total`.
pub fn window_len_ms(period: Period) -> Option<i64> {
    Some(match period {
        Period::Minute => 60_000,
        Period::Hour => 3_600_000,
        Period::Day => DAY_MS,
        Period::Week => 7 * DAY_MS,
        Period::Month => 30 * DAY_MS,
        Period::Total => return None,
    })
}

/// The sixty sub-buckets of one scope's rolling window.
#[derive(Clone, Debug)]
pub(super) struct Ring {
    len: i64,
    sub: i64,
    /// (sub-bucket number, usage in it), indexed by number modulo [`SLOTS`].
    slots: Box<[(i64, Amount); SLOTS]>,
}

impl Ring {
    /// An empty ring for `period` (`None` for `Total`).
    pub(super) fn new(period: Period) -> Option<Self> {
        let len = window_len_ms(period)?;
        Some(Self {
            len,
            sub: len / SUBS,
            slots: Box::new([(i64::MIN, Amount::ZERO); SLOTS]),
        })
    }

    /// The window's length.
    pub(super) fn len_ms(&self) -> i64 {
        self.len
    }

    /// Counts `amount` at `ts_ms`; usage older than the ring keeps is ignored.
    pub(super) fn add(&mut self, amount: Amount, ts_ms: i64) {
        let s = ts_ms.div_euclid(self.sub);
        let slot = &mut self.slots[s.rem_euclid(SLOTS as i64) as usize];
        if slot.0 == s {
            slot.1 += amount;
        } else if slot.0 < s {
            *slot = (s, amount);
        }
    }

    /// The sub-buckets overlapping the window that ends at `now_ms`.
    fn range(&self, now_ms: i64) -> (i64, i64) {
        (
            now_ms.saturating_sub(self.len).div_euclid(self.sub),
            now_ms.div_euclid(self.sub),
        )
    }

    /// Usage in the window ending at `now_ms` (the oldest, partial sub-bucket counted
    /// whole).
    pub(super) fn sum(&self, now_ms: i64) -> Amount {
        let (lo, hi) = self.range(now_ms);
        self.slots
            .iter()
            .filter(|(s, _)| (lo..=hi).contains(s))
            .fold(Amount::ZERO, |acc, (_, a)| acc + a.to_owned())
    }

    /// The earliest instant from `now_ms` on at which the window's usage in `metric`,
    /// plus `extra` units assumed to settle now, is at most `target` units, if no new
    /// usage arrives; `None` when it never is (a negative target).
    pub(super) fn frees_at(
        &self,
        metric: Metric,
        extra: u64,
        target: i64,
        now_ms: i64,
    ) -> Option<i64> {
        let (lo, hi) = self.range(now_ms);
        let mut parts: Vec<(i64, u64)> = self
            .slots
            .iter()
            .filter(|(s, a)| (lo..=hi).contains(s) && a.units(metric) > 0)
            .map(|(s, a)| (*s, a.units(metric)))
            .collect();
        if extra > 0 {
            parts.push((hi, extra));
        }
        parts.sort_unstable_by_key(|p| p.0);
        let mut total: u128 = parts.iter().map(|p| u128::from(p.1)).sum();
        let fits = |total: u128| i128::try_from(total).is_ok_and(|t| t <= i128::from(target));
        if fits(total) {
            return Some(now_ms);
        }
        if target < 0 {
            return None;
        }
        for (i, (s, units)) in parts.iter().enumerate() {
            total -= u128::from(*units);
            let last_of_sub = parts.get(i + 1).is_none_or(|next| next.0 != *s);
            if last_of_sub && fits(total) {
                // A sub-bucket leaves the window once the window's start passes its end.
                return Some((s + 1).saturating_mul(self.sub).saturating_add(self.len));
            }
        }
        None
    }

    /// The usage of each sub-bucket in the window ending at `now_ms`, with the last
    /// instant it covers (capped at `now_ms`), oldest first: what a [`SlidingLog`] is
    /// seeded from.
    pub(super) fn parts(&self, now_ms: i64) -> Vec<(i64, Amount)> {
        let (lo, hi) = self.range(now_ms);
        let mut v: Vec<(i64, Amount)> = self
            .slots
            .iter()
            .filter(|(s, a)| (lo..=hi).contains(s) && *a != Amount::ZERO)
            .map(|(s, a)| {
                let end = (s + 1).saturating_mul(self.sub).saturating_sub(1);
                (end.min(now_ms), *a)
            })
            .collect();
        v.sort_unstable_by_key(|p| p.0);
        v
    }
}

/// The admission times of the last `cap` requests under one rolling request limit.
#[derive(Clone, Debug, Default)]
pub(super) struct SlidingLog {
    len: i64,
    cap: usize,
    times: std::collections::VecDeque<i64>,
}

impl SlidingLog {
    /// A log for a window of `len_ms` and a cap of `cap` requests.
    pub(super) fn new(len_ms: i64, cap: usize) -> Self {
        Self {
            len: len_ms,
            cap,
            times: Default::default(),
        }
    }

    /// Whether this log fits a limit of `len_ms` and `cap` (else it is rebuilt).
    pub(super) fn fits(&self, len_ms: i64, cap: usize) -> bool {
        self.len == len_ms && self.cap == cap
    }

    /// Admissions inside the window ending at `now_ms`: times in `(now − len, now]`.
    pub(super) fn count(&self, now_ms: i64) -> usize {
        let start = now_ms.saturating_sub(self.len);
        let (lo, hi) = (
            self.times.partition_point(|&t| t <= start),
            self.times.partition_point(|&t| t <= now_ms),
        );
        hi - lo
    }

    /// When the window ending at or after `now_ms` holds fewer than `cap` admissions
    /// again, without new ones.
    pub(super) fn frees_at(&self, now_ms: i64) -> i64 {
        if self.cap == 0 {
            return i64::MAX;
        }
        let start = now_ms.saturating_sub(self.len);
        let lo = self.times.partition_point(|&t| t <= start);
        let inside = self.count(now_ms);
        if inside < self.cap {
            return now_ms;
        }
        // The (inside − cap + 1)-th oldest admission in the window has to leave it.
        match self.times.get(lo + inside - self.cap) {
            Some(t) => t.saturating_add(self.len),
            None => now_ms,
        }
    }

    /// When every admission now in the window has left it.
    pub(super) fn empties_at(&self, now_ms: i64) -> i64 {
        match self.times.back() {
            Some(&t) if t > now_ms.saturating_sub(self.len) => t.saturating_add(self.len),
            _ => now_ms,
        }
    }

    /// Records an admission at `now_ms`, forgetting what no window can count any more.
    pub(super) fn push(&mut self, now_ms: i64) {
        let start = now_ms.saturating_sub(self.len);
        while self.times.front().is_some_and(|&t| t <= start) || self.times.len() >= self.cap.max(1)
        {
            self.times.pop_front();
        }
        let at = self.times.partition_point(|&t| t <= now_ms);
        self.times.insert(at, now_ms);
        if self.times.capacity() > 64 && self.times.len() < self.times.capacity() / 4 {
            self.times.shrink_to(self.times.len() * 2);
        }
    }

    /// Admission times kept.
    pub(super) fn len(&self) -> usize {
        self.times.len()
    }

    /// Forgets one admission at `at_ms` (its request never reached a provider).
    pub(super) fn remove(&mut self, at_ms: i64) {
        if let Some(i) = self.times.iter().rposition(|&t| t == at_ms) {
            self.times.remove(i);
        }
    }

    /// Seeds the log from usage known only by when it happened at the latest.
    pub(super) fn seed(&mut self, parts: &[(i64, Amount)]) {
        for (at, a) in parts {
            for _ in 0..a.requests.min(self.cap as u64) {
                self.push(*at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reqs(n: u64) -> Amount {
        Amount {
            requests: n,
            tokens: n * 10,
            cost_nano: n * 100,
        }
    }

    /// 2026-11-26T00:00:45Z: 45 s into a UTC minute, as in the reported attack.
    const T: i64 = 1_795_651_245_000;

    #[test]
    fn a_sliding_log_never_admits_more_than_its_cap_in_any_window() {
        let mut log = SlidingLog::new(60_000, 5);
        let mut admitted = Vec::new();
        // Five at :45, then one attempt a second for two minutes.
        let attempts: Vec<i64> = (0..5)
            .map(|_| T)
            .chain((1..=120).map(|s| T + s * 1000))
            .collect();
        for now in attempts {
            if log.count(now) < 5 {
                log.push(now);
                admitted.push(now);
            } else {
                assert!(log.frees_at(now) > now);
            }
        }
        for (i, &start) in admitted.iter().enumerate() {
            let inside = admitted[i..]
                .iter()
                .filter(|&&t| t < start + 60_000)
                .count();
            assert!(
                inside <= 5,
                "{inside} admissions in the minute from {start}"
            );
        }
        // The next admission after the burst is exactly one minute after it.
        assert_eq!(admitted[5], T + 60_000);
    }

    #[test]
    fn a_sliding_log_says_exactly_when_a_slot_frees() {
        let mut log = SlidingLog::new(60_000, 3);
        for t in [T, T + 10_000, T + 20_000] {
            log.push(t);
        }
        assert_eq!(log.count(T + 30_000), 3);
        assert_eq!(log.frees_at(T + 30_000), T + 60_000);
        assert_eq!(log.count(T + 60_000), 2);
        assert_eq!(log.frees_at(T + 60_000), T + 60_000);
        log.remove(T + 10_000);
        assert_eq!(log.count(T + 30_000), 2);
    }

    #[test]
    fn a_ring_never_reads_less_than_the_true_window() {
        let mut ring = Ring::new(Period::Minute).expect("bucketed");
        // One request every 250 ms for three minutes, read as time goes by.
        let events: Vec<i64> = (0..720).map(|i| T + i * 250).collect();
        let mut added = 0;
        for now in (T..T + 180_000).step_by(777) {
            while added < events.len() && events[added] <= now {
                ring.add(reqs(1), events[added]);
                added += 1;
            }
            let truth = events[..added]
                .iter()
                .filter(|&&e| e > now - 60_000)
                .count() as u64;
            let read = ring.sum(now).requests;
            assert!(read >= truth, "at {now}: read {read} < true {truth}");
            // Off by at most one sub-bucket (1 s = 4 requests).
            assert!(
                read <= truth + 4,
                "at {now}: read {read} > true {truth} + 4"
            );
        }
    }

    #[test]
    fn a_rolling_week_frees_when_its_usage_leaves_not_at_a_calendar_boundary() {
        let mut ring = Ring::new(Period::Week).expect("bucketed");
        let spent = Amount {
            cost_nano: 5_000_000_000,
            ..Amount::ZERO
        };
        ring.add(spent, T);
        let now = T + 5 * 60_000; // minutes later
        let cap = 5_000_000_000_i64;
        let at = ring.frees_at(Metric::Cost, 0, cap - 1, now).expect("frees");
        let sub = 7 * DAY_MS / 60;
        // The spend leaves once the window's start passes the end of its sub-bucket.
        assert_eq!(at, (T / sub + 1) * sub + 7 * DAY_MS);
        assert!(at - T <= 7 * DAY_MS + sub && at - T >= 7 * DAY_MS);
        assert_eq!(ring.sum(at - 1).cost_nano, 5_000_000_000);
        assert_eq!(ring.sum(at).cost_nano, 0);
        // An extra reservation settles now: it leaves a week from now.
        let at = ring.frees_at(Metric::Cost, 1, 0, now).expect("frees");
        assert!(at >= now + 7 * DAY_MS);
        assert_eq!(ring.frees_at(Metric::Cost, 0, -1, now), None);
    }

    #[test]
    fn ring_parts_seed_a_log_no_earlier_than_the_usage() {
        let mut ring = Ring::new(Period::Minute).expect("bucketed");
        ring.add(reqs(2), T + 100);
        ring.add(reqs(1), T + 30_500);
        let parts = ring.parts(T + 40_000);
        assert_eq!(parts, vec![(T + 999, reqs(2)), (T + 30_999, reqs(1))]);
        let mut log = SlidingLog::new(60_000, 10);
        log.seed(&parts);
        assert_eq!(log.count(T + 40_000), 3);
        assert_eq!(log.count(T + 60_999), 1);
        assert_eq!(log.count(T + 61_000), 1);
    }
}
