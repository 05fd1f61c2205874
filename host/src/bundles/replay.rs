//! Dry run of a candidate bundle: the tenant's logged requests are decided again by the
//! candidate's chain (policy, routing, budgets) and compared with what actually happened,
//! so an admin sees which requests a change would deny, reroute or stop on a budget
//! before applying it.
//!
//! Nothing a replay does is visible outside its report: it writes no log row, charges
//! no real budget and fires no alert. Budgets are counted in a scratch ledger that starts
//! empty at the window's start and is charged, in arrival order, with what each request
//! the candidate admits used (its logged usage priced at the candidate's target, or its
//! reservation estimate when it was never served).

use super::{BundleRequest, Scope, build, refused, stored_spec};
use crate::control::ControlPlane;
use crate::error::ApiError;
use crate::ledger::Ledger;
use crate::pipeline::{self, BodySummary, Decide};
use crate::plugins::Endpoint;
use crate::store::{ApiKey, LogRecord};
use crate::tenancy::{TenantLayer, TenantRuntime};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// Most requests one replay runs over.
pub const MAX_REQUESTS: u32 = 50_000;
/// Longest one replay runs; what is left is reported as not replayed.
const TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Marks a tenant as replaying while it lives: one replay per tenant at a time.
struct Running<'a> {
    state: &'a ControlPlane,
    tenant: String,
}

impl<'a> Running<'a> {
    fn start(state: &'a ControlPlane, tenant: &str) -> Result<Self, ApiError> {
        let mut set = crate::sync::lock(&state.replays);
        if !set.insert(tenant.to_string()) {
            return Err(ApiError::invalid(format!(
                "a replay for tenant '{tenant}' is already running; try again when it ends"
            ))
            .with_status(axum::http::StatusCode::CONFLICT));
        }
        Ok(Self {
            state,
            tenant: tenant.to_string(),
        })
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut set = crate::sync::lock(&self.state.replays);
        set.remove(&self.tenant);
    }
}

/// `POST .../bundle/replay`: a candidate bundle and the window of logged requests.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// The candidate, as `PUT .../bundle` takes it.
    pub bundle: BundleRequest,
    /// Window start: Unix ms, RFC 3339, or an age such as `24h` (default `24h`).
    #[serde(default)]
    pub since: Option<String>,
    /// Window end (default: now).
    #[serde(default)]
    pub until: Option<String>,
    /// Most requests replayed, oldest first (default and cap: 50 000).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// What happened to one request, or would happen under the candidate.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Admitted and sent to `provider`/`model` (the plan's first target), with what
    /// the request guardrails did to it, if anything.
    Served {
        provider: String,
        model: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        guardrail: Option<GuardrailVerdict>,
    },
    /// Refused by a plugin (policy, route, budget hook, or a plugin failure).
    Denied {
        status: u16,
        plugin: Option<String>,
        message: String,
    },
    /// Refused by a budget or rate limit.
    BudgetExceeded { status: u16, message: String },
    /// Refused by a check that no bundle changes (e.g. the key's scope).
    Refused { status: u16, message: String },
}

/// What the request guardrails (`inspect-request`) did to a served request.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GuardrailVerdict {
    /// `rewrite` when one rewrote the request (it was sent changed), else `flag`.
    pub action: &'static str,
    /// The guardrails that rewrote or flagged it, in chain order.
    pub plugins: Vec<String>,
    /// What they found (never the matched text).
    pub findings: Vec<crate::store::Finding>,
}

impl GuardrailVerdict {
    /// The verdict recorded in `decisions`, if a request guardrail rewrote or flagged.
    fn of(decisions: &[crate::store::PluginDecision]) -> Option<Self> {
        let mut v = Self {
            action: "flag",
            plugins: Vec::new(),
            findings: Vec::new(),
        };
        for d in decisions {
            if d.hook.as_deref() != Some("inspect-request") {
                continue;
            }
            match d.outcome.as_str() {
                "rewrite" => v.action = "rewrite",
                "flag" => {}
                _ => continue,
            }
            v.plugins.push(d.plugin.clone());
            v.findings.extend(d.findings.iter().cloned());
        }
        (!v.plugins.is_empty()).then_some(v)
    }
}

/// How a request's outcome changes under the candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Served before, denied by a plugin now.
    NewlyDenied,
    /// Served before, stopped by a budget or rate limit now.
    BudgetHit,
    /// Refused before, served now.
    NewlyAllowed,
    /// Served before and now, by another provider or model.
    TargetChanged,
    /// Refused before and now, for another reason.
    DenialChanged,
    /// Served before and now, but a request guardrail would now rewrite it (redact,
    /// extend the system prompt) where it was sent unchanged.
    Rewritten,
    /// Served before and now, unchanged, but a request guardrail would now flag it.
    Flagged,
}

