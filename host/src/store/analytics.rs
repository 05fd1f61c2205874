//! Time series from the request log for the console's analytics: requests, errors,
//! tokens, cost and latency percentiles per time bucket, grouped by a column or a
//! metadata key (the admin API's `GET /analytics`).

use super::usage::usage_select;
use super::{Store, StoreError, UsageGroup};
use rusqlite::{Connection, params_from_iter};
use serde::Serialize;
use std::collections::HashMap;

/// What to chart.
#[derive(Clone, Debug)]
pub struct AnalyticsQuery {
    /// Only this tenant's requests; `None` charts every tenant.
    pub tenant: Option<String>,
    /// What the series are split by (`UsageGroup::None`: one series).
    pub by: UsageGroup,
    /// Inclusive, Unix ms.
    pub since_ms: i64,
    /// Exclusive, Unix ms.
    pub until_ms: i64,
    /// Width of one bucket.
    pub bucket_ms: i64,
    /// Groups shown on their own (by cost); the rest are summed as `other`.
    pub max_groups: usize,
}

/// One group's series, a value per bucket.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Series {
    /// The group's value (`None`: requests without one, or the ungrouped total).
    pub group: Option<String>,
    /// Requests per bucket.
    pub requests: Vec<u64>,
    /// Requests answered with status 400 or above, per bucket.
    pub errors: Vec<u64>,
    /// Input, output and cache tokens per bucket.
    pub tokens: Vec<u64>,
    /// Cost in USD per bucket.
    pub cost_usd: Vec<f64>,
    /// Latency percentiles of the bucket's requests (`None` when it has none).
    pub latency_p50_ms: Vec<Option<u64>>,
    /// 95th percentile latency per bucket, as above.
    pub latency_p95_ms: Vec<Option<u64>>,
    /// 99th percentile latency per bucket, as above.
    pub latency_p99_ms: Vec<Option<u64>>,
    /// The whole range's totals and percentiles.
    pub total: Totals,
}

/// A range's totals.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    /// Requests in the range.
    pub requests: u64,
    /// Requests answered with status 400 or above.
    pub errors: u64,
    /// Input, output and cache tokens.
    pub tokens: u64,
    /// Cost in USD.
    pub cost_usd: f64,
    /// Median latency over the whole range (`None` without requests).
    pub latency_p50_ms: Option<u64>,
    /// 95th percentile latency over the whole range.
    pub latency_p95_ms: Option<u64>,
    /// 99th percentile latency over the whole range.
    pub latency_p99_ms: Option<u64>,
}

/// The charted range.
#[derive(Clone, Debug, Serialize)]
pub struct Analytics {
    /// Width of one bucket in ms, as used (the query's, raised to at least a second).
    pub bucket_ms: i64,
    /// Start of each bucket, Unix ms.
    pub buckets: Vec<i64>,
    /// One series per group, highest cost first (`other` last).
    pub series: Vec<Series>,
    /// Everything together.
    pub total: Series,
}

/// Most buckets one query returns.
pub const MAX_BUCKETS: i64 = 2_000;

impl Store {
    /// The series `q` asks for. `count_tokens` calls are not usage and are left out.
    pub async fn analytics(&self, q: AnalyticsQuery) -> Result<Analytics, StoreError> {
        self.with_conn(move |c| analytics(c, &q)).await
    }
}

/// Raw values of one group in one bucket.
#[derive(Default)]
struct Cell {
    requests: u64,
    errors: u64,
    tokens: u64,
    cost_nano: u64,
    latencies: Vec<u64>,
}

impl Cell {
    fn add(&mut self, other: &Cell) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.tokens += other.tokens;
        self.cost_nano += other.cost_nano;
        self.latencies.extend_from_slice(&other.latencies);
    }
}

