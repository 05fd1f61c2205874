//! Policy bundles: what an admin ships (a chain of plugins with their configs, and a
//! tenant's default provider and models), validated in full before it is activated
//! atomically as a new numbered version, kept with its history for diff and rollback.
//!
//! Activation swaps an immutable [`TenantRuntime`](crate::tenancy::TenantRuntime)
//! snapshot: a request holds the snapshot it was admitted under, so requests in flight
//! finish on their version and the next request sees the new one, with no restart.

mod diff;
pub mod file;
mod replay;
mod watch;

pub use diff::diff;
pub use replay::{ReplayRequest, replay};
pub use watch::watch;

use crate::api::Api;
use crate::control::ControlPlane;
use crate::error::{ApiError, ErrorKind};
use crate::guard::{AnswerText, Guarded, RequestText};
use crate::plugins::{
    CallEnv, ConfiguredPlugin, Endpoint, Hook, LoadedPlugin, RequestContext, RouteTarget,
    StreamMode,
};
use crate::store::bundles::{self as stored, BundleVersion, PLATFORM};
use crate::store::{Store, StoreError};
use crate::tenancy::{Pinned, Platform, TenantLayer};
use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Whose bundle: one tenant's, or the platform's (run first for every tenant).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    Tenant(String),
    Platform,
}

impl Scope {
    /// The store's name for the scope.
    fn key(&self) -> &str {
        match self {
            Scope::Tenant(id) => id,
            Scope::Platform => PLATFORM,
        }
    }
}

/// A bundle as uploaded (`PUT .../bundle`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleRequest {
    /// Tenant bundles only: the provider serving unrouted requests.
    #[serde(default)]
    pub default_provider: Option<String>,
    /// Tenant bundles only: models `GET /v1/models` advertises.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// The chain, in order.
    pub plugins: Vec<PluginUpload>,
    /// Platform bundles only: rules pinned on single tenants, by tenant id. A section
    /// replaces the config file's pinned rules for its tenant; the tenant's own bundle
    /// cannot change them.
    #[serde(default)]
    pub tenants: Option<BTreeMap<String, PinnedUpload>>,
    /// Why the change was made (kept in the history).
    #[serde(default)]
    pub message: Option<String>,
}

/// The rules a platform bundle pins on one tenant.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinnedUpload {
    /// Plugins run for every request of the tenant, after the platform's own.
    #[serde(default)]
    pub plugins: Vec<PluginUpload>,
    /// Providers the tenant may be served by (absent: any).
    #[serde(default)]
    pub allowed_providers: Option<Vec<String>>,
    /// Model globs the tenant may be served (absent: any).
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
}

/// One plugin of an uploaded bundle: a first-party `name`, or a component (`wasm`,
/// base64).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginUpload {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub wasm: Option<String>,
    /// Name in logs and errors (default: `name`, else `plugin<i>`).
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub config: Option<Value>,
    #[serde(default)]
    pub fail_open: bool,
    /// Keep a warm instance between the tenant's requests (see `PluginRef`).
    #[serde(default)]
    pub reuse_instance: bool,
    /// How a response guardrail treats streams (see `PluginRef`).
    #[serde(default)]
    pub response_stream: StreamMode,
}

/// A bundle as stored: components by content hash.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
    pub plugins: Vec<StoredPlugin>,
    /// Platform bundles: rules pinned per tenant.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tenants: BTreeMap<String, StoredPinned>,
}

/// Rules pinned on one tenant, as stored.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredPinned {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<StoredPlugin>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_providers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_models: Option<Vec<String>>,
}

/// One plugin of a stored bundle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredPlugin {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasm_sha256: Option<String>,
    pub label: String,
    pub config: Value,
    #[serde(default)]
    pub fail_open: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reuse_instance: bool,
    #[serde(default, skip_serializing_if = "StreamMode::is_default")]
    pub response_stream: StreamMode,
}

/// Uploaded plugin components by their SHA-256 (hex).
type Blobs = Vec<(String, Vec<u8>)>;

/// A refused bundle: 400 naming the entry and the reason.
fn refused(why: impl std::fmt::Display) -> ApiError {
    ApiError::invalid(format!("bundle refused: {why}"))
}

