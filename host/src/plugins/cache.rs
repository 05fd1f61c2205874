//! The compiled-plugin cache: a private folder of wasmtime artifacts, each named by the
//! component's content hash and a tag of the engine that compiled it.
//!
//! An artifact is only valid for the engine build and settings that wrote it, so every
//! wasmtime upgrade or engine setting change strands the folder's artifacts under a tag
//! no engine will ask for again. They are removed when the runtime opens the folder, with
//! partial writes no compile is still finishing.
//!
//! The folder belongs to one build at a time. Two builds sharing it (a rollback, or two
//! versions on one host) each remove the other's artifacts when they start: code already
//! loaded is unaffected (wasmtime keeps the file open), but each recompiles what it loads
//! next, and a load that loses the race to a removal fails with an error worth retrying.

use std::hash::{Hash as _, Hasher as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Partial writes older than this belong to no compile still running (compiling takes
/// seconds; the isolated worker is killed at its budget's timeout): a crash left them.
const ABANDONED_AFTER: Duration = Duration::from_secs(3600);

/// The compiled-plugin folder of one engine.
pub(super) struct ArtifactCache {
    dir: PathBuf,
    /// `-<engine tag>.cwasm`: the ending of this engine's artifacts.
    ending: String,
}

/// What opening the folder removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Pruned {
    /// Artifacts of other engines, abandoned partial writes and staged inputs.
    pub files: usize,
    /// Their size.
    pub bytes: u64,
}

impl ArtifactCache {
    /// Opens `dir` for `engine`: creates it private if needed, refuses one others may
    /// write to, and removes what this engine cannot load (logged, never fatal).
    pub(super) fn open(dir: PathBuf, engine: &Engine) -> anyhow::Result<Self> {
        private_dir(&dir)?;
        let cache = Self {
            ending: format!("-{}.cwasm", engine_tag(engine)),
            dir,
        };
        let pruned = cache.prune(SystemTime::now());
        if pruned.files > 0 {
            tracing::info!(
                dir = %cache.dir.display(),
                files = pruned.files,
                bytes = pruned.bytes,
                "removed compiled plugins no engine of this build loads, and abandoned partial writes"
            );
        }
        Ok(cache)
    }

    /// Where the artifact of the component with SHA-256 `hash` lives.
    pub(super) fn file(&self, hash: &str) -> PathBuf {
        self.dir.join(format!("{hash}{}", self.ending))
    }

    /// Removes other engines' artifacts and partial writes older than
    /// [`ABANDONED_AFTER`]; leaves alone any file the cache did not name, and any link
    /// or folder. Failures are logged and skipped: a cache it cannot tidy still works.
    fn prune(&self, now: SystemTime) -> Pruned {
        let mut pruned = Pruned::default();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot list the plugin cache to tidy it");
                return pruned;
            }
        };
        let mut failed = 0usize;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(kind) = self.stale_kind(name) else {
                continue;
            };
            // `DirEntry::metadata` does not follow links: a link or folder is not a file.
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let remove = match kind {
                Stale::OtherEngine => true,
                Stale::Partial => meta
                    .modified()
                    .ok()
                    .and_then(|m| now.duration_since(m).ok())
                    .is_some_and(|age| age >= ABANDONED_AFTER),
            };
            if !remove {
                continue;
            }
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {
                    pruned.files += 1;
                    pruned.bytes += meta.len();
                }
                Err(_) => failed += 1,
            }
        }
        if failed > 0 {
            tracing::warn!(dir = %self.dir.display(), files = failed, "could not remove stale files from the plugin cache");
        }
        pruned
    }

    /// What a file named `name` is, if the cache wrote it and it may be stale.
    fn stale_kind(&self, name: &str) -> Option<Stale> {
        let (hash, rest) = name.split_once('-')?;
        let (tag, ext) = rest.split_once('.')?;
        if !is_hex(hash, 64) || !is_hex(tag, 16) {
            return None;
        }
        match ext {
            // `<tag>.cwasm`: this engine's artifact, or another's.
            "cwasm" => (!name.ends_with(&self.ending)).then_some(Stale::OtherEngine),
            // The artifact's name with its extension replaced: `<tag>.<token>.tmp`
            // (written in process) or `<tag>.<pid>.partial` (the compile worker), renamed
            // into place when whole, and `<tag>.<token>.input.wasm`, the component staged
            // for the worker and removed after it. Left behind only by a crash.
            partial => is_partial(partial).then_some(Stale::Partial),
        }
    }
}

/// Why a file may go.
enum Stale {
    /// An artifact another engine build compiled: this one never loads it.
    OtherEngine,
    /// A partial write or staged input: removed once it is [`ABANDONED_AFTER`] old.
    Partial,
}

/// The engine's compatibility hash (its version and every setting that changes the code
/// it emits), shortened to 16 hex digits.
pub(super) fn engine_tag(engine: &Engine) -> String {
    let mut h = std::hash::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("{:016x}", h.finish())
}

