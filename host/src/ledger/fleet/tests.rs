//! The fleet ledger against a real `redis-server` (Debian's, installed by `make
//! services`; or the server named by `TOLLGATE_TEST_REDIS_URL`). Two `FleetLedger`s on
//! one server stand for two replicas.

use super::*;
use crate::ledger::ScopeKind;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};

/// A throwaway server on a free port, killed on drop.
struct Server {
    child: Option<Child>,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn server() -> Server {
    if let Ok(url) = std::env::var("TOLLGATE_TEST_REDIS_URL") {
        return Server { child: None, url };
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is not installed: run `make services` (scripts/setup-services.sh)");
    let server = Server {
        child: Some(child),
        url: format!("redis://127.0.0.1:{port}"),
    };
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return server;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("redis-server did not start on port {port}");
}

/// A replica's ledger and the alerts it fires.
fn replica_with_alerts(
    url: &str,
    lease_ms: u64,
) -> (
    Arc<FleetLedger>,
    tokio::sync::mpsc::UnboundedReceiver<Alert>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let opts = FleetOptions {
        url: url.to_string(),
        lease_ms,
        connect_timeout_ms: 300,
        timeout_ms: 500,
        unavailable: FaultMode::FailClosed,
        tenant_modes: HashMap::new(),
        max_backlog: 1_000,
        exact_rate_limit_max: 10_000,
    };
    let alerts: AlertFn = Arc::new(move |fired| {
        for a in fired {
            let _ = tx.send(a);
        }
    });
    let fleet = FleetLedger::connect(opts, alerts).expect("a fleet ledger");
    (fleet, rx)
}

fn replica(url: &str, lease_ms: u64) -> Arc<FleetLedger> {
    replica_with_alerts(url, lease_ms).0
}

/// A tenant name no other test (or earlier run on a shared server) uses.
fn tenant() -> String {
    format!("t{:x}", rand::random::<u64>())
}

fn limit(tenant: &str, kind: ScopeKind, value: &str, metric: Metric, period: Period) -> Limit {
    Limit {
        name: format!("{}-{}", metric.as_str(), period.as_str()),
        scope: ScopeKey::new(tenant, kind, value),
        metric,
        period,
        window: Window::Calendar,
        limit: 1.0,
        alert_at: Vec::new(),
        plugin: "test".into(),
    }
}

fn usd(nano_per_usd: f64) -> Amount {
    Amount {
        requests: 1,
        tokens: 10,
        cost_nano: (nano_per_usd * 1e9) as u64,
    }
}

/// Polls `f` until it holds (settlement is asynchronous); panics after two seconds.
async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} did not happen within 2 s");
}

#[tokio::test]
async fn usage_settled_in_a_limited_scope_is_counted_for_every_replica() {
    let s = server();
    let (a, b) = (replica(&s.url, 30_000), replica(&s.url, 30_000));
    let t = tenant();
    let team = ScopeKey::new(t.as_str(), ScopeKind::Team, "eng");
    let l = limit(&t, ScopeKind::Team, "eng", Metric::Cost, Period::Day);
    let now = crate::ids::now_ms();
    // The first settlement with the limit makes the scope count in its window; later
    // ones count there whichever limits they carry, with or without a hold.
    a.settle(
        None,
        std::slice::from_ref(&team),
        std::slice::from_ref(&l),
        usd(0.25),
        now,
    );
    a.settle(None, std::slice::from_ref(&team), &[], usd(0.5), now);
    eventually("the settlements", async || {
        b.readings(std::slice::from_ref(&l), now).await.ok() == Some(vec![(750_000_000, 0)])
    })
    .await;
}