/// Turns an upload into a stored spec plus the components it carries (each at most
/// `max_component` bytes).
fn stored_spec(
    scope: &Scope,
    req: BundleRequest,
    max_component: usize,
) -> Result<(Spec, Blobs), ApiError> {
    if scope == &Scope::Platform && (req.default_provider.is_some() || req.models.is_some()) {
        return Err(refused(
            "default_provider and models belong to tenant bundles, not the platform's",
        ));
    }
    if scope != &Scope::Platform && req.tenants.is_some() {
        return Err(refused(
            "tenants: pinned rules belong to the platform bundle (platform token only)",
        ));
    }
    let mut blobs = Vec::new();
    let plugins = stored_plugins(req.plugins, "plugins", max_component, &mut blobs)?;
    let mut tenants = BTreeMap::new();
    for (id, p) in req.tenants.unwrap_or_default() {
        let at = format!("tenants.{id}");
        if !crate::config::valid_id(&id) {
            return Err(refused(format!("{at}: '{id}' is not a tenant id")));
        }
        if let Some(m) = &p.allowed_models
            && m.iter().any(|g| g.is_empty() || g.len() > 256)
        {
            return Err(refused(format!(
                "{at}.allowed_models: each must be a model name or glob of 1 to 256 bytes"
            )));
        }
        let plugins = stored_plugins(
            p.plugins,
            &format!("{at}.plugins"),
            max_component,
            &mut blobs,
        )?;
        tenants.insert(
            id,
            StoredPinned {
                plugins,
                allowed_providers: p.allowed_providers,
                allowed_models: p.allowed_models,
            },
        );
    }
    Ok((
        Spec {
            default_provider: req.default_provider,
            models: req.models,
            plugins,
            tenants,
        },
        blobs,
    ))
}

/// Uploaded plugins as stored, their components added to `blobs`.
fn stored_plugins(
    uploads: Vec<PluginUpload>,
    field: &str,
    max_component: usize,
    blobs: &mut Blobs,
) -> Result<Vec<StoredPlugin>, ApiError> {
    let mut plugins = Vec::with_capacity(uploads.len());
    for (i, p) in uploads.into_iter().enumerate() {
        let at = format!("{field}[{i}]");
        let config = match p.config {
            None => Value::Object(Default::default()),
            Some(v @ Value::Object(_)) => v,
            Some(_) => return Err(refused(format!("{at}.config: must be an object"))),
        };
        let (name, wasm_sha256) = match (p.name, p.wasm) {
            (Some(n), None) if crate::config::valid_id(&n) => (Some(n), None),
            (Some(n), None) => {
                return Err(refused(format!("{at}.name: '{n}' is not a plugin name")));
            }
            (None, Some(b64)) => {
                // base64 is 4/3 of the bytes: refuse an oversized upload before decoding it.
                if b64.len() / 4 * 3 > max_component.saturating_add(3) {
                    return Err(refused(format!(
                        "{at}.wasm: the component is larger than {max_component} bytes \
                         ([sandbox] max_component_bytes)"
                    )));
                }
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|e| refused(format!("{at}.wasm: not base64: {e}")))?;
                if bytes.len() > max_component {
                    return Err(refused(format!(
                        "{at}.wasm: the component is {} bytes; at most {max_component} are \
                         accepted ([sandbox] max_component_bytes)",
                        bytes.len()
                    )));
                }
                let sha = hex::encode(Sha256::digest(&bytes));
                blobs.push((sha.clone(), bytes));
                (None, Some(sha))
            }
            _ => return Err(refused(format!("{at}: set exactly one of name or wasm"))),
        };
        let label = p
            .label
            .or_else(|| name.clone())
            .unwrap_or_else(|| format!("plugin{i}"));
        if label.is_empty() || label.len() > 64 {
            return Err(refused(format!("{at}.label: must be 1 to 64 bytes")));
        }
        plugins.push(StoredPlugin {
            name,
            wasm_sha256,
            label,
            config,
            fail_open: p.fail_open,
            reuse_instance: p.reuse_instance,
            response_stream: p.response_stream,
        });
    }
    Ok(plugins)
}

/// What a built bundle activates.
struct Built {
    /// The scope's chain.
    plugins: Vec<ConfiguredPlugin>,
    /// Platform bundles: the rules pinned per tenant.
    pinned: HashMap<String, Arc<Pinned>>,
}

