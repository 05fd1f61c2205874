//! Turning component bytes into machine code without letting a hostile component hurt
//! the gateway: a size cap, a cheap structural check of what it imports and exports
//! before any compiling, and (in the server) compiling in a child process with a CPU
//! time, wall-clock and memory budget, at a lower priority, so a compile bomb costs
//! only that child. The artifact comes back through the compiled-plugin cache.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use wasmtime::{Config, Engine};

/// The engine settings compiled code depends on. The serving engine adds only runtime
/// settings (the pooling allocator), so a compile worker using these produces
/// artifacts it can load.
pub(super) fn base_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true).epoch_interruption(true);
    config
}

/// Where and within what budget components are compiled.
#[derive(Clone, Debug)]
pub enum Compiler {
    /// On a blocking thread of this process (trusted components: tests, the CLI).
    InProcess,
    /// In a child process (`tollgate __compile-plugin`), within a budget.
    Isolated(CompileBudget),
}

/// The budget of one isolated compile.
#[derive(Clone, Debug)]
pub struct CompileBudget {
    /// The `tollgate` binary to run the worker from.
    pub exe: PathBuf,
    /// The CPU time a compile may use; it may take twice that on the wall clock.
    pub timeout: Duration,
    /// Most memory the worker may allocate.
    pub memory_bytes: u64,
}

/// Why a component did not compile, and whether compiling the same bytes again would
/// fail the same way (then the refusal is remembered).
#[derive(Debug)]
pub struct CompileFailure {
    /// What went wrong, for the admin who uploaded the component.
    pub message: String,
    /// The bytes themselves are at fault (not the machine's load or an I/O error).
    pub deterministic: bool,
}

impl CompileFailure {
    /// A failure the bytes cause.
    pub(super) fn of_bytes(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            deterministic: true,
        }
    }

    /// A failure of the machine or its load.
    pub(super) fn of_machine(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            deterministic: false,
        }
    }
}

static WORKER: OnceLock<PathBuf> = OnceLock::new();

/// Records the binary that can run `__compile-plugin` (the `tollgate` binary sets it
/// to itself at start); without it, components compile in process.
pub fn set_compile_worker(exe: PathBuf) {
    let _ = WORKER.set(exe);
}

impl Compiler {
    /// Isolated compiles within `timeout` and `memory_bytes` when a worker binary is
    /// known, else in process.
    pub fn isolated_if_possible(timeout: Duration, memory_bytes: u64) -> Self {
        match WORKER.get() {
            Some(exe) => Self::Isolated(CompileBudget {
                exe: exe.clone(),
                timeout,
                memory_bytes,
            }),
            None => Self::InProcess,
        }
    }
}

