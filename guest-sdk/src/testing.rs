//! Run plugins natively in `cargo test`, without wasm or a gateway.
//!
//! [`TestRequest`] builds a request context, plays the host (config, body, clock, log,
//! usage readings) and runs a plugin's policy ([`TestRequest::run`]), route
//! ([`TestRequest::run_route`]), budget ([`TestRequest::run_budget`]) or guardrail
//! ([`TestRequest::run_inspect_request`], [`TestRequest::run_inspect_response`]) hook
//! through the same code the exported component uses:
//!
//! ```
//! # use tollgate_guest::{Decision, NoConfig, Plugin, Request};
//! # struct Prod;
//! # #[tollgate_guest::plugin]
//! # impl Plugin for Prod {
//! #     const NAME: &'static str = "prod";
//! #     const VERSION: &'static str = "0.1.0";
//! #     type Config = NoConfig;
//! #     fn policy(_: &NoConfig, req: &Request) -> Decision {
//! #         req.log_info("checking env");
//! #         match req.meta("env") {
//! #             Some("prod") => Decision::allow(),
//! #             _ => Decision::forbid("env must be prod"),
//! #         }
//! #     }
//! # }
//! use tollgate_guest::testing::TestRequest;
//!
//! let req = TestRequest::new().model("claude-x").team("eng").meta("env", "dev");
//! let decision = req.run::<Prod>("{}").expect("config is valid");
//! assert_eq!(decision.denial().map(|d| d.status), Some(403));
//! assert!(req.logs().iter().any(|l| l.message == "checking env"));
//! ```

use crate::bindings::tollgate::plugin::types::RequestContext;
use crate::host::HostApi;
use crate::request::scope_value;
use crate::{
    Answer, BudgetDecision, Conversation, Decision, Endpoint, Hook, LogLevel, Period, Plugin, Role,
    RoutePlan, Scope, Target, TextPart, UsageReport, Verdict, Window, adapter,
};
use std::cell::{Cell, RefCell};

/// What a plugin reports from `describe`, as the host sees it.
pub use crate::bindings::tollgate::plugin::types::PluginInfo;

/// One line a plugin wrote to the host log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// Severity.
    pub level: LogLevel,
    /// The text.
    pub message: String,
}

/// The plugin's `describe` answer, exactly as the host sees it: [`Plugin::NAME`],
/// [`Plugin::VERSION`], the hooks `#[tollgate_guest::plugin]` derived from the impl and
/// [`Plugin::config_schema`].
pub fn describe<P: Plugin>() -> PluginInfo {
    adapter::describe::<P>()
}

/// The plugin's `validate-config` answer for a JSON config, exactly as the host sees it.
pub fn validate<P: Plugin>(config_json: &str) -> Result<(), String> {
    adapter::validate_config::<P>(config_json).map(drop)
}

/// Panics unless `P` keeps a prepared form of `config_json` ([`Plugin::prepare`]) within
/// [`MAX_PREPARED_BYTES`](crate::MAX_PREPARED_BYTES) that [`Plugin::from_prepared`]
/// reads back as the config the JSON checks to (compared by `Debug`). A form that did
/// not read back would go unnoticed elsewhere: each call would quietly parse the JSON.
pub fn assert_prepared_reads_back<P: Plugin>(config_json: &str)
where
    P::Config: std::fmt::Debug,
{
    let checked = adapter::validate_config::<P>(config_json)
        .unwrap_or_else(|e| panic!("{}: the config does not check: {e}", P::NAME));
    let kept =
        P::prepare(&checked).unwrap_or_else(|| panic!("{}: no prepared form was kept", P::NAME));
    assert!(
        kept.len() <= crate::MAX_PREPARED_BYTES,
        "{}: the prepared form ({} bytes) is over what the host keeps",
        P::NAME,
        kept.len()
    );
    let back = P::from_prepared(&kept)
        .unwrap_or_else(|| panic!("{}: the prepared form does not read back", P::NAME));
    assert_eq!(
        format!("{back:?}"),
        format!("{checked:?}"),
        "{}: the prepared form reads back as another config",
        P::NAME
    );
}

