//! Hot-path cost of budgets: the ledger's atomic check-and-reserve plus settle for a
//! request counted under five scopes with three limits, a usage read, and pricing a
//! request. None of these touch the store.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::Arc;
use tollgate::ledger::{Amount, Ledger, Limit, Metric, Period, ScopeKey, ScopeKind, Window};
use tollgate::pricing::Pricing;
use tollgate::usage::Usage;

fn key(kind: ScopeKind, value: &str) -> ScopeKey {
    ScopeKey {
        tenant: Arc::from("acme"),
        kind,
        value: Arc::from(value),
    }
}

fn limit(name: &str, scope: &ScopeKey, metric: Metric, period: Period, cap: f64) -> Limit {
    Limit {
        name: name.into(),
        scope: scope.clone(),
        metric,
        period,
        window: Window::Calendar,
        limit: cap,
        alert_at: vec![50, 80, 100],
    }
}

fn bench(c: &mut Criterion) {
    let scopes: Arc<[ScopeKey]> = Arc::from(vec![
        key(ScopeKind::Tenant, "acme"),
        key(ScopeKind::Team, "engineering"),
        key(ScopeKind::User, "dev@acme.com"),
        key(ScopeKind::Key, "key_bench"),
        key(ScopeKind::Metadata(Arc::from("project")), "apollo"),
    ]);
    let limits = vec![
        limit("team-daily", &scopes[1], Metric::Cost, Period::Day, 1e9),
        limit(
            "user-monthly",
            &scopes[2],
            Metric::Tokens,
            Period::Month,
            1e15,
        ),
        {
            let mut l = limit(
                "key-rpm",
                &scopes[3],
                Metric::Requests,
                Period::Minute,
                1e12,
            );
            l.window = Window::Rolling;
            l
        },
    ];
    let ledger = Ledger::new();
    let estimate = Amount {
        requests: 1,
        tokens: 1536,
        cost_nano: 18_000_000,
    };
    let actual = Amount {
        requests: 1,
        tokens: 700,
        cost_nano: 6_000_000,
    };
    let now = tollgate::ids::now_ms();
    c.bench_function("ledger/admit+settle (5 scopes, 3 limits)", |b| {
        b.iter(|| {
            let r = ledger
                .admit(scopes.clone(), limits.clone(), estimate, now)
                .expect("within limits");
            black_box(ledger.settle(r, actual, now))
        })
    });
    c.bench_function("ledger/read (rolling minute)", |b| {
        b.iter(|| black_box(ledger.read(&scopes[3], Period::Minute, Window::Rolling, now)))
    });
    let pricing = Pricing::builtin();
    let usage = Usage {
        input_tokens: 512,
        output_tokens: 200,
        cache_read_tokens: 1024,
        cache_write_tokens: 0,
    };
    c.bench_function("pricing/cost (dated model name)", |b| {
        b.iter(|| black_box(pricing.cost("anthropic", "claude-sonnet-4-5-20250929", &usage)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
