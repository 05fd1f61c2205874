//! Keeps this replica's caches in step with the shared store (`[store] kind =
//! "postgres"`): keys, tenant admin tokens and active bundles changed by any replica
//! take effect here within a second.
//!
//! Changes arrive as PostgreSQL notifications ([`PgControl::listen`]); the shared
//! change counter is checked every `[store] resync_ms` as the safety net for a
//! notification lost while the listener reconnected. While PostgreSQL is down the
//! caches keep serving what they hold.

use crate::control::ControlPlane;
use crate::store::postgres::{Change, PgControl};
use std::sync::Arc;
use std::time::Duration;

/// Starts applying changes from the shared store to `state`'s caches.
pub fn start(state: Arc<ControlPlane>, pg: Arc<PgControl>, resync: Duration) {
    let mut changes = pg.listen();
    tokio::spawn(async move {
        // The listener reloads everything once it listens; the counter's first reading
        // only sets the baseline.
        let mut seen = None;
        let mut tick = tokio::time::interval(resync);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let change = tokio::select! {
                c = changes.recv() => match c {
                    Some(c) => c,
                    None => return,
                },
                _ = tick.tick() => match pg.change_seq().await {
                    Ok(seq) if seen != Some(seq) => {
                        let first = seen.is_none();
                        seen = Some(seq);
                        if first {
                            continue;
                        }
                        tracing::info!(seq, "the shared store changed without a notification; reloading");
                        Change::All
                    }
                    _ => continue,
                },
            };
            // Changes that queued up meanwhile are folded into this reload.
            let mut batch = vec![change];
            while let Ok(c) = changes.try_recv() {
                batch.push(c);
            }
            apply(&state, batch).await;
        }
    });
}

async fn apply(state: &Arc<ControlPlane>, batch: Vec<Change>) {
    let all = batch.contains(&Change::All);
    if (all || batch.contains(&Change::Keys))
        && let Err(e) = state.keys.reload(&state.store).await
    {
        tracing::warn!(error = %e, "could not reload API keys from the shared store");
    }
    if all || batch.contains(&Change::AdminTokens) {
        match state.store.admin_tokens().await {
            Ok(t) => state.admin_tokens.replace_all(t),
            Err(e) => {
                tracing::warn!(error = %e, "could not reload tenant admin tokens from the shared store");
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
            Err(e) => tracing::warn!(error = %e, "could not list the shared store's bundles"),
        }
    }
    if scopes.is_empty() {
        return;
    }
    // The platform's `*` sorts first, so tenants compose on the platform they will run with.
    scopes.sort();
    scopes.dedup();
    // Building a bundle compiles its components: keys and tokens changed meanwhile must
    // not wait behind it. Each scope's activations stay in order under its bundle lock.
    let state = state.clone();
    tokio::spawn(async move {
        for scope in scopes {
            if let Err(e) = crate::bundles::sync_scope(&state, &scope).await {
                tracing::error!(scope, error = %e, "could not activate a bundle from the shared store");
            }
        }
    });
}
