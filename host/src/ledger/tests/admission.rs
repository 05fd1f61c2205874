//! Admission, settlement, alerts and the budget view, in memory.

use super::*;

#[test]
fn t0_is_the_documented_instant() {
    assert_eq!(T0, days_from_civil(2026, 11, 25) * DAY_MS + 12 * 3_600_000);
}

#[test]
fn ledger_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Ledger>();
    check::<Reservation>();
}

#[test]
fn a_request_limit_admits_exactly_up_to_the_cap() {
    let ledger = Ledger::new();
    let l = limit(
        "rpd",
        team(),
        Metric::Requests,
        Period::Day,
        Window::Calendar,
        10.0,
    );
    let mut held = Vec::new();
    let mut refusals = Vec::new();
    for i in 0..30 {
        match ledger.admit(scopes(), vec![l.clone()], one(), T0 + i, Admit::BelowCap) {
            Ok(r) => held.push(r),
            Err(e) => refusals.push(exceeded(e)),
        }
    }
    assert_eq!(held.len(), 10);
    assert_eq!(refusals.len(), 20);
    let e = &refusals[0];
    assert_eq!(e.current, 10.0);
    assert_eq!(e.limit, l);
    assert_eq!(e.resets_at_ms, days_from_civil(2026, 11, 26) * DAY_MS);
    assert!(!e.is_rate_limit());
    assert_eq!(e.retry_after_secs(T0), 12 * 3_600);
    // Refusals reserved nothing.
    let r = ledger.read(&team(), Period::Day, Window::Calendar, T0);
    assert_eq!(r.reserved.requests, 10);
    assert_eq!(r.settled, Amount::ZERO);
}

#[test]
fn concurrent_admits_overshoot_by_at_most_one_estimate() {
    let ledger = Arc::new(Ledger::new());
    let cap = 1.0;
    let estimate = usd(0.03);
    let l = limit(
        "daily",
        team(),
        Metric::Cost,
        Period::Day,
        Window::Calendar,
        cap,
    );
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (ledger, l) = (ledger.clone(), l.clone());
            std::thread::spawn(move || {
                let mut held = Vec::new();
                let mut admitted = 0;
                for i in 0..50 {
                    let now = T0 + i;
                    if let Ok(r) =
                        ledger.admit(scopes(), vec![l.clone()], estimate, now, Admit::BelowCap)
                    {
                        admitted += 1;
                        if (t + i) % 2 == 0 {
                            ledger.settle(r, estimate, now);
                        } else {
                            held.push(r);
                        }
                    }
                    let used = ledger.read(&team(), Period::Day, Window::Calendar, now);
                    assert!(used.current(Metric::Cost) <= cap + 0.03 + 1e-9);
                }
                (admitted, held)
            })
        })
        .collect();
    let mut admitted = 0;
    let mut held = Vec::new();
    for t in threads {
        let (n, h) = t.join().expect("thread");
        admitted += n;
        held.extend(h);
    }
    // 33 × $0.03 = $0.99 < $1.00 admits a 34th; then $1.02 refuses everything.
    assert_eq!(admitted, 34);
    let r = ledger.read(&team(), Period::Day, Window::Calendar, T0 + 50);
    assert_eq!(r.settled.cost_nano + r.reserved.cost_nano, 34 * 30_000_000);
    assert_eq!(r.reserved.requests, held.len() as u64);
    drop(held);
    let r = ledger.read(&team(), Period::Day, Window::Calendar, T0 + 50);
    assert_eq!(r.reserved, Amount::ZERO);
}

#[test]
fn dropping_a_reservation_releases_it() {
    let ledger = Ledger::new();
    let l = limit(
        "one",
        team(),
        Metric::Requests,
        Period::Minute,
        Window::Rolling,
        1.0,
    );
    let r = ledger
        .admit(scopes(), vec![l.clone()], one(), T0, Admit::BelowCap)
        .expect("first");
    assert_eq!(r.estimate(), one());
    assert_eq!(r.scopes().len(), 4);
    assert!(
        ledger
            .admit(scopes(), vec![l.clone()], one(), T0, Admit::BelowCap)
            .is_err()
    );
    drop(r);
    for k in scopes().iter() {
        assert_eq!(
            ledger.read(k, Period::Total, Window::Calendar, T0).reserved,
            Amount::ZERO
        );
    }
    let r = ledger
        .admit(scopes(), vec![l], one(), T0, Admit::BelowCap)
        .expect("released");
    assert!(ledger.settle(r, Amount::ZERO, T0).is_empty());
}

