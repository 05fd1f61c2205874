//! `tollgate plugin test`: runs a plugin's fixture cases (`tests/*.toml`) against the
//! built component in the real sandbox and prints a table of passes and failures.
//!
//! A case file may set a `config` for its cases (a JSON file's path relative to it, or
//! an inline table), then lists `[[case]]`s: a `name`, the `hook` (policy, route,
//! budget, inspect-request or validate; inferred from `expect` when absent), `now`
//! (RFC 3339; what the plugin's clock says), the `request` (see [`Sample`]), `usage`
//! (what `usage` reports for every scope of the request) and `expect`. docs/plugins.md
//! describes the format.

use super::sample::Sample;
use crate::guard::RequestText;
use crate::ledger::{Admit, Amount, Ledger, RequestScopes};
use crate::metadata::Metadata;
use crate::plugins::{
    CallEnv, Decision, Hook, LoadedPlugin, PluginError, PluginRuntime, RequestContext, RouteTarget,
    Subject, UsageView, wit,
};
use anyhow::Context as _;
use serde::Deserialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Arguments of `tollgate plugin test`.
pub struct PluginTest {
    /// A plugin project directory, or a component (`.wasm`).
    pub target: PathBuf,
    /// The folder of case files (default: `<project>/tests`, or `./tests` for a file).
    pub cases: Option<PathBuf>,
    /// The component, when it is not where the project says.
    pub wasm: Option<PathBuf>,
    /// Memory cap of the instance, in MiB.
    pub memory_mib: Option<u64>,
    /// CPU deadline of a call, in milliseconds.
    pub deadline_ms: Option<u64>,
}

/// A plugin project's `tollgate-plugin.toml` (written by `tollgate plugin new`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The plugin's name.
    pub name: String,
    /// `rust`, `python` or `js`.
    pub lang: String,
    /// The command that builds the component, run in the project directory.
    pub build: String,
    /// The built component, relative to the project directory.
    pub wasm: PathBuf,
    /// Memory the plugin needs per instance, in MiB (the tenant's `[tenants.sandbox]`
    /// must allow it); `plugin test` runs with it.
    #[serde(default)]
    pub memory_mib: Option<u64>,
    /// CPU time a call needs, in milliseconds (likewise).
    #[serde(default)]
    pub deadline_ms: Option<u64>,
}

/// The name of a plugin project's manifest.
pub const MANIFEST: &str = "tollgate-plugin.toml";

impl Manifest {
    /// The manifest of the project in `dir`.
    pub fn read(dir: &Path) -> anyhow::Result<Manifest> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {} (a project made by `tollgate plugin new`)",
                path.display()
            )
        })?;
        toml::from_str(&text).with_context(|| format!("{}", path.display()))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    #[serde(default)]
    config: Option<toml::Value>,
    #[serde(default, rename = "case")]
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default)]
    hook: Option<String>,
    #[serde(default)]
    now: Option<String>,
    #[serde(default)]
    config: Option<toml::Value>,
    #[serde(default)]
    request: Sample,
    #[serde(default)]
    usage: Option<Usage>,
    expect: Expect,
}

/// What `usage` reports for every scope of the request.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Usage {
    #[serde(default)]
    cost_usd: f64,
    #[serde(default)]
    tokens: u64,
    #[serde(default)]
    requests: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    #[serde(default)]
    decision: Option<String>,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    error_type: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    labels: Option<toml::Table>,
    #[serde(default)]
    route: Option<Vec<ExpectTarget>>,
    #[serde(default)]
    strategy: Option<String>,
    #[serde(default)]
    no_route: bool,
    #[serde(default)]
    limits: Option<Vec<ExpectLimit>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectTarget {
    provider: String,
    #[serde(default)]
    model: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectLimit {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    metric: Option<String>,
    #[serde(default)]
    period: Option<String>,
    #[serde(default)]
    limit: Option<f64>,
}

impl Expect {
    fn checks_something(&self) -> bool {
        self.decision.is_some()
            || self.status.is_some()
            || self.error_type.is_some()
            || self.message.is_some()
            || self.labels.is_some()
            || self.route.is_some()
            || self.strategy.is_some()
            || self.no_route
            || self.limits.is_some()
    }
}

impl ExpectLimit {
    fn describe(&self) -> String {
        let parts = [
            self.name.clone(),
            self.scope.clone(),
            self.metric.clone(),
            self.period.clone(),
            self.limit.map(|l| l.to_string()),
        ];
        let parts: Vec<String> = parts.into_iter().flatten().collect();
        format!("[{}]", parts.join(" "))
    }
}

/// The hook a case runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CaseHook {
    Validate,
    Policy,
    Route,
    Budget,
    InspectRequest,
}

