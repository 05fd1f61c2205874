//! `tollgate plugin check`: run a plugin on a sample request before deploying it.

use super::sample::Sample;
use crate::guard::{Guarded, RequestText};
use crate::plugins::{Decision, Hook, RequestContext, Subject, wit};
use anyhow::Context as _;
use bytes::Bytes;
use std::path::PathBuf;
use std::sync::Arc;

/// Arguments of `tollgate plugin check`.
pub struct PluginCheck {
    /// The plugin component (`.wasm`) to run.
    pub wasm: PathBuf,
    /// JSON file with the plugin's config; `None` checks it with `{}`.
    pub config: Option<PathBuf>,
    /// JSON file with the sample request: a bare body, or an envelope with
    /// `body`, `metadata`, `tenant`, `team`, `user`, `key_name` and `endpoint`.
    pub request: PathBuf,
    /// Memory cap of the instance, in MiB (default: the gateway's `[sandbox]` default).
    pub memory_mib: Option<u64>,
    /// CPU deadline of a call, in milliseconds (default: the gateway's).
    pub deadline_ms: Option<u64>,
}

/// Exit code when the plugin denies (0 = allow, 1 = error).
pub const EXIT_DENY: i32 = 3;

/// Runs the check and prints the decision; returns the process exit code.
pub async fn run_plugin_check(args: &PluginCheck) -> anyhow::Result<i32> {
    let config = match &args.config {
        Some(p) => super::sample::json_file(p)?,
        None => "{}".into(),
    };
    let text = std::fs::read_to_string(&args.request)
        .with_context(|| format!("reading {}", args.request.display()))?;
    let raw: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", args.request.display()))?;
    let sample: Sample = if raw.get("body").is_some() {
        serde_json::from_value(raw)
            .with_context(|| format!("{}: bad request envelope", args.request.display()))?
    } else {
        Sample {
            body: Some(raw),
            ..Sample::default()
        }
    };
    let (ctx, body) = sample.build()?;
    let rt = super::sample::runtime(args.memory_mib, args.deadline_ms)?;
    let label = args
        .wasm
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".into());
    let plugin = rt.load_file(&label, &args.wasm).await?;
    // Name it as its author does, like the gateway's errors will.
    let label = plugin.info.name.clone();
    println!(
        "plugin: {} {} (contract tollgate:plugin@{}, hooks: {:?}, sha256 {})",
        plugin.info.name,
        plugin.info.version,
        plugin.contract,
        plugin.info.hooks,
        &plugin.hash[..16]
    );
    let prepared = match rt.validate_config(&plugin, &label, &config, None).await {
        Ok(prepared) => prepared,
        Err(e) => {
            println!("config: REJECTED: {e}");
            return Ok(1);
        }
    };
    match prepared.len() {
        0 => println!("config: ok"),
        n => println!("config: ok (prepared: {n} bytes)"),
    }
    let env = crate::plugins::CallEnv {
        sandbox: None,
        label: Arc::from(label.as_str()),
        config: Arc::from(config.as_str()),
        prepared,
        body: body.clone(),
        usage: None,
        reuse: false,
    };
    let hooks = &plugin.info.hooks;
    let mut code = 0;
    if hooks.contains(&Hook::Policy) {
        let started = std::time::Instant::now();
        let result = rt.call_policy(&plugin, env.clone(), &ctx).await;
        let took = started.elapsed();
        code = match result {
            Ok(Decision::Allow) => {
                println!("decision: ALLOW ({took:?})");
                0
            }
            Ok(Decision::AllowWith(labels)) => {
                println!("decision: ALLOW ({took:?})");
                for a in labels {
                    println!("  annotation {} = {}", a.key, a.value);
                }
                0
            }
            Ok(Decision::Deny(d)) => {
                println!(
                    "decision: DENY {} {}: {} ({took:?})",
                    d.status, d.error_type, d.message
                );
                return Ok(EXIT_DENY);
            }
            Err(f) => {
                println!("decision: ERROR plugin '{label}' {f} ({took:?})");
                return Ok(1);
            }
        };
    }
    if hooks.contains(&Hook::InspectRequest) {
        code = check_guardrail(&rt, &plugin, env, &ctx, &body, &label).await?;
    }
    Ok(code)
}

/// Runs the request guardrail on the sample's conversation and prints its verdict (and
/// the body it would send, when it rewrites); the exit code as for a policy.
async fn check_guardrail(
    rt: &crate::plugins::PluginRuntime,
    plugin: &crate::plugins::LoadedPlugin,
    env: crate::plugins::CallEnv,
    ctx: &RequestContext,
    body: &Bytes,
    label: &str,
) -> anyhow::Result<i32> {
    let api = crate::pipeline::client_api(ctx.endpoint);
    let mut text = RequestText::parse(api, body).context("body")?;
    let started = std::time::Instant::now();
    let result = rt
        .call_inspect(plugin, env, ctx, Subject::Request(text.conversation()))
        .await;
    let took = started.elapsed();
    let verdict = match result {
        Ok(v) => v,
        Err(f) => {
            println!("guardrail: ERROR plugin '{label}' {f} ({took:?})");
            return Ok(1);
        }
    };
    let print_findings = |findings: &[wit::Finding]| {
        for f in findings {
            println!("  found {} ({}) x{}", f.rule, f.kind, f.count);
        }
    };
    match verdict {
        wit::Verdict::Allow => println!("guardrail: ALLOW ({took:?})"),
        wit::Verdict::Flag(f) => {
            println!("guardrail: FLAG ({took:?})");
            print_findings(&f);
        }
        wit::Verdict::Deny(r) => {
            println!(
                "guardrail: DENY {} {}: {} ({took:?})",
                r.denial.status, r.denial.error_type, r.denial.message
            );
            print_findings(&r.findings);
            return Ok(EXIT_DENY);
        }
        wit::Verdict::Rewrite(rw) => {
            println!("guardrail: REWRITE, {} edit(s) ({took:?})", rw.edits.len());
            print_findings(&rw.findings);
            if let Err(e) = text.rewrite(rw) {
                println!(
                    "guardrail: ERROR plugin '{label}' returned a rewrite the host cannot apply: {e}"
                );
                return Ok(1);
            }
            if let Some(b) = text.into_body() {
                println!("  body sent: {}", String::from_utf8_lossy(&b));
            }
        }
    }
    Ok(0)
}
