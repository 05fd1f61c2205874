//! What one tenant can make the ledger keep is bounded, and one tenant's shard never
//! waits on another's.

use super::*;

fn per_request_limit(i: usize) -> Limit {
    Limit {
        plugin: "hostile".into(),
        ..limit(
            &format!("limit-{i}"),
            team(),
            Metric::Requests,
            Period::Day,
            Window::Calendar,
            1e9,
        )
    }
}

#[test]
fn a_tenant_cannot_track_more_limits_than_its_cap() {
    let ledger = Ledger::with_caps(LedgerCaps {
        max_limits_per_tenant: 100,
        ..LedgerCaps::default()
    });
    // A plugin granting a new name on every request fills the cap, then is refused.
    let mut refused = None;
    for i in 0..150 {
        match ledger.admit(
            scopes(),
            vec![per_request_limit(i)],
            one(),
            T0,
            Admit::BelowCap,
        ) {
            Ok(r) => ledger.settle(r, one(), T0),
            Err(e) => {
                refused = Some((i, e));
                break;
            }
        };
    }
    let (i, e) = refused.expect("refused at the cap");
    assert_eq!(i, 100);
    match e {
        Refused::TooManyLimits { plugin, cap, .. } => {
            assert_eq!((&*plugin, cap), ("hostile", 100));
        }
        other => panic!("{other:?}"),
    }
    // Limits already tracked keep working, and the view is bounded.
    assert!(
        ledger
            .admit(
                scopes(),
                vec![per_request_limit(3)],
                one(),
                T0,
                Admit::BelowCap
            )
            .is_ok()
    );
    let view = ledger.limits_seen(Some("acme"), T0, 10);
    assert_eq!((view.limits.len(), view.total), (10, 100));
    // Another tenant is not affected by acme's cap.
    let beta: Arc<[ScopeKey]> = Arc::from(vec![ScopeKey::new("beta", ScopeKind::Tenant, "beta")]);
    let l = Limit {
        scope: beta[0].clone(),
        ..per_request_limit(0)
    };
    assert!(
        ledger
            .admit(beta, vec![l], one(), T0, Admit::BelowCap)
            .is_ok()
    );
}

#[test]
fn a_tenant_cannot_count_more_scope_values_than_its_cap() {
    let ledger = Ledger::with_caps(LedgerCaps {
        max_scopes_per_tenant: 50,
        ..LedgerCaps::default()
    });
    let mut refused_at = None;
    for i in 0..100 {
        let s: Arc<[ScopeKey]> = Arc::from(vec![
            key(ScopeKind::Tenant, "acme"),
            key(ScopeKind::User, &format!("user-{i}")),
        ]);
        if let Err(e) = ledger.admit(s, vec![], one(), T0, Admit::BelowCap) {
            assert!(matches!(e, Refused::TooManyScopes { cap: 50, .. }), "{e:?}");
            refused_at = Some(i);
            break;
        }
    }
    assert_eq!(refused_at, Some(49));
}

#[test]
fn one_tenants_work_never_waits_on_anothers_lock() {
    let ledger = Arc::new(Ledger::new());
    // Give acme a shard and hold its lock, as a slow admission would.
    let r = ledger
        .admit(scopes(), vec![], one(), T0, Admit::BelowCap)
        .expect("acme");
    ledger.settle(r, one(), T0);
    let acme = ledger.shard("acme").expect("shard");
    let held = acme.state.lock().expect("lock");
    let (tx, rx) = std::sync::mpsc::channel();
    let other = ledger.clone();
    std::thread::spawn(move || {
        let beta: Arc<[ScopeKey]> =
            Arc::from(vec![ScopeKey::new("beta", ScopeKind::Tenant, "beta")]);
        let l = Limit {
            scope: beta[0].clone(),
            ..limit(
                "b",
                team(),
                Metric::Requests,
                Period::Minute,
                Window::Rolling,
                5.0,
            )
        };
        let admitted = other.admit(beta.clone(), vec![l], one(), T0, Admit::BelowCap);
        let read = other.read(&beta[0], Period::Minute, Window::Rolling, T0);
        let _ = tx.send((admitted.is_ok(), read.reserved.requests));
    });
    // Beta's admission completes while acme's lock is held (a generous bound: it
    // would never complete if it needed acme's lock).
    let got = rx.recv_timeout(std::time::Duration::from_secs(10));
    drop(held);
    assert_eq!(got.expect("beta did not wait for acme"), (true, 1));
}

