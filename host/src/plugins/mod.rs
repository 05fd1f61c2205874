//! The sandboxed plugin runtime: WIT bindings, the engine and its limits, the compiled
//! plugin cache, and the per-tenant policy chain.
//!
//! Ownership follows wasmtime's embedding model: one [`Engine`](wasmtime::Engine) and
//! one [`Linker`](wasmtime::component::Linker) for the process (in [`PluginRuntime`]),
//! one pre-linked [`LoadedPlugin`] per distinct wasm file, and one short-lived
//! `Store` + instance per plugin call.

mod bindings;
mod chain;
mod compile;
mod isolation;
mod output;
mod runtime;
mod sandbox;

pub use bindings::{
    Decision, Endpoint, Hook, PluginInfo, RequestContext, RoutePlan, RouteTarget, Strategy, wit,
};
pub use chain::{BudgetOutcome, ChainOutcome, ConfiguredPlugin, PolicyChain, RouteOutcome};
pub use compile::{
    CompileBudget, CompileFailure, Compiler, compile_to_artifact, precheck, run_worker,
    set_compile_worker,
};
pub use isolation::TenantSandbox;
pub use output::{OutputLimits, Trimmed};
pub use runtime::{CallEnv, LoadedPlugin, PluginRuntime};
pub use sandbox::{CallFailure, SandboxLimits};

/// Failures at the plugin boundary.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("plugin '{plugin}': cannot read {path}: {source}")]
    Read {
        plugin: String,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("plugin '{plugin}': not a valid Tollgate plugin component: {message}")]
    Compile { plugin: String, message: String },
    #[error("plugin '{plugin}': {failure}")]
    Call {
        plugin: String,
        failure: CallFailure,
    },
    #[error("plugin '{plugin}' rejected its config: {message}")]
    InvalidConfig { plugin: String, message: String },
}
