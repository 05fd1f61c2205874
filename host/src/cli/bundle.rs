//! `tollgate bundle …`: which bundle a command addresses, and reading a bundle file
//! (the format is [`crate::bundles::file`]'s).

use anyhow::Context as _;
use serde_json::Value;
use std::path::Path;

/// Whose policy bundle a command addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BundleScope {
    /// One tenant's bundle (`/admin/v1/tenants/{id}/bundle…`).
    Tenant(String),
    /// The platform bundle, applied to every tenant first (`/admin/v1/bundle…`).
    Platform,
}

/// Reads the bundle file at `path` into the JSON body of `PUT …/bundle` (without
/// `message`). Relative plugin paths are resolved against the file's directory.
pub fn read_bundle_file(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read bundle file {}", path.display()))?;
    let base_dir = path.parent().unwrap_or(Path::new(""));
    crate::bundles::file::parse_bundle(&text, base_dir)
        .with_context(|| format!("bundle file {}", path.display()))
}
