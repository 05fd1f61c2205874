//! `tollgate plugin check`: run a plugin on a sample request before deploying it.

use crate::config::Config;
use crate::guard::{Guarded, RequestText};
use crate::metadata::Metadata;
use crate::pipeline::BodySummary;
use crate::plugins::{Decision, Endpoint, Hook, RequestContext, Subject, wit};
use anyhow::Context as _;
use bytes::Bytes;
use serde::Deserialize;
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
}

/// A sample request: either a bare Messages/Chat body, or this envelope around one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    body: serde_json::Value,
    #[serde(default)]
    metadata: serde_json::Map<String, serde_json::Value>,
    #[serde(default = "default_tenant")]
    tenant: String,
    #[serde(default)]
    team: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    key_name: Option<String>,
    #[serde(default)]
    endpoint: Option<String>,
}

fn default_tenant() -> String {
    "check".into()
}

/// Exit code when the plugin denies (0 = allow, 1 = error).
pub const EXIT_DENY: i32 = 3;

/// Runs the check and prints the decision; returns the process exit code.
pub async fn run_plugin_check(args: &PluginCheck) -> anyhow::Result<i32> {
    let config = match &args.config {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not valid JSON", p.display()))?;
            v.to_string()
        }
        None => "{}".into(),
    };
    let text = std::fs::read_to_string(&args.request)
        .with_context(|| format!("reading {}", args.request.display()))?;
    let raw: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", args.request.display()))?;
    let env: Envelope = if raw.get("body").is_some() {
        serde_json::from_value(raw)
            .with_context(|| format!("{}: bad request envelope", args.request.display()))?
    } else {
        Envelope {
            body: raw,
            metadata: Default::default(),
            tenant: default_tenant(),
            team: None,
            user: None,
            key_name: None,
            endpoint: None,
        }
    };
    let metadata = Metadata::parse(
        serde_json::Value::Object(env.metadata)
            .to_string()
            .as_bytes(),
    )
    .map_err(|e| anyhow::anyhow!("metadata: {}", e.message))?;
    let body = Bytes::from(env.body.to_string());
    let summary = BodySummary::parse(&body).map_err(|e| anyhow::anyhow!("body: {}", e.message))?;
    let endpoint = match env.endpoint.as_deref() {
        None | Some("messages") => Endpoint::Messages,
        Some("count-tokens" | "count_tokens") => Endpoint::CountTokens,
        Some("chat-completions" | "chat_completions") => Endpoint::ChatCompletions,
        Some(other) => {
            anyhow::bail!("endpoint: unknown '{other}' (messages, count-tokens, chat-completions)")
        }
    };

    let cfg = Config::parse("", "defaults").map_err(|e| anyhow::anyhow!("{e}"))?;
    let rt = crate::plugins::PluginRuntime::new(
        crate::plugins::SandboxLimits {
            deadline: std::time::Duration::from_millis(cfg.sandbox.deadline_ms),
            memory_bytes: (cfg.sandbox.memory_mib as usize) << 20,
        },
        4,
        None,
    )?;
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
    let prepared = match rt.validate_config(&plugin, &label, &config).await {
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
    let ctx = RequestContext {
        request_id: "req_check".into(),
        trace_id: "req_check".into(),
        tenant: env.tenant,
        key_id: "key_check".into(),
        key_name: env.key_name.unwrap_or_else(|| "check".into()),
        team: env
            .team
            .or_else(|| metadata.get("team").map(str::to_string)),
        user: env
            .user
            .or_else(|| metadata.get("user").map(str::to_string)),
        metadata: metadata.0,
        model: summary.model,
        endpoint,
        stream: summary.stream,
        max_tokens: summary.max_tokens,
        body_bytes: u32::try_from(body.len()).unwrap_or(u32::MAX),
        prompt_tokens_estimate: summary.prompt_tokens_estimate,
        message_count: summary.message_count,
    };
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
