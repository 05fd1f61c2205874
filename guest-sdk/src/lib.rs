//! Write Tollgate policy, routing and budget plugins in idiomatic Rust.
//!
//! A plugin is a type implementing [`Plugin`] in an impl marked
//! [`#[tollgate_guest::plugin]`](macro@plugin), exported with [`export_plugin!`] and built
//! for `wasm32-wasip2`. The SDK turns the host's raw WIT interface
//! (`tollgate:plugin@0.4.0`) into typed config, a [`Request`] with helpers,
//! [`Decision`] constructors for the policy hook, [`RoutePlan`] builders for the
//! route hook, [`BudgetDecision`] builders for the budget hook and [`Verdict`] and
//! [`Rewrite`] for the guardrail hooks; [`testing`] runs the
//! same code natively in `cargo test`. The WIT records and enums are used as they are
//! generated, with the SDK's helpers and derives added.
//!
//! ```
//! use serde::Deserialize;
//! use tollgate_guest::{Decision, Plugin, Request};
//!
//! /// Refuses streamed requests for one model.
//! pub struct NoStream;
//!
//! #[derive(Deserialize)]
//! #[serde(deny_unknown_fields)]
//! pub struct Config {
//!     model: String,
//! }
//!
//! #[tollgate_guest::plugin]
//! impl Plugin for NoStream {
//!     const NAME: &'static str = "no-stream";
//!     const VERSION: &'static str = env!("CARGO_PKG_VERSION");
//!     type Config = Config;
//!
//!     fn policy(config: &Config, req: &Request) -> Decision {
//!         if req.is_stream() && req.model() == config.model {
//!             return Decision::invalid(format!("model '{}' may not be streamed", config.model));
//!         }
//!         Decision::allow()
//!     }
//! }
//!
//! tollgate_guest::export_plugin!(NoStream);
//!
//! # fn main() {
//! use tollgate_guest::Hook;
//! use tollgate_guest::testing::{self, TestRequest};
//!
//! // `#[tollgate_guest::plugin]` saw `policy`: the host will call it.
//! assert_eq!(testing::describe::<NoStream>().hooks, [Hook::Policy]);
//! let denied = TestRequest::new()
//!     .model("claude-x")
//!     .stream(true)
//!     .run::<NoStream>(r#"{"model": "claude-x"}"#)
//!     .unwrap();
//! assert_eq!(denied.denial().map(|d| d.status), Some(400));
//! # }
//! ```
//!
//! A router implements [`Plugin::route`] (so `describe` reports [`Hook::Route`]):
//!
//! ```
//! use tollgate_guest::{NoConfig, Plugin, Request, RoutePlan, Target};
//!
//! /// Sends haiku requests to a second Anthropic account, everything else falls back.
//! pub struct Split;
//!
//! #[tollgate_guest::plugin]
//! impl Plugin for Split {
//!     const NAME: &'static str = "split";
//!     const VERSION: &'static str = env!("CARGO_PKG_VERSION");
//!     type Config = NoConfig;
//!
//!     fn route(_: &NoConfig, req: &Request) -> Option<RoutePlan> {
//!         if req.model().starts_with("claude-haiku") {
//!             return Some(RoutePlan::single(Target::new("anthropic-b")));
//!         }
//!         Some(RoutePlan::fallback([Target::new("anthropic"), Target::new("openai").model("gpt-4o")]))
//!     }
//! }
//!
//! tollgate_guest::export_plugin!(Split);
//!
//! # fn main() {
//! let plan = tollgate_guest::testing::TestRequest::new()
//!     .model("claude-haiku-4-5")
//!     .run_route::<Split>("{}")
//!     .unwrap()
//!     .expect("routed");
//! assert_eq!(plan.targets[0].provider, "anthropic-b");
//! # }
//! ```
//!
//! A budget plugin implements [`Plugin::budget`] (so `describe` reports
//! [`Hook::Budget`]). It grants [`BudgetLimit`]s that the host then enforces atomically
//! (check, reserve, 429 when exhausted, alerts), and may read usage with
//! [`Request::usage`] to downgrade:
//!
//! ```
//! use tollgate_guest::{
//!     BudgetDecision, BudgetLimit, Metric, NoConfig, Period, Plugin, Request, Scope, Target,
//!     Window,
//! };
//!
//! /// $5 a day per team; haiku from $4 on.
//! pub struct TeamBudget;
//!
//! #[tollgate_guest::plugin]
//! impl Plugin for TeamBudget {
//!     const NAME: &'static str = "team-budget";
//!     const VERSION: &'static str = env!("CARGO_PKG_VERSION");
//!     type Config = NoConfig;
//!
//!     fn budget(_: &NoConfig, req: &Request, target: &Target) -> BudgetDecision {
//!         let limit = BudgetLimit::new("team-daily", Scope::Team, Metric::Cost, Period::Day, 5.0)
//!             .alert_at([80, 100]);
//!         let decision = BudgetDecision::allow().limit(limit);
//!         let spent = req.usage(&Scope::Team, Period::Day, Window::Calendar).current(Metric::Cost);
//!         let cheap = Target::new(target.provider.as_str()).model("claude-haiku-4-5");
//!         if spent >= 4.0 && target.model != cheap.model {
//!             return decision.downgrade(cheap).label("budget", "downgraded");
//!         }
//!         decision
//!     }
//! }
//!
//! tollgate_guest::export_plugin!(TeamBudget);
//!
//! # fn main() {
//! use tollgate_guest::UsageReport;
//! use tollgate_guest::testing::TestRequest;
//!
//! let spent = UsageReport { cost_usd: 4.2, ..Default::default() };
//! let req = TestRequest::new().team("eng").usage(Scope::Team, Period::Day, Window::Calendar, spent);
//! let d = req.run_budget::<TeamBudget>("{}", &Target::new("anthropic")).unwrap();
//! assert_eq!(d.limits()[0].name, "team-daily");
//! assert_eq!(d.downgrade_target(), Some(&Target::new("anthropic").model("claude-haiku-4-5")));
//! # }
//! ```

