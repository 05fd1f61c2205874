//! What a plugin instance may touch and how much of the machine it may use.
//!
//! Every call gets a fresh store holding a [`PluginState`]: a WASI context that denies
//! everything (no preopened dirs, env, args, sockets; deterministic randomness; stdio
//! to nowhere), a memory limiter, and the request data the `host` imports serve.

use super::bindings::{LogLevel, tollgate, wit};
use super::runtime::CallEnv;
use super::usage::UsageView;
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Per-call resource limits.
#[derive(Clone, Copy, Debug)]
pub struct SandboxLimits {
    /// CPU time one call may take before it is interrupted.
    pub deadline: Duration,
    /// Linear memory one instance may grow to, in bytes.
    pub memory_bytes: usize,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            deadline: Duration::from_millis(5),
            memory_bytes: 16 << 20,
        }
    }
}

/// Why a plugin call did not produce a decision.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallFailure {
    /// The call ran past its CPU deadline (the epoch interrupt stopped it).
    #[error("exceeded its CPU deadline of {0:?}")]
    Deadline(Duration),
    /// The plugin tried to grow its memory past the limit, in bytes.
    #[error("exceeded its memory limit of {} MiB", .0 >> 20)]
    Memory(usize),
    /// The guest trapped (panic, unreachable, bad access); the trap's text.
    #[error("trapped: {0}")]
    Trap(String),
    /// Instantiation failed (for example the pool had no room for its memory).
    #[error("could not be instantiated: {0}")]
    Instantiate(String),
    /// Every one of the tenant's instance slots stayed in use for the whole queue time.
    #[error("is at its tenant's limit of {instances} concurrent instance(s) (waited {waited:?})")]
    Busy {
        /// The tenant's instance limit.
        instances: u32,
        /// How long the call queued.
        waited: Duration,
    },
    /// Every instance slot of the gateway's pool stayed in use for the whole queue time.
    #[error(
        "found all {instances} of the gateway's plugin instance slots in use (waited {waited:?})"
    )]
    PoolBusy {
        /// The pool's size.
        instances: u32,
        /// How long the call queued.
        waited: Duration,
    },
    /// The call returned something the host cannot use safely (see `OutputLimits`).
    #[error("{0}")]
    BadOutput(String),
}

/// Marker error raised from the limiter so the trap is classified as a memory overrun.
#[derive(Debug)]
pub(super) struct MemoryLimitHit;

impl std::fmt::Display for MemoryLimitHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("memory limit exceeded")
    }
}

impl std::error::Error for MemoryLimitHit {}

/// Refuses growth past the configured cap by trapping, so the failure is precise.
pub(super) struct Limiter {
    memory_bytes: usize,
    /// Set when growth was refused; survives Rust guests turning the failure into an abort.
    pub(super) hit: Arc<AtomicBool>,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.hit.store(true, Ordering::Relaxed);
            return Err(wasmtime::Error::new(MemoryLimitHit));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// The data of one plugin call's store.
pub(super) struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(super) limiter: Limiter,
    plugin: Arc<str>,
    request_id: Arc<str>,
    config: Arc<str>,
    /// What the plugin kept when its config was checked, served by `prepared`.
    prepared: Bytes,
    /// During `validate-config`: what the plugin hands `keep-prepared`.
    pub(super) keeping: Option<Kept>,
    body: Bytes,
    usage: Option<UsageView>,
    /// Log lines and bytes this call may still write, and what it tried beyond them.
    pub(super) log_quota: LogQuota,
}

/// Largest prepared config the host keeps for a plugin (per tenant and config).
pub const MAX_PREPARED_BYTES: usize = 1 << 20;

/// What a plugin handed `keep-prepared` while its config was checked.
#[derive(Debug, Default)]
pub(super) enum Kept {
    /// Nothing (yet).
    #[default]
    Nothing,
    /// The prepared form.
    Data(Bytes),
    /// More than [`MAX_PREPARED_BYTES`]: dropped, and the calls parse the JSON.
    TooLarge(usize),
}

