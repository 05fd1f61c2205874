//! GitOps watch mode (`tollgate serve --watch DIR`): bundle files in a directory are
//! applied as new versions when they change, so a checkout or a mounted config map is
//! the source of truth for policy.
//!
//! The directory is polled every [`POLL`]: `platform.toml` is the platform bundle and
//! `<tenant-id>.toml` that tenant's bundle (the same format as `tollgate bundle apply`;
//! relative plugin paths resolve against the directory). Every file is applied once at
//! start and again whenever its content hash changes, through the same validation as
//! the admin API, with author `watch`. A file that fails to parse or is refused is
//! logged and remembered, so it is not retried until its content changes; the active
//! version keeps serving. Files that disappear are ignored: removing a file does not
//! remove or roll back a bundle.
//!
//! Only the bundle file itself is hashed: after replacing a component it names by
//! `path`, touch the bundle file to have it applied.

use super::{BundleRequest, Scope, apply};
use crate::control::ControlPlane;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How often the directory is scanned.
pub const POLL: Duration = Duration::from_millis(500);

/// The platform bundle's file name.
const PLATFORM_FILE: &str = "platform.toml";

/// Bundle files larger than this are refused unread (a bundle file is a short TOML
/// document; components are separate files).
const MAX_FILE_BYTES: u64 = 4 << 20;

/// The author recorded on versions (and refusals) applied from the directory.
const AUTHOR: &str = "watch";

/// A file's SHA-256, or for an oversized file a fingerprint of its size and mtime.
type Fingerprint = [u8; 32];

/// A bundle file whose content differs from the last one seen under its name.
struct Changed {
    file: String,
    path: PathBuf,
    scope: Scope,
    fingerprint: Fingerprint,
    request: anyhow::Result<BundleRequest>,
}

/// Polls `dir` for bundle files until the task is dropped, applying each new or changed
/// one (platform first). Never returns and never fails: unreadable, unparsable and
/// refused files are logged and skipped, and the active versions keep serving.
pub async fn watch(state: Arc<ControlPlane>, dir: PathBuf) {
    tracing::info!(dir = %dir.display(), "watching for bundle files");
    let mut seen: HashMap<String, Fingerprint> = HashMap::new();
    let mut dir_error: Option<String> = None;
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (scan_dir, known) = (dir.clone(), seen.clone());
        let changes = match tokio::task::spawn_blocking(move || scan(&scan_dir, &known)).await {
            Ok(Ok(changes)) => {
                if dir_error.take().is_some() {
                    tracing::info!(dir = %dir.display(), "watch directory is readable again");
                }
                changes
            }
            Ok(Err(e)) => {
                let why = e.to_string();
                // Once per distinct error, not every poll.
                if dir_error.as_deref() != Some(why.as_str()) {
                    tracing::error!(dir = %dir.display(), error = %why, "cannot read the watch directory");
                    dir_error = Some(why);
                }
                continue;
            }
            Err(e) => {
                tracing::error!(dir = %dir.display(), error = %e, "watch directory scan failed");
                continue;
            }
        };
        for change in changes {
            seen.insert(change.file.clone(), change.fingerprint);
            apply_change(&state, change).await;
        }
    }
}

/// Applies one changed file, logging the outcome.
async fn apply_change(state: &Arc<ControlPlane>, change: Changed) {
    let Changed {
        file,
        path,
        scope,
        request,
        ..
    } = change;
    let scope_name = scope_name(&scope).to_string();
    let mut req = match request {
        Ok(req) => req,
        Err(e) => {
            tracing::error!(file = %path.display(), scope = %scope_name, error = %format!("{e:#}"),
                "bundle file refused; the active version keeps serving");
            return;
        }
    };
    if req.message.is_none() {
        req.message = Some(format!("watch: {file}"));
    }
    // Run in its own task so that even a panic while building the bundle leaves the
    // watcher (and the gateway) running.
    let task_state = state.clone();
    let outcome = tokio::spawn(async move { apply(&task_state, scope, req, AUTHOR).await }).await;
    match outcome {
        Ok(Ok(v)) => {
            tracing::info!(file = %path.display(), scope = %scope_name, version = v.version,
                summary = %v.summary, "bundle file applied");
        }
        Ok(Err(e)) => {
            tracing::error!(file = %path.display(), scope = %scope_name, error = %e.message,
                "bundle file refused; the active version keeps serving");
        }
        Err(e) => {
            tracing::error!(file = %path.display(), scope = %scope_name, error = %e,
                "bundle file apply failed; the active version keeps serving");
        }
    }
}

/// A scope as logs name it.
fn scope_name(scope: &Scope) -> &str {
    match scope {
        Scope::Platform => "platform",
        Scope::Tenant(id) => id,
    }
}

/// Which bundle a file name holds: `platform.toml`, or `<tenant-id>.toml`.
fn scope_of(file: &str) -> Option<Scope> {
    if file == PLATFORM_FILE {
        return Some(Scope::Platform);
    }
    let id = file.strip_suffix(".toml")?;
    crate::config::valid_id(id).then(|| Scope::Tenant(id.to_string()))
}

