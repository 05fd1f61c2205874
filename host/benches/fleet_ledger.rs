//! The fleet ledger's admission on the request path: one Lua round trip to a local
//! `redis-server` (started here on a free port; Debian's, from `make services`) that
//! checks three limits and reserves under five scopes, against the in-process ledger's
//! `ledger/admit+settle` in the `ledger` bench. Settlement runs off the request path and
//! is measured separately.

use criterion::{Criterion, criterion_group, criterion_main};
use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tollgate::ledger::fleet::{FaultMode, FleetLedger, FleetOptions};
use tollgate::ledger::{Admit, Amount, Limit, Metric, Period, ScopeKey, ScopeKind, Window};

fn key(kind: ScopeKind, value: &str) -> ScopeKey {
    ScopeKey::new("acme", kind, value)
}

fn limit(name: &str, scope: &ScopeKey, metric: Metric, period: Period, window: Window) -> Limit {
    Limit {
        name: name.into(),
        scope: scope.clone(),
        metric,
        period,
        window,
        limit: 1e12,
        alert_at: vec![50, 80, 100],
        plugin: Arc::from("budget-limit"),
    }
}

fn bench(c: &mut Criterion) {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut server = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is not installed: run `make services`");
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let opts = FleetOptions {
        url: format!("redis://127.0.0.1:{port}"),
        lease_ms: 30_000,
        connect_timeout_ms: 500,
        timeout_ms: 1_000,
        unavailable: FaultMode::FailClosed,
        tenant_modes: HashMap::new(),
        max_backlog: 1_000,
        exact_rate_limit_max: 10_000,
    };
    let fleet = rt
        .block_on(async { FleetLedger::connect(opts, Arc::new(|_| {})).expect("a fleet ledger") });
    let scopes: Vec<ScopeKey> = vec![
        key(ScopeKind::Tenant, "acme"),
        key(ScopeKind::Team, "engineering"),
        key(ScopeKind::User, "dev@acme.com"),
        key(ScopeKind::Key, "key_bench"),
        key(ScopeKind::Metadata(Arc::from("project")), "apollo"),
    ];
    let limits = vec![
        limit(
            "team-daily",
            &scopes[1],
            Metric::Cost,
            Period::Day,
            Window::Calendar,
        ),
        limit(
            "user-monthly",
            &scopes[2],
            Metric::Tokens,
            Period::Month,
            Window::Calendar,
        ),
        limit(
            "key-rpm",
            &scopes[3],
            Metric::Requests,
            Period::Minute,
            Window::Rolling,
        ),
    ];
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
    let settle_all = |hold| {
        rt.block_on(async {
            fleet.settle(hold, &scopes, &limits, actual, tollgate::ids::now_ms());
            while fleet.settling() > 0 {
                tokio::task::yield_now().await;
            }
        })
    };
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).expect("a client");
    let mut ping = rt
        .block_on(client.get_multiplexed_async_connection())
        .expect("a connection");
    c.bench_function(
        "fleet/PING over loopback Redis (the round trip alone)",
        |b| {
            b.iter(|| {
                rt.block_on(redis::cmd("PING").query_async::<String>(&mut ping))
                    .expect("PONG")
            })
        },
    );
    c.bench_function(
        "fleet/admit over loopback Redis (5 scopes, 3 limits)",
        |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    let hold = rt
                        .block_on(fleet.admit(
                            &scopes,
                            &limits,
                            estimate,
                            tollgate::ids::now_ms(),
                            Admit::BelowCap,
                        ))
                        .expect("admitted");
                    spent += t.elapsed();
                    settle_all(hold);
                }
                spent
            })
        },
    );
    c.bench_function(
        "fleet/settle over loopback Redis (off the request path)",
        |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    settle_all(None);
                    spent += t.elapsed();
                }
                spent
            })
        },
    );
    // How long the script itself runs inside Redis, per call.
    if let Ok(stats) = rt.block_on(
        redis::cmd("INFO")
            .arg("commandstats")
            .query_async::<String>(&mut ping),
    ) {
        for line in stats.lines().filter(|l| l.starts_with("cmdstat_evalsha")) {
            eprintln!("redis {line}");
        }
    }
    let _ = server.kill();
    let _ = server.wait();
}

criterion_group!(benches, bench);
criterion_main!(benches);
