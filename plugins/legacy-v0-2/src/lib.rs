//! `legacy-v0-2`: a plugin built straight against the frozen `tollgate:plugin@0.2.0`
//! contract (`wit-legacy/v0.2.0`) with wit-bindgen, not the guest SDK (which follows
//! the current contract). The host's tests load it beside current plugins to show
//! that a plugin built for an older contract version keeps loading and running.
//!
//! Config: `{"provider": "..."}` (optional). Policy allows with the label
//! `abi = 0.2.0`, or denies 403 when the request's metadata has a `block` key; route
//! sends the request to `provider` when one is configured.

// Generated canonical-ABI glue: wit-bindgen's own unsafe code, not ours.
#[allow(missing_docs, unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit-legacy/v0.2.0",
        world: "tollgate:plugin/plugin@0.2.0",
    });
}

use bindings::exports::tollgate::plugin::guest::Guest;
use bindings::tollgate::plugin::host;
use bindings::tollgate::plugin::types::{
    Annotation, Decision, Denial, Hook, LogLevel, PluginInfo, RequestContext, RetryOn, RoutePlan,
    RouteTarget, Strategy,
};

/// The plugin; exported as the component's 0.2.0 `guest` interface.
pub struct Legacy;

/// The configured provider, if any; `Err` names what is wrong.
fn provider(config: &str) -> Result<Option<String>, String> {
    let text = if config.trim().is_empty() {
        "{}"
    } else {
        config
    };
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("config: not valid JSON: {e}"))?;
    let Some(obj) = v.as_object() else {
        return Err("config: must be a JSON object".into());
    };
    if let Some(k) = obj.keys().find(|k| *k != "provider") {
        return Err(format!("config: unknown field `{k}`, expected `provider`"));
    }
    match obj.get("provider") {
        None => Ok(None),
        Some(serde_json::Value::String(p)) => Ok(Some(p.clone())),
        Some(_) => Err("config: provider: must be a string".into()),
    }
}

impl Guest for Legacy {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "legacy-v0-2".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            hooks: vec![Hook::Policy, Hook::Route],
            config_schema: r#"{"type":"object","properties":{"provider":{"type":"string"}}}"#
                .into(),
        }
    }

    fn validate_config(config: String) -> Result<(), String> {
        provider(&config).map(drop)
    }

    fn policy(ctx: RequestContext) -> Decision {
        host::log(
            LogLevel::Info,
            &format!("legacy-v0-2 policy for {}", ctx.request_id),
        );
        if ctx.metadata.iter().any(|(k, _)| k == "block") {
            return Decision::Deny(Denial {
                status: 403,
                error_type: "permission_error".into(),
                message: "blocked by a 0.2.0 plugin".into(),
            });
        }
        Decision::AllowWith(vec![Annotation {
            key: "abi".into(),
            value: "0.2.0".into(),
        }])
    }

    fn route(_ctx: RequestContext) -> Option<RoutePlan> {
        let provider = provider(&host::config()).ok().flatten()?;
        Some(RoutePlan {
            strategy: Strategy::Single,
            targets: vec![RouteTarget {
                provider,
                model: None,
                weight: 1,
                max_tokens_cap: None,
            }],
            retry_on: RetryOn {
                statuses: vec![429, 503],
                timeout: true,
                connect_error: true,
            },
            retries: 0,
            backoff_ms: 100,
            max_backoff_ms: 1000,
            attempt_timeout_ms: None,
            labels: vec![Annotation {
                key: "routed-by".into(),
                value: "legacy-v0-2".into(),
            }],
        })
    }
}

// Export names only link in the wasm component; the export glue is wit-bindgen's.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod export {
    use crate::Legacy;
    crate::bindings::export!(Legacy with_types_in crate::bindings);
}
