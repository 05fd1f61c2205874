//! `GET /metrics`: the Prometheus scrape, with the live budget, bundle and sandbox
//! gauges read at scrape time. Protected by the platform admin token unless the config
//! makes it public (its labels name tenants, budgets and models).

use crate::control::ControlPlane;
use crate::error::ApiError;
use crate::telemetry::{BudgetGauge, FleetGauge, Gauges, ShipGauge};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The scrape.
pub async fn scrape(State(state): State<Arc<ControlPlane>>, headers: HeaderMap) -> Response {
    if !state.settings.metrics_public && !super::is_platform(&state, &headers) {
        return ApiError::unauthenticated(
            "/metrics needs the platform admin token (Authorization: Bearer …), \
             or [metrics] public = true",
        )
        .into_response();
    }
    let text = state.metrics.render(&gauges(&state));
    let mut resp = text.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

fn gauges(state: &ControlPlane) -> Gauges {
    let now = crate::ids::now_ms();
    let mut budgets_omitted = Vec::new();
    let mut views = state
        .ledger
        .busiest_limits(now, state.settings.metrics_budget_series);
    for (tenant, view) in &views {
        if view.total > view.limits.len() {
            budgets_omitted.push((tenant.to_string(), view.total - view.limits.len()));
        }
    }
    let budgets = views
        .iter_mut()
        .flat_map(|(_, v)| std::mem::take(&mut v.limits))
        .map(|(l, r)| BudgetGauge {
            tenant: l.scope.tenant.to_string(),
            budget: l.name.clone(),
            scope: l.scope.kind_label().into_owned(),
            value: l.scope.value.to_string(),
            metric: l.metric.as_str(),
            period: l.period.as_str(),
            limit: l.limit,
            used: r.current(l.metric),
        })
        .collect();
    let runtimes = state.tenants.runtimes();
    let mut bundles: Vec<(Option<String>, u32)> = runtimes
        .iter()
        .filter_map(|(id, rt)| rt.version.map(|v| (Some(id.clone()), v)))
        .collect();
    if let Some(v) = state.tenants.platform().version {
        bundles.push((None, v));
    }
    let sandboxes = runtimes
        .iter()
        .filter_map(|(id, rt)| {
            rt.chain
                .sandbox()
                .map(|s| (id.clone(), s.in_use(), s.max_instances()))
        })
        .collect();
    let fleet = state.fleet.as_ref().map(|f| {
        let c = &f.counters;
        let n = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        FleetGauge {
            up: f.is_up(),
            errors: n(&c.unavailable),
            backlog: n(&c.backlog_len),
            dropped: n(&c.backlog_dropped),
            admitted_locally: n(&c.admitted_locally),
        }
    });
    let log_shipping = state.store.postgres().map(|pg| {
        let c = &pg.shipping;
        let n = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        ShipGauge {
            up: c.up.load(std::sync::atomic::Ordering::Relaxed),
            shipped: n(&c.shipped),
            backlog: n(&c.backlog),
            dropped: n(&c.dropped),
            errors: n(&c.errors),
        }
    });
    Gauges {
        budgets,
        budgets_omitted,
        bundles,
        sandboxes,
        fleet,
        log_shipping,
    }
}
