//! The header names the data plane reads and writes, as [`HeaderName`] constants.
//!
//! Looking a header up by `&str` validates and lower-cases the name on every call;
//! with a dozen lookups a request that was a few per cent of the no-plugin path's CPU.

use axum::http::HeaderName;

/// Request metadata (Portkey's name, so existing clients work unchanged).
pub const METADATA: HeaderName = HeaderName::from_static(crate::metadata::HEADER);
/// Groups requests into one trace (Portkey's name).
pub const TRACE_ID: HeaderName = HeaderName::from_static("x-portkey-trace-id");
/// W3C trace context.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// Anthropic's key header.
pub const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
/// Portkey's key header.
pub const PORTKEY_API_KEY: HeaderName = HeaderName::from_static("x-portkey-api-key");
/// Anthropic's API version.
pub const ANTHROPIC_VERSION: HeaderName = HeaderName::from_static("anthropic-version");
/// Anthropic's beta features.
pub const ANTHROPIC_BETA: HeaderName = HeaderName::from_static("anthropic-beta");
/// The gateway's request id (Anthropic's name for it).
pub const REQUEST_ID: HeaderName = HeaderName::from_static("request-id");
/// The gateway's request id, under the name OpenAI clients read.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The provider's own request id.
pub const UPSTREAM_REQUEST_ID: HeaderName = HeaderName::from_static("x-upstream-request-id");
/// The provider that served the request.
pub const PROVIDER: HeaderName = HeaderName::from_static("x-tollgate-provider");
/// The model that served the request.
pub const MODEL: HeaderName = HeaderName::from_static("x-tollgate-model");
/// Which attempt served the request (1 unless a fallback did).
pub const ATTEMPT: HeaderName = HeaderName::from_static("x-tollgate-attempt");
/// Which target of the route served the request.
pub const TARGET: HeaderName = HeaderName::from_static("x-tollgate-target");
/// Marks an answer the gateway estimated itself.
pub const ESTIMATE: HeaderName = HeaderName::from_static("x-tollgate-estimate");
/// Tells a buffering proxy in front (nginx) to pass a stream through.
pub const ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");

/// The provider's rate-limit headers, relayed to the client as they are.
pub const RATE_LIMITS: [HeaderName; 10] = [
    HeaderName::from_static("anthropic-ratelimit-requests-limit"),
    HeaderName::from_static("anthropic-ratelimit-requests-remaining"),
    HeaderName::from_static("anthropic-ratelimit-requests-reset"),
    HeaderName::from_static("anthropic-ratelimit-tokens-limit"),
    HeaderName::from_static("anthropic-ratelimit-tokens-remaining"),
    HeaderName::from_static("anthropic-ratelimit-tokens-reset"),
    HeaderName::from_static("x-ratelimit-limit-requests"),
    HeaderName::from_static("x-ratelimit-remaining-requests"),
    HeaderName::from_static("x-ratelimit-limit-tokens"),
    HeaderName::from_static("x-ratelimit-remaining-tokens"),
];
