//! The subcommands: their clap definitions and what each one does. `serve` lives in
//! [`super::serve`]; the rest are the admin client, `plugin check`, the mock and the
//! compile worker.

use super::{AdminClient, BundleScope, Lang, NewHook, Output, PluginCheck, PluginNew, PluginTest};
use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "tollgate",
    version,
    about = "A self-hosted AI gateway with sandboxed WebAssembly policy plugins"
)]
pub(super) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (with no --config: the offline embedded default).
    Serve {
        /// TOML config file.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Override the config's listen address.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Override the config's data directory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// GitOps: apply bundle files from DIR when they change (`platform.toml`,
        /// `<tenant-id>.toml`; polled every 500 ms).
        #[arg(long, value_name = "DIR")]
        watch: Option<PathBuf>,
    },
    /// Run a mock Anthropic/OpenAI-compatible upstream (tests and offline use).
    Mock {
        #[arg(long, default_value = "127.0.0.1:9100")]
        listen: std::net::SocketAddr,
        /// Name matched by `only=` directives.
        #[arg(long, default_value = "mock")]
        name: String,
        /// Require this key (x-api-key or bearer).
        #[arg(long)]
        api_key: Option<String>,
        /// API flavour: anthropic, openai or both.
        #[arg(long, value_enum, default_value_t = crate::mock::Flavor::Both)]
        flavor: crate::mock::Flavor,
    },
    /// Work with plugins.
    #[command(subcommand)]
    Plugin(PluginCmd),
    /// Manage tenants (admin API client).
    #[command(subcommand)]
    Tenants(TenantsCmd),
    /// Manage API keys (admin API client).
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Query request logs (admin API client).
    Logs(Box<LogsArgs>),
    /// Usage and cost, grouped (admin API client).
    Usage(UsageArgs),
    /// Budgets: limit, spent, remaining and reset per scope (admin API client).
    Budgets {
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Budget alerts fired, newest first (admin API client).
    Alerts {
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Versioned policy bundles, per tenant or platform-wide (admin API client).
    #[command(subcommand)]
    Bundle(BundleCmd),
    /// Compiles one plugin component within a budget; the gateway runs this itself so
    /// that a hostile component can exhaust only this process.
    #[command(name = "__compile-plugin", hide = true)]
    CompilePlugin {
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        output: PathBuf,
        #[arg(long)]
        memory_bytes: u64,
        #[arg(long)]
        cpu_s: u64,
    },
}

#[derive(Subcommand)]
enum BundleCmd {
    /// Upload a TOML bundle file as the new active version.
    Apply {
        #[command(flatten)]
        target: BundleTarget,
        /// The bundle file: default_provider, models and [[plugins]] (name or path).
        file: PathBuf,
        /// Why this version exists, kept in the history.
        #[arg(long)]
        message: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// List the bundle's versions.
    History {
        #[command(flatten)]
        target: BundleTarget,
        #[command(flatten)]
        remote: Remote,
    },
    /// Print a version's bundle as JSON (default: the active version).
    Show {
        #[command(flatten)]
        target: BundleTarget,
        /// A version number from `bundle history`.
        #[arg(long)]
        version: Option<u64>,
        #[command(flatten)]
        remote: Remote,
    },
    /// What changed between two versions.
    Diff {
        #[command(flatten)]
        target: BundleTarget,
        /// The older version.
        from: u64,
        /// The newer version.
        to: u64,
        #[command(flatten)]
        remote: Remote,
    },
    /// Dry run: decide the tenant's logged requests again under a candidate bundle
    /// file and report what would change (denials, targets, budget hits).
    Replay {
        /// The tenant whose requests are replayed.
        #[arg(long)]
        tenant: String,
        /// The candidate bundle file.
        file: PathBuf,
        /// Window start: Unix ms, RFC 3339, or an age (15m, 24h, 7d).
        #[arg(long, default_value = "24h")]
        since: String,
        /// Window end (default: now).
        #[arg(long)]
        until: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Re-activate a version's content (recorded as a new version).
    Rollback {
        #[command(flatten)]
        target: BundleTarget,
        /// The version whose content becomes active again.
        version: u64,
        #[command(flatten)]
        remote: Remote,
    },
}

/// Exactly one of --tenant and --platform.
#[derive(Args)]
#[group(id = "bundle_target", required = true, multiple = false)]
struct BundleTarget {
    /// A tenant's bundle.
    #[arg(long)]
    tenant: Option<String>,
    /// The platform bundle, applied to every tenant before its own.
    #[arg(long)]
    platform: bool,
}

impl BundleTarget {
    fn scope(self) -> BundleScope {
        match self.tenant {
            Some(t) => BundleScope::Tenant(t),
            None => BundleScope::Platform,
        }
    }
}

#[derive(Args)]
struct UsageArgs {
    #[arg(long)]
    tenant: Option<String>,
    /// team, user, key, model, provider or metadata.<key>.
    #[arg(long)]
    by: Option<String>,
    /// minute, hour, day, week, month or total.
    #[arg(long, default_value = "day")]
    period: String,
    /// calendar or rolling.
    #[arg(long, default_value = "calendar")]
    window: String,
    /// Unix ms or a duration ago (15m, 24h, 7d); replaces the period.
    #[arg(long)]
    since: Option<String>,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Args, Clone)]
struct Remote {
    /// Gateway base URL.
    #[arg(
        long,
        env = "TOLLGATE_URL",
        default_value = "http://127.0.0.1:8787",
        global = true
    )]
    url: String,
    /// Admin token.
    #[arg(
        long,
        env = "TOLLGATE_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    admin_token: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

impl Remote {
    fn client(&self) -> anyhow::Result<AdminClient> {
        AdminClient::new(
            &self.url,
            self.admin_token.clone(),
            if self.json {
                Output::Json
            } else {
                Output::Table
            },
        )
    }
}

#[derive(Subcommand)]
enum PluginCmd {
    /// Write a ready plugin project: the source with each hook stubbed, its config
    /// schema, fixture cases in tests/ and tollgate-plugin.toml (the build command).
    New {
        /// The plugin's name (a-z, 0-9, '-'); also the folder written unless --dir.
        name: String,
        /// The language.
        #[arg(long, value_enum)]
        lang: Lang,
        /// The hooks to stub, comma-separated (default: policy).
        #[arg(long, value_enum, value_delimiter = ',')]
        hook: Vec<NewHook>,
        /// Where to write the project (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The guest SDKs' folder (guest-sdk of a Tollgate checkout; found next to the
        /// binary when not given).
        #[arg(long, env = "TOLLGATE_GUEST_SDK")]
        sdk: Option<PathBuf>,
    },
    /// Run a plugin on a sample request and print its decision
    /// (exit 0 allow, 3 deny, 1 error or rejected config).
    Check {
        /// The plugin component (.wasm).
        file: PathBuf,
        /// The plugin's config (JSON file).
        #[arg(long)]
        config: Option<PathBuf>,
        /// A sample request: a Messages body, or {"body":…, "metadata":{…}, "team":…}.
        #[arg(long)]
        request: PathBuf,
        #[command(flatten)]
        limits: SandboxArgs,
    },
    /// Build a plugin project: run the build command its tollgate-plugin.toml names.
    Build {
        /// The project directory (default: .).
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Run a plugin's fixture cases (tests/*.toml) against the built component in the
    /// real sandbox and print passes and failures (exit 0 all passed, 1 otherwise).
    Test {
        /// A plugin project directory (with tollgate-plugin.toml or Cargo.toml), or a
        /// component (.wasm).
        target: PathBuf,
        /// The folder of case files (default: the project's tests/, or ./tests).
        #[arg(long)]
        cases: Option<PathBuf>,
        /// The component to test, when it is not where the project says.
        #[arg(long)]
        wasm: Option<PathBuf>,
        #[command(flatten)]
        limits: SandboxArgs,
    },
}

/// Sandbox limits of the plugin tools (default: the gateway's `[sandbox]` defaults).
#[derive(clap::Args)]
struct SandboxArgs {
    /// Memory cap of the instance, in MiB (as `[sandbox] memory_mib`).
    #[arg(long)]
    memory_mib: Option<u64>,
    /// CPU deadline of a call, in milliseconds (as `[sandbox] deadline_ms`).
    #[arg(long)]
    deadline_ms: Option<u64>,
}

#[derive(Subcommand)]
enum TenantsCmd {
    /// Create a tenant.
    Create {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// List tenants.
    List {
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Create an API key; its secret is printed once.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        team: Option<String>,
        #[arg(long)]
        user: Option<String>,
        /// Comma-separated model globs the key may use.
        #[arg(long, value_delimiter = ',')]
        models: Option<Vec<String>>,
        /// Lifetime, e.g. 30d, 12h.
        #[arg(long)]
        expires_in: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// List keys.
    List {
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Revoke a key by id.
    Revoke {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Args)]
struct LogsArgs {
    #[command(subcommand)]
    command: Option<LogsCmd>,
    #[command(flatten)]
    filters: LogFilters,
    #[arg(long, default_value_t = 50)]
    limit: u32,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Subcommand)]
enum LogsCmd {
    /// Write every matching log row, oldest first, as JSON lines or CSV.
    Export {
        /// jsonl or csv.
        #[arg(long, default_value = "jsonl")]
        format: String,
        /// Write to this file instead of standard output.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
        #[command(flatten)]
        filters: LogFilters,
        #[command(flatten)]
        remote: Remote,
    },
}

/// Filters shared by `logs` and `logs export`.
#[derive(Args, Clone)]
struct LogFilters {
    #[arg(long)]
    tenant: Option<String>,
    /// Metadata filter key=value (repeatable).
    #[arg(long = "filter", short = 'f')]
    filters: Vec<String>,
    #[arg(long)]
    team: Option<String>,
    #[arg(long)]
    user: Option<String>,
    #[arg(long)]
    model: Option<String>,
    #[arg(long)]
    provider: Option<String>,
    /// An HTTP status, or 2xx, 4xx, 5xx, error.
    #[arg(long)]
    status: Option<String>,
    /// Unix ms, RFC 3339 or a duration ago (15m, 24h, 7d).
    #[arg(long)]
    since: Option<String>,
    #[arg(long)]
    until: Option<String>,
    #[arg(long)]
    trace_id: Option<String>,
}

impl LogFilters {
    /// The admin API's query string for these filters.
    fn query(&self) -> form_urlencoded::Serializer<'static, String> {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for f in &self.filters {
            q.append_pair("meta", f);
        }
        for (k, v) in [
            ("tenant", &self.tenant),
            ("team", &self.team),
            ("user", &self.user),
            ("model", &self.model),
            ("provider", &self.provider),
            ("status", &self.status),
            ("since", &self.since),
            ("until", &self.until),
            ("trace_id", &self.trace_id),
        ] {
            if let Some(v) = v {
                q.append_pair(k, v);
            }
        }
        q
    }
}

const BUDGET_COLUMNS: &[&str] = &[
    "tenant",
    "budget",
    "scope",
    "value",
    "metric",
    "period",
    "window",
    "limit",
    "spent",
    "reserved",
    "remaining",
    "used_pct",
    "resets_at",
];
const ALERT_COLUMNS: &[&str] = &[
    "at_ms",
    "tenant",
    "budget",
    "scope",
    "value",
    "threshold_pct",
    "used",
    "limit",
];

/// Runs the parsed command; the exit code on success.
pub(super) async fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Serve {
            config,
            listen,
            data_dir,
            watch,
        } => super::serve::serve(config, listen, data_dir, watch)
            .await
            .map(|()| 0),
        Command::Mock {
            listen,
            name,
            api_key,
            flavor,
        } => {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            println!(
                "mock '{name}' listening on http://{}",
                listener.local_addr()?
            );
            let cfg = crate::mock::MockConfig {
                name,
                api_key,
                flavor,
                ..Default::default()
            };
            crate::mock::serve(listener, cfg).await?;
            Ok(0)
        }
        Command::Plugin(PluginCmd::Check {
            file,
            config,
            request,
            limits,
        }) => {
            let code = super::run_plugin_check(&PluginCheck {
                wasm: file,
                config,
                request,
                memory_mib: limits.memory_mib,
                deadline_ms: limits.deadline_ms,
            })
            .await?;
            Ok(u8::try_from(code).unwrap_or(1))
        }
        Command::Plugin(PluginCmd::New {
            name,
            lang,
            hook,
            dir,
            sdk,
        }) => super::run_plugin_new(&PluginNew {
            name,
            lang,
            hooks: hook,
            dir,
            sdk,
        })
        .map(|()| 0),
        Command::Plugin(PluginCmd::Build { dir }) => {
            super::run_plugin_build(&dir).map(|code| u8::try_from(code).unwrap_or(1))
        }
        Command::Plugin(PluginCmd::Test {
            target,
            cases,
            wasm,
            limits,
        }) => {
            let code = super::run_plugin_test(&PluginTest {
                target,
                cases,
                wasm,
                memory_mib: limits.memory_mib,
                deadline_ms: limits.deadline_ms,
            })
            .await?;
            Ok(u8::try_from(code).unwrap_or(1))
        }
        Command::Tenants(TenantsCmd::Create { id, name, remote }) => remote
            .client()?
            .create_tenant(&id, name.as_deref())
            .await
            .map(|()| 0),
        Command::Tenants(TenantsCmd::List { remote }) => {
            remote.client()?.list_tenants().await.map(|()| 0)
        }
        Command::Keys(KeysCmd::Create {
            tenant,
            name,
            team,
            user,
            models,
            expires_in,
            remote,
        }) => {
            let expires_in_s = match expires_in {
                Some(d) => Some(
                    crate::time::parse_time(&d, 0)
                        .map(|ago| -ago / 1000)
                        .map_err(anyhow::Error::msg)?,
                ),
                None => None,
            };
            let body = serde_json::json!({
                "name": name, "team": team, "user": user, "models": models, "expires_in_s": expires_in_s,
            });
            remote.client()?.create_key(&tenant, body).await.map(|()| 0)
        }
        Command::Keys(KeysCmd::List { tenant, remote }) => remote
            .client()?
            .list_keys(tenant.as_deref())
            .await
            .map(|()| 0),
        Command::Keys(KeysCmd::Revoke { id, remote }) => {
            remote.client()?.revoke_key(&id).await.map(|()| 0)
        }
        Command::Logs(a) => match a.command {
            Some(LogsCmd::Export {
                format,
                output,
                filters,
                remote,
            }) => {
                let mut q = filters.query();
                q.append_pair("format", &format);
                remote
                    .client()?
                    .export_logs(&q.finish(), output.as_deref())
                    .await
                    .map(|()| 0)
            }
            None => {
                let mut q = a.filters.query();
                q.append_pair("limit", &a.limit.to_string());
                a.remote.client()?.logs(&q.finish()).await.map(|()| 0)
            }
        },
        Command::Usage(a) => {
            let mut q = form_urlencoded::Serializer::new(String::new());
            for (k, v) in [("tenant", &a.tenant), ("by", &a.by), ("since", &a.since)] {
                if let Some(v) = v {
                    q.append_pair(k, v);
                }
            }
            q.append_pair("period", &a.period);
            q.append_pair("window", &a.window);
            a.remote.client()?.usage(&q.finish()).await.map(|()| 0)
        }
        Command::Budgets { tenant, remote } => remote
            .client()?
            .get_listing("/budgets", tenant.as_deref(), BUDGET_COLUMNS)
            .await
            .map(|()| 0),
        Command::Alerts { tenant, remote } => remote
            .client()?
            .get_listing("/alerts", tenant.as_deref(), ALERT_COLUMNS)
            .await
            .map(|()| 0),
        Command::Bundle(cmd) => bundle(cmd).await.map(|()| 0),
        Command::CompilePlugin {
            input,
            output,
            memory_bytes,
            cpu_s,
        } => {
            crate::plugins::run_worker(&input, &output, memory_bytes, cpu_s)?;
            Ok(0)
        }
    }
}

