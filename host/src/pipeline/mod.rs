//! The phases every data-plane request passes through, in order:
//! authenticate → read metadata → parse the body → check key scope → run the tenant's
//! policy chain → routing plugins (or the tenant's default provider) → a [`Plan`] →
//! budget plugins → the ledger's atomic check and reservation. [`Exchange`] follows the
//! request from first byte to last, settles its reservation with the real cost and
//! writes its log row exactly once, however it ends.

use crate::api::Api;
use crate::budget;
use crate::error::{ApiError, ErrorKind};
use crate::headers as names;
use crate::ledger::RequestScopes;
use crate::ledger::fleet::{FaultMode, FleetError, FleetLedger};
use crate::ledger::{LedgerEntry, Refused, Reservation, ScopeKey};
use crate::metadata::Metadata;
use crate::plugins::UsageView;
use crate::plugins::{
    BudgetOutcome, ChainOutcome, Endpoint, Hook, RequestContext, RouteOutcome, RouteTarget,
};
use crate::providers::Provider;
use crate::routing::Plan;
use crate::store::{ApiKey, LogRecord};
use crate::tenancy::TenantRuntime;
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Instant;

mod guardrails;
mod state;

pub use guardrails::{ResponseGuard, client_api};
pub use state::Pipeline;

/// One request's journey; logged when finished or, failing that, when dropped
/// (the client went away mid-way).
pub struct Exchange {
    state: Arc<Pipeline>,
    /// The log row being filled in as the request progresses.
    pub record: LogRecord,
    started: Instant,
    /// The API shape the client speaks.
    pub flavor: Api,
    /// Held in the ledger from admission until the request ends.
    reservation: Option<Reservation>,
    /// The scopes this request's usage is counted under (set with the reservation).
    counted: Option<Arc<[ScopeKey]>>,
    /// The estimate held in the fleet ledger (Redis), when there is one.
    fleet_hold: Option<crate::ledger::fleet::Hold>,
    /// The usage is an estimate (a stream cut before its final usage).
    pub usage_estimated: bool,
    /// The prompt's size estimate, billed as input when a cut stream reported none.
    prompt_estimate: u64,
    /// The output reserved for (`max_tokens`, or the default), billed when the client
    /// left while the provider was still answering.
    output_estimate: u64,
    /// The bodies kept for the log, when the tenant captures them.
    capture: Option<Capture>,
    /// Refused before a key was known: counted in `/metrics`, not logged as a row.
    unauthenticated: bool,
    logged: bool,
}

/// Lets at most `per_s` lines a second through (the rest are counted elsewhere).
#[derive(Debug)]
pub struct LogSampler {
    per_s: u32,
    /// (second, lines written in it), packed as `second << 32 | lines`.
    state: std::sync::atomic::AtomicU64,
}

