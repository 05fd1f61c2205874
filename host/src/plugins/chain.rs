//! A tenant's ordered policy chain and how its decisions combine.

use super::bindings::{Decision, Hook, RequestContext, RoutePlan, RouteTarget, wit};
use super::guardrail::{Guarded, StreamMode};
use super::isolation::TenantSandbox;
use super::output::Trimmed;
use super::runtime::{CallEnv, LoadedPlugin, PluginRuntime};
use super::sandbox::CallFailure;
use super::usage::UsageView;
use crate::error::{ApiError, ErrorKind};
use crate::store::PluginDecision;
use axum::http::StatusCode;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Instant;

/// A loaded plugin with one tenant's config for it.
#[derive(Clone, Debug)]
pub struct ConfiguredPlugin {
    /// Name used in logs and errors.
    pub label: Arc<str>,
    /// The compiled component, shared by every tenant that uses the same bytes.
    pub plugin: Arc<LoadedPlugin>,
    /// Config JSON handed to the plugin.
    pub config: Arc<str>,
    /// What the plugin kept when it checked `config` (`keep-prepared`).
    pub prepared: Bytes,
    /// Skip the plugin (instead of failing the request) when it fails.
    pub fail_open: bool,
    /// Keep a warm instance between the tenant's requests (`PluginRef::reuse_instance`).
    pub reuse_instance: bool,
    /// How the plugin's `inspect-response` treats streamed answers.
    pub response_stream: StreamMode,
}

/// Prepared configs one chain keeps in all: one entry may keep up to 1 MiB
/// ([`super::sandbox::MAX_PREPARED_BYTES`]), and a bundle may repeat a small component
/// many times, so the chain's total is bounded too.
pub const MAX_PREPARED_PER_CHAIN: usize = 4 << 20;

/// Drops the prepared configs of `chain`'s entries past [`MAX_PREPARED_PER_CHAIN`] in
/// all (those entries parse their config per call instead).
pub fn budget_prepared(whose: &str, chain: &mut [ConfiguredPlugin]) {
    let mut total = 0usize;
    for p in chain {
        total = total.saturating_add(p.prepared.len());
        if total > MAX_PREPARED_PER_CHAIN && !p.prepared.is_empty() {
            tracing::warn!(
                tenant = whose,
                plugin = %p.label,
                "the chain's prepared configs are over {MAX_PREPARED_PER_CHAIN} bytes in all: this plugin will parse its config per call"
            );
            total -= p.prepared.len();
            p.prepared = Bytes::new();
        }
    }
}

impl ConfiguredPlugin {
    /// What a call of this plugin runs with.
    fn env(
        &self,
        body: &Bytes,
        usage: Option<&UsageView>,
        sandbox: &Option<Arc<TenantSandbox>>,
    ) -> CallEnv {
        CallEnv {
            label: self.label.clone(),
            config: self.config.clone(),
            prepared: self.prepared.clone(),
            body: body.clone(),
            usage: usage.cloned(),
            sandbox: sandbox.clone(),
            reuse: self.reuse_instance,
        }
    }

    /// This plugin's log entry for a call that started at `started`.
    fn record(&self, started: Instant) -> PluginDecision {
        let micros = started.elapsed().as_micros() as u64;
        PluginDecision {
            plugin: self.label.to_string(),
            outcome: String::new(),
            detail: None,
            annotations: Vec::new(),
            micros,
            at_us: crate::ids::now_us() - micros as i64,
            ..Default::default()
        }
    }

    /// Logs (once per call) what was cut from the plugin's output, and notes it in the
    /// decision's log entry.
    fn trimmed(&self, trimmed: &Trimmed, ctx: &RequestContext, record: &mut PluginDecision) {
        if trimmed.is_empty() {
            return;
        }
        let what = trimmed.describe();
        tracing::warn!(plugin = %self.label, request_id = %ctx.request_id, "plugin output cut: {what}");
        if record.detail.is_none() {
            record.detail = Some(format!("output cut: {what}"));
        }
    }