#[tokio::test]
async fn a_plugins_usage_read_sees_the_fleets_counts_in_every_metric() {
    let s = server();
    let (a, b) = (replica(&s.url, 30_000), replica(&s.url, 30_000));
    let t = tenant();
    let team = ScopeKey::new(t.as_str(), ScopeKind::Team, "eng");
    let now = crate::ids::now_ms();
    let wait = Duration::from_secs(1);
    // Nobody asked for the team's day before: the fleet has no count of its past.
    let first = b
        .usage(&team, Period::Day, Window::Calendar, now, wait)
        .await
        .expect("redis answers");
    assert!(first.is_none());
    // The read registered the window: settlements from any replica count in it, in
    // every metric, without a limit on the scope.
    a.settle(None, std::slice::from_ref(&team), &[], usd(0.25), now);
    a.settle(None, std::slice::from_ref(&team), &[], usd(0.5), now);
    eventually("the settlements", async || {
        let r = b
            .usage(&team, Period::Day, Window::Calendar, now, wait)
            .await
            .ok()
            .flatten();
        r.is_some_and(|r| {
            r.settled
                == Amount {
                    requests: 2,
                    tokens: 20,
                    cost_nano: 750_000_000,
                }
                && r.reserved == Amount::ZERO
        })
    })
    .await;
    // A rolling window is its own: registered by its first read.
    let rolling = a
        .usage(&team, Period::Hour, Window::Rolling, now, wait)
        .await
        .expect("redis answers");
    assert!(rolling.is_none());
}

