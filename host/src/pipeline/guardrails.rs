//! The guardrail phases of a request: `inspect-request` between policy and routing
//! (its rewrite becomes the body that is routed, translated, sent and logged), and
//! `inspect-response` on the answer, kept for the response as a [`ResponseGuard`].

use crate::api::Api;
use crate::error::ApiError;
use crate::guard::{Guarded, RequestText};
use crate::plugins::{
    Endpoint, Hook, Inspection, PluginRuntime, RequestContext, StreamMode, UsageView,
};
use crate::store::PluginDecision;
use crate::tenancy::TenantRuntime;
use bytes::Bytes;
use std::sync::Arc;

/// The API a request's body is shaped in.
pub fn client_api(endpoint: Endpoint) -> Api {
    match endpoint {
        Endpoint::ChatCompletions => Api::OpenAi,
        _ => Api::Anthropic,
    }
}

/// Runs the tenant's request guardrails on `body`: the rewritten body when one
/// changed it, `None` when it goes on as sent; a denial or a failed guardrail is the
/// client's error.
pub async fn inspect_request(
    rt: &PluginRuntime,
    tenant: &TenantRuntime,
    ctx: &RequestContext,
    body: &Bytes,
    usage: &UsageView,
    decisions: &mut Vec<PluginDecision>,
) -> Result<Option<Bytes>, ApiError> {
    let mut text = RequestText::parse(client_api(ctx.endpoint), body)
        .map_err(|e| ApiError::invalid(format!("request body is not valid JSON: {e}")))?;
    let step = Inspection {
        hook: Hook::InspectRequest,
        ctx,
        body,
        usage: Some(usage),
        only: None,
        delivered: false,
    };
    tenant.chain.inspect(rt, step, &mut text, decisions).await?;
    Ok(text.into_body())
}

/// What the response guardrails of an admitted request run with.
pub struct ResponseGuard {
    rt: Arc<PluginRuntime>,
    /// Where observing guardrails run once a stream was delivered (shutdown waits).
    afterwork: tokio_util::task::TaskTracker,
    tenant: Arc<TenantRuntime>,
    ctx: RequestContext,
    /// The body as the client sent it (`request-body`).
    body: Bytes,
    usage: UsageView,
}

impl ResponseGuard {
    /// The guard of a request whose tenant has response guardrails, else `None`.
    pub fn new(
        state: &super::Pipeline,
        tenant: &Arc<TenantRuntime>,
        ctx: Option<RequestContext>,
        body: &Bytes,
        usage: UsageView,
    ) -> Option<Self> {
        let ctx = ctx?;
        if ctx.endpoint == Endpoint::CountTokens || !tenant.chain.has_hook(Hook::InspectResponse) {
            return None;
        }
        Some(Self {
            rt: state.plugins.clone(),
            afterwork: state.afterwork.clone(),
            tenant: tenant.clone(),
            ctx,
            body: body.clone(),
            usage,
        })
    }

    /// Whether a streamed answer must be held until the guardrails have decided.
    pub fn buffers_streams(&self) -> bool {
        self.tenant.chain.buffers_streams()
    }

    /// Runs `work` (given this guard) after the response has ended, tracked so that
    /// shutdown waits for it.
    pub fn after<F, Fut>(self, work: F)
    where
        F: FnOnce(Self) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let tracker = self.afterwork.clone();
        tracker.spawn(work(self));
    }

    /// Runs the response guardrails on `answer`: those set to `only` for streams (all
    /// when `None`); `delivered`: the client has the answer, verdicts are only recorded.
    pub async fn inspect(
        &self,
        answer: &mut dyn Guarded,
        only: Option<StreamMode>,
        delivered: bool,
        decisions: &mut Vec<PluginDecision>,
    ) -> Result<(), ApiError> {
        let step = Inspection {
            hook: Hook::InspectResponse,
            ctx: &self.ctx,
            body: &self.body,
            usage: Some(&self.usage),
            only,
            delivered,
        };
        self.tenant
            .chain
            .inspect(&self.rt, step, answer, decisions)
            .await
    }
}
