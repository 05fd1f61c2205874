//! OpenTelemetry traces over OTLP/HTTP (JSON encoding), when an endpoint is configured.
//!
//! Each finished request becomes a server span named after the GenAI operation and
//! model (`chat claude-sonnet-4-5`) with the GenAI semantic-convention attributes, and
//! one child span per plugin call and per upstream attempt. A caller's W3C
//! `traceparent` is continued; otherwise requests sharing an `x-portkey-trace-id` share
//! one trace id (a hash of it), so a session is one trace in any tracing backend.
//!
//! Spans are built on the log writer thread from the written rows and handed to an
//! exporter task over a bounded channel: a slow or absent collector costs dropped spans,
//! never a request's latency.

use crate::store::{LogObserver, LogRecord};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc;

/// Span batches waiting for the exporter; more are dropped.
const QUEUE: usize = 256;
/// Longest one export may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// OTLP span kinds and status codes.
const KIND_INTERNAL: u8 = 1;
const KIND_SERVER: u8 = 2;
const KIND_CLIENT: u8 = 3;
const STATUS_OK: u8 = 1;
const STATUS_ERROR: u8 = 2;

/// Where and how spans are exported.
#[derive(Clone, Debug)]
pub struct OtlpTarget {
    /// Base URL of the collector's OTLP/HTTP receiver (spans go to `{endpoint}/v1/traces`).
    pub endpoint: String,
    /// Extra headers (e.g. an API key) sent with every export.
    pub headers: Vec<(String, String)>,
    /// `service.name` of the resource.
    pub service_name: String,
    /// Provider id → `gen_ai.provider.name` (`anthropic`, `openai`, ...).
    pub provider_names: HashMap<String, String>,
}

/// The writer-thread side: turns written rows into spans and queues them.
pub struct SpanObserver {
    tx: mpsc::Sender<Value>,
    target: OtlpTarget,
    dropped: u64,
}

/// Starts the exporter task (call inside the runtime); the observer goes to the writer.
pub fn start(target: OtlpTarget) -> SpanObserver {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(export_loop(target.clone(), rx));
    SpanObserver {
        tx,
        target,
        dropped: 0,
    }
}

impl LogObserver for SpanObserver {
    fn observe(&mut self, batch: &[Box<LogRecord>]) {
        let spans: Vec<Value> = batch
            .iter()
            .filter(|r| !r.tenant_id.is_empty())
            .flat_map(|r| request_spans(r, &self.target.provider_names))
            .collect();
        if spans.is_empty() {
            return;
        }
        let body = envelope(&self.target.service_name, spans);
        if self.tx.try_send(body).is_err() {
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                tracing::warn!(
                    dropped = self.dropped,
                    "OTLP exporter is behind; span batches dropped"
                );
            }
        }
    }
}

