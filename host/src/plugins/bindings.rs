//! Host-side bindings generated from `wit/` (the one source of truth for the contract).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
});

pub use exports::tollgate::plugin::guest::{Decision, PluginInfo, RequestContext};
pub use tollgate::plugin::types::{Endpoint, Hook, LogLevel};
