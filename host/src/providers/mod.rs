//! Upstream model providers: where admitted requests are forwarded, with pooled
//! connections and timeouts.

mod client;
mod upstream;

pub use client::{BodyStream, Response, TransportError};
pub use upstream::{Provider, root_cause};

use crate::config::{Config, ProviderKind};
use std::collections::HashMap;
use std::sync::Arc;

/// A `reqwest` client builder with the TLS provider installed: reqwest is built without
/// a default one, and every reqwest client of the gateway (providers reached through a
/// proxy, webhooks, trace export, the admin CLI, tests) is built through here so none
/// can miss it. Providers reached directly use hyper's client (`client.rs`).
pub fn client_builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

/// Why an upstream call failed before a response arrived.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No connection could be made (refused, DNS, TLS handshake).
    #[error("could not connect to provider '{provider}': {message}")]
    Connect {
        /// The provider's id.
        provider: String,
        /// The innermost transport error.
        message: String,
    },
    /// The provider did not answer within the attempt's timeout.
    #[error("provider '{provider}' did not answer within {ms} ms")]
    Timeout {
        /// The provider's id.
        provider: String,
        /// The timeout that expired, in milliseconds.
        ms: u64,
    },
    /// Any other transport failure, e.g. a connection reset mid-request.
    #[error("provider '{provider}' request failed: {message}")]
    Other {
        /// The provider's id.
        provider: String,
        /// The innermost transport error.
        message: String,
    },
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
    by_id: HashMap<String, Arc<Provider>>,
    /// Ids in config order, for listings.
    order: Vec<String>,
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
                _ => p.base_url(),
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
            by_id.insert(p.id.clone(), Arc::new(Provider::new(p, base_url, api_key)?));
        }
        let order = cfg.providers.iter().map(|p| p.id.clone()).collect();
        Ok(Self { by_id, order })
    }

    /// The provider with this id.
    pub fn get(&self, id: &str) -> Option<&Arc<Provider>> {
        self.by_id.get(id)
    }

    /// Every provider, in config order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Provider>> {
        self.order.iter().filter_map(|id| self.by_id.get(id))
    }

    /// Whether any provider is configured.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}