async fn export_loop(target: OtlpTarget, mut rx: mpsc::Receiver<Value>) {
    let url = format!("{}/v1/traces", target.endpoint.trim_end_matches('/'));
    let client = match crate::providers::client_builder()
        .timeout(EXPORT_TIMEOUT)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the OTLP client; traces are not exported");
            return;
        }
    };
    while let Some(body) = rx.recv().await {
        let text = body.to_string();
        // One retry: collectors restart, and a lost batch is only telemetry.
        for attempt in 1..=2 {
            let mut req = client
                .post(&url)
                .header("content-type", "application/json")
                .body(text.clone());
            for (k, v) in &target.headers {
                req = req.header(k, v);
            }
            match req.send().await {
                Ok(r) if r.status().is_success() => break,
                Ok(r) => {
                    tracing::warn!(status = %r.status(), attempt, "OTLP export refused")
                }
                Err(e) => tracing::warn!(error = %e, attempt, "OTLP export failed"),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// An `ExportTraceServiceRequest` for `spans` of this service.
fn envelope(service: &str, spans: Vec<Value>) -> Value {
    json!({
        "resourceSpans": [{
            "resource": { "attributes": [attr("service.name", service.into())] },
            "scopeSpans": [{
                "scope": { "name": "tollgate", "version": env!("CARGO_PKG_VERSION") },
                "spans": spans,
            }],
        }],
    })
}

/// The trace id and parent span a request's spans belong to.
fn trace_context(r: &LogRecord) -> (String, Option<String>) {
    if let Some((trace, parent)) = r.traceparent.as_deref().and_then(parse_traceparent) {
        return (trace, Some(parent));
    }
    // Clients choose trace ids: the tenant is part of the hash so two tenants' sessions
    // never share a trace.
    let mut h = Sha256::new();
    h.update(r.tenant_id.as_bytes());
    h.update([0]);
    h.update(r.trace_id.as_bytes());
    (hex::encode(&h.finalize()[..16]), None)
}

/// `00-<32 hex trace id>-<16 hex parent id>-<flags>`, ids not all zero.
fn parse_traceparent(v: &str) -> Option<(String, String)> {
    let mut parts = v.trim().split('-');
    let (version, trace, parent) = (parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| {
        s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit()) && s.bytes().any(|b| b != b'0')
    };
    (version.len() == 2 && hex(trace, 32) && hex(parent, 16))
        .then(|| (trace.to_ascii_lowercase(), parent.to_ascii_lowercase()))
}

fn span_id() -> String {
    use rand::RngExt as _;
    let mut b = [0u8; 8];
    rand::rng().fill(&mut b);
    if b == [0; 8] {
        b[0] = 1;
    }
    hex::encode(b)
}

fn attr(key: &str, value: Value) -> Value {
    let v = match value {
        Value::String(s) => json!({ "stringValue": s }),
        Value::Bool(b) => json!({ "boolValue": b }),
        Value::Number(n) if n.is_i64() || n.is_u64() => json!({ "intValue": n.to_string() }),
        Value::Number(n) => json!({ "doubleValue": n.as_f64() }),
        other => json!({ "stringValue": other.to_string() }),
    };
    json!({ "key": key, "value": v })
}

fn nanos(us: i64) -> String {
    (us.max(0) as u128 * 1000).to_string()
}

/// The GenAI operation of an endpoint.
fn operation(endpoint: &str) -> &'static str {
    match endpoint {
        "count_tokens" => "count_tokens",
        "models" => "list_models",
        _ => "chat",
    }
}

/// The request's server span and its plugin and upstream children.
fn request_spans(r: &LogRecord, providers: &HashMap<String, String>) -> Vec<Value> {
    let (trace_id, parent) = trace_context(r);
    let root = span_id();
    let (start_us, end_us) = match r.span_us {
        (s, e) if s > 0 && e >= s => (s, e),
        _ => (
            r.ts_ms * 1000,
            r.ts_ms * 1000 + (r.latency_ms as i64) * 1000,
        ),
    };
    let op = operation(&r.endpoint);
    let model = r.requested_model.as_deref().unwrap_or("unknown");
    let provider_name = |id: &str| providers.get(id).cloned().unwrap_or_else(|| id.to_string());
    let mut attrs = vec![
        attr("gen_ai.operation.name", op.into()),
        attr("gen_ai.request.model", model.into()),
        attr("http.response.status_code", r.status.into()),
        attr("tollgate.tenant", r.tenant_id.clone().into()),
        attr("tollgate.request_id", r.request_id.clone().into()),
        attr("tollgate.trace_id", r.trace_id.clone().into()),
        attr("tollgate.stream", r.stream.into()),
    ];
    if let Some(p) = &r.provider {
        attrs.push(attr("gen_ai.provider.name", provider_name(p).into()));
        attrs.push(attr("tollgate.provider", p.clone().into()));
    }
    if let Some(m) = &r.served_model {
        attrs.push(attr("gen_ai.response.model", m.clone().into()));
    }
    if let Some(m) = r.max_tokens {
        attrs.push(attr("gen_ai.request.max_tokens", m.into()));
    }
    if !r.attempts.is_empty() {
        attrs.push(attr(
            "gen_ai.usage.input_tokens",
            r.usage.input_tokens.into(),
        ));
        attrs.push(attr(
            "gen_ai.usage.output_tokens",
            r.usage.output_tokens.into(),
        ));
        attrs.push(attr("tollgate.cost_usd", (r.cost_nano as f64 / 1e9).into()));
    }
    if let Some(t) = r.ttft_ms {
        attrs.push(attr("tollgate.time_to_first_token_ms", t.into()));
    }
    for (field, v) in [("team", &r.team), ("user", &r.user), ("key_id", &r.key_id)] {
        if let Some(v) = v {
            attrs.push(attr(&format!("tollgate.{field}"), v.clone().into()));
        }
    }
    for (k, v) in r.metadata.0.iter() {
        attrs.push(attr(&format!("tollgate.metadata.{k}"), v.clone().into()));
    }
    if let Some(v) = r.bundle_version {
        attrs.push(attr("tollgate.bundle_version", v.into()));
    }
    let failed = r.status >= 400 || r.error.is_some();
    if failed {
        attrs.push(attr("error.type", r.status.to_string().into()));
    }
    let mut root_span = json!({
        "traceId": trace_id,
        "spanId": root,
        "name": format!("{op} {model}"),
        "kind": KIND_SERVER,
        "startTimeUnixNano": nanos(start_us),
        "endTimeUnixNano": nanos(end_us),
        "attributes": attrs,
        "status": status(failed, r.error.as_deref()),
    });
    if let (Some(p), Some(o)) = (parent, root_span.as_object_mut()) {
        o.insert("parentSpanId".into(), p.into());
    }
    let mut spans = vec![root_span];
    // Rows written before start times were recorded lay their children end to end.
    let mut cursor = start_us;
    for d in &r.decisions {
        let start = if d.at_us > 0 { d.at_us } else { cursor };
        let end = start + d.micros as i64;
        cursor = end;
        let failed = d.outcome == "error";
        let mut a = vec![
            attr("tollgate.plugin.name", d.plugin.clone().into()),
            attr("tollgate.plugin.outcome", d.outcome.clone().into()),
        ];
        if let Some(detail) = &d.detail {
            a.push(attr("tollgate.plugin.detail", detail.clone().into()));
        }
        spans.push(json!({
            "traceId": trace_id,
            "spanId": span_id(),
            "parentSpanId": root,
            "name": format!("plugin {}", d.plugin),
            "kind": KIND_INTERNAL,
            "startTimeUnixNano": nanos(start),
            "endTimeUnixNano": nanos(end),
            "attributes": a,
            "status": status(failed, d.detail.as_deref()),
        }));
    }
    for (i, at) in r.attempts.iter().enumerate() {
        let start = if at.at_us > 0 { at.at_us } else { cursor };
        let end = start + (at.latency_ms as i64) * 1000;
        cursor = end;
        let failed = at.error.is_some();
        let mut a = vec![
            attr("gen_ai.operation.name", op.into()),
            attr("gen_ai.provider.name", provider_name(&at.provider).into()),
            attr("gen_ai.request.model", at.model.clone().into()),
            attr("tollgate.provider", at.provider.clone().into()),
            attr("tollgate.attempt", (i as u64 + 1).into()),
            attr("tollgate.target", at.target.into()),
        ];
        if let Some(s) = at.status {
            a.push(attr("http.response.status_code", s.into()));
        }
        if failed {
            let ty = at
                .status
                .map_or_else(|| "transport_error".to_string(), |s| s.to_string());
            a.push(attr("error.type", ty.into()));
        }
        spans.push(json!({
            "traceId": trace_id,
            "spanId": span_id(),
            "parentSpanId": root,
            "name": format!("{op} {}", at.model),
            "kind": KIND_CLIENT,
            "startTimeUnixNano": nanos(start),
            "endTimeUnixNano": nanos(end),
            "attributes": a,
            "status": status(failed, at.error.as_deref()),
        }));
    }
    spans
}

fn status(failed: bool, message: Option<&str>) -> Value {
    if failed {
        json!({ "code": STATUS_ERROR, "message": message.unwrap_or_default() })
    } else {
        json!({ "code": STATUS_OK })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AttemptRecord, PluginDecision};

    #[test]
    fn a_request_is_a_server_span_with_plugin_and_attempt_children() {
        let r = LogRecord {
            request_id: "req_1".into(),
            ts_ms: 1_700_000_000_000,
            tenant_id: "acme".into(),
            trace_id: "session-42".into(),
            endpoint: "messages".into(),
            requested_model: Some("claude-sonnet-4-5".into()),
            served_model: Some("claude-sonnet-4-5".into()),
            provider: Some("main".into()),
            status: 200,
            latency_ms: 120,
            decisions: vec![PluginDecision {
                plugin: "policy".into(),
                outcome: "allow".into(),
                detail: None,
                annotations: vec![],
                micros: 25,
                at_us: 1_700_000_000_000_100,
                ..Default::default()
            }],
            attempts: vec![AttemptRecord {
                provider: "main".into(),
                model: "claude-sonnet-4-5".into(),
                target: 0,
                status: Some(200),
                latency_ms: 90,
                error: None,
                at_us: 1_700_000_000_001_000,
            }],
            ..LogRecord::default()
        };
        let providers = HashMap::from([("main".to_string(), "anthropic".to_string())]);
        let spans = request_spans(&r, &providers);
        assert_eq!(spans.len(), 3);
        let root = &spans[0];
        assert_eq!(root["name"], "chat claude-sonnet-4-5");
        assert_eq!(root["kind"], KIND_SERVER);
        assert_eq!(root["startTimeUnixNano"], "1700000000000000000");
        let digest = Sha256::digest(b"acme\0session-42");
        assert_eq!(root["traceId"], hex::encode(&digest[..16]));
        let has = |s: &Value, k: &str, v: Value| {
            s["attributes"]
                .as_array()
                .expect("attrs")
                .iter()
                .any(|a| a["key"] == k && a["value"] == v)
        };
        assert!(has(
            root,
            "gen_ai.provider.name",
            json!({"stringValue": "anthropic"})
        ));
        assert!(has(
            root,
            "http.response.status_code",
            json!({"intValue": "200"})
        ));
        for child in &spans[1..] {
            assert_eq!(child["parentSpanId"], root["spanId"]);
            assert_eq!(child["traceId"], root["traceId"]);
        }
        assert_eq!(spans[1]["name"], "plugin policy");
        assert_eq!(spans[2]["kind"], KIND_CLIENT);
    }

    #[test]
    fn traceparent_is_continued_and_bad_ones_ignored() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            parse_traceparent(tp),
            Some((
                "4bf92f3577b34da6a3ce929d0e0e4736".into(),
                "00f067aa0ba902b7".into()
            ))
        );
        assert_eq!(
            parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(parse_traceparent("garbage"), None);
    }
}