/// One request whose outcome changes.
#[derive(Debug, Serialize)]
pub struct ChangedRequest {
    pub request_id: String,
    pub ts_ms: i64,
    pub team: Option<String>,
    pub user: Option<String>,
    pub model: String,
    pub change: Change,
    pub before: Outcome,
    pub after: Outcome,
}

/// The replay's answer.
#[derive(Debug, Serialize)]
pub struct ReplayReport {
    pub tenant: String,
    pub since_ms: i64,
    pub until_ms: i64,
    /// Requests decided again.
    pub replayed: u32,
    /// Logged requests that could not be replayed (never reached the plugins).
    pub skipped: u32,
    /// How many replayed requests change, by kind.
    pub summary: Summary,
    /// Every request whose outcome changes, oldest first.
    pub changes: Vec<ChangedRequest>,
    /// Every request of the window was replayed (false: the time limit stopped it).
    pub complete: bool,
    /// Caveats about the replay's fidelity.
    pub notes: Vec<String>,
}

/// Counts of changes by kind.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub unchanged: u32,
    pub newly_denied: u32,
    pub budget_hits: u32,
    pub newly_allowed: u32,
    pub target_changed: u32,
    pub denial_changed: u32,
    pub rewritten: u32,
    pub flagged: u32,
}

impl Summary {
    fn count(&mut self, change: Option<Change>) {
        let slot = match change {
            None => &mut self.unchanged,
            Some(Change::NewlyDenied) => &mut self.newly_denied,
            Some(Change::BudgetHit) => &mut self.budget_hits,
            Some(Change::NewlyAllowed) => &mut self.newly_allowed,
            Some(Change::TargetChanged) => &mut self.target_changed,
            Some(Change::DenialChanged) => &mut self.denial_changed,
            Some(Change::Rewritten) => &mut self.rewritten,
            Some(Change::Flagged) => &mut self.flagged,
        };
        *slot += 1;
    }
}

/// Runs `req`'s candidate bundle for `tenant` over the window's logged requests.
pub async fn replay(
    state: &Arc<ControlPlane>,
    tenant: &str,
    req: ReplayRequest,
) -> Result<ReplayReport, ApiError> {
    let now = crate::ids::now_ms();
    let since_ms = window_bound(req.since.as_deref(), "since", now)?.unwrap_or(now - 86_400_000);
    let until_ms = window_bound(req.until.as_deref(), "until", now)?.unwrap_or(now + 1);
    if since_ms >= until_ms {
        return Err(ApiError::invalid("since must be before until"));
    }
    let limit = req.limit.unwrap_or(MAX_REQUESTS).clamp(1, MAX_REQUESTS);
    let _running = Running::start(state, tenant)?;
    let started = std::time::Instant::now();
    let scope = Scope::Tenant(tenant.to_string());
    let (spec, blobs) = stored_spec(&scope, req.bundle, state.settings.max_component_bytes)?;
    // The same checks as an apply: a candidate that would be refused is refused here.
    let built = build(state, &scope, &spec, &blobs, true)
        .await
        .map_err(refused)?;
    let base = state.settings.config_tenants.get(tenant);
    let current = state.tenant(tenant);
    // The candidate runs under the tenant's limits in its one admin slot: the replay
    // neither waits behind the tenant's traffic nor holds more than one pool slot. It
    // replaces only the tenant's own layer: the platform's and the operator's pinned
    // rules decide as they do now.
    let sandbox = Some(state.admin_sandbox(tenant));
    let layer = TenantLayer {
        default_provider: spec
            .default_provider
            .clone()
            .or_else(|| base.and_then(|t| t.default_provider.clone())),
        models: Vec::new(),
        own: built.plugins,
        version: None,
    };
    let candidate = current.with_layer(tenant, &state.tenants.platform(), layer, sandbox);

    let rows = state
        .store
        .tenant_requests(tenant.to_string(), since_ms, until_ms, limit)
        .await
        .map_err(ApiError::from)?;
    let keys: HashMap<String, ApiKey> = state
        .store
        .list_keys(Some(tenant.to_string()))
        .await
        .map_err(ApiError::from)?
        .into_iter()
        .map(|k| (k.id.clone(), k))
        .collect();

    let ledger = Arc::new(Ledger::new());
    let mut report = ReplayReport {
        tenant: tenant.to_string(),
        since_ms,
        until_ms,
        replayed: 0,
        skipped: 0,
        summary: Summary::default(),
        changes: Vec::new(),
        complete: true,
        notes: vec![
            "budgets are counted from the start of the window, not from their real spend".into(),
            "plugins reading request-body see the captured body where the tenant captures \
             bodies, else only the model, max_tokens and stream fields"
                .into(),
            "request guardrails inspect the captured conversation; without captured bodies \
             (or where a body was cut at the capture limit) they see none, so rewrites and \
             flags show only for requests whose whole body was kept; a body a guardrail \
             already rewrote was kept rewritten, and a candidate that rewrites less than \
             before is not reported"
                .into(),
        ],
    };
    for (i, row) in rows.iter().enumerate() {
        if started.elapsed() > TIME_LIMIT {
            report.complete = false;
            report.notes.push(format!(
                "stopped after {i} of {} requests: a replay runs at most {} s; narrow the window",
                rows.len(),
                TIME_LIMIT.as_secs()
            ));
            break;
        }
        let (Some(model), Some(before)) = (row.requested_model.clone(), logged_outcome(row)) else {
            report.skipped += 1;
            continue;
        };
        let key = keys.get(row.key_id.as_deref().unwrap_or_default());
        let after = decide_again(state, &candidate, &ledger, row, key, &model).await;
        // Counting tokens is answered by whichever target can count: only whether it
        // is admitted matters.
        let change = compare(&before, &after, row.endpoint != "count_tokens");
        if matches!(before, Outcome::Refused { .. }) && matches!(after, Outcome::Refused { .. }) {
            report.skipped += 1;
            continue;
        }
        report.replayed += 1;
        report.summary.count(change);
        if let Some(change) = change {
            report.changes.push(ChangedRequest {
                request_id: row.request_id.clone(),
                ts_ms: row.ts_ms,
                team: row.team.clone(),
                user: row.user.clone(),
                model,
                change,
                before,
                after,
            });
        }
    }
    Ok(report)
}