#![warn(missing_docs)]

// Lets `#[plugin]` expansions in this crate's own tests name it `::tollgate_guest`.
#[cfg(test)]
extern crate self as tollgate_guest;

mod adapter;
mod annotation;
#[doc(hidden)]
#[allow(missing_docs)]
pub mod bindings;
mod budget;
mod decision;
mod glob;
mod guard;
mod host;
mod request;
mod route;
pub mod testing;

pub use bindings::tollgate::plugin::types::{
    Annotation, Answer, BudgetDecision, BudgetGrant, BudgetLimit, Conversation, Decision, Denial,
    Endpoint, Finding, Hook, LogLevel, Metric, Period, Refusal, RetryOn, Rewrite, Role, RoutePlan,
    RouteTarget as Target, Scope, Strategy, TextEdit, TextPart, ToolCall, UsageReport, Verdict,
    Window,
};
pub use glob::glob_match;
pub use guard::{MAX_ADDED_BYTES, MAX_EDITS};

/// Most bytes of a prepared config the host keeps ([`Plugin::prepare`]); a larger one
/// is dropped and the hooks parse the JSON config as without one.
pub const MAX_PREPARED_BYTES: usize = 1 << 20;
pub use request::Request;
pub use tollgate_guest_macros::plugin;

/// Compiles the Rust examples in the plugin author guide.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// Implementation details of [`export_plugin!`] and [`macro@plugin`]; not part of the
/// public API.
#[doc(hidden)]
pub mod __private {
    use crate::Hook;
    pub use crate::adapter::Adapter;

    /// The hooks a [`Plugin`](crate::Plugin) implements, as `describe` reports them.
    ///
    /// Only `#[tollgate_guest::plugin]` implements this, from the hook methods the
    /// `impl Plugin` block defines, so the list cannot drift from the code.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` has no hook list: put `#[tollgate_guest::plugin]` on its `impl Plugin for {Self}`",
        label = "needs `#[tollgate_guest::plugin]` on this impl",
        note = "the attribute lists the hooks the host calls (`policy`, `route`, `budget`) from the methods the impl defines"
    )]
    pub trait PluginHooks {
        /// Hooks the impl defines, in the order policy, route, budget, inspect-request,
        /// inspect-response.
        const HOOKS: &'static [Hook];
    }
}

