//! The SDK's own copies of the WIT types, with helpers and full docs.

/// Hooks a plugin may implement; list yours in [`Plugin::HOOKS`](crate::Plugin::HOOKS).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Hook {
    /// [`Plugin::policy`](crate::Plugin::policy): allow or deny before routing.
    Policy,
}

/// Severity of a plugin log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the plugin handled.
    Warn,
    /// Something the plugin could not handle.
    Error,
}

/// Which API the caller spoke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// `POST /v1/messages` (Anthropic Messages API).
    Messages,
    /// `POST /v1/messages/count_tokens`.
    CountTokens,
    /// `POST /v1/chat/completions` (OpenAI Chat Completions API).
    ChatCompletions,
}

/// Why a request is refused; shown to the caller in its API's error shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    /// HTTP status, 400..=599 (the host clamps anything else to 403).
    pub status: u16,
    /// Error type, e.g. `permission_error` or `invalid_request_error`.
    pub error_type: String,
    /// Message shown to the caller.
    pub message: String,
}

/// The outcome of the policy hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Let the request through.
    Allow,
    /// Let the request through and record these `(key, value)` labels in its log row.
    AllowWith(Vec<(String, String)>),
    /// Refuse the request; later plugins do not run.
    Deny(Denial),
}

impl Decision {
    /// Lets the request through.
    pub fn allow() -> Self {
        Decision::Allow
    }

    /// Lets the request through, recording `(key, value)` labels in its log row.
    pub fn allow_with<K, V>(labels: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        Decision::AllowWith(
            labels
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    /// Refuses the request with any status (400..=599) and error type.
    pub fn deny(status: u16, error_type: impl Into<String>, message: impl Into<String>) -> Self {
        Decision::Deny(Denial {
            status,
            error_type: error_type.into(),
            message: message.into(),
        })
    }

    /// Refuses with `403 permission_error`: the caller may not do this.
    pub fn forbid(message: impl Into<String>) -> Self {
        Self::deny(403, "permission_error", message)
    }

    /// Refuses with `400 invalid_request_error`: the request itself is wrong.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::deny(400, "invalid_request_error", message)
    }

    /// Whether the request is let through (with or without labels).
    pub fn is_allow(&self) -> bool {
        !self.is_deny()
    }

    /// Whether the request is refused.
    pub fn is_deny(&self) -> bool {
        matches!(self, Decision::Deny(_))
    }

    /// The denial, if the request is refused.
    pub fn denial(&self) -> Option<&Denial> {
        match self {
            Decision::Deny(d) => Some(d),
            _ => None,
        }
    }

    /// The labels of an [`Decision::AllowWith`] (empty otherwise).
    pub fn annotations(&self) -> &[(String, String)] {
        match self {
            Decision::AllowWith(labels) => labels,
            _ => &[],
        }
    }

    /// The value of one label, if present.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations()
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}
