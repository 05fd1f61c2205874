//! The scope values of one request: what its usage is counted under and what a
//! plugin's `scope` means for it.

use crate::ledger::{Limit, ScopeKey, ScopeKind};
use crate::metadata::Metadata;
use std::sync::Arc;

/// One request's tenant, team, user, key and metadata, resolved once at admission.
#[derive(Debug)]
pub struct RequestScopes {
    tenant: Arc<str>,
    key: Arc<str>,
    team: Option<Arc<str>>,
    user: Option<Arc<str>>,
    metadata: Metadata,
}

impl RequestScopes {
    /// The scopes of a request by `key_id` of `tenant`.
    pub fn new(
        tenant: &str,
        key_id: &str,
        team: Option<&str>,
        user: Option<&str>,
        metadata: &Metadata,
    ) -> Self {
        Self {
            tenant: Arc::from(tenant),
            key: Arc::from(key_id),
            team: team.map(Arc::from),
            user: user.map(Arc::from),
            metadata: metadata.clone(),
        }
    }

    /// This request's value of `kind`, if it has one.
    pub fn value(&self, kind: &ScopeKind) -> Option<Arc<str>> {
        match kind {
            ScopeKind::Tenant => Some(self.tenant.clone()),
            ScopeKind::Key => Some(self.key.clone()),
            ScopeKind::Team => self.team.clone(),
            ScopeKind::User => self.user.clone(),
            ScopeKind::Metadata(k) => self.metadata.get(k).map(Arc::from),
        }
    }

    /// The ledger key of this request's value of `kind`.
    pub fn key(&self, kind: ScopeKind) -> Option<ScopeKey> {
        let value = self.value(&kind)?;
        Some(ScopeKey {
            tenant: self.tenant.clone(),
            kind,
            value,
        })
    }

    /// The ledger key of another value of `kind`, within this request's tenant.
    pub fn key_with_value(&self, kind: ScopeKind, value: &str) -> ScopeKey {
        ScopeKey {
            tenant: self.tenant.clone(),
            kind,
            value: Arc::from(value),
        }
    }

    /// Every scope a finished request is counted under: tenant, team, user, key, the
    /// admin's metadata keys and any metadata key one of `limits` counts.
    pub fn counted(&self, metadata_keys: &[Arc<str>], limits: &[Limit]) -> Arc<[ScopeKey]> {
        let mut out = Vec::with_capacity(4 + metadata_keys.len());
        for kind in [
            ScopeKind::Tenant,
            ScopeKind::Team,
            ScopeKind::User,
            ScopeKind::Key,
        ] {
            out.extend(self.key(kind));
        }
        let limited = limits.iter().filter_map(|l| match &l.scope.kind {
            ScopeKind::Metadata(k) => Some(k),
            _ => None,
        });
        for k in metadata_keys.iter().chain(limited) {
            let kind = ScopeKind::Metadata(k.clone());
            if !out.iter().any(|s| s.kind == kind) {
                out.extend(self.key(kind));
            }
        }
        out.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_scopes_skip_missing_values_and_add_limited_metadata() {
        let meta = Metadata::from(vec![
            ("env".into(), "prod".into()),
            ("project".into(), "apollo".into()),
        ]);
        let s = RequestScopes::new("acme", "key_1", Some("eng"), None, &meta);
        let project = s
            .key(ScopeKind::Metadata(Arc::from("project")))
            .expect("has project");
        let limit = Limit {
            name: "p".into(),
            scope: project,
            metric: crate::ledger::Metric::Requests,
            period: crate::ledger::Period::Day,
            window: crate::ledger::Window::Calendar,
            limit: 1.0,
            alert_at: vec![],
            plugin: "p".into(),
        };
        let counted = s.counted(&[Arc::from("env"), Arc::from("missing")], &[limit]);
        let labels: Vec<String> = counted
            .iter()
            .map(|k| format!("{}={}", k.kind_label(), k.value))
            .collect();
        assert_eq!(
            labels,
            [
                "tenant=acme",
                "team=eng",
                "key=key_1",
                "metadata.env=prod",
                "metadata.project=apollo"
            ]
        );
    }
}
