//! Per-request cost of the guardrail hooks, each in a fresh sandboxed instance:
//! `pii-redact` with every kind on and `content-rules` with 50 patterns over a 4 KiB
//! prompt, `output-check` on a JSON answer; and the host's side of a request guardrail
//! (reading the conversation out of the body, applying a rewrite, writing the body).
//!
//! Needs the first-party plugins built (`make plugins`).

mod support;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use std::sync::Arc;
use support::{context, plugin_path};
use tollgate::api::Api;
use tollgate::guard::{AnswerText, Guarded, RequestText};
use tollgate::plugins::{CallEnv, LoadedPlugin, PluginRuntime, SandboxLimits, Subject, wit};

/// A 4 KiB conversation of ordinary support-desk prose with a handful of things a
/// guardrail should find (two e-mail addresses, a phone number, a card number, an IP
/// address and an AWS key).
fn body_4k() -> String {
    let filler = "The customer reports that the export job stalls after the second batch, \
        and asks whether the retry policy can be tuned for large accounts. ";
    let mut user = String::from(
        "Hi team, please look at ticket 48213. Contact jane.doe@example.com or call \
         +1 415 555 0134. Card on file 4111 1111 1111 1111, origin 203.0.113.7. ",
    );
    while user.len() < 4000 {
        user.push_str(filler);
    }
    user.push_str("Old key AKIAIOSFODNN7EXAMPLE was rotated; cc ops@example.org. ");
    serde_json::json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "system": "You are a support assistant for Acme. Answer briefly and cite ticket numbers.",
        "messages": [
            {"role": "user", "content": "Can you summarise the ticket below?"},
            {"role": "assistant", "content": "Of course: paste it and I will summarise it."},
            {"role": "user", "content": user}
        ]
    })
    .to_string()
}

/// `content-rules` with 50 patterns in 50 rules (25 keyword phrases, 25 regular
/// expressions) and a prompt length cap; with `injection`, also the built-in
/// prompt-injection list.
fn rules_config(injection: bool) -> String {
    let mut rules = Vec::new();
    for i in 0..25 {
        rules.push(serde_json::json!({
            "name": format!("codename-{i}"),
            "action": "flag",
            "keywords": [format!("project falcon{i}")],
        }));
    }
    let patterns = [
        r"(?i)\bconfidential\b",
        r"\b\d{3}-\d{2}-\d{4}\b",
        r"(?i)internal use only",
        r"\bACME-\d{6}\b",
        r"(?i)do not (share|forward)",
    ];
    for i in 0..25 {
        rules.push(serde_json::json!({
            "name": format!("pattern-{i}"),
            "action": "flag",
            "patterns": [format!("{}{}", patterns[i % patterns.len()], "x".repeat(i / 5))],
        }));
    }
    let mut config = serde_json::json!({"rules": rules, "max_prompt_chars": 100000});
    if injection {
        config["injection"] = serde_json::json!({"action": "flag"});
    }
    config.to_string()
}

fn bench(c: &mut Criterion) {
    let exec = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let rt = PluginRuntime::new(SandboxLimits::default(), 64, None).expect("runtime");
    let body = body_4k();
    let ctx = context(body.as_bytes(), 3);
    let text = RequestText::parse(Api::Anthropic, body.as_bytes()).expect("a body");
    let convo = text.conversation().clone();
    let bytes: usize = convo.parts.iter().map(|p| p.text.len()).sum();
    assert!(
        (4000..4400).contains(&bytes),
        "a 4 KiB prompt: {bytes} bytes"
    );
    // As the gateway runs a tenant's plugin: with what it kept when its config was checked.
    let env = |plugin: &LoadedPlugin, name: &str, config: String| CallEnv {
        label: Arc::from(name),
        prepared: support::prepared(&exec, &rt, plugin, &config),
        config: Arc::from(config.as_str()),
        body: Bytes::from(body.clone()),
        usage: None,
        sandbox: None,
        reuse: false,
    };
    let load = |name: &str| {
        exec.block_on(rt.load_file(name, &plugin_path(&name.replace('-', "_"))))
            .unwrap_or_else(|e| panic!("{e}: build the plugins first (make plugins)"))
    };

    let mut group = c.benchmark_group("guardrail_call");
    let pii = load("pii-redact");
    let pii_env = env(&pii, "pii-redact", "{}".into());
    let call = || {
        support::call_through(
            &exec,
            rt.call_inspect(&pii, pii_env.clone(), &ctx, Subject::Request(&convo)),
        )
        .expect("call")
    };
    match call() {
        wit::Verdict::Rewrite(rw) => assert!(rw.edits.len() >= 6, "{rw:?}"),
        other => panic!("pii-redact should redact the bench prompt: {other:?}"),
    }
    group.bench_function("pii-redact (all kinds, 4 KiB)", |b| b.iter(call));

    let rules = load("content-rules");
    for (name, injection) in [
        ("content-rules (50 patterns, 4 KiB)", false),
        ("content-rules (50 patterns + injection list, 4 KiB)", true),
    ] {
        let rules_env = env(&rules, "content-rules", rules_config(injection));
        let call = || {
            support::call_through(
                &exec,
                rt.call_inspect(&rules, rules_env.clone(), &ctx, Subject::Request(&convo)),
            )
            .expect("call")
        };
        assert!(
            matches!(call(), wit::Verdict::Allow | wit::Verdict::Flag(_)),
            "content-rules should let the bench prompt through"
        );
        group.bench_function(name, |b| b.iter(call));
    }

    let check = load("output-check");
    let check_env = env(
        &check,
        "output-check",
        r#"{"schema":{"type":"object","required":["summary","tickets"],"properties":{"summary":{"type":"string"},"tickets":{"type":"array","items":{"type":"integer"}}}}}"#.into(),
    );
    let answer = AnswerText::parse(
        Api::Anthropic,
        br#"{"id":"m","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"{\"summary\":\"export stalls after batch two\",\"tickets\":[48213]}"}],"stop_reason":"end_turn","usage":{"input_tokens":900,"output_tokens":20}}"#,
        &Default::default(),
    )
    .expect("an answer");
    let Subject::Response(ans) = answer.subject() else {
        panic!("an answer")
    };
    let ans = ans.clone();
    let call = || {
        support::call_through(
            &exec,
            rt.call_inspect(&check, check_env.clone(), &ctx, Subject::Response(&ans)),
        )
        .expect("call")
    };
    assert!(
        matches!(call(), wit::Verdict::Allow),
        "the answer matches its schema"
    );
    group.bench_function("output-check (schema, JSON answer)", |b| b.iter(call));
    // The same plugin on an answer it need not check: the instance and the config alone.
    let idle_env = env(&check, "output-check", "{}".into());
    group.bench_function("output-check (no JSON asked)", |b| {
        b.iter(|| {
            support::call_through(
                &exec,
                rt.call_inspect(&check, idle_env.clone(), &ctx, Subject::Response(&ans)),
            )
            .expect("call")
        })
    });
    group.finish();

    // The host's side: the conversation read from the body, pii-redact's rewrite
    // applied and the body written back, without the plugin call.
    let wit::Verdict::Rewrite(rw) = exec
        .block_on(rt.call_inspect(&pii, pii_env.clone(), &ctx, Subject::Request(&convo)))
        .expect("call")
    else {
        panic!("a rewrite")
    };
    c.bench_function("guardrail_host/read, rewrite, write a 4 KiB body", |b| {
        b.iter(|| {
            let mut t = RequestText::parse(Api::Anthropic, body.as_bytes()).expect("a body");
            t.rewrite(rw.clone()).expect("applies");
            t.into_body().expect("rewritten")
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