/// Checks, without compiling, that `bytes` is a component whose top-level imports are
/// WASI and the Tollgate host interfaces only, of a contract version the host speaks,
/// and that it exports the Tollgate guest interface; the error says how to fix it.
pub fn precheck(bytes: &[u8]) -> Result<(), String> {
    use wasmparser::{Encoding, Parser, Payload};
    let mut depth = 0usize;
    let mut exports_guest = false;
    let mut names = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| format!("not a valid WebAssembly binary: {e}"))?;
        match payload {
            Payload::Version { encoding, .. } if depth == 0 && encoding != Encoding::Component => {
                return Err("this is a core WebAssembly module, not a component: build \
                            the plugin with a Tollgate guest SDK (Rust: for wasm32-wasip2; \
                            Python: componentize-py; JavaScript: componentize-js)"
                    .into());
            }
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import = import.map_err(|e| format!("unreadable import: {e}"))?;
                    let name = import.name.name;
                    if name.starts_with("wasi:http/") {
                        return Err(format!(
                            "imports '{name}' (outgoing HTTP), which plugins may not use: build \
                             without it (componentize-js: disableFeatures ['http', 'fetch-event'])"
                        ));
                    }
                    if !(name.starts_with("wasi:") || name.starts_with("tollgate:plugin/")) {
                        return Err(format!(
                            "imports '{name}', which the gateway does not offer (plugins may \
                             import only tollgate:plugin/host and WASI)"
                        ));
                    }
                    names.push(name.to_string());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    let export = export.map_err(|e| format!("unreadable export: {e}"))?;
                    exports_guest |= export.name.name.starts_with("tollgate:plugin/guest@");
                    names.push(export.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    let speaks = super::abi::VERSIONS.join(", ");
    for name in &names {
        if let Some(version) = name
            .strip_prefix("tollgate:plugin/")
            .and_then(|rest| rest.split_once('@'))
            .map(|(_, v)| v)
            && !super::abi::VERSIONS.contains(&version)
        {
            return Err(format!(
                "targets tollgate:plugin@{version} ('{name}'), a contract version this gateway \
                 does not speak (it speaks {speaks}): rebuild the plugin with a guest SDK for \
                 one of them, or upgrade the gateway"
            ));
        }
    }
    if !exports_guest {
        return Err(format!(
            "does not export tollgate:plugin/guest (the plugin's hooks): build it with a \
             Tollgate guest SDK, which exports them (Rust: export_plugin!; Python: \
             `Guest = export(MyPlugin)`; JavaScript: a default export of definePlugin), \
             against wit/plugin.wit (tollgate:plugin@{})",
            super::abi::VERSIONS[0]
        ));
    }
    Ok(())
}

/// Compiles `bytes` with the base settings and returns the serialized artifact (what
/// the compile worker does, and what an in-process compile stores in the cache).
pub fn compile_to_artifact(bytes: &[u8], parallel: bool) -> anyhow::Result<Vec<u8>> {
    let mut config = base_config();
    config.parallel_compilation(parallel);
    let engine = Engine::new(&config)?;
    let component = wasmtime::component::Component::new(&engine, bytes)?;
    Ok(component.serialize()?)
}

/// The compile worker (`tollgate __compile-plugin`): limits itself, compiles `input`
/// and writes the artifact to `output`. Exits non-zero with the reason on stderr.
pub fn run_worker(
    input: &Path,
    output: &Path,
    memory_bytes: u64,
    cpu_s: u64,
) -> anyhow::Result<()> {
    use rustix::process::{Resource, Rlimit, setpriority_process, setrlimit};
    // A compile bomb gets less CPU than the data plane, and dies at its budget.
    let _ = setpriority_process(None, 10);
    setrlimit(
        Resource::As,
        Rlimit {
            current: Some(memory_bytes),
            maximum: Some(memory_bytes),
        },
    )?;
    // SIGXCPU at the soft limit (so the parent can tell the CPU budget ran out); the
    // kernel's SIGKILL a second later if it is ignored.
    setrlimit(
        Resource::Cpu,
        Rlimit {
            current: Some(cpu_s.max(1)),
            maximum: Some(cpu_s.max(1) + 1),
        },
    )?;
    let bytes = std::fs::read(input)?;
    let artifact = compile_to_artifact(&bytes, false)?;
    // Another worker may be writing the same artifact: each writes its own file.
    let tmp = output.with_extension(format!("{}.partial", std::process::id()));
    std::fs::write(&tmp, &artifact)?;
    std::fs::rename(&tmp, output)?;
    Ok(())
}

/// Runs the worker on `bytes` within `budget`; it writes the artifact to `artifact`.
pub async fn compile_isolated(
    budget: &CompileBudget,
    bytes: &[u8],
    artifact: &Path,
) -> Result<(), CompileFailure> {
    let input = artifact.with_extension(format!("{}.input.wasm", crate::ids::random_token(12)));
    tokio::fs::write(&input, bytes)
        .await
        .map_err(|e| CompileFailure::of_machine(format!("cannot stage the component: {e}")))?;
    let cpu_s = budget.timeout.as_secs().max(1);
    let child = tokio::process::Command::new(&budget.exe)
        .arg("__compile-plugin")
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(artifact)
        .arg("--memory-bytes")
        .arg(budget.memory_bytes.to_string())
        .arg("--cpu-s")
        .arg(cpu_s.to_string())
        // mimalloc reserves address space a GiB at a time, which the worker's address
        // space limit counts: reserve in small steps so the limit bounds real use.
        .env("MIMALLOC_ARENA_RESERVE", "32MiB")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let wall = budget.timeout.saturating_mul(2).max(Duration::from_secs(2));
    let result = match child {
        Err(e) => Err(CompileFailure::of_machine(format!(
            "cannot start the compile worker: {e}"
        ))),
        Ok(child) => match tokio::time::timeout(wall, child.wait_with_output()).await {
            Err(_) => Err(CompileFailure::of_machine(format!(
                "compiling took longer than {} ms on a busy machine ([sandbox] compile_timeout_ms); retry later",
                wall.as_millis()
            ))),
            Ok(Err(e)) => Err(CompileFailure::of_machine(format!(
                "the compile worker failed: {e}"
            ))),
            Ok(Ok(out)) if out.status.success() => Ok(()),
            Ok(Ok(out)) => Err(worker_failure(&out, budget)),
        },
    };
    let _ = tokio::fs::remove_file(&input).await;
    result
}

/// Why the worker failed, in terms of the budget it ran under.
fn worker_failure(out: &std::process::Output, budget: &CompileBudget) -> CompileFailure {
    use std::os::unix::process::ExitStatusExt as _;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: String = stderr.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
    let memory = stderr.contains("memory allocation")
        || stderr.contains("out of memory")
        || stderr.contains("Cannot allocate memory");
    match out.status.signal() {
        // SIGXCPU, or the kernel's SIGKILL that follows it: the CPU budget.
        Some(24) | Some(9) => CompileFailure::of_bytes(format!(
            "compiling used more than {} ms of CPU ([sandbox] compile_timeout_ms)",
            budget.timeout.as_millis()
        )),
        _ if memory => CompileFailure::of_bytes(format!(
            "compiling needed more than {} MiB ([sandbox] compile_memory_mib)",
            budget.memory_bytes >> 20
        )),
        Some(sig) => {
            CompileFailure::of_machine(format!("the compile worker died (signal {sig}): {tail}"))
        }
        None => CompileFailure::of_bytes(format!("not a valid Tollgate plugin component: {tail}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_modules_and_foreign_imports_are_refused_before_compiling() {
        // The smallest core module.
        let core = b"\0asm\x01\0\0\0";
        assert!(
            precheck(core)
                .unwrap_err()
                .contains("core WebAssembly module")
        );
        assert!(
            precheck(b"not wasm at all")
                .unwrap_err()
                .contains("not a valid")
        );
        // An empty component exports nothing.
        let empty = b"\0asm\x0d\0\x01\0";
        assert!(precheck(empty).unwrap_err().contains("does not export"));
        let foreign = component(&["tollgate:plugin/host@0.4.0", "acme:db/query"], None);
        assert!(
            precheck(&foreign)
                .unwrap_err()
                .contains("imports 'acme:db/query', which the gateway does not offer")
        );
        let http = component(&["wasi:http/outgoing-handler@0.2.0"], None);
        assert!(precheck(&http).unwrap_err().contains("outgoing HTTP"));
    }

    #[test]
    fn contract_versions_the_host_does_not_speak_are_named() {
        let future = component(
            &["tollgate:plugin/host@0.9.0"],
            Some("tollgate:plugin/guest@0.9.0"),
        );
        let why = precheck(&future).unwrap_err();
        assert!(
            why.contains("targets tollgate:plugin@0.9.0")
                && why.contains("it speaks 0.4.0, 0.3.0, 0.2.0"),
            "{why}"
        );
        let current = component(
            &["tollgate:plugin/host@0.4.0"],
            Some("tollgate:plugin/guest@0.4.0"),
        );
        assert_eq!(precheck(&current), Ok(()));
        let no_guest = component(&["tollgate:plugin/host@0.4.0"], None);
        assert!(
            precheck(&no_guest)
                .unwrap_err()
                .contains("does not export tollgate:plugin/guest")
        );
    }

    /// A component importing empty instances named `imports`, re-exporting the first as
    /// `export`.
    fn component(imports: &[&str], export: Option<&str>) -> Vec<u8> {
        use wasm_encoder::{
            Component, ComponentExportKind, ComponentExportSection, ComponentImportSection,
            ComponentTypeRef, ComponentTypeSection, InstanceType,
        };
        let mut c = Component::new();
        let mut types = ComponentTypeSection::new();
        types.instance(&InstanceType::new());
        c.section(&types);
        let mut section = ComponentImportSection::new();
        for name in imports {
            section.import(*name, ComponentTypeRef::Instance(0));
        }
        c.section(&section);
        if let Some(name) = export {
            let mut exports = ComponentExportSection::new();
            exports.export(name, ComponentExportKind::Instance, 0, None);
            c.section(&exports);
        }
        c.finish()
    }

    #[test]
    fn the_worker_engine_loads_into_the_serving_engine() {
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        pool.total_component_instances(4)
            .total_memories(8)
            .total_core_instances(32);
        let mut serving = base_config();
        serving.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        let serving = Engine::new(&serving).expect("serving engine");
        let mut worker = base_config();
        worker.parallel_compilation(false);
        let worker = Engine::new(&worker).expect("worker engine");
        // The tag the cache names artifacts by: the worker's must be the server's.
        assert_eq!(
            crate::plugins::cache::engine_tag(&serving),
            crate::plugins::cache::engine_tag(&worker)
        );
    }
}
