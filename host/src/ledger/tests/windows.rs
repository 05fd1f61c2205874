//! Rolling windows against a fixed clock: never more than the cap in any window of the
//! limit's length, and refusals that say truthfully when the limit admits again.

use super::*;

fn rpm(cap: f64) -> Limit {
    limit(
        "key-rpm",
        key(ScopeKind::Key, "key_1"),
        Metric::Requests,
        Period::Minute,
        Window::Rolling,
        cap,
    )
}

/// Admits a request under `l` with `estimate` and settles it at once as `actual`.
fn spend(
    ledger: &Ledger,
    l: &Limit,
    estimate: Amount,
    actual: Amount,
    at: i64,
    mode: Admit,
) -> Result<(), Refused> {
    let r = ledger.admit(scopes(), vec![l.clone()], estimate, at, mode)?;
    ledger.settle(r, actual, at);
    Ok(())
}

/// Admits (and settles at once) a request at each instant; the admitted instants, and
/// for each refusal the `retry-after` it carried.
fn drive(ledger: &Ledger, l: &Limit, at: &[i64]) -> (Vec<i64>, Vec<(i64, u64)>) {
    let (mut admitted, mut refused) = (Vec::new(), Vec::new());
    for &now in at {
        match ledger.admit(scopes(), vec![l.clone()], one(), now, Admit::BelowCap) {
            Ok(r) => {
                ledger.settle(r, one(), now);
                admitted.push(now);
            }
            Err(e) => refused.push((now, exceeded(e).retry_after_secs(now))),
        }
    }
    (admitted, refused)
}

