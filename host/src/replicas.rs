//! Keeps this replica's caches in step with the shared store (`[store] kind =
//! "postgres"`): keys, tenant admin tokens and active bundles changed by any replica
//! take effect here within a second.
//!
//! Changes arrive as PostgreSQL notifications ([`PgControl::listen`]) carrying the
//! shared change counter's new value; the counter is checked every `[store] resync_ms`
//! as the safety net for a notification lost while the listener reconnected, and a
//! reload that failed is retried in full on the next check. While PostgreSQL is down
//! the caches keep serving what they hold.

use crate::control::ControlPlane;
use crate::store::postgres::{Change, PgControl};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Starts applying changes from the shared store to `state`'s caches.
pub fn start(state: Arc<ControlPlane>, pg: Arc<PgControl>, resync: Duration) {
    let mut changes = pg.listen();
    tokio::spawn(async move {
        // The counter value this replica's caches reflect; `None` until first read.
        let mut seen: Option<i64> = None;
        let mut retry = false;
        // Set by a bundle activation that failed in the background.
        let bundle_failed = Arc::new(AtomicBool::new(false));
        let mut tick = tokio::time::interval(resync);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut batch = Vec::new();
            tokio::select! {
                n = changes.recv() => match n {
                    Some(n) => batch.push(n),
                    None => return,
                },
                _ = tick.tick() => match pg.change_seq().await {
                    Ok(seq) if retry || bundle_failed.swap(false, Ordering::Relaxed) || seen.is_some_and(|s| s < seq) => {
                        if !retry {
                            tracing::info!(seq, "the shared store changed without a notification; reloading");
                        }
                        batch.push(crate::store::postgres::Notified { change: Change::All, seq: Some(seq) });
                    }
                    Ok(seq) => {
                        // The listener reloads everything once it listens: the first
                        // reading only sets the baseline.
                        seen = Some(seen.map_or(seq, |s| s.max(seq)));
                        continue;
                    }
                    Err(_) => continue,
                },
            }
            // Changes that queued up meanwhile are folded into this reload.
            while let Ok(n) = changes.try_recv() {
                batch.push(n);
            }
            let newest = batch.iter().filter_map(|n| n.seq).max();
            let what: Vec<Change> = batch.into_iter().map(|n| n.change).collect();
            retry = !apply(&state, what, &bundle_failed).await;
            if !retry && let Some(seq) = newest {
                seen = Some(seen.map_or(seq, |s| s.max(seq)));
            }
        }
    });
}

/// Reloads what `batch` names; false when a reload failed (retried in full later).
async fn apply(
    state: &Arc<ControlPlane>,
    batch: Vec<Change>,
    bundle_failed: &Arc<AtomicBool>,
) -> bool {
    let all = batch.contains(&Change::All);
    let mut ok = true;
    if (all || batch.contains(&Change::Keys))
        && let Err(e) = state.keys.reload(&state.store).await
    {
        tracing::warn!(error = %e, "could not reload API keys from the shared store");
        ok = false;
    }
    if all || batch.contains(&Change::AdminTokens) {
        match state.store.admin_tokens().await {
            Ok(t) => state.admin_tokens.replace_all(t),
            Err(e) => {
                tracing::warn!(error = %e, "could not reload tenant admin tokens from the shared store");
                ok = false;
            }
        }
    }
    let mut scopes: Vec<String> = batch
        .iter()
        .filter_map(|c| match c {
            Change::Bundle(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    if all {
        match state.store.active_bundles().await {
            Ok(active) => scopes.extend(active.into_iter().map(|v| {
                v.tenant
                    .unwrap_or_else(|| crate::store::bundles::PLATFORM.into())
            })),
            Err(e) => {
                tracing::warn!(error = %e, "could not list the shared store's bundles");
                ok = false;
            }
        }
    }
    if scopes.is_empty() {
        return ok;
    }
    // The platform's `*` sorts first, so tenants compose on the platform they will run with.
    scopes.sort();
    scopes.dedup();
    // Building a bundle compiles its components: keys and tokens changed meanwhile must
    // not wait behind it. Each scope's activations stay in order under its bundle lock;
    // one that fails is logged and retried by a full reload at the next check.
    let state = state.clone();
    let failed = bundle_failed.clone();
    tokio::spawn(async move {
        for scope in scopes {
            if let Err(e) = crate::bundles::sync_scope(&state, &scope).await {
                tracing::error!(scope, error = %e, "could not activate a bundle from the shared store");
                failed.store(true, Ordering::Relaxed);
            }
        }
    });
    ok
}
