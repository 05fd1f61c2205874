//! A tenant's ordered policy chain and how its decisions combine.

use super::bindings::{Decision, Hook, RequestContext};
use super::runtime::{LoadedPlugin, PluginRuntime};
use crate::error::{ApiError, ErrorKind};
use crate::store::PluginDecision;
use axum::http::StatusCode;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Instant;

/// A loaded plugin with one tenant's config for it.
#[derive(Clone, Debug)]
pub struct ConfiguredPlugin {
    /// Name used in logs and errors.
    pub label: Arc<str>,
    pub plugin: Arc<LoadedPlugin>,
    /// Config JSON handed to the plugin.
    pub config: Arc<str>,
    /// Skip the plugin (instead of failing the request) when it fails.
    pub fail_open: bool,
}

/// The plugins a tenant's requests pass through, in order.
#[derive(Clone, Debug, Default)]
pub struct PolicyChain {
    plugins: Vec<ConfiguredPlugin>,
}

/// How a chain run ended.
#[derive(Debug)]
pub enum ChainOutcome {
    /// Every plugin allowed (or was skipped).
    Allowed(Vec<PluginDecision>),
    /// A plugin denied, or failed closed: answer the caller with this error.
    Refused(Vec<PluginDecision>, ApiError),
}

impl PolicyChain {
    /// A chain of `plugins` in order.
    pub fn new(plugins: Vec<ConfiguredPlugin>) -> Self {
        Self { plugins }
    }

    /// Whether the chain has no policy plugins.
    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty()
    }

    /// Runs every policy plugin in order; the first denial or closed failure stops the chain.
    pub async fn run(
        &self,
        rt: &PluginRuntime,
        ctx: &RequestContext,
        body: &Bytes,
    ) -> ChainOutcome {
        let mut decisions = Vec::with_capacity(self.plugins.len());
        for p in &self.plugins {
            if !p.plugin.info.hooks.contains(&Hook::Policy) {
                continue;
            }
            let started = Instant::now();
            let result = rt
                .call_policy(
                    &p.plugin,
                    p.label.clone(),
                    p.config.clone(),
                    body.clone(),
                    ctx,
                )
                .await;
            let micros = started.elapsed().as_micros() as u64;
            let mut record = PluginDecision {
                plugin: p.label.to_string(),
                outcome: String::new(),
                detail: None,
                annotations: Vec::new(),
                micros,
            };
            match result {
                Ok(Decision::Allow) => record.outcome = "allow".into(),
                Ok(Decision::AllowWith(labels)) => {
                    record.outcome = "allow".into();
                    record.annotations = labels.into_iter().map(|a| (a.key, a.value)).collect();
                }
                Ok(Decision::Deny(d)) => {
                    record.outcome = "deny".into();
                    record.detail = Some(d.message.clone());
                    decisions.push(record);
                    let status = match StatusCode::from_u16(d.status) {
                        Ok(s) if s.is_client_error() || s.is_server_error() => s,
                        _ => StatusCode::FORBIDDEN,
                    };
                    let mut err = ApiError::new(ErrorKind::from_status(status.as_u16()), d.message)
                        .with_status(status);
                    if !d.error_type.is_empty() {
                        err.type_override = Some(d.error_type);
                    }
                    return ChainOutcome::Refused(decisions, err);
                }
                Err(failure) => {
                    let reason = format!("plugin '{}' {failure}", p.label);
                    tracing::warn!(plugin = %p.label, request_id = %ctx.request_id, fail_open = p.fail_open, "{reason}");
                    record.detail = Some(reason.clone());
                    if p.fail_open {
                        record.outcome = "skipped".into();
                    } else {
                        record.outcome = "error".into();
                        decisions.push(record);
                        return ChainOutcome::Refused(decisions, ApiError::internal(reason));
                    }
                }
            }
            decisions.push(record);
        }
        ChainOutcome::Allowed(decisions)
    }
}
