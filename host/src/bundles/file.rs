//! Bundle files: a TOML policy bundle (as `tollgate bundle apply` and the watch mode
//! read it) turned into the admin API's JSON body.
//!
//! A bundle file looks like a tenant's policy section of the config:
//!
//! ```toml
//! default_provider = "anthropic"
//! models = ["fast", "smart"]
//!
//! [[plugins]]
//! name = "model-router"            # a first-party plugin
//! config = { aliases = { fast = "claude-haiku-4-5" } }
//!
//! [[plugins]]
//! path = "plugins/pii.wasm"        # a component, relative to this file's directory
//! label = "pii"                    # default: the file stem
//! fail_open = true
//! ```
//!
//! A platform bundle may also pin rules on single tenants, which their own bundles
//! cannot change:
//!
//! ```toml
//! [tenants.acme]
//! allowed_providers = ["anthropic"]
//! allowed_models = ["claude-*"]
//! [[tenants.acme.plugins]]
//! name = "budget-limit"
//! config = { limits = [{ name = "cap", scope = "tenant", metric = "cost", period = "month", limit = 500.0 }] }
//! ```
//!
//! Components named by `path` are read and sent base64-encoded in `wasm`, so the
//! gateway never reads the operator's filesystem.

use crate::plugins::StreamMode;
use anyhow::{Context as _, bail};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The bundle file's top level.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleFile {
    #[serde(default)]
    default_provider: Option<String>,
    #[serde(default)]
    models: Option<Vec<String>>,
    #[serde(default)]
    plugins: Vec<PluginFile>,
    /// Platform bundles: rules pinned per tenant.
    #[serde(default)]
    tenants: Option<std::collections::BTreeMap<String, PinnedFile>>,
}

/// A `[tenants.<id>]` section of a platform bundle file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PinnedFile {
    #[serde(default)]
    plugins: Vec<PluginFile>,
    #[serde(default)]
    allowed_providers: Option<Vec<String>>,
    #[serde(default)]
    allowed_models: Option<Vec<String>>,
}

/// One `[[plugins]]` entry of the bundle file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginFile {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    path: Option<PathBuf>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    config: Option<toml::Table>,
    #[serde(default)]
    fail_open: bool,
    #[serde(default)]
    reuse_instance: bool,
    #[serde(default)]
    response_stream: StreamMode,
}

/// The request body of `PUT …/bundle`.
#[derive(Serialize)]
struct BundleBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    default_provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    models: Option<Vec<String>>,
    plugins: Vec<PluginBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenants: Option<std::collections::BTreeMap<String, PinnedBody>>,
}

#[derive(Serialize)]
struct PinnedBody {
    plugins: Vec<PluginBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed_providers: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed_models: Option<Vec<String>>,
}

#[derive(Serialize)]
struct PluginBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    wasm: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    config: Option<Value>,
    fail_open: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    reuse_instance: bool,
    #[serde(skip_serializing_if = "StreamMode::is_default")]
    response_stream: StreamMode,
}

/// Parses bundle file text into the JSON body of `PUT …/bundle` (without `message`).
/// Relative plugin paths are resolved against `base_dir`; each component is read and
/// base64-encoded. Unknown fields, entries with neither or both of `name` and `path`,
/// and configs that are not tables are errors.
pub fn parse_bundle(text: &str, base_dir: &Path) -> anyhow::Result<Value> {
    let file: BundleFile = toml::from_str(text)?;
    let plugins = plugin_bodies(file.plugins, base_dir, "plugins")?;
    let tenants = match file.tenants {
        None => None,
        Some(t) => Some(
            t.into_iter()
                .map(|(id, p)| {
                    let plugins =
                        plugin_bodies(p.plugins, base_dir, &format!("tenants.{id}.plugins"))?;
                    let body = PinnedBody {
                        plugins,
                        allowed_providers: p.allowed_providers,
                        allowed_models: p.allowed_models,
                    };
                    Ok((id, body))
                })
                .collect::<anyhow::Result<_>>()?,
        ),
    };
    let body = BundleBody {
        default_provider: file.default_provider,
        models: file.models,
        plugins,
        tenants,
    };
    Ok(serde_json::to_value(body)?)
}