/// Compiles, describes and config-checks every plugin of `spec` (and of its pinned
/// tenant sections), and (when `smoke`: an apply or a replay, not a restore) runs each
/// declared hook once on a sample request and checks that a tenant bundle's default
/// provider is one the operator allows the tenant. Errors name the entry.
async fn build(
    state: &ControlPlane,
    scope: &Scope,
    spec: &Spec,
    blobs: &[(String, Vec<u8>)],
    smoke: bool,
) -> Result<Built, String> {
    if let Some(p) = &spec.default_provider {
        if state.providers.get(p).is_none() {
            return Err(format!("default_provider: unknown provider '{p}'"));
        }
        // Checked when a bundle is applied; one restored at start-up whose default the
        // operator has since disallowed still loads (its requests get 403), rather than
        // stopping the gateway.
        if let Scope::Tenant(id) = scope
            && smoke
        {
            state
                .tenant(id)
                .pinned
                .allows_provider(p)
                .map_err(|e| format!("default_provider: {e} (pinned by the operator)"))?;
        }
    }
    // Whose uploads these are, for the compile lanes: the scope applying the bundle, also
    // for the tenant sections of a platform bundle (the operator's uploads must not wait
    // behind that tenant's own).
    let owner = match scope {
        Scope::Tenant(id) => format!("tenant {id}"),
        Scope::Platform => "platform".to_string(),
    };
    let plugins =
        build_plugins(state, scope, &owner, &spec.plugins, "plugins", blobs, smoke).await?;
    let mut pinned = HashMap::new();
    for (id, p) in &spec.tenants {
        let at = format!("tenants.{id}");
        for (i, provider) in p.allowed_providers.iter().flatten().enumerate() {
            if state.providers.get(provider).is_none() {
                return Err(format!(
                    "{at}.allowed_providers[{i}]: unknown provider '{provider}'"
                ));
            }
        }
        let tenant_scope = Scope::Tenant(id.clone());
        let plugins = build_plugins(
            state,
            &tenant_scope,
            &owner,
            &p.plugins,
            &format!("{at}.plugins"),
            blobs,
            smoke,
        )
        .await?;
        pinned.insert(
            id.clone(),
            Arc::new(Pinned {
                plugins,
                allowed_providers: p.allowed_providers.clone(),
                allowed_models: p.allowed_models.clone(),
                source: "platform bundle".into(),
            }),
        );
    }
    Ok(Built { plugins, pinned })
}

/// Builds one list of stored plugins (see [`build`]); `scope` decides whose limits the
/// smoke requests run under, `owner` whose compile lane uploads wait in.
async fn build_plugins(
    state: &ControlPlane,
    scope: &Scope,
    owner: &str,
    stored: &[StoredPlugin],
    field: &str,
    blobs: &[(String, Vec<u8>)],
    smoke: bool,
) -> Result<Vec<ConfiguredPlugin>, String> {
    let mut out = Vec::with_capacity(stored.len());
    for (i, p) in stored.iter().enumerate() {
        let at = format!("{field}[{i}] ({})", p.label);
        let loaded = load(state, owner, p, blobs)
            .await
            .map_err(|e| format!("{at}: {e}"))?;
        let config = p.config.to_string();
        // Under the tenant's limits (in its admin slot), as its calls will run.
        let sandbox = match scope {
            Scope::Tenant(id) => Some(state.admin_sandbox(id)),
            Scope::Platform => None,
        };
        let prepared = state
            .plugins
            .validate_config(&loaded, &p.label, &config, sandbox)
            .await
            .map_err(|e| format!("{at}: {e}"))?;
        let configured = ConfiguredPlugin {
            label: Arc::from(p.label.as_str()),
            plugin: loaded,
            config: Arc::from(config.as_str()),
            prepared,
            fail_open: p.fail_open,
            reuse_instance: p.reuse_instance,
            response_stream: p.response_stream,
        };
        if smoke {
            smoke_test(state, scope, &configured)
                .await
                .map_err(|e| format!("{at}: {e} on the smoke request"))?;
        }
        out.push(configured);
    }
    let whose = match scope {
        Scope::Tenant(id) => id.as_str(),
        Scope::Platform => "platform",
    };
    crate::plugins::budget_prepared(whose, &mut out);
    Ok(out)
}

