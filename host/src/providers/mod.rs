//! Upstream model providers: where admitted requests are forwarded, with pooled
//! connections and timeouts.

mod anthropic;

pub use anthropic::{AnthropicProvider, root_cause};

use crate::config::{Config, ProviderKind};
use std::collections::HashMap;
use std::sync::Arc;

/// Why an upstream call failed before a response arrived.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("could not connect to provider '{provider}': {message}")]
    Connect { provider: String, message: String },
    #[error("provider '{provider}' did not answer within {secs} s")]
    Timeout { provider: String, secs: u64 },
    #[error("provider '{provider}' request failed: {message}")]
    Other { provider: String, message: String },
}

impl UpstreamError {
    /// The client-facing error for this failure.
    pub fn to_api_error(&self) -> crate::error::ApiError {
        use crate::error::{ApiError, ErrorKind};
        match self {
            Self::Timeout { .. } => ApiError::new(ErrorKind::Timeout, self.to_string()),
            _ => ApiError::new(ErrorKind::Api, self.to_string())
                .with_status(axum::http::StatusCode::BAD_GATEWAY),
        }
    }
}

/// All configured providers by id.
#[derive(Default)]
pub struct Providers {
    by_id: HashMap<String, Arc<AnthropicProvider>>,
}

impl Providers {
    /// Builds a client per provider. `mock_url` is the base URL of the in-process mock,
    /// used by providers of kind `mock`.
    pub fn from_config(cfg: &Config, mock_url: Option<&str>) -> anyhow::Result<Self> {
        let mut by_id = HashMap::new();
        for p in &cfg.providers {
            let base_url = match p.kind {
                ProviderKind::Mock => mock_url.map(str::to_string).ok_or_else(|| {
                    anyhow::anyhow!("provider '{}': the embedded mock is not running", p.id)
                })?,
                ProviderKind::Anthropic => p.base_url(),
            };
            let api_key = match &p.api_key_env {
                Some(var) => match std::env::var(var) {
                    Ok(v) if !v.is_empty() => Some(v),
                    _ => {
                        tracing::warn!(provider = %p.id, env = %var, "API key variable is unset; requests go without a key");
                        None
                    }
                },
                None => None,
            };
            by_id.insert(
                p.id.clone(),
                Arc::new(AnthropicProvider::new(p, base_url, api_key)?),
            );
        }
        Ok(Self { by_id })
    }

    /// The provider with this id.
    pub fn get(&self, id: &str) -> Option<&Arc<AnthropicProvider>> {
        self.by_id.get(id)
    }

    /// Whether any provider is configured.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}
