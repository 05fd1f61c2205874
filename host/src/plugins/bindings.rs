//! Host-side bindings generated from `wit/` (the one source of truth for the contract).

// The generated items are documented in the WIT they come from.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    // Exports run on a fiber so a plugin can be paused at its epoch deadline and so
    // WASI's stdio never blocks a runtime thread. Host imports stay synchronous, but
    // `usage`, which a fleet replica answers from Redis.
    exports: { default: async },
    imports: { "tollgate:plugin/host.usage": async },
});

pub use exports::tollgate::plugin::guest::{Decision, PluginInfo, RequestContext, RoutePlan};
pub use tollgate::plugin::types::{Endpoint, Hook, LogLevel, RouteTarget, Strategy};

/// The contract's records and enums, for code that converts to and from them.
pub mod wit {
    pub use super::tollgate::plugin::types::*;
}
