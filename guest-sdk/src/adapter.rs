//! Glue between a [`Plugin`] and the generated `guest` export, shared with [`crate::testing`].

use crate::bindings::exports::tollgate::plugin::guest::Guest;
use crate::bindings::tollgate::plugin::types::{PluginInfo, RequestContext};
use crate::host::{HostApi, WasmHost};
use crate::{
    Answer, BudgetDecision, Conversation, Decision, LogLevel, Plugin, Request, RoutePlan, Target,
    Verdict,
};
use std::any::Any;
use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;

/// Implements the generated `Guest` trait for any [`Plugin`]; named by [`crate::export_plugin!`].
pub struct Adapter<P>(PhantomData<fn() -> P>);

impl<P: Plugin> Guest for Adapter<P> {
    fn describe() -> PluginInfo {
        describe::<P>()
    }

    fn validate_config(config: String) -> Result<(), String> {
        check_and_keep::<P>(&config, &WasmHost)
    }

    fn policy(ctx: RequestContext) -> Decision {
        policy::<P>(ctx, &WasmHost)
    }

    fn route(ctx: RequestContext) -> Option<RoutePlan> {
        route::<P>(ctx, &WasmHost)
    }

    fn budget(ctx: RequestContext, target: Target) -> BudgetDecision {
        budget::<P>(ctx, target, &WasmHost)
    }

    fn inspect_request(ctx: RequestContext, conversation: Conversation) -> Verdict {
        inspect_request::<P>(ctx, &conversation, &WasmHost)
    }

    fn inspect_response(ctx: RequestContext, answer: Answer) -> Verdict {
        inspect_response::<P>(ctx, &answer, &WasmHost)
    }
}

/// `describe`: the plugin's consts, the hooks `#[tollgate_guest::plugin]` derived and
/// the config schema.
pub(crate) fn describe<P: Plugin>() -> PluginInfo {
    PluginInfo {
        name: P::NAME.into(),
        version: P::VERSION.into(),
        hooks: P::HOOKS.to_vec(),
        config_schema: P::config_schema().into(),
    }
}

/// Parses config JSON into `P::Config`; the error starts with `config:` and names the
/// offending field path (e.g. `config: allowed_values.env: invalid type ...`).
pub(crate) fn parse_config<P: Plugin>(json: &str) -> Result<P::Config, String> {
    let json = if json.trim().is_empty() { "{}" } else { json };
    let mut de = serde_json::Deserializer::from_str(json);
    let config = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let msg = describe_json_error(e.inner());
        if e.inner().is_syntax() || e.inner().is_eof() {
            format!("config: not valid JSON: {msg}")
        } else if matches!(path.as_str(), "" | "." | "?") {
            format!("config: {msg}")
        } else {
            format!("config: {path}: {msg}")
        }
    })?;
    de.end()
        .map_err(|e| format!("config: not valid JSON: {e}"))?;
    Ok(config)
}

/// A serde_json error without the position for data errors: the host re-serialises the
/// tenant's config, so line and column would not point into anything the author wrote.
fn describe_json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    if e.is_data() {
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        if let Some(stripped) = text.strip_suffix(&suffix) {
            return stripped.to_string();
        }
    }
    text
}

/// `validate-config`: parse, then [`Plugin::validate`] (its error prefixed with `config:`).
pub(crate) fn validate_config<P: Plugin>(json: &str) -> Result<P::Config, String> {
    let config = parse_config::<P>(json)?;
    P::validate(&config).map_err(|e| format!("config: {e}"))?;
    Ok(config)
}

/// [`validate_config`] for a hook call: the host checked this config before it took
/// effect, so it almost always parses, and tracking each field's path (an allocation per
/// key) is done again only to word the error of one that does not.
fn recheck_config<P: Plugin>(json: &str) -> Result<P::Config, String> {
    let text = if json.trim().is_empty() { "{}" } else { json };
    match serde_json::from_str::<P::Config>(text) {
        Ok(config) => P::validate(&config)
            .map(|()| config)
            .map_err(|e| format!("config: {e}")),
        Err(_) => validate_config::<P>(json),
    }
}

/// The `validate-config` export: checks the config, then hands the host its
/// [`Plugin::prepare`]d form so that every later call can skip the parse.
pub(crate) fn check_and_keep<P: Plugin>(json: &str, host: &dyn HostApi) -> Result<(), String> {
    let config = validate_config::<P>(json)?;
    if let Some(data) = P::prepare(&config) {
        host.keep_prepared(&data);
    }
    Ok(())
}