/// A window bound from the request, if given.
fn window_bound(raw: Option<&str>, field: &str, now: i64) -> Result<Option<i64>, ApiError> {
    raw.map(|v| {
        crate::time::parse_time(v, now).map_err(|e| ApiError::invalid(format!("{field}: {e}")))
    })
    .transpose()
}

/// What the log says happened to a request; `None` when it cannot be replayed (the
/// client left before admission decided).
fn logged_outcome(row: &LogRecord) -> Option<Outcome> {
    if let Some(first) = row.attempts.first() {
        return Some(Outcome::Served {
            provider: first.provider.clone(),
            model: first.model.clone(),
            guardrail: GuardrailVerdict::of(&row.decisions),
        });
    }
    if row.admitted || row.status < 400 {
        // Admitted but failed before an upstream saw it (say, a body that cannot be
        // translated), or answered locally: its target is not known, only that it passed.
        return Some(Outcome::Served {
            provider: row.provider.clone().unwrap_or_default(),
            model: row.served_model.clone().unwrap_or_default(),
            guardrail: GuardrailVerdict::of(&row.decisions),
        });
    }
    if row.status == 499 {
        return None;
    }
    Some(refusal_of(row))
}

/// How the log says a request was refused.
fn refusal_of(row: &LogRecord) -> Outcome {
    let message = row.error.clone().unwrap_or_default();
    let refusing = row
        .decisions
        .iter()
        .rev()
        .find(|d| d.outcome == "deny" || d.outcome == "error");
    if row.status == 429 && refusing.is_none_or(|d| d.outcome != "error") && is_budget(&message) {
        return Outcome::BudgetExceeded {
            status: row.status,
            message,
        };
    }
    match refusing {
        Some(d) => Outcome::Denied {
            status: row.status,
            plugin: Some(d.plugin.clone()),
            message,
        },
        None if row.decisions.is_empty() => Outcome::Refused {
            status: row.status,
            message,
        },
        None => Outcome::Denied {
            status: row.status,
            plugin: None,
            message,
        },
    }
}

/// Budget and rate-limit refusals name their limit this way (see `ledger::Exceeded`).
fn is_budget(message: &str) -> bool {
    message.contains("budget '") || message.contains("rate limit '")
}