/// The most admissions inside any window of `len_ms`.
fn busiest_window(admitted: &[i64], len_ms: i64) -> usize {
    admitted
        .iter()
        .map(|&start| {
            admitted
                .iter()
                .filter(|&&t| t >= start && t < start + len_ms)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn five_per_rolling_minute_never_admits_six_in_any_minute() {
    // The reported attack: five at :45 of a UTC minute, then one a second into the next.
    let ledger = Ledger::new();
    let l = rpm(5.0);
    let at45 = T0 + 45_000;
    let attempts: Vec<i64> = std::iter::repeat_n(at45, 5)
        .chain((1..=90).map(|s| at45 + s * 1_000))
        .collect();
    let (admitted, refused) = drive(&ledger, &l, &attempts);
    assert_eq!(busiest_window(&admitted, 60_000), 5);
    // Exactly five: the burst, then the next one a minute after it.
    assert_eq!(&admitted[..5], &[at45; 5]);
    assert_eq!(admitted[5], at45 + 60_000);
    // Every refusal's retry-after points at (or just past, rounded up to a second)
    // the instant the burst leaves the window.
    for (now, retry) in refused.iter().filter(|(t, _)| *t < at45 + 60_000) {
        let free_at = now + *retry as i64 * 1_000;
        assert!(
            free_at >= at45 + 60_000 && free_at < at45 + 61_000,
            "at {now}: {retry}s"
        );
    }
}

#[test]
fn a_steady_trickle_is_held_to_the_cap_in_every_window() {
    let ledger = Ledger::new();
    let l = rpm(10.0);
    // Attempts every 700 ms for five minutes, starting off any boundary.
    let attempts: Vec<i64> = (0..430).map(|i| T0 + 13_337 + i * 700).collect();
    let (admitted, _) = drive(&ledger, &l, &attempts);
    assert_eq!(busiest_window(&admitted, 60_000), 10);
    // Exact: over five minutes it admits its full share, not less.
    assert!(admitted.len() >= 49, "{}", admitted.len());
}

#[test]
fn large_request_limits_count_sub_buckets_and_never_overshoot() {
    let ledger = Ledger::with_caps(LedgerCaps {
        exact_rate_limit_max: 3,
        ..LedgerCaps::default()
    });
    let l = rpm(20.0);
    let attempts: Vec<i64> = (0..600).map(|i| T0 + 45_000 + i * 300).collect();
    let (admitted, refused) = drive(&ledger, &l, &attempts);
    assert_eq!(busiest_window(&admitted, 60_000), 20);
    // Sub-buckets refuse at most one second's worth early: still close to the cap.
    assert!(admitted.len() >= 50, "{}", admitted.len());
    for (now, retry) in refused {
        assert!(retry <= 61, "at {now}: retry-after {retry}");
    }
}

#[test]
fn a_rolling_week_exhausted_minutes_ago_resets_a_week_after_the_spend() {
    let ledger = Ledger::new();
    let week = limit(
        "weekly",
        team(),
        Metric::Cost,
        Period::Week,
        Window::Rolling,
        1.0,
    );
    let spent_at = T0 + 3 * 60_000;
    spend(
        &ledger,
        &week,
        usd(0.5),
        usd(1.2),
        spent_at,
        Admit::BelowCap,
    )
    .expect("first");
    let now = spent_at + 5 * 60_000;
    let e = exceeded(
        spend(&ledger, &week, usd(0.01), usd(0.01), now, Admit::BelowCap).expect_err("exhausted"),
    );
    let sub = 7 * DAY_MS / 60;
    let frees = (spent_at / sub + 1) * sub + 7 * DAY_MS;
    assert_eq!(e.resets_at_ms, frees);
    let wait = e.retry_after_secs(now) as i64 * 1_000;
    assert!(
        wait >= 7 * DAY_MS - 5 * 60_000 - 1_000 && wait <= 7 * DAY_MS + sub,
        "{wait}"
    );
    // The budget view says the same, not a calendar boundary.
    let view = ledger.limits_seen(Some("acme"), now, 10).limits;
    let (_, reading) = view
        .iter()
        .find(|(l, _)| l.name == "weekly")
        .expect("listed");
    assert_eq!(reading.resets_at_ms, frees);
    // And admits again then, not before.
    assert!(
        ledger
            .admit(
                scopes(),
                vec![week.clone()],
                usd(0.01),
                frees - 1,
                Admit::BelowCap
            )
            .is_err()
    );
    assert!(
        ledger
            .admit(scopes(), vec![week], usd(0.01), frees, Admit::BelowCap)
            .is_ok()
    );
}

#[test]
fn estimate_fits_refuses_what_would_overshoot() {
    let ledger = Ledger::new();
    let daily = limit(
        "small",
        team(),
        Metric::Cost,
        Period::Day,
        Window::Calendar,
        0.10,
    );
    spend(
        &ledger,
        &daily,
        usd(0.02),
        usd(0.07),
        T0,
        Admit::EstimateFits,
    )
    .expect("fits");
    // $0.07 spent: a $0.05 estimate would overshoot $0.10 under estimate_fits...
    let e = exceeded(
        spend(
            &ledger,
            &daily,
            usd(0.05),
            usd(0.05),
            T0 + 1,
            Admit::EstimateFits,
        )
        .expect_err("would overshoot"),
    );
    assert_eq!(e.limit.name, "small");
    // ...while below_cap admits it (usage is still below the cap).
    assert!(
        ledger
            .admit(
                scopes(),
                vec![daily.clone()],
                usd(0.05),
                T0 + 1,
                Admit::BelowCap
            )
            .is_ok()
    );
    // A $0.03 estimate fits exactly.
    assert!(
        ledger
            .admit(
                scopes(),
                vec![daily],
                usd(0.03),
                T0 + 2,
                Admit::EstimateFits
            )
            .is_ok()
    );
}

#[test]
fn rolling_usage_before_a_restart_still_counts_after_it() {
    let mut conn = db();
    let ledger = Ledger::new();
    let l = limit(
        "hourly-tokens",
        team(),
        Metric::Tokens,
        Period::Hour,
        Window::Rolling,
        10_000.0,
    );
    let mut log = Vec::new();
    for i in 0..8 {
        let now = T0 + i * 5 * 60_000;
        let r = ledger
            .admit(scopes(), vec![l.clone()], one(), now, Admit::BelowCap)
            .expect("admit");
        let used = Amount {
            tokens: 1_000,
            ..one()
        };
        ledger.settle(r, used, now);
        log.push(LedgerEntry {
            scopes: scopes(),
            amount: used,
            ts_ms: now,
        });
    }
    let tx = conn.transaction().expect("tx");
    write_entries(&tx, &log).expect("entries");
    write_limits(&tx, &ledger.take_new_limits(), T0).expect("limits");
    tx.commit().expect("commit");
    // Restarted 40 minutes in: 8 000 tokens of the last hour are still there.
    let now = T0 + 40 * 60_000;
    let restarted = load(&conn, now, LedgerCaps::default()).expect("load");
    let before = ledger.read(&team(), Period::Hour, Window::Rolling, now);
    let after = restarted.read(&team(), Period::Hour, Window::Rolling, now);
    assert_eq!(before.settled.tokens, 8_000);
    assert!(after.settled.tokens >= before.settled.tokens, "{after:?}");
    // The first 1 000 leave on schedule (counted at the end of their stored minute).
    let later = T0 + 61 * 60_000;
    assert_eq!(
        restarted
            .read(&team(), Period::Hour, Window::Rolling, later)
            .settled
            .tokens,
        7_000
    );
}
