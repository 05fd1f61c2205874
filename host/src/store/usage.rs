//! Usage reports from the request log: requests, tokens and cost grouped by a column or
//! a metadata key over a time range (the admin API's `GET /usage`).

use super::logs::sqlite_rows;
use super::sql::{Cols, Dialect, Sql};
use super::{Store, StoreError};
use rusqlite::Connection;
use serde::Serialize;

/// What a usage report is grouped by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UsageGroup {
    /// One row for everything.
    None,
    /// The request's team (the key's, else its `team` metadata).
    Team,
    /// The request's user (the key's, else its `user` metadata).
    User,
    /// The API key's id.
    Key,
    /// The served model (the requested one when nothing was served).
    Model,
    /// The provider that served the request.
    Provider,
    /// The value of a metadata key.
    Metadata(String),
}

impl std::str::FromStr for UsageGroup {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "" | "none" | "tenant" => Self::None,
            "team" => Self::Team,
            "user" => Self::User,
            "key" => Self::Key,
            "model" => Self::Model,
            "provider" => Self::Provider,
            other => match other.strip_prefix("metadata.") {
                Some(k) if !k.is_empty() => Self::Metadata(k.to_string()),
                _ => {
                    return Err(format!(
                        "by: '{other}' is not one of team, user, key, model, provider, metadata.<key>"
                    ));
                }
            },
        })
    }
}

/// A usage report's filters.
#[derive(Clone, Debug)]
pub struct UsageQuery {
    /// Only this tenant's requests; `None` reports every tenant.
    pub tenant: Option<String>,
    /// How rows are grouped.
    pub by: UsageGroup,
    /// Inclusive, Unix ms.
    pub since_ms: i64,
    /// Exclusive, Unix ms.
    pub until_ms: i64,
}

/// One group's totals.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct UsageRow {
    /// The group's value; `None` for requests without one (or when ungrouped).
    pub group: Option<String>,
    /// Requests in the group (`count_tokens` calls excluded).
    pub requests: u64,
    /// Requests that ended with status 400 or above.
    pub errors: u64,
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read_tokens: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write_tokens: u64,
    /// All four token counts together.
    pub tokens: u64,
    /// Cost in USD.
    pub cost_usd: f64,
}

impl UsageRow {
    /// Adds `other`'s counts (for a report's total).
    pub fn add(&mut self, other: &UsageRow) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_read_tokens += other.cache_read_tokens;
        self.cache_write_tokens += other.cache_write_tokens;
        self.tokens += other.tokens;
        self.cost_usd += other.cost_usd;
    }
}

impl Store {
    /// Usage grouped as `q` asks, highest cost first. `count_tokens` calls are not usage.
    pub async fn usage_report(&self, q: UsageQuery) -> Result<Vec<UsageRow>, StoreError> {
        if let Some(pg) = &self.pg {
            let sql = usage_report_sql(Dialect::Postgres, "", &q);
            return pg.rows(&sql, usage_from_row).await;
        }
        self.with_conn(move |c| {
            let scan = scan_hint(c, q.tenant.as_deref(), q.since_ms, q.until_ms);
            sqlite_rows(c, &usage_report_sql(Dialect::Sqlite, scan, &q), |r| {
                usage_from_row(r)
            })
        })
        .await
    }
}

/// `NOT INDEXED` when a query over every tenant reads most of the log: walking the time
/// index then costs a table lookup per row, several times slower than one sequential
/// scan. Narrow ranges (and single tenants, whose share is unknown) keep the index.
/// (SQLite only: PostgreSQL's planner weighs this itself.)
pub(super) fn scan_hint(
    c: &Connection,
    tenant: Option<&str>,
    since_ms: i64,
    until_ms: i64,
) -> &'static str {
    if tenant.is_some() {
        return "";
    }
    let bounds: Option<(i64, i64)> = c
        .query_row("SELECT MIN(ts_ms), MAX(ts_ms) FROM request_logs", [], |r| {
            Ok(r.get::<_, Option<i64>>(0)?.zip(r.get::<_, Option<i64>>(1)?))
        })
        .ok()
        .flatten();
    let Some((lo, hi)) = bounds else { return "" };
    let span = (hi - lo).max(1) as f64;
    let covered = (until_ms.min(hi) - since_ms.max(lo)).max(0) as f64;
    if covered / span > 0.25 {
        " NOT INDEXED"
    } else {
        ""
    }
}