/// Decides a logged request again under `candidate`, charging the scratch `ledger`.
async fn decide_again(
    state: &ControlPlane,
    candidate: &TenantRuntime,
    ledger: &Arc<Ledger>,
    row: &LogRecord,
    key: Option<&ApiKey>,
    model: &str,
) -> Outcome {
    let key = key.cloned().unwrap_or_else(|| ApiKey {
        id: row.key_id.clone().unwrap_or_default(),
        tenant_id: row.tenant_id.clone(),
        name: String::new(),
        team: None,
        user: None,
        models: None,
        prefix: String::new(),
        created_at: 0,
        expires_at: None,
        revoked_at: None,
        secret_hash: String::new(),
    });
    if let Err(e) = crate::auth::check_scope(&key, &row.metadata, Some(model)) {
        return Outcome::Refused {
            status: e.status.as_u16(),
            message: e.message,
        };
    }
    let endpoint = match row.endpoint.as_str() {
        "chat_completions" => Endpoint::ChatCompletions,
        "count_tokens" => Endpoint::CountTokens,
        _ => Endpoint::Messages,
    };
    let body = stand_in_body(row, model);
    let summary = BodySummary {
        model: model.to_string(),
        stream: row.stream,
        max_tokens: row.max_tokens,
        message_count: row.message_count,
        prompt_tokens_estimate: row.body_bytes / 4,
    };
    // The candidate's decisions go to a copy of the row: the logged ones stay as they were.
    let mut scratch = LogRecord {
        decisions: Vec::new(),
        ..row.clone()
    };
    let decided = pipeline::decide(Decide {
        state,
        tenant: candidate,
        ledger,
        fleet: None,
        record: &mut scratch,
        key: &key,
        summary: &summary,
        endpoint,
        body: &body,
        usage_at_ms: Some(row.ts_ms),
    })
    .await;
    let decisions = scratch.decisions;
    match decided {
        Ok(d) => {
            let first = d.plan.targets.first();
            if let Some((reservation, _)) = d.reservation {
                let used = if row.attempts.is_empty() {
                    reservation.estimate()
                } else {
                    let cost = state
                        .pricing
                        .cost(&first.provider.id, &first.model, &row.usage);
                    crate::budget::actual(&row.usage, cost.total_nano)
                };
                // Alerts from a replay are hypothetical: they are not delivered.
                let _ = ledger.settle(reservation, used, row.ts_ms);
            }
            Outcome::Served {
                provider: first.provider.id.clone(),
                model: first.model.clone(),
                guardrail: GuardrailVerdict::of(&decisions),
            }
        }
        Err(e) => {
            let status = e.status.as_u16();
            let refusing = decisions
                .iter()
                .rev()
                .find(|d| d.outcome == "deny" || d.outcome == "error");
            let by_ledger = matches!(
                e.kind,
                crate::error::ErrorKind::BudgetExceeded | crate::error::ErrorKind::RateLimit
            ) && refusing.is_none();
            if by_ledger {
                Outcome::BudgetExceeded {
                    status,
                    message: e.message,
                }
            } else {
                Outcome::Denied {
                    status,
                    plugin: refusing.map(|d| d.plugin.clone()),
                    message: e.message,
                }
            }
        }
    }
}

/// The body plugins get in a replay: the captured body when the tenant keeps bodies,
/// else what the log kept of the request.
fn stand_in_body(row: &LogRecord, model: &str) -> Bytes {
    // A body cut at the capture limit is not JSON any more.
    if let Some(b) = row.bodies.as_ref().filter(|b| !b.request_truncated) {
        return b.request.clone();
    }
    let mut body = serde_json::json!({ "model": model, "stream": row.stream });
    if let (Some(m), Some(o)) = (row.max_tokens, body.as_object_mut()) {
        o.insert("max_tokens".into(), m.into());
    }
    Bytes::from(body.to_string())
}

/// How `after` differs from `before`, if it does. A served request whose target is
/// unknown (empty provider), or any when `targets_matter` is false, only compares
/// served against refused.
fn compare(before: &Outcome, after: &Outcome, targets_matter: bool) -> Option<Change> {
    use Outcome::*;
    match (before, after) {
        (
            Served {
                provider: a,
                model: am,
                guardrail: ag,
            },
            Served {
                provider: b,
                model: bm,
                guardrail: bg,
            },
        ) if (a, am) == (b, bm) || !targets_matter || a.is_empty() || b.is_empty() => {
            let action = |g: &Option<GuardrailVerdict>| g.as_ref().map(|g| g.action);
            match (action(ag), action(bg)) {
                (Some("rewrite"), _) | (_, None) => None,
                (_, Some("rewrite")) => Some(Change::Rewritten),
                (None, Some(_)) => Some(Change::Flagged),
                _ => None,
            }
        }
        (Served { .. }, Served { .. }) => Some(Change::TargetChanged),
        (Served { .. }, BudgetExceeded { .. }) => Some(Change::BudgetHit),
        (Served { .. }, _) => Some(Change::NewlyDenied),
        (_, Served { .. }) => Some(Change::NewlyAllowed),
        (a, b) if same_refusal(a, b) => None,
        _ => Some(Change::DenialChanged),
    }
}

