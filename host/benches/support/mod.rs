//! What the plugin benches share.

use std::path::PathBuf;

/// A first-party plugin's component as `make plugins` builds it.
pub fn plugin_path(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target
        .join("wasm32-wasip2/release")
        .join(format!("tollgate_{name}.wasm"))
}
