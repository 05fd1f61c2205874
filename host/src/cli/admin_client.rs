//! A thin client of the admin API, printing tables for people and JSON for scripts.

use anyhow::{Context as _, bail};
use serde_json::Value;

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Table,
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
            http: reqwest::Client::builder().build()?,
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
