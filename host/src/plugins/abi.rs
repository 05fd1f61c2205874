//! Every version of the plugin contract the host speaks, side by side (as Spin links
//! its v1 and v2 worlds): the current `tollgate:plugin@0.3.0` from `wit/`, and each
//! older version from its frozen copy in `wit-legacy/`. One [`Linker`] holds them all
//! (wasmtime keys 0.x packages by minor version, so they never collide); a component
//! is bound to the version it exports, and calls into an older plugin are adapted to
//! the current types here, so the rest of the host only ever sees 0.3.
//!
//! Adding a version: freeze `wit/` into `wit-legacy/v<old>/`, bump `wit/`, add a
//! module like [`v0_2`] with its `Host` impl delegating to the current one, a variant
//! of [`GuestPre`] and [`Guest`], and converters.

use super::bindings::{
    Decision, Plugin, PluginInfo, PluginPre, RequestContext, RoutePlan, RouteTarget, wit,
};
use super::sandbox::PluginState;
use wasmtime::Store;
use wasmtime::component::{HasSelf, InstancePre, Linker};

/// Bindings of the frozen 0.2.0 contract (policy and route hooks, no budget).
mod v0_2 {
    // The generated items are documented in the WIT they come from.
    #![allow(missing_docs)]
    wasmtime::component::bindgen!({
        path: "../wit-legacy/v0.2.0",
        world: "tollgate:plugin/plugin@0.2.0",
        exports: { default: async },
    });
}

use v0_2::tollgate::plugin::types as old;

/// Links every supported contract version's host imports into `linker`.
pub(super) fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    Plugin::add_to_linker::<PluginState, HasSelf<PluginState>>(linker, |s| s)?;
    v0_2::Plugin::add_to_linker::<PluginState, HasSelf<PluginState>>(linker, |s| s)?;
    Ok(())
}

/// A component pre-linked against the contract version it exports.
pub(super) enum GuestPre {
    /// `tollgate:plugin@0.3.0`, the current contract.
    V0_3(PluginPre<PluginState>),
    /// `tollgate:plugin@0.2.0`.
    V0_2(v0_2::PluginPre<PluginState>),
}

/// One instance of a plugin, whatever contract version it was built against.
pub(super) enum Guest {
    /// `tollgate:plugin@0.3.0`.
    V0_3(Plugin),
    /// `tollgate:plugin@0.2.0`.
    V0_2(v0_2::Plugin),
}

impl GuestPre {
    /// Binds `pre` to the newest contract version its component exports; the error
    /// names what the current contract expected.
    pub(super) fn new(pre: InstancePre<PluginState>) -> wasmtime::Result<Self> {
        match PluginPre::new(pre.clone()) {
            Ok(p) => Ok(Self::V0_3(p)),
            Err(current) => match v0_2::PluginPre::new(pre) {
                Ok(p) => Ok(Self::V0_2(p)),
                Err(_) => Err(current),
            },
        }
    }

    /// The contract version, for logs and the admin API.
    pub(super) fn version(&self) -> &'static str {
        match self {
            Self::V0_3(_) => "0.3.0",
            Self::V0_2(_) => "0.2.0",
        }
    }

    /// A fresh instance in `store`.
    pub(super) async fn instantiate(
        &self,
        store: &mut Store<PluginState>,
    ) -> wasmtime::Result<Guest> {
        Ok(match self {
            Self::V0_3(p) => Guest::V0_3(p.instantiate_async(store).await?),
            Self::V0_2(p) => Guest::V0_2(p.instantiate_async(store).await?),
        })
    }
}

impl Guest {
    /// `describe`, in the current types.
    pub(super) async fn describe(
        &self,
        s: &mut Store<PluginState>,
    ) -> wasmtime::Result<PluginInfo> {
        match self {
            Self::V0_3(p) => p.tollgate_plugin_guest().call_describe(s).await,
            Self::V0_2(p) => p
                .tollgate_plugin_guest()
                .call_describe(s)
                .await
                .map(info_up),
        }
    }