thread_local! {
    /// The last config that parsed and validated, with its JSON. A fresh instance starts
    /// empty; a warm one (`reuse_instance`) is handed the same JSON on every call and
    /// parses it once.
    static CONFIG: RefCell<Option<(String, Rc<dyn Any>)>> = const { RefCell::new(None) };
}

/// Forgets the cached config, as a fresh instance starts.
pub(crate) fn forget_config() {
    CONFIG.with_borrow_mut(|slot| *slot = None);
}

/// Fetches and checks the config for a hook call; on failure logs the detail at error
/// level and returns `None`.
fn hook_config<P: Plugin>(host: &dyn HostApi) -> Option<Rc<P::Config>> {
    let json = host.config();
    let cached = CONFIG.with_borrow(|c| match c {
        Some((seen, config)) if *seen == json => config.clone().downcast::<P::Config>().ok(),
        _ => None,
    });
    if cached.is_some() {
        return cached;
    }
    // What the plugin prepared when the host checked this same config, if it can read
    // it back; else the JSON is parsed and checked again.
    let prepared = host.prepared();
    let read_back = (!prepared.is_empty())
        .then(|| P::from_prepared(&prepared))
        .flatten();
    let config = match read_back {
        Some(c) => Ok(c),
        None => recheck_config::<P>(&json),
    };
    match config {
        Ok(c) => {
            let c = Rc::new(c);
            let any: Rc<dyn Any> = c.clone();
            CONFIG.with_borrow_mut(|slot| *slot = Some((json, any)));
            Some(c)
        }
        Err(e) => {
            host.log(
                LogLevel::Error,
                &format!("plugin '{}' rejected its config: {e}", P::NAME),
            );
            None
        }
    }
}

/// The `500 api_error` message for a config that fails at request time.
fn misconfigured<P: Plugin>() -> String {
    format!(
        "plugin '{}' is misconfigured; contact the gateway administrator",
        P::NAME
    )
}

/// `policy`: fetch and check the config, then run [`Plugin::policy`].
///
/// A config that no longer parses or validates denies with `500 api_error`; the detail
/// goes to the gateway log, not to the caller.
pub(crate) fn policy<P: Plugin>(ctx: RequestContext, host: &dyn HostApi) -> Decision {
    let Some(config) = hook_config::<P>(host) else {
        return Decision::deny(500, "api_error", misconfigured::<P>());
    };
    let req = Request::new(ctx, host);
    P::policy(&config, &req)
}

/// `budget`: fetch and check the config, then run [`Plugin::budget`] on `target`.
///
/// Like `policy`, a config that no longer parses or validates denies with
/// `500 api_error` (an unchecked budget must not let spend through) and logs the detail.
pub(crate) fn budget<P: Plugin>(
    ctx: RequestContext,
    target: Target,
    host: &dyn HostApi,
) -> BudgetDecision {
    let Some(config) = hook_config::<P>(host) else {
        return BudgetDecision::deny(500, "api_error", misconfigured::<P>());
    };
    let req = Request::new(ctx, host);
    P::budget(&config, &req, &target)
}

/// `inspect-request`: fetch and check the config, then run [`Plugin::inspect_request`].
///
/// A config that no longer parses or validates denies with `500 api_error`: an
/// unchecked guardrail must not let the text through.
pub(crate) fn inspect_request<P: Plugin>(
    ctx: RequestContext,
    conversation: &Conversation,
    host: &dyn HostApi,
) -> Verdict {
    let Some(config) = hook_config::<P>(host) else {
        return Verdict::deny(500, "api_error", misconfigured::<P>());
    };
    let req = Request::new(ctx, host);
    P::inspect_request(&config, &req, conversation)
}

/// `inspect-response`: like [`inspect_request`], for [`Plugin::inspect_response`].
pub(crate) fn inspect_response<P: Plugin>(
    ctx: RequestContext,
    answer: &Answer,
    host: &dyn HostApi,
) -> Verdict {
    let Some(config) = hook_config::<P>(host) else {
        return Verdict::deny(500, "api_error", misconfigured::<P>());
    };
    let req = Request::new(ctx, host);
    P::inspect_response(&config, &req, answer)
}

