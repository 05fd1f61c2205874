//! Persistence: what survives a restart, pruning and unparsable rows.

use super::*;
use rusqlite::{Connection, OptionalExtension};

/// Settles `entries` in memory and writes them to `conn`, as the pipeline and the log
/// writer do.
fn record(ledger: &Ledger, conn: &mut Connection, entries: &[(Arc<[ScopeKey]>, Amount, i64)]) {
    let mut log = Vec::new();
    for (s, a, ts) in entries {
        let r = ledger
            .admit(s.clone(), vec![], Amount::ZERO, *ts, Admit::BelowCap)
            .expect("admit");
        ledger.settle(r, *a, *ts);
        log.push(LedgerEntry {
            scopes: s.clone(),
            amount: *a,
            ts_ms: *ts,
        });
    }
    let tx = conn.transaction().expect("tx");
    write_entries(&tx, &log).expect("write");
    tx.commit().expect("commit");
}

fn all_readings(ledger: &Ledger, keys: &[ScopeKey], now: i64) -> Vec<Reading> {
    let mut out = Vec::new();
    for k in keys {
        for p in Period::ALL {
            for w in [Window::Calendar, Window::Rolling] {
                out.push(ledger.read(k, p, w, now));
            }
        }
    }
    out
}

fn history() -> Vec<(Arc<[ScopeKey]>, Amount, i64)> {
    let user: Arc<[ScopeKey]> = Arc::from(vec![key(ScopeKind::User, "ann")]);
    let mut entries = Vec::new();
    // Spread over the last ~40 days, thickening towards now so every period has a
    // current and a previous bucket.
    for (i, back) in [
        40 * DAY_MS,
        9 * DAY_MS,
        2 * DAY_MS,
        3_700_000,
        90_000,
        30_000,
        1_000,
    ]
    .into_iter()
    .enumerate()
    {
        let a = Amount {
            requests: 1 + i as u64,
            tokens: 100 * (i as u64 + 1),
            cost_nano: 7_000_000 * (i as u64 + 1),
        };
        entries.push((scopes(), a, T0 - back));
        entries.push((scopes(), a, T0 - back + 1)); // coalesced into the same rows
        entries.push((user.clone(), a, T0 - back));
    }
    entries
}

#[test]
fn usage_survives_a_restart() {
    let mut conn = db();
    let ledger = Ledger::new();
    record(&ledger, &mut conn, &history());
    let mut keys = scopes().to_vec();
    keys.push(key(ScopeKind::User, "ann"));
    for now in [T0, T0 + 20_000, T0 + 61_000] {
        let loaded = load(&conn, now, LedgerCaps::default()).expect("load");
        assert_eq!(
            all_readings(&loaded, &keys, now),
            all_readings(&ledger, &keys, now)
        );
    }
    // Spot check: 7 settles per scope reached the total.
    let total = ledger.read(&team(), Period::Total, Window::Calendar, T0);
    assert_eq!(total.settled.requests, 2 * (1 + 2 + 3 + 4 + 5 + 6 + 7));
}

#[test]
fn prune_keeps_what_windows_read() {
    let mut conn = db();
    let ledger = Ledger::new();
    // In time order: the ledger's clock never runs backwards.
    let mut entries = vec![(scopes(), usd(3.0), T0 - 500 * DAY_MS)];
    entries.extend(history());
    record(&ledger, &mut conn, &entries);
    let rows = |conn: &Connection| -> i64 {
        conn.query_row("SELECT count(*) FROM usage_ledger", [], |r| r.get(0))
            .expect("count")
    };
    let before = rows(&conn);
    let deleted = prune(&conn, T0).expect("prune");
    assert!(deleted > 0);
    assert_eq!(rows(&conn), before - deleted as i64);
    let keys = scopes().to_vec();
    let loaded = load(&conn, T0, LedgerCaps::default()).expect("load");
    assert_eq!(
        all_readings(&loaded, &keys, T0),
        all_readings(&ledger, &keys, T0)
    );
    // The 40-day-old day bucket is kept as history, the 500-day-old one is gone.
    let day_rows = |ts: i64| -> i64 {
        conn.query_row(
            "SELECT count(*) FROM usage_ledger WHERE period = 'day' AND bucket = ?1",
            [bucket(Period::Day, ts)],
            |r| r.get(0),
        )
        .expect("count")
    };
    assert!(day_rows(T0 - 40 * DAY_MS) > 0);
    assert_eq!(day_rows(T0 - 500 * DAY_MS), 0);
    // Minutes are kept two hours (to rebuild a rolling hour after a restart), hours 26.
    let older = |period: &str, ts: i64, p: Period| -> i64 {
        conn.query_row(
            "SELECT count(*) FROM usage_ledger WHERE period = ?1 AND bucket < ?2",
            rusqlite::params![period, bucket(p, ts)],
            |r| r.get(0),
        )
        .expect("count")
    };
    assert_eq!(older("minute", T0 - 2 * 3_600_000, Period::Minute), 0);
    assert!(older("minute", T0 - 60_000, Period::Minute) > 0);
    assert_eq!(older("hour", T0 - 26 * 3_600_000, Period::Hour), 0);
    assert_eq!(prune(&conn, T0).expect("again"), 0);
}