/// A request to run a plugin on, built with chained setters.
///
/// Defaults: tenant `test`, key `key_test`/`test`, no team, user or metadata, model
/// `claude-sonnet-4-5` on the Messages endpoint, not streamed, `max_tokens` 1024, a
/// small Messages body matching those fields, and zero usage everywhere. Size fields
/// follow the body unless set.
#[derive(Debug)]
pub struct TestRequest {
    ctx: RequestContext,
    body: Option<String>,
    body_bytes: Option<u32>,
    prompt_tokens_estimate: Option<u32>,
    now_ms: u64,
    usage: Vec<UsagePreset>,
    logs: RefCell<Vec<LogLine>>,
    body_reads: Cell<u32>,
    usage_reads: Cell<u32>,
    /// What the plugin kept when the current run checked its config.
    prepared: RefCell<Vec<u8>>,
}

/// A usage reading set with [`TestRequest::usage`] or [`TestRequest::usage_of`].
#[derive(Debug)]
struct UsagePreset {
    scope: Scope,
    /// `None`: the request's own value of the scope.
    value: Option<String>,
    period: Period,
    window: Window,
    report: UsageReport,
}

impl Default for TestRequest {
    fn default() -> Self {
        Self::new()
    }
}

impl TestRequest {
    /// A request with the defaults listed on [`TestRequest`].
    pub fn new() -> Self {
        Self {
            ctx: RequestContext {
                request_id: "req_test".into(),
                trace_id: "req_test".into(),
                tenant: "test".into(),
                key_id: "key_test".into(),
                key_name: "test".into(),
                team: None,
                user: None,
                metadata: Vec::new(),
                model: "claude-sonnet-4-5".into(),
                endpoint: Endpoint::Messages,
                stream: false,
                max_tokens: Some(1024),
                body_bytes: 0,
                prompt_tokens_estimate: 0,
                message_count: 1,
            },
            body: None,
            body_bytes: None,
            prompt_tokens_estimate: None,
            now_ms: 1_767_225_600_000, // 2026-01-01T00:00:00Z
            usage: Vec::new(),
            logs: RefCell::new(Vec::new()),
            body_reads: Cell::new(0),
            usage_reads: Cell::new(0),
            prepared: RefCell::default(),
        }
    }

    /// Sets the request id (and the trace id, unless set afterwards).
    pub fn request_id(mut self, id: &str) -> Self {
        self.ctx.request_id = id.into();
        self.ctx.trace_id = id.into();
        self
    }

    /// Sets the trace id.
    pub fn trace_id(mut self, id: &str) -> Self {
        self.ctx.trace_id = id.into();
        self
    }

    /// Sets the tenant id.
    pub fn tenant(mut self, tenant: &str) -> Self {
        self.ctx.tenant = tenant.into();
        self
    }

    /// Sets the API key's public id.
    pub fn key_id(mut self, id: &str) -> Self {
        self.ctx.key_id = id.into();
        self
    }

    /// Sets the API key's name.
    pub fn key_name(mut self, name: &str) -> Self {
        self.ctx.key_name = name.into();
        self
    }

    /// Sets the team (as if the key were bound to it).
    pub fn team(mut self, team: &str) -> Self {
        self.ctx.team = Some(team.into());
        self
    }

    /// Sets the user (as if the key were bound to it).
    pub fn user(mut self, user: &str) -> Self {
        self.ctx.user = Some(user.into());
        self
    }

    /// Adds an `x-portkey-metadata` entry. Like the host, a `team`/`user` entry also
    /// sets the team/user when none is set yet.
    pub fn meta(mut self, key: &str, value: &str) -> Self {
        match key {
            "team" if self.ctx.team.is_none() => self.ctx.team = Some(value.into()),
            "user" if self.ctx.user.is_none() => self.ctx.user = Some(value.into()),
            _ => {}
        }
        self.ctx.metadata.push((key.into(), value.into()));
        self
    }

    /// Sets the requested model.
    pub fn model(mut self, model: &str) -> Self {
        self.ctx.model = model.into();
        self
    }

    /// Sets the endpoint.
    pub fn endpoint(mut self, endpoint: Endpoint) -> Self {
        self.ctx.endpoint = endpoint;
        self
    }

    /// Sets whether the caller asked for streaming.
    pub fn stream(mut self, stream: bool) -> Self {
        self.ctx.stream = stream;
        self
    }

    /// Sets `max_tokens` (`None` = absent).
    pub fn max_tokens(mut self, max_tokens: Option<u32>) -> Self {
        self.ctx.max_tokens = max_tokens;
        self
    }

    /// Sets the message count.
    pub fn message_count(mut self, count: u32) -> Self {
        self.ctx.message_count = count;
        self
    }

