//! The engine, the linker, and compiling/loading plugins (cached on disk by content hash).

use super::PluginError;
use super::abi::{Guest, GuestPre};
use super::bindings::{Decision, PluginInfo, RequestContext, RoutePlan, RouteTarget, wit};
use super::cache::{self, ArtifactCache};
use super::compile::{self, CompileFailure, Compiler};
use super::guardrail::Subject;
use super::isolation::{Slots, TenantSandbox};
use super::lanes::{Lanes, Origin};
use super::output::OutputLimits;
use super::sandbox::{self, CallFailure, Kept, MAX_PREPARED_BYTES, PluginState, SandboxLimits};
use super::ticker::Ticker;
use super::usage::UsageView;
use super::warm::{Warm, WarmKey, WarmPool};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

/// Dirty linear memory reset in place per slot when the kernel tells which pages are
/// dirty (the rest is returned with madvise). Rust plugins put a 1 MiB stack first and
/// their data and heap after it, so this covers the stack's used top and a small
/// plugin's heap.
const KEEP_RESIDENT_SCANNED: usize = 4 << 20;

/// Linear memory memset per slot when the kernel cannot tell which pages are dirty.
const KEEP_RESIDENT_MEMSET: usize = 512 << 10;

/// A plugin compiled and pre-linked, ready to instantiate per call.
pub struct LoadedPlugin {
    /// What the plugin says about itself.
    pub info: PluginInfo,
    /// SHA-256 of the wasm bytes (shared with the keys of its warm instances).
    pub hash: Arc<str>,
    /// The contract version the component was built against (`0.3.0`, `0.2.0`).
    pub contract: &'static str,
    pre: GuestPre,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.info.name)
            .field("version", &self.info.version)
            .field("hash", &self.hash)
            .field("contract", &self.contract)
            .finish()
    }
}

/// What one hook call runs with besides the request context.
#[derive(Clone)]
pub struct CallEnv {
    /// Name used in logs and errors.
    pub label: Arc<str>,
    /// The tenant's config for the plugin (JSON).
    pub config: Arc<str>,
    /// What the plugin kept when `config` was checked (`keep-prepared`).
    pub prepared: Bytes,
    /// The request body, served by `request-body`.
    pub body: Bytes,
    /// What `usage` may read; `None` answers every scope with zero usage.
    pub usage: Option<UsageView>,
    /// The tenant's limits and instance slots; `None`: the gateway-wide defaults.
    pub sandbox: Option<Arc<TenantSandbox>>,
    /// Run in a warm instance of the same tenant, plugin and config when one is idle,
    /// and keep this call's instance for the next (`reuse_instance`).
    pub reuse: bool,
}

/// The process-wide plugin runtime.
pub struct PluginRuntime {
    engine: Engine,
    linker: Linker<PluginState>,
    limits: SandboxLimits,
    /// Limits and slots of calls made for no tenant (describe, config checks, tools).
    default_sandbox: Arc<TenantSandbox>,
    /// The gateway's limits with [`LOAD_DEADLINE`], for `describe` at load.
    load_sandbox: Arc<TenantSandbox>,
    /// The pooling allocator's instance slots: waited for rather than failing a call
    /// when every slot is briefly taken.
    pool: Slots,
    /// Compiled plugins on disk; `None`: compile every load.
    cache: Option<ArtifactCache>,
    loaded: Mutex<HashMap<String, Arc<LoadedPlugin>>>,
    /// Components refused at compile time, by hash, so a bomb is not compiled twice.
    refused: Mutex<HashMap<String, String>>,
    wasi: Arc<sandbox::WasiPool>,
    /// Finished calls' stores waiting to be torn down, at most [`TEARDOWNS_WAITING`].
    teardowns: Arc<AtomicUsize>,
    /// Idle instances of plugins whose entries set `reuse_instance`.
    warm: WarmPool,
    output: OutputLimits,
    compiler: Compiler,
    max_component_bytes: usize,
    /// Who may compile at once (see [`Lanes`]).
    lanes: Lanes,
    /// Advances the epoch while calls run plugin code.
    ticker: Ticker,
}

/// Refused hashes remembered at most.
const REFUSED_MAX: usize = 1_024;

/// How long a call made for no tenant waits for an instance slot.
const DEFAULT_QUEUE: Duration = Duration::from_secs(1);

