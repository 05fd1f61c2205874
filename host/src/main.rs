//! The `tollgate` binary: the gateway server and its admin CLI (see [`tollgate::cli`]).

/// mimalloc's per-thread free lists suit a server that allocates and frees small
/// buffers on every request across worker threads; glibc's malloc was a tenth of the
/// gateway's CPU under load.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tollgate::cli::main()
}