#[test]
fn fired_alerts_survive_a_restart() {
    let conn = db();
    let ledger = Ledger::new();
    let l = limit(
        "daily",
        team(),
        Metric::Cost,
        Period::Day,
        Window::Calendar,
        1.0,
    );
    let r = ledger
        .admit(scopes(), vec![l.clone()], one(), T0, Admit::BelowCap)
        .expect("admit");
    let alerts = ledger.settle(r, usd(0.9), T0);
    assert_eq!(alerts.len(), 2);
    for a in &alerts {
        assert!(record_alert(&conn, a).expect("record"));
        assert!(!record_alert(&conn, a).expect("duplicate"));
    }
    let listed = list_alerts(&conn, Some("acme"), 10).expect("list");
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&alerts[0]) && listed.contains(&alerts[1]));
    assert_eq!(list_alerts(&conn, None, 1).expect("list").len(), 1);
    assert!(
        list_alerts(&conn, Some("beta"), 10)
            .expect("list")
            .is_empty()
    );

    // The usage rows never reached the disk, so after the restart the same spend
    // crosses 50% and 80% again: the recorded alerts must not fire twice.
    let restarted = load(&conn, T0 + 60_000, LedgerCaps::default()).expect("load");
    let r = restarted
        .admit(
            scopes(),
            vec![l.clone()],
            one(),
            T0 + 60_000,
            Admit::BelowCap,
        )
        .expect("admit");
    let again = restarted.settle(r, usd(1.0), T0 + 60_000);
    assert_eq!(
        again.iter().map(|a| a.threshold_pct).collect::<Vec<_>>(),
        vec![100]
    );
    // A fresh ledger without the records would have fired all three.
    let fresh = Ledger::new();
    let r = fresh
        .admit(scopes(), vec![l], one(), T0, Admit::BelowCap)
        .expect("admit");
    assert_eq!(fresh.settle(r, usd(1.0), T0).len(), 3);
}

#[test]
fn limits_seen_survive_a_restart() {
    let mut conn = db();
    let ledger = Ledger::new();
    let mut a = limit(
        "daily",
        team(),
        Metric::Cost,
        Period::Day,
        Window::Rolling,
        0.3,
    );
    a.alert_at = vec![];
    let b = limit(
        "proj",
        key(ScopeKind::Metadata("project".into()), "apollo"),
        Metric::Tokens,
        Period::Month,
        Window::Calendar,
        5e6,
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
    ledger.settle(r, usd(0.1), T0);
    let entry = LedgerEntry {
        scopes: scopes(),
        amount: usd(0.1),
        ts_ms: T0,
    };
    let tx = conn.transaction().expect("tx");
    write_limits(&tx, &ledger.take_new_limits(), T0).expect("limits");
    write_entries(&tx, &[entry]).expect("entries");
    tx.commit().expect("commit");
    let loaded = load(&conn, T0 + 5, LedgerCaps::default()).expect("load");
    assert_eq!(
        loaded.limits_seen(None, T0 + 5, 100).limits,
        ledger.limits_seen(None, T0 + 5, 100).limits
    );
    assert_eq!(loaded.limits_seen(None, T0, 100).limits.len(), 2);
    // Loaded limits are already stored: nothing new to write.
    assert!(loaded.take_new_limits().is_empty());
}

#[test]
fn load_skips_rows_it_cannot_parse() {
    let conn = db();
    let cur = bucket(Period::Day, T0);
    conn.execute_batch(&format!(
        "INSERT INTO usage_ledger VALUES ('acme', 'team', 'x', 'day', {cur}, 2, 20, 200);
         INSERT INTO usage_ledger VALUES ('acme', 'galaxy', 'x', 'day', {cur}, 1, 1, 1);
         INSERT INTO usage_ledger VALUES ('acme', 'metadata.', 'x', 'day', {cur}, 1, 1, 1);
         INSERT INTO usage_ledger VALUES ('acme', 'team', 'x', 'fortnight', {cur}, 1, 1, 1);
         INSERT INTO usage_ledger VALUES ('acme', 'team', 'y', 'day', {cur}, -5, 1e30, 'lots');
         INSERT INTO usage_ledger VALUES ('acme', 'team', 'z', 'day', 'soon', 1, 1, 1);
         INSERT INTO usage_ledger VALUES (x'07', 'user', 'x', 'day', {cur}, 1, 1, 1);
         INSERT INTO budget_alerts VALUES ('acme', 'b', 'team', 'x', 'day', {cur}, -1, 0, '{{}}');
         INSERT INTO budget_limits VALUES ('acme', 'b', 'team', 'x', 'not json', 0);
         INSERT INTO budget_limits VALUES ('acme', 'c', 'team', 'x', '{{\"metric\":\"usd\",\"period\":\"day\",\"window\":\"calendar\",\"limit\":1}}', 0);
         INSERT INTO budget_limits VALUES ('acme', 'd', 'team', 'x', '{{\"metric\":\"cost\",\"period\":\"day\",\"window\":\"calendar\",\"limit\":1}}', 0);"
    ))
    .expect("rows");
    let ledger = load(&conn, T0, LedgerCaps::default()).expect("load");
    let read = |v: &str| {
        ledger
            .read(&key(ScopeKind::Team, v), Period::Day, Window::Calendar, T0)
            .settled
    };
    assert_eq!(
        read("x"),
        Amount {
            requests: 2,
            tokens: 20,
            cost_nano: 200
        }
    );
    assert_eq!(
        read("y"),
        Amount {
            requests: 0,
            tokens: u64::MAX,
            cost_nano: 0
        }
    );
    assert_eq!(read("z"), Amount::ZERO);
    let seen = ledger.limits_seen(None, T0, 100).limits;
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].0.name.as_str(), seen[0].0.alert_at.len()),
        ("d", 0)
    );
    assert!(list_alerts(&conn, None, 10).expect("list").is_empty());
}