async fn bundle(cmd: BundleCmd) -> anyhow::Result<()> {
    match cmd {
        BundleCmd::Apply {
            target,
            file,
            message,
            remote,
        } => {
            let body = super::read_bundle_file(&file)?;
            remote
                .client()?
                .bundle_apply(&target.scope(), body, message.as_deref())
                .await
        }
        BundleCmd::History { target, remote } => {
            remote.client()?.bundle_history(&target.scope()).await
        }
        BundleCmd::Show {
            target,
            version,
            remote,
        } => remote.client()?.bundle_show(&target.scope(), version).await,
        BundleCmd::Diff {
            target,
            from,
            to,
            remote,
        } => {
            remote
                .client()?
                .bundle_diff(&target.scope(), from, to)
                .await
        }
        BundleCmd::Replay {
            tenant,
            file,
            since,
            until,
            remote,
        } => {
            let bundle = super::read_bundle_file(&file)?;
            remote
                .client()?
                .bundle_replay(&tenant, bundle, &since, until.as_deref())
                .await
        }
        BundleCmd::Rollback {
            target,
            version,
            remote,
        } => {
            remote
                .client()?
                .bundle_rollback(&target.scope(), version)
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bundle_commands_need_exactly_one_target() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["tollgate", "bundle"], args].concat());
        assert!(parse(&["history", "--tenant", "acme"]).is_ok());
        assert!(parse(&["history", "--platform"]).is_ok());
        assert!(parse(&["history"]).is_err());
        assert!(parse(&["history", "--tenant", "acme", "--platform"]).is_err());
        let Ok(Cli {
            command:
                Command::Bundle(BundleCmd::Apply {
                    target,
                    file,
                    message,
                    ..
                }),
        }) = parse(&["apply", "--platform", "b.toml", "--message", "why"])
        else {
            panic!("apply did not parse");
        };
        assert_eq!(target.scope(), BundleScope::Platform);
        assert_eq!(file, PathBuf::from("b.toml"));
        assert_eq!(message.as_deref(), Some("why"));
        let Ok(Cli {
            command:
                Command::Bundle(BundleCmd::Show {
                    target, version, ..
                }),
        }) = parse(&["show", "--tenant", "acme", "--version", "3"])
        else {
            panic!("show did not parse");
        };
        assert_eq!(target.scope(), BundleScope::Tenant("acme".into()));
        assert_eq!(version, Some(3));
        assert!(parse(&["diff", "--platform", "1", "2"]).is_ok());
        assert!(parse(&["rollback", "--tenant", "acme", "2"]).is_ok());
    }
}