    /// Sets the request body returned by [`Request::body`](crate::Request::body).
    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Overrides the body size (defaults to the body's length).
    pub fn body_bytes(mut self, bytes: u32) -> Self {
        self.body_bytes = Some(bytes);
        self
    }

    /// Overrides the prompt token estimate (defaults to body length / 4).
    pub fn prompt_tokens_estimate(mut self, tokens: u32) -> Self {
        self.prompt_tokens_estimate = Some(tokens);
        self
    }

    /// Sets the host clock, in milliseconds since the Unix epoch.
    pub fn now_ms(mut self, now_ms: u64) -> Self {
        self.now_ms = now_ms;
        self
    }

    /// Presets the usage the host reports for this request's own value of `scope` in
    /// one `period`/`window` (readings not preset are zero). The report's `value` is
    /// filled in as the host would; a later preset for the same reading wins. Has no
    /// effect when the request has no value for `scope` (e.g. no team).
    ///
    /// ```
    /// use tollgate_guest::testing::TestRequest;
    /// use tollgate_guest::{Period, Scope, UsageReport, Window};
    ///
    /// let spent = UsageReport { cost_usd: 4.0, reserved_cost_usd: 0.5, ..Default::default() };
    /// let req = TestRequest::new().team("eng").usage(Scope::Team, Period::Day, Window::Calendar, spent);
    /// # let _ = req;
    /// ```
    pub fn usage(
        mut self,
        scope: Scope,
        period: Period,
        window: Window,
        report: UsageReport,
    ) -> Self {
        self.usage.push(UsagePreset {
            scope,
            value: None,
            period,
            window,
            report,
        });
        self
    }

    /// Presets the usage the host reports for a given `value` of `scope` (what
    /// [`Request::usage_of`](crate::Request::usage_of) reads, and also
    /// [`Request::usage`](crate::Request::usage) when it is the request's own value).
    pub fn usage_of(
        mut self,
        scope: Scope,
        value: &str,
        period: Period,
        window: Window,
        report: UsageReport,
    ) -> Self {
        self.usage.push(UsagePreset {
            scope,
            value: Some(value.into()),
            period,
            window,
            report,
        });
        self
    }

    /// Runs the plugin's policy hook as the host would: `validate-config` first (its
    /// error is returned as `Err`), then `policy` if the plugin implements it (else
    /// `Allow`, since the host skips hooks `describe` does not list).
    ///
    /// Clears the log lines of any earlier run; read them with [`TestRequest::logs`].
    pub fn run<P: Plugin>(&self, config_json: &str) -> Result<Decision, String> {
        self.prepare::<P>(config_json)?;
        if !P::HOOKS.contains(&Hook::Policy) {
            return Ok(Decision::Allow);
        }
        Ok(self.with_host(config_json, |ctx, host| adapter::policy::<P>(ctx, host)))
    }

    /// Runs the plugin's route hook as the host would: `validate-config` first (its
    /// error is returned as `Err`), then `route` if the plugin implements it (else
    /// `Ok(None)`, since the host skips hooks `describe` does not list).
    ///
    /// A plan without targets is returned as `Err`, because the host would fail the
    /// request. Clears the log lines of any earlier run; read them with
    /// [`TestRequest::logs`].
    ///
    /// ```
    /// # use tollgate_guest::{NoConfig, Plugin, Request, RoutePlan, Target};
    /// # struct Eu;
    /// # #[tollgate_guest::plugin]
    /// # impl Plugin for Eu {
    /// #     const NAME: &'static str = "eu";
    /// #     const VERSION: &'static str = "0.1.0";
    /// #     type Config = NoConfig;
    /// #     fn route(_: &NoConfig, req: &Request) -> Option<RoutePlan> {
    /// #         (req.meta("region") == Some("eu"))
    /// #             .then(|| RoutePlan::single(Target::new("anthropic-eu")).label("region", "eu"))
    /// #     }
    /// # }
    /// use tollgate_guest::testing::TestRequest;
    ///
    /// let plan = TestRequest::new().meta("region", "eu").run_route::<Eu>("{}").unwrap();
    /// assert_eq!(plan.expect("routed").targets[0].provider, "anthropic-eu");
    /// assert_eq!(TestRequest::new().run_route::<Eu>("{}"), Ok(None));
    /// ```
    pub fn run_route<P: Plugin>(&self, config_json: &str) -> Result<Option<RoutePlan>, String> {
        self.prepare::<P>(config_json)?;
        if !P::HOOKS.contains(&Hook::Route) {
            return Ok(None);
        }
        let plan = self.with_host(config_json, |ctx, host| adapter::route::<P>(ctx, host));
        match plan {
            Some(p) if p.targets.is_empty() => Err(format!(
                "plugin '{}' returned a route plan without targets; the host would fail the request",
                P::NAME
            )),
            plan => Ok(plan),
        }
    }

    /// Runs the plugin's budget hook as the host would, on `target` (the routed plan's
    /// first target; a target without a model gets the requested one, as the host
    /// resolves it): `validate-config` first (its error is returned as `Err`), then
    /// `budget` if the plugin implements it (else an allow without limits, since the
    /// host skips hooks `describe` does not list).
    ///
    /// The host's part, checking and reserving the granted limits, is not played: assert
    /// on the returned grant. Preset usage with [`TestRequest::usage`]. Clears the log
    /// lines of any earlier run; read them with [`TestRequest::logs`].
    pub fn run_budget<P: Plugin>(
        &self,
        config_json: &str,
        target: &Target,
    ) -> Result<BudgetDecision, String> {
        self.prepare::<P>(config_json)?;
        if !P::HOOKS.contains(&Hook::Budget) {
            return Ok(BudgetDecision::allow());
        }
        let mut target = target.clone();
        if target.model.is_none() {
            target.model = Some(self.ctx.model.clone());
        }
        Ok(self.with_host(config_json, |ctx, host| {
            adapter::budget::<P>(ctx, target, host)
        }))
    }

    /// Runs the plugin's `inspect_request` hook on `conversation` as the host would:
    /// `validate-config` first (its error is returned as `Err`), then the hook if the
    /// plugin implements it (else allow). Check a rewrite with [`apply`].
    pub fn run_inspect_request<P: Plugin>(
        &self,
        config_json: &str,
        conversation: &Conversation,
    ) -> Result<Verdict, String> {
        self.prepare::<P>(config_json)?;
        if !P::HOOKS.contains(&Hook::InspectRequest) {
            return Ok(Verdict::allow());
        }
        Ok(self.with_host(config_json, |ctx, host| {
            adapter::inspect_request::<P>(ctx, conversation, host)
        }))
    }

    /// Runs the plugin's `inspect_response` hook on `answer`, like
    /// [`TestRequest::run_inspect_request`].
    pub fn run_inspect_response<P: Plugin>(
        &self,
        config_json: &str,
        answer: &Answer,
    ) -> Result<Verdict, String> {
        self.prepare::<P>(config_json)?;
        if !P::HOOKS.contains(&Hook::InspectResponse) {
            return Ok(Verdict::allow());
        }
        Ok(self.with_host(config_json, |ctx, host| {
            adapter::inspect_response::<P>(ctx, answer, host)
        }))
    }

    /// Resets the per-run counters and checks the config like `validate-config`.
    /// Every run starts as in a fresh instance: nothing cached, the config's prepared
    /// form (if the plugin keeps one) read back through [`Plugin::from_prepared`].
    fn prepare<P: Plugin>(&self, config_json: &str) -> Result<(), String> {
        self.logs.borrow_mut().clear();
        self.body_reads.set(0);
        self.usage_reads.set(0);
        self.prepared.borrow_mut().clear();
        adapter::forget_config();
        let host = TestHost {
            req: self,
            config: config_json,
            body: "",
        };
        adapter::check_and_keep::<P>(config_json, &host)
    }

    /// What the plugin kept (`keep-prepared`) when the last run checked its config.
    pub fn prepared(&self) -> Vec<u8> {
        self.prepared.borrow().clone()
    }

    /// Builds the context and the host the way the gateway would, and calls `hook`.
    fn with_host<T>(
        &self,
        config_json: &str,
        hook: impl FnOnce(RequestContext, &dyn HostApi) -> T,
    ) -> T {
        let body = self.body.clone().unwrap_or_else(|| self.default_body());
        let mut ctx = self.ctx.clone();
        let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
        ctx.body_bytes = self.body_bytes.unwrap_or(len);
        ctx.prompt_tokens_estimate = self.prompt_tokens_estimate.unwrap_or(len / 4);
        let host = TestHost {
            req: self,
            config: config_json,
            body: &body,
        };
        hook(ctx, &host)
    }

    /// Log lines the plugin wrote during the last run.
    pub fn logs(&self) -> Vec<LogLine> {
        self.logs.borrow().clone()
    }

    /// How many times the last run fetched the body from the host (0 or 1: it is cached).
    pub fn body_reads(&self) -> u32 {
        self.body_reads.get()
    }

    /// How many usage readings the last run asked the host for.
    pub fn usage_reads(&self) -> u32 {
        self.usage_reads.get()
    }

    /// The preset reading for `value` of `scope`, else zero, as the host would report it.
    fn usage_report(
        &self,
        scope: &Scope,
        value: Option<&str>,
        period: Period,
        window: Window,
    ) -> UsageReport {
        let own = scope_value(&self.ctx, scope);
        let value = value.or(own);
        let preset = self.usage.iter().rev().find(|p| {
            p.scope == *scope
                && p.period == period
                && p.window == window
                && value.is_some()
                && match &p.value {
                    Some(v) => value == Some(v.as_str()),
                    None => value == own,
                }
        });
        UsageReport {
            value: value.map(String::from),
            ..preset.map(|p| p.report.clone()).unwrap_or_default()
        }
    }

    fn default_body(&self) -> String {
        let mut body = serde_json::json!({
            "model": self.ctx.model,
            "messages": [{"role": "user", "content": "Hello"}],
        });
        if let Some(n) = self.ctx.max_tokens {
            body["max_tokens"] = n.into();
        }
        if self.ctx.stream {
            body["stream"] = true.into();
        }
        body.to_string()
    }
}

/// The host as played by a [`TestRequest`].
struct TestHost<'a> {
    req: &'a TestRequest,
    config: &'a str,
    body: &'a str,
}

