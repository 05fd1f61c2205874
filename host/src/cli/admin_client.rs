//! A thin client of the admin API, printing tables for people and JSON for scripts.

use super::bundle::BundleScope;
use anyhow::{Context as _, bail};
use serde_json::Value;

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Aligned columns for people (the default).
    Table,
    /// The admin API's response as pretty JSON, for scripts (`--json`).
    Json,
}

/// Talks to a running gateway's `/admin/v1`.
pub struct AdminClient {
    base: String,
    token: String,
    http: reqwest::Client,
    output: Output,
}

impl AdminClient {
    /// A client for the gateway at `base_url`, authenticating with `token`.
    pub fn new(base_url: &str, token: Option<String>, output: Output) -> anyhow::Result<Self> {
        let token = token.filter(|t| !t.is_empty()).context(
            "no admin token: pass --admin-token or set TOLLGATE_ADMIN_TOKEN (the server prints it on first start)",
        )?;
        Ok(Self {
            base: base_url.trim_end_matches('/').to_string(),
            token,
            http: crate::providers::client_builder().build()?,
            output,
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}/admin/v1{path}", self.base);
        let mut req = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        let status = resp.status();
        let text = resp.text().await?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            let msg = value
                .pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| value.to_string());
            bail!("{status}: {msg}");
        }
        Ok(value)
    }

    fn print(&self, value: &Value, columns: &[&str]) {
        if self.output == Output::Json {
            println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            );
            return;
        }
        let rows: Vec<&Value> = match value.get("data").and_then(Value::as_array) {
            Some(a) => a.iter().collect(),
            None => vec![value],
        };
        print_table(&rows, columns);
    }

    /// `tollgate tenants create`.
    pub async fn create_tenant(&self, id: &str, name: Option<&str>) -> anyhow::Result<()> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/tenants",
                Some(serde_json::json!({ "id": id, "name": name })),
            )
            .await?;
        self.print(&v, &["id", "name", "created_at"]);
        Ok(())
    }

    /// `tollgate tenants list`.
    pub async fn list_tenants(&self) -> anyhow::Result<()> {
        let v = self.call(reqwest::Method::GET, "/tenants", None).await?;
        self.print(&v, &["id", "name", "created_at"]);
        Ok(())
    }

    /// `tollgate keys create`; prints the secret, which is never shown again.
    pub async fn create_key(&self, tenant: &str, body: Value) -> anyhow::Result<()> {
        let v = self
            .call(
                reqwest::Method::POST,
                &format!("/tenants/{}/keys", enc(tenant)),
                Some(body),
            )
            .await?;
        if self.output == Output::Json {
            self.print(&v, &[]);
        } else {
            self.print(
                &v,
                &["id", "tenant_id", "name", "team", "user", "expires_at"],
            );
            println!(
                "\nsecret (shown once): {}",
                v.get("secret").and_then(Value::as_str).unwrap_or("?")
            );
        }
        Ok(())
    }

    /// `tollgate keys list`.
    pub async fn list_keys(&self, tenant: Option<&str>) -> anyhow::Result<()> {
        let path = match tenant {
            Some(t) => format!("/keys?tenant={}", enc(t)),
            None => "/keys".into(),
        };
        let v = self.call(reqwest::Method::GET, &path, None).await?;
        self.print(
            &v,
            &[
                "id",
                "tenant_id",
                "name",
                "team",
                "user",
                "prefix",
                "expires_at",
                "revoked_at",
            ],
        );
        Ok(())
    }

    /// `tollgate keys revoke`.
    pub async fn revoke_key(&self, id: &str) -> anyhow::Result<()> {
        let v = self
            .call(
                reqwest::Method::POST,
                &format!("/keys/{}/revoke", enc(id)),
                None,
            )
            .await?;
        self.print(&v, &["id", "tenant_id", "revoked_at"]);
        Ok(())
    }

    /// `tollgate logs`: `query` is the admin API's query string.
    pub async fn logs(&self, query: &str) -> anyhow::Result<()> {
        let v = self
            .call(reqwest::Method::GET, &format!("/logs?{query}"), None)
            .await?;
        self.print(
            &v,
            &[
                "ts_ms",
                "request_id",
                "tenant_id",
                "team",
                "requested_model",
                "provider",
                "status",
                "latency_ms",
                "usage",
                "metadata",
            ],
        );
        Ok(())
    }
}

