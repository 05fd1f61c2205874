//! Time series from the request log for the console's analytics: requests, errors,
//! tokens, cost and latency percentiles per time bucket, grouped by a column or a
//! metadata key (the admin API's `GET /analytics`).

use super::sql::{Cols, Dialect, Sql};
use super::usage::{scan_hint, usage_select};
use super::{Store, StoreError, UsageGroup};
use rusqlite::params_from_iter;
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
    /// The series `q` asks for. `count_tokens` calls are not usage.
    pub async fn analytics(&self, q: AnalyticsQuery) -> Result<Analytics, StoreError> {
        if let Some(pg) = &self.pg {
            let mut chart = Chart::new(&q);
            let sql = chart_sql(Dialect::Postgres, "", &q);
            pg.each_row(&sql, |r| chart.add(r)).await?;
            return Ok(chart.finish(&q));
        }
        self.with_conn(move |c| {
            let mut chart = Chart::new(&q);
            let scan = scan_hint(c, q.tenant.as_deref(), q.since_ms, q.until_ms);
            let sql = chart_sql(Dialect::Sqlite, scan, &q);
            let mut st = c.prepare(&sql.text)?;
            let mut rows = st.query(params_from_iter(&sql.args))?;
            while let Some(r) = rows.next()? {
                chart.add(r)?;
            }
            Ok(chart.finish(&q))
        })
        .await
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

fn chart_sql(d: Dialect, scan: &str, q: &AnalyticsQuery) -> Sql {
    usage_select(
        d,
        scan,
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
    )
}

/// The cells of a chart being filled, row by row.
struct Chart {
    bucket_ms: i64,
    first: i64,
    n: usize,
    /// Keyed by the group's text; `none` holds requests without a value.
    cells: HashMap<String, Vec<Cell>>,
    none: Option<Vec<Cell>>,
}

impl Chart {
    fn new(q: &AnalyticsQuery) -> Self {
        let bucket_ms = q.bucket_ms.max(1000);
        let first = q.since_ms.div_euclid(bucket_ms) * bucket_ms;
        let n = ((q.until_ms - first + bucket_ms - 1) / bucket_ms).clamp(1, MAX_BUCKETS) as usize;
        Self {
            bucket_ms,
            first,
            n,
            cells: HashMap::new(),
            none: None,
        }
    }

    /// Adds one row of [`chart_sql`].
    fn add(&mut self, r: &impl Cols) -> Result<(), StoreError> {
        let ts = r.int_req(0)?;
        let i = ((ts - self.first) / self.bucket_ms) as usize;
        if i >= self.n {
            return Ok(());
        }
        let n = self.n;
        let empty = || (0..n).map(|_| Cell::default()).collect::<Vec<_>>();
        let series = match r.text(1)? {
            None => self.none.get_or_insert_with(empty),
            Some(g) => self.cells.entry(g).or_insert_with(empty),
        };
        let cell = &mut series[i];
        cell.requests += 1;
        cell.errors += u64::from(r.int_req(2)? >= 400);
        cell.latencies.push(r.count(3)?);
        cell.tokens += r.count(4)?;
        cell.cost_nano += r.count(5)?;
        Ok(())
    }

    fn finish(self, q: &AnalyticsQuery) -> Analytics {
        let Chart {
            bucket_ms,
            first,
            n,
            cells,
            none,
        } = self;
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
        Analytics {
            bucket_ms,
            buckets: (0..n as i64).map(|i| first + i * bucket_ms).collect(),
            series,
            total,
        }
    }
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