impl HostApi for TestHost<'_> {
    fn log(&self, level: LogLevel, message: &str) {
        self.req.logs.borrow_mut().push(LogLine {
            level,
            message: message.into(),
        });
    }

    fn config(&self) -> String {
        self.config.into()
    }

    fn now_ms(&self) -> u64 {
        self.req.now_ms
    }

    fn request_body(&self) -> String {
        self.req.body_reads.set(self.req.body_reads.get() + 1);
        self.body.into()
    }

    fn keep_prepared(&self, data: &[u8]) {
        // As the host: more than it keeps is dropped, and the hooks parse the JSON.
        if data.len() <= crate::MAX_PREPARED_BYTES {
            *self.req.prepared.borrow_mut() = data.to_vec();
        }
    }

    fn prepared(&self) -> Vec<u8> {
        self.req.prepared.borrow().clone()
    }

    fn usage(
        &self,
        scope: &Scope,
        value: Option<&str>,
        period: Period,
        window: Window,
    ) -> UsageReport {
        self.req.usage_reads.set(self.req.usage_reads.get() + 1);
        self.req.usage_report(scope, value, period, window)
    }
}

/// A conversation of `(role, text)` parts, numbered as the host numbers them (in a
/// request, each part its own message; the system prompt has none).
///
/// ```
/// use tollgate_guest::{Role, testing};
///
/// let c = testing::conversation([(Role::System, "be brief"), (Role::User, "hi")]);
/// assert_eq!((c.parts[1].id, c.parts[1].message), (1, Some(0)));
/// ```
pub fn conversation<'a>(parts: impl IntoIterator<Item = (Role, &'a str)>) -> Conversation {
    let mut message = 0;
    let parts = parts
        .into_iter()
        .enumerate()
        .map(|(i, (role, text))| {
            let msg = (role != Role::System).then(|| {
                message += 1;
                message - 1
            });
            part(i, role, msg, text)
        })
        .collect();
    Conversation {
        parts,
        ..Default::default()
    }
}

/// A whole (not yet delivered) answer of `texts`, one part each.
pub fn answer<'a>(texts: impl IntoIterator<Item = &'a str>) -> Answer {
    Answer {
        parts: texts
            .into_iter()
            .enumerate()
            .map(|(i, t)| part(i, Role::Assistant, Some(0), t))
            .collect(),
        ..Default::default()
    }
}

fn part(i: usize, role: Role, message: Option<u32>, text: &str) -> TextPart {
    TextPart {
        id: u32::try_from(i).unwrap_or(u32::MAX),
        role,
        message,
        text: text.into(),
    }
}

/// Every part's text after applying `verdict`'s edits as the host would (unchanged
/// for a verdict that does not rewrite), or why the host would refuse the edits.
pub fn apply(parts: &[TextPart], verdict: &Verdict) -> Result<Vec<String>, String> {
    crate::guard::apply(parts, verdict)
}