impl LogSampler {
    /// A sampler of `per_s` lines a second (0: none).
    pub fn new(per_s: u32) -> Self {
        Self {
            per_s,
            state: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Whether a line may be written now.
    pub fn allow(&self) -> bool {
        use std::sync::atomic::Ordering;
        let sec = (crate::ids::now_ms() / 1000) as u64 & 0xFFFF_FFFF;
        let mut cur = self.state.load(Ordering::Relaxed);
        loop {
            let (s, n) = (cur >> 32, cur & 0xFFFF_FFFF);
            let next = if s == sec { n + 1 } else { 1 };
            if next > u64::from(self.per_s) {
                return false;
            }
            match self.state.compare_exchange_weak(
                cur,
                sec << 32 | next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }
}

/// Request and response bodies being kept, each up to a limit.
struct Capture {
    request: Bytes,
    response: Vec<u8>,
    limit: usize,
    request_truncated: bool,
    response_truncated: bool,
}

impl Capture {
    fn new(request: &Bytes, limit: usize) -> Self {
        Self {
            request: request.slice(..request.len().min(limit)),
            response: Vec::new(),
            limit,
            request_truncated: request.len() > limit,
            response_truncated: false,
        }
    }

    /// Drops the kept request body, saying why in its place.
    fn withhold_request(&mut self) {
        self.request = Bytes::from_static(b"(withheld: a request guardrail refused this request)");
        self.request_truncated = false;
    }

    fn push(&mut self, bytes: &[u8]) {
        let room = self.limit.saturating_sub(self.response.len());
        if bytes.len() > room {
            self.response_truncated = true;
        }
        self.response
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

impl Exchange {
    /// Starts following a request.
    pub fn new(
        state: &Arc<Pipeline>,
        request_id: &str,
        endpoint: &str,
        flavor: Api,
        headers: &HeaderMap,
    ) -> Self {
        let trace_id = headers
            .get(names::TRACE_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= 256)
            .unwrap_or(request_id)
            .to_string();
        Self {
            state: state.clone(),
            record: LogRecord {
                request_id: request_id.to_string(),
                ts_ms: crate::ids::now_ms(),
                trace_id,
                endpoint: endpoint.to_string(),
                traceparent: headers
                    .get(names::TRACEPARENT)
                    .and_then(|v| v.to_str().ok())
                    .filter(|v| v.len() <= 128)
                    .map(str::to_string),
                span_us: (crate::ids::now_us(), 0),
                ..LogRecord::default()
            },
            started: Instant::now(),
            flavor,
            reservation: None,
            counted: None,
            fleet_hold: None,
            usage_estimated: false,
            prompt_estimate: 0,
            output_estimate: 0,
            capture: None,
            unauthenticated: false,
            logged: false,
        }
    }

    /// Keeps `bytes` as (more of) the response body, when bodies are captured.
    pub fn capture_response(&mut self, bytes: &[u8]) {
        if let Some(c) = &mut self.capture {
            c.push(bytes);
        }
    }

    /// Bills a stream from what its relay counted: the provider's usage, or, for a
    /// stream that did not end well (`cut`), at least what was generated so far.
    pub fn bill_stream(&mut self, stats: &crate::translate::StreamStats, cut: bool) {
        self.usage_estimated = cut;
        self.record.usage = if cut {
            stats.usage_when_cut()
        } else {
            stats.usage
        };
    }

    /// Time since the request arrived.
    pub fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Answers with `err` in the client's shape and logs the request.
    pub fn fail(mut self, err: ApiError) -> Response {
        self.record.status = err.status.as_u16();
        self.record.error = Some(err.message.clone());
        if self.capture.is_some() {
            let body = err.body(self.flavor).to_string();
            self.capture_response(body.as_bytes());
        }
        self.log();
        err.into_response_for(self.flavor)
    }

    /// Logs the request as finished with `status`.
    pub fn finish(mut self, status: u16, error: Option<String>) {
        self.record.status = status;
        if error.is_some() {
            self.record.error = error;
        }
        self.log();
    }

    fn log(&mut self) {
        if self.logged {
            return;
        }
        self.logged = true;
        if self.unauthenticated {
            // Anyone can send these: a keyless flood must cost neither disk nor the
            // writer's queue. They are counted in /metrics; a few are logged.
            if self.state.unauthenticated_log.allow() {
                tracing::info!(
                    request_id = %self.record.request_id,
                    endpoint = %self.record.endpoint,
                    status = self.record.status,
                    error = self.record.error.as_deref().unwrap_or_default(),
                    "request refused before authentication (sampled; see tollgate_unauthenticated_requests_total)"
                );
            }
            return;
        }
        self.record.latency_ms = self.elapsed_ms();
        self.record.span_us.1 = crate::ids::now_us();
        if let Some(c) = self.capture.take() {
            self.record.bodies = Some(Box::new(crate::store::CapturedBodies {
                request: c.request,
                response: Bytes::from(c.response),
                request_truncated: c.request_truncated,
                response_truncated: c.response_truncated,
            }));
        }
        self.settle();
        let record = std::mem::take(&mut self.record);
        self.state.logs.send(record);
    }
}

impl Exchange {
    /// Prices what the request used and settles its reservation in the ledger; crossed
    /// thresholds go to the alert task, the usage to the log writer for the store.
    fn settle(&mut self) {
        let r = &mut self.record;
        if r.attempts.is_empty() {
            // Refused before any provider saw it (e.g. a body that cannot be translated):
            // nothing was used, so the reservation is released uncounted.
            self.reservation = None;
            self.counted = None;
            self.fleet_hold = None;
            return;
        }
        // The client left while the provider was working: it still did the work, so
        // the request is billed at its estimate rather than not at all.
        if let Some(a) = r.attempts.last()
            && a.status.is_none()
            && a.error.as_deref() == Some(crate::routing::IN_FLIGHT)
        {
            self.usage_estimated = true;
            if r.provider.is_none() {
                r.provider = Some(a.provider.clone());
                r.served_model = Some(a.model.clone());
            }
            r.usage.output_tokens = r.usage.output_tokens.max(self.output_estimate);
        }
        let u = &mut r.usage;
        if self.usage_estimated && u.prompt_tokens() == 0 {
            u.input_tokens = self.prompt_estimate;
        }
        let cost = match (&r.provider, &r.served_model) {
            (Some(p), Some(m)) if self.counted.is_some() => {
                let cost = self.state.pricing.cost(p, m, &r.usage);
                let mut breakdown = cost.breakdown();
                breakdown.usage_estimated = self.usage_estimated;
                r.cost = Some(breakdown);
                cost.total_nano
            }
            _ => 0,
        };
        r.cost_nano = cost;
        let (Some(reservation), Some(scopes)) = (self.reservation.take(), self.counted.take())
        else {
            return;
        };
        let now = crate::ids::now_ms();
        let amount = budget::actual(&r.usage, cost);
        if let Some(fleet) = &self.state.fleet {
            // The fleet decides which thresholds were crossed, once for every replica.
            let hold = self.fleet_hold.take();
            let limits = reservation.limits();
            fleet.settle(hold, &scopes, limits, amount, now);
            let _ = self.state.ledger.settle(reservation, amount, now);
        } else {
            let alerts = self.state.ledger.settle(reservation, amount, now);
            if !alerts.is_empty() {
                self.state.alerts.send(alerts);
            }
        }
        r.ledger = Some(LedgerEntry {
            scopes,
            amount,
            ts_ms: now,
        });
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if !self.logged {
            // The client disconnected before we answered (nginx's 499 convention).
            if self.record.status == 0 || self.record.error.is_none() {
                self.record.error = Some("client closed the connection".into());
            }
            self.record.status = 499;
            self.log();
        }
    }
}

/// A request that passed every check, with where to serve it.
pub struct Admitted {
    /// The body as received.
    pub body: Bytes,
    pub stream: bool,
    /// The model the caller asked for.
    pub model: String,
    pub plan: Plan,
    /// The tenant's response guardrails, when it has any.
    pub guard: Option<ResponseGuard>,
}

/// Authenticates the key and records who is calling; a refusal is counted (and the
/// request not logged as a row, see [`Exchange`]).
pub fn authenticate(
    state: &Pipeline,
    ex: &mut Exchange,
    headers: &HeaderMap,
) -> Result<Arc<ApiKey>, ApiError> {
    let key = match state.keys.authenticate(headers, crate::ids::now_ms()) {
        Ok(k) => k,
        Err((why, err)) => {
            state.metrics.protection.unauthenticated(why);
            ex.unauthenticated = true;
            return Err(err);
        }
    };
    ex.record.tenant_id = key.tenant_id.clone();
    ex.record.key_id = Some(key.id.clone());
    Ok(key)
}

/// Runs every admission phase after authentication for a model request by `key`.
pub async fn admit(
    state: &Pipeline,
    ex: &mut Exchange,
    key: Arc<ApiKey>,
    headers: &HeaderMap,
    body: Bytes,
    endpoint: Endpoint,
) -> Result<Admitted, ApiError> {
    // A request whose usage could not be recorded durably is not served.
    if !state.logs.healthy() {
        let mut e = ApiError::new(
            crate::error::ErrorKind::Overloaded,
            "the gateway cannot record usage right now (its usage journal is not writable); \
             retry shortly",
        );
        e.retry_after = Some(5);
        return Err(e);
    }
    if state.captures_bodies(&key.tenant_id) {
        ex.capture = Some(Capture::new(&body, state.max_captured_bytes));
    }
    let metadata = match headers.get(names::METADATA) {
        Some(raw) => Metadata::parse(raw.as_bytes())?,
        None => Metadata::default(),
    };
    ex.record.team = key
        .team
        .clone()
        .or_else(|| metadata.get("team").map(str::to_string));
    ex.record.user = key
        .user
        .clone()
        .or_else(|| metadata.get("user").map(str::to_string));
    ex.record.metadata = metadata;

    let summary = BodySummary::parse(&body)?;
    ex.record.requested_model = Some(summary.model.clone());
    ex.record.max_tokens = summary.max_tokens;
    ex.record.body_bytes = u32::try_from(body.len()).unwrap_or(u32::MAX);
    ex.record.message_count = summary.message_count;
    ex.record.stream = summary.stream && endpoint != Endpoint::CountTokens;
    crate::auth::check_scope(&key, &ex.record.metadata, Some(&summary.model))?;

    // This request is decided by the bundle versions active now, even if a newer one
    // is activated while it runs.
    let tenant = state.tenant(&key.tenant_id);
    ex.record.bundle_version = tenant.version;
    ex.record.platform_version = tenant.platform_version;
    let decided = decide(Decide {
        state,
        tenant: &tenant,
        ledger: &state.ledger,
        fleet: state.fleet.as_ref(),
        record: &mut ex.record,
        key: &key,
        summary: &summary,
        endpoint,
        body: &body,
        usage_at_ms: None,
    })
    .await;
    let decided = match decided {
        Ok(d) => d,
        Err(e) => {
            // A request a guardrail refused (or failed on) may hold what it was
            // guarding against: its body is not kept.
            let by_guardrail = ex.record.decisions.last().is_some_and(|d| {
                d.hook.as_deref() == Some("inspect-request")
                    && matches!(d.outcome.as_str(), "deny" | "error")
            });
            if by_guardrail && let Some(c) = &mut ex.capture {
                c.withhold_request();
            }
            return Err(e);
        }
    };
    ex.fleet_hold = decided.fleet_hold;
    // A guardrail's rewrite is what is served, and what is kept: a redacted prompt
    // must not survive in the captured body.
    let body = match decided.body {
        Some(rewritten) => {
            if ex.capture.is_some() {
                ex.capture = Some(Capture::new(&rewritten, state.max_captured_bytes));
            }
            rewritten
        }
        None => body,
    };
    // Response guardrails reading `request-body` see what was sent.
    let guard = ResponseGuard::new(state, &tenant, decided.ctx, &body, decided.usage);
    if let Some((r, counted)) = decided.reservation {
        ex.reservation = Some(r);
        ex.counted = Some(counted);
        ex.prompt_estimate = u64::from(summary.prompt_tokens_estimate);
        ex.output_estimate = summary
            .max_tokens
            .map_or(budget::DEFAULT_OUTPUT_RESERVE, u64::from);
    }
    ex.record.admitted = true;
    Ok(Admitted {
        body,
        stream: ex.record.stream,
        model: summary.model,
        plan: decided.plan,
        guard,
    })
}

/// The context plugins see for a request, from what admission has read of it.
fn request_context(
    record: &LogRecord,
    key: &ApiKey,
    summary: &BodySummary,
    endpoint: Endpoint,
) -> RequestContext {
    RequestContext {
        request_id: record.request_id.clone(),
        trace_id: record.trace_id.clone(),
        tenant: key.tenant_id.clone(),
        key_id: key.id.clone(),
        key_name: key.name.clone(),
        team: record.team.clone(),
        user: record.user.clone(),
        metadata: record.metadata.0.to_vec(),
        model: summary.model.clone(),
        endpoint,
        stream: record.stream,
        max_tokens: summary.max_tokens,
        body_bytes: record.body_bytes,
        prompt_tokens_estimate: summary.prompt_tokens_estimate,
        message_count: summary.message_count,
    }
}

/// What the plugin phases of admission run against.
pub struct Decide<'a> {
    pub state: &'a Pipeline,
    /// The tenant's runtime (chain, default provider) deciding the request.
    pub tenant: &'a TenantRuntime,
    /// The usage counters read by plugins and charged by the reservation.
    pub ledger: &'a Arc<crate::ledger::Ledger>,
    /// The fleet's shared ledger, which also admits when configured (never in replay).
    pub fleet: Option<&'a Arc<FleetLedger>>,
    /// What admission has read of the request so far (who, metadata, sizes); every
    /// plugin's decision is appended to its `decisions`.
    pub record: &'a mut LogRecord,
    pub key: &'a ApiKey,
    pub summary: &'a BodySummary,
    pub endpoint: Endpoint,
    pub body: &'a Bytes,
    /// The moment the request is decided at (`None`: now); replays decide logged
    /// requests at the time they arrived.
    pub usage_at_ms: Option<i64>,
}

/// How the plugin phases admitted a request.
pub struct Decided {
    /// Where to serve it.
    pub plan: Plan,
    /// The estimate held in the ledger and the scopes it is counted under (none for
    /// `count_tokens`, which costs nothing upstream).
    pub reservation: Option<(Reservation, Arc<[ScopeKey]>)>,
    /// The same estimate held in the fleet ledger.
    pub fleet_hold: Option<crate::ledger::fleet::Hold>,
    /// The body a request guardrail rewrote, to serve instead of the client's.
    pub body: Option<Bytes>,
    /// The context plugins saw (none when the tenant has no plugins).
    pub ctx: Option<RequestContext>,
    /// What plugins' `usage` reads.
    pub usage: UsageView,
}

/// Policy chain → routing plugins (or the tenant's default provider) → budget plugins
/// → the ledger's atomic check and reservation. Every plugin's decision is appended to
/// the record's `decisions`; a refusal is the error the client gets.
pub async fn decide(d: Decide<'_>) -> Result<Decided, ApiError> {
    let Decide {
        state,
        tenant,
        ledger,
        fleet,
        record,
        key,
        summary,
        endpoint,
        body,
        usage_at_ms,
    } = d;
    let scopes = Arc::new(RequestScopes::new(
        &key.tenant_id,
        &key.id,
        record.team.as_deref(),
        record.user.as_deref(),
        &record.metadata,
    ));
    let usage = UsageView {
        ledger: ledger.clone(),
        scopes: scopes.clone(),
        at_ms: usage_at_ms,
        fleet: fleet.map(|f| crate::plugins::FleetReads {
            ledger: f.clone(),
            spent: Arc::default(),
        }),
    };
    // A tenant without plugins pays nothing for a context no plugin would read.
    let mut ctx =
        (!tenant.chain.is_empty()).then(|| request_context(record, key, summary, endpoint));
    let decisions = &mut record.decisions;
    let mut plan = None;
    let mut rewritten = None;
    if let Some(ctx) = &mut ctx {
        match tenant
            .chain
            .run(&state.plugins, ctx, body, Some(&usage))
            .await
        {
            ChainOutcome::Allowed(mut d) => decisions.append(&mut d),
            ChainOutcome::Refused(mut d, err) => {
                decisions.append(&mut d);
                return Err(err);
            }
        }
        if tenant.chain.has_hook(Hook::InspectRequest) {
            rewritten =
                guardrails::inspect_request(&state.plugins, tenant, ctx, body, &usage, decisions)
                    .await?;
            // Later plugins see the body that will be sent.
            if let Some(b) = &rewritten {
                ctx.body_bytes = u32::try_from(b.len()).unwrap_or(u32::MAX);
                ctx.prompt_tokens_estimate = ctx.body_bytes / 4;
            }
        }
    }
    let body = rewritten.as_ref().unwrap_or(body);
    if let Some(ctx) = &ctx
        && tenant.chain.has_hook(Hook::Route)
    {
        let outcome = tenant
            .chain
            .route(&state.plugins, ctx, body, Some(&usage), decisions)
            .await;
        match outcome {
            RouteOutcome::Planned {
                plugin,
                plan: p,
                max_attempts,
            } => {
                plan = Some(Plan::resolve(
                    p,
                    &plugin,
                    &state.providers,
                    &summary.model,
                    max_attempts,
                )?);
            }
            RouteOutcome::Unrouted => {}
            RouteOutcome::Failed(err) => return Err(err),
        }
    }
    let mut plan = match plan {
        Some(p) => p,
        None => Plan::single(
            default_provider(state, tenant, &key.tenant_id)?,
            &summary.model,
        ),
    };
    enforce_pins(&mut plan, tenant, decisions)?;
    // Counting tokens costs nothing upstream: no budget applies and nothing is counted.
    if endpoint == Endpoint::CountTokens {
        return Ok(Decided {
            plan,
            reservation: None,
            fleet_hold: None,
            body: rewritten,
            ctx,
            usage,
        });
    }
    let mut limits = Vec::new();
    if let Some(ctx) = &ctx
        && tenant.chain.has_hook(Hook::Budget)
    {
        let first = plan.targets.first();
        let target = RouteTarget {
            provider: first.provider.id.clone(),
            model: Some(first.model.clone()),
            weight: 1,
            max_tokens_cap: first.max_tokens_cap,
        };
        let outcome = tenant
            .chain
            .budget(&state.plugins, ctx, body, &target, &usage, decisions)
            .await;
        match outcome {
            BudgetOutcome::Granted {
                limits: granted,
                downgrade,
            } => {
                limits = crate::plugins::ledger_limits(granted, &scopes);
                if let Some((plugin, t)) = downgrade {
                    plan.downgrade(t, &plugin, &state.providers, &summary.model)?;
                    enforce_pins(&mut plan, tenant, decisions)?;
                }
            }
            BudgetOutcome::Refused(err) => return Err(err),
        }
    }
    let first = plan.targets.first();
    let max_tokens = match (summary.max_tokens, first.max_tokens_cap) {
        (Some(m), Some(cap)) => Some(m.min(cap)),
        (m, cap) => m.or(cap),
    };
    // What is sent is reserved for: a guardrail may have added to the prompt.
    let prompt_estimate = ctx
        .as_ref()
        .map_or(summary.prompt_tokens_estimate, |c| c.prompt_tokens_estimate);
    let estimate = budget::estimate(
        &state.pricing,
        &first.provider.id,
        &first.model,
        prompt_estimate,
        max_tokens,
    );
    let counted = scopes.counted(&state.usage_keys, &limits);
    let now = usage_at_ms.unwrap_or_else(crate::ids::now_ms);
    let reservation = ledger
        .admit(counted.clone(), limits, estimate, now, tenant.admit)
        .map_err(|refused| budget::refusal(&refused, now))?;
    let fleet_hold = match fleet {
        None => None,
        Some(fleet) => {
            // The local admission holds this replica's caps; the fleet's, every replica's
            // usage. A refusal here drops the local reservation with the request.
            let limits = reservation.limits();
            // Boxed: the Redis call's future is large, and inlined it would grow every
            // request's future, fleet or not.
            match Box::pin(fleet.admit(&counted, limits, estimate, now, tenant.admit)).await {
                Ok(hold) => hold,
                Err(FleetError::Refused(e)) => {
                    return Err(budget::refusal(&Refused::Exceeded(e), now));
                }
                Err(FleetError::Unavailable(why)) => match fleet.mode(&key.tenant_id) {
                    FaultMode::FailClosed => {
                        return Err(ApiError::new(
                            ErrorKind::Overloaded,
                            format!(
                                "the budget store is unavailable, so requests with \
                                     budget limits are refused for now ({why}); retry shortly"
                            ),
                        ));
                    }
                    FaultMode::FailOpen => {
                        fleet.admitted_locally();
                        None
                    }
                },
            }
        }
    };
    Ok(Decided {
        plan,
        reservation: Some((reservation, counted)),
        fleet_hold,
        body: rewritten,
        ctx,
        usage,
    })
}

/// Drops the plan's targets the operator's pinned allow-lists do not allow the tenant;
/// refuses the request (403) when none is left. Every drop is in the log row.
fn enforce_pins(
    plan: &mut Plan,
    tenant: &TenantRuntime,
    decisions: &mut Vec<crate::store::PluginDecision>,
) -> Result<(), ApiError> {
    let pins = &tenant.pinned;
    if pins.allowed_providers.is_none() && pins.allowed_models.is_none() {
        return Ok(());
    }
    let mut first_refusal = None;
    let mut dropped = 0u32;
    let total = plan.targets.len();
    let kept = plan
        .targets
        .retain(|t| match pins.allows(&t.provider.id, &t.model) {
            Ok(()) => true,
            Err(why) => {
                first_refusal.get_or_insert(why);
                dropped += 1;
                false
            }
        });
    let Some(why) = first_refusal else {
        return Ok(());
    };
    decisions.push(crate::store::PluginDecision {
        plugin: "operator allow-list".into(),
        outcome: if kept { "filtered" } else { "deny" }.into(),
        detail: Some(format!("{dropped} of {total} target(s) dropped: {why}")),
        annotations: Vec::new(),
        micros: 0,
        at_us: crate::ids::now_us(),
        ..Default::default()
    });
    if !kept {
        return Err(ApiError::forbidden(format!(
            "{why}; the operator pins which providers and models this tenant may use"
        )));
    }
    Ok(())
}

/// The provider serving a tenant's unrouted requests.
pub fn default_provider(
    state: &Pipeline,
    tenant: &TenantRuntime,
    tenant_id: &str,
) -> Result<Arc<Provider>, ApiError> {
    let id = tenant
        .default_provider
        .as_deref()
        .or(state.default_provider.as_deref())
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "no route for this request: no routing plugin chose a target and tenant \
                 '{tenant_id}' has no default_provider"
            ))
        })?;
    state
        .providers
        .get(id)
        .cloned()
        .ok_or_else(|| ApiError::internal(format!("provider '{id}' is not configured")))
}

/// What the gateway reads from a request body; everything else is skipped unparsed.
#[derive(serde::Deserialize)]
struct RawBody<'a> {
    #[serde(borrow, default)]
    model: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
    #[serde(default)]
    messages: Option<ItemCount>,
}

