//! Every version of the plugin contract the host speaks, side by side (as Spin links
//! its v1 and v2 worlds): the current `tollgate:plugin@0.4.0` from `wit/`, and each
//! older version from its frozen copy in `wit-legacy/`. One [`Linker`] holds them all
//! (wasmtime keys 0.x packages by minor version, so they never collide); a component
//! is bound to the version it exports, and calls into an older plugin are adapted to
//! the current types here, so the rest of the host only ever sees 0.4.
//!
//! Adding a version: freeze `wit/` into `wit-legacy/v<old>/`, bump `wit/`, add a
//! module like [`v0_3`] (its bindings, [`shared_adapters!`], its own converters), a
//! variant of [`GuestPre`] and [`Guest`], and its arms below.

use super::bindings::exports::tollgate::plugin::guest::{Guest as Exports, GuestIndices};
use super::bindings::{Decision, Plugin, PluginInfo, RequestContext, RoutePlan, RouteTarget, wit};
use super::guardrail::Subject;
use super::sandbox::PluginState;
use wasmtime::Store;
use wasmtime::component::{ComponentExportIndex, HasSelf, Instance, InstancePre, Linker};

/// What every older version shares with the current one, adapted the same way: the
/// host imports `log`, `config`, `now-ms` and `request-body` (delegated to the current
/// implementation), the request context (down) and the policy and route outcomes (up).
/// Expanded inside each version's module, next to its generated bindings.
macro_rules! shared_adapters {
    () => {
        use super::{Decision, PluginState, RequestContext, RoutePlan, RouteTarget, wit};
        use tollgate::plugin::types as old;

        impl old::Host for PluginState {}

        impl tollgate::plugin::host::Host for PluginState {
            fn log(&mut self, level: old::LogLevel, message: String) {
                let level = match level {
                    old::LogLevel::Trace => wit::LogLevel::Trace,
                    old::LogLevel::Debug => wit::LogLevel::Debug,
                    old::LogLevel::Info => wit::LogLevel::Info,
                    old::LogLevel::Warn => wit::LogLevel::Warn,
                    old::LogLevel::Error => wit::LogLevel::Error,
                };
                super::super::bindings::tollgate::plugin::host::Host::log(self, level, message)
            }

            fn config(&mut self) -> String {
                super::super::bindings::tollgate::plugin::host::Host::config(self)
            }

            fn now_ms(&mut self) -> u64 {
                super::super::bindings::tollgate::plugin::host::Host::now_ms(self)
            }

            fn request_body(&mut self) -> String {
                super::super::bindings::tollgate::plugin::host::Host::request_body(self)
            }

            usage_import!();
        }

        pub(super) fn context_down(c: &RequestContext) -> old::RequestContext {
            old::RequestContext {
                request_id: c.request_id.clone(),
                trace_id: c.trace_id.clone(),
                tenant: c.tenant.clone(),
                key_id: c.key_id.clone(),
                key_name: c.key_name.clone(),
                team: c.team.clone(),
                user: c.user.clone(),
                metadata: c.metadata.clone(),
                model: c.model.clone(),
                endpoint: match c.endpoint {
                    wit::Endpoint::Messages => old::Endpoint::Messages,
                    wit::Endpoint::CountTokens => old::Endpoint::CountTokens,
                    wit::Endpoint::ChatCompletions => old::Endpoint::ChatCompletions,
                },
                stream: c.stream,
                max_tokens: c.max_tokens,
                body_bytes: c.body_bytes,
                prompt_tokens_estimate: c.prompt_tokens_estimate,
                message_count: c.message_count,
            }
        }

        fn annotations_up(labels: Vec<old::Annotation>) -> Vec<wit::Annotation> {
            labels
                .into_iter()
                .map(|a| wit::Annotation {
                    key: a.key,
                    value: a.value,
                })
                .collect()
        }

        fn denial_up(d: old::Denial) -> wit::Denial {
            wit::Denial {
                status: d.status,
                error_type: d.error_type,
                message: d.message,
            }
        }

        pub(super) fn decision_up(d: old::Decision) -> Decision {
            match d {
                old::Decision::Allow => Decision::Allow,
                old::Decision::AllowWith(labels) => Decision::AllowWith(annotations_up(labels)),
                old::Decision::Deny(d) => Decision::Deny(denial_up(d)),
            }
        }

        fn target_up(t: old::RouteTarget) -> RouteTarget {
            RouteTarget {
                provider: t.provider,
                model: t.model,
                weight: t.weight,
                max_tokens_cap: t.max_tokens_cap,
            }
        }

        pub(super) fn plan_up(p: old::RoutePlan) -> RoutePlan {
            RoutePlan {
                strategy: match p.strategy {
                    old::Strategy::Single => wit::Strategy::Single,
                    old::Strategy::Fallback => wit::Strategy::Fallback,
                    old::Strategy::LoadBalance => wit::Strategy::LoadBalance,
                },
                targets: p.targets.into_iter().map(target_up).collect(),
                retry_on: wit::RetryOn {
                    statuses: p.retry_on.statuses,
                    timeout: p.retry_on.timeout,
                    connect_error: p.retry_on.connect_error,
                },
                retries: p.retries,
                backoff_ms: p.backoff_ms,
                max_backoff_ms: p.max_backoff_ms,
                attempt_timeout_ms: p.attempt_timeout_ms,
                labels: annotations_up(p.labels),
            }
        }
    };
}

