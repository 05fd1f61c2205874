//! `tollgate serve`: load the config (or the embedded default), build the gateway,
//! listen once everything is loaded, and run until SIGINT or SIGTERM.

use crate::config::Config;
use anyhow::Context as _;
use std::path::PathBuf;

/// Runs the gateway until a shutdown signal.
pub(super) async fn serve(
    config: Option<PathBuf>,
    listen: Option<std::net::SocketAddr>,
    data_dir: Option<PathBuf>,
    watch: Option<PathBuf>,
) -> anyhow::Result<()> {
    if let Some(dir) = &watch {
        let meta = std::fs::metadata(dir)
            .with_context(|| format!("--watch directory {}", dir.display()))?;
        anyhow::ensure!(
            meta.is_dir(),
            "--watch {} is not a directory",
            dir.display()
        );
    }
    let embedded = config.is_none();
    let mut cfg = match &config {
        Some(p) => Config::load(p)?,
        None => Config::parse(crate::demo::DEFAULT_CONFIG, "embedded default config")?,
    };
    if let Some(l) = listen {
        cfg.listen = l;
    }
    if let Some(d) = data_dir {
        cfg.data_dir = d;
    }
    fit_connections_to_fd_limit(&mut cfg.server);
    let (admin_token, _) = crate::demo::admin_token(&cfg.data_dir)?;
    // Uploaded plugin components are compiled by this binary in a budgeted child.
    if let Ok(exe) = std::env::current_exe() {
        crate::plugins::set_compile_worker(exe);
    }
    // Listen only once everything is loaded: until then a connection is refused, not
    // left hanging while the ledger and bundles load.
    let listen = cfg.listen;
    let backlog = cfg.server.listen_backlog;
    let gateway = crate::server::Gateway::build(cfg, admin_token.clone()).await?;
    let listener = crate::http::listener::bind(listen, backlog)
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let base_url = format!("http://{addr}");
    if embedded {
        match crate::demo::bootstrap_demo_key(&gateway.control.store, "demo").await? {
            Some(key) => {
                gateway.control.keys.reload(&gateway.control.store).await?;
                println!(
                    "{}",
                    crate::demo::first_start_banner(&base_url, &key, &admin_token)
                );
            }
            None => println!(
                "Tollgate (embedded default) at {base_url}; admin token in {}/admin-token. \
                 The demo key was shown at first start; make another with `tollgate keys create --tenant demo`.",
                gateway.config.data_dir.display()
            ),
        }
    }
    if let Some(dir) = watch {
        tokio::spawn(crate::bundles::watch(gateway.control.clone(), dir));
    }
    let shutdown = crate::server::shutdown_signal();
    // Tests and scripts wait for this line.
    println!("tollgate listening on {base_url}");
    gateway.serve(listener, shutdown).await
}

/// Raises the open-files limit to its hard maximum and keeps `max_connections` below
/// it (with room for the store, plugins and upstream connections), so the connection
/// cap, not the kernel, decides when new clients are turned away.
fn fit_connections_to_fd_limit(server: &mut crate::config::ServerConfig) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if let Some(max) = limit.maximum
        && limit.current != Some(max)
    {
        limit.current = Some(max);
        let _ = setrlimit(Resource::Nofile, limit);
    }
    let Some(current) = getrlimit(Resource::Nofile).current else {
        return;
    };
    // Upstream connections and the store need descriptors too.
    let room = usize::try_from(current / 2).unwrap_or(usize::MAX);
    if server.max_connections > room {
        eprintln!(
            "warning: [server] max_connections = {} exceeds what {current} open files allow; using {room}",
            server.max_connections
        );
        server.max_connections = room.max(1);
        server.max_connections_per_client = server.max_connections_per_client.min(room.max(1));
    }
}
