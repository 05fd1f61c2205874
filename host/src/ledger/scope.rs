//! What usage is counted against: a tenant, team, user, key or metadata value.

use std::borrow::Cow;
use std::sync::Arc;

/// Which dimension a scope counts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ScopeKind {
    /// The whole tenant (the value is the tenant id).
    Tenant,
    /// A team: the API key's, else the request's `team` metadata.
    Team,
    /// An end user: the API key's, else the request's `user` metadata.
    User,
    /// One API key (the value is its id).
    Key,
    /// A metadata key, e.g. "project": usage is counted per value of that key.
    Metadata(Arc<str>),
}

impl ScopeKind {
    /// Inverse of [`ScopeKey::kind_label`]; `None` for labels this build does not know
    /// (stored rows may come from another version).
    pub fn from_label(label: &str) -> Option<Self> {
        Some(match label {
            "tenant" => ScopeKind::Tenant,
            "team" => ScopeKind::Team,
            "user" => ScopeKind::User,
            "key" => ScopeKind::Key,
            other => {
                let key = other.strip_prefix("metadata.")?;
                if key.is_empty() {
                    return None;
                }
                ScopeKind::Metadata(key.into())
            }
        })
    }
}

/// One counted scope value within a tenant, e.g. (acme, team, engineering).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ScopeKey {
    /// The tenant the usage belongs to; scopes never span tenants.
    pub tenant: Arc<str>,
    /// Which dimension is counted.
    pub kind: ScopeKind,
    /// The dimension's value, e.g. the team's name or the key's id.
    pub value: Arc<str>,
}

impl ScopeKey {
    /// Convenience constructor (the fields are public too).
    pub fn new(tenant: impl Into<Arc<str>>, kind: ScopeKind, value: impl Into<Arc<str>>) -> Self {
        Self {
            tenant: tenant.into(),
            kind,
            value: value.into(),
        }
    }

    /// `"tenant" | "team" | "user" | "key" | "metadata.<key>"`: the stored and displayed
    /// name of the dimension.
    pub fn kind_label(&self) -> Cow<'static, str> {
        match &self.kind {
            ScopeKind::Tenant => Cow::Borrowed("tenant"),
            ScopeKind::Team => Cow::Borrowed("team"),
            ScopeKind::User => Cow::Borrowed("user"),
            ScopeKind::Key => Cow::Borrowed("key"),
            ScopeKind::Metadata(k) => Cow::Owned(format!("metadata.{k}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip() {
        for kind in [
            ScopeKind::Tenant,
            ScopeKind::Team,
            ScopeKind::User,
            ScopeKind::Key,
            ScopeKind::Metadata("project".into()),
        ] {
            let key = ScopeKey::new("acme", kind.clone(), "x");
            assert_eq!(ScopeKind::from_label(&key.kind_label()), Some(kind));
        }
        assert_eq!(ScopeKind::from_label("metadata."), None);
        assert_eq!(ScopeKind::from_label("Team"), None);
    }
}
