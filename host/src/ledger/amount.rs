//! Counted quantities: what a limit measures, amounts of usage and window readings.

use serde::{Deserialize, Serialize};
use std::ops::{Add, AddAssign};

/// What a limit measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Spend in USD, counted in nano-USD.
    Cost,
    /// Tokens of every kind: input, output, cache reads and cache writes.
    Tokens,
    /// Requests admitted.
    Requests,
}

/// Nano-USD per USD.
const NANO: f64 = 1e9;

impl Metric {
    /// The lowercase name, as stored and serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Cost => "cost",
            Metric::Tokens => "tokens",
            Metric::Requests => "requests",
        }
    }

    /// Inverse of [`Metric::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [Metric::Cost, Metric::Tokens, Metric::Requests]
            .into_iter()
            .find(|m| m.as_str() == s)
    }

    /// A value in the metric's unit as a whole count of its integer unit (nano-USD,
    /// tokens, requests), so caps and thresholds compare exactly: cost rounds to the
    /// nearest nano-USD, counts round up (`n < 10.5` ⇔ `n < 11`). NaN and negatives
    /// give 0.
    pub fn units_of(self, value: f64) -> u64 {
        match self {
            // `as` saturates and maps NaN to 0.
            Metric::Cost => (value * NANO).round() as u64,
            Metric::Tokens | Metric::Requests => value.ceil() as u64,
        }
    }
}

/// Requests, tokens (input+output+cache) and cost (nano-USD, 1e-9 $).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amount {
    /// Number of requests (each counts once, reserved or settled).
    pub requests: u64,
    /// Input + output + cache-read + cache-write tokens.
    pub tokens: u64,
    /// Cost in nano-USD (1e-9 $).
    pub cost_nano: u64,
}

impl Amount {
    /// Nothing counted.
    pub const ZERO: Amount = Amount {
        requests: 0,
        tokens: 0,
        cost_nano: 0,
    };

    /// `units` of `m`'s integer unit (nano-USD, tokens, requests), nothing else.
    pub fn of(m: Metric, units: u64) -> Self {
        match m {
            Metric::Requests => Amount {
                requests: units,
                ..Amount::ZERO
            },
            Metric::Tokens => Amount {
                tokens: units,
                ..Amount::ZERO
            },
            Metric::Cost => Amount {
                cost_nano: units,
                ..Amount::ZERO
            },
        }
    }

    /// In the metric's unit: USD (cost_nano / 1e9), tokens, requests.
    pub fn metric(&self, m: Metric) -> f64 {
        match m {
            Metric::Cost => self.cost_nano as f64 / NANO,
            _ => self.units(m) as f64,
        }
    }

    /// In the metric's integer unit (nano-USD, tokens, requests): what caps compare.
    pub fn units(&self, m: Metric) -> u64 {
        match m {
            Metric::Cost => self.cost_nano,
            Metric::Tokens => self.tokens,
            Metric::Requests => self.requests,
        }
    }

    /// Field-wise subtraction floored at zero (releasing more than was reserved must not
    /// wrap around).
    pub fn saturating_sub(self, other: Amount) -> Amount {
        Amount {
            requests: self.requests.saturating_sub(other.requests),
            tokens: self.tokens.saturating_sub(other.tokens),
            cost_nano: self.cost_nano.saturating_sub(other.cost_nano),
        }
    }
}

impl Add for Amount {
    type Output = Amount;
    /// Saturating: counters stick at the maximum rather than wrap.
    fn add(self, o: Amount) -> Amount {
        Amount {
            requests: self.requests.saturating_add(o.requests),
            tokens: self.tokens.saturating_add(o.tokens),
            cost_nano: self.cost_nano.saturating_add(o.cost_nano),
        }
    }
}

impl AddAssign for Amount {
    fn add_assign(&mut self, o: Amount) {
        *self = *self + o;
    }
}

/// A scope's usage in one window at one instant.
///
/// `window_start_ms`: calendar → start of the current bucket; rolling → `now` minus the
/// window's length; `Total` → 0. `resets_at_ms`: calendar → end of the current bucket;
/// rolling → when the oldest usage in the window leaves it (for a limit's reading: when
/// an exhausted limit admits again, else when the window's usage has all left);
/// `Total` → `i64::MAX` (never).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Reading {
    /// Finished requests counted in the window (rolling: never less than the true
    /// window, see [`super::rolling`]).
    pub settled: Amount,
    /// Estimates held by requests still running; they count in every window.
    pub reserved: Amount,
    /// Start of the window, Unix ms (see above per window kind).
    pub window_start_ms: i64,
    /// When the reading next drops, Unix ms (see above); `i64::MAX` for `Total`.
    pub resets_at_ms: i64,
}

impl Reading {
    /// settled + reserved, in the metric's unit.
    pub fn current(&self, m: Metric) -> f64 {
        (self.settled + self.reserved).metric(m)
    }

    /// settled + reserved in the metric's integer unit: what admission compares.
    pub fn current_units(&self, m: Metric) -> u64 {
        (self.settled + self.reserved).units(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_metric_values() {
        let a = Amount {
            requests: 3,
            tokens: 1_500,
            cost_nano: 5_020_000_000,
        };
        assert_eq!(a.metric(Metric::Cost), 5.02);
        assert_eq!(a.metric(Metric::Tokens), 1_500.0);
        assert_eq!(a.metric(Metric::Requests), 3.0);
        assert_eq!(Metric::Cost.units_of(0.3), 300_000_000);
        assert_eq!(Metric::Requests.units_of(10.0), 10);
        assert_eq!(Metric::Requests.units_of(10.5), 11);
        assert_eq!(Metric::Tokens.units_of(f64::NAN), 0);
        assert_eq!(Metric::Tokens.units_of(-4.0), 0);
        assert_eq!(Metric::parse("tokens"), Some(Metric::Tokens));
        assert_eq!(Metric::parse("usd"), None);
    }
}