/// What one call may write to the gateway's log.
#[derive(Debug, Default)]
pub(super) struct LogQuota {
    lines: u32,
    bytes: usize,
    /// Lines refused because the quota was spent.
    pub(super) dropped: u32,
}

/// Host resources (WASI streams and the like) one instance may hold at once.
const MAX_RESOURCES: usize = 4_096;

impl PluginState {
    /// Readies a warm instance's state for its next call: that request's data, a full
    /// log quota and the tenant's current memory cap. The WASI context and the resource
    /// table stay with the instance that holds handles into them.
    pub(super) fn reset(
        &mut self,
        limits: &SandboxLimits,
        output: &super::OutputLimits,
        env: CallEnv,
        request_id: Arc<str>,
    ) {
        self.log_quota = LogQuota {
            lines: output.max_log_lines,
            bytes: output.max_log_bytes,
            dropped: 0,
        };
        self.limiter.memory_bytes = limits.memory_bytes;
        self.plugin = env.label;
        self.request_id = request_id;
        self.config = env.config;
        self.prepared = env.prepared;
        self.keeping = None;
        self.body = env.body;
        self.usage = env.usage;
    }

    /// A call's state; `wasi` comes from [`WasiPool::take`].
    pub(super) fn new(
        limits: &SandboxLimits,
        output: &super::OutputLimits,
        wasi: WasiCtx,
        env: CallEnv,
        request_id: Arc<str>,
    ) -> Self {
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        let mut state = Self {
            log_quota: LogQuota::default(),
            wasi,
            table,
            limiter: Limiter {
                memory_bytes: limits.memory_bytes,
                hit: Arc::new(AtomicBool::new(false)),
            },
            plugin: env.label.clone(),
            request_id: request_id.clone(),
            config: env.config.clone(),
            prepared: Bytes::new(),
            keeping: None,
            body: Bytes::new(),
            usage: None,
        };
        state.reset(limits, output, env, request_id);
        state
    }
}

/// Deny-all WASI contexts kept for reuse: building one boxes its streams, clocks and
/// generators, a measurable share of a plugin call. A context holds no per-call state a
/// plugin could observe (no files, env, args or sockets; stdio closed; constant
/// "randomness" and clocks that read the process's time), and each call still gets a
/// fresh resource table, so reuse leaks nothing between calls or tenants.
#[derive(Default)]
pub(super) struct WasiPool(std::sync::Mutex<Vec<WasiCtx>>);

/// Most idle contexts kept.
const WASI_POOL_MAX: usize = 256;

impl WasiPool {
    /// A context from the pool, or a new one.
    pub(super) fn take(&self) -> WasiCtx {
        let reused = crate::sync::lock(&self.0).pop();
        reused.unwrap_or_else(deny_all_wasi)
    }

    /// Returns the context of a finished call.
    pub(super) fn put(&self, state: PluginState) {
        let mut v = crate::sync::lock(&self.0);
        if v.len() < WASI_POOL_MAX {
            v.push(state.wasi);
        }
    }
}

/// A WASI context for a guest std that expects WASI to exist, granting nothing, with
/// clocks of millisecond resolution (a plugin has no use for finer timing, and finer
/// timing is what side channels are measured with).
fn deny_all_wasi() -> WasiCtx {
    // "Random" bytes are a constant: a one-byte cycle has no position to carry from one
    // call (or tenant) to the next through the pooled context.
    let constant = || wasmtime_wasi::Deterministic::new(vec![0x5a]);
    let mut b = WasiCtx::builder();
    b.allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .secure_random(constant())
        .insecure_random(constant())
        .insecure_random_seed(0)
        .monotonic_clock(CoarseMonotonic)
        .wall_clock(CoarseWall);
    b.build()
}