#[test]
fn settling_swaps_the_estimate_for_the_actual_in_every_scope() {
    let ledger = Ledger::new();
    let r = ledger
        .admit(scopes(), vec![], usd(1.0), T0, Admit::BelowCap)
        .expect("no limits");
    let actual = Amount {
        requests: 1,
        tokens: 4_321,
        cost_nano: 123,
    };
    assert!(ledger.settle(r, actual, T0).is_empty());
    for k in scopes().iter() {
        for p in Period::ALL {
            for w in [Window::Calendar, Window::Rolling] {
                let r = ledger.read(k, p, w, T0 + 1);
                assert_eq!(
                    (r.settled, r.reserved),
                    (actual, Amount::ZERO),
                    "{k:?} {p:?} {w:?}"
                );
            }
        }
    }
    let other = key(ScopeKind::User, "nobody");
    let r = ledger.read(&other, Period::Day, Window::Calendar, T0);
    assert_eq!(r.settled, Amount::ZERO);
    assert_eq!(r.resets_at_ms, days_from_civil(2026, 11, 26) * DAY_MS);
}

#[test]
fn the_first_limit_over_its_cap_is_reported() {
    let ledger = Ledger::new();
    let spend = |ledger: &Ledger, amount: Amount| {
        let r = ledger
            .admit(scopes(), vec![], Amount::ZERO, T0, Admit::BelowCap)
            .expect("admit");
        ledger.settle(r, amount, T0);
    };
    spend(&ledger, usd(2.0));
    let ok = limit(
        "roomy",
        team(),
        Metric::Cost,
        Period::Day,
        Window::Calendar,
        10.0,
    );
    let tokens = limit(
        "tokens",
        key(ScopeKind::Key, "key_1"),
        Metric::Tokens,
        Period::Hour,
        Window::Calendar,
        1_000.0,
    );
    let cost = limit(
        "cost",
        team(),
        Metric::Cost,
        Period::Week,
        Window::Calendar,
        2.0,
    );
    let e = ledger
        .admit(
            scopes(),
            vec![ok.clone(), tokens.clone(), cost.clone()],
            one(),
            T0,
            Admit::BelowCap,
        )
        .expect_err("over");
    let e = exceeded(e);
    assert_eq!(e.limit.name, "tokens");
    assert_eq!(e.current, 1_000.0);
    let e = ledger
        .admit(scopes(), vec![ok, cost], one(), T0, Admit::BelowCap)
        .expect_err("over");
    let e = exceeded(e);
    assert_eq!(e.limit.name, "cost");
    assert_eq!(e.resets_at_ms, days_from_civil(2026, 11, 30) * DAY_MS);
    assert!(
        e.message()
            .contains("$2.00 of $2.00 spent this week (calendar)")
    );
    assert_eq!(
        ledger
            .read(&team(), Period::Day, Window::Calendar, T0)
            .reserved,
        Amount::ZERO
    );
}

#[test]
fn alerts_fire_once_per_threshold_per_bucket() {
    let ledger = Ledger::new();
    let l = limit(
        "daily",
        team(),
        Metric::Cost,
        Period::Day,
        Window::Calendar,
        1.0,
    );
    let spend = |dollars: f64, now: i64| -> Vec<u32> {
        let r = ledger
            .admit(scopes(), vec![l.clone()], usd(0.01), now, Admit::BelowCap)
            .expect("admit");
        ledger
            .settle(r, usd(dollars), now)
            .into_iter()
            .map(|a| a.threshold_pct)
            .collect()
    };
    assert_eq!(spend(0.3, T0), Vec::<u32>::new());
    assert_eq!(spend(0.2, T0), vec![50]); // exactly 50% counts
    assert_eq!(spend(0.45, T0), vec![80]);
    assert_eq!(spend(0.3, T0), vec![100]);
    assert!(
        ledger
            .admit(scopes(), vec![l.clone()], one(), T0, Admit::BelowCap)
            .is_err()
    );

    // Next day: everything fires again, once.
    let next = T0 + DAY_MS;
    let r = ledger
        .admit(scopes(), vec![l.clone()], one(), next, Admit::BelowCap)
        .expect("new day");
    let alerts = ledger.settle(r, usd(1.5), next);
    assert_eq!(
        alerts.iter().map(|a| a.threshold_pct).collect::<Vec<_>>(),
        vec![50, 80, 100]
    );
    let a = &alerts[2];
    assert_eq!(
        (
            a.tenant.as_str(),
            a.budget.as_str(),
            a.scope.as_str(),
            a.value.as_str()
        ),
        ("acme", "daily", "team", "engineering")
    );
    assert_eq!(
        (a.metric, a.period, a.window, a.limit, a.used),
        (Metric::Cost, Period::Day, Window::Calendar, 1.0, 1.5)
    );
    assert_eq!(a.window_start_ms, days_from_civil(2026, 11, 26) * DAY_MS);
    assert_eq!(a.resets_at_ms, days_from_civil(2026, 11, 27) * DAY_MS);
    assert_eq!(a.at_ms, next);
    let json = serde_json::to_value(a).expect("json");
    assert_eq!(json["metric"], "cost");
    assert_eq!(json["threshold_pct"], 100);
}