impl CaseHook {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "validate" => Self::Validate,
            "policy" => Self::Policy,
            "route" => Self::Route,
            "budget" => Self::Budget,
            "inspect-request" | "inspect_request" => Self::InspectRequest,
            _ => return None,
        })
    }

    /// The contract's hook it runs (none for a config check).
    fn wit(self) -> Option<Hook> {
        match self {
            Self::Validate => None,
            Self::Policy => Some(Hook::Policy),
            Self::Route => Some(Hook::Route),
            Self::Budget => Some(Hook::Budget),
            Self::InspectRequest => Some(Hook::InspectRequest),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Validate => "validate",
            Self::Policy => "policy",
            Self::Route => "route",
            Self::Budget => "budget",
            Self::InspectRequest => "inspect-request",
        }
    }
}

/// What a hook answered, in the fixture's terms.
#[derive(Debug, Default)]
struct Outcome {
    /// `allow` or `deny` (route: `route` or `none`).
    decision: String,
    status: Option<u16>,
    error_type: Option<String>,
    message: Option<String>,
    labels: Vec<(String, String)>,
    targets: Vec<(String, Option<String>)>,
    strategy: Option<String>,
    limits: Vec<wit::BudgetLimit>,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.decision)?;
        if let Some(s) = self.status {
            write!(f, " {s}")?;
        }
        if let Some(t) = &self.error_type {
            write!(f, " {t}")?;
        }
        if let Some(m) = &self.message {
            write!(f, " {m:?}")?;
        }
        if let Some(s) = &self.strategy {
            write!(f, " {s}")?;
        }
        for (p, m) in &self.targets {
            write!(
                f,
                " -> {p}{}",
                m.as_deref().map(|m| format!("/{m}")).unwrap_or_default()
            )?;
        }
        for l in &self.limits {
            write!(
                f,
                " [{} {} {} {} {}]",
                l.name,
                scope_name(&l.scope),
                metric_name(l.metric),
                period_name(l.period),
                l.limit
            )?;
        }
        if !self.labels.is_empty() {
            let labels: Vec<String> = self
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            write!(f, " ({})", labels.join(", "))?;
        }
        Ok(())
    }
}

fn metric_name(m: wit::Metric) -> &'static str {
    crate::ledger::Metric::from(m).as_str()
}

fn period_name(p: wit::Period) -> &'static str {
    crate::ledger::Period::from(p).as_str()
}

fn scope_name(s: &wit::Scope) -> String {
    match s {
        wit::Scope::Tenant => "tenant".into(),
        wit::Scope::Team => "team".into(),
        wit::Scope::User => "user".into(),
        wit::Scope::Key => "key".into(),
        wit::Scope::Metadata(k) => format!("metadata:{k}"),
    }
}

/// Where the component is, where the cases are, and the project's manifest if any.
fn locate(args: &PluginTest) -> anyhow::Result<(PathBuf, PathBuf, Option<Manifest>)> {
    let t = &args.target;
    if t.is_file() {
        let cases = args.cases.clone().unwrap_or_else(|| PathBuf::from("tests"));
        return Ok((t.clone(), cases, None));
    }
    anyhow::ensure!(t.is_dir(), "{}: no such file or directory", t.display());
    let cases = args.cases.clone().unwrap_or_else(|| t.join("tests"));
    if t.join(MANIFEST).is_file() {
        let m = Manifest::read(t)?;
        let wasm = args.wasm.clone().unwrap_or_else(|| t.join(&m.wasm));
        anyhow::ensure!(
            wasm.is_file(),
            "{}: not built yet: run `{}` in {}",
            wasm.display(),
            m.build,
            t.display()
        );
        return Ok((wasm, cases, Some(m)));
    }
    if let Some(w) = &args.wasm {
        return Ok((w.clone(), cases, None));
    }
    // A Rust plugin crate of a workspace: its component in the (shared) target folder.
    let cargo = t.join("Cargo.toml");
    if cargo.is_file() {
        let text = std::fs::read_to_string(&cargo)?;
        let doc: toml::Table =
            toml::from_str(&text).with_context(|| format!("{}", cargo.display()))?;
        if let Some(name) = doc
            .get("package")
            .and_then(|p| p.get("name"))
            .and_then(|n| n.as_str())
        {
            let file = format!("{}.wasm", name.replace('-', "_"));
            let dirs = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .into_iter()
                .chain(t.ancestors().map(|a| a.join("target")));
            for dir in dirs {
                let w = dir.join("wasm32-wasip2/release").join(&file);
                if w.is_file() {
                    return Ok((w, cases, None));
                }
            }
            anyhow::bail!(
                "{}: no built component {file} (build it: cargo build --release --target wasm32-wasip2)",
                t.display()
            );
        }
    }
    anyhow::bail!(
        "{}: neither a {MANIFEST} nor a Cargo.toml says where the component is (pass --wasm)",
        t.display()
    )
}