/// Resolution of the clocks plugins see.
const CLOCK_RESOLUTION: Duration = Duration::from_millis(1);

/// The process's monotonic clock, in whole milliseconds since the gateway started.
struct CoarseMonotonic;

impl wasmtime_wasi::HostMonotonicClock for CoarseMonotonic {
    fn resolution(&self) -> u64 {
        CLOCK_RESOLUTION.as_nanos() as u64
    }

    fn now(&self) -> u64 {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let ns = START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_nanos();
        let res = CLOCK_RESOLUTION.as_nanos();
        u64::try_from(ns / res * res).unwrap_or(u64::MAX)
    }
}

/// Wall-clock time in whole milliseconds.
struct CoarseWall;

impl wasmtime_wasi::HostWallClock for CoarseWall {
    fn resolution(&self) -> Duration {
        CLOCK_RESOLUTION
    }

    fn now(&self) -> Duration {
        let ms = crate::ids::now_ms().max(0) as u64;
        Duration::from_millis(ms)
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl tollgate::plugin::types::Host for PluginState {}

impl tollgate::plugin::host::Host for PluginState {
    fn log(&mut self, level: LogLevel, message: String) {
        let (plugin, request_id) = (&*self.plugin, &*self.request_id);
        // Cap what a plugin can push into the gateway's log per call.
        let q = &mut self.log_quota;
        if q.lines == 0 || q.bytes == 0 {
            q.dropped = q.dropped.saturating_add(1);
            return;
        }
        let message = truncate(&message, q.bytes);
        q.lines -= 1;
        q.bytes -= message.len().max(1).min(q.bytes);
        match level {
            LogLevel::Trace => tracing::trace!(target: "plugin", plugin, request_id, "{message}"),
            LogLevel::Debug => tracing::debug!(target: "plugin", plugin, request_id, "{message}"),
            LogLevel::Info => tracing::info!(target: "plugin", plugin, request_id, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "plugin", plugin, request_id, "{message}"),
            LogLevel::Error => tracing::error!(target: "plugin", plugin, request_id, "{message}"),
        }
    }

    fn config(&mut self) -> String {
        self.config.to_string()
    }

    fn keep_prepared(&mut self, data: Vec<u8>) {
        // Outside a config check there is nothing to attach it to.
        let Some(kept) = &mut self.keeping else {
            return;
        };
        *kept = if data.len() > MAX_PREPARED_BYTES {
            Kept::TooLarge(data.len())
        } else {
            Kept::Data(Bytes::from(data))
        };
    }

    fn prepared(&mut self) -> Vec<u8> {
        self.prepared.to_vec()
    }

    fn now_ms(&mut self) -> u64 {
        let now = match &self.usage {
            Some(view) => view.now_ms(),
            None => crate::ids::now_ms(),
        };
        now.max(0) as u64
    }

    fn request_body(&mut self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    async fn usage(
        &mut self,
        scope: wit::Scope,
        value: Option<String>,
        period: wit::Period,
        window: wit::Window,
    ) -> wit::UsageReport {
        match &self.usage {
            Some(view) => view.report(scope, value, period, window).await,
            None => UsageView::none(),
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Turns a wasmtime error from a call into the reason shown to admins and callers.
pub(super) fn classify(
    err: &wasmtime::Error,
    limits: &SandboxLimits,
    memory_hit: bool,
) -> CallFailure {
    if memory_hit || err.downcast_ref::<MemoryLimitHit>().is_some() {
        return CallFailure::Memory(limits.memory_bytes);
    }
    if let Some(wasmtime::Trap::Interrupt) = err.downcast_ref::<wasmtime::Trap>() {
        return CallFailure::Deadline(limits.deadline);
    }
    let msg = match err.downcast_ref::<wasmtime::Trap>() {
        Some(t) => t.to_string(),
        None => format!("{err:#}"),
    };
    CallFailure::Trap(truncate(&msg, 512).to_string())
}
