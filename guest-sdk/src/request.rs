//! [`Request`]: the request context plus lazy host access.

use crate::bindings::tollgate::plugin::types::RequestContext;
use crate::host::HostApi;
use crate::{Endpoint, LogLevel, Period, Scope, UsageReport, Window};
use std::cell::OnceCell;

/// The request a hook is deciding on: cheap context fields, the body on demand, and
/// the host's log.
pub struct Request<'h> {
    ctx: RequestContext,
    host: &'h dyn HostApi,
    body: OnceCell<String>,
}

impl<'h> Request<'h> {
    pub(crate) fn new(ctx: RequestContext, host: &'h dyn HostApi) -> Self {
        Self {
            ctx,
            host,
            body: OnceCell::new(),
        }
    }

    /// The gateway's id for this request.
    pub fn request_id(&self) -> &str {
        &self.ctx.request_id
    }

    /// `x-portkey-trace-id`, or the request id when the caller sent none.
    pub fn trace_id(&self) -> &str {
        &self.ctx.trace_id
    }

    /// Tenant id the API key belongs to.
    pub fn tenant(&self) -> &str {
        &self.ctx.tenant
    }

    /// Public id of the API key (never the secret).
    pub fn key_id(&self) -> &str {
        &self.ctx.key_id
    }

    /// Human name given to the key at creation.
    pub fn key_name(&self) -> &str {
        &self.ctx.key_name
    }

    /// Team the key is bound to, else the `team` metadata value.
    pub fn team(&self) -> Option<&str> {
        self.ctx.team.as_deref()
    }

    /// User the key is bound to, else the `user` metadata value.
    pub fn user(&self) -> Option<&str> {
        self.ctx.user.as_deref()
    }

    /// The value of an `x-portkey-metadata` key (case-sensitive; first if repeated).
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.ctx
            .metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether an `x-portkey-metadata` key is present (case-sensitive).
    pub fn has_meta(&self, key: &str) -> bool {
        self.meta(key).is_some()
    }

    /// All `x-portkey-metadata` entries, sorted by key, one per key (the host keeps the
    /// last value of a key the header repeats, as a JSON object does).
    pub fn metadata(&self) -> impl Iterator<Item = (&str, &str)> {
        self.ctx
            .metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// This request's value of `scope`: the tenant, team, user, key id or metadata value
    /// its usage is counted under, or `None` when it has none (e.g. no team).
    pub fn scope_value(&self, scope: &Scope) -> Option<&str> {
        scope_value(&self.ctx, scope)
    }

    /// Usage of this request's value of `scope` in the current `period` window, from the
    /// host (a call per use). Counts include requests still running; see [`UsageReport`].
    /// When the request has no value for the scope, the report is empty and its `value`
    /// is `None`.
    pub fn usage(&self, scope: &Scope, period: Period, window: Window) -> UsageReport {
        self.host.usage(scope, None, period, window)
    }

    /// Usage of another `value` of `scope` (e.g. a team other than this request's), within
    /// this request's tenant; otherwise like [`Request::usage`].
    pub fn usage_of(
        &self,
        scope: &Scope,
        value: &str,
        period: Period,
        window: Window,
    ) -> UsageReport {
        self.host.usage(scope, Some(value), period, window)
    }

    /// The model the caller asked for.
    pub fn model(&self) -> &str {
        &self.ctx.model
    }

    /// Which API the caller spoke.
    pub fn endpoint(&self) -> Endpoint {
        self.ctx.endpoint
    }

    /// Whether the caller asked for a streamed (SSE) response.
    pub fn is_stream(&self) -> bool {
        self.ctx.stream
    }

    /// `max_tokens` (or `max_completion_tokens`) from the body, if present.
    pub fn max_tokens(&self) -> Option<u32> {
        self.ctx.max_tokens
    }

    /// Size of the request body in bytes.
    pub fn body_bytes(&self) -> u32 {
        self.ctx.body_bytes
    }

    /// Rough prompt size in tokens (about four bytes of text per token).
    pub fn prompt_tokens_estimate(&self) -> u32 {
        self.ctx.prompt_tokens_estimate
    }

    /// Number of messages in the conversation.
    pub fn message_count(&self) -> u32 {
        self.ctx.message_count
    }

    /// The full request body (JSON text), fetched from the host on first use and cached.
    ///
    /// Copying a large body into the sandbox costs time and memory: prefer the
    /// context fields above when they suffice.
    pub fn body(&self) -> &str {
        self.body.get_or_init(|| self.host.request_body())
    }

    /// The request body parsed as JSON; the error says why it could not be parsed.
    pub fn body_json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_str(self.body()).map_err(|e| format!("request body: {e}"))
    }

    /// Wall-clock time in milliseconds since the Unix epoch, from the host.
    pub fn now_ms(&self) -> u64 {
        self.host.now_ms()
    }

    /// Writes a line to the gateway's log, tagged with the plugin and request id.
    pub fn log(&self, level: LogLevel, message: impl AsRef<str>) {
        self.host.log(level, message.as_ref());
    }

    /// Logs at [`LogLevel::Trace`].
    pub fn log_trace(&self, message: impl AsRef<str>) {
        self.log(LogLevel::Trace, message);
    }

    /// Logs at [`LogLevel::Debug`].
    pub fn log_debug(&self, message: impl AsRef<str>) {
        self.log(LogLevel::Debug, message);
    }

    /// Logs at [`LogLevel::Info`].
    pub fn log_info(&self, message: impl AsRef<str>) {
        self.log(LogLevel::Info, message);
    }

    /// Logs at [`LogLevel::Warn`].
    pub fn log_warn(&self, message: impl AsRef<str>) {
        self.log(LogLevel::Warn, message);
    }

    /// Logs at [`LogLevel::Error`].
    pub fn log_error(&self, message: impl AsRef<str>) {
        self.log(LogLevel::Error, message);
    }
}

/// The value of `scope` in a request context (shared with [`crate::testing`]).
pub(crate) fn scope_value<'a>(ctx: &'a RequestContext, scope: &Scope) -> Option<&'a str> {
    match scope {
        Scope::Tenant => Some(&ctx.tenant),
        Scope::Team => ctx.team.as_deref(),
        Scope::User => ctx.user.as_deref(),
        Scope::Key => Some(&ctx.key_id),
        Scope::Metadata(key) => ctx
            .metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str()),
    }
}

impl std::fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("request_id", &self.request_id())
            .field("tenant", &self.tenant())
            .field("team", &self.team())
            .field("model", &self.model())
            .field("endpoint", &self.endpoint())
            .finish_non_exhaustive()
    }
}