fn plugin_bodies(
    plugins: Vec<PluginFile>,
    base_dir: &Path,
    field: &str,
) -> anyhow::Result<Vec<PluginBody>> {
    plugins
        .into_iter()
        .enumerate()
        .map(|(i, p)| plugin_body(p, base_dir).with_context(|| format!("{field}[{i}]")))
        .collect()
}

fn plugin_body(p: PluginFile, base_dir: &Path) -> anyhow::Result<PluginBody> {
    let config = p.config.map(toml_to_json).transpose()?;
    let (name, wasm, label) = match (p.name, p.path) {
        (Some(name), None) => (Some(name), None, p.label),
        (None, Some(rel)) => {
            let full = base_dir.join(&rel);
            let bytes = std::fs::read(&full)
                .with_context(|| format!("cannot read plugin {}", full.display()))?;
            if !bytes.starts_with(b"\0asm") {
                bail!("{} is not a WebAssembly component", full.display());
            }
            let label = p
                .label
                .or_else(|| rel.file_stem().map(|s| s.to_string_lossy().into_owned()));
            (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
                label,
            )
        }
        (Some(_), Some(_)) => {
            bail!("set either `name` (a first-party plugin) or `path` (a .wasm file), not both")
        }
        (None, None) => {
            bail!("needs `name` (a first-party plugin) or `path` (a .wasm file)")
        }
    };
    Ok(PluginBody {
        name,
        wasm,
        label,
        config,
        fail_open: p.fail_open,
        reuse_instance: p.reuse_instance,
        response_stream: p.response_stream,
    })
}