/// The component of one plugin: a first-party file, or bytes `owner` uploaded.
async fn load(
    state: &ControlPlane,
    owner: &str,
    p: &StoredPlugin,
    blobs: &[(String, Vec<u8>)],
) -> Result<Arc<LoadedPlugin>, String> {
    match (&p.name, &p.wasm_sha256) {
        (Some(name), _) => {
            let path = crate::plugins::first_party_path(&state.settings.plugin_dir, name);
            if !path.is_file() {
                // The plugin directory is the server's business, not the uploader's.
                tracing::info!(plugin = %name, path = %path.display(), "bundle names a first-party plugin that is not installed");
                return Err(format!("no first-party plugin is named '{name}'"));
            }
            state
                .plugins
                .load_file(&p.label, &path)
                .await
                .map_err(|e| e.to_string())
        }
        (None, Some(sha)) => {
            let bytes = blobs
                .iter()
                .find(|(h, _)| h == sha)
                .map(|(_, b)| b)
                .ok_or_else(|| format!("component {sha} is missing from the store"))?;
            state
                .plugins
                .load_bytes(&p.label, bytes, owner)
                .await
                .map_err(|e| e.to_string())
        }
        (None, None) => Err("no name or component".into()),
    }
}

/// Runs every hook the plugin declares on a sample request: a plugin that traps, runs
/// out of time or memory, or routes to an unknown provider is refused before it can
/// fail a real request. Denials are fine: a policy may well deny the sample.
async fn smoke_test(
    state: &ControlPlane,
    scope: &Scope,
    p: &ConfiguredPlugin,
) -> Result<(), String> {
    const BODY: &str = r#"{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"smoke test"}]}"#;
    let tenant = match scope {
        Scope::Tenant(id) => id.clone(),
        Scope::Platform => "platform-smoke".into(),
    };
    let ctx = RequestContext {
        request_id: "req_smoke".into(),
        trace_id: "req_smoke".into(),
        tenant,
        key_id: "key_smoke".into(),
        key_name: "smoke".into(),
        team: Some("smoke".into()),
        user: Some("smoke@example.com".into()),
        metadata: vec![
            ("env".into(), "prod".into()),
            ("team".into(), "smoke".into()),
            ("user".into(), "smoke@example.com".into()),
        ],
        model: "claude-sonnet-4-5".into(),
        endpoint: Endpoint::Messages,
        stream: false,
        max_tokens: Some(16),
        body_bytes: BODY.len() as u32,
        prompt_tokens_estimate: (BODY.len() / 4) as u32,
        message_count: 1,
    };
    // The tenant's limits in its admin slot: a smoke test neither waits behind the
    // tenant's traffic nor takes its slots.
    let sandbox = match scope {
        Scope::Tenant(id) => Some(state.admin_sandbox(id)),
        Scope::Platform => None,
    };
    let env = || CallEnv {
        label: p.label.clone(),
        config: p.config.clone(),
        prepared: p.prepared.clone(),
        body: Bytes::from_static(BODY.as_bytes()),
        usage: None,
        sandbox: sandbox.clone(),
        // The smoke request must not leave state in (or take it from) warm instances.
        reuse: false,
    };
    let rt = &state.plugins;
    let hooks = &p.plugin.info.hooks;
    if hooks.contains(&Hook::Policy) {
        rt.call_policy(&p.plugin, env(), &ctx)
            .await
            .map_err(|f| f.to_string())?;
    }
    let out = rt.output_limits();
    let mut trimmed = crate::plugins::Trimmed::default();
    if hooks.contains(&Hook::Route)
        && let Some(mut plan) = rt
            .call_route(&p.plugin, env(), &ctx)
            .await
            .map_err(|f| f.to_string())?
    {
        out.route_plan(&mut plan, &mut trimmed)?;
        crate::routing::Plan::resolve(
            plan,
            &p.label,
            &state.providers,
            &ctx.model,
            out.max_attempts,
        )
        .map_err(|e| e.message)?;
    }
    if hooks.contains(&Hook::Budget) {
        let target = RouteTarget {
            provider: state.default_provider.clone().unwrap_or_default(),
            model: Some(ctx.model.clone()),
            weight: 1,
            max_tokens_cap: None,
        };
        let mut decision = rt
            .call_budget(&p.plugin, env(), &ctx, &target)
            .await
            .map_err(|f| f.to_string())?;
        out.budget(&mut decision, out.max_limits_per_request, &mut trimmed)?;
    }
    // Guardrails: their verdicts on the smoke conversation and answer must be usable.
    let guards = [
        (Hook::InspectRequest, "inspect-request"),
        (Hook::InspectResponse, "inspect-response"),
    ];
    for (hook, name) in guards {
        if !hooks.contains(&hook) {
            continue;
        }
        let mut subject: Box<dyn Guarded> = match hook {
            Hook::InspectRequest => Box::new(
                RequestText::parse(Api::Anthropic, BODY.as_bytes()).map_err(|e| e.to_string())?,
            ),
            _ => Box::new(
                AnswerText::parse(Api::Anthropic, SMOKE_ANSWER.as_bytes(), &Default::default())
                    .map_err(|e| e.to_string())?,
            ),
        };
        let mut verdict = rt
            .call_inspect(&p.plugin, env(), &ctx, subject.subject())
            .await
            .map_err(|f| f.to_string())?;
        out.verdict(&mut verdict, &mut trimmed);
        if let crate::plugins::wit::Verdict::Rewrite(rw) = verdict {
            subject
                .rewrite(rw)
                .map_err(|e| format!("{name} returned a rewrite the host cannot apply: {e}"))?;
        }
    }
    Ok(())
}

