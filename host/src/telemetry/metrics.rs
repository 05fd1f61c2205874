//! Prometheus metrics. Request, plugin and upstream series are updated by the log
//! writer thread from each written row (so the request path pays nothing for them);
//! budget, bundle and sandbox gauges are read from the live state when `/metrics` is
//! scraped.

use crate::store::{LogObserver, LogRecord};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

/// Request latency buckets, seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];
/// Plugin call buckets, seconds: calls take tens of microseconds.
const PLUGIN_BUCKETS: &[f64] = &[
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.025, 0.1,
];
/// Most label sets per family; past it, new values are folded into `_other` so a client
/// inventing model names cannot grow the registry without bound.
const MAX_SERIES: usize = 5_000;
/// The value that stands for every label value past [`MAX_SERIES`].
const OTHER: &str = "_other";

/// A cumulative histogram.
#[derive(Clone, Debug)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.counts[i] += 1;
        }
        self.sum += v;
        self.count += 1;
    }
}

/// The label values of one series, in the family's label order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Labels<const N: usize>([String; N]);

/// Label values as a map key, owned or borrowed: a series that exists is found from
/// the record's own strings, with no allocation (that was 14 a request).
trait Parts<const N: usize> {
    fn parts(&self) -> [&str; N];
}

impl<const N: usize> Parts<N> for Labels<N> {
    fn parts(&self) -> [&str; N] {
        std::array::from_fn(|i| self.0[i].as_str())
    }
}

impl<const N: usize> Parts<N> for [&str; N] {
    fn parts(&self) -> [&str; N] {
        *self
    }
}

impl<'a, const N: usize> std::borrow::Borrow<dyn Parts<N> + 'a> for Labels<N> {
    fn borrow(&self) -> &(dyn Parts<N> + 'a) {
        self
    }
}

// Agrees with `Labels`' derived order: both compare the values in turn.
impl<const N: usize> Ord for dyn Parts<N> + '_ {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.parts().cmp(&other.parts())
    }
}

impl<const N: usize> PartialOrd for dyn Parts<N> + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<const N: usize> PartialEq for dyn Parts<N> + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl<const N: usize> Eq for dyn Parts<N> + '_ {}

/// (tenant, provider, model, endpoint)
type RequestLabels = Labels<4>;

#[derive(Debug)]
struct RequestSeries {
    by_status: BTreeMap<u16, u64>,
    latency: Histogram,
    ttft: Histogram,
    tokens: [u64; 4],
    cost_nano: u64,
}

impl Default for RequestSeries {
    fn default() -> Self {
        Self {
            by_status: BTreeMap::new(),
            latency: Histogram::new(LATENCY_BUCKETS),
            ttft: Histogram::new(LATENCY_BUCKETS),
            tokens: [0; 4],
            cost_nano: 0,
        }
    }
}

#[derive(Debug)]
struct PluginSeries {
    by_outcome: BTreeMap<String, u64>,
    latency: Histogram,
}

impl Default for PluginSeries {
    fn default() -> Self {
        Self {
            by_outcome: BTreeMap::new(),
            latency: Histogram::new(PLUGIN_BUCKETS),
        }
    }
}

#[derive(Debug, Default)]
struct Registry {
    requests: BTreeMap<RequestLabels, RequestSeries>,
    /// (tenant, plugin)
    plugins: BTreeMap<Labels<2>, PluginSeries>,
    /// (provider, model, outcome) → attempts
    attempts: BTreeMap<Labels<3>, u64>,
}

/// The gateway's metric registry.
#[derive(Debug, Default)]
pub struct Metrics {
    registry: Mutex<Registry>,
    /// What the gateway refused or deferred to protect itself (request path counters).
    pub protection: super::Protection,
    /// The log writer's counters (deferred rows, journal and batch failures).
    pub writer: Arc<crate::store::WriterCounters>,
}

/// Live values read at scrape time.
#[derive(Debug, Default)]
pub struct Gauges {
    /// Each tenant's enforced limits closest to their caps, with their usage.
    pub budgets: Vec<BudgetGauge>,
    /// (tenant, limits left out of `budgets`): the series are bounded per tenant.
    pub budgets_omitted: Vec<(String, usize)>,
    /// (tenant, active bundle version), `None` tenant for the platform bundle.
    pub bundles: Vec<(Option<String>, u32)>,
    /// (tenant, instances in use, instance limit)
    pub sandboxes: Vec<(String, u32, u32)>,
    /// The fleet ledger's state, with `[ledger] kind = "redis"`.
    pub fleet: Option<FleetGauge>,
    /// The request logs' shipping to PostgreSQL, with `[store] kind = "postgres"`.
    pub log_shipping: Option<ShipGauge>,
}