/// Bindings of the frozen 0.3.0 contract (policy, route and budget hooks; no
/// guardrail hooks).
mod v0_3 {
    // The generated items are documented in the WIT they come from.
    #![allow(missing_docs)]
    wasmtime::component::bindgen!({
        path: "../wit-legacy/v0.3.0",
        world: "tollgate:plugin/plugin@0.3.0",
        exports: { default: async },
        imports: { "tollgate:plugin/host.usage": async },
    });

    /// 0.3's `usage` import: the current one, its records mapped across.
    macro_rules! usage_import {
        () => {
            async fn usage(
                &mut self,
                scope: old::Scope,
                value: Option<String>,
                period: old::Period,
                window: old::Window,
            ) -> old::UsageReport {
                let r = super::super::bindings::tollgate::plugin::host::Host::usage(
                    self,
                    scope_up(scope),
                    value,
                    period_up(period),
                    window_up(window),
                )
                .await;
                old::UsageReport {
                    value: r.value,
                    requests: r.requests,
                    tokens: r.tokens,
                    cost_usd: r.cost_usd,
                    reserved_requests: r.reserved_requests,
                    reserved_tokens: r.reserved_tokens,
                    reserved_cost_usd: r.reserved_cost_usd,
                    resets_at_ms: r.resets_at_ms,
                }
            }
        };
    }
    shared_adapters!();

    pub(super) fn info_up(i: old::PluginInfo) -> wit::PluginInfo {
        wit::PluginInfo {
            name: i.name,
            version: i.version,
            hooks: i
                .hooks
                .into_iter()
                .map(|h| match h {
                    old::Hook::Policy => wit::Hook::Policy,
                    old::Hook::Route => wit::Hook::Route,
                    old::Hook::Budget => wit::Hook::Budget,
                })
                .collect(),
            config_schema: i.config_schema,
        }
    }

    pub(super) fn target_down(t: &RouteTarget) -> old::RouteTarget {
        old::RouteTarget {
            provider: t.provider.clone(),
            model: t.model.clone(),
            weight: t.weight,
            max_tokens_cap: t.max_tokens_cap,
        }
    }

    fn scope_up(s: old::Scope) -> wit::Scope {
        match s {
            old::Scope::Tenant => wit::Scope::Tenant,
            old::Scope::Team => wit::Scope::Team,
            old::Scope::User => wit::Scope::User,
            old::Scope::Key => wit::Scope::Key,
            old::Scope::Metadata(k) => wit::Scope::Metadata(k),
        }
    }

    fn period_up(p: old::Period) -> wit::Period {
        match p {
            old::Period::Minute => wit::Period::Minute,
            old::Period::Hour => wit::Period::Hour,
            old::Period::Day => wit::Period::Day,
            old::Period::Week => wit::Period::Week,
            old::Period::Month => wit::Period::Month,
            old::Period::Total => wit::Period::Total,
        }
    }

    fn window_up(w: old::Window) -> wit::Window {
        match w {
            old::Window::Calendar => wit::Window::Calendar,
            old::Window::Rolling => wit::Window::Rolling,
        }
    }

