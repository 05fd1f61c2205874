//! The sandboxed plugin runtime: WIT bindings, the engine and its limits, the compiled
//! plugin cache, and the per-tenant policy chain.
//!
//! Ownership follows wasmtime's embedding model: one [`Engine`](wasmtime::Engine) and
//! one [`Linker`](wasmtime::component::Linker) for the process (in [`PluginRuntime`]),
//! one pre-linked [`LoadedPlugin`] per distinct wasm file, and one short-lived
//! `Store` + instance per plugin call (or, for entries that opt in, a warm instance
//! kept for the same tenant's next call: `warm`).

mod abi;
mod bindings;
mod cache;
mod chain;
mod compile;
mod guardrail;
mod isolation;
mod lanes;
mod output;
mod runtime;
mod sandbox;
mod ticker;
mod usage;
mod warm;

pub use bindings::{
    Decision, Endpoint, Hook, PluginInfo, RequestContext, RoutePlan, RouteTarget, Strategy, wit,
};
pub use chain::{
    BudgetOutcome, ChainOutcome, ConfiguredPlugin, Inspection, MAX_PREPARED_PER_CHAIN, PolicyChain,
    RouteOutcome, budget_prepared,
};
pub use compile::{
    CompileBudget, CompileFailure, Compiler, compile_to_artifact, precheck, run_worker,
    set_compile_worker,
};
pub use guardrail::{GuardError, Guarded, StreamMode, Subject};
pub use isolation::TenantSandbox;
pub use output::{OutputLimits, Trimmed};
pub use runtime::{CallEnv, LoadedPlugin, PluginRuntime};
pub use sandbox::{CallFailure, SandboxLimits};
pub use usage::{FleetReads, UsageView, ledger_limits};

/// Where first-party plugins are looked for when the config names no `plugin_dir`:
/// `$TOLLGATE_PLUGIN_DIR`, then the wasm target dir next to this binary
/// (`target/wasm32-wasip2/release` in a checkout), then `./plugins`.
pub fn default_plugin_dir() -> std::path::PathBuf {
    if let Ok(d) = std::env::var("TOLLGATE_PLUGIN_DIR") {
        return std::path::PathBuf::from(d);
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(target) = exe.parent().and_then(std::path::Path::parent)
    {
        let dir = target.join("wasm32-wasip2").join("release");
        if dir.is_dir() {
            return dir;
        }
    }
    std::path::PathBuf::from("plugins")
}

/// Path of a first-party plugin's wasm file.
pub fn first_party_path(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    dir.join(format!("tollgate_{}.wasm", name.replace('-', "_")))
}

/// Failures at the plugin boundary.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The wasm file could not be read.
    #[error("plugin '{plugin}': cannot read {path}: {source}")]
    Read {
        /// The plugin's label.
        plugin: String,
        /// The file tried.
        path: std::path::PathBuf,
        /// Why reading failed.
        source: std::io::Error,
    },
    /// The bytes are not a component the host can load (refused by the precheck or
    /// by the compiler).
    #[error("plugin '{plugin}': not a valid Tollgate plugin component: {message}")]
    Compile {
        /// The plugin's label.
        plugin: String,
        /// What was wrong with it.
        message: String,
    },
    /// A call into the plugin failed (see [`CallFailure`]).
    #[error("plugin '{plugin}': {failure}")]
    Call {
        /// The plugin's label.
        plugin: String,
        /// How the call failed.
        failure: CallFailure,
    },
    /// The plugin's `validate-config` refused the config it was given.
    #[error("plugin '{plugin}' rejected its config: {message}")]
    InvalidConfig {
        /// The plugin's label.
        plugin: String,
        /// The plugin's own message (bounded), naming the offending field.
        message: String,
    },
}
