//! Host access behind a trait, so plugin code runs natively under [`crate::testing`].

use crate::{LogLevel, Period, Scope, UsageReport, Window};

/// What a plugin may ask of the host during one call.
pub(crate) trait HostApi {
    /// Writes a log line tagged with the plugin and request.
    fn log(&self, level: LogLevel, message: &str);
    /// The tenant's config for this plugin, as JSON text.
    fn config(&self) -> String;
    /// Wall-clock time in milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// The full request body (JSON text).
    fn request_body(&self) -> String;
    /// Hands the host the prepared form of the config being checked.
    fn keep_prepared(&self, data: &[u8]);
    /// What [`HostApi::keep_prepared`] was given when the current config was checked.
    fn prepared(&self) -> Vec<u8>;
    /// Usage of `scope` in the current `period` window: the request's own value of the
    /// scope when `value` is `None`, else that value (within the request's tenant).
    fn usage(
        &self,
        scope: &Scope,
        value: Option<&str>,
        period: Period,
        window: Window,
    ) -> UsageReport;
}

/// The real host, reached through the component's `tollgate:plugin/host` imports.
///
/// Only used from the exported guest functions: on native targets the imports are
/// stubs that panic, and [`crate::testing`] supplies its own [`HostApi`].
pub(crate) struct WasmHost;

impl HostApi for WasmHost {
    fn log(&self, level: LogLevel, message: &str) {
        crate::bindings::tollgate::plugin::host::log(level, message);
    }

    fn config(&self) -> String {
        crate::bindings::tollgate::plugin::host::config()
    }

    fn now_ms(&self) -> u64 {
        crate::bindings::tollgate::plugin::host::now_ms()
    }

    fn request_body(&self) -> String {
        crate::bindings::tollgate::plugin::host::request_body()
    }

    fn keep_prepared(&self, data: &[u8]) {
        crate::bindings::tollgate::plugin::host::keep_prepared(data);
    }

    fn prepared(&self) -> Vec<u8> {
        crate::bindings::tollgate::plugin::host::prepared()
    }

    fn usage(
        &self,
        scope: &Scope,
        value: Option<&str>,
        period: Period,
        window: Window,
    ) -> UsageReport {
        crate::bindings::tollgate::plugin::host::usage(scope, value, period, window)
    }
}