/// Two refusals for the same reason (status and message).
fn same_refusal(a: &Outcome, b: &Outcome) -> bool {
    let key = |o: &Outcome| match o {
        Outcome::Denied {
            status, message, ..
        }
        | Outcome::BudgetExceeded { status, message }
        | Outcome::Refused { status, message } => Some((*status, budget_free(message))),
        Outcome::Served { .. } => None,
    };
    key(a) == key(b)
}

/// A refusal message without its figures that move with time (spend, reset time), so
/// the same budget refusing twice reads as the same reason.
fn budget_free(message: &str) -> String {
    if is_budget(message) {
        message.split(':').next().unwrap_or(message).to_string()
    } else {
        message.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AttemptRecord, PluginDecision};

    fn served(provider: &str, model: &str) -> Outcome {
        Outcome::Served {
            provider: provider.into(),
            model: model.into(),
            guardrail: None,
        }
    }

    fn guarded(action: &'static str) -> Outcome {
        Outcome::Served {
            provider: "a".into(),
            model: "m".into(),
            guardrail: Some(GuardrailVerdict {
                action,
                plugins: vec!["pii-redact".into()],
                findings: Vec::new(),
            }),
        }
    }

    #[test]
    fn changes_are_classified() {
        let deny = Outcome::Denied {
            status: 403,
            plugin: Some("p".into()),
            message: "no".into(),
        };
        let budget = Outcome::BudgetExceeded {
            status: 429,
            message: "budget 'b' of team 'x' is exhausted: $1 of $1".into(),
        };
        assert_eq!(compare(&served("a", "m"), &served("a", "m"), true), None);
        assert_eq!(
            compare(&served("a", "m"), &served("b", "m"), true),
            Some(Change::TargetChanged)
        );
        assert_eq!(
            compare(&served("a", "m"), &deny, true),
            Some(Change::NewlyDenied)
        );
        assert_eq!(
            compare(&served("a", "m"), &budget, true),
            Some(Change::BudgetHit)
        );
        assert_eq!(
            compare(&deny, &served("a", "m"), true),
            Some(Change::NewlyAllowed)
        );
        assert_eq!(compare(&deny, &deny.clone(), true), None);
        assert_eq!(compare(&deny, &budget, true), Some(Change::DenialChanged));
        // Unknown targets, or endpoints where targets do not matter, compare as served.
        assert_eq!(compare(&served("", ""), &served("b", "m"), true), None);
        assert_eq!(compare(&served("a", "m"), &served("b", "m"), false), None);
        // Request guardrails that now rewrite or flag what went through unchanged.
        let plain = served("a", "m");
        assert_eq!(
            compare(&plain, &guarded("rewrite"), true),
            Some(Change::Rewritten)
        );
        assert_eq!(
            compare(&plain, &guarded("flag"), true),
            Some(Change::Flagged)
        );
        assert_eq!(
            compare(&guarded("flag"), &guarded("rewrite"), true),
            Some(Change::Rewritten)
        );
        assert_eq!(
            compare(&guarded("rewrite"), &guarded("rewrite"), true),
            None
        );
        assert_eq!(compare(&guarded("rewrite"), &plain, true), None);
        assert_eq!(
            compare(&plain, &served("b", "m"), true),
            Some(Change::TargetChanged)
        );
    }

    #[test]
    fn the_log_says_who_refused() {
        let mut row = LogRecord {
            status: 403,
            error: Some("nope".into()),
            decisions: vec![PluginDecision {
                plugin: "policy".into(),
                outcome: "deny".into(),
                detail: None,
                annotations: vec![],
                micros: 1,
                at_us: 0,
                ..Default::default()
            }],
            ..LogRecord::default()
        };
        assert!(matches!(
            logged_outcome(&row),
            Some(Outcome::Denied { plugin: Some(ref p), .. }) if p == "policy"
        ));
        row.decisions.clear();
        assert!(matches!(
            logged_outcome(&row),
            Some(Outcome::Refused { .. })
        ));
        row.status = 499;
        assert_eq!(
            logged_outcome(&row),
            None,
            "the client left before a decision"
        );
        row.admitted = true;
        assert_eq!(logged_outcome(&row), Some(served("", "")));
        row.admitted = false;
        row.attempts.push(AttemptRecord {
            provider: "a".into(),
            model: "m".into(),
            target: 0,
            status: Some(500),
            latency_ms: 1,
            error: None,
            at_us: 0,
        });
        assert_eq!(logged_outcome(&row), Some(served("a", "m")));
    }
}