/// Counts a JSON array's items without building them.
struct ItemCount(u32);

impl<'de> serde::Deserialize<'de> for ItemCount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ItemCount;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ItemCount, A::Error> {
                let mut n = 0u32;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    n = n.saturating_add(1);
                }
                Ok(ItemCount(n))
            }
        }
        d.deserialize_seq(V)
    }
}

/// The request fields plugins and logs need.
#[derive(Debug)]
pub struct BodySummary {
    pub model: String,
    pub stream: bool,
    pub max_tokens: Option<u32>,
    pub message_count: u32,
    pub prompt_tokens_estimate: u32,
}

impl BodySummary {
    /// Reads the summary in one pass, or explains what is wrong with the body.
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        match body.iter().find(|b| !b.is_ascii_whitespace()) {
            None => {
                return Err(ApiError::invalid(
                    "request body is empty: expected a JSON object",
                ));
            }
            // serde would also accept a struct written as an array; a body must be an object.
            Some(b'{') => {}
            Some(_) => return Err(ApiError::invalid("request body must be a JSON object")),
        }
        let raw: RawBody<'_> = serde_json::from_slice(body)
            .map_err(|e| ApiError::invalid(format!("request body is not valid JSON: {e}")))?;
        let model = raw
            .model
            .filter(|m| !m.is_empty())
            .ok_or_else(|| ApiError::invalid("model: field required"))?
            .into_owned();
        let max = raw.max_tokens.or(raw.max_completion_tokens);
        Ok(Self {
            model,
            stream: raw.stream.unwrap_or(false),
            max_tokens: max.map(|m| u32::try_from(m).unwrap_or(u32::MAX)),
            message_count: raw.messages.map_or(0, |c| c.0),
            // About four bytes of JSON per token: cheap and good enough for policies.
            prompt_tokens_estimate: u32::try_from(body.len() / 4).unwrap_or(u32::MAX),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::BodySummary;

    #[test]
    fn summary_reads_fields_and_rejects_bad_bodies() {
        let s = BodySummary::parse(
            br#"{"model":"m","max_tokens":10,"stream":true,"messages":[{},{"a":[1]}]}"#,
        )
        .expect("valid");
        assert_eq!(
            (s.model.as_str(), s.max_tokens, s.stream, s.message_count),
            ("m", Some(10), true, 2)
        );
        assert!(
            BodySummary::parse(b"[1]")
                .expect_err("array")
                .message
                .contains("JSON object")
        );
        assert!(
            BodySummary::parse(b"{}")
                .expect_err("no model")
                .message
                .contains("model")
        );
        assert!(
            BodySummary::parse(br#"{"model":5}"#)
                .expect_err("type")
                .message
                .contains("invalid type")
        );
        assert!(
            BodySummary::parse(b"{\"model\":")
                .expect_err("eof")
                .message
                .contains("EOF")
        );
        assert!(
            BodySummary::parse(b"")
                .expect_err("empty")
                .message
                .contains("empty")
        );
    }
}