    /// Records a failed call: `None` when the plugin is fail-open (skipped), else the
    /// error that fails the request.
    fn failed(
        &self,
        failure: &CallFailure,
        ctx: &RequestContext,
        record: &mut PluginDecision,
    ) -> Option<ApiError> {
        let reason = format!("plugin '{}' {failure}", self.label);
        tracing::warn!(plugin = %self.label, request_id = %ctx.request_id, fail_open = self.fail_open, "{reason}");
        record.detail = Some(reason.clone());
        if self.fail_open {
            record.outcome = "skipped".into();
            None
        } else {
            record.outcome = "error".into();
            Some(match failure {
                // Out of slots is load, not a broken plugin: tell clients to come back.
                CallFailure::Busy { .. } | CallFailure::PoolBusy { .. } => {
                    let mut e = ApiError::new(ErrorKind::Overloaded, reason);
                    e.retry_after = Some(1);
                    e
                }
                _ => ApiError::internal(reason),
            })
        }
    }
}

/// The plugins a tenant's requests pass through, in order, and the sandbox share
/// they run in.
#[derive(Clone, Debug, Default)]
pub struct PolicyChain {
    plugins: Vec<ConfiguredPlugin>,
    /// The tenant's limits and instance slots (`None`: the gateway-wide defaults).
    sandbox: Option<Arc<TenantSandbox>>,
}

/// How a chain run ended.
#[derive(Debug)]
pub enum ChainOutcome {
    /// Every plugin allowed (or was skipped).
    Allowed(Vec<PluginDecision>),
    /// A plugin denied, or failed closed: answer the caller with this error.
    Refused(Vec<PluginDecision>, ApiError),
}

/// How the budget step ended.
#[derive(Debug)]
pub enum BudgetOutcome {
    /// Every budget plugin allowed: the limits to enforce, and a cheaper target if one
    /// asked for it (with the plugin's label).
    Granted {
        /// Each granted limit with the label of the plugin that set it.
        limits: Vec<(Arc<str>, wit::BudgetLimit)>,
        /// The cheaper target a plugin asked for, with its label.
        downgrade: Option<(Arc<str>, RouteTarget)>,
    },
    /// A plugin denied, or failed closed.
    Refused(ApiError),
}

/// One guardrail step: which hook, on what, for which request.
pub struct Inspection<'a> {
    /// `Hook::InspectRequest` or `Hook::InspectResponse`.
    pub hook: Hook,
    /// The request's context.
    pub ctx: &'a RequestContext,
    /// What `request-body` serves (the body as the client sent it).
    pub body: &'a Bytes,
    /// What `usage` may read.
    pub usage: Option<&'a UsageView>,
    /// Only the plugins whose `response_stream` is this (all when `None`).
    pub only: Option<StreamMode>,
    /// The answer already reached the client (`observe`): verdicts are only recorded,
    /// and a failing plugin stops nothing.
    pub delivered: bool,
}

/// How the route step ended.
#[derive(Debug)]
pub enum RouteOutcome {
    /// This plugin chose the plan; the request may make at most `max_attempts`
    /// upstream attempts whatever it says.
    Planned {
        /// Label of the plugin that routed.
        plugin: Arc<str>,
        /// Its plan, already bounded by the sandbox's output limits.
        plan: RoutePlan,
        /// The gateway's cap on attempts (`[sandbox] max_attempts`).
        max_attempts: u32,
    },
    /// No plugin routed the request: use the tenant's default provider.
    Unrouted,
    /// A routing plugin failed closed.
    Failed(ApiError),
}

impl PolicyChain {
    /// A chain of `plugins` in order, run in `sandbox`.
    pub fn new(plugins: Vec<ConfiguredPlugin>, sandbox: Option<Arc<TenantSandbox>>) -> Self {
        Self { plugins, sandbox }
    }

    /// The same plugins run in `sandbox`.
    pub fn with_sandbox(&self, sandbox: Arc<TenantSandbox>) -> Self {
        Self {
            plugins: self.plugins.clone(),
            sandbox: Some(sandbox),
        }
    }