/// The answer the smoke request's response guardrails inspect.
const SMOKE_ANSWER: &str = r#"{"id":"msg_smoke","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"smoke answer"}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":2}}"#;

/// Makes the built bundle the scope's chain in memory (the next request uses it).
fn activate(state: &ControlPlane, scope: &Scope, spec: &Spec, built: Built, version: u32) {
    match scope {
        Scope::Platform => state.tenants.set_platform(Platform {
            plugins: built.plugins,
            version: Some(version),
            pinned: built
                .pinned
                .into_iter()
                .map(|(id, p)| {
                    let mut p = Arc::unwrap_or_clone(p);
                    p.source = format!("platform bundle v{version}");
                    (id, Arc::new(p))
                })
                .collect(),
        }),
        Scope::Tenant(id) => {
            let base = state.settings.config_tenants.get(id);
            state.tenants.set_tenant(
                id,
                TenantLayer {
                    default_provider: spec
                        .default_provider
                        .clone()
                        .or_else(|| base.and_then(|t| t.default_provider.clone())),
                    models: spec
                        .models
                        .clone()
                        .or_else(|| base.map(|t| t.models.clone()))
                        .unwrap_or_default(),
                    own: built.plugins,
                    version: Some(version),
                },
            );
        }
    }
}

/// What changed against the active version, in a line.
fn summarise(previous: Option<&Spec>, spec: &Spec) -> String {
    let labels: Vec<&str> = spec.plugins.iter().map(|p| p.label.as_str()).collect();
    let Some(prev) = previous else {
        return format!(
            "first version: {} plugin(s): {}",
            labels.len(),
            labels.join(", ")
        );
    };
    let changes = diff(&to_value(prev), &to_value(spec));
    match changes.len() {
        0 => "no change".into(),
        n => {
            let paths: Vec<&str> = changes
                .iter()
                .take(3)
                .map(|c| c.split(": ").next().unwrap_or(c))
                .collect();
            let more = if n > 3 { ", ..." } else { "" };
            format!("{n} change(s): {}{more}", paths.join(", "))
        }
    }
}

fn to_value(spec: &Spec) -> Value {
    serde_json::to_value(spec).unwrap_or(Value::Null)
}

/// Validates `req` in full and activates it as the scope's next version; refused
/// bundles change nothing (and are audited).
pub async fn apply(
    state: &Arc<ControlPlane>,
    scope: Scope,
    req: BundleRequest,
    author: &str,
) -> Result<BundleVersion, ApiError> {
    let message = req.message.clone();
    let (spec, blobs) = stored_spec(&scope, req, state.settings.max_component_bytes)?;
    commit(state, scope, spec, blobs, message, author, "apply").await
}

/// Re-activates the content of `version` as the scope's next version.
pub async fn rollback(
    state: &Arc<ControlPlane>,
    scope: Scope,
    version: u32,
    author: &str,
) -> Result<BundleVersion, ApiError> {
    let key = scope.key().to_string();
    let v = state
        .store
        .bundle_version(key, Some(version))
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| {
            ApiError::from(StoreError::NotFound(format!("no bundle version {version}")))
        })?;
    let (old, blobs) = stored_bundle(&state.store, &v)
        .await
        .map_err(ApiError::from)?;
    let message = Some(format!("rollback to version {version}"));
    commit(state, scope, old, blobs, message, author, "rollback").await
}

/// A stored version's spec and the components it names.
async fn stored_bundle(store: &Store, v: &BundleVersion) -> Result<(Spec, Blobs), StoreError> {
    let spec: Spec = serde_json::from_str(&v.spec)
        .map_err(|e| StoreError::Task(format!("stored bundle is unreadable: {e}")))?;
    let shas = spec
        .plugins
        .iter()
        .filter_map(|p| p.wasm_sha256.clone())
        .collect();
    let blobs = store.bundle_blobs(shas).await?;
    Ok((spec, blobs))
}