    fn metric_up(m: old::Metric) -> wit::Metric {
        match m {
            old::Metric::Cost => wit::Metric::Cost,
            old::Metric::Tokens => wit::Metric::Tokens,
            old::Metric::Requests => wit::Metric::Requests,
        }
    }

    pub(super) fn budget_up(d: old::BudgetDecision) -> wit::BudgetDecision {
        match d {
            old::BudgetDecision::Deny(d) => wit::BudgetDecision::Deny(denial_up(d)),
            old::BudgetDecision::Allow(g) => wit::BudgetDecision::Allow(wit::BudgetGrant {
                limits: g
                    .limits
                    .into_iter()
                    .map(|l| wit::BudgetLimit {
                        name: l.name,
                        scope: scope_up(l.scope),
                        metric: metric_up(l.metric),
                        period: period_up(l.period),
                        window: window_up(l.window),
                        limit: l.limit,
                        alert_at: l.alert_at,
                    })
                    .collect(),
                downgrade: g.downgrade.map(target_up),
                labels: annotations_up(g.labels),
            }),
        }
    }
}

/// Bindings of the frozen 0.2.0 contract (policy and route hooks, no budget).
mod v0_2 {
    // The generated items are documented in the WIT they come from.
    #![allow(missing_docs)]
    wasmtime::component::bindgen!({
        path: "../wit-legacy/v0.2.0",
        world: "tollgate:plugin/plugin@0.2.0",
        exports: { default: async },
    });

    /// 0.2 has no `usage` import.
    macro_rules! usage_import {
        () => {};
    }
    shared_adapters!();

    pub(super) fn info_up(i: old::PluginInfo) -> wit::PluginInfo {
        wit::PluginInfo {
            name: i.name,
            version: i.version,
            hooks: i
                .hooks
                .into_iter()
                .map(|h| match h {
                    old::Hook::Policy => wit::Hook::Policy,
                    old::Hook::Route => wit::Hook::Route,
                })
                .collect(),
            config_schema: i.config_schema,
        }
    }
}

/// Links every supported contract version's host imports into `linker`.
pub(super) fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    Plugin::add_to_linker::<PluginState, HasSelf<PluginState>>(linker, |s| s)?;
    v0_3::Plugin::add_to_linker::<PluginState, HasSelf<PluginState>>(linker, |s| s)?;
    v0_2::Plugin::add_to_linker::<PluginState, HasSelf<PluginState>>(linker, |s| s)?;
    Ok(())
}

/// A component pre-linked against the current contract, with its exports looked up
/// once. A call binds (and type-checks) only the hook it runs: the generated bindings
/// type-check all seven exports per instance, 6-10% of a fresh call.
pub(super) struct Current {
    pre: InstancePre<PluginState>,
    indices: GuestIndices,
    hooks: Hooks,
}

/// The current contract's guest interface, as components export it.
const GUEST_0_4: &str = "tollgate:plugin/guest@0.4.0";

/// Where the hooks the request path calls sit among the component's exports.
#[derive(Clone, Copy)]
pub(super) struct Hooks {
    policy: ComponentExportIndex,
    route: ComponentExportIndex,
    budget: ComponentExportIndex,
    inspect_request: ComponentExportIndex,
    inspect_response: ComponentExportIndex,
}

impl Current {
    fn new(pre: InstancePre<PluginState>) -> wasmtime::Result<Self> {
        // Refuses a component that lacks any export of the current contract.
        let indices = GuestIndices::new(&pre)?;
        let component = pre.component();
        let guest = component
            .get_export_index(None, GUEST_0_4)
            .ok_or_else(|| wasmtime::format_err!("no exported instance `{GUEST_0_4}`"))?;
        let index = |name: &str| {
            component
                .get_export_index(Some(&guest), name)
                .ok_or_else(|| wasmtime::format_err!("`{GUEST_0_4}` lacks `{name}`"))
        };
        let hooks = Hooks {
            policy: index("policy")?,
            route: index("route")?,
            budget: index("budget")?,
            inspect_request: index("inspect-request")?,
            inspect_response: index("inspect-response")?,
        };
        Ok(Self {
            indices,
            pre,
            hooks,
        })
    }
}