/// Config JSON of a fixture's `config` value (a path relative to `dir`, or a table).
fn config_json(v: &toml::Value, dir: &Path) -> anyhow::Result<String> {
    match v {
        toml::Value::String(path) => super::sample::json_file(&dir.join(path)).context("config"),
        other => Ok(serde_json::to_value(other)?.to_string()),
    }
}

/// Runs every case; prints the table; returns the exit code (0 all passed, 1 not).
pub async fn run_plugin_test(args: &PluginTest) -> anyhow::Result<i32> {
    let (wasm, cases_dir, manifest) = locate(args)?;
    let rt = super::sample::runtime(
        args.memory_mib
            .or(manifest.as_ref().and_then(|m| m.memory_mib)),
        args.deadline_ms
            .or(manifest.as_ref().and_then(|m| m.deadline_ms)),
    )?;
    let label = wasm
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".into());
    let plugin = rt.load_file(&label, &wasm).await?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&cases_dir)
        .with_context(|| format!("reading the cases in {}", cases_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    anyhow::ensure!(
        !files.is_empty(),
        "{}: no case files (*.toml)",
        cases_dir.display()
    );
    println!(
        "{} {} (tollgate:plugin@{}, {}) against {}",
        plugin.info.name,
        plugin.info.version,
        plugin.contract,
        wasm.display(),
        cases_dir.display()
    );
    let (mut passed, mut failed) = (0, 0);
    for file in &files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let cf: CaseFile = toml::from_str(&text).with_context(|| format!("{}", file.display()))?;
        let dir = file.parent().unwrap_or(Path::new("."));
        let short = file
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let file_config = cf
            .config
            .as_ref()
            .map(|c| config_json(c, dir))
            .transpose()?;
        for case in &cf.cases {
            let started = std::time::Instant::now();
            let result = run_case(&rt, &plugin, case, file_config.as_deref(), dir).await;
            let took = started.elapsed();
            match result {
                Ok((hook, None)) => {
                    passed += 1;
                    println!(
                        "  PASS  {short:<14} {:<52} {:<15} {took:>9.2?}",
                        case.name,
                        hook.name()
                    );
                }
                Ok((hook, Some(diff))) => {
                    failed += 1;
                    println!(
                        "  FAIL  {short:<14} {:<52} {:<15} {took:>9.2?}",
                        case.name,
                        hook.name()
                    );
                    for line in diff.lines() {
                        println!("        {line}");
                    }
                }
                Err(e) => {
                    failed += 1;
                    println!("  FAIL  {short:<14} {:<52}", case.name);
                    println!("        error: {e:#}");
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 { 0 } else { 1 })
}

/// Runs one case: its hook and, when the outcome differs, what differs.
async fn run_case(
    rt: &PluginRuntime,
    plugin: &Arc<LoadedPlugin>,
    case: &Case,
    file_config: Option<&str>,
    dir: &Path,
) -> anyhow::Result<(CaseHook, Option<String>)> {
    let e = &case.expect;
    anyhow::ensure!(
        e.checks_something(),
        "expect: says nothing to check (set decision, message, route, no_route, limits, ...)"
    );
    let hook = match &case.hook {
        Some(h) => CaseHook::parse(h).with_context(|| {
            format!("hook: unknown '{h}' (policy, route, budget, inspect-request, validate)")
        })?,
        None if e.route.is_some() || e.no_route || e.strategy.is_some() => CaseHook::Route,
        None if e.limits.is_some() => CaseHook::Budget,
        None => CaseHook::Policy,
    };
    let config = match &case.config {
        Some(c) => config_json(c, dir)?,
        None => file_config.unwrap_or("{}").to_string(),
    };
    let label = plugin.info.name.clone();
    let prepared = match rt.validate_config(plugin, &label, &config, None).await {
        Ok(prepared) => prepared,
        Err(PluginError::InvalidConfig { message, .. }) if hook == CaseHook::Validate => {
            let got = Outcome {
                decision: "deny".into(),
                message: Some(message),
                ..Outcome::default()
            };
            return Ok((hook, compare(e, &got, hook)));
        }
        // A refused config is never a hook's denial: the gateway would not start it.
        Err(PluginError::InvalidConfig { message, .. }) => {
            return Ok((hook, Some(format!("the config was refused: {message}"))));
        }
        Err(other) => return Err(other.into()),
    };
    if hook == CaseHook::Validate {
        return Ok((
            hook,
            compare(
                e,
                &Outcome {
                    decision: "allow".into(),
                    ..Outcome::default()
                },
                hook,
            ),
        ));
    }
    if let Some(h) = hook.wit()
        && !plugin.info.hooks.contains(&h)
    {
        return Ok((
            hook,
            Some(format!(
                "the plugin does not declare the {} hook (its describe lists {:?}), so the gateway never calls it",
                hook.name(),
                plugin.info.hooks
            )),
        ));
    }
    let (ctx, body) = case.request.build()?;
    let now_ms = match &case.now {
        Some(t) => Some(
            crate::time::parse_time(t, crate::ids::now_ms())
                .map_err(|e| anyhow::anyhow!("now: {e}"))?,
        ),
        None => None,
    };
    let env = CallEnv {
        label: Arc::from(label.as_str()),
        config: Arc::from(config.as_str()),
        prepared,
        body: body.clone(),
        usage: Some(usage_view(&ctx, case.usage.as_ref(), now_ms)),
        sandbox: None,
        reuse: false,
    };
    let got = match hook {
        CaseHook::Validate => unreachable!("answered above"),
        CaseHook::Policy => match rt.call_policy(plugin, env, &ctx).await? {
            Decision::Allow => Outcome {
                decision: "allow".into(),
                ..Outcome::default()
            },
            Decision::AllowWith(labels) => Outcome {
                decision: "allow".into(),
                labels: labels.into_iter().map(|a| (a.key, a.value)).collect(),
                ..Outcome::default()
            },
            Decision::Deny(d) => denied(d),
        },
        CaseHook::Route => match rt.call_route(plugin, env, &ctx).await? {
            None => Outcome {
                decision: "none".into(),
                ..Outcome::default()
            },
            Some(plan) => Outcome {
                decision: "route".into(),
                strategy: Some(
                    match plan.strategy {
                        wit::Strategy::Single => "single",
                        wit::Strategy::Fallback => "fallback",
                        wit::Strategy::LoadBalance => "load-balance",
                    }
                    .into(),
                ),
                targets: plan
                    .targets
                    .into_iter()
                    .map(|t| (t.provider, t.model))
                    .collect(),
                labels: plan.labels.into_iter().map(|a| (a.key, a.value)).collect(),
                ..Outcome::default()
            },
        },
        CaseHook::Budget => {
            let target = RouteTarget {
                provider: "default".into(),
                model: Some(ctx.model.clone()),
                weight: 1,
                max_tokens_cap: None,
            };
            match rt.call_budget(plugin, env, &ctx, &target).await? {
                wit::BudgetDecision::Allow(g) => Outcome {
                    decision: "allow".into(),
                    labels: g.labels.into_iter().map(|a| (a.key, a.value)).collect(),
                    limits: g.limits,
                    ..Outcome::default()
                },
                wit::BudgetDecision::Deny(d) => denied(d),
            }
        }
        CaseHook::InspectRequest => {
            let api = crate::pipeline::client_api(ctx.endpoint);
            let text = RequestText::parse(api, &body).context("request body")?;
            match rt
                .call_inspect(plugin, env, &ctx, Subject::Request(text.conversation()))
                .await?
            {
                wit::Verdict::Allow => Outcome {
                    decision: "allow".into(),
                    ..Outcome::default()
                },
                wit::Verdict::Flag(f) | wit::Verdict::Rewrite(wit::Rewrite { findings: f, .. }) => {
                    Outcome {
                        decision: "allow".into(),
                        labels: f.into_iter().map(|f| (f.rule, f.kind)).collect(),
                        ..Outcome::default()
                    }
                }
                wit::Verdict::Deny(r) => denied(r.denial),
            }
        }
    };
    Ok((hook, compare(e, &got, hook)))
}

fn denied(d: wit::Denial) -> Outcome {
    Outcome {
        decision: "deny".into(),
        status: Some(d.status),
        error_type: Some(d.error_type),
        message: Some(d.message),
        ..Outcome::default()
    }
}

/// A usage view over a ledger holding only `usage`, counted under every scope of the
/// request, read at `now_ms`.
fn usage_view(ctx: &RequestContext, usage: Option<&Usage>, now_ms: Option<i64>) -> UsageView {
    let scopes = Arc::new(RequestScopes::new(
        &ctx.tenant,
        &ctx.key_id,
        ctx.team.as_deref(),
        ctx.user.as_deref(),
        &Metadata::from(ctx.metadata.clone()),
    ));
    let ledger = Arc::new(Ledger::new());
    let at = now_ms.unwrap_or_else(crate::ids::now_ms);
    if let Some(u) = usage {
        let amount = Amount {
            requests: u.requests,
            tokens: u.tokens,
            cost_nano: (u.cost_usd.max(0.0) * 1e9) as u64,
        };
        let keys: Vec<Arc<str>> = ctx
            .metadata
            .iter()
            .map(|(k, _)| Arc::from(k.as_str()))
            .collect();
        let counted = scopes.counted(&keys, &[]);
        if let Ok(r) = ledger.admit(counted, Vec::new(), Amount::ZERO, at, Admit::BelowCap) {
            ledger.settle(r, amount, at);
        }
    }
    UsageView {
        ledger,
        scopes,
        at_ms: now_ms,
        fleet: None,
    }
}

/// What differs between `e` and `got`, one line each; `None` when nothing does.
fn compare(e: &Expect, got: &Outcome, hook: CaseHook) -> Option<String> {
    let mut diff = String::new();
    let mut want = |ok: bool, what: String| {
        if !ok {
            let _ = writeln!(diff, "expected {what}");
        }
    };
    if let Some(d) = &e.decision {
        let actual = match (hook, got.decision.as_str()) {
            (CaseHook::Route, "route" | "none") => "allow",
            (_, d) => d,
        };
        want(actual == d, format!("decision {d}"));
    }
    if let Some(s) = e.status {
        want(got.status == Some(s), format!("status {s}"));
    }
    if let Some(t) = &e.error_type {
        want(
            got.error_type.as_deref() == Some(t),
            format!("error type {t}"),
        );
    }
    if let Some(m) = &e.message {
        want(
            got.message
                .as_deref()
                .is_some_and(|g| g.contains(m.as_str())),
            format!("a message containing {m:?}"),
        );
    }
    if let Some(labels) = &e.labels {
        for (k, v) in labels {
            let v = match v {
                toml::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            want(
                got.labels.iter().any(|(gk, gv)| gk == k && *gv == v),
                format!("label {k}={v}"),
            );
        }
    }
    if e.no_route {
        want(got.decision == "none", "no route plan".into());
    }
    if let Some(s) = &e.strategy {
        want(got.strategy.as_deref() == Some(s), format!("strategy {s}"));
    }
    if let Some(route) = &e.route {
        let same = route.len() == got.targets.len()
            && route
                .iter()
                .zip(&got.targets)
                .all(|(w, (p, m))| w.provider == *p && (w.model.is_none() || w.model == *m));
        let list: Vec<String> = route
            .iter()
            .map(|t| {
                format!(
                    "{}{}",
                    t.provider,
                    t.model
                        .as_deref()
                        .map(|m| format!("/{m}"))
                        .unwrap_or_default()
                )
            })
            .collect();
        want(same, format!("targets {}", list.join(" -> ")));
    }
    if let Some(limits) = &e.limits {
        want(
            limits.len() == got.limits.len(),
            format!("{} limit(s)", limits.len()),
        );
        for (i, (w, g)) in limits.iter().zip(&got.limits).enumerate() {
            let ok = w.name.as_ref().is_none_or(|n| *n == g.name)
                && w.scope.as_ref().is_none_or(|s| *s == scope_name(&g.scope))
                && w.metric.as_ref().is_none_or(|m| m == metric_name(g.metric))
                && w.period.as_ref().is_none_or(|p| p == period_name(g.period))
                && w.limit.is_none_or(|l| (l - g.limit).abs() < 1e-9);
            want(ok, format!("limit {i} to be {}", w.describe()));
        }
    }
    if diff.is_empty() {
        None
    } else {
        let _ = write!(diff, "got {got}");
        Some(diff)
    }
}
