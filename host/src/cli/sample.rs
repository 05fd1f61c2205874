//! A sample request for the plugin tools (`plugin check`, `plugin test`): the context
//! and body a plugin would see, built the way the gateway builds them.

use crate::metadata::Metadata;
use crate::pipeline::BodySummary;
use crate::plugins::{Endpoint, PluginRuntime, RequestContext, SandboxLimits};
use bytes::Bytes;
use serde::Deserialize;

/// A sample request; everything is optional. Without a body, a one-message body for
/// `model` (default `claude-sonnet-4-5`), `max_tokens` and `stream` is made up.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sample {
    /// The request body: JSON, or JSON text.
    #[serde(default)]
    pub body: Option<serde_json::Value>,
    /// The `x-portkey-metadata` fields.
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// The tenant (default `check`).
    #[serde(default)]
    pub tenant: Option<String>,
    /// The team (default: the metadata's `team`).
    #[serde(default)]
    pub team: Option<String>,
    /// The user (default: the metadata's `user`).
    #[serde(default)]
    pub user: Option<String>,
    /// The key's name (default `check`).
    #[serde(default)]
    pub key_name: Option<String>,
    /// `messages` (default), `count-tokens` or `chat-completions`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The model of the made-up body.
    #[serde(default)]
    pub model: Option<String>,
    /// Whether the made-up body streams.
    #[serde(default)]
    pub stream: bool,
    /// `max_tokens` of the made-up body (default 1024).
    #[serde(default)]
    pub max_tokens: Option<u32>,
}

impl Sample {
    /// The context and body a plugin sees for this request.
    pub fn build(&self) -> anyhow::Result<(RequestContext, Bytes)> {
        let endpoint = match self.endpoint.as_deref() {
            None | Some("messages") => Endpoint::Messages,
            Some("count-tokens" | "count_tokens") => Endpoint::CountTokens,
            Some("chat-completions" | "chat_completions") => Endpoint::ChatCompletions,
            Some(other) => anyhow::bail!(
                "endpoint: unknown '{other}' (messages, count-tokens, chat-completions)"
            ),
        };
        let body = match &self.body {
            Some(serde_json::Value::String(text)) => {
                let v: serde_json::Value = serde_json::from_str(text)
                    .map_err(|e| anyhow::anyhow!("body: not JSON: {e}"))?;
                v.to_string()
            }
            Some(v) => v.to_string(),
            None => {
                let mut b = serde_json::json!({
                    "model": self.model.as_deref().unwrap_or("claude-sonnet-4-5"),
                    "max_tokens": self.max_tokens.unwrap_or(1024),
                    "messages": [{"role": "user", "content": "Hello"}],
                });
                if self.stream {
                    b["stream"] = true.into();
                }
                b.to_string()
            }
        };
        let body = Bytes::from(body);
        let metadata = Metadata::parse(
            serde_json::Value::Object(self.metadata.clone())
                .to_string()
                .as_bytes(),
        )
        .map_err(|e| anyhow::anyhow!("metadata: {}", e.message))?;
        let summary =
            BodySummary::parse(&body).map_err(|e| anyhow::anyhow!("body: {}", e.message))?;
        let ctx = RequestContext {
            request_id: "req_check".into(),
            trace_id: "req_check".into(),
            tenant: self.tenant.clone().unwrap_or_else(|| "check".into()),
            key_id: "key_check".into(),
            key_name: self.key_name.clone().unwrap_or_else(|| "check".into()),
            team: self
                .team
                .clone()
                .or_else(|| metadata.get("team").map(str::to_string)),
            user: self
                .user
                .clone()
                .or_else(|| metadata.get("user").map(str::to_string)),
            metadata: metadata.0.to_vec(),
            model: summary.model,
            endpoint,
            stream: summary.stream,
            max_tokens: summary.max_tokens,
            body_bytes: u32::try_from(body.len()).unwrap_or(u32::MAX),
            prompt_tokens_estimate: summary.prompt_tokens_estimate,
            message_count: summary.message_count,
        };
        Ok((ctx, body))
    }
}

/// The JSON in the file at `path`, as compact text (a config as the host passes it).
pub fn json_file(path: &std::path::Path) -> anyhow::Result<String> {
    use anyhow::Context as _;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    Ok(v.to_string())
}

/// A plugin runtime for the tools, with the gateway's default sandbox limits unless
/// `memory_mib` or `deadline_ms` say otherwise (as a tenant's `[tenants.sandbox]` may).
/// Compiled components are cached in the user's cache folder, so a second run of a
/// large (Python, JavaScript) component starts at once.
pub fn runtime(memory_mib: Option<u64>, deadline_ms: Option<u64>) -> anyhow::Result<PluginRuntime> {
    if let Some(m) = memory_mib {
        anyhow::ensure!(
            (1..=4096).contains(&m),
            "memory_mib (--memory-mib or tollgate-plugin.toml): must be between 1 and 4096"
        );
    }
    if let Some(d) = deadline_ms {
        anyhow::ensure!(
            (1..=60_000).contains(&d),
            "deadline_ms (--deadline-ms or tollgate-plugin.toml): must be between 1 and 60000"
        );
    }
    let cfg = crate::config::Config::parse("", "defaults").map_err(|e| anyhow::anyhow!("{e}"))?;
    let limits = SandboxLimits {
        deadline: std::time::Duration::from_millis(deadline_ms.unwrap_or(cfg.sandbox.deadline_ms)),
        memory_bytes: (memory_mib.unwrap_or(cfg.sandbox.memory_mib) as usize) << 20,
    };
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cache")))
        .map(|c| c.join("tollgate").join("plugin-cache"));
    match PluginRuntime::new(limits, 4, cache) {
        Ok(rt) => Ok(rt),
        // No usable cache (a read-only home, say): compile every time instead.
        Err(e) => {
            eprintln!("warning: {e:#}; compiling without a cache");
            PluginRuntime::new(limits, 4, None)
        }
    }
}