/// This replica's request-log shipping to PostgreSQL.
#[derive(Debug, Default)]
pub struct ShipGauge {
    /// Whether the last batch reached PostgreSQL.
    pub up: bool,
    /// Rows written to PostgreSQL.
    pub shipped: u64,
    /// Rows written locally, waiting for PostgreSQL.
    pub backlog: u64,
    /// Rows dropped from the shared log (a full backlog, or refused by PostgreSQL).
    pub dropped: u64,
    /// Failed batches (retried).
    pub errors: u64,
}

/// The fleet ledger (Redis) as this replica sees it.
#[derive(Debug, Default)]
pub struct FleetGauge {
    /// Whether the last call to Redis succeeded.
    pub up: bool,
    /// Calls to Redis that failed or timed out.
    pub errors: u64,
    /// Settlements waiting for Redis.
    pub backlog: u64,
    /// Settlements dropped from a full backlog.
    pub dropped: u64,
    /// Requests admitted on this replica's ledger alone (`fail_open`).
    pub admitted_locally: u64,
}

/// One enforced limit's state.
#[derive(Debug)]
pub struct BudgetGauge {
    pub tenant: String,
    pub budget: String,
    pub scope: String,
    pub value: String,
    pub metric: &'static str,
    pub period: &'static str,
    pub limit: f64,
    /// Settled plus reserved, in the metric's unit.
    pub used: f64,
}

impl Metrics {
    /// An empty registry.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Counts finished requests (called by the log writer).
    pub fn observe(&self, batch: &[Box<LogRecord>]) {
        let mut reg = crate::sync::lock(&self.registry);
        for r in batch {
            reg.observe(r);
        }
    }

    /// The registry in Prometheus text exposition format (0.0.4), with `gauges`.
    pub fn render(&self, gauges: &Gauges) -> String {
        let reg = crate::sync::lock(&self.registry);
        let mut out = String::with_capacity(16 << 10);
        reg.render(&mut out);
        drop(reg);
        render_gauges(&mut out, gauges);
        self.protection.render(&self.writer, &mut out);
        out
    }
}

/// The writer-thread side of [`Metrics`].
pub struct MetricsObserver(pub Arc<Metrics>);

impl LogObserver for MetricsObserver {
    fn observe(&mut self, batch: &[Box<LogRecord>]) {
        self.0.observe(batch);
    }
}

/// The series for `wanted`, or the `_other` series when the family is full.
fn slot<'m, const N: usize, V: Default>(
    map: &'m mut BTreeMap<Labels<N>, V>,
    wanted: [&str; N],
    other: [&str; N],
) -> Option<&'m mut V> {
    let key = if map.len() < MAX_SERIES || map.contains_key(&wanted as &dyn Parts<N>) {
        wanted
    } else {
        other
    };
    if !map.contains_key(&key as &dyn Parts<N>) {
        let replaced = map.insert(Labels(key.map(str::to_owned)), V::default());
        debug_assert!(replaced.is_none(), "a borrowed lookup missed a series");
    }
    map.get_mut(&key as &dyn Parts<N>)
}

/// `2xx` and the like, without formatting one per attempt.
fn status_class(status: u16) -> Cow<'static, str> {
    const CLASSES: [&str; 10] = [
        "0xx", "1xx", "2xx", "3xx", "4xx", "5xx", "6xx", "7xx", "8xx", "9xx",
    ];
    match CLASSES.get(usize::from(status / 100)) {
        Some(c) => Cow::Borrowed(c),
        None => Cow::Owned(format!("{}xx", status / 100)),
    }
}