/// The least deadline of `describe` when a component is loaded. Its first instance
/// builds the component's memory image (for an interpreter, megabytes of pre-initialised
/// heap copied once), which no request pays; an upload must not fail because the core
/// was busy for those few milliseconds. Compiling the component costs far more.
const LOAD_DEADLINE: Duration = Duration::from_millis(250);

/// Finished calls' stores that may wait for their teardown. A request's few hooks
/// fit, so at one connection every teardown overlaps the provider's answer; under load
/// most are torn down at once, while their pages are still in cache and their pool slots
/// are the ones the next instances reuse (deferring them all cost 6-17% of three-plugin
/// throughput at c=64).
const TEARDOWNS_WAITING: usize = 4;

/// A finished call's store, torn down when dropped (in its task, or here when the
/// task never runs: a runtime shutting down drops it unrun).
struct Retired {
    store: Option<Store<PluginState>>,
    wasi: Arc<sandbox::WasiPool>,
    waiting: Arc<AtomicUsize>,
}

impl Drop for Retired {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            self.wasi.put(store.into_data());
        }
        self.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

impl PluginRuntime {
    /// Builds the engine (pooling allocator, epoch interruption) and links the host API.
    ///
    /// `cache_dir` holds compiled plugins keyed by content and engine; `None` disables it.
    pub fn new(
        limits: SandboxLimits,
        max_instances: u32,
        cache_dir: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        Self::with_pool(limits, max_instances, limits.memory_bytes, cache_dir)
    }

    /// Like [`PluginRuntime::new`], with pool slots big enough for the largest memory cap
    /// any tenant is given (`largest_memory_bytes`).
    pub fn with_pool(
        limits: SandboxLimits,
        max_instances: u32,
        largest_memory_bytes: usize,
        cache_dir: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        let largest = largest_memory_bytes.max(limits.memory_bytes);
        // Idle warm instances hold allocator slots of their own, beside the calls in
        // flight (which `max_instances` bounds).
        let warm_cap = max_instances / 4;
        let slots = max_instances
            .saturating_add(warm_cap)
            .saturating_add(TEARDOWNS_WAITING as u32);
        let mut pool = PoolingAllocationConfig::default();
        // A Rust wasip2 component holds a few core instances (program, adapter, shims).
        pool.total_component_instances(slots)
            .total_core_instances(slots.saturating_mul(8))
            .total_memories(slots.saturating_mul(2))
            .total_tables(slots.saturating_mul(8))
            // The limiter enforces the exact cap; the pool only bounds the slot size.
            .max_memory_size(largest.saturating_mul(2).max(64 << 20))
            .total_stacks(slots)
            // Reset the pages a call dirtied in place (found with Linux's PAGEMAP_SCAN,
            // 6.7+) instead of dropping them with madvise: a plugin's stack, data and
            // heap then stay mapped from call to call, with no page faults and no
            // memset of pages it never touched. Older kernels memset the first
            // `keep_resident` bytes, so they keep less.
            .pagemap_scan(wasmtime::Enabled::Auto)
            .linear_memory_keep_resident(if PoolingAllocationConfig::is_pagemap_scan_available() {
                KEEP_RESIDENT_SCANNED
            } else {
                KEEP_RESIDENT_MEMSET
            })
            .table_keep_resident(64 << 10);
        let mut config = compile::base_config();
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        super::abi::add_to_linker(&mut linker)?;
        let ticker = Ticker::start(&engine);
        let cache = cache_dir
            .map(|dir| ArtifactCache::open(dir, &engine))
            .transpose()?;
        Ok(Self {
            engine,
            linker,
            limits,
            default_sandbox: Arc::new(TenantSandbox::new(limits, max_instances, DEFAULT_QUEUE)),
            load_sandbox: Arc::new(TenantSandbox::new(
                SandboxLimits {
                    deadline: limits.deadline.max(LOAD_DEADLINE),
                    ..limits
                },
                max_instances,
                DEFAULT_QUEUE,
            )),
            pool: Slots::new(max_instances),
            cache,
            loaded: Mutex::new(HashMap::new()),
            refused: Mutex::new(HashMap::new()),
            wasi: Arc::default(),
            teardowns: Arc::default(),
            warm: WarmPool::new(warm_cap as usize, (warm_cap as usize / 2).max(1)),
            output: OutputLimits::default(),
            compiler: Compiler::InProcess,
            max_component_bytes: 64 << 20,
            lanes: Lanes::new(Lanes::upload_workers()),
            ticker,
        })
    }

