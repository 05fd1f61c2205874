//! The `tollgate` binary: the gateway server and its admin CLI (see [`tollgate::cli`]).

fn main() -> std::process::ExitCode {
    tollgate::cli::main()
}