    /// The sandbox share the chain runs in.
    pub fn sandbox(&self) -> Option<&Arc<TenantSandbox>> {
        self.sandbox.as_ref()
    }

    /// Whether the chain has no policy plugins.
    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty()
    }

    /// Asks each routing plugin in order for a plan; the first that returns one wins.
    /// A failing router is skipped when fail-open, else it fails the request.
    pub async fn route(
        &self,
        rt: &PluginRuntime,
        ctx: &RequestContext,
        body: &Bytes,
        usage: Option<&UsageView>,
        decisions: &mut Vec<PluginDecision>,
    ) -> RouteOutcome {
        for p in self.with_hook(Hook::Route) {
            let started = Instant::now();
            let result = rt
                .call_route(&p.plugin, p.env(body, usage, &self.sandbox), ctx)
                .await;
            let mut record = p.record(started);
            let mut trimmed = Trimmed::default();
            let result = result.and_then(|plan| match plan {
                Some(mut plan) => rt
                    .output_limits()
                    .route_plan(&mut plan, &mut trimmed)
                    .map(|()| Some(plan))
                    .map_err(CallFailure::BadOutput),
                None => Ok(None),
            });
            p.trimmed(&trimmed, ctx, &mut record);
            match result {
                Ok(Some(plan)) => {
                    record.outcome = "route".into();
                    record.annotations = plan
                        .labels
                        .iter()
                        .map(|a| (a.key.clone(), a.value.clone()))
                        .collect();
                    decisions.push(record);
                    return RouteOutcome::Planned {
                        plugin: p.label.clone(),
                        plan,
                        max_attempts: rt.output_limits().max_attempts,
                    };
                }
                Ok(None) => record.outcome = "pass".into(),
                Err(failure) => {
                    if let Some(err) = p.failed(&failure, ctx, &mut record) {
                        decisions.push(record);
                        return RouteOutcome::Failed(err);
                    }
                }
            }
            decisions.push(record);
        }
        RouteOutcome::Unrouted
    }

    /// Asks each budget plugin whether the request fits, for serving on `target`. Every
    /// plugin's limits are collected (the host enforces them together); the first
    /// downgrade wins; the first denial or closed failure stops the step.
    pub async fn budget(
        &self,
        rt: &PluginRuntime,
        ctx: &RequestContext,
        body: &Bytes,
        target: &RouteTarget,
        usage: &UsageView,
        decisions: &mut Vec<PluginDecision>,
    ) -> BudgetOutcome {
        let mut limits = Vec::new();
        let mut downgrade = None;
        for p in self.with_hook(Hook::Budget) {
            let started = Instant::now();
            let result = rt
                .call_budget(
                    &p.plugin,
                    p.env(body, Some(usage), &self.sandbox),
                    ctx,
                    target,
                )
                .await;
            let mut record = p.record(started);
            let mut trimmed = Trimmed::default();
            let out = rt.output_limits();
            let room = out.max_limits_per_request.saturating_sub(limits.len());
            let result = result.and_then(|mut d| {
                out.budget(&mut d, room, &mut trimmed)
                    .map(|()| d)
                    .map_err(CallFailure::BadOutput)
            });
            p.trimmed(&trimmed, ctx, &mut record);
            match result {
                Ok(wit::BudgetDecision::Allow(grant)) => {
                    record.outcome = "allow".into();
                    record.annotations =
                        grant.labels.into_iter().map(|a| (a.key, a.value)).collect();
                    limits.extend(grant.limits.into_iter().map(|l| (p.label.clone(), l)));
                    if downgrade.is_none()
                        && let Some(t) = grant.downgrade
                    {
                        record.outcome = "downgrade".into();
                        downgrade = Some((p.label.clone(), t));
                    }
                }
                Ok(wit::BudgetDecision::Deny(d)) => {
                    record.outcome = "deny".into();
                    record.detail = Some(d.message.clone());
                    decisions.push(record);
                    return BudgetOutcome::Refused(denial_error(d));
                }
                Err(failure) => {
                    if let Some(err) = p.failed(&failure, ctx, &mut record) {
                        decisions.push(record);
                        return BudgetOutcome::Refused(err);
                    }
                }
            }
            decisions.push(record);
        }
        BudgetOutcome::Granted { limits, downgrade }
    }

    /// Runs every plugin implementing the inspection's guardrail hook, in chain order,
    /// on `subject`: each sees the text as the plugins before it left it. A rewrite is
    /// applied whole or, when the host cannot apply it (see `GuardError`), the plugin
    /// has failed (500 naming it, or skipped when fail-open); the first denial stops
    /// the step with the client's error. Once `delivered`, denials and rewrites are
    /// recorded (`observed-deny`, `observed-rewrite`) and nothing is changed.
    pub async fn inspect(
        &self,
        rt: &PluginRuntime,
        step: Inspection<'_>,
        subject: &mut dyn Guarded,
        decisions: &mut Vec<PluginDecision>,
    ) -> Result<(), ApiError> {
        let hook_name = match step.hook {
            Hook::InspectResponse => "inspect-response",
            _ => "inspect-request",
        };
        // What `request-body` serves: as rewritten by the plugins before.
        let mut body = step.body.clone();
        let plugins = self
            .with_hook(step.hook)
            .filter(|p| step.only.is_none_or(|m| p.response_stream == m));
        for p in plugins {
            let started = Instant::now();
            let result = rt
                .call_inspect(
                    &p.plugin,
                    p.env(&body, step.usage, &self.sandbox),
                    step.ctx,
                    subject.subject(),
                )
                .await;
            let mut record = p.record(started);
            record.hook = Some(hook_name.into());
            let mut trimmed = Trimmed::default();
            let result = result.and_then(|mut v| {
                rt.output_limits().verdict(&mut v, &mut trimmed);
                match v {
                    wit::Verdict::Rewrite(rw) if !step.delivered => {
                        let what = rewrite_summary(&rw);
                        let findings = rw.findings.clone();
                        subject
                            .rewrite(rw)
                            .map(|()| Applied::Rewrote(what, findings))
                            .map_err(|e| {
                                CallFailure::BadOutput(format!(
                                    "returned a rewrite the host cannot apply: {e}"
                                ))
                            })
                    }
                    v => Ok(Applied::Verdict(v)),
                }
            });
            p.trimmed(&trimmed, step.ctx, &mut record);
            let observed = if step.delivered { "observed-" } else { "" };
            match result {
                Ok(Applied::Rewrote(what, findings)) => {
                    record.outcome = "rewrite".into();
                    record.detail = Some(what);
                    record.findings = findings.into_iter().map(finding).collect();
                    if let Some(b) = subject.rewritten_body() {
                        body = b;
                    }
                }
                Ok(Applied::Verdict(wit::Verdict::Allow)) => record.outcome = "allow".into(),
                Ok(Applied::Verdict(wit::Verdict::Flag(f))) => {
                    record.outcome = "flag".into();
                    record.findings = f.into_iter().map(finding).collect();
                }
                Ok(Applied::Verdict(wit::Verdict::Rewrite(rw))) => {
                    record.outcome = format!("{observed}rewrite");
                    record.detail = Some(rewrite_summary(&rw));
                    record.findings = rw.findings.into_iter().map(finding).collect();
                }
                Ok(Applied::Verdict(wit::Verdict::Deny(r))) => {
                    record.outcome = format!("{observed}deny");
                    record.detail = Some(r.denial.message.clone());
                    record.findings = r.findings.into_iter().map(finding).collect();
                    if !step.delivered {
                        decisions.push(record);
                        return Err(denial_error(r.denial));
                    }
                }
                Err(failure) => {
                    if let Some(err) = p.failed(&failure, step.ctx, &mut record)
                        && !step.delivered
                    {
                        decisions.push(record);
                        return Err(err);
                    }
                }
            }
            decisions.push(record);
        }
        Ok(())
    }

    /// Whether a streamed answer must be held for this chain's response guardrails
    /// (one of them is set to `buffer`).
    pub fn buffers_streams(&self) -> bool {
        self.with_hook(Hook::InspectResponse)
            .any(|p| p.response_stream == StreamMode::Buffer)
    }

    /// Whether any plugin implements `hook`.
    pub fn has_hook(&self, hook: Hook) -> bool {
        self.with_hook(hook).next().is_some()
    }

    /// The plugins that implement `hook`, in chain order.
    fn with_hook(&self, hook: Hook) -> impl Iterator<Item = &ConfiguredPlugin> {
        self.plugins
            .iter()
            .filter(move |p| p.plugin.info.hooks.contains(&hook))
    }

    /// Runs every policy plugin in order; the first denial or closed failure stops the chain.
    pub async fn run(
        &self,
        rt: &PluginRuntime,
        ctx: &RequestContext,
        body: &Bytes,
        usage: Option<&UsageView>,
    ) -> ChainOutcome {
        let mut decisions = Vec::with_capacity(self.plugins.len());
        for p in self.with_hook(Hook::Policy) {
            let started = Instant::now();
            let result = rt
                .call_policy(&p.plugin, p.env(body, usage, &self.sandbox), ctx)
                .await;
            let mut record = p.record(started);
            let mut trimmed = Trimmed::default();
            let result = result.map(|mut d| {
                rt.output_limits().decision(&mut d, &mut trimmed);
                d
            });
            p.trimmed(&trimmed, ctx, &mut record);
            match result {
                Ok(Decision::Allow) => record.outcome = "allow".into(),
                Ok(Decision::AllowWith(labels)) => {
                    record.outcome = "allow".into();
                    record.annotations = labels.into_iter().map(|a| (a.key, a.value)).collect();
                }
                Ok(Decision::Deny(d)) => {
                    record.outcome = "deny".into();
                    record.detail = Some(d.message.clone());
                    decisions.push(record);
                    return ChainOutcome::Refused(decisions, denial_error(d));
                }
                Err(failure) => {
                    if let Some(err) = p.failed(&failure, ctx, &mut record) {
                        decisions.push(record);
                        return ChainOutcome::Refused(decisions, err);
                    }
                }
            }
            decisions.push(record);
        }
        ChainOutcome::Allowed(decisions)
    }
}

