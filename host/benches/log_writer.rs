//! What logging a finished request costs: on the request path, encoding its row and
//! appending it to the usage journal (the durability the hardening asks for) and
//! queueing it; off the path, the writer's cost per row into SQLite.

use criterion::{Criterion, criterion_group, criterion_main};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tollgate::ledger::{Amount, Ledger, LedgerEntry, ScopeKey, ScopeKind};
use tollgate::metadata::Metadata;
use tollgate::store::{AttemptRecord, LogRecord, PluginDecision, Retention, Store, WriterOptions};

/// A row as a typical request leaves it: metadata, three plugin decisions, one attempt,
/// usage and its ledger entry.
fn row(i: u64) -> LogRecord {
    let decision = |p: &str| PluginDecision {
        plugin: p.into(),
        outcome: "allow".into(),
        detail: None,
        annotations: vec![("rule".into(), "engineering".into())],
        micros: 21,
        at_us: 1,
        ..Default::default()
    };
    LogRecord {
        request_id: format!("req_bench_{i}"),
        ts_ms: tollgate::ids::now_ms(),
        tenant_id: "acme".into(),
        key_id: Some("key_bench".into()),
        trace_id: format!("req_bench_{i}"),
        endpoint: "messages".into(),
        team: Some("engineering".into()),
        user: Some("dev@acme.com".into()),
        metadata: Metadata::from(vec![
            ("env".into(), "prod".into()),
            ("team".into(), "engineering".into()),
            ("user".into(), "dev@acme.com".into()),
        ]),
        requested_model: Some("claude-sonnet-4-5".into()),
        served_model: Some("claude-sonnet-4-5".into()),
        provider: Some("anthropic".into()),
        status: 200,
        latency_ms: 412,
        decisions: vec![
            decision("metadata-policy"),
            decision("model-router"),
            decision("budget-limit"),
        ],
        attempts: vec![AttemptRecord {
            provider: "anthropic".into(),
            model: "claude-sonnet-4-5".into(),
            target: 0,
            status: Some(200),
            latency_ms: 400,
            error: None,
            at_us: 1,
        }],
        cost_nano: 123_000,
        admitted: true,
        ledger: Some(LedgerEntry {
            scopes: Arc::from(vec![
                ScopeKey::new("acme", ScopeKind::Tenant, "acme"),
                ScopeKey::new("acme", ScopeKind::Team, "engineering"),
                ScopeKey::new("acme", ScopeKind::User, "dev@acme.com"),
                ScopeKey::new("acme", ScopeKind::Key, "key_bench"),
            ]),
            amount: Amount {
                requests: 1,
                tokens: 700,
                cost_nano: 123_000,
            },
            ts_ms: tollgate::ids::now_ms(),
        }),
        ..LogRecord::default()
    }
}

/// `n` rows numbered on from `*next`.
fn rows(n: u64, next: &mut u64) -> Vec<LogRecord> {
    (0..n)
        .map(|_| {
            *next += 1;
            row(*next)
        })
        .collect()
}

fn writer(dir: &std::path::Path, journal: bool) -> (Store, tollgate::store::LogWriter) {
    let store = Store::open(dir).expect("store");
    let w = store
        .log_writer(WriterOptions {
            batch_size: 256,
            flush: Duration::from_millis(200),
            ledger: Arc::new(Ledger::new()),
            retention: Retention::default(),
            observers: Vec::new(),
            max_queued: 16_384,
            journal_dir: journal.then(|| dir.join("journal")),
            counters: Default::default(),
        })
        .expect("writer");
    (store, w)
}

fn bench(c: &mut Criterion) {
    let base = std::env::temp_dir().join(format!("tollgate-bench-log-{}", std::process::id()));
    for (name, journal) in [("with journal", true), ("without journal", false)] {
        let dir = base.join(name.replace(' ', "-"));
        let (_store, w) = writer(&dir, journal);
        let tx = w.sender();
        let mut i = 0;
        // Only the sends are timed; the writer catches up between chunks, as it keeps up
        // with real traffic (a full queue would make sends cheaper or costlier than real).
        c.bench_function(&format!("log/send ({name}): request-path cost"), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(256);
                    left -= n;
                    let batch = rows(n, &mut i);
                    let t0 = Instant::now();
                    for r in batch {
                        tx.send(r);
                    }
                    timed += t0.elapsed();
                    tx.flush_blocking();
                }
                timed
            })
        });
        // Rows from send to committed in SQLite, per row, in batches of 256.
        c.bench_function(&format!("log/written per row ({name})"), |b| {
            b.iter_custom(|iters| {
                let batch = rows(iters, &mut i);
                let t0 = Instant::now();
                for r in batch {
                    tx.send(r);
                }
                tx.flush_blocking();
                t0.elapsed()
            })
        });
        w.shutdown();
    }
    let _ = std::fs::remove_dir_all(base);
}

criterion_group!(benches, bench);
criterion_main!(benches);
