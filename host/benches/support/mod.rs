//! What the plugin benches share.

// Each bench uses part of it.
#![allow(dead_code)]

use criterion::BenchmarkGroup;
use criterion::measurement::Measurement;
use std::path::PathBuf;
use tollgate::plugins::{CallEnv, Endpoint, LoadedPlugin, PluginRuntime, RequestContext};

/// A first-party plugin's component as `make plugins` builds it.
pub fn plugin_path(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target
        .join("wasm32-wasip2/release")
        .join(format!("tollgate_{name}.wasm"))
}

/// What `plugin` keeps when `config` is checked, as the gateway hands it to every call
/// of a tenant's plugin.
pub fn prepared(
    exec: &tokio::runtime::Runtime,
    rt: &PluginRuntime,
    plugin: &LoadedPlugin,
    config: &str,
) -> bytes::Bytes {
    exec.block_on(rt.validate_config(plugin, &plugin.info.name, config, None))
        .unwrap_or_else(|e| panic!("the bench config should check: {e}"))
}

/// A request of team `engineering` (user `dev@acme.com`) for `claude-sonnet-4-5`, with a
/// body of `body` holding `messages` messages.
pub fn context(body: &[u8], messages: u32) -> RequestContext {
    RequestContext {
        request_id: "req_bench".into(),
        trace_id: "req_bench".into(),
        tenant: "acme".into(),
        key_id: "key_bench".into(),
        key_name: "bench".into(),
        team: Some("engineering".into()),
        user: Some("dev@acme.com".into()),
        metadata: vec![("team".into(), "engineering".into())],
        model: "claude-sonnet-4-5".into(),
        endpoint: Endpoint::Messages,
        stream: false,
        max_tokens: Some(1024),
        body_bytes: body.len() as u32,
        prompt_tokens_estimate: (body.len() / 4) as u32,
        message_count: messages,
    }
}

/// Benches `call` with `env` as `fresh` (a fresh instance per call) and as `warm` (the
/// same call with `reuse_instance`).
pub fn fresh_and_warm<M: Measurement, R>(
    group: &mut BenchmarkGroup<'_, M>,
    (fresh, warm): (String, String),
    env: &CallEnv,
    mut call: impl FnMut(CallEnv) -> R,
) {
    group.bench_function(fresh, |b| b.iter(|| call(env.clone())));
    let reused = CallEnv {
        reuse: true,
        ..env.clone()
    };
    group.bench_function(warm, |b| b.iter(|| call(reused.clone())));
}

/// Runs one plugin call to the end on `exec`, including the teardown of its instance,
/// which the runtime defers until the caller next waits: each iteration pays its own.
pub fn call_through<F: std::future::Future>(exec: &tokio::runtime::Runtime, call: F) -> F::Output {
    exec.block_on(async {
        let out = call.await;
        tokio::task::yield_now().await;
        out
    })
}