/// TOML → JSON, with datetimes as their TOML text; non-finite floats have no JSON form.
fn toml_to_json(table: toml::Table) -> anyhow::Result<Value> {
    fn conv(v: toml::Value, at: &str) -> anyhow::Result<Value> {
        Ok(match v {
            toml::Value::String(s) => Value::String(s),
            toml::Value::Integer(i) => Value::from(i),
            toml::Value::Float(f) => match serde_json::Number::from_f64(f) {
                Some(n) => Value::Number(n),
                None => bail!("{at}: {f} has no JSON form"),
            },
            toml::Value::Boolean(b) => Value::Bool(b),
            toml::Value::Datetime(d) => Value::String(d.to_string()),
            toml::Value::Array(a) => Value::Array(
                a.into_iter()
                    .enumerate()
                    .map(|(i, x)| conv(x, &format!("{at}[{i}]")))
                    .collect::<anyhow::Result<_>>()?,
            ),
            toml::Value::Table(t) => Value::Object(
                t.into_iter()
                    .map(|(k, x)| {
                        let v = conv(x, &format!("{at}.{k}"))?;
                        Ok((k, v))
                    })
                    .collect::<anyhow::Result<_>>()?,
            ),
        })
    }
    conv(toml::Value::Table(table), "config")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            let dir = std::env::temp_dir()
                .join(format!("tollgate-bundle-{}", crate::ids::random_token(8)));
            std::fs::create_dir_all(&dir).expect("temp dir");
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const WASM: &[u8] = b"\0asm\x0d\x00\x01\x00";

    fn err_text(e: &anyhow::Error) -> String {
        format!("{e:#}")
    }

    #[test]
    fn name_entry_with_config_and_top_level_fields() {
        let text = r#"
default_provider = "anthropic"
models = ["fast", "smart"]

[[plugins]]
name = "model-router"
fail_open = true
[plugins.config]
default = "fast"
routes = [{ match = "claude-*", weight = 1.5 }]
when = 2026-01-02T03:04:05Z
"#;
        let body = parse_bundle(text, Path::new("/nonexistent")).expect("parse");
        assert_eq!(
            body,
            json!({
                "default_provider": "anthropic",
                "models": ["fast", "smart"],
                "plugins": [{
                    "name": "model-router",
                    "config": {
                        "default": "fast",
                        "routes": [{"match": "claude-*", "weight": 1.5}],
                        "when": "2026-01-02T03:04:05Z",
                    },
                    "fail_open": true,
                }],
            })
        );
    }

    #[test]
    fn absent_fields_are_omitted() {
        let body = parse_bundle("", Path::new(".")).expect("parse");
        assert_eq!(body, json!({ "plugins": [] }));
        let body = parse_bundle("[[plugins]]\nname = \"x\"\nlabel = \"l\"\n", Path::new("."))
            .expect("parse");
        assert_eq!(
            body,
            json!({ "plugins": [{ "name": "x", "label": "l", "fail_open": false }] })
        );
    }

    #[test]
    fn path_entry_is_resolved_against_the_bundle_dir_and_base64_encoded() {
        let tmp = TempDir::new();
        std::fs::create_dir_all(tmp.0.join("plugins")).expect("mkdir");
        std::fs::write(tmp.0.join("plugins/pii-guard.wasm"), WASM).expect("write wasm");
        std::fs::write(tmp.0.join("other.wasm"), WASM).expect("write wasm");
        let file = tmp.0.join("bundle.toml");
        std::fs::write(
            &file,
            "[[plugins]]\npath = \"plugins/pii-guard.wasm\"\nconfig = { deny = [\"ssn\"] }\n\
             [[plugins]]\npath = \"other.wasm\"\nlabel = \"custom\"\nfail_open = true\n",
        )
        .expect("write bundle");
        let text = std::fs::read_to_string(&file).expect("read");
        let body = parse_bundle(&text, &tmp.0).expect("parse");
        // base64 of "\0asm\r\0\x01\0".
        let b64 = "AGFzbQ0AAQA=";
        assert_eq!(
            body,
            json!({
                "plugins": [
                    { "wasm": b64, "label": "pii-guard", "config": { "deny": ["ssn"] }, "fail_open": false },
                    { "wasm": b64, "label": "custom", "fail_open": true },
                ],
            })
        );
    }

    #[test]
    fn unknown_fields_are_named() {
        let e = parse_bundle("default_provider = \"a\"\nproviders = []\n", Path::new("."))
            .expect_err("unknown top-level field");
        assert!(err_text(&e).contains("unknown field `providers`"), "{e:#}");
        let e = parse_bundle(
            "[[plugins]]\nname = \"x\"\nfailopen = true\n",
            Path::new("."),
        )
        .expect_err("unknown plugin field");
        assert!(err_text(&e).contains("unknown field `failopen`"), "{e:#}");
    }

    #[test]
    fn entries_need_exactly_one_of_name_and_path() {
        let e = parse_bundle(
            "[[plugins]]\nname = \"a\"\n[[plugins]]\nfail_open = true\n",
            Path::new("."),
        )
        .expect_err("missing name/path");
        let msg = err_text(&e);
        assert!(
            msg.contains("plugins[1]") && msg.contains("needs `name`"),
            "{msg}"
        );
        let e = parse_bundle(
            "[[plugins]]\nname = \"a\"\npath = \"a.wasm\"\n",
            Path::new("."),
        )
        .expect_err("both name and path");
        assert!(err_text(&e).contains("not both"), "{e:#}");
    }

    #[test]
    fn bad_plugin_files_and_configs_are_refused() {
        let tmp = TempDir::new();
        let e = parse_bundle("[[plugins]]\npath = \"missing.wasm\"\n", &tmp.0)
            .expect_err("missing file");
        assert!(err_text(&e).contains("missing.wasm"), "{e:#}");
        std::fs::write(tmp.0.join("text.wasm"), "hello").expect("write");
        let e = parse_bundle("[[plugins]]\npath = \"text.wasm\"\n", &tmp.0).expect_err("not wasm");
        assert!(err_text(&e).contains("not a WebAssembly"), "{e:#}");
        let e = parse_bundle("[[plugins]]\nname = \"x\"\nconfig = 3\n", &tmp.0)
            .expect_err("config not a table");
        assert!(err_text(&e).contains("config"), "{e:#}");
        let e = parse_bundle("[[plugins]]\nname = \"x\"\nconfig = { x = nan }\n", &tmp.0)
            .expect_err("nan");
        assert!(err_text(&e).contains("config.x"), "{e:#}");
    }
}