impl Registry {
    fn observe(&mut self, r: &LogRecord) {
        let model = r
            .served_model
            .as_deref()
            .or(r.requested_model.as_deref())
            .unwrap_or("none");
        let labels = [
            if r.tenant_id.is_empty() {
                "none"
            } else {
                &r.tenant_id
            },
            r.provider.as_deref().unwrap_or("none"),
            model,
            &r.endpoint,
        ];
        let other = [labels[0], labels[1], OTHER, labels[3]];
        if let Some(s) = slot(&mut self.requests, labels, other) {
            *s.by_status.entry(r.status).or_default() += 1;
            s.latency.observe(r.latency_ms as f64 / 1000.0);
            if let Some(t) = r.ttft_ms {
                s.ttft.observe(t as f64 / 1000.0);
            }
            let u = &r.usage;
            for (i, n) in [
                u.input_tokens,
                u.output_tokens,
                u.cache_read_tokens,
                u.cache_write_tokens,
            ]
            .into_iter()
            .enumerate()
            {
                s.tokens[i] += n;
            }
            s.cost_nano += r.cost_nano;
        }
        for d in &r.decisions {
            let key = [r.tenant_id.as_str(), &d.plugin];
            let other = [r.tenant_id.as_str(), OTHER];
            if let Some(p) = slot(&mut self.plugins, key, other) {
                match p.by_outcome.get_mut(d.outcome.as_str()) {
                    Some(n) => *n += 1,
                    None => {
                        p.by_outcome.insert(d.outcome.clone(), 1);
                    }
                }
                p.latency.observe(d.micros as f64 / 1e6);
            }
        }
        for a in &r.attempts {
            let outcome = a
                .status
                .map_or(Cow::Borrowed("transport_error"), status_class);
            let key = [a.provider.as_str(), &a.model, &outcome];
            let other = [a.provider.as_str(), OTHER, &outcome];
            if let Some(n) = slot(&mut self.attempts, key, other) {
                *n += 1;
            }
        }
    }

    fn render(&self, out: &mut String) {
        let reqs = || self.requests.iter().map(|(l, s)| (req_labels(l), s));
        family(
            out,
            "tollgate_requests_total",
            "counter",
            "Requests finished, by tenant, provider, model, endpoint and status.",
            reqs().flat_map(|(l, s)| {
                s.by_status
                    .iter()
                    .map(move |(status, n)| (format!("{l},status=\"{status}\""), n.to_string()))
            }),
        );
        family(
            out,
            "tollgate_request_errors_total",
            "counter",
            "Requests that ended with status 400 or above.",
            reqs().map(|(l, s)| {
                let errors: u64 = s.by_status.range(400..).map(|(_, n)| n).sum();
                (l, errors.to_string())
            }),
        );
        header(
            out,
            "tollgate_request_duration_seconds",
            "histogram",
            "Time from the request's arrival to its last byte.",
        );
        for (l, s) in reqs() {
            histogram(out, "tollgate_request_duration_seconds", &l, &s.latency);
        }
        header(
            out,
            "tollgate_time_to_first_token_seconds",
            "histogram",
            "Time from a streamed request's arrival to its first content.",
        );
        for (l, s) in reqs().filter(|(_, s)| s.ttft.count > 0) {
            histogram(out, "tollgate_time_to_first_token_seconds", &l, &s.ttft);
        }
        family(
            out,
            "tollgate_tokens_total",
            "counter",
            "Tokens used, by kind (input, output, cache_read, cache_write).",
            reqs().flat_map(|(l, s)| {
                ["input", "output", "cache_read", "cache_write"]
                    .into_iter()
                    .zip(s.tokens)
                    .map(move |(kind, n)| (format!("{l},type=\"{kind}\""), n.to_string()))
            }),
        );
        family(
            out,
            "tollgate_cost_usd_total",
            "counter",
            "Cost of the requests served, USD.",
            reqs().map(|(l, s)| (l, (s.cost_nano as f64 / 1e9).to_string())),
        );
        let plugin_labels = |tenant: &str, plugin: &str| {
            format!("tenant=\"{}\",plugin=\"{}\"", esc(tenant), esc(plugin))
        };
        family(
            out,
            "tollgate_plugin_calls_total",
            "counter",
            "Plugin calls, by tenant, plugin and outcome (allow, deny, route, pass, downgrade, error, skipped).",
            self.plugins
                .iter()
                .flat_map(|(Labels([tenant, plugin]), p)| {
                    let l = plugin_labels(tenant, plugin);
                    p.by_outcome
                        .iter()
                        .map(move |(o, n)| (format!("{l},outcome=\"{}\"", esc(o)), n.to_string()))
                }),
        );
        family(
            out,
            "tollgate_plugin_failures_total",
            "counter",
            "Plugin calls that trapped, ran out of time or memory, or found no slot.",
            self.plugins.iter().map(|(Labels([tenant, plugin]), p)| {
                let failed: u64 = ["error", "skipped"]
                    .iter()
                    .filter_map(|o| p.by_outcome.get(*o))
                    .sum();
                (plugin_labels(tenant, plugin), failed.to_string())
            }),
        );
        header(
            out,
            "tollgate_plugin_call_duration_seconds",
            "histogram",
            "Time of one plugin call, instantiation included.",
        );
        for (Labels([tenant, plugin]), p) in &self.plugins {
            let labels = plugin_labels(tenant, plugin);
            histogram(
                out,
                "tollgate_plugin_call_duration_seconds",
                &labels,
                &p.latency,
            );
        }
        family(
            out,
            "tollgate_upstream_attempts_total",
            "counter",
            "Upstream attempts, by provider, model and outcome (status class or transport_error).",
            self.attempts
                .iter()
                .map(|(Labels([provider, model, outcome]), n)| {
                    let l = format!(
                        "provider=\"{}\",model=\"{}\",outcome=\"{}\"",
                        esc(provider),
                        esc(model),
                        esc(outcome)
                    );
                    (l, n.to_string())
                }),
        );
    }
}

