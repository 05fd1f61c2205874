//! The `tollgate` command line: the server, the admin client, `plugin check`, and
//! policy bundle files.

mod admin_client;
mod bundle;
mod commands;
mod plugin_check;
mod plugin_new;
mod plugin_test;
mod sample;
mod serve;

pub use admin_client::{AdminClient, Output};
pub use bundle::{BundleScope, read_bundle_file};
pub use plugin_check::{PluginCheck, run_plugin_check};
pub use plugin_new::{Lang, NewHook, PluginNew, run_plugin_build, run_plugin_new};
pub use plugin_test::{MANIFEST, Manifest, PluginTest, run_plugin_test};

/// The binary's entry point: parses the command line, sets up logging and the async
/// runtime, and runs the command.
pub fn main() -> std::process::ExitCode {
    use clap::Parser as _;
    let cli = commands::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TOLLGATE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour only on a terminal: a log file or collector gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
