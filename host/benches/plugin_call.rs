//! Per-request cost of a plugin call: a fresh sandboxed instance from the pre-linked
//! component, the context lowered in, the decision (or route plan) lifted out.
//!
//! Needs the first-party plugins built (`make plugins`).

mod support;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use std::sync::Arc;
use support::{fresh_and_warm, plugin_path};
use tollgate::plugins::{
    CallEnv, Decision, PluginRuntime, RequestContext, RouteTarget, SandboxLimits, wit,
};

/// The shared bench request, with the metadata metadata-policy's config requires.
fn context() -> RequestContext {
    RequestContext {
        metadata: vec![
            ("env".into(), "prod".into()),
            ("team".into(), "engineering".into()),
            ("tenant".into(), "acme".into()),
            ("user".into(), "dev@acme.com".into()),
        ],
        stream: true,
        ..support::context(&[b' '; 2048], 3)
    }
}

fn bench(c: &mut Criterion) {
    let exec = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let rt = PluginRuntime::new(SandboxLimits::default(), 64, None).expect("runtime");
    let ctx = context();
    let body =
        Bytes::from_static(br#"{"model":"claude-sonnet-4-5","max_tokens":1024,"messages":[]}"#);
    let cases = [
        (
            "metadata-policy",
            r#"{"required":["env","team"],"allowed_values":{"env":["prod","staging","dev"]},"team_models":{"engineering":["claude-*"]}}"#,
        ),
        ("chaos", r#"{"mode":"allow"}"#),
    ];
    let mut group = c.benchmark_group("policy_call");
    for (name, config) in cases {
        let path = plugin_path(&name.replace('-', "_"));
        let plugin = exec
            .block_on(rt.load_file(name, &path))
            .unwrap_or_else(|e| panic!("{e}: build the plugins first (make plugins)"));
        let env = CallEnv {
            label: Arc::from(name),
            prepared: support::prepared(&exec, &rt, &plugin, config),
            config: Arc::from(config),
            body: body.clone(),
            usage: None,
            sandbox: None,
            reuse: false,
        };
        match support::call_through(&exec, rt.call_policy(&plugin, env.clone(), &ctx)) {
            Ok(Decision::Allow | Decision::AllowWith(_)) => {}
            other => panic!("{name} should allow the bench request: {other:?}"),
        }
        fresh_and_warm(
            &mut group,
            (name.to_string(), format!("{name} (warm)")),
            &env,
            |env| support::call_through(&exec, rt.call_policy(&plugin, env, &ctx)).expect("call"),
        );
    }
    group.finish();

    // The route hook: model-router matching the documented example's engineering rule.
    let router = exec
        .block_on(rt.load_file("model-router", &plugin_path("model_router")))
        .unwrap_or_else(|e| panic!("{e}: build the plugins first (make plugins)"));
    let config = r#"{"rules":[{"name":"engineering","when":{"metadata":{"team":{"equals":"engineering"}}},
            "route":{"strategy":"fallback","targets":[{"provider":"anthropic"},{"provider":"openai","model":"gpt-4o"}]}},
           {"name":"dev","when":{"metadata":{"env":{"equals":"dev"}}},
            "route":{"targets":[{"provider":"anthropic","model":"claude-haiku-4-5"}]}}],
          "default":{"targets":[{"provider":"anthropic"}]}}"#;
    let env = CallEnv {
        label: Arc::from("model-router"),
        prepared: support::prepared(&exec, &rt, &router, config),
        body: body.clone(),
        usage: None,
        sandbox: None,
        reuse: false,
        config: Arc::from(config),
    };
    let call =
        || support::call_through(&exec, rt.call_route(&router, env.clone(), &ctx)).expect("call");
    assert!(
        call().is_some(),
        "model-router should route the bench request"
    );
    c.bench_function("route_call/model-router", |b| b.iter(call));
    let warm = CallEnv {
        reuse: true,
        ..env.clone()
    };
    c.bench_function("route_call/model-router (warm)", |b| {
        b.iter(|| {
            support::call_through(&exec, rt.call_route(&router, warm.clone(), &ctx)).expect("call")
        })
    });

    // The budget hook: budget-limit granting a team cap and a key rate limit.
    let budgeter = exec
        .block_on(rt.load_file("budget-limit", &plugin_path("budget_limit")))
        .unwrap_or_else(|e| panic!("{e}: build the plugins first (make plugins)"));
    let config = r#"{"limits":[{"name":"team-daily-cost","scope":"team","metric":"cost","period":"day","limit":50,"alert_at":[50,80,100]}],
               "rate_limits":[{"name":"key-rpm","scope":"key","requests_per_minute":600}]}"#;
    let env = CallEnv {
        label: Arc::from("budget-limit"),
        prepared: support::prepared(&exec, &rt, &budgeter, config),
        body: body.clone(),
        usage: None,
        sandbox: None,
        reuse: false,
        config: Arc::from(config),
    };
    let target = RouteTarget {
        provider: "anthropic".into(),
        model: Some("claude-sonnet-4-5".into()),
        weight: 1,
        max_tokens_cap: None,
    };
    let call = || {
        support::call_through(&exec, rt.call_budget(&budgeter, env.clone(), &ctx, &target))
            .expect("call")
    };
    match call() {
        wit::BudgetDecision::Allow(g) => assert_eq!(g.limits.len(), 2),
        other => panic!("budget-limit should grant two limits: {other:?}"),
    }
    c.bench_function("budget_call/budget-limit", |b| b.iter(call));
    let warm = CallEnv {
        reuse: true,
        ..env.clone()
    };
    c.bench_function("budget_call/budget-limit (warm)", |b| {
        b.iter(|| {
            support::call_through(
                &exec,
                rt.call_budget(&budgeter, warm.clone(), &ctx, &target),
            )
            .expect("call")
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