fn render_gauges(out: &mut String, g: &Gauges) {
    let budgets = || g.budgets.iter().map(|b| (budget_labels(b), b));
    family(
        out,
        "tollgate_budget_limit",
        "gauge",
        "An enforced budget's cap, in its metric's unit.",
        budgets().map(|(l, b)| (l, b.limit.to_string())),
    );
    family(
        out,
        "tollgate_budget_used",
        "gauge",
        "An enforced budget's usage (settled and reserved) in its current window.",
        budgets().map(|(l, b)| (l, b.used.to_string())),
    );
    family(
        out,
        "tollgate_budget_used_ratio",
        "gauge",
        "Usage over cap (1 = exhausted).",
        budgets().map(|(l, b)| {
            let ratio = if b.limit > 0.0 { b.used / b.limit } else { 1.0 };
            (l, ratio.to_string())
        }),
    );
    family(
        out,
        "tollgate_budget_series_omitted",
        "gauge",
        "Enforced limits of a tenant not shown as series ([metrics] max_budget_series_per_tenant shows the fullest).",
        g.budgets_omitted
            .iter()
            .map(|(t, n)| (format!("tenant=\"{}\"", esc(t)), n.to_string())),
    );
    family(
        out,
        "tollgate_bundle_version",
        "gauge",
        "The active policy bundle version, per tenant (tenant=\"*\": the platform bundle).",
        g.bundles.iter().map(|(tenant, v)| {
            let t = tenant.as_deref().unwrap_or("*");
            (format!("tenant=\"{}\"", esc(t)), v.to_string())
        }),
    );
    let tenant = |t: &str| format!("tenant=\"{}\"", esc(t));
    family(
        out,
        "tollgate_plugin_instances_in_use",
        "gauge",
        "A tenant's plugin instance slots in use.",
        g.sandboxes
            .iter()
            .map(|(t, used, _)| (tenant(t), used.to_string())),
    );
    family(
        out,
        "tollgate_plugin_instances_limit",
        "gauge",
        "A tenant's plugin instance slots.",
        g.sandboxes
            .iter()
            .map(|(t, _, max)| (tenant(t), max.to_string())),
    );
    if let Some(f) = &g.fleet {
        unlabelled(
            out,
            &[
                (
                    "tollgate_ledger_redis_up",
                    "gauge",
                    "1 when the last call to the fleet ledger (Redis) succeeded.",
                    u64::from(f.up),
                ),
                (
                    "tollgate_ledger_redis_errors_total",
                    "counter",
                    "Calls to the fleet ledger (Redis) that failed or timed out.",
                    f.errors,
                ),
                (
                    "tollgate_ledger_backlog",
                    "gauge",
                    "Settlements waiting for the fleet ledger (Redis) to answer.",
                    f.backlog,
                ),
                (
                    "tollgate_ledger_backlog_dropped_total",
                    "counter",
                    "Settlements dropped from a full backlog ([ledger] max_backlog): usage Redis never counted.",
                    f.dropped,
                ),
                (
                    "tollgate_ledger_admitted_locally_total",
                    "counter",
                    "Requests admitted on this replica's ledger alone while Redis was unreachable (fail_open).",
                    f.admitted_locally,
                ),
            ],
        );
    }
    if let Some(s) = &g.log_shipping {
        unlabelled(
            out,
            &[
                (
                    "tollgate_log_ship_up",
                    "gauge",
                    "1 when the last batch of request logs reached PostgreSQL.",
                    u64::from(s.up),
                ),
                (
                    "tollgate_log_shipped_total",
                    "counter",
                    "Request log rows this replica wrote to PostgreSQL.",
                    s.shipped,
                ),
                (
                    "tollgate_log_ship_backlog",
                    "gauge",
                    "Request log rows written locally and waiting for PostgreSQL.",
                    s.backlog,
                ),
                (
                    "tollgate_log_ship_dropped_total",
                    "counter",
                    "Request log rows left out of PostgreSQL: skipped from a full backlog ([store] log_backlog) or refused.",
                    s.dropped,
                ),
                (
                    "tollgate_log_ship_errors_total",
                    "counter",
                    "Batches of request logs PostgreSQL did not take (retried).",
                    s.errors,
                ),
            ],
        );
    }
    family(
        out,
        "tollgate_build_info",
        "gauge",
        "The running gateway's version.",
        [(
            format!("version=\"{}\"", env!("CARGO_PKG_VERSION")),
            "1".to_string(),
        )],
    );
}

