//! One configured upstream: its pooled HTTP client, credentials and the headers its
//! wire protocol takes.

use super::UpstreamError;
use super::client::{self, HttpClient, TransportError};
use crate::api::Api;
use crate::config::ProviderConfig;
use crate::headers as names;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use bytes::Bytes;
use std::time::Duration;

/// `anthropic-version` sent when the client sent none.
pub const DEFAULT_VERSION: &str = "2023-06-01";

/// Client headers passed through to an Anthropic upstream. An OpenAI upstream gets none
/// of them: `anthropic-beta` and friends mean nothing there.
const FORWARDED: [HeaderName; 2] = [names::ANTHROPIC_VERSION, names::ANTHROPIC_BETA];

/// A configured upstream of either wire protocol.
pub struct Provider {
    /// Provider id from the config.
    pub id: String,
    /// The API the upstream speaks.
    pub wire: Api,
    /// Models advertised for it by `GET /v1/models`.
    pub models: Vec<String>,
    base_url: String,
    /// The model endpoint's address, parsed once: parsing a URL (host, IDNA) per
    /// request cost more than the rest of building it.
    model_url: Uri,
    api_key: Option<HeaderValue>,
    /// The config's extra headers, with the user agent.
    extra_headers: HeaderMap,
    client: HttpClient,
    timeout: Duration,
}

impl Provider {
    /// Builds the provider's pooled HTTP client.
    pub fn new(
        cfg: &ProviderConfig,
        base_url: String,
        api_key: Option<String>,
    ) -> anyhow::Result<Self> {
        let wire = cfg.kind.api();
        let model_url = client::uri(&base_url, wire.model_path())
            .map_err(|e| anyhow::anyhow!("provider '{}': bad base_url: {e}", cfg.id))?;
        let client = HttpClient::new(
            &model_url,
            Duration::from_millis(cfg.connect_timeout_ms),
            // Counts each wait for data, so a long stream lives while tokens keep coming.
            Duration::from_secs(cfg.stream_idle_timeout_s),
        )?;
        let mut extra_headers = HeaderMap::new();
        extra_headers.insert(axum::http::header::USER_AGENT, client::user_agent());
        extra_headers.insert(axum::http::header::ACCEPT, HeaderValue::from_static("*/*"));
        for (k, v) in &cfg.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| anyhow::anyhow!("provider '{}': bad header name '{k}'", cfg.id))?;
            let value = HeaderValue::from_str(v).map_err(|_| {
                anyhow::anyhow!("provider '{}': bad value for header '{k}'", cfg.id)
            })?;
            extra_headers.insert(name, value);
        }
        let api_key = api_key
            .map(|k| HeaderValue::from_str(&k))
            .transpose()
            .map_err(|_| {
                anyhow::anyhow!("provider '{}': API key is not a valid header value", cfg.id)
            })?
            .map(|mut v| {
                v.set_sensitive(true);
                v
            });
        Ok(Self {
            id: cfg.id.clone(),
            wire,
            model_url,
            models: cfg.models.clone(),
            base_url,
            api_key,
            extra_headers,
            client,
            timeout: Duration::from_secs(cfg.timeout_s),
        })
    }

    /// Longest wait for headers (and, for whole bodies, the body).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends `body` to `path` (e.g. `/v1/messages`), forwarding the client headers this
    /// wire takes and authenticating with the provider's own key. Returns once response
    /// headers arrive or `timeout` (default: the provider's) passes.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        client_headers: &HeaderMap,
        body: Bytes,
        timeout: Option<Duration>,
    ) -> Result<client::Response, UpstreamError> {
        let url = if path_and_query == self.wire.model_path() {
            self.model_url.clone()
        } else {
            client::uri(&self.base_url, path_and_query).map_err(|e| UpstreamError::Other {
                provider: self.id.clone(),
                message: format!("bad upstream address: {e}"),
            })?
        };
        let mut headers = self.extra_headers.clone();
        match self.wire {
            Api::Anthropic => {
                for name in FORWARDED {
                    if let Some(v) = client_headers.get(&name) {
                        headers.insert(name, v.clone());
                    }
                }
                headers
                    .entry(names::ANTHROPIC_VERSION)
                    .or_insert(HeaderValue::from_static(DEFAULT_VERSION));
                if let Some(k) = &self.api_key {
                    headers.insert(names::X_API_KEY, k.clone());
                }
            }
            Api::OpenAi => {
                if let Some(k) = &self.api_key
                    && let Ok(mut v) =
                        HeaderValue::from_str(&format!("Bearer {}", k.to_str().unwrap_or_default()))
                {
                    v.set_sensitive(true);
                    headers.insert(axum::http::header::AUTHORIZATION, v);
                }
            }
        }
        if method != Method::GET {
            headers.insert(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        let mut req = Request::new(body);
        *req.method_mut() = method;
        *req.uri_mut() = url;
        *req.headers_mut() = headers;
        let timeout = timeout.unwrap_or(self.timeout);
        match tokio::time::timeout(timeout, self.client.send(req)).await {
            Err(_) => Err(UpstreamError::Timeout {
                provider: self.id.clone(),
                ms: timeout.as_millis() as u64,
            }),
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(self.classify(e)),
        }
    }

    /// Maps a transport error to an [`UpstreamError`].
    pub fn classify(&self, e: TransportError) -> UpstreamError {
        let provider = self.id.clone();
        match e {
            TransportError::Connect(message) => UpstreamError::Connect { provider, message },
            e @ (TransportError::Idle(_) | TransportError::Other(_)) => UpstreamError::Other {
                provider,
                message: e.to_string(),
            },
        }
    }
}

/// The innermost error message of a chain (reqwest and hyper wrap the useful part
/// several layers deep).
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