#[test]
fn loading_many_limits_keeps_the_most_recent_per_tenant() {
    let conn = db();
    let tx = conn.unchecked_transaction().expect("tx");
    let many: Vec<Limit> = (0..5_000).map(per_request_limit).collect();
    write_limits(&tx, &many[..4_000], T0 - 1_000).expect("older");
    write_limits(&tx, &many[4_000..], T0).expect("newer");
    tx.commit().expect("commit");
    let caps = LedgerCaps {
        max_limits_per_tenant: 1_000,
        ..LedgerCaps::default()
    };
    let loaded = load(&conn, T0, caps).expect("load");
    let view = loaded.limits_seen(Some("acme"), T0, 5_000);
    assert_eq!(view.total, 1_000);
    let newest = |l: &Limit| {
        l.name["limit-".len()..]
            .parse::<usize>()
            .is_ok_and(|i| i >= 4_000)
    };
    assert!(view.limits.iter().all(|(l, _)| newest(l)));
}

#[test]
fn idle_scope_values_make_room_for_new_ones() {
    let ledger = Ledger::with_caps(LedgerCaps {
        max_scopes_per_tenant: 40,
        ..LedgerCaps::default()
    });
    let user = |i: usize| -> Arc<[ScopeKey]> {
        Arc::from(vec![
            key(ScopeKind::Tenant, "acme"),
            key(ScopeKind::User, &format!("user-{i}")),
        ])
    };
    // A limit with a total on one user: that user is never forgotten.
    let lifetime = limit(
        "lifetime",
        key(ScopeKind::User, "user-0"),
        Metric::Requests,
        Period::Total,
        Window::Calendar,
        1e9,
    );
    let r = ledger
        .admit(user(0), vec![lifetime.clone()], one(), T0, Admit::BelowCap)
        .expect("first");
    ledger.settle(r, one(), T0);
    for i in 1..39 {
        let r = ledger
            .admit(user(i), vec![], one(), T0, Admit::BelowCap)
            .expect("fits");
        ledger.settle(r, one(), T0);
    }
    // Full, and nobody idle yet: refused.
    assert!(matches!(
        ledger.admit(user(100), vec![], one(), T0, Admit::BelowCap),
        Err(Refused::TooManyScopes { .. })
    ));
    // A second later the users without limits are idle: the oldest make room.
    let later = T0 + 1_000;
    let r = ledger
        .admit(user(100), vec![], one(), later, Admit::BelowCap)
        .expect("room made");
    ledger.settle(r, one(), later);
    // The user with the total limit kept its count.
    let r = ledger
        .admit(user(0), vec![lifetime], one(), later, Admit::BelowCap)
        .expect("still there");
    ledger.settle(r, one(), later);
    let total = ledger.read(
        &key(ScopeKind::User, "user-0"),
        Period::Total,
        Window::Calendar,
        later,
    );
    assert_eq!(total.settled.requests, 2);
}

#[test]
fn limits_no_plugin_grants_any_more_make_room() {
    let ledger = Ledger::with_caps(LedgerCaps {
        max_limits_per_tenant: 10,
        ..LedgerCaps::default()
    });
    let minute_limit = |i: usize| Limit {
        period: Period::Minute,
        window: Window::Rolling,
        ..per_request_limit(i)
    };
    for i in 0..10 {
        let r = ledger
            .admit(scopes(), vec![minute_limit(i)], one(), T0, Admit::BelowCap)
            .expect("fits");
        ledger.settle(r, one(), T0);
    }
    assert!(matches!(
        ledger.admit(
            scopes(),
            vec![minute_limit(10)],
            one(),
            T0 + 1,
            Admit::BelowCap
        ),
        Err(Refused::TooManyLimits { .. })
    ));
    // A minute and a day later, none of them was granted again: they are stale.
    let later = T0 + 60_000 + DAY_MS + 1;
    assert!(
        ledger
            .admit(
                scopes(),
                vec![minute_limit(10)],
                one(),
                later,
                Admit::BelowCap
            )
            .is_ok()
    );
    assert_eq!(ledger.limits_seen(Some("acme"), later, 100).total, 1);
}