    /// The same runtime compiling with `compiler`, refusing components over
    /// `max_component_bytes`.
    pub fn with_compiler(mut self, compiler: Compiler, max_component_bytes: usize) -> Self {
        self.compiler = compiler;
        self.max_component_bytes = max_component_bytes;
        self
    }

    /// The same runtime with `output` as the bounds on what plugins return.
    pub fn with_output_limits(mut self, output: OutputLimits) -> Self {
        self.output = output;
        self
    }

    /// The bounds on what plugins return.
    pub fn output_limits(&self) -> &OutputLimits {
        &self.output
    }

    /// The limits every call runs under.
    pub fn limits(&self) -> SandboxLimits {
        self.limits
    }

    /// Loads a plugin file of the operator's; identical bytes are compiled and
    /// described once per process.
    pub async fn load_file(
        &self,
        label: &str,
        path: &Path,
    ) -> Result<Arc<LoadedPlugin>, PluginError> {
        let bytes = std::fs::read(path).map_err(|source| PluginError::Read {
            plugin: label.to_string(),
            path: path.to_path_buf(),
            source,
        })?;
        self.load(label, &bytes, Origin::Operator).await
    }

    /// Loads plugin bytes uploaded by `owner` (`tenant <id>`, or `platform`), which
    /// compile one at a time per owner (see [`PluginRuntime::load_file`]).
    pub async fn load_bytes(
        &self,
        label: &str,
        bytes: &[u8],
        owner: &str,
    ) -> Result<Arc<LoadedPlugin>, PluginError> {
        self.load(label, bytes, Origin::Upload { owner }).await
    }

    async fn load(
        &self,
        label: &str,
        bytes: &[u8],
        origin: Origin<'_>,
    ) -> Result<Arc<LoadedPlugin>, PluginError> {
        let hash = hex::encode(Sha256::digest(bytes));
        if let Some(p) = crate::sync::lock(&self.loaded).get(&hash).cloned() {
            return Ok(p);
        }
        let compile_err = |message: String| PluginError::Compile {
            plugin: label.to_string(),
            message,
        };
        let component = self
            .compile_cached(&hash, bytes, origin)
            .await
            .map_err(compile_err)?;
        let instance_pre = self.linker.instantiate_pre(&component).map_err(|e| {
            compile_err(format!(
                "cannot be linked: {e:#} (rebuild it against this gateway's wit/plugin.wit)"
            ))
        })?;
        let pre = GuestPre::new(instance_pre).map_err(|e| compile_err(format!("{e:#}")))?;
        let mut loaded = LoadedPlugin {
            info: PluginInfo {
                name: label.to_string(),
                version: String::new(),
                hooks: Vec::new(),
                config_schema: String::new(),
            },
            hash: Arc::from(hash.as_str()),
            contract: pre.version(),
            pre,
        };
        loaded.info = self
            .call(
                &loaded,
                "{}".into(),
                Bytes::new(),
                "describe".into(),
                async |p, s| p.describe(s).await,
            )
            .await
            .map_err(|failure| PluginError::Call {
                plugin: label.to_string(),
                failure,
            })?;
        let info = &loaded.info;
        if info.name.len() > 64
            || info.version.len() > 64
            || info.hooks.len() > 16
            || info.config_schema.len() > 64 << 10
        {
            return Err(compile_err(
                "describe returned more than the host accepts (name and version at most 64 \
                 bytes, config schema at most 64 KiB)"
                    .into(),
            ));
        }
        let loaded = Arc::new(loaded);
        crate::sync::lock(&self.loaded).insert(hash, loaded.clone());
        Ok(loaded)
    }

