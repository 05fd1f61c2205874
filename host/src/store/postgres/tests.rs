//! The shared log against a real PostgreSQL (Debian's, installed by `make services`; or
//! the server named by `TOLLGATE_TEST_POSTGRES_URL`): rows written to one replica's
//! SQLite file are shipped, and every log view answers from PostgreSQL exactly what it
//! answers from SQLite.

use super::*;
use crate::store::{
    AnalyticsQuery, AttemptRecord, CapturedBodies, LogQuery, LogRecord, PluginDecision, Retention,
    StatusFilter, Store, UsageGroup, UsageQuery, WriterOptions,
};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::Ordering;

/// A throwaway cluster (stopped on drop) or the external server, with a fresh database.
struct Server {
    dir: Option<PathBuf>,
    bin: PathBuf,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = as_postgres(&self.bin.join("pg_ctl"))
                .args([
                    "-D",
                    &dir.join("data").to_string_lossy(),
                    "-m",
                    "immediate",
                    "stop",
                ])
                .output();
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// `tool`, run as the `postgres` user when we are root (initdb refuses root).
fn as_postgres(tool: &std::path::Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(tool);
        c
    } else {
        Command::new(tool)
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn run(mut c: Command) {
    let out = c.output().expect("run a PostgreSQL tool");
    assert!(
        out.status.success(),
        "{:?}: {}{}",
        c,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn server() -> Server {
    let db = format!(
        "tollgate_unit_{}",
        crate::ids::random_token(8).to_lowercase()
    );
    if let Ok(url) = std::env::var("TOLLGATE_TEST_POSTGRES_URL") {
        let mut c = Command::new("psql");
        c.args([&url, "-c", &format!("CREATE DATABASE {db}")]);
        run(c);
        let base = url.rsplit_once('/').map_or(url.as_str(), |(b, _)| b);
        return Server {
            dir: None,
            bin: PathBuf::new(),
            url: format!("{base}/{db}"),
        };
    }
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed: run `make services` (scripts/setup-services.sh)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .max()
        .expect("no PostgreSQL bin directory");
    let dir =
        std::env::temp_dir().join(format!("tollgate-pg-unit-{}", crate::ids::random_token(8)));
    std::fs::create_dir_all(&dir).expect("temp dir");
    if is_root() {
        run({
            let mut c = Command::new("chown");
            c.args(["postgres:postgres"]).arg(&dir);
            c
        });
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let data = dir.join("data");
    run({
        let mut c = as_postgres(&bin.join("initdb"));
        c.arg("-D").arg(&data);
        c.args([
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        c
    });
    let server = Server {
        dir: Some(dir.clone()),
        bin: bin.clone(),
        url: format!("postgres://postgres@127.0.0.1:{port}/{db}"),
    };
    run({
        let mut c = as_postgres(&bin.join("pg_ctl"));
        c.arg("-D").arg(&data).arg("-o").arg(format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            dir.display()
        ));
        c.arg("-l").arg(dir.join("log")).args(["-w", "start"]);
        c
    });
    run({
        let mut c = Command::new("psql");
        c.args([
            &format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            "-c",
            &format!("CREATE DATABASE {db}"),
        ]);
        c
    });
    server
}

/// A varied log: tenants, teams, users, metadata, statuses, models, endpoints, bodies
/// (one holding U+0000, which PostgreSQL cannot store), spread over two hours.
fn records(now: i64) -> Vec<LogRecord> {
    (0..60)
        .map(|i| {
            let tenant = ["acme", "globex", "init"][i % 3];
            let mut r = LogRecord {
                request_id: format!("req_{i:03}"),
                ts_ms: now - 7_200_000 + (i as i64) * 113_000,
                tenant_id: tenant.into(),
                key_id: (i % 4 != 0).then(|| format!("key_{}", i % 4)),
                trace_id: format!("trace_{}", i % 7),
                endpoint: ["messages", "chat_completions", "count_tokens", "messages"][i % 4]
                    .into(),
                team: (i % 5 != 0).then(|| ["eng", "sales"][i % 2].to_string()),
                user: (i % 3 == 1).then(|| "dev@acme.com".to_string()),
                metadata: crate::metadata::Metadata(
                    [
                        ("env", ["prod", "dev"][i % 2]),
                        ("project", ["x", "y", "z"][i % 3]),
                    ]
                    .into_iter()
                    .take(1 + i % 2)
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ),
                requested_model: Some(["claude-a", "gpt-b"][i % 2].into()),
                served_model: (i % 6 != 5).then(|| ["claude-a", "gpt-b", "claude-c"][i % 3].into()),
                provider: (i % 6 != 5).then(|| ["anthropic", "openai"][i % 2].into()),
                status: [200, 200, 429, 500, 200, 502][i % 6],
                stream: i % 2 == 0,
                latency_ms: 10 + (i as u64 * 37) % 400,
                ttft_ms: (i % 2 == 0).then_some(5 + i as u64),
                usage: crate::usage::Usage {
                    input_tokens: 100 + i as u64,
                    output_tokens: 7 * i as u64,
                    cache_read_tokens: (i % 3) as u64,
                    cache_write_tokens: (i % 2) as u64,
                },
                decisions: vec![PluginDecision {
                    plugin: "metadata-policy".into(),
                    outcome: "allow".into(),
                    detail: None,
                    annotations: vec![("k".into(), "v".into())],
                    micros: 12,
                    at_us: 1,
                    ..Default::default()
                }],
                attempts: vec![AttemptRecord {
                    provider: "anthropic".into(),
                    model: "claude-a".into(),
                    target: 0,
                    status: Some(200),
                    latency_ms: 9,
                    error: None,
                    at_us: 2,
                }],
                error: (i % 6 >= 2).then(|| format!("failure {i} ü")),
                cost_nano: 1_000_003 * i as u64,
                cost: Some(crate::pricing::CostBreakdown {
                    total_usd: i as f64 / 1000.0,
                    ..Default::default()
                }),
                bundle_version: (i % 2 == 0).then_some(3),
                platform_version: None,
                max_tokens: Some(256),
                body_bytes: 1000 + i as u32,
                message_count: 1 + (i % 3) as u32,
                admitted: i % 6 < 2,
                ..LogRecord::default()
            };
            if i % 10 == 0 {
                r.bodies = Some(Box::new(CapturedBodies {
                    request: bytes::Bytes::from(format!(
                        "{{\"n\":{i},\"text\":\"é\\u0000\u{0}\"}}"
                    )),
                    response: bytes::Bytes::from(format!("data: {i}\n\n")),
                    request_truncated: false,
                    response_truncated: i == 20,
                }));
            }
            r
        })
        .collect()
}

fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).expect("serialise")
}

/// A replica's local log holding `records(now)`, written by the real writer.
async fn local_log(now: i64) -> (PathBuf, Store) {
    let dir = std::env::temp_dir().join(format!("tollgate-ship-{}", crate::ids::random_token(8)));
    let local = Store::open(&dir).expect("sqlite");
    let writer = local
        .log_writer(WriterOptions::for_tests(25, Duration::from_millis(5)))
        .expect("writer");
    let tx = writer.sender();
    for r in records(now) {
        tx.send(r);
    }
    tokio::task::spawn_blocking(move || writer.shutdown())
        .await
        .expect("writer stops");
    (dir, local)
}

/// Ships `local`'s rows to `pg` until none are left (a shipper started and finished).
async fn ship_all(pg: &Arc<PgControl>, local: &Store, max_backlog: u64) {
    let shipper = ship::start(
        pg.clone(),
        local.path(),
        ship::ShipOptions {
            max_backlog,
            retention: Retention::default(),
        },
    )
    .expect("shipper");
    shipper.finish(Duration::from_secs(20)).await;
}

async fn connect(server: &Server) -> Arc<PgControl> {
    Arc::new(
        PgControl::connect(&server.url, 4, Duration::from_secs(5))
            .await
            .expect("postgres"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_log_view_answers_from_postgres_what_it_answers_from_sqlite() {
    let server = server();
    let now = crate::ids::now_ms();
    let (dir, local) = local_log(now).await;
    let pg = connect(&server).await;
    ship_all(&pg, &local, 1_000).await;
    assert_eq!(pg.shipping.shipped.load(Ordering::Relaxed), 60);
    assert_eq!(pg.shipping.dropped.load(Ordering::Relaxed), 0);

    // A second replica with an empty local file reads everything from PostgreSQL.
    let other_dir =
        std::env::temp_dir().join(format!("tollgate-ship-{}", crate::ids::random_token(8)));
    let shared = Store::open(&other_dir)
        .expect("sqlite")
        .with_postgres_arc(pg.clone());

    let h = now - 3_600_000;
    let queries = [
        LogQuery::default(),
        LogQuery {
            tenant: Some("acme".into()),
            ..Default::default()
        },
        LogQuery {
            meta: vec![("env".into(), "dev".into()), ("project".into(), "x".into())],
            ..Default::default()
        },
        LogQuery {
            model: Some("claude-a".into()),
            status: Some(StatusFilter::Range(400, 599)),
            ..Default::default()
        },
        LogQuery {
            status: Some(StatusFilter::Exact(429)),
            team: Some("eng".into()),
            ..Default::default()
        },
        LogQuery {
            user: Some("dev@acme.com".into()),
            key_id: Some("key_1".into()),
            provider: Some("openai".into()),
            ..Default::default()
        },
        LogQuery {
            search: Some("ace_3".into()),
            ..Default::default()
        },
        LogQuery {
            since_ms: Some(h),
            until_ms: Some(now),
            limit: Some(7),
            after: Some((h + 1_000_000, "req_zzz".into())),
            ..Default::default()
        },
        LogQuery {
            oldest_first: true,
            limit: Some(5),
            after: Some((now - 7_200_000 + 10 * 113_000, "req_010".into())),
            ..Default::default()
        },
    ];
    for q in queries {
        let a = local.query_logs(q.clone()).await.expect("sqlite query");
        let b = shared.query_logs(q.clone()).await.expect("postgres query");
        assert!(!a.is_empty() || q.search.is_some(), "{q:?} finds rows");
        assert_eq!(json(&a), json(&b), "{q:?}");
    }
    for by in [
        UsageGroup::None,
        UsageGroup::Team,
        UsageGroup::User,
        UsageGroup::Key,
        UsageGroup::Model,
        UsageGroup::Provider,
        UsageGroup::Metadata("project".into()),
    ] {
        for tenant in [None, Some("globex".to_string())] {
            let q = UsageQuery {
                tenant: tenant.clone(),
                by: by.clone(),
                since_ms: now - 7_000_000,
                until_ms: now,
            };
            let a = local.usage_report(q.clone()).await.expect("sqlite usage");
            let b = shared.usage_report(q).await.expect("postgres usage");
            assert!(!a.is_empty());
            assert_eq!(json(&a), json(&b), "usage by {by:?}");
            let q = AnalyticsQuery {
                tenant,
                by: by.clone(),
                since_ms: now - 7_200_000,
                until_ms: now,
                bucket_ms: 600_000,
                max_groups: 2,
            };
            let a = local.analytics(q.clone()).await.expect("sqlite chart");
            let b = shared.analytics(q).await.expect("postgres chart");
            assert_eq!(json(&a), json(&b), "analytics by {by:?}");
        }
    }
    for tenant in [None, Some("init".to_string())] {
        let a = local.traces(tenant.clone(), 0, 100).await.expect("sqlite");
        let b = shared.traces(tenant, 0, 100).await.expect("postgres");
        // The order of a trace's models is the engine's; compare them as sets.
        let norm = |v: Vec<crate::store::TraceSummary>| {
            v.into_iter()
                .map(|mut t| {
                    t.models.sort();
                    json(&t)
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(norm(a), norm(b));
    }
    for id in ["req_000", "req_020", "req_001"] {
        let a = local.get_log(id.into(), None).await.expect("sqlite");
        let b = shared.get_log(id.into(), None).await.expect("postgres");
        let (a, b) = (a.expect("row"), b.expect("row"));
        assert_eq!(json(&a), json(&b));
        assert_eq!(
            a.bodies.as_deref().map(json),
            b.bodies.as_deref().map(json).map(|mut v| {
                // U+0000 could not be stored; PostgreSQL holds U+FFFD in its place.
                if let Some(s) = v["request"].as_str() {
                    v["request"] = s.replace('\u{fffd}', "\u{0}").into();
                }
                v
            })
        );
    }
    let a = local
        .tenant_requests("acme".into(), 0, now, 100)
        .await
        .expect("sqlite");
    let b = shared
        .tenant_requests("acme".into(), 0, now, 100)
        .await
        .expect("postgres");
    assert_eq!(a.len(), b.len());
    assert_eq!(
        a.iter().filter(|r| r.bodies.is_some()).count(),
        b.iter().filter(|r| r.bodies.is_some()).count()
    );

    // The log as the fleet ledger's memory: a scope's counted usage in a window.
    use crate::ledger::fleet::UsageHistory;
    use crate::ledger::{Amount, ScopeKey, ScopeKind};
    let counted = |keep: &dyn Fn(&LogRecord) -> bool| {
        let mut sum = Amount::ZERO;
        for r in records(now).iter().filter(|r| {
            r.admitted && r.endpoint != "count_tokens" && !r.attempts.is_empty() && keep(r)
        }) {
            // What the ledger settles for a request (`budget::actual`).
            let u = &r.usage;
            sum += Amount {
                requests: 1,
                tokens: u.input_tokens
                    + u.output_tokens
                    + u.cache_read_tokens
                    + u.cache_write_tokens,
                cost_nano: r.cost_nano,
            };
        }
        sum
    };
    for (scope, keep) in [
        (
            ScopeKey::new("acme", ScopeKind::Tenant, "acme"),
            Box::new(|r: &LogRecord| r.tenant_id == "acme") as Box<dyn Fn(&LogRecord) -> bool>,
        ),
        (
            ScopeKey::new("globex", ScopeKind::Team, "sales"),
            Box::new(|r: &LogRecord| r.tenant_id == "globex" && r.team.as_deref() == Some("sales")),
        ),
        (
            ScopeKey::new("acme", ScopeKind::Metadata("env".into()), "prod"),
            Box::new(|r: &LogRecord| {
                r.tenant_id == "acme" && r.metadata.get("env") == Some("prod")
            }),
        ),
    ] {
        let whole = pg.usage(&scope, 0, now, 0).await.expect("history");
        let expected = counted(&*keep);
        assert_eq!(
            whole
                .iter()
                .map(|(_, a)| *a)
                .fold(Amount::ZERO, |x, y| x + y),
            expected
        );
        assert!(whole.len() <= 1 && expected != Amount::ZERO, "{scope:?}");
        let hourly = pg.usage(&scope, 0, now, 3_600_000).await.expect("history");
        assert!(hourly.len() >= 2, "{hourly:?}");
        assert_eq!(
            hourly
                .iter()
                .map(|(_, a)| *a)
                .fold(Amount::ZERO, |x, y| x + y),
            expected
        );
    }

    // Shipping again from the start writes nothing twice.
    local
        .with_conn(|c| Ok(c.execute("DELETE FROM log_shipping", [])?))
        .await
        .expect("reset the cursor");
    ship_all(&pg, &local, 1_000).await;
    // Every row was already there: none counted as shipped again, none dropped.
    assert_eq!(pg.shipping.shipped.load(Ordering::Relaxed), 60);
    assert_eq!(pg.shipping.dropped.load(Ordering::Relaxed), 0);
    let all = shared
        .query_logs(LogQuery {
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .expect("all");
    assert_eq!(all.len(), 60);
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(other_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_past_its_bound_drops_the_oldest_rows_and_counts_them() {
    let server = server();
    let (dir, local) = local_log(crate::ids::now_ms()).await;
    let pg = connect(&server).await;
    ship_all(&pg, &local, 25).await;
    assert_eq!(pg.shipping.dropped.load(Ordering::Relaxed), 35);
    assert_eq!(pg.shipping.shipped.load(Ordering::Relaxed), 25);
    let rows = pg
        .logs(crate::store::logs::log_query(
            crate::store::sql::Dialect::Postgres,
            &LogQuery {
                oldest_first: true,
                limit: Some(1000),
                ..Default::default()
            },
        ))
        .await
        .expect("rows");
    // The newest 25 made it; the oldest were the ones dropped.
    assert_eq!(rows.len(), 25);
    assert_eq!(rows[0].request_id, "req_035");
    let _ = std::fs::remove_dir_all(dir);
}

fn psql(url: &str, sql: &str) {
    let mut c = Command::new("psql");
    c.args([url, "-v", "ON_ERROR_STOP=1", "-c", sql]);
    run(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_waits_unless_a_row_itself_is_bad_and_then_only_that_row_is_dropped() {
    let server = server();
    let (dir, local) = local_log(crate::ids::now_ms()).await;
    let pg = connect(&server).await;
    // A refusal that is not about the data (as a read-only failover or a full disk
    // would answer): the rows wait, nothing is dropped.
    psql(
        &server.url,
        "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'maintenance' USING ERRCODE = '55000'; END $$ LANGUAGE plpgsql;
         CREATE TRIGGER refuse BEFORE INSERT ON request_logs FOR EACH STATEMENT EXECUTE FUNCTION refuse();",
    );
    // And one row the table will never take.
    psql(
        &server.url,
        "ALTER TABLE request_logs ADD CONSTRAINT not_seven CHECK (request_id <> 'req_007')",
    );
    let shipper = ship::start(
        pg.clone(),
        local.path(),
        ship::ShipOptions {
            max_backlog: 1_000,
            retention: Retention::default(),
        },
    )
    .expect("shipper");
    for _ in 0..100 {
        if pg.shipping.errors.load(Ordering::Relaxed) >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(pg.shipping.errors.load(Ordering::Relaxed) >= 2);
    assert_eq!(pg.shipping.shipped.load(Ordering::Relaxed), 0);
    assert_eq!(pg.shipping.dropped.load(Ordering::Relaxed), 0);
    assert_eq!(pg.shipping.backlog.load(Ordering::Relaxed), 60);
    // PostgreSQL takes writes again: everything arrives but the one bad row.
    psql(&server.url, "DROP TRIGGER refuse ON request_logs");
    shipper.finish(Duration::from_secs(20)).await;
    assert_eq!(pg.shipping.shipped.load(Ordering::Relaxed), 59);
    assert_eq!(pg.shipping.dropped.load(Ordering::Relaxed), 1);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_recorded_locally_while_postgres_was_away_reaches_it_later() {
    let server = server();
    let (dir, local) = local_log(crate::ids::now_ms()).await;
    let alert: crate::ledger::Alert = serde_json::from_value(serde_json::json!({
        "tenant": "acme", "budget": "team-daily", "scope": "team", "value": "eng",
        "metric": "cost", "period": "day", "window": "calendar", "threshold_pct": 80,
        "limit": 10.0, "used": 8.5, "window_start_ms": 0, "resets_at_ms": 0,
        "at_ms": crate::ids::now_ms(),
    }))
    .expect("an alert");
    // What `Store::record_alert` does when PostgreSQL does not answer.
    let a = alert.clone();
    local
        .with_conn(move |c| Ok(crate::ledger::record_alert(c, &a)?))
        .await
        .expect("recorded locally");
    let pg = connect(&server).await;
    ship_all(&pg, &local, 1_000).await;
    assert_eq!(
        pg.alerts(Some("acme"), 10).await.expect("alerts"),
        vec![alert]
    );
    let _ = std::fs::remove_dir_all(dir);
}