/// Lists the bundle files of `dir` whose fingerprint differs from `seen`, read and
/// parsed, platform first and then by file name. Errors only when `dir` itself cannot
/// be listed; a file that cannot be read is a change whose request is the error.
fn scan(dir: &Path, seen: &HashMap<String, Fingerprint>) -> std::io::Result<Vec<Changed>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let Ok(file) = entry.file_name().into_string() else {
            continue;
        };
        let Some(scope) = scope_of(&file) else {
            continue;
        };
        let path = entry.path();
        // Follows symlinks (a mounted config map links its files).
        let Ok(meta) = std::fs::metadata(&path) else {
            continue; // gone since the listing, or a dangling link
        };
        if !meta.is_file() {
            continue;
        }
        let (fingerprint, request) = if meta.len() > MAX_FILE_BYTES {
            let mut h = Sha256::new();
            h.update(b"oversized\0");
            h.update(meta.len().to_le_bytes());
            h.update(format!("{:?}", meta.modified().ok()).as_bytes());
            let why = anyhow::anyhow!(
                "{} bytes is over the {MAX_FILE_BYTES}-byte limit for a bundle file",
                meta.len()
            );
            (h.finalize().into(), Err(why))
        } else {
            match std::fs::read(&path) {
                Ok(bytes) => {
                    let fingerprint: Fingerprint = Sha256::digest(&bytes).into();
                    if seen.get(&file) == Some(&fingerprint) {
                        continue; // unchanged: not parsed again
                    }
                    (fingerprint, parse(&bytes, dir))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                // Read again every poll, but reported once until it can be read.
                Err(e) => (
                    UNREADABLE,
                    Err(anyhow::Error::new(e).context("cannot read the file")),
                ),
            }
        };
        if seen.get(&file) == Some(&fingerprint) {
            continue;
        }
        out.push(Changed {
            file,
            path,
            scope,
            fingerprint,
            request,
        });
    }
    out.sort_by(|a, b| {
        (a.scope != Scope::Platform, &a.file).cmp(&(b.scope != Scope::Platform, &b.file))
    });
    Ok(out)
}

/// The fingerprint recorded for a file that could not be read (no content hashes to it
/// in practice), so the failure is logged once until the file becomes readable.
const UNREADABLE: Fingerprint = [0; 32];

/// Bundle file bytes as the admin API's request (plugin paths relative to `dir`).
fn parse(bytes: &[u8], dir: &Path) -> anyhow::Result<BundleRequest> {
    let text = std::str::from_utf8(bytes).map_err(|e| anyhow::anyhow!("not UTF-8: {e}"))?;
    let body = super::file::parse_bundle(text, dir)?;
    Ok(serde_json::from_value(body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_map_to_scopes() {
        assert_eq!(scope_of("platform.toml"), Some(Scope::Platform));
        assert_eq!(scope_of("acme.toml"), Some(Scope::Tenant("acme".into())));
        assert_eq!(
            scope_of("a-b_c.1.toml"),
            Some(Scope::Tenant("a-b_c.1".into()))
        );
        for ignored in [
            "acme.json",
            "acme.toml~",
            ".toml",
            "a b.toml",
            "#acme.toml#",
            "acme",
        ] {
            assert_eq!(scope_of(ignored), None, "{ignored}");
        }
    }

    #[test]
    fn scan_reports_changes_once_platform_first() {
        let dir = std::env::temp_dir().join(format!(
            "tollgate-watch-test-{}-{}",
            std::process::id(),
            crate::ids::now_ms()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let router = "[[plugins]]\nname = \"model-router\"\n";
        std::fs::write(dir.join("zeta.toml"), router).expect("write");
        std::fs::write(dir.join("platform.toml"), "plugins = []\n").expect("write");
        std::fs::write(dir.join("alpha.toml"), "[[plugins]]\nbogus = 1\n").expect("write");
        std::fs::write(dir.join("notes.txt"), "ignored").expect("write");
        let mut seen = HashMap::new();
        let first = scan(&dir, &seen).expect("scan");
        let files: Vec<&str> = first.iter().map(|c| c.file.as_str()).collect();
        assert_eq!(files, ["platform.toml", "alpha.toml", "zeta.toml"]);
        assert!(first[0].request.is_ok());
        assert!(first[1].request.is_err(), "unknown field is a parse error");
        let zeta = first[2].request.as_ref().expect("zeta parses");
        assert_eq!(zeta.plugins[0].name.as_deref(), Some("model-router"));
        assert_eq!(zeta.message, None);
        for c in &first {
            seen.insert(c.file.clone(), c.fingerprint);
        }
        assert!(scan(&dir, &seen).expect("scan").is_empty());
        std::fs::write(dir.join("alpha.toml"), router).expect("write");
        std::fs::remove_file(dir.join("zeta.toml")).expect("remove");
        let second = scan(&dir, &seen).expect("scan");
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].scope, Scope::Tenant("alpha".into()));
        assert!(second[0].request.is_ok());
        let _ = std::fs::remove_dir_all(&dir);
        assert!(scan(&dir, &seen).is_err());
    }
}
