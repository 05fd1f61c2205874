//! Hot-path cost of budgets: the ledger's atomic check-and-reserve plus settle for a
//! request counted under five scopes with three limits, a usage read, and pricing a
//! request. None of these touch the store.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::Arc;
use tollgate::ledger::{Admit, Amount, Ledger, Limit, Metric, Period, ScopeKey, ScopeKind, Window};
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
        plugin: Arc::from("budget-limit"),
    }
}

/// The five scopes of a typical request.
fn request_scopes() -> Arc<[ScopeKey]> {
    Arc::from(vec![
        key(ScopeKind::Tenant, "acme"),
        key(ScopeKind::Team, "engineering"),
        key(ScopeKind::User, "dev@acme.com"),
        key(ScopeKind::Key, "key_bench"),
        key(ScopeKind::Metadata(Arc::from("project")), "apollo"),
    ])
}

/// One request's admission and settlement, as the pipeline does them.
fn admit_settle(
    ledger: &Ledger,
    scopes: &Arc<[ScopeKey]>,
    limits: &[Limit],
    estimate: Amount,
    actual: Amount,
    now: i64,
) -> usize {
    let r = ledger
        .admit(
            scopes.clone(),
            limits.to_vec(),
            estimate,
            now,
            Admit::BelowCap,
        )
        .expect("within limits");
    ledger.settle(r, actual, now).len()
}

fn bench(c: &mut Criterion) {
    let scopes = request_scopes();
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
            black_box(admit_settle(
                &ledger, &scopes, &limits, estimate, actual, now,
            ))
        })
    });
    // A rolling request limit small enough to be exact: one timestamp per admission
    // (on a key of its own: the one above has admitted far more than 10 000 a minute).
    let own_key: Arc<[ScopeKey]> = Arc::from(vec![
        key(ScopeKind::Tenant, "acme"),
        key(ScopeKind::Key, "key_exact"),
    ]);
    let exact = {
        let mut l = limit(
            "key-rpm-exact",
            &own_key[1],
            Metric::Requests,
            Period::Minute,
            10_000.0,
        );
        l.window = Window::Rolling;
        l
    };
    let mut tick = now;
    c.bench_function("ledger/admit+settle (exact rolling rate limit)", |b| {
        b.iter(|| {
            tick += 7; // under 10 000 a minute
            let r = ledger
                .admit(
                    own_key.clone(),
                    vec![exact.clone()],
                    estimate,
                    tick,
                    Admit::BelowCap,
                )
                .expect("within the limit");
            black_box(ledger.settle(r, actual, tick))
        })
    });
    // A neighbour tenant tracking 10 000 limits does not change another tenant's cost.
    let neighbour: Arc<[ScopeKey]> = Arc::from(vec![ScopeKey {
        tenant: Arc::from("noisy"),
        kind: ScopeKind::Tenant,
        value: Arc::from("noisy"),
    }]);
    for i in 0..10_000 {
        let l = limit(
            &format!("n{i}"),
            &neighbour[0],
            Metric::Requests,
            Period::Day,
            1e12,
        );
        let r = ledger
            .admit(neighbour.clone(), vec![l], estimate, now, Admit::BelowCap)
            .expect("neighbour");
        ledger.settle(r, actual, now);
    }
    let scopes = request_scopes();
    c.bench_function("ledger/admit+settle (neighbour tracks 10k limits)", |b| {
        b.iter(|| {
            black_box(admit_settle(
                &ledger, &scopes, &limits, estimate, actual, now,
            ))
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