fn analytics(c: &mut Connection, q: &AnalyticsQuery) -> Result<Analytics, StoreError> {
    let bucket_ms = q.bucket_ms.max(1000);
    let first = q.since_ms.div_euclid(bucket_ms) * bucket_ms;
    let n = ((q.until_ms - first + bucket_ms - 1) / bucket_ms).clamp(1, MAX_BUCKETS) as usize;
    let (sql, args) = usage_select(
        c,
        |group| {
            format!(
                "l.ts_ms, {group}, l.status, l.latency_ms,
                 l.input_tokens + l.output_tokens + l.cache_read_tokens + l.cache_write_tokens, l.cost_nano"
            )
        },
        &q.by,
        q.tenant.as_deref(),
        q.since_ms,
        q.until_ms,
    );
    // Keyed by the group's text, looked up without allocating; `none` holds requests
    // without a value.
    let mut cells: HashMap<String, Vec<Cell>> = HashMap::new();
    let mut none: Option<Vec<Cell>> = None;
    let empty = || (0..n).map(|_| Cell::default()).collect::<Vec<_>>();
    let mut st = c.prepare(&sql)?;
    let mut rows = st.query(params_from_iter(args))?;
    while let Some(r) = rows.next()? {
        let ts: i64 = r.get(0)?;
        let i = ((ts - first) / bucket_ms) as usize;
        if i >= n {
            continue;
        }
        let group = match r.get_ref(1)? {
            rusqlite::types::ValueRef::Text(t) => Some(String::from_utf8_lossy(t)),
            _ => None,
        };
        let series = match group {
            None => none.get_or_insert_with(empty),
            Some(g) => match cells.get_mut(g.as_ref()) {
                Some(v) => v,
                None => cells.entry(g.into_owned()).or_insert_with(empty),
            },
        };
        let cell = &mut series[i];
        let status: i64 = r.get(2)?;
        cell.requests += 1;
        cell.errors += u64::from(status >= 400);
        cell.latencies.push(r.get::<_, i64>(3)?.max(0) as u64);
        cell.tokens += r.get::<_, i64>(4)?.max(0) as u64;
        cell.cost_nano += r.get::<_, i64>(5)?.max(0) as u64;
    }
    let mut groups: Vec<(Option<String>, Vec<Cell>)> =
        cells.into_iter().map(|(g, v)| (Some(g), v)).collect();
    if let Some(v) = none {
        groups.push((None, v));
    }
    // Highest cost first, then most requests, then by name: stable charts.
    let weight = |v: &[Cell]| {
        (
            v.iter().map(|c| c.cost_nano).sum::<u64>(),
            v.iter().map(|c| c.requests).sum::<u64>(),
        )
    };
    groups.sort_by(|a, b| weight(&b.1).cmp(&weight(&a.1)).then_with(|| a.0.cmp(&b.0)));
    let mut total: Vec<Cell> = (0..n).map(|_| Cell::default()).collect();
    for (_, v) in &groups {
        for (t, c) in total.iter_mut().zip(v) {
            t.add(c);
        }
    }
    let grouped = q.by != UsageGroup::None;
    let mut series = Vec::new();
    if grouped {
        let keep = q.max_groups.max(1);
        let mut rest: Option<Vec<Cell>> = None;
        for (i, (g, v)) in groups.into_iter().enumerate() {
            if i < keep {
                series.push(to_series(g, v));
            } else {
                let acc = rest.get_or_insert_with(|| (0..n).map(|_| Cell::default()).collect());
                for (a, c) in acc.iter_mut().zip(&v) {
                    a.add(c);
                }
            }
        }
        if let Some(v) = rest {
            series.push(to_series(Some("other".into()), v));
        }
    }
    let total = to_series(None, total);
    if !grouped {
        series.push(total.clone());
    }
    Ok(Analytics {
        bucket_ms,
        buckets: (0..n as i64).map(|i| first + i * bucket_ms).collect(),
        series,
        total,
    })
}

fn to_series(group: Option<String>, mut cells: Vec<Cell>) -> Series {
    let mut s = Series {
        group,
        ..Series::default()
    };
    let mut all = Vec::new();
    for c in &mut cells {
        s.requests.push(c.requests);
        s.errors.push(c.errors);
        s.tokens.push(c.tokens);
        s.cost_usd.push(c.cost_nano as f64 / 1e9);
        c.latencies.sort_unstable();
        s.latency_p50_ms.push(percentile(&c.latencies, 50));
        s.latency_p95_ms.push(percentile(&c.latencies, 95));
        s.latency_p99_ms.push(percentile(&c.latencies, 99));
        s.total.requests += c.requests;
        s.total.errors += c.errors;
        s.total.tokens += c.tokens;
        s.total.cost_usd += c.cost_nano as f64 / 1e9;
        all.extend_from_slice(&c.latencies);
    }
    all.sort_unstable();
    s.total.latency_p50_ms = percentile(&all, 50);
    s.total.latency_p95_ms = percentile(&all, 95);
    s.total.latency_p99_ms = percentile(&all, 99);
    s
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: usize) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50), Some(50));
        assert_eq!(percentile(&v, 95), Some(95));
        assert_eq!(percentile(&v, 99), Some(99));
        assert_eq!(percentile(&[7], 99), Some(7));
        assert_eq!(percentile(&[], 50), None);
    }
}
