//! Usage, budgets and budget alerts for admins: `GET /usage` (from the request log,
//! grouped), `GET /budgets` (the ledger's live view of every enforced limit) and
//! `GET /alerts` (thresholds crossed).

use super::{AdminResult, invalid};
use crate::control::ControlPlane;
use crate::error::ApiError;
use crate::ledger::{self, Metric, Period, Window};
use crate::store::{UsageGroup, UsageQuery, UsageRow};
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;

/// `GET /usage?tenant=&by=team|user|key|model|provider|metadata.<key>&period=day&window=calendar`
/// (or `since=`/`until=` instead of a period).
pub async fn usage(
    State(state): State<Arc<ControlPlane>>,
    RawQuery(raw): RawQuery,
) -> AdminResult<Response> {
    let now = crate::ids::now_ms();
    let mut tenant = None;
    let mut by = UsageGroup::None;
    let mut by_text = String::new();
    let mut period = Period::Day;
    let mut window = Window::Calendar;
    let (mut since, mut until) = (None, None);
    for (k, v) in form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes()) {
        match &*k {
            "tenant" => tenant = Some(v.into_owned()),
            "by" => {
                by = v.parse().map_err(ApiError::invalid)?;
                by_text = v.into_owned();
            }
            "period" => period = parse_enum("period", &v)?,
            "window" => window = parse_enum("window", &v)?,
            "since" => {
                since = Some(crate::time::parse_time(&v, now).map_err(|e| invalid("since", e))?)
            }
            "until" => {
                until = Some(crate::time::parse_time(&v, now).map_err(|e| invalid("until", e))?)
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "unknown parameter '{other}' (tenant, by, period, window, since, until)"
                )));
            }
        }
    }
    let since_ms = since.unwrap_or_else(|| ledger::window_start_ms(period, window, now));
    let until_ms = until.unwrap_or(now + 1);
    let rows = state
        .store
        .usage_report(UsageQuery {
            tenant: tenant.clone(),
            by,
            since_ms,
            until_ms,
        })
        .await
        .map_err(ApiError::from)?;
    let mut total = UsageRow::default();
    for r in &rows {
        total.add(r);
    }
    Ok(Json(json!({
        "tenant": tenant,
        "by": if by_text.is_empty() { "none" } else { by_text.as_str() },
        "period": period,
        "window": window,
        "since_ms": since_ms,
        "until_ms": until_ms,
        "data": rows,
        "total": total,
    }))
    .into_response())
}

/// Limits listed by `GET /budgets` unless `limit=` says otherwise, and at most.
const BUDGETS_DEFAULT: usize = 500;
const BUDGETS_MAX: usize = 5_000;

/// `GET /budgets?tenant=&limit=`: limits enforced so far, per scope value, with its
/// limit, spend (settled and reserved), what remains and when it resets; the first
/// `limit` (default 500, at most 5000) by tenant, name and value, with the `total`.
pub async fn budgets(
    State(state): State<Arc<ControlPlane>>,
    RawQuery(raw): RawQuery,
) -> AdminResult<Response> {
    let (tenant, max) = budgets_params(raw.as_deref())?;
    let now = crate::ids::now_ms();
    // In a fleet the limits and counts are every replica's, from Redis; while it is
    // unreachable this replica's own are shown, and `counted_by` says so.
    let fleet_view = match &state.fleet {
        Some(f) => {
            let tenants: Vec<String> = match &tenant {
                Some(t) => vec![t.clone()],
                None => state
                    .tenants
                    .runtimes()
                    .into_iter()
                    .map(|(t, _)| t)
                    .collect(),
            };
            f.view(&tenants, now, max).await.ok()
        }
        None => None,
    };
    let counted_by = match (&state.fleet, &fleet_view) {
        (Some(_), Some(_)) => "fleet",
        (Some(_), None) => "replica",
        (None, _) => "gateway",
    };
    let view = match fleet_view {
        Some(v) => v,
        None => state.ledger.limits_seen(tenant.as_deref(), now, max),
    };
    let data: Vec<_> = view
        .limits
        .into_iter()
        .map(|(l, r)| {
            let spent = r.settled.metric(l.metric);
            let reserved = r.reserved.metric(l.metric);
            let used = spent + reserved;
            json!({
                "tenant": &*l.scope.tenant,
                "budget": l.name,
                "scope": l.scope.kind_label(),
                "value": &*l.scope.value,
                "metric": l.metric,
                "period": l.period,
                "window": l.window,
                "limit": l.limit,
                "spent": round(l.metric, spent),
                "reserved": round(l.metric, reserved),
                "remaining": round(l.metric, (l.limit - used).max(0.0)),
                "used_pct": if l.limit > 0.0 { (used / l.limit * 1000.0).round() / 10.0 } else { 0.0 },
                "resets_at_ms": r.resets_at_ms,
                "resets_at": (r.resets_at_ms != i64::MAX).then(|| ledger::rfc3339(r.resets_at_ms)),
                "granted_by": &*l.plugin,
                "counted_by": counted_by,
            })
        })
        .collect();
    let truncated = view.total > data.len();
    Ok(Json(json!({ "data": data, "total": view.total, "truncated": truncated })).into_response())
}

fn budgets_params(raw: Option<&str>) -> AdminResult<(Option<String>, usize)> {
    let mut tenant = None;
    let mut max = BUDGETS_DEFAULT;
    for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match &*k {
            "tenant" => tenant = Some(v.into_owned()),
            "limit" => {
                max = v
                    .parse::<usize>()
                    .map_err(|_| invalid("limit", format!("'{v}' is not a number")))?
                    .clamp(1, BUDGETS_MAX)
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "unknown parameter '{other}' (tenant, limit)"
                )));
            }
        }
    }
    Ok((tenant, max))
}

/// `GET /alerts?tenant=&limit=`: budget thresholds crossed, newest first.
pub async fn alerts(
    State(state): State<Arc<ControlPlane>>,
    RawQuery(raw): RawQuery,
) -> AdminResult<Response> {
    let mut tenant = None;
    let mut limit = 100u32;
    for (k, v) in form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes()) {
        match &*k {
            "tenant" => tenant = Some(v.into_owned()),
            "limit" => {
                limit = v
                    .parse()
                    .map_err(|_| invalid("limit", format!("'{v}' is not a number")))?
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "unknown parameter '{other}' (tenant, limit)"
                )));
            }
        }
    }
    let limit = limit.clamp(1, 1000);
    let data = state
        .store
        .alerts(tenant, limit)
        .await
        .map_err(ApiError::from)?;
    Ok(Json(json!({ "data": data })).into_response())
}

fn parse_enum<T: serde::de::DeserializeOwned>(field: &str, v: &str) -> AdminResult<T> {
    serde_json::from_value(serde_json::Value::String(v.to_string()))
        .map_err(|_| invalid(field, format!("'{v}' is not a valid {field}")))
}

/// Dollars to the nano-dollar, counts as whole numbers: no float noise in the JSON.
fn round(metric: Metric, v: f64) -> f64 {
    match metric {
        Metric::Cost => (v * 1e9).round() / 1e9,
        Metric::Tokens | Metric::Requests => v.round(),
    }
}
