//! The same policy (`team-hours`: models per team, office hours, route and daily cap)
//! written in Rust, Python (componentize-py) and JavaScript (componentize-js), side by
//! side: the policy hook in a fresh instance and in a warm one (`reuse_instance`), and,
//! printed before the runs, each component's size and compile time.
//!
//! Needs the plugins built (`make plugins`).

mod support;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{context, fresh_and_warm, plugin_path};
use tollgate::plugins::{CallEnv, Decision, PluginRuntime, SandboxLimits};

const CONFIG: &str = include_str!("../../plugins/team-hours/tests/config.json");

fn bench(c: &mut Criterion) {
    let exec = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    // Interpreters need more room than the 16 MiB / 5 ms default (see docs/plugins.md).
    let limits = SandboxLimits {
        deadline: Duration::from_millis(100),
        memory_bytes: 48 << 20,
    };
    let rt = PluginRuntime::new(limits, 16, None).expect("runtime");
    let body = Bytes::from_static(br#"{"model":"claude-sonnet-4-5","max_tokens":1024,"messages":[{"role":"user","content":"Hello"}]}"#);
    let ctx = context(&body, 1);
    let mut group = c.benchmark_group("team_hours_policy");
    for (lang, file) in [
        ("rust", "team_hours"),
        ("python", "team_hours_py"),
        ("js", "team_hours_js"),
    ] {
        let path = plugin_path(file);
        let size = std::fs::metadata(&path)
            .unwrap_or_else(|e| {
                panic!(
                    "{}: {e}: build the plugins first (make plugins)",
                    path.display()
                )
            })
            .len();
        let started = Instant::now();
        let plugin = exec
            .block_on(rt.load_file(lang, &path))
            .unwrap_or_else(|e| panic!("{e}"));
        let compile = started.elapsed();
        let prepared = support::prepared(&exec, &rt, &plugin, CONFIG);
        println!(
            "team-hours ({lang}): component {:.1} MiB, compiled and described in {:.2} s",
            size as f64 / f64::from(1 << 20),
            compile.as_secs_f64()
        );
        let env = CallEnv {
            label: Arc::from(lang),
            config: Arc::from(CONFIG),
            prepared,
            body: body.clone(),
            usage: None,
            sandbox: None,
            reuse: false,
        };
        match support::call_through(&exec, rt.call_policy(&plugin, env.clone(), &ctx)) {
            Ok(Decision::Allow | Decision::AllowWith(_) | Decision::Deny(_)) => {}
            Err(e) => panic!("{lang}: {e}"),
        }
        fresh_and_warm(
            &mut group,
            (
                format!("{lang} (fresh instance)"),
                format!("{lang} (warm instance)"),
            ),
            &env,
            |env| support::call_through(&exec, rt.call_policy(&plugin, env, &ctx)).expect("call"),
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