/// Families of one unlabelled sample each: (name, type, help, value).
fn unlabelled(out: &mut String, families: &[(&str, &str, &str, u64)]) {
    for &(name, kind, help, v) in families {
        family(out, name, kind, help, [(String::new(), v.to_string())]);
    }
}

/// One family: its `# HELP` and `# TYPE` lines, then a sample per (labels, value).
fn family(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl IntoIterator<Item = (String, String)>,
) {
    header(out, name, kind, help);
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn req_labels(l: &RequestLabels) -> String {
    let [tenant, provider, model, endpoint] = &l.0;
    format!(
        "tenant=\"{}\",provider=\"{}\",model=\"{}\",endpoint=\"{}\"",
        esc(tenant),
        esc(provider),
        esc(model),
        esc(endpoint)
    )
}

fn budget_labels(b: &BudgetGauge) -> String {
    format!(
        "tenant=\"{}\",budget=\"{}\",scope=\"{}\",value=\"{}\",metric=\"{}\",period=\"{}\"",
        esc(&b.tenant),
        esc(&b.budget),
        esc(&b.scope),
        esc(&b.value),
        b.metric,
        b.period
    )
}

fn histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    let mut cumulative = 0;
    for (b, n) in h.bounds.iter().zip(&h.counts) {
        cumulative += n;
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum);
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
}

/// A label value escaped for the text format.
fn esc(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::PluginDecision;

    fn row(model: &str, status: u16, latency_ms: u64) -> Box<LogRecord> {
        Box::new(LogRecord {
            tenant_id: "acme".into(),
            endpoint: "messages".into(),
            provider: Some("anthropic".into()),
            served_model: Some(model.into()),
            status,
            latency_ms,
            ttft_ms: Some(20),
            cost_nano: 1_500_000_000,
            decisions: vec![PluginDecision {
                plugin: "policy".into(),
                outcome: "allow".into(),
                detail: None,
                annotations: vec![],
                micros: 30,
                at_us: 0,
                ..Default::default()
            }],
            ..LogRecord::default()
        })
    }

    #[test]
    fn counts_histograms_and_escaping_render_in_text_format() {
        let m = Metrics::new();
        m.observe(&[row("m\"1", 200, 30), row("m\"1", 500, 2000)]);
        let text = m.render(&Gauges::default());
        let base = r#"tenant="acme",provider="anthropic",model="m\"1",endpoint="messages""#;
        assert!(text.contains(&format!(
            "tollgate_requests_total{{{base},status=\"200\"}} 1"
        )));
        assert!(text.contains(&format!("tollgate_request_errors_total{{{base}}} 1")));
        assert!(text.contains(&format!(
            "tollgate_request_duration_seconds_bucket{{{base},le=\"0.05\"}} 1"
        )));
        assert!(text.contains(&format!(
            "tollgate_request_duration_seconds_bucket{{{base},le=\"+Inf\"}} 2"
        )));
        assert!(text.contains(&format!("tollgate_cost_usd_total{{{base}}} 3")));
        assert!(text.contains(
            r#"tollgate_plugin_calls_total{tenant="acme",plugin="policy",outcome="allow"} 2"#
        ));
        assert!(text.contains(
            r#"tollgate_plugin_call_duration_seconds_bucket{tenant="acme",plugin="policy",le="0.00005"} 2"#
        ));
    }

    #[test]
    fn invented_model_names_fold_into_other_past_the_cap() {
        let m = Metrics::new();
        let batch: Vec<_> = (0..MAX_SERIES + 10)
            .map(|i| row(&format!("model-{i}"), 200, 1))
            .collect();
        m.observe(&batch);
        // Past the cap, a series made before it is still found and counted.
        m.observe(&[row("model-7", 200, 1), row("model-7", 500, 1)]);
        let reg = m.registry.lock().expect("lock");
        assert_eq!(reg.requests.len(), MAX_SERIES + 1);
        let other = reg
            .requests
            .iter()
            .find(|(l, _)| l.0[2] == OTHER)
            .expect("other");
        assert_eq!(other.1.by_status[&200], 10);
        let seven = reg
            .requests
            .get(&["acme", "anthropic", "model-7", "messages"] as &dyn Parts<4>)
            .expect("model-7");
        assert_eq!((seven.by_status[&200], seven.by_status[&500]), (2, 1));
    }
}