/// A Tollgate plugin: any of a policy hook, a route hook, a budget hook and the two
/// guardrail hooks (`inspect_request`, `inspect_response`).
///
/// The host creates a fresh instance for every call, so a plugin keeps no state: every
/// method is an associated function that receives the parsed config.
///
/// Every hook method has a default (policy allows, route returns `None`, budget allows
/// without limits), and the host only calls the hooks `describe` lists. Mark the impl
/// with [`#[tollgate_guest::plugin]`](macro@plugin): it lists exactly the hook methods
/// the impl defines ([`Hook::Policy`] for [`Plugin::policy`], [`Hook::Route`] for
/// [`Plugin::route`], [`Hook::Budget`] for [`Plugin::budget`]), so an overridden hook is
/// never skipped and a default one never called. Without the attribute the impl does not
/// compile: "`MyPlugin` has no hook list: put `#[tollgate_guest::plugin]` on its
/// `impl Plugin for MyPlugin`".
///
/// ```
/// use tollgate_guest::{Decision, NoConfig, Plugin, Request};
///
/// pub struct AllowAll;
///
/// #[tollgate_guest::plugin]
/// impl Plugin for AllowAll {
///     const NAME: &'static str = "allow-all";
///     const VERSION: &'static str = "0.1.0";
///     type Config = NoConfig;
///
///     fn policy(_: &NoConfig, _: &Request) -> Decision {
///         Decision::allow()
///     }
/// }
/// ```
///
/// ```compile_fail,E0277
/// # use tollgate_guest::{NoConfig, Plugin};
/// pub struct Forgotten;
///
/// impl Plugin for Forgotten {
///     // error: `Forgotten` has no hook list: put `#[tollgate_guest::plugin]` on ...
///     const NAME: &'static str = "forgotten";
///     const VERSION: &'static str = "0.1.0";
///     type Config = NoConfig;
/// }
/// ```
pub trait Plugin: __private::PluginHooks + 'static {
    /// Short machine name, e.g. `metadata-policy`; shown in logs and denials.
    const NAME: &'static str;
    /// The plugin's own semantic version, usually `env!("CARGO_PKG_VERSION")`.
    const VERSION: &'static str;

    /// The plugin's config, parsed from the tenant's JSON with serde.
    ///
    /// Use `#[serde(deny_unknown_fields)]` so typos are reported, and `#[serde(default)]`
    /// for optional fields: the host passes `{}` when the tenant gave no config.
    /// Plugins without config can use [`NoConfig`].
    type Config: serde::de::DeserializeOwned + 'static;

    /// JSON Schema of [`Plugin::Config`], for documentation and tooling.
    fn config_schema() -> &'static str {
        r#"{"type":"object"}"#
    }

    /// Checks a parsed config beyond what serde enforces; the error names the bad field.
    fn validate(config: &Self::Config) -> Result<(), String> {
        let _ = config;
        Ok(())
    }

    /// The config in a form [`Plugin::from_prepared`] reads back faster than the JSON is
    /// parsed and checked (compiled patterns, say); `None` (the default) keeps nothing.
    ///
    /// The host runs this once, when it checks a tenant's config, keeps the bytes (at
    /// most [`MAX_PREPARED_BYTES`]; more is dropped) with the config, and hands them to
    /// every later call, so a fresh instance skips the parse. Only this plugin's own
    /// output is ever handed back.
    fn prepare(config: &Self::Config) -> Option<Vec<u8>> {
        let _ = config;
        None
    }

    /// Reads back what [`Plugin::prepare`] made; `None` falls back to parsing and
    /// checking the JSON.
    fn from_prepared(data: &[u8]) -> Option<Self::Config> {
        let _ = data;
        None
    }

    /// Decides whether a request may proceed; runs before routing. Defaults to allow.
    fn policy(config: &Self::Config, req: &Request) -> Decision {
        let _ = (config, req);
        Decision::allow()
    }

    /// Chooses where the request is served; runs after every policy allowed it.
    ///
    /// `None` leaves the choice to later plugins in the chain and then the tenant's
    /// default provider. Defaults to `None`.
    fn route(config: &Self::Config, req: &Request) -> Option<RoutePlan> {
        let _ = (config, req);
        None
    }

    /// Grants the limits the request is held to; runs after routing, with `target` the
    /// plan's first target (its model resolved).
    ///
    /// The host then checks every granted limit and reserves the request's estimate
    /// atomically, denies with a 429 naming an exhausted limit, raises the limits'
    /// alerts, and serves the request on the grant's downgrade target if it has one.
    /// Defaults to allowing with no limits.
    fn budget(config: &Self::Config, req: &Request, target: &Target) -> BudgetDecision {
        let _ = (config, req, target);
        BudgetDecision::allow()
    }

    /// Checks, flags or rewrites what the request sends to the model; runs after every
    /// policy allowed it, before routing. `conversation` holds the system prompt and
    /// every message's text (and tool results) as [`TextPart`]s, the same whether the
    /// client spoke Anthropic or OpenAI; edit them with [`Rewrite`]. Defaults to allow.
    fn inspect_request(
        config: &Self::Config,
        req: &Request,
        conversation: &Conversation,
    ) -> Verdict {
        let _ = (config, req, conversation);
        Verdict::allow()
    }

    /// Checks, flags or rewrites the model's answer before the client receives it. For
    /// a stream the tenant set to `observe`, it runs after the answer was delivered
    /// (`answer.delivered`): a denial or an edit is then only recorded. Defaults to allow.
    fn inspect_response(config: &Self::Config, req: &Request, answer: &Answer) -> Verdict {
        let _ = (config, req, answer);
        Verdict::allow()
    }
}

/// Config for plugins that take none: accepts only `{}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoConfig {}

/// Exports a [`Plugin`] implementation as the component's `guest` interface.
///
/// Invoke it once per plugin crate, at the crate root: `tollgate_guest::export_plugin!(MyPlugin);`
/// It expands to nothing on non-wasm targets, where the component's export names
/// would not link (native tests use [`testing`] instead).
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        type __TollgatePluginExport = $crate::__private::Adapter<$plugin>;
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::__tollgate_export_world!(
            __TollgatePluginExport with_types_in $crate::bindings
        );
    };
}
