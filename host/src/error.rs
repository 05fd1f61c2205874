//! The gateway's one client-facing error type, rendered once into the error JSON of
//! the API the client speaks.

use crate::api::Api;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The error categories a client can see. Names follow Anthropic's error types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidRequest,
    Authentication,
    Permission,
    NotFound,
    RequestTooLarge,
    RateLimit,
    /// A spend or usage budget is exhausted until its window resets.
    BudgetExceeded,
    Api,
    Overloaded,
    Timeout,
}

impl ErrorKind {
    /// The Anthropic `error.type` string.
    pub fn anthropic_type(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request_error",
            Self::Authentication => "authentication_error",
            Self::Permission => "permission_error",
            Self::NotFound => "not_found_error",
            Self::RequestTooLarge => "request_too_large",
            Self::RateLimit => "rate_limit_error",
            Self::BudgetExceeded => "budget_exceeded_error",
            Self::Api => "api_error",
            Self::Overloaded => "overloaded_error",
            Self::Timeout => "timeout_error",
        }
    }

    /// The OpenAI `error.type` string.
    pub fn openai_type(self) -> &'static str {
        match self {
            Self::InvalidRequest | Self::RequestTooLarge => "invalid_request_error",
            Self::Authentication => "authentication_error",
            Self::Permission => "permission_error",
            Self::NotFound => "not_found_error",
            Self::RateLimit => "rate_limit_error",
            // OpenAI's own type for an exhausted quota, which its clients already know.
            Self::BudgetExceeded => "insufficient_quota",
            Self::Api | Self::Overloaded | Self::Timeout => "server_error",
        }
    }

    /// The status a gateway-originated error of this kind carries.
    pub fn default_status(self) -> StatusCode {
        match self {
            Self::InvalidRequest => StatusCode::BAD_REQUEST,
            Self::Authentication => StatusCode::UNAUTHORIZED,
            Self::Permission => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimit | Self::BudgetExceeded => StatusCode::TOO_MANY_REQUESTS,
            Self::Api => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// Best-effort kind for a status, used for denials and upstream failures.
    pub fn from_status(status: u16) -> Self {
        match status {
            401 => Self::Authentication,
            403 => Self::Permission,
            404 => Self::NotFound,
            413 => Self::RequestTooLarge,
            429 => Self::RateLimit,
            504 => Self::Timeout,
            503 | 529 => Self::Overloaded,
            400..=499 => Self::InvalidRequest,
            _ => Self::Api,
        }
    }
}

/// An error the gateway answers a client with.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status sent to the client.
    pub status: StatusCode,
    /// The `error.type` category.
    pub kind: ErrorKind,
    /// Overrides `kind`'s type string, e.g. a plugin's own error type.
    pub type_override: Option<String>,
    /// Human-readable message.
    pub message: String,
    /// Seconds the client should wait before retrying (`retry-after`).
    pub retry_after: Option<u64>,
    /// Tells the official SDKs whether retrying can help (`x-should-retry`), so a
    /// client does not burn retries on a budget that resets tomorrow.
    pub should_retry: Option<bool>,
}

impl ApiError {
    /// An error of `kind` with its default status.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            status: kind.default_status(),
            kind,
            type_override: None,
            message: message.into(),
            retry_after: None,
            should_retry: None,
        }
    }

    /// 400 `invalid_request_error`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }

    /// 401 `authentication_error`.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Authentication, message)
    }

    /// 403 `permission_error`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Permission, message)
    }

    /// 500 `api_error`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Api, message)
    }

    /// The same error with another status.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// The `error.type` string in `flavor`'s vocabulary.
    pub fn type_str(&self, flavor: Api) -> &str {
        if let Some(t) = &self.type_override {
            return t;
        }
        match flavor {
            Api::Anthropic => self.kind.anthropic_type(),
            Api::OpenAi => self.kind.openai_type(),
        }
    }

    /// The error JSON body in `flavor`'s shape.
    pub fn body(&self, flavor: Api) -> serde_json::Value {
        error_body(flavor, self.type_str(flavor), &self.message)
    }

    /// Render for a client speaking `flavor`.
    pub fn into_response_for(self, flavor: Api) -> Response {
        let body = self.body(flavor).to_string();
        let mut resp = (self.status, body).into_response();
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(retry) = self.should_retry {
            let v = if retry { "true" } else { "false" };
            headers.insert("x-should-retry", HeaderValue::from_static(v));
        }
        resp
    }
}

/// Builds an error body in the client's shape.
pub fn error_body(flavor: Api, error_type: &str, message: &str) -> serde_json::Value {
    match flavor {
        Api::Anthropic => serde_json::json!({
            "type": "error",
            "error": { "type": error_type, "message": message },
        }),
        Api::OpenAi => serde_json::json!({
            "error": { "message": message, "type": error_type, "param": null, "code": null },
        }),
    }
}

/// Errors of data-plane handlers default to the Anthropic shape; OpenAI routes wrap
/// theirs with [`ApiError::into_response_for`].
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.into_response_for(Api::Anthropic)
    }
}
