//! Helpers on the policy hook's [`Decision`] and on [`Denial`].

use crate::{Annotation, Decision, Denial, annotation};

impl Denial {
    /// A refusal with `status` (400..=599; the host clamps anything else to 403),
    /// `error_type` (e.g. `permission_error`) and the `message` shown to the caller.
    pub fn new(status: u16, error_type: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            error_type: error_type.into(),
            message: message.into(),
        }
    }
}

/// Constructors and accessors.
///
/// ```
/// use tollgate_guest::{Annotation, Decision};
///
/// let d = Decision::allow_with([("rule", "eu"), ("tier", "gold")]);
/// assert_eq!(d.annotation("rule"), Some("eu"));
/// assert_eq!(d.annotations()[1], Annotation::new("tier", "gold"));
/// assert_eq!(Decision::forbid("no").denial().map(|d| d.status), Some(403));
/// ```
impl Decision {
    /// Lets the request through.
    pub fn allow() -> Self {
        Decision::Allow
    }

    /// Lets the request through, recording labels in its log row: [`Annotation`]s or
    /// `(key, value)` pairs.
    pub fn allow_with<A: Into<Annotation>>(labels: impl IntoIterator<Item = A>) -> Self {
        Decision::AllowWith(labels.into_iter().map(Into::into).collect())
    }

    /// Refuses the request with any status (400..=599) and error type.
    pub fn deny(status: u16, error_type: impl Into<String>, message: impl Into<String>) -> Self {
        Decision::Deny(Denial::new(status, error_type, message))
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

    /// The labels of a [`Decision::AllowWith`] (empty otherwise).
    pub fn annotations(&self) -> &[Annotation] {
        match self {
            Decision::AllowWith(labels) => labels,
            _ => &[],
        }
    }

    /// The value of one label, if present (the first if repeated).
    pub fn annotation(&self, key: &str) -> Option<&str> {
        annotation::find(self.annotations(), key)
    }
}