    /// `validate-config` (the same in every version).
    pub(super) async fn validate_config(
        &self,
        s: &mut Store<PluginState>,
        config: &str,
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
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
            Self::V0_3(p) => p.tollgate_plugin_guest().call_policy(s, ctx).await,
            Self::V0_2(p) => p
                .tollgate_plugin_guest()
                .call_policy(s, &context_down(ctx))
                .await
                .map(decision_up),
        }
    }

    /// The route hook.
    pub(super) async fn route(
        &self,
        s: &mut Store<PluginState>,
        ctx: &RequestContext,
    ) -> wasmtime::Result<Option<RoutePlan>> {
        match self {
            Self::V0_3(p) => p.tollgate_plugin_guest().call_route(s, ctx).await,
            Self::V0_2(p) => p
                .tollgate_plugin_guest()
                .call_route(s, &context_down(ctx))
                .await
                .map(|plan| plan.map(plan_up)),
        }
    }

    /// The budget hook. Versions before 0.3 have none and never list it in
    /// `describe`, so the chain never asks them; should it, they grant nothing.
    pub(super) async fn budget(
        &self,
        s: &mut Store<PluginState>,
        ctx: &RequestContext,
        target: &RouteTarget,
    ) -> wasmtime::Result<wit::BudgetDecision> {
        match self {
            Self::V0_3(p) => p.tollgate_plugin_guest().call_budget(s, ctx, target).await,
            Self::V0_2(_) => Ok(wit::BudgetDecision::Allow(wit::BudgetGrant {
                limits: Vec::new(),
                downgrade: None,
                labels: Vec::new(),
            })),
        }
    }
}

// A 0.2 plugin's host calls go to the one implementation of the current contract.
impl old::Host for PluginState {}

impl v0_2::tollgate::plugin::host::Host for PluginState {
    fn log(&mut self, level: old::LogLevel, message: String) {
        let level = match level {
            old::LogLevel::Trace => wit::LogLevel::Trace,
            old::LogLevel::Debug => wit::LogLevel::Debug,
            old::LogLevel::Info => wit::LogLevel::Info,
            old::LogLevel::Warn => wit::LogLevel::Warn,
            old::LogLevel::Error => wit::LogLevel::Error,
        };
        super::bindings::tollgate::plugin::host::Host::log(self, level, message)
    }

    fn config(&mut self) -> String {
        super::bindings::tollgate::plugin::host::Host::config(self)
    }

    fn now_ms(&mut self) -> u64 {
        super::bindings::tollgate::plugin::host::Host::now_ms(self)
    }

    fn request_body(&mut self) -> String {
        super::bindings::tollgate::plugin::host::Host::request_body(self)
    }
}

fn context_down(c: &RequestContext) -> old::RequestContext {
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

fn decision_up(d: old::Decision) -> Decision {
    match d {
        old::Decision::Allow => Decision::Allow,
        old::Decision::AllowWith(labels) => Decision::AllowWith(annotations_up(labels)),
        old::Decision::Deny(d) => Decision::Deny(wit::Denial {
            status: d.status,
            error_type: d.error_type,
            message: d.message,
        }),
    }
}

fn plan_up(p: old::RoutePlan) -> RoutePlan {
    RoutePlan {
        strategy: match p.strategy {
            old::Strategy::Single => wit::Strategy::Single,
            old::Strategy::Fallback => wit::Strategy::Fallback,
            old::Strategy::LoadBalance => wit::Strategy::LoadBalance,
        },
        targets: p
            .targets
            .into_iter()
            .map(|t| RouteTarget {
                provider: t.provider,
                model: t.model,
                weight: t.weight,
                max_tokens_cap: t.max_tokens_cap,
            })
            .collect(),
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

fn info_up(i: old::PluginInfo) -> PluginInfo {
    PluginInfo {
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