/// An instance of the current contract.
pub(super) struct Bound {
    instance: Instance,
    hooks: Hooks,
    /// Every export, bound once for an instance kept for many calls.
    kept: Option<Box<Exports>>,
}

impl Bound {
    /// Every export, type-checked (for the calls made once per config, so the lookup
    /// is not kept with every fresh instance).
    fn exports(&self, s: &mut Store<PluginState>) -> wasmtime::Result<Exports> {
        let pre = self.instance.instance_pre(&*s);
        GuestIndices::new(&pre)?.load(s, &self.instance)
    }
}

/// A component pre-linked against the contract version it exports.
pub(super) enum GuestPre {
    /// `tollgate:plugin@0.4.0`, the current contract.
    V0_4(Box<Current>),
    /// `tollgate:plugin@0.3.0`.
    V0_3(v0_3::PluginPre<PluginState>),
    /// `tollgate:plugin@0.2.0`.
    V0_2(v0_2::PluginPre<PluginState>),
}

/// One instance of a plugin, whatever contract version it was built against.
pub(super) enum Guest {
    /// `tollgate:plugin@0.4.0`.
    V0_4(Bound),
    /// `tollgate:plugin@0.3.0`.
    V0_3(v0_3::Plugin),
    /// `tollgate:plugin@0.2.0`.
    V0_2(v0_2::Plugin),
}

impl GuestPre {
    /// Binds `pre` to the newest contract version its component exports; the error
    /// names what the current contract expected.
    pub(super) fn new(pre: InstancePre<PluginState>) -> wasmtime::Result<Self> {
        match Current::new(pre.clone()) {
            Ok(p) => Ok(Self::V0_4(Box::new(p))),
            Err(current) => {
                if let Ok(p) = v0_3::PluginPre::new(pre.clone()) {
                    return Ok(Self::V0_3(p));
                }
                match v0_2::PluginPre::new(pre) {
                    Ok(p) => Ok(Self::V0_2(p)),
                    Err(_) => Err(current),
                }
            }
        }
    }

    /// The contract version, for logs and the admin API.
    pub(super) fn version(&self) -> &'static str {
        match self {
            Self::V0_4(_) => "0.4.0",
            Self::V0_3(_) => "0.3.0",
            Self::V0_2(_) => "0.2.0",
        }
    }

    /// A fresh instance in `store`; one to `keep` for many calls binds every export
    /// once, one for a single call only the hook it runs.
    pub(super) async fn instantiate(
        &self,
        store: &mut Store<PluginState>,
        keep: bool,
    ) -> wasmtime::Result<Guest> {
        Ok(match self {
            Self::V0_4(c) => {
                let instance = c.pre.instantiate_async(&mut *store).await?;
                let kept = match keep {
                    true => Some(Box::new(c.indices.load(&mut *store, &instance)?)),
                    false => None,
                };
                Guest::V0_4(Bound {
                    instance,
                    hooks: c.hooks,
                    kept,
                })
            }
            Self::V0_3(p) => Guest::V0_3(p.instantiate_async(store).await?),
            Self::V0_2(p) => Guest::V0_2(p.instantiate_async(store).await?),
        })
    }
}

/// Every version of `tollgate:plugin` the host links, newest first.
pub const VERSIONS: [&str; 3] = ["0.4.0", "0.3.0", "0.2.0"];

/// The answer of a hook an older version does not have; the chain never asks (it is
/// not in their `describe`), so this only guards against a bug.
fn missing_hook<T>() -> wasmtime::Result<T> {
    Err(wasmtime::Error::msg(
        "the plugin's contract version has no such hook",
    ))
}

/// Calls hook `$hook` of a current-contract instance: through its kept exports, or
/// (a single call) bound and type-checked alone.
macro_rules! bound_call {
    ($b:expr, $s:expr, $hook:ident, $call:ident, ($($arg:expr),*): ($($ty:ty),*) -> $ret:ty) => {
        match &$b.kept {
            Some(e) => e.$call(&mut *$s, $($arg),*).await,
            None => {
                let f = $b
                    .instance
                    .get_typed_func::<($($ty,)*), ($ret,)>(&mut *$s, $b.hooks.$hook)?;
                Ok(f.call_async(&mut *$s, ($($arg,)*)).await?.0)
            }
        }
    };
}