/// `route`: fetch and check the config, then run [`Plugin::route`].
///
/// A config that no longer parses or validates logs the detail and then panics (a trap
/// in wasm), so the host fails the request (or skips the plugin if it is fail-open)
/// rather than silently serving it from the default provider.
pub(crate) fn route<P: Plugin>(ctx: RequestContext, host: &dyn HostApi) -> Option<RoutePlan> {
    let Some(config) = hook_config::<P>(host) else {
        panic!("plugin '{}' is misconfigured", P::NAME);
    };
    let req = Request::new(ctx, host);
    P::route(&config, &req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        Annotation, BudgetLimit, Endpoint, Hook, Metric, Period, Scope, UsageReport, Window,
    };
    use std::cell::RefCell;

    struct Strict;

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct StrictConfig {
        #[serde(default)]
        n: u8,
    }

    #[crate::plugin]
    impl Plugin for Strict {
        const NAME: &'static str = "strict";
        const VERSION: &'static str = "0.1.0";
        type Config = StrictConfig;

        fn validate(c: &StrictConfig) -> Result<(), String> {
            if c.n > 10 {
                Err("n: at most 10".into())
            } else {
                Ok(())
            }
        }

        fn policy(_: &StrictConfig, _: &Request) -> Decision {
            Decision::allow()
        }
    }

    /// Routes everything to one provider; `n` becomes the retry count.
    struct Router;

    #[crate::plugin]
    impl Plugin for Router {
        const NAME: &'static str = "router";
        const VERSION: &'static str = "0.1.0";
        type Config = StrictConfig;

        fn validate(c: &StrictConfig) -> Result<(), String> {
            Strict::validate(c)
        }

        fn route(c: &StrictConfig, req: &Request) -> Option<RoutePlan> {
            Some(RoutePlan::single(Target::new("anthropic").model(req.model())).retries(c.n.into()))
        }
    }

    /// Caps the tenant at `n` dollars a day; downgrades on the host's reading.
    struct Budgeter;

    #[crate::plugin]
    impl Plugin for Budgeter {
        const NAME: &'static str = "budgeter";
        const VERSION: &'static str = "0.1.0";
        type Config = StrictConfig;

        fn validate(c: &StrictConfig) -> Result<(), String> {
            Strict::validate(c)
        }

        fn budget(c: &StrictConfig, req: &Request, target: &Target) -> BudgetDecision {
            let limit = BudgetLimit::new(
                "daily",
                Scope::Tenant,
                Metric::Cost,
                Period::Day,
                c.n.into(),
            )
            .alert_at([80]);
            let used = req.usage(&Scope::Tenant, Period::Day, Window::Calendar);
            BudgetDecision::allow()
                .limit(limit)
                .downgrade(Target::new(target.provider.as_str()).model("cheap"))
                .label(
                    "used",
                    format!("{}@{}", used.cost_usd, used.value.unwrap_or_default()),
                )
        }
    }

    struct FakeHost {
        config: &'static str,
        logs: RefCell<Vec<(LogLevel, String)>>,
    }

    impl HostApi for FakeHost {
        fn log(&self, level: LogLevel, message: &str) {
            self.logs.borrow_mut().push((level, message.into()));
        }
        fn config(&self) -> String {
            self.config.into()
        }
        fn now_ms(&self) -> u64 {
            0
        }
        fn request_body(&self) -> String {
            String::new()
        }
        fn keep_prepared(&self, _: &[u8]) {}
        fn prepared(&self) -> Vec<u8> {
            Vec::new()
        }
        fn usage(&self, _: &Scope, value: Option<&str>, _: Period, _: Window) -> UsageReport {
            UsageReport {
                value: value.map(String::from),
                cost_usd: 2.5,
                ..UsageReport::default()
            }
        }
    }

    fn host(config: &'static str) -> FakeHost {
        FakeHost {
            config,
            logs: RefCell::new(vec![]),
        }
    }

    fn ctx() -> RequestContext {
        RequestContext {
            request_id: "r".into(),
            trace_id: "r".into(),
            tenant: "t".into(),
            key_id: "k".into(),
            key_name: "k".into(),
            team: None,
            user: None,
            metadata: vec![],
            model: "m".into(),
            endpoint: Endpoint::Messages,
            stream: false,
            max_tokens: None,
            body_bytes: 0,
            prompt_tokens_estimate: 0,
            message_count: 0,
        }
    }

    #[test]
    fn bad_config_at_policy_time_denies_500_and_logs_detail() {
        for (config, detail) in [
            (r#"{"n": "x"}"#, "config: n: invalid type"),
            (r#"{"n": 11}"#, "config: n: at most 10"),
        ] {
            let host = host(config);
            let d = policy::<Strict>(ctx(), &host);
            let denial = d.denial().expect("denied");
            assert_eq!(
                (denial.status, denial.error_type.as_str()),
                (500, "api_error")
            );
            assert!(
                denial.message.contains("plugin 'strict'"),
                "{}",
                denial.message
            );
            let logs = host.logs.borrow();
            assert_eq!(logs.len(), 1);
            assert_eq!(logs[0].0, LogLevel::Error);
            assert!(logs[0].1.contains(detail), "{}", logs[0].1);
        }
    }

    #[test]
    fn a_hook_call_reads_a_config_as_the_load_time_check_does() {
        // What parses: the same config, or the same `validate` error.
        for (json, expected) in [
            ("", Ok(0)),
            ("  ", Ok(0)),
            ("{}", Ok(0)),
            (r#"{"n": 3}"#, Ok(3)),
            ("[4]", Ok(4)),
            (r#"{"n": 11}"#, Err("config: n: at most 10".to_string())),
        ] {
            assert_eq!(
                recheck_config::<Strict>(json).map(|c| c.n),
                expected,
                "{json:?}"
            );
            assert_eq!(
                validate_config::<Strict>(json).map(|c| c.n),
                expected,
                "{json:?}"
            );
        }
        // What does not parse is refused, worded with the field's path where it has one.
        for (json, words) in [
            (r#"{"n": "x"}"#, "config: n: invalid type"),
            (r#"{"m": 1}"#, "unknown field `m`"),
            (r#"{"n": 1} x"#, "config: not valid JSON"),
            ("{", "config: not valid JSON"),
        ] {
            let err = recheck_config::<Strict>(json).map(|c| c.n).unwrap_err();
            assert!(err.contains(words), "{json:?}: {err}");
        }
    }

    #[test]
    fn good_config_reaches_the_hook() {
        let host = host(r#"{"n": 3}"#);
        assert_eq!(policy::<Strict>(ctx(), &host), Decision::Allow);
        assert!(host.logs.borrow().is_empty());
    }

    #[test]
    fn describe_reports_the_derived_hooks() {
        for (info, name, hooks) in [
            (
                <Adapter<Strict> as Guest>::describe(),
                "strict",
                Hook::Policy,
            ),
            (
                <Adapter<Router> as Guest>::describe(),
                "router",
                Hook::Route,
            ),
            (
                <Adapter<Budgeter> as Guest>::describe(),
                "budgeter",
                Hook::Budget,
            ),
        ] {
            assert_eq!(
                info,
                PluginInfo {
                    name: name.into(),
                    version: "0.1.0".into(),
                    hooks: vec![hooks],
                    config_schema: r#"{"type":"object"}"#.into(),
                }
            );
        }
        assert!(<Adapter<Strict> as Guest>::validate_config(r#"{"n": 11}"#.into()).is_err());
        assert!(<Adapter<Strict> as Guest>::validate_config(r#"{"n": 1}"#.into()).is_ok());
    }

    #[test]
    fn route_runs_with_a_good_config() {
        let host = host(r#"{"n": 2}"#);
        let plan = route::<Router>(ctx(), &host).expect("routed");
        assert_eq!(plan.retries, 2);
        assert_eq!(plan.targets, vec![Target::new("anthropic").model("m")]);
        // The default `route` routes nothing.
        assert_eq!(route::<Strict>(ctx(), &host), None);
        assert!(host.logs.borrow().is_empty());
    }

    #[test]
    fn budget_runs_with_a_good_config() {
        let host = host(r#"{"n": 5}"#);
        let d = budget::<Budgeter>(ctx(), Target::new("anthropic").model("m"), &host);
        assert_eq!(
            d,
            BudgetDecision::allow_with(crate::BudgetGrant {
                limits: vec![
                    BudgetLimit::new("daily", Scope::Tenant, Metric::Cost, Period::Day, 5.0)
                        .alert_at([80])
                ],
                downgrade: Some(Target::new("anthropic").model("cheap")),
                labels: vec![Annotation::new("used", "2.5@")],
            })
        );
        // The default `budget` allows with no limits.
        assert_eq!(
            budget::<Strict>(ctx(), Target::new("a"), &host),
            BudgetDecision::allow()
        );
    }

    #[test]
    fn bad_config_at_budget_time_denies_500_and_logs_detail() {
        let host = host(r#"{"n": 11}"#);
        let d = budget::<Budgeter>(ctx(), Target::new("a"), &host);
        let denial = d.denial().expect("denied");
        assert_eq!(
            (denial.status, denial.error_type.as_str()),
            (500, "api_error")
        );
        assert!(host.logs.borrow()[0].1.contains("config: n: at most 10"));
    }

    #[test]
    fn bad_config_at_route_time_logs_then_traps() {
        let host = host(r#"{"n": 11}"#);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            route::<Router>(ctx(), &host)
        }));
        assert!(
            caught.is_err(),
            "a misconfigured router must not fall through"
        );
        let logs = host.logs.borrow();
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0].0, LogLevel::Error);
        assert!(logs[0].1.contains("config: n: at most 10"), "{}", logs[0].1);
    }
}