    /// Asks the plugin whether `config` (JSON) is acceptable, under `sandbox` (the
    /// tenant's limits; `None`: the gateway's), and returns what it kept for later calls
    /// with that config (`keep-prepared`): empty when nothing, or when it kept more than
    /// [`MAX_PREPARED_BYTES`] (its calls then read the JSON, as without a prepared form).
    pub async fn validate_config(
        &self,
        plugin: &LoadedPlugin,
        label: &str,
        config: &str,
        sandbox: Option<Arc<TenantSandbox>>,
    ) -> Result<Bytes, PluginError> {
        let env = CallEnv {
            label: Arc::from(plugin.info.name.as_str()),
            config: config.into(),
            prepared: Bytes::new(),
            body: Bytes::new(),
            usage: None,
            sandbox,
            reuse: false,
        };
        let (res, kept) = self
            .call_labelled(plugin, env, "validate-config".into(), None, async |p, s| {
                s.data_mut().keeping = Some(Kept::Nothing);
                let res = p.validate_config(s, config).await?;
                Ok((res, s.data_mut().keeping.take().unwrap_or_default()))
            })
            .await
            .map_err(|failure| PluginError::Call {
                plugin: label.to_string(),
                failure,
            })?;
        res.map_err(|mut message| {
            super::output::truncate(&mut message, self.output.max_message_bytes);
            PluginError::InvalidConfig {
                plugin: label.to_string(),
                message,
            }
        })?;
        Ok(match kept {
            Kept::Nothing => Bytes::new(),
            Kept::Data(data) => data,
            Kept::TooLarge(n) => {
                tracing::warn!(
                    plugin = %label,
                    bytes = n,
                    "plugin prepared more than the host keeps ({MAX_PREPARED_BYTES} bytes): its calls will parse the config"
                );
                Bytes::new()
            }
        })
    }

    /// Runs the policy hook in a fresh, bounded instance.
    pub async fn call_policy(
        &self,
        plugin: &LoadedPlugin,
        env: CallEnv,
        ctx: &RequestContext,
    ) -> Result<Decision, CallFailure> {
        self.call_hook(plugin, env, ctx, async |p, s| p.policy(s, ctx).await)
            .await
    }

    /// Runs the route hook in a fresh, bounded instance.
    pub async fn call_route(
        &self,
        plugin: &LoadedPlugin,
        env: CallEnv,
        ctx: &RequestContext,
    ) -> Result<Option<RoutePlan>, CallFailure> {
        self.call_hook(plugin, env, ctx, async |p, s| p.route(s, ctx).await)
            .await
    }

    /// Runs the budget hook in a fresh, bounded instance, for a request about to be
    /// served on `target`.
    pub async fn call_budget(
        &self,
        plugin: &LoadedPlugin,
        env: CallEnv,
        ctx: &RequestContext,
        target: &RouteTarget,
    ) -> Result<wit::BudgetDecision, CallFailure> {
        self.call_hook(plugin, env, ctx, async |p, s| {
            p.budget(s, ctx, target).await
        })
        .await
    }

    /// Runs a guardrail hook in a fresh, bounded instance: `inspect-request` on a
    /// conversation, `inspect-response` on an answer.
    pub async fn call_inspect(
        &self,
        plugin: &LoadedPlugin,
        env: CallEnv,
        ctx: &RequestContext,
        subject: Subject<'_>,
    ) -> Result<wit::Verdict, CallFailure> {
        self.call_hook(plugin, env, ctx, async |p, s| {
            p.inspect(s, ctx, subject).await
        })
        .await
    }