/// Lower-case hex of `len` digits, as the cache writes hashes and tags.
fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `<token>.tmp`, `<token>.input.wasm` or `<pid>.partial`.
fn is_partial(rest: &str) -> bool {
    let token = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric());
    rest.strip_suffix(".tmp").is_some_and(token)
        || rest.strip_suffix(".input.wasm").is_some_and(token)
        || rest
            .strip_suffix(".partial")
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Loads a compiled plugin artifact from the gateway's cache: one of the crate's two
/// uses of `unsafe` (the other is `store::writer_sched`), audited here.
#[allow(unsafe_code)]
pub(super) fn load_artifact(engine: &Engine, file: &Path) -> wasmtime::Result<Component> {
    // SAFETY: wasmtime trusts a serialized component to be its own output. Every file
    // this is called on was written by `Component::serialize` of an engine with the
    // same compatibility hash (it is part of the file's name): by this process, or by
    // its compile worker, which is this binary with the same settings and renames its
    // artifact into place only once it is whole. The cache directory is checked at
    // start to be writable by this user only ([`private_dir`]).
    unsafe { Component::deserialize_file(engine, file) }
}

/// Creates the compiled-plugin cache `dir` (mode 0700) if needed, and refuses one that
/// another user owns or others may write to: its files are loaded as machine code.
fn private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| anyhow::anyhow!("plugin cache {}: {e}", dir.display()))?;
    let meta = std::fs::metadata(dir)?;
    let mine = meta.uid() == rustix::process::geteuid().as_raw();
    if !mine || meta.mode() & 0o022 != 0 {
        anyhow::bail!(
            "plugin cache {}: {} (compiled plugins are loaded from it as machine code): \
             use a folder only the gateway's user can write (plugin_cache_dir), or `chmod go-w` it",
            dir.display(),
            if mine {
                "group or others may write to it"
            } else {
                "another user owns it"
            }
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn scratch() -> PathBuf {
        std::env::temp_dir().join(format!(
            "tollgate-cache-test-{}",
            crate::ids::random_token(8)
        ))
    }

    #[test]
    fn the_plugin_cache_must_be_private() {
        let base = scratch();
        let dir = base.join("nested/plugin-cache");
        private_dir(&dir).expect("created");
        let mode = std::fs::metadata(&dir)
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let why = private_dir(&dir)
            .expect_err("group/world-writable")
            .to_string();
        assert!(why.contains("group or others may write to it"), "{why}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        private_dir(&dir).expect("read-only for others is fine");
        let _ = std::fs::remove_dir_all(base);
    }

    #[test]
    fn opening_removes_other_engines_artifacts_and_abandoned_writes_only() {
        let base = scratch();
        let dir = base.join("plugin-cache");
        let engine = Engine::default();
        let cache = ArtifactCache::open(dir.clone(), &engine).expect("opened");
        let hash = "ab".repeat(32);
        let other = if engine_tag(&engine) == "0".repeat(16) {
            "1".repeat(16)
        } else {
            "0".repeat(16)
        };
        let ours = cache.file(&hash);
        let theirs = dir.join(format!("{hash}-{other}.cwasm"));
        // Named as their writers name them (`PluginRuntime::compile_checked`, and
        // `compile_isolated` and its worker in `compile.rs`).
        let old_tmp = ours.with_extension(format!("{}.tmp", crate::ids::random_token(12)));
        let old_input = ours.with_extension(format!("{}.input.wasm", crate::ids::random_token(12)));
        let old_partial = theirs.with_extension("4242.partial");
        let new_partial = ours.with_extension("4243.partial");
        let foreign = [
            dir.join("README"),
            dir.join(format!("{hash}-{other}.wasm")),
            dir.join(format!("short-{other}.cwasm")),
            dir.join(format!("{hash}-backup.cwasm")),
            dir.join(format!("{}-{other}.cwasm", hash.to_uppercase())),
            dir.join(format!("{hash}-{other}.cwasm.bak")),
        ];
        // Named like another engine's artifact, but a link and a folder: not files.
        let target = base.join("elsewhere");
        std::fs::write(&target, b"keep").expect("write");
        let link = dir.join(format!("{}-{other}.cwasm", "cd".repeat(32)));
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let folder = dir.join(format!("{}-{other}.cwasm", "ef".repeat(32)));
        std::fs::create_dir(&folder).expect("mkdir");
        for f in [
            &ours,
            &theirs,
            &old_tmp,
            &old_input,
            &old_partial,
            &new_partial,
        ]
        .into_iter()
        .chain(&foreign)
        {
            std::fs::write(f, b"0123456789").expect("write");
        }
        // Pruned an hour from now: the partial writes made now are abandoned by then, the
        // one touched at that moment is still being written.
        let now = SystemTime::now() + ABANDONED_AFTER + Duration::from_secs(1);
        for f in [&old_tmp, &old_input, &old_partial, &theirs] {
            std::fs::File::options()
                .write(true)
                .open(f)
                .and_then(|f| f.set_modified(SystemTime::now() - Duration::from_secs(1)))
                .expect("mtime");
        }
        std::fs::File::options()
            .write(true)
            .open(&new_partial)
            .and_then(|f| f.set_modified(now))
            .expect("mtime");
        let pruned = cache.prune(now);
        assert_eq!(
            pruned,
            Pruned {
                files: 4,
                bytes: 40
            }
        );
        assert!(ours.exists(), "this engine's artifact is kept");
        assert!(!theirs.exists(), "another engine's artifact is removed");
        assert!(
            !old_tmp.exists() && !old_partial.exists(),
            "abandoned writes go"
        );
        assert!(new_partial.exists(), "a write in progress stays");
        for f in &foreign {
            assert!(f.exists(), "{} is not the cache's: kept", f.display());
        }
        assert!(
            link.symlink_metadata().is_ok() && target.exists(),
            "a link is left alone, and so is what it points to"
        );
        assert!(folder.is_dir(), "a folder is left alone");
        let _ = std::fs::remove_dir_all(base);
    }
}
