//! Who is calling the admin API and what they may touch. The platform admin token
//! manages everything; a tenant admin token manages only its own tenant (its keys,
//! bundle, logs, usage, budgets, alerts and audit entries) and gets 403 anywhere else.
//! Authorisation is decided here, once, from the route, so no handler can forget it.

use crate::control::ControlPlane;
use crate::error::ApiError;
use axum::extract::Request;
use axum::http::Uri;

/// The authenticated caller, available to handlers as a request extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    Platform,
    /// A tenant admin token (its id and tenant).
    Tenant {
        tenant: String,
        token_id: String,
    },
}

impl Caller {
    /// How the caller is named in the audit log.
    pub fn author(&self) -> String {
        match self {
            Caller::Platform => "platform-admin".into(),
            Caller::Tenant { tenant, token_id } => format!("tenant-admin:{tenant}:{token_id}"),
        }
    }
}

/// The caller a presented token identifies, or 401.
pub fn identify(state: &ControlPlane, presented: &str) -> Result<Caller, ApiError> {
    if super::constant_time_eq(presented.as_bytes(), state.settings.admin_token.as_bytes()) {
        return Ok(Caller::Platform);
    }
    match state.admin_tokens.find(presented) {
        Some(t) => Ok(Caller::Tenant {
            tenant: t.tenant_id,
            token_id: t.id,
        }),
        None => Err(ApiError::unauthenticated("admin API: invalid admin token")),
    }
}

/// Lets the platform do anything; confines a tenant admin to its tenant. Listing
/// routes are pinned to the caller's tenant (`tenant=` added when absent, 403 when it
/// names another).
pub async fn authorize(
    state: &ControlPlane,
    caller: &Caller,
    req: &mut Request,
) -> Result<(), ApiError> {
    let Caller::Tenant { tenant, .. } = caller else {
        return Ok(());
    };
    let forbidden = || {
        ApiError::forbidden(format!(
            "admin API: this token manages tenant '{tenant}' only"
        ))
    };
    let path = req.uri().path().to_string();
    let path = path.strip_prefix("/admin/v1").unwrap_or(&path);
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["tenants", id, "admin-tokens", ..] => {
            let _ = id;
            Err(forbidden())
        }
        ["tenants", id, ..] if *id == tenant => Ok(()),
        ["keys", id, ..] => {
            let key = state.store.get_key(id.to_string()).await.ok().flatten();
            match key {
                Some(k) if k.tenant_id == *tenant => Ok(()),
                _ => Err(forbidden()),
            }
        }
        ["whoami"] => Ok(()),
        ["keys"]
        | ["logs"]
        | ["usage"]
        | ["budgets"]
        | ["alerts"]
        | ["audit"]
        | ["analytics"]
        | ["traces"]
        | ["logs", _]
        | ["traces", _] => pin_tenant(req, tenant).ok_or_else(forbidden),
        _ => Err(forbidden()),
    }
}

/// Rewrites the query so it names `tenant` (and nothing else as tenant, nor the
/// platform); `None` when it names another.
fn pin_tenant(req: &mut Request, tenant: &str) -> Option<()> {
    let query = req.uri().query().unwrap_or("");
    let mut named = false;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "tenant" if v == tenant => named = true,
            "tenant" | "platform" => return None,
            _ => {}
        }
    }
    if !named {
        let mut q = form_urlencoded::Serializer::new(query.to_string());
        q.append_pair("tenant", tenant);
        let uri = format!("{}?{}", req.uri().path(), q.finish());
        *req.uri_mut() = uri.parse::<Uri>().ok()?;
    }
    Some(())
}