impl AdminClient {
    /// `tollgate logs export`: streams the export to `output` (or stdout) as it arrives.
    pub async fn export_logs(
        &self,
        query: &str,
        output: Option<&std::path::Path>,
    ) -> anyhow::Result<()> {
        use futures_util::StreamExt as _;
        use std::io::Write as _;
        let url = format!("{}/admin/v1/logs/export?{query}", self.base);
        let resp = self
            .http
            .get(&url)
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            let msg = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.pointer("/error/message")?.as_str().map(str::to_string))
                .unwrap_or(text);
            bail!("{status}: {msg}");
        }
        let mut out: Box<dyn std::io::Write> = match output {
            Some(p) => Box::new(std::io::BufWriter::new(
                std::fs::File::create(p)
                    .with_context(|| format!("cannot create {}", p.display()))?,
            )),
            None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
        };
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            out.write_all(&chunk.context("the export was cut off")?)?;
        }
        out.flush()?;
        Ok(())
    }

    /// `tollgate usage`: `query` is the admin API's query string; ends with a total row.
    pub async fn usage(&self, query: &str) -> anyhow::Result<()> {
        let mut v = self
            .call(reqwest::Method::GET, &format!("/usage?{query}"), None)
            .await?;
        if self.output == Output::Table
            && let (Some(mut total), Some(rows)) = (
                v.get("total").cloned(),
                v.get_mut("data").and_then(Value::as_array_mut),
            )
        {
            if let Some(t) = total.as_object_mut() {
                t.insert("group".into(), "TOTAL".into());
            }
            rows.push(total);
        }
        self.print(
            &v,
            &[
                "group",
                "requests",
                "errors",
                "input_tokens",
                "output_tokens",
                "cache_read_tokens",
                "cache_write_tokens",
                "cost_usd",
            ],
        );
        Ok(())
    }

    /// A listing endpoint (`/budgets`, `/alerts`), optionally for one tenant.
    pub async fn get_listing(
        &self,
        path: &str,
        tenant: Option<&str>,
        columns: &[&str],
    ) -> anyhow::Result<()> {
        let path = match tenant {
            Some(t) => format!("{path}?tenant={}", enc(t)),
            None => path.to_string(),
        };
        let v = self.call(reqwest::Method::GET, &path, None).await?;
        self.print(&v, columns);
        Ok(())
    }
}

/// `tollgate bundle …`: policy bundle versions, one tenant's or the platform's.
impl AdminClient {
    /// `tollgate bundle apply`: uploads `body` (from [`super::read_bundle_file`]) as a
    /// new active version; prints its version, hash and summary.
    pub async fn bundle_apply(
        &self,
        scope: &BundleScope,
        mut body: Value,
        message: Option<&str>,
    ) -> anyhow::Result<()> {
        if let (Some(m), Some(o)) = (message, body.as_object_mut()) {
            o.insert("message".into(), m.into());
        }
        let v = self
            .call(reqwest::Method::PUT, &bundle_path(scope, ""), Some(body))
            .await?;
        self.print(&v, BUNDLE_VERSION_COLUMNS);
        Ok(())
    }

    /// `tollgate bundle history`: every version, newest as the server orders them.
    pub async fn bundle_history(&self, scope: &BundleScope) -> anyhow::Result<()> {
        let v = self
            .call(reqwest::Method::GET, &bundle_path(scope, "/versions"), None)
            .await?;
        if self.output == Output::Json {
            self.print(&v, &[]);
            return Ok(());
        }
        let rows: Vec<Value> = v
            .get("data")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(history_row).collect())
            .unwrap_or_default();
        print_table(
            &rows.iter().collect::<Vec<_>>(),
            &[
                "version", "active", "created", "author", "hash", "message", "summary",
            ],
        );
        Ok(())
    }

    /// `tollgate bundle show`: the active version, or `version`. Prints the bundle as
    /// pretty JSON (`--json`: the whole response, with version, hash and author).
    pub async fn bundle_show(
        &self,
        scope: &BundleScope,
        version: Option<u64>,
    ) -> anyhow::Result<()> {
        let suffix = match version {
            Some(n) => format!("/versions/{n}"),
            None => String::new(),
        };
        let v = self
            .call(reqwest::Method::GET, &bundle_path(scope, &suffix), None)
            .await?;
        let shown = match self.output {
            Output::Json => &v,
            Output::Table => v.get("bundle").unwrap_or(&v),
        };
        println!("{}", serde_json::to_string_pretty(shown)?);
        Ok(())
    }

    /// `tollgate bundle diff`: one line per change from version `from` to `to`.
    pub async fn bundle_diff(&self, scope: &BundleScope, from: u64, to: u64) -> anyhow::Result<()> {
        let v = self
            .call(
                reqwest::Method::GET,
                &bundle_path(scope, &format!("/diff?from={from}&to={to}")),
                None,
            )
            .await?;
        if self.output == Output::Json {
            self.print(&v, &[]);
            return Ok(());
        }
        let changes = v.get("changes").and_then(Value::as_array);
        match changes {
            Some(c) if !c.is_empty() => {
                for change in c {
                    println!(
                        "{}",
                        change
                            .as_str()
                            .map_or_else(|| change.to_string(), str::to_string)
                    );
                }
            }
            _ => println!("(no changes)"),
        }
        Ok(())
    }

    /// `tollgate bundle rollback`: a new version re-activating `version`'s content.
    pub async fn bundle_rollback(&self, scope: &BundleScope, version: u64) -> anyhow::Result<()> {
        let v = self
            .call(
                reqwest::Method::POST,
                &bundle_path(scope, "/rollback"),
                Some(serde_json::json!({ "version": version })),
            )
            .await?;
        self.print(&v, BUNDLE_VERSION_COLUMNS);
        Ok(())
    }
}