#[test]
fn rolling_alerts_are_deduplicated_per_calendar_bucket() {
    let ledger = Ledger::new();
    let mut l = limit(
        "rpm",
        team(),
        Metric::Requests,
        Period::Minute,
        Window::Rolling,
        10.0,
    );
    l.alert_at = vec![50];
    let m0 = T0; // a minute boundary
    let go = |n: u64, now: i64| -> usize {
        let r = ledger
            .admit(scopes(), vec![l.clone()], one(), now, Admit::BelowCap)
            .expect("admit");
        let actual = Amount {
            requests: n,
            ..one()
        };
        ledger.settle(r, actual, now).len()
    };
    assert_eq!(go(4, m0 + 1_000), 0);
    assert_eq!(go(1, m0 + 30_000), 1); // 5 of 10 in the last minute: 50%
    // The 4 leave the window once its start passes their second (at m0 + 62 s).
    assert_eq!(go(4, m0 + 62_000), 1); // 1 + 4: 50% again, in the next calendar minute
    // The 1 at 30 s leaves at 91 s; crossing again in the same calendar minute is quiet.
    assert_eq!(go(1, m0 + 91_000), 0);
}

#[test]
fn limits_seen_are_sorted_filtered_and_reported_once() {
    let ledger = Ledger::new();
    let other = ScopeKey::new("beta", ScopeKind::Tenant, "beta");
    let a = limit(
        "b-daily",
        team(),
        Metric::Cost,
        Period::Day,
        Window::Calendar,
        5.0,
    );
    let b = limit(
        "a-rpm",
        key(ScopeKind::Key, "key_1"),
        Metric::Requests,
        Period::Minute,
        Window::Rolling,
        60.0,
    );
    let c = limit(
        "total",
        other.clone(),
        Metric::Tokens,
        Period::Total,
        Window::Calendar,
        1e6,
    );
    let r = ledger
        .admit(
            scopes(),
            vec![a.clone(), b.clone()],
            one(),
            T0,
            Admit::BelowCap,
        )
        .expect("admit");
    ledger.settle(r, usd(1.25), T0);
    let _ = ledger
        .admit(
            Arc::from(vec![other]),
            vec![c.clone()],
            one(),
            T0,
            Admit::BelowCap,
        )
        .expect("admit");
    assert_eq!(
        ledger.take_new_limits(),
        vec![a.clone(), b.clone(), c.clone()]
    );
    // Seen again unchanged: nothing new; changed: reported again.
    let mut a2 = a.clone();
    a2.limit = 6.0;
    let _ = ledger.admit(
        scopes(),
        vec![a.clone(), b.clone()],
        one(),
        T0,
        Admit::BelowCap,
    );
    assert!(ledger.take_new_limits().is_empty());
    let _ = ledger.admit(scopes(), vec![a2.clone()], one(), T0, Admit::BelowCap);
    assert_eq!(ledger.take_new_limits(), vec![a2.clone()]);

    let seen = ledger.limits_seen(None, T0, 100).limits;
    let names: Vec<_> = seen.iter().map(|(l, _)| l.name.as_str()).collect();
    assert_eq!(names, ["a-rpm", "b-daily", "total"]);
    assert_eq!(seen[1].0, a2);
    assert_eq!(seen[1].1.settled.cost_nano, 1_250_000_000);
    assert_eq!(seen[2].1.resets_at_ms, i64::MAX);
    assert_eq!(ledger.limits_seen(Some("beta"), T0, 100).limits.len(), 1);
    assert!(ledger.limits_seen(Some("gamma"), T0, 100).limits.is_empty());
    // The view is bounded, and says how much it left out.
    let first = ledger.limits_seen(None, T0, 2);
    assert_eq!(first.total, 3);
    let names: Vec<_> = first.limits.iter().map(|(l, _)| l.name.as_str()).collect();
    assert_eq!(names, ["a-rpm", "b-daily"]);
}