impl Guest {
    /// `describe`, in the current types.
    pub(super) async fn describe(
        &self,
        s: &mut Store<PluginState>,
    ) -> wasmtime::Result<PluginInfo> {
        match self {
            Self::V0_4(b) => b.exports(s)?.call_describe(s).await,
            Self::V0_3(p) => p
                .tollgate_plugin_guest()
                .call_describe(s)
                .await
                .map(v0_3::info_up),
            Self::V0_2(p) => p
                .tollgate_plugin_guest()
                .call_describe(s)
                .await
                .map(v0_2::info_up),
        }
    }

    /// `validate-config` (the same in every version).
    pub(super) async fn validate_config(
        &self,
        s: &mut Store<PluginState>,
        config: &str,
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            Self::V0_4(b) => b.exports(s)?.call_validate_config(s, config).await,
            Self::V0_3(p) => {
                p.tollgate_plugin_guest()
                    .call_validate_config(s, config)
                    .await
            }
            Self::V0_2(p) => {
                p.tollgate_plugin_guest()
                    .call_validate_config(s, config)
                    .await
            }
        }
    }

    /// The policy hook.
    pub(super) async fn policy(
        &self,
        s: &mut Store<PluginState>,
        ctx: &RequestContext,
    ) -> wasmtime::Result<Decision> {
        match self {
            Self::V0_4(b) => {
                bound_call!(b, s, policy, call_policy, (ctx): (&RequestContext) -> Decision)
            }
            Self::V0_3(p) => p
                .tollgate_plugin_guest()
                .call_policy(s, &v0_3::context_down(ctx))
                .await
                .map(v0_3::decision_up),
            Self::V0_2(p) => p
                .tollgate_plugin_guest()
                .call_policy(s, &v0_2::context_down(ctx))
                .await
                .map(v0_2::decision_up),
        }
    }

    /// The route hook.
    pub(super) async fn route(
        &self,
        s: &mut Store<PluginState>,
        ctx: &RequestContext,
    ) -> wasmtime::Result<Option<RoutePlan>> {
        match self {
            Self::V0_4(b) => {
                bound_call!(b, s, route, call_route, (ctx): (&RequestContext) -> Option<RoutePlan>)
            }
            Self::V0_3(p) => p
                .tollgate_plugin_guest()
                .call_route(s, &v0_3::context_down(ctx))
                .await
                .map(|plan| plan.map(v0_3::plan_up)),
            Self::V0_2(p) => p
                .tollgate_plugin_guest()
                .call_route(s, &v0_2::context_down(ctx))
                .await
                .map(|plan| plan.map(v0_2::plan_up)),
        }
    }

    /// The budget hook (from 0.3).
    pub(super) async fn budget(
        &self,
        s: &mut Store<PluginState>,
        ctx: &RequestContext,
        target: &RouteTarget,
    ) -> wasmtime::Result<wit::BudgetDecision> {
        match self {
            Self::V0_4(b) => bound_call!(
                b, s, budget, call_budget,
                (ctx, target): (&RequestContext, &RouteTarget) -> wit::BudgetDecision
            ),
            Self::V0_3(p) => p
                .tollgate_plugin_guest()
                .call_budget(s, &v0_3::context_down(ctx), &v0_3::target_down(target))
                .await
                .map(v0_3::budget_up),
            Self::V0_2(_) => missing_hook(),
        }
    }

    /// A guardrail hook (from 0.4): `inspect-request` on a conversation,
    /// `inspect-response` on an answer.
    pub(super) async fn inspect(
        &self,
        s: &mut Store<PluginState>,
        ctx: &RequestContext,
        subject: Subject<'_>,
    ) -> wasmtime::Result<wit::Verdict> {
        let Self::V0_4(b) = self else {
            return missing_hook();
        };
        match subject {
            Subject::Request(c) => bound_call!(
                b, s, inspect_request, call_inspect_request,
                (ctx, c): (&RequestContext, &wit::Conversation) -> wit::Verdict
            ),
            Subject::Response(a) => bound_call!(
                b, s, inspect_response, call_inspect_response,
                (ctx, a): (&RequestContext, &wit::Answer) -> wit::Verdict
            ),
        }
    }
}