/// `tollgate bundle replay`.
impl AdminClient {
    /// Runs `bundle` over the tenant's logged requests in the window and prints the
    /// summary and every request whose outcome would change.
    pub async fn bundle_replay(
        &self,
        tenant: &str,
        bundle: Value,
        since: &str,
        until: Option<&str>,
    ) -> anyhow::Result<()> {
        let mut body = serde_json::json!({ "bundle": bundle, "since": since });
        if let (Some(u), Some(o)) = (until, body.as_object_mut()) {
            o.insert("until".into(), u.into());
        }
        let v = self
            .call(
                reqwest::Method::POST,
                &bundle_path(&BundleScope::Tenant(tenant.to_string()), "/replay"),
                Some(body),
            )
            .await?;
        if self.output == Output::Json {
            self.print(&v, &[]);
            return Ok(());
        }
        let n = |k: &str| {
            v.pointer(&format!("/summary/{k}"))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        println!(
            "replayed {} request(s) of tenant '{tenant}' ({} skipped): {} newly denied, {} budget hits, \
             {} newly allowed, {} different targets, {} other denials, {} unchanged",
            v.get("replayed").and_then(Value::as_u64).unwrap_or(0),
            v.get("skipped").and_then(Value::as_u64).unwrap_or(0),
            n("newly_denied"),
            n("budget_hits"),
            n("newly_allowed"),
            n("target_changed"),
            n("denial_changed"),
            n("unchanged"),
        );
        let rows: Vec<Value> = v
            .get("changes")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(replay_row).collect())
            .unwrap_or_default();
        if !rows.is_empty() {
            print_table(
                &rows.iter().collect::<Vec<_>>(),
                &[
                    "time",
                    "request_id",
                    "team",
                    "user",
                    "change",
                    "before",
                    "after",
                ],
            );
        }
        for note in v
            .get("notes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(n) = note.as_str() {
                println!("note: {n}");
            }
        }
        Ok(())
    }
}

/// A replay change as a table row.
fn replay_row(r: &Value) -> Value {
    let outcome = |o: Option<&Value>| -> String {
        let Some(o) = o else { return "-".into() };
        let s = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("");
        match s("outcome") {
            "served" => format!("{} {}", s("provider"), s("model")),
            kind => {
                let status = o.get("status").and_then(Value::as_u64).unwrap_or(0);
                let msg: String = s("message").chars().take(60).collect();
                format!("{kind} {status}: {msg}")
            }
        }
    };
    serde_json::json!({
        "time": r.get("ts_ms").and_then(Value::as_i64).map(crate::ledger::calendar::rfc3339),
        "request_id": r.get("request_id"),
        "team": r.get("team"),
        "user": r.get("user"),
        "change": r.get("change"),
        "before": outcome(r.get("before")),
        "after": outcome(r.get("after")),
    })
}

const BUNDLE_VERSION_COLUMNS: &[&str] = &["version", "hash", "summary"];

/// `/tenants/{id}/bundle{suffix}` or `/bundle{suffix}`.
fn bundle_path(scope: &BundleScope, suffix: &str) -> String {
    match scope {
        BundleScope::Tenant(id) => format!("/tenants/{}/bundle{suffix}", enc(id)),
        BundleScope::Platform => format!("/bundle{suffix}"),
    }
}

/// A `bundle history` table row: readable time, short hash.
fn history_row(r: &Value) -> Value {
    let created = r
        .get("created_at_ms")
        .and_then(Value::as_i64)
        .map(crate::ledger::calendar::rfc3339);
    let hash: Option<String> = r
        .get("hash")
        .and_then(Value::as_str)
        .map(|h| h.chars().take(12).collect());
    let active = r.get("active").and_then(Value::as_bool).unwrap_or(false);
    serde_json::json!({
        "version": r.get("version"),
        "active": if active { "yes" } else { "no" },
        "created": created,
        "author": r.get("author"),
        "hash": hash,
        "message": r.get("message"),
        "summary": r.get("summary"),
    })
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) if o.contains_key("input_tokens") => format!(
            "{}in/{}out",
            o.get("input_tokens").and_then(Value::as_u64).unwrap_or(0),
            o.get("output_tokens").and_then(Value::as_u64).unwrap_or(0)
        ),
        Some(Value::Array(a)) if a.iter().all(|x| x.as_array().is_some_and(|p| p.len() == 2)) => a
            .iter()
            .filter_map(|p| Some(format!("{}={}", p.get(0)?.as_str()?, p.get(1)?.as_str()?)))
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    }
}

fn print_table(rows: &[&Value], columns: &[&str]) {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| columns.iter().map(|c| cell(r.get(*c))).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |vals: Vec<&str>| {
        vals.iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    println!(
        "{}",
        line(
            columns
                .iter()
                .map(|c| c.to_uppercase())
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str)
                .collect()
        )
    );
    for r in &cells {
        println!("{}", line(r.iter().map(String::as_str).collect()));
    }
    if rows.is_empty() {
        println!("(none)");
    }
}
