//! The log queries both stores answer (listings, traces, usage, analytics), written once
//! and rendered for SQLite or PostgreSQL: a fleet's replicas then answer exactly what a
//! single gateway does. Only placeholders and a few functions differ between the two.

use super::StoreError;

/// Which engine a query is rendered for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// The embedded store (`?1` placeholders).
    Sqlite,
    /// The shared store (`$1` placeholders).
    Postgres,
}

/// One bound value.
#[derive(Clone, Debug)]
pub(crate) enum Arg {
    /// Bound as a 64-bit integer (PostgreSQL `BIGINT`).
    Int(i64),
    /// Bound as text.
    Text(String),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}

impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(v)
    }
}

impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(v.to_string())
    }
}

impl rusqlite::ToSql for Arg {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Arg::Int(v) => v.to_sql(),
            Arg::Text(v) => v.to_sql(),
        }
    }
}

impl Arg {
    /// The value as a PostgreSQL parameter.
    pub(crate) fn pg(&self) -> &(dyn tokio_postgres::types::ToSql + Sync) {
        match self {
            Arg::Int(v) => v,
            Arg::Text(v) => v,
        }
    }
}

/// SQL being built, with its parameters in order.
pub(crate) struct Sql {
    /// The statement so far.
    pub text: String,
    /// Its parameters, `?1`/`$1` first.
    pub args: Vec<Arg>,
    dialect: Dialect,
}

impl Sql {
    /// An empty statement for `dialect`.
    pub(crate) fn new(dialect: Dialect) -> Self {
        Self {
            text: String::new(),
            args: Vec::new(),
            dialect,
        }
    }

    /// Binds `v` and returns its placeholder (use it as often as needed).
    pub(crate) fn bind(&mut self, v: impl Into<Arg>) -> String {
        self.args.push(v.into());
        match self.dialect {
            Dialect::Sqlite => format!("?{}", self.args.len()),
            Dialect::Postgres => format!("${}", self.args.len()),
        }
    }

    /// Appends text.
    pub(crate) fn push(&mut self, s: &str) {
        self.text.push_str(s);
    }

    /// The PostgreSQL parameters.
    pub(crate) fn pg_args(&self) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
        self.args.iter().map(Arg::pg).collect()
    }
}

impl Dialect {
    /// `haystack` contains `needle` (a placeholder).
    pub(crate) fn contains(self, haystack: &str, needle: &str) -> String {
        match self {
            Dialect::Sqlite => format!("instr({haystack}, {needle}) > 0"),
            Dialect::Postgres => format!("strpos({haystack}, {needle}) > 0"),
        }
    }

    /// The distinct values of `expr` joined by commas.
    pub(crate) fn distinct_list(self, expr: &str) -> String {
        match self {
            Dialect::Sqlite => format!("GROUP_CONCAT(DISTINCT {expr})"),
            Dialect::Postgres => format!("string_agg(DISTINCT {expr}, ',')"),
        }
    }

    /// The row `l`'s metadata value under key `key` (a placeholder) equals `value`.
    /// Both engines read the row's JSON object (`json_each` takes any key, where a
    /// JSON path would need quoting); PostgreSQL's is an indexed JSONB column.
    pub(crate) fn meta_equals(self, key: &str, value: &str) -> String {
        match self {
            Dialect::Sqlite => format!(
                "EXISTS (SELECT 1 FROM json_each(l.metadata) m WHERE m.key = {key} AND m.value = {value})"
            ),
            Dialect::Postgres => {
                format!("l.metadata @> jsonb_build_object({key}::text, {value}::text)")
            }
        }
    }

    /// The expression of the metadata value under `key` (a placeholder).
    pub(crate) fn meta_value(self, key: &str) -> String {
        match self {
            Dialect::Sqlite => {
                format!("(SELECT m.value FROM json_each(l.metadata) m WHERE m.key = {key})")
            }
            Dialect::Postgres => format!("((l.metadata ->> {key}::text) COLLATE \"C\")"),
        }
    }

    /// `expr` in ascending order with NULL first, as SQLite sorts it.
    pub(crate) fn asc_nulls_first(self, expr: &str) -> String {
        match self {
            Dialect::Sqlite => expr.to_string(),
            Dialect::Postgres => format!("{expr} NULLS FIRST"),
        }
    }

    /// The JSON column `col` of `l` as text (PostgreSQL keeps JSONB).
    fn json_text(self, col: &str) -> String {
        match self {
            Dialect::Sqlite => format!("l.{col}"),
            Dialect::Postgres => format!("l.{col}::text"),
        }
    }

    /// The columns [`log_from_row`] reads, in its order, from `request_logs l`.
    pub(crate) fn log_columns(self) -> String {
        let j = |col| self.json_text(col);
        format!(
            "l.request_id, l.ts_ms, l.tenant_id, l.key_id, l.trace_id, l.endpoint, l.team, l.\"user\",
        {}, l.requested_model, l.served_model, l.provider, l.status, l.stream, l.latency_ms,
        l.ttft_ms, l.input_tokens, l.output_tokens, l.cache_read_tokens, l.cache_write_tokens,
        {}, l.error, {}, l.cost_nano, {}, l.bundle_version, l.platform_version,
        l.max_tokens, l.body_bytes, l.message_count, l.admitted",
            j("metadata"),
            j("decisions"),
            j("attempts"),
            j("cost"),
        )
    }
}

/// Reads a result row the same way from either engine.
pub(crate) trait Cols {
    /// An integer column (NULL as `None`).
    fn int(&self, i: usize) -> Result<Option<i64>, StoreError>;
    /// A text column (NULL as `None`).
    fn text(&self, i: usize) -> Result<Option<String>, StoreError>;
    /// A boolean column (SQLite stores 0 or 1).
    fn flag(&self, i: usize) -> Result<bool, StoreError>;

    /// A non-negative count (NULL and negatives as 0).
    fn count(&self, i: usize) -> Result<u64, StoreError> {
        Ok(self.int(i)?.unwrap_or(0).max(0) as u64)
    }
    /// A column that is never NULL.
    fn int_req(&self, i: usize) -> Result<i64, StoreError> {
        self.int(i)?
            .ok_or_else(|| StoreError::Task(format!("column {i} is NULL")))
    }
    /// A text column that is never NULL.
    fn text_req(&self, i: usize) -> Result<String, StoreError> {
        self.text(i)?
            .ok_or_else(|| StoreError::Task(format!("column {i} is NULL")))
    }
}

impl Cols for rusqlite::Row<'_> {
    fn int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        Ok(self.get(i)?)
    }
    fn text(&self, i: usize) -> Result<Option<String>, StoreError> {
        Ok(self.get(i)?)
    }
    fn flag(&self, i: usize) -> Result<bool, StoreError> {
        Ok(self.get(i)?)
    }
}

impl Cols for tokio_postgres::Row {
    fn int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        self.try_get(i)
            .map_err(|e| StoreError::Postgres(e.to_string()))
    }
    fn text(&self, i: usize) -> Result<Option<String>, StoreError> {
        self.try_get(i)
            .map_err(|e| StoreError::Postgres(e.to_string()))
    }
    fn flag(&self, i: usize) -> Result<bool, StoreError> {
        self.try_get(i)
            .map_err(|e| StoreError::Postgres(e.to_string()))
    }
}