/// `SELECT <columns> FROM request_logs l` over the usage of `[since, until)` (of
/// `tenant`, when given; `count_tokens` calls are not usage); `columns` gets the SQL
/// expression of the grouping `by`; `scan` is a SQLite index hint.
pub(super) fn usage_select(
    d: Dialect,
    scan: &str,
    columns: impl FnOnce(&str) -> String,
    by: &UsageGroup,
    tenant: Option<&str>,
    since_ms: i64,
    until_ms: i64,
) -> Sql {
    let mut sql = Sql::new(d);
    let group = match by {
        UsageGroup::None => "CAST(NULL AS TEXT)".to_string(),
        UsageGroup::Team => "l.team".into(),
        UsageGroup::User => "l.\"user\"".into(),
        UsageGroup::Key => "l.key_id".into(),
        UsageGroup::Model => "COALESCE(l.served_model, l.requested_model)".into(),
        UsageGroup::Provider => "l.provider".into(),
        UsageGroup::Metadata(k) => {
            let k = sql.bind(k.as_str());
            d.meta_value(&k)
        }
    };
    sql.push(&format!(
        "SELECT {} FROM request_logs l{scan} WHERE l.endpoint != 'count_tokens'",
        columns(&group)
    ));
    let (since, until) = (sql.bind(since_ms), sql.bind(until_ms));
    sql.push(&format!(" AND l.ts_ms >= {since} AND l.ts_ms < {until}"));
    if let Some(t) = tenant {
        let p = sql.bind(t);
        sql.push(&format!(" AND l.tenant_id = {p}"));
    }
    sql
}

fn usage_report_sql(d: Dialect, scan: &str, q: &UsageQuery) -> Sql {
    let mut sql = usage_select(
        d,
        scan,
        |group| {
            format!(
                "{group} AS g, COUNT(*), SUM(CASE WHEN l.status >= 400 THEN 1 ELSE 0 END),
                 CAST(SUM(l.input_tokens) AS BIGINT), CAST(SUM(l.output_tokens) AS BIGINT),
                 CAST(SUM(l.cache_read_tokens) AS BIGINT), CAST(SUM(l.cache_write_tokens) AS BIGINT),
                 CAST(SUM(l.cost_nano) AS BIGINT)"
            )
        },
        &q.by,
        q.tenant.as_deref(),
        q.since_ms,
        q.until_ms,
    );
    sql.push(&format!(
        " GROUP BY g ORDER BY SUM(l.cost_nano) DESC, {}",
        d.asc_nulls_first("g")
    ));
    sql
}

fn usage_from_row(r: &impl Cols) -> Result<UsageRow, StoreError> {
    let (input, output, cache_read, cache_write) =
        (r.count(3)?, r.count(4)?, r.count(5)?, r.count(6)?);
    Ok(UsageRow {
        group: r.text(0)?,
        requests: r.count(1)?,
        errors: r.count(2)?,
        input_tokens: input,
        output_tokens: output,
        cache_read_tokens: cache_read,
        cache_write_tokens: cache_write,
        tokens: input + output + cache_read + cache_write,
        cost_usd: r.count(7)? as f64 / 1e9,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_parse_and_bad_ones_name_the_field() {
        assert_eq!("team".parse::<UsageGroup>(), Ok(UsageGroup::Team));
        assert_eq!(
            "metadata.project".parse::<UsageGroup>(),
            Ok(UsageGroup::Metadata("project".into()))
        );
        let err = "colour".parse::<UsageGroup>().expect_err("unknown");
        assert!(err.starts_with("by:"), "{err}");
        assert!("metadata.".parse::<UsageGroup>().is_err());
    }
}