#[test]
fn a_batch_sums_each_period_bucket_across_minutes_and_scopes() {
    let mut conn = db();
    let team_only: Arc<[ScopeKey]> = Arc::from(vec![team()]);
    // 12:59:59.999, 13:00:00.000 and 13:00:30 on T0's day; the first two share the
    // day but neither the minute nor the hour.
    let late = T0 + 3_600_000 - 1;
    let entries = [
        LedgerEntry {
            scopes: scopes(),
            amount: usd(1.0),
            ts_ms: late,
        },
        LedgerEntry {
            scopes: team_only.clone(),
            amount: usd(2.0),
            ts_ms: late + 1,
        },
        LedgerEntry {
            scopes: team_only,
            amount: usd(4.0),
            ts_ms: late + 30_001,
        },
        // A minute of its own: were zero amounts written, its rows would be counted.
        LedgerEntry {
            scopes: scopes(),
            amount: Amount::ZERO,
            ts_ms: late + 120_000,
        },
    ];
    let tx = conn.transaction().expect("tx");
    write_entries(&tx, &entries).expect("entries");
    tx.commit().expect("commit");
    let stored = |scope: &str, period: Period, ts: i64| -> (i64, i64) {
        conn.query_row(
            "SELECT requests, cost_nano FROM usage_ledger
             WHERE tenant_id = 'acme' AND scope = ?1 AND period = ?2 AND bucket = ?3",
            rusqlite::params![scope, period.as_str(), bucket(period, ts)],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .expect("query")
        .unwrap_or((0, 0))
    };
    let cost = |d: f64| Metric::Cost.units_of(d) as i64;
    // The team: in all three entries.
    assert_eq!(stored("team", Period::Minute, late), (1, cost(1.0)));
    assert_eq!(stored("team", Period::Minute, late + 1), (2, cost(6.0)));
    assert_eq!(stored("team", Period::Hour, late), (1, cost(1.0)));
    assert_eq!(stored("team", Period::Hour, late + 1), (2, cost(6.0)));
    for p in [Period::Day, Period::Week, Period::Month, Period::Total] {
        assert_eq!(stored("team", p, late), (3, cost(7.0)), "{p:?}");
    }
    // The key: in the first entry only (the zero amount writes nothing).
    assert_eq!(stored("key", Period::Day, late), (1, cost(1.0)));
    assert_eq!(stored("key", Period::Minute, late + 1), (0, 0));
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM usage_ledger", [], |r| r.get(0))
        .expect("count");
    // Four scopes in 12:59's minute and hour, one (the team) in 13:00's, and one
    // bucket of each longer period per scope.
    assert_eq!(rows, 4 * 2 + 2 + 4 * 4);
}

#[test]
fn a_minute_lies_in_one_bucket_of_every_period() {
    // What `write_entries` relies on to sum per minute first: the start of `ts`'s
    // minute is in the same bucket of every period as `ts`, across month, year and
    // week boundaries, before 1970 and at the ends of the range.
    let march_1 = days_from_civil(2028, 3, 1) * DAY_MS;
    let new_year = days_from_civil(2027, 1, 1) * DAY_MS;
    let mut ts = vec![
        i64::MIN,
        i64::MIN + 1,
        i64::MAX,
        -1,
        0,
        -86_400_001,
        T0,
        T0 + 3_600_000 - 1,
        march_1 - 1,
        march_1,
        new_year - 1,
        new_year + 59_999,
    ];
    ts.extend((0..2_000).map(|i| T0 - 400 * DAY_MS + i * 17_280_001));
    for t in ts {
        let start = bucket_start_ms(Period::Minute, bucket(Period::Minute, t));
        for p in Period::ALL {
            assert_eq!(bucket(p, start), bucket(p, t), "{p:?} at {t}");
        }
    }
}