    async fn call_hook<R>(
        &self,
        plugin: &LoadedPlugin,
        env: CallEnv,
        ctx: &RequestContext,
        f: impl AsyncFnOnce(&Guest, &mut Store<PluginState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallFailure> {
        let request_id: Arc<str> = Arc::from(ctx.request_id.as_str());
        let warm = env.reuse.then_some(ctx.tenant.as_str());
        self.call_labelled(plugin, env, request_id, warm, f).await
    }

    /// A call at load (`describe`), under the gateway's limits with [`LOAD_DEADLINE`].
    async fn call<R>(
        &self,
        plugin: &LoadedPlugin,
        config: Arc<str>,
        body: Bytes,
        request_id: Arc<str>,
        f: impl AsyncFnOnce(&Guest, &mut Store<PluginState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallFailure> {
        let env = CallEnv {
            label: Arc::from(plugin.info.name.as_str()),
            config,
            prepared: Bytes::new(),
            body,
            usage: None,
            sandbox: Some(self.load_sandbox.clone()),
            reuse: false,
        };
        self.call_labelled(plugin, env, request_id, None, f).await
    }

    async fn call_labelled<R>(
        &self,
        plugin: &LoadedPlugin,
        env: CallEnv,
        request_id: Arc<str>,
        warm: Option<&str>,
        f: impl AsyncFnOnce(&Guest, &mut Store<PluginState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallFailure> {
        let sandbox = env
            .sandbox
            .clone()
            .unwrap_or_else(|| self.default_sandbox.clone());
        // The tenant's own slots first: a tenant at its limit waits on itself and never
        // holds a pool slot another tenant could use.
        let _tenant_slot = sandbox.enter().await?;
        let _pool_slot = self
            .pool
            .take(sandbox.queue())
            .await
            .ok_or(CallFailure::PoolBusy {
                instances: self.pool.size(),
                waited: sandbox.queue(),
            })?;
        let limits = sandbox.limits;
        let label = env.label.clone();
        // A warm call's key: the idle instance's own, or (on a miss) a new one.
        let mut key = None;
        let taken = warm.and_then(|tenant| {
            let found = self
                .warm
                .take(tenant, &plugin.hash, &env.label, &env.config);
            if found.is_none() {
                key = Some(WarmKey {
                    tenant: Arc::from(tenant),
                    hash: plugin.hash.clone(),
                    label: env.label.clone(),
                    config: env.config.clone(),
                });
            }
            found
        });
        let (mut store, guest, uses) = match taken {
            Some((k, mut w)) => {
                key = Some(k);
                w.store
                    .data_mut()
                    .reset(&limits, &self.output, env, request_id.clone());
                (w.store, Some(w.guest), w.uses)
            }
            None => {
                let wasi = self.wasi.take();
                let state = PluginState::new(&limits, &self.output, wasi, env, request_id.clone());
                let mut store = Store::new(&self.engine, state);
                store.limiter(|s| &mut s.limiter);
                (store, None, 0)
            }
        };
        // Plugin code runs from here (a start function while instantiating) until the
        // call returns: the epoch must advance meanwhile.
        let running = self.ticker.running();
        arm_deadline(&mut store, limits.deadline);
        let hit = store.data().limiter.hit.clone();
        let classify = |e: &wasmtime::Error| {
            sandbox::classify(e, &limits, hit.load(std::sync::atomic::Ordering::Relaxed))
        };
        let instance = match guest {
            Some(g) => g,
            None => plugin
                .pre
                .instantiate(&mut store, key.is_some())
                .await
                .map_err(|e| match classify(&e) {
                    CallFailure::Trap(m) => CallFailure::Instantiate(m),
                    other => other,
                })?,
        };
        let result = f(&instance, &mut store).await.map_err(|e| classify(&e));
        drop(running);
        let dropped = store.data().log_quota.dropped;
        if dropped > 0 {
            tracing::warn!(
                plugin = %label,
                request_id = %request_id,
                dropped,
                "plugin log lines dropped: a call may write {} lines / {} bytes ([sandbox] max_log_lines, max_log_bytes)",
                self.output.max_log_lines,
                self.output.max_log_bytes
            );
        }
        let uses = uses.saturating_add(1);
        match key {
            // Only an instance whose call returned normally is trusted with the next.
            Some(key) if result.is_ok() && self.warm.keeps(uses) => drop(self.warm.put(
                key,
                Warm {
                    store,
                    guest: instance,
                    uses,
                },
            )),
            _ => self.retire(store),
        }
        result
    }

    /// Tears down a finished call's store once the caller has its answer: dropping it
    /// resets the instance's memory and tables (several µs a plugin), which the request
    /// need not wait for. The teardown runs in a task, when the worker next has nothing
    /// more urgent (the request waiting for its provider, say). The call's slots are
    /// freed when it returns: at most [`TEARDOWNS_WAITING`] stores wait (the pool has
    /// room for them beside the slots), beyond which a store is torn down here.
    fn retire(&self, store: Store<PluginState>) {
        let waiting = self.teardowns.fetch_add(1, Ordering::Relaxed);
        let retired = Retired {
            store: Some(store),
            wasi: self.wasi.clone(),
            waiting: self.teardowns.clone(),
        };
        if waiting < TEARDOWNS_WAITING
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            drop(rt.spawn(async move { drop(retired) }));
        }
    }

    /// The compiled component of `bytes`: from the cache, or compiled (off the async
    /// workers; in a budgeted child process when isolated, when its lane has a worker:
    /// [`Lanes`]) after the size cap and the structural check. Refusals the bytes
    /// themselves cause are remembered by hash.
    async fn compile_cached(
        &self,
        hash: &str,
        bytes: &[u8],
        origin: Origin<'_>,
    ) -> Result<Component, String> {
        if bytes.len() > self.max_component_bytes {
            return Err(format!(
                "the component is {} bytes; at most {} are accepted ([sandbox] max_component_bytes)",
                bytes.len(),
                self.max_component_bytes
            ));
        }
        if let Some(why) = crate::sync::lock(&self.refused).get(hash).cloned() {
            return Err(why);
        }
        match self.compile_checked(hash, bytes, origin).await {
            Ok(c) => Ok(c),
            Err(f) => {
                let mut refused = crate::sync::lock(&self.refused);
                if f.deterministic && refused.len() < REFUSED_MAX {
                    refused.insert(hash.to_string(), f.message.clone());
                }
                Err(f.message)
            }
        }
    }

    /// Compiles `bytes` in this process, on a blocking thread (off the async workers).
    async fn compile_here(&self, bytes: &[u8]) -> Result<Component, CompileFailure> {
        let (engine, bytes) = (self.engine.clone(), bytes.to_vec());
        tokio::task::spawn_blocking(move || Component::new(&engine, &bytes))
            .await
            .map_err(|e| CompileFailure::of_machine(e.to_string()))?
            .map_err(|e| CompileFailure::of_bytes(format!("{e:#}")))
    }

    async fn compile_checked(
        &self,
        hash: &str,
        bytes: &[u8],
        origin: Origin<'_>,
    ) -> Result<Component, CompileFailure> {
        compile::precheck(bytes).map_err(CompileFailure::of_bytes)?;
        let Some(cache) = &self.cache else {
            // No cache to hand an artifact back through: compile here.
            return self.compile_here(bytes).await;
        };
        // Artifacts are only valid for the same engine build and settings.
        let file = cache.file(hash);
        if file.exists() {
            match cache::load_artifact(&self.engine, &file) {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::warn!(error = %e, file = %file.display(), "stale plugin cache entry; recompiling")
                }
            }
        }
        match &self.compiler {
            Compiler::Isolated(budget) => {
                let _turn = self.lanes.enter(origin, budget.timeout).await?;
                // Whoever held the worker before may have compiled these very bytes
                // (several tenants applying the same plugin after a deploy): load, do not
                // redo. Two owners compiling the same bytes at once is harmless: each
                // child renames a whole artifact into place.
                if file.exists()
                    && let Ok(c) = cache::load_artifact(&self.engine, &file)
                {
                    return Ok(c);
                }
                compile::compile_isolated(budget, bytes, &file).await?;
                cache::load_artifact(&self.engine, &file).map_err(|e| {
                    CompileFailure::of_machine(format!(
                        "the compiled component does not load: {e:#}"
                    ))
                })
            }
            Compiler::InProcess => {
                let component = self.compile_here(bytes).await?;
                match component.serialize() {
                    Ok(art) => {
                        let tmp =
                            file.with_extension(format!("{}.tmp", crate::ids::random_token(12)));
                        if std::fs::write(&tmp, &art)
                            .and_then(|_| std::fs::rename(&tmp, &file))
                            .is_err()
                        {
                            tracing::warn!(file = %file.display(), "could not write plugin cache entry");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "could not serialize compiled plugin"),
                }
                Ok(component)
            }
        }
    }
}

/// Lets the call run for `deadline`: the store yields to the executor at every epoch
/// tick, so a busy plugin cannot hold a runtime thread, and traps once the whole
/// deadline is used. Re-armed before every call, warm instances included.
fn arm_deadline(store: &mut Store<PluginState>, deadline: Duration) {
    let budget = (deadline.as_millis() as u64).max(1);
    let mut used = 0u64;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        used += 1;
        if used >= budget {
            Ok(wasmtime::UpdateDeadline::Interrupt)
        } else {
            Ok(wasmtime::UpdateDeadline::Yield(1))
        }
    });
}