async fn commit(
    state: &Arc<ControlPlane>,
    scope: Scope,
    spec: Spec,
    blobs: Blobs,
    message: Option<String>,
    author: &str,
    action: &str,
) -> Result<BundleVersion, ApiError> {
    if let Scope::Tenant(id) = &scope
        && state
            .store
            .get_tenant(id.clone())
            .await
            .map_err(ApiError::from)?
            .is_none()
    {
        return Err(ApiError::new(
            ErrorKind::NotFound,
            format!("tenant '{id}' does not exist"),
        ));
    }
    // One activation at a time per scope, so its versions and its in-memory chain
    // agree; other tenants' changes never wait on this one's compiling.
    let lock = state.bundle_lock(scope.key());
    let _serial = lock.lock().await;
    let built = match build(state, &scope, &spec, &blobs, true).await {
        Ok(p) => p,
        Err(why) => {
            let _ = state
                .store
                .bundle_audit(
                    scope.key().to_string(),
                    author.to_string(),
                    format!("{action}-refused"),
                    why.clone(),
                )
                .await;
            return Err(refused(why));
        }
    };
    let key = scope.key().to_string();
    let json = serde_json::to_string(&spec).map_err(|e| ApiError::internal(e.to_string()))?;
    let hash = hex::encode(Sha256::digest(json.as_bytes()));
    let spec_for_summary = spec.clone();
    let new = stored::NewBundle {
        author: author.to_string(),
        hash,
        message,
        spec: json,
        action: action.to_string(),
    };
    let version = state
        .store
        .commit_bundle(key, blobs, new, move |previous| {
            let previous = previous.and_then(|s| serde_json::from_str::<Spec>(s).ok());
            summarise(previous.as_ref(), &spec_for_summary)
        })
        .await
        .map_err(ApiError::from)?;
    activate(state, &scope, &spec, built, version.version);
    tracing::info!(scope = %scope.key(), version = version.version, hash = %&version.hash[..12], "bundle activated: {}", version.summary);
    Ok(version)
}

/// Activates the shared store's active version of scope `key` (a tenant id, or `*`)
/// when this replica runs another: another replica applied or rolled back. Returns
/// whether it changed anything.
pub async fn sync_scope(state: &Arc<ControlPlane>, key: &str) -> Result<bool, String> {
    let scope = if key == PLATFORM {
        Scope::Platform
    } else {
        Scope::Tenant(key.to_string())
    };
    let lock = state.bundle_lock(scope.key());
    let _serial = lock.lock().await;
    let Some(v) = state
        .store
        .bundle_version(key.to_string(), None)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(false);
    };
    let running = match &scope {
        Scope::Platform => state.tenants.platform().version,
        Scope::Tenant(id) => state.tenant(id).version,
    };
    if running == Some(v.version) {
        return Ok(false);
    }
    let (spec, blobs) = stored_bundle(&state.store, &v)
        .await
        .map_err(|e| e.to_string())?;
    let built = build(state, &scope, &spec, &blobs, false).await?;
    activate(state, &scope, &spec, built, v.version);
    tracing::info!(scope = %scope.key(), version = v.version, "bundle activated from the shared store");
    Ok(true)
}

/// At start-up: activates every scope's stored active version (platform first), so
/// bundles applied through the admin API outlive a restart.
pub async fn activate_stored(state: &Arc<ControlPlane>) -> anyhow::Result<()> {
    let mut active = Vec::new();
    for v in state.store.active_bundles().await? {
        let (spec, blobs) = stored_bundle(&state.store, &v).await?;
        active.push((v, spec, blobs));
    }
    // The platform's scope name sorts first ('*'), so tenants compose on top of it.
    for (v, spec, blobs) in active {
        let scope = match v.tenant {
            Some(id) => Scope::Tenant(id),
            None => Scope::Platform,
        };
        let built = build(state, &scope, &spec, &blobs, false)
            .await
            .map_err(|e| anyhow::anyhow!("bundle '{}' version {}: {e}", scope.key(), v.version))?;
        activate(state, &scope, &spec, built, v.version);
        tracing::info!(scope = %scope.key(), version = v.version, "stored bundle activated");
    }
    Ok(())
}

/// A stored version's spec as the admin API shows it.
pub fn spec_json(v: &BundleVersion) -> Value {
    serde_json::from_str(&v.spec).unwrap_or(Value::Null)
}