#[tokio::test]
async fn a_cost_cap_is_shared_and_a_dropped_hold_gives_its_estimate_back() {
    let s = server();
    let (a, b) = (replica(&s.url, 30_000), replica(&s.url, 30_000));
    let t = tenant();
    let scope = ScopeKey::new(t.as_str(), ScopeKind::Tenant, t.as_str());
    let l = limit(&t, ScopeKind::Tenant, &t, Metric::Cost, Period::Total);
    let scopes = [scope];
    let now = crate::ids::now_ms();
    let est = usd(0.6);
    let held = a
        .admit(&scopes, std::slice::from_ref(&l), est, now, Admit::BelowCap)
        .await
        .expect("0 of $1 used")
        .expect("a hold");
    // $0.60 held on replica A: B admits one more below the cap, not two.
    let second = b
        .admit(&scopes, std::slice::from_ref(&l), est, now, Admit::BelowCap)
        .await
        .expect("$0.60 of $1 used");
    match b
        .admit(&scopes, std::slice::from_ref(&l), est, now, Admit::BelowCap)
        .await
    {
        Err(FleetError::Refused(e)) => {
            assert_eq!(e.limit.name, l.name);
            assert!((e.current - 1.2).abs() < 1e-9, "{}", e.current);
            assert_eq!(e.resets_at_ms, i64::MAX);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let fits = a
        .admit(
            &scopes,
            std::slice::from_ref(&l),
            est,
            now,
            Admit::EstimateFits,
        )
        .await;
    assert!(matches!(fits, Err(FleetError::Refused(_))), "{fits:?}");
    drop(held);
    drop(second);
    eventually("the released estimates", async || {
        a.readings(std::slice::from_ref(&l), now).await.ok() == Some(vec![(0, 0)])
    })
    .await;
}

#[tokio::test]
async fn an_exact_rate_limit_holds_across_replicas_and_says_when_it_resets() {
    let s = server();
    let (a, b) = (replica(&s.url, 30_000), replica(&s.url, 30_000));
    let t = tenant();
    let scopes = [ScopeKey::new(t.as_str(), ScopeKind::User, "dev@acme.com")];
    let mut l = limit(
        &t,
        ScopeKind::User,
        "dev@acme.com",
        Metric::Requests,
        Period::Minute,
    );
    l.window = Window::Rolling;
    l.limit = 5.0;
    let now = crate::ids::now_ms();
    for i in 0..5 {
        let r = if i % 2 == 0 { &a } else { &b };
        let hold = r
            .admit(
                &scopes,
                std::slice::from_ref(&l),
                usd(0.0),
                now + i,
                Admit::BelowCap,
            )
            .await
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        r.settle(hold, &scopes, std::slice::from_ref(&l), usd(0.0), now + i);
    }
    match a
        .admit(
            &scopes,
            std::slice::from_ref(&l),
            usd(0.0),
            now + 10,
            Admit::BelowCap,
        )
        .await
    {
        // The first admission leaves the window a minute after it arrived.
        Err(FleetError::Refused(e)) => {
            assert_eq!(e.current, 5.0);
            assert_eq!(e.resets_at_ms, now + 60_000);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let later = now + 60_001;
    assert!(
        a.admit(
            &scopes,
            std::slice::from_ref(&l),
            usd(0.0),
            later,
            Admit::BelowCap
        )
        .await
        .is_ok()
    );
}

#[tokio::test]
async fn a_hold_whose_lease_is_not_renewed_expires() {
    let s = server();
    // Never started: nothing renews the lease, as on a replica that died.
    let dead = replica(&s.url, 200);
    let live = replica(&s.url, 30_000);
    let t = tenant();
    let scopes = [ScopeKey::new(t.as_str(), ScopeKind::Tenant, t.as_str())];
    let l = limit(&t, ScopeKind::Tenant, &t, Metric::Cost, Period::Total);
    let now = crate::ids::now_ms();
    let hold = dead
        .admit(
            &scopes,
            std::slice::from_ref(&l),
            usd(2.0),
            now,
            Admit::BelowCap,
        )
        .await
        .expect("admitted")
        .expect("a hold");
    std::mem::forget(hold); // a dead replica releases nothing
    let refused = live
        .admit(
            &scopes,
            std::slice::from_ref(&l),
            usd(0.1),
            now,
            Admit::BelowCap,
        )
        .await;
    assert!(
        matches!(refused, Err(FleetError::Refused(_))),
        "{refused:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let later = crate::ids::now_ms();
    assert_eq!(
        live.readings(std::slice::from_ref(&l), later).await,
        Ok(vec![(0, 0)])
    );
    assert!(
        live.admit(
            &scopes,
            std::slice::from_ref(&l),
            usd(0.1),
            later,
            Admit::BelowCap
        )
        .await
        .is_ok()
    );
}

#[tokio::test]
async fn a_threshold_fires_once_for_the_whole_fleet() {
    let s = server();
    let (a, mut rx_a) = replica_with_alerts(&s.url, 30_000);
    let (b, mut rx_b) = replica_with_alerts(&s.url, 30_000);
    let t = tenant();
    let scopes = [ScopeKey::new(t.as_str(), ScopeKind::Team, "eng")];
    let mut l = limit(&t, ScopeKind::Team, "eng", Metric::Cost, Period::Day);
    l.alert_at = vec![50, 80];
    let limits = std::slice::from_ref(&l);
    let now = crate::ids::now_ms();
    for (r, cost) in [
        (&a, 0.3),
        (&b, 0.3), // crosses 50%
        (&a, 0.1),
        (&b, 0.1), // crosses 80%
        (&a, 0.1),
    ] {
        r.settle(None, &scopes, limits, usd(cost), now);
        // One at a time, so the crossing replica is known.
        eventually("the settlement", async || {
            r.backlog_is_empty() && r.settling() == 0
        })
        .await;
    }
    let mut fired = Vec::new();
    while let Ok(x) = rx_a.try_recv() {
        fired.push(("a", x.threshold_pct));
    }
    while let Ok(x) = rx_b.try_recv() {
        fired.push(("b", x.threshold_pct));
    }
    assert_eq!(fired, vec![("b", 50), ("b", 80)]);
}

#[tokio::test]
async fn an_unreachable_redis_fails_fast_and_keeps_usage_for_later() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let gone = replica(&format!("redis://127.0.0.1:{port}"), 30_000);
    let t = tenant();
    let scopes = [ScopeKey::new(t.as_str(), ScopeKind::Tenant, t.as_str())];
    let l = limit(&t, ScopeKind::Tenant, &t, Metric::Cost, Period::Total);
    let now = crate::ids::now_ms();
    // A bound against a hang, not a speed check: the ledger's own timeout is 500 ms.
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        gone.admit(
            &scopes,
            std::slice::from_ref(&l),
            usd(0.1),
            now,
            Admit::BelowCap,
        ),
    )
    .await
    .expect("no hang");
    assert!(matches!(out, Err(FleetError::Unavailable(_))), "{out:?}");
    assert!(!gone.is_up());
    // Right after a failure, calls fail at once rather than each waiting for Redis.
    match gone
        .admit(
            &scopes,
            std::slice::from_ref(&l),
            usd(0.1),
            now,
            Admit::BelowCap,
        )
        .await
    {
        Err(FleetError::Unavailable(why)) => assert!(why.contains("retrying shortly"), "{why}"),
        other => panic!("expected a fast failure, got {other:?}"),
    }
    gone.settle(None, &scopes, &[], usd(0.1), now);
    eventually("the backlogged settlement", async || {
        !gone.backlog_is_empty()
    })
    .await;
}

#[tokio::test]
async fn a_settlement_sent_again_after_a_timeout_counts_once() {
    let s = server();
    let a = replica(&s.url, 30_000);
    let t = tenant();
    let scopes = [ScopeKey::new(t.as_str(), ScopeKind::Team, "eng")];
    let l = limit(&t, ScopeKind::Team, "eng", Metric::Cost, Period::Day);
    let now = crate::ids::now_ms();
    let job = a
        .settlement(None, &scopes, std::slice::from_ref(&l), usd(0.25), now)
        .expect("a settlement");
    // The first attempt ran in Redis though its caller gave up; the backlog retries it.
    assert!(a.send_settlement(job.clone()).await.is_ok());
    assert!(a.send_settlement(job).await.is_ok());
    assert_eq!(
        a.readings(std::slice::from_ref(&l), now).await,
        Ok(vec![(250_000_000, 0)])
    );
}

#[test]
fn key_segments_from_clients_cannot_collide() {
    let k = |v: &str| scope_id(&ScopeKey::new("t", ScopeKind::Team, v));
    assert_eq!(k("a:b"), "team:a%3Ab");
    assert_eq!(k("a%3Ab"), "team:a%253Ab");
    assert_ne!(k("a:b"), k("a%3Ab"));
    assert_eq!(escape("plain"), "plain");
}

#[tokio::test]
async fn a_rolling_window_counts_sub_buckets_and_says_when_it_frees() {
    let s = server();
    let (a, b) = (replica(&s.url, 30_000), replica(&s.url, 30_000));
    let t = tenant();
    let scopes = [ScopeKey::new(t.as_str(), ScopeKind::User, "dev")];
    let mut l = limit(&t, ScopeKind::User, "dev", Metric::Tokens, Period::Hour);
    l.window = Window::Rolling;
    l.limit = 100.0;
    let limits = std::slice::from_ref(&l);
    let t0 = (crate::ids::now_ms() / 60_000) * 60_000 + 5_000;
    let tokens = |n| Amount {
        requests: 1,
        tokens: n,
        cost_nano: 0,
    };
    // 60 tokens now, 50 two minutes later, on two replicas.
    a.settle(None, &scopes, limits, tokens(60), t0);
    eventually("the first settlement", async || a.settling() == 0).await;
    b.settle(None, &scopes, limits, tokens(50), t0 + 120_000);
    eventually("the second settlement", async || b.settling() == 0).await;
    let at = t0 + 180_000;
    assert_eq!(a.readings(limits, at).await, Ok(vec![(110, 0)]));
    match a
        .admit(&scopes, limits, tokens(1), at, Admit::BelowCap)
        .await
    {
        // The first sub-bucket (a minute wide for an hour) leaves the window an hour
        // after it ends; then 50 of 100 are used.
        Err(FleetError::Refused(e)) => {
            assert_eq!(e.current, 110.0);
            assert_eq!(e.resets_at_ms, (t0 / 60_000 + 1) * 60_000 + 3_600_000);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let later = (t0 / 60_000 + 1) * 60_000 + 3_600_000;
    assert_eq!(a.readings(limits, later).await, Ok(vec![(50, 0)]));
    assert!(
        a.admit(&scopes, limits, tokens(1), later, Admit::BelowCap)
            .await
            .is_ok()
    );
}

/// A request log that answers with fixed sums, and counts how often it was asked.
struct FakeHistory {
    per_bucket: Vec<(i64, Amount)>,
    asked: AtomicU64,
}

/// A log answering `per_bucket` to every question.
fn fake_log(per_bucket: Vec<(i64, Amount)>) -> Arc<FakeHistory> {
    Arc::new(FakeHistory {
        per_bucket,
        asked: AtomicU64::new(0),
    })
}

impl UsageHistory for FakeHistory {
    fn usage<'a>(
        &'a self,
        _scope: &'a ScopeKey,
        _since_ms: i64,
        _until_ms: i64,
        _bucket_ms: i64,
    ) -> crate::ledger::fleet::PastUsage<'a> {
        self.asked.fetch_add(1, Ordering::Relaxed);
        let out = self.per_bucket.clone();
        Box::pin(async move { Ok(out) })
    }
}

#[tokio::test]
async fn a_window_redis_starts_counting_late_is_seeded_once_from_the_log() {
    let s = server();
    let (a, b) = (replica(&s.url, 30_000), replica(&s.url, 30_000));
    // Past 1e14 nano-dollars Lua prints numbers with 14 digits: the seed must stay exact.
    let past = Amount {
        requests: 7,
        tokens: 7_000,
        cost_nano: 4_503_599_627_370_497,
    };
    let logs: Vec<Arc<FakeHistory>> = (0..2).map(|_| fake_log(vec![(0, past)])).collect();
    a.set_history(logs[0].clone());
    b.set_history(logs[1].clone());
    let t = tenant();
    let mut l = limit(&t, ScopeKind::Team, "eng", Metric::Cost, Period::Day);
    l.limit = 1e9;
    let team = [l.scope.clone()];
    let now = crate::ids::now_ms();
    // Both replicas meet the window at once: it is seeded once.
    let (ha, hb) = tokio::join!(
        a.admit(
            &team,
            std::slice::from_ref(&l),
            Amount::ZERO,
            now,
            Admit::BelowCap
        ),
        b.admit(
            &team,
            std::slice::from_ref(&l),
            Amount::ZERO,
            now,
            Admit::BelowCap
        ),
    );
    drop((ha.expect("admitted"), hb.expect("admitted")));
    let read = b
        .readings(std::slice::from_ref(&l), now)
        .await
        .expect("read");
    assert_eq!(read, vec![(past.cost_nano, 0)]);
    // A replica that saw the window registered does not ask the log again.
    let asked = logs[0].asked.load(Ordering::Relaxed);
    assert!(asked <= 1, "{asked}");
    a.admit(
        &team,
        std::slice::from_ref(&l),
        Amount::ZERO,
        now,
        Admit::BelowCap,
    )
    .await
    .expect("admitted");
    let read = a
        .readings(std::slice::from_ref(&l), now)
        .await
        .expect("read");
    assert_eq!(read, vec![(past.cost_nano, 0)]);
    assert_eq!(logs[0].asked.load(Ordering::Relaxed), asked);
    // Every metric of the window holds its past (a plugin's usage read sees them).
    let r = a
        .usage(
            &l.scope,
            Period::Day,
            Window::Calendar,
            now,
            Duration::from_secs(1),
        )
        .await
        .expect("redis answers")
        .expect("registered");
    assert_eq!(r.settled, past);
}

#[tokio::test]
async fn a_rolling_window_is_seeded_per_sub_bucket() {
    let s = server();
    let a = replica(&s.url, 30_000);
    let now = crate::ids::now_ms();
    let w = crate::ledger::rolling::window_len_ms(Period::Hour).expect("rolling hour") / 60;
    let cur = now.div_euclid(w);
    let one = Amount {
        requests: 1,
        tokens: 10,
        cost_nano: 1_000,
    };
    // Two sub-buckets inside the window, one long gone.
    a.set_history(fake_log(vec![
        (cur, one),
        (cur - 30, one),
        (cur - 500, one),
    ]));
    let t = tenant();
    let mut l = limit(&t, ScopeKind::Key, "k1", Metric::Tokens, Period::Hour);
    l.window = Window::Rolling;
    l.limit = 1e9;
    a.admit(
        std::slice::from_ref(&l.scope),
        std::slice::from_ref(&l),
        Amount::ZERO,
        now,
        Admit::BelowCap,
    )
    .await
    .expect("admitted");
    let read = a
        .readings(std::slice::from_ref(&l), now)
        .await
        .expect("read");
    assert_eq!(read, vec![(20, 0)]);
}

#[tokio::test]
async fn a_plugins_first_read_of_a_window_seeds_it_in_the_background() {
    let s = server();
    let a = replica(&s.url, 30_000);
    let past = Amount {
        requests: 3,
        tokens: 30,
        cost_nano: 3_000,
    };
    a.set_history(fake_log(vec![(0, past)]));
    let t = tenant();
    let scope = ScopeKey::new(t.as_str(), ScopeKind::User, "dev@acme.com");
    let now = crate::ids::now_ms();
    let wait = Duration::from_secs(1);
    // The first read answers locally and starts the seed; later ones see the past.
    let first = a
        .usage(&scope, Period::Month, Window::Calendar, now, wait)
        .await
        .expect("redis answers");
    assert!(first.is_none());
    eventually("the seed", async || {
        a.usage(&scope, Period::Month, Window::Calendar, now, wait)
            .await
            .ok()
            .flatten()
            .is_some_and(|r| r.settled == past)
    })
    .await;
}