/// What became of one guardrail verdict.
enum Applied {
    /// The rewrite was applied: its summary and findings.
    Rewrote(String, Vec<wit::Finding>),
    /// Any other verdict (or a rewrite of a delivered answer), as returned.
    Verdict(wit::Verdict),
}

/// A rewrite's summary for the log row: how many edits in how many parts.
fn rewrite_summary(rw: &wit::Rewrite) -> String {
    let mut parts: Vec<u32> = rw.edits.iter().map(|e| e.part).collect();
    parts.sort_unstable();
    parts.dedup();
    let mut s = format!("{} edit(s) in {} part(s)", rw.edits.len(), parts.len());
    if rw.append_system.is_some() {
        s.push_str("; system prompt extended");
    }
    s
}

fn finding(f: wit::Finding) -> crate::store::Finding {
    crate::store::Finding {
        rule: f.rule,
        kind: f.kind,
        count: f.count,
    }
}

/// A plugin's denial as the client's error: its status (clamped to 4xx/5xx, else 403),
/// type and message.
fn denial_error(d: wit::Denial) -> ApiError {
    let status = match StatusCode::from_u16(d.status) {
        Ok(s) if s.is_client_error() || s.is_server_error() => s,
        _ => StatusCode::FORBIDDEN,
    };
    let mut err =
        ApiError::new(ErrorKind::from_status(status.as_u16()), d.message).with_status(status);
    if !d.error_type.is_empty() {
        err.type_override = Some(d.error_type);
    }
    err
}
