"""A fleet of three replicas of the real binary sharing one PostgreSQL (`[store] kind =
"postgres"`: tenants, keys, admin tokens, bundles) and one Redis (`[ledger] kind =
"redis"`: budgets and rate limits), both throwaway servers started by the fixtures.

Budgets and rate limits hold across the fleet, a dead replica's reservations expire,
changes made on one replica take effect on the others within a second, and either
service going away has its defined outcome. Prices as in test_budgets: `tg-test-*`
costs $0.001 a token and a `[[mock tokens=10]]` request uses 14 tokens ($0.014).
"""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time

import anthropic
import openai
import pytest

from conftest import ADMIN_TOKEN, Gateway, Mock, Postgres, Redis, http, toml_inline

MODEL = "tg-test-model"
PROMPT = "[[mock tokens=10]]"
REQUEST_USD = 0.014
REPLICAS = 3
LEASE_MS = 3000


def budget_plugin(config: dict) -> str:
    return f'[[tenants.plugins]]\nname = "budget-limit"\nconfig = {toml_inline(config)}\n'


TENANTS = {
    "cap": budget_plugin({"limits": [{"name": "team-total", "scope": "team", "metric": "cost",
                                      "period": "total", "limit": 0.1, "alert_at": [50]}]}),
    "rpm": budget_plugin({"rate_limits": [{"name": "key-rpm", "scope": "key", "requests_per_minute": 60}]}),
    "lease": budget_plugin({"limits": [{"name": "tenant-total", "scope": "tenant", "metric": "cost",
                                        "period": "total", "limit": 0.1}]}),
    "closed": budget_plugin({"limits": [{"name": "tenant-daily", "scope": "tenant", "metric": "cost",
                                         "period": "day", "limit": 100}]}),
    "opened": 'ledger_unavailable = "fail_open"\n' + budget_plugin(
        {"limits": [{"name": "tenant-daily", "scope": "tenant", "metric": "cost", "period": "day", "limit": 100}]}),
    "free": "",
    "late": "",
    "cheap": budget_plugin({"limits": [{"name": "project-total", "scope": "metadata.project", "metric": "cost",
                                        "period": "total", "limit": 0.1,
                                        "downgrade": {"at": 50, "provider": "mock", "model": "tg-test-cheap"}}]}),
    "logs": "capture_bodies = true\n",
    "policy": "",
    # Every replica compiles metadata-policy at start, as a fleet that pins it would: the
    # bundle test then measures propagation, not a first compile of the component.
    "warm": '[[tenants.plugins]]\nname = "metadata-policy"\nconfig = { required = [] }\n',
}


def config(home, mock: Mock, redis: Redis, pg: Postgres) -> str:
    tenants = "".join(f'\n[[tenants]]\nid = "{t}"\n{p}' for t, p in TENANTS.items())
    return f"""
listen = "127.0.0.1:0"
data_dir = "{home / 'data'}"
default_provider = "mock"

[logs]
flush_ms = 50

[store]
kind = "postgres"
url = "{pg.url}"
timeout_ms = 1000
resync_ms = 500

[ledger]
kind = "redis"
url = "{redis.url}"
lease_ms = {LEASE_MS}
timeout_ms = 500
connect_timeout_ms = 300

[[pricing]]
model = "tg-test-*"
input = 1000.0
output = 1000.0

[[providers]]
id = "mock"
kind = "anthropic"
base_url = "{mock.url}"
{tenants}
"""


@pytest.fixture(scope="module")
def upstream():
    m = Mock("fleet-upstream", flavor="anthropic")
    yield m
    m.process.stop()


@pytest.fixture(scope="module")
def redis(tmp_path_factory):
    r = Redis(tmp_path_factory.mktemp("redis"))
    yield r
    r.stop()


@pytest.fixture(scope="module")
def pg():
    p = Postgres()
    yield p
    p.close()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, upstream, redis, pg):
    tmp = tmp_path_factory.mktemp("fleet")
    homes = [tmp / f"replica-{n}" for n in range(REPLICAS)]
    for h in homes:
        h.mkdir()
    # Started together: the schema migrations run once, under PostgreSQL's advisory lock.
    with concurrent.futures.ThreadPoolExecutor(REPLICAS) as pool:
        gws = list(pool.map(lambda h: Gateway(h, config(h, upstream, redis, pg)), homes))
    yield gws
    for g in gws:
        g.stop()
    for g in gws:
        assert "panicked" not in g.process.output(), g.process.output()


def authenticates(g: Gateway, secret: str) -> int:
    """The status of a request that checks the key and costs nothing (the model list)."""
    return http("GET", f"{g.url}/v1/models", headers={"authorization": f"Bearer {secret}"})[0]


def keys(fleet: list[Gateway], tenant: str) -> list[str]:
    """One key, made on the first replica, once every replica knows it."""
    secret = fleet[0].create_key(tenant, name=f"{tenant}-key")
    for g in fleet:
        within(1.0, lambda g=g: authenticates(g, secret) == 200, f"the key on {g.url}")
    return [secret] * len(fleet)


def within(seconds: float, ok, what: str) -> float:
    """Polls `ok` until it holds; fails if that takes longer than `seconds` (the
    propagation bound under test). Returns how long it took."""
    started = time.monotonic()
    while not ok():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"{what}: not within {seconds} s")
        time.sleep(0.02)
    return time.monotonic() - started


def post(g: Gateway, key: str, content: str = PROMPT, meta: dict | None = None, max_tokens: int = 10,
         timeout: float = 30):
    headers = {"authorization": f"Bearer {key}", "anthropic-version": "2023-06-01"}
    if meta:
        headers["x-portkey-metadata"] = json.dumps(meta)
    body = {"model": MODEL, "max_tokens": max_tokens, "messages": [{"role": "user", "content": content}]}
    return http("POST", f"{g.url}/v1/messages", body, headers, timeout=timeout)


def fleet_budget(g: Gateway, tenant: str, budget: str) -> dict | None:
    status, _, body = g.admin("GET", f"/budgets?tenant={tenant}")
    assert status == 200, body
    rows = [b for b in body["data"] if b["budget"] == budget]
    return rows[0] if rows else None


def wait_fleet_spent(fleet: list[Gateway], tenant: str, budget: str, at_least: float, timeout: float = 10):
    """Every replica's view of the budget once the fleet's spend reached `at_least` and
    nothing is reserved any more (settlement runs after the response)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = [fleet_budget(g, tenant, budget) for g in fleet]
        if all(r and r["spent"] >= at_least - 1e-9 and r["reserved"] == 0 for r in rows):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"{tenant}/{budget} never reached {at_least} on every replica: {rows}")
        time.sleep(0.05)


def test_a_cost_cap_holds_across_replicas_under_300_concurrent_requests(fleet):
    ks = keys(fleet, "cap")
    meta = {"team": "engineering"}
    # $0.07 of $0.10 spent, spread over the replicas.
    for i in range(5):
        status, _, body = post(fleet[i % REPLICAS], ks[i % REPLICAS], meta=meta)
        assert status == 200, body
    rows = wait_fleet_spent(fleet, "cap", "team-total", 5 * REQUEST_USD)
    # Every replica reads the fleet's count, not its own share of it.
    assert {round(r["spent"], 6) for r in rows} == {round(5 * REQUEST_USD, 6)}, rows
    assert {r["counted_by"] for r in rows} == {"fleet"}
    # The 50% alert fired once for the fleet, and every replica lists that one alert.
    def alerts(g):
        status, _, body = g.admin("GET", "/alerts?tenant=cap")
        assert status == 200, body
        return [(a["budget"], a["threshold_pct"], a["at_ms"]) for a in body["data"]]
    within(5.0, lambda: len(alerts(fleet[0])) == 1, "the fleet's alert")
    assert alerts(fleet[0]) == alerts(fleet[1]) == alerts(fleet[2])
    assert alerts(fleet[0])[0][:2] == ("team-total", 50)

    # Slow enough that all 300 are decided while the admitted ones are still running.
    content = "[[mock tokens=10 delay_ms=5000]]"
    body_len = len(json.dumps({"model": MODEL, "max_tokens": 10,
                               "messages": [{"role": "user", "content": content}]}).encode())
    reservation = (body_len // 4 + 10) * 0.001

    def one(i):
        status, _, body = post(fleet[i % REPLICAS], ks[i % REPLICAS], content, meta)
        return status, body

    with concurrent.futures.ThreadPoolExecutor(100) as pool:
        results = list(pool.map(one, range(300)))
    statuses = [s for s, _ in results]
    admitted = statuses.count(200)
    assert statuses.count(429) == 300 - admitted, statuses
    refusal = next(b for s, b in results if s == 429)
    assert refusal["error"]["type"] == "budget_exceeded_error"
    assert "team-total" in refusal["error"]["message"]
    # Replicas that each saw only their own third would admit about three times this.
    assert 1 <= admitted <= 1 + int((0.1 - 5 * REQUEST_USD) / reservation), admitted
    rows = wait_fleet_spent(fleet, "cap", "team-total", 5 * REQUEST_USD + admitted * 0.01)
    for r in rows:
        assert r["spent"] <= 0.1 + reservation + 1e-9, (r, reservation, admitted)
        assert r["reserved"] == 0, r


def test_a_budget_downgrade_reads_the_fleets_usage_not_one_replicas(fleet):
    key = keys(fleet, "cheap")[0]
    meta = {"project": "apollo"}
    # Four requests, one replica after another: $0.056 of $0.10 for the fleet, at most
    # $0.028 on any one replica (below the 50% downgrade threshold there).
    for i in range(4):
        status, headers, body = post(fleet[i % REPLICAS], key, meta=meta)
        assert status == 200, body
        assert headers["x-tollgate-model"] == MODEL, (i, headers)
        wait_fleet_spent(fleet, "cheap", "project-total", (i + 1) * REQUEST_USD)
    # The budget plugin's `usage` read answers from the fleet: every replica downgrades.
    for g in fleet:
        status, headers, body = post(g, key, meta=meta)
        assert status == 200, body
        assert headers["x-tollgate-model"] == "tg-test-cheap", (g.url, headers)
    status, headers, _ = post(fleet[1], key, meta={"project": "zeus"})
    assert headers["x-tollgate-model"] == MODEL


def test_a_budget_granted_later_counts_the_spend_its_window_already_had(fleet):
    key = keys(fleet, "late")[0]
    # Spend before any limit exists: no replica's ledger in Redis counts it yet.
    ids = []
    for i in range(3):
        status, headers, body = post(fleet[i % REPLICAS], key)
        assert status == 200, body
        ids.append(headers["request-id"])
    for g in fleet:
        within(5.0, lambda g=g: logged_ids(g, f"tenant=late&model={MODEL}") == sorted(ids), f"the rows on {g.url}")
    bundle = {"plugins": [{"name": "budget-limit", "config": {"limits": [
        {"name": "tenant-daily", "scope": "tenant", "metric": "cost", "period": "day", "limit": 10}]}}]}
    status, _, v = fleet[0].admin("PUT", "/tenants/late/bundle", bundle)
    assert status == 201, v
    # As one gateway would: the day's window holds the earlier spend (seeded from the
    # shared log by the first admission that meets it), then this request's.
    posted = []

    def admitted_with_limit():
        status, _, body = post(fleet[1], key)
        assert status == 200, body
        posted.append(1)
        return fleet_budget(fleet[1], "late", "tenant-daily") is not None
    within(5.0, admitted_with_limit, "the bundle's limit")
    # The three logged before count, and the one that met the limit; those posted
    # while the bundle was on its way count too unless their rows had not reached the
    # shared log when the window was seeded (the shipping lag). Nothing counts twice.
    rows = wait_fleet_spent(fleet, "late", "tenant-daily", 4 * REQUEST_USD)
    allowed = {round(n * REQUEST_USD, 6) for n in range(4, 4 + len(posted))}
    assert {round(r["spent"], 6) for r in rows} <= allowed, (rows, len(posted))


def test_a_per_minute_key_rate_limit_holds_fleet_wide(fleet):
    ks = keys(fleet, "rpm")

    def one(i):
        return post(fleet[i % REPLICAS], ks[i % REPLICAS])

    with concurrent.futures.ThreadPoolExecutor(30) as pool:
        results = list(pool.map(one, range(90)))
    statuses = [s for s, _, _ in results]
    assert statuses.count(200) == 60, statuses
    assert statuses.count(429) == 30, statuses
    _, headers, body = next(r for r in results if r[0] == 429)
    assert body["error"]["type"] == "rate_limit_error"
    assert "key-rpm" in body["error"]["message"]
    assert 1 <= int(headers["retry-after"]) <= 61
    # Another key has a minute of its own, on any replica.
    assert post(fleet[2], fleet[2].create_key("rpm", name="second"))[0] == 200


def test_a_replica_killed_holding_reservations_frees_them_when_its_leases_end(fleet, upstream):
    ks = keys(fleet, "lease")
    victim = fleet[2]
    # Three slow requests on the victim hold three estimates (~$0.04 each): the $0.10
    # cap is taken by reservations alone.
    slow = "[[mock tokens=10 delay_ms=60000]]"
    outcomes: list = []

    def hold():
        try:
            outcomes.append(post(victim, ks[2], slow, timeout=90)[0])
        except OSError as e:
            outcomes.append(e)

    threads = [threading.Thread(target=hold, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
        time.sleep(0.3)
    deadline = time.monotonic() + 10
    while True:
        row = fleet_budget(fleet[0], "lease", "tenant-total")
        if row and row["reserved"] >= 0.1:
            break
        assert time.monotonic() < deadline, row
        time.sleep(0.05)
    status, _, body = post(fleet[0], ks[0])
    assert status == 429, body
    assert body["error"]["type"] == "budget_exceeded_error"

    victim.stop(9)
    killed_at = time.monotonic()
    while True:
        status, _, body = post(fleet[0], ks[0])
        if status == 200:
            break
        assert status == 429, body
        # The leases end LEASE_MS after their last renewal; the next admission frees them.
        assert time.monotonic() - killed_at < LEASE_MS / 1000 + 5, "the dead replica's reservations never expired"
        time.sleep(0.2)
    row = wait_fleet_spent([fleet[0]], "lease", "tenant-total", REQUEST_USD)[0]
    assert row["spent"] <= REQUEST_USD + 1e-9, row
    victim.start()


def test_redis_unreachable_fails_closed_or_open_per_tenant_and_recovers(fleet, redis):
    if redis.external:
        pytest.skip("stops the Redis it runs against; needs the throwaway server")
    g = fleet[0]
    closed, opened, free = (g.create_key(t, name=f"{t}-key") for t in ("closed", "opened", "free"))
    assert post(g, closed)[0] == 200
    redis.stop()
    try:
        started = time.monotonic()
        status, _, body = post(g, closed)
        elapsed = time.monotonic() - started
        assert status == 503, body
        assert body["error"]["type"] == "overloaded_error"
        assert "budget store is unavailable" in body["error"]["message"]
        assert elapsed < 5, elapsed  # bounded by [ledger] timeout_ms, never a hang
        # The OpenAI shape of the same refusal.
        oc = openai.OpenAI(base_url=f"{g.url}/v1", api_key=closed, max_retries=0)
        with pytest.raises(openai.InternalServerError) as e:
            oc.chat.completions.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": PROMPT}])
        assert e.value.status_code == 503
        # fail_open admits on the replica's own ledger; a tenant without budgets never asks.
        ac = anthropic.Anthropic(base_url=g.url, api_key=opened, max_retries=0)
        out = ac.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": PROMPT}])
        assert out.usage.output_tokens == 10
        assert post(g, free)[0] == 200
        _, _, metrics = http("GET", f"{g.url}/metrics", headers={"authorization": "Bearer tga-test-admin-token"})
        assert "\ntollgate_ledger_redis_up 0\n" in metrics
        assert "\ntollgate_ledger_admitted_locally_total 1\n" in metrics
    finally:
        redis.start()
    # Back without a restart: the closed tenant is served again, and the usage the open
    # tenant ran up during the outage reaches Redis from the backlog.
    deadline = time.monotonic() + 15
    while post(g, closed)[0] != 200:
        assert time.monotonic() < deadline, g.process.output()
        time.sleep(0.2)
    # This throwaway Redis restarted empty: what it counts is the backlog and this one.
    assert post(g, opened)[0] == 200
    wait_fleet_spent([g], "opened", "tenant-daily", 2 * REQUEST_USD)
    for gw in fleet:
        assert gw.process.proc.poll() is None, gw.process.output()


# --- changes on one replica take effect on every replica within a second ----------------------

def test_a_key_made_on_one_replica_works_on_all_and_its_revocation_reaches_all(fleet):
    rec = fleet[0].key_record("free", name="roaming")
    for g in fleet[1:]:
        within(1.0, lambda g=g: authenticates(g, rec["secret"]) == 200, f"the new key on {g.url}")
    status, _, body = fleet[1].admin("POST", f"/keys/{rec['id']}/revoke")
    assert status == 200, body
    for g in (fleet[0], fleet[2]):
        within(1.0, lambda g=g: authenticates(g, rec["secret"]) == 401, f"the revocation on {g.url}")
    status, _, body = post(fleet[0], rec["secret"])
    assert status == 401 and "revoked" in body["error"]["message"], body


def test_a_bundle_applied_on_one_replica_decides_the_next_request_on_another(fleet):
    key = keys(fleet, "policy")[0]
    assert post(fleet[2], key)[0] == 200
    bundle = {"plugins": [{"name": "metadata-policy", "config": {"required": ["env"]}}]}
    status, _, v = fleet[0].admin("PUT", "/tenants/policy/bundle", bundle)
    assert status == 201, v

    last: list = []

    def refused() -> bool:
        status, _, body = post(fleet[2], key)
        last[:] = [status, body]
        return status == 400 and "env" in body["error"]["message"]

    try:
        within(1.0, refused, "the bundle on replica 3")
    except AssertionError as e:
        raise AssertionError(f"{e}; its last answer: {last}") from None
    assert post(fleet[2], key, meta={"env": "prod"})[0] == 200
    # Every replica lists the same versions, and the log row names the version.
    for g in fleet:
        _, _, versions = g.admin("GET", "/tenants/policy/bundle/versions")
        assert [x["version"] for x in versions["data"]] == [v["version"]], versions
    status, headers, _ = post(fleet[2], key, meta={"env": "dev"})
    assert status == 200
    assert fleet[2].wait_log(headers["request-id"])["bundle_version"] == v["version"]


def test_tenants_and_admin_tokens_are_shared_and_a_revoked_token_stops_everywhere(fleet):
    status, _, t = fleet[1].admin("POST", "/tenants", {"id": "newco", "name": "NewCo"})
    assert status == 201, t
    _, _, listed = fleet[2].admin("GET", "/tenants")
    assert "newco" in [x["id"] for x in listed["data"]], listed
    status, _, tok = fleet[2].admin("POST", "/tenants/newco/admin-tokens", {"name": "ops"})
    assert status == 201, tok

    def as_token(g: Gateway) -> int:
        return http("GET", f"{g.url}/admin/v1/tenants/newco",
                    headers={"authorization": f"Bearer {tok['token']}"})[0]

    for g in fleet:
        within(1.0, lambda g=g: as_token(g) == 200, f"the token on {g.url}")
    assert fleet[2].admin("POST", f"/admin-tokens/{tok['id']}/revoke")[0] == 200
    for g in fleet:
        within(1.0, lambda g=g: as_token(g) == 401, f"the revoked token on {g.url}")


def logged_ids(g: Gateway, query: str) -> list[str]:
    status, _, body = g.admin("GET", f"/logs?{query}&limit=1000")
    assert status == 200, body
    return sorted(r["request_id"] for r in body["data"])


def test_logs_usage_traces_and_analytics_answer_the_same_from_every_replica(fleet):
    key = keys(fleet, "logs")[0]
    run = f"run-{time.time_ns()}"
    ids = []
    for i in range(9):
        status, headers, body = post(fleet[i % REPLICAS], key, content=f"{PROMPT} #{i}",
                                     meta={"run": run, "team": f"t{i % 2}"})
        assert status == 200, body
        ids.append(headers["request-id"])
    # Each replica wrote three rows; every replica lists all nine within seconds.
    for g in fleet:
        within(5.0, lambda g=g: logged_ids(g, f"tenant=logs&meta=run%3D{run}") == sorted(ids),
               f"the fleet's rows on {g.url}")
        assert logged_ids(g, f"tenant=logs&meta=run%3D{run}&team=t1") == sorted(ids[1::2])
    # One request in detail, bodies included, from a replica that did not serve it.
    status, _, detail = fleet[2].admin("GET", f"/logs/{ids[0]}")
    assert status == 200, detail
    assert detail["metadata"] == [["run", run], ["team", "t0"]] or dict(detail["metadata"]) == {"run": run, "team": "t0"}
    assert f"{PROMPT} #0" in detail["bodies"]["request"], detail["bodies"]
    assert detail["bodies"]["response"], detail["bodies"]
    views = []
    for g in fleet:
        _, _, usage = g.admin("GET", "/usage?tenant=logs&by=metadata.run&since=1h")
        _, _, teams = g.admin("GET", "/usage?tenant=logs&by=team&since=1h")
        _, _, chart = g.admin("GET", "/analytics?tenant=logs&by=metadata.run&since=1h&bucket=1m")
        _, _, traces = g.admin("GET", "/traces?tenant=logs&since=1h&limit=100")
        views.append((usage["data"], teams["data"], chart["series"], traces["data"]))
    assert views[0] == views[1] == views[2]
    ours = [r for r in views[0][0] if r["group"] == run]
    assert len(ours) == 1 and ours[0]["requests"] == 9 and ours[0]["cost_usd"] > 0, views[0][0]
    # (The key checks' model listings are usage without a team.)
    assert {r["group"]: r["requests"] for r in views[0][1] if r["group"]} == {"t0": 5, "t1": 4}
    charted = [x for x in views[0][2] if x["group"] == run]
    assert len(charted) == 1 and charted[0]["total"]["requests"] == 9, views[0][2]
    assert {t["trace_id"] for t in views[0][3]} >= set(ids)


def test_postgres_restarted_under_load_keeps_serving_and_admin_writes_fail_clearly(fleet, pg):
    if pg.external:
        pytest.skip("restarts the PostgreSQL it runs against; needs the throwaway server")
    key = keys(fleet, "free")[0]
    stop = threading.Event()
    statuses: list[int] = []
    served: list[str] = []

    def load():
        i = 0
        while not stop.is_set():
            status, headers, _ = post(fleet[i % REPLICAS], key)
            statuses.append(status)
            if status == 200:
                served.append(headers["request-id"])
            i += 1

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    try:
        time.sleep(0.3)
        pg.stop()
        time.sleep(0.5)
        # Cached keys and bundles keep serving; an admin write says why it cannot.
        assert post(fleet[1], key)[0] == 200
        status, _, body = fleet[0].admin("POST", "/tenants/free/keys", {"name": "during-outage"})
        assert status == 503, body
        assert body["error"]["type"] == "overloaded_error"
        assert "PostgreSQL" in body["error"]["message"]
    finally:
        pg.start()
    # Back without a restart: writes work again and reach every replica.
    deadline = time.monotonic() + 15
    while True:
        status, _, rec = fleet[0].admin("POST", "/tenants/free/keys", {"name": "after-outage"})
        if status == 201:
            break
        assert time.monotonic() < deadline, rec
        time.sleep(0.2)
    for g in fleet:
        within(5.0, lambda g=g: authenticates(g, rec["secret"]) == 200, f"the new key on {g.url}")
    stop.set()
    worker.join(10)
    assert statuses and set(statuses) == {200}, sorted(set(statuses))
    # No log row of a finished request is lost: those served while PostgreSQL was down
    # waited in their replica's local store and are in the shared log once it is back.
    wanted = set(served)
    deadline = time.monotonic() + 15
    while True:
        stored = set(pg.psql(pg.db, "SELECT request_id FROM request_logs WHERE tenant_id = 'free'").split())
        if wanted <= stored:
            break
        assert time.monotonic() < deadline, f"{len(wanted - stored)} of {len(wanted)} rows missing"
        time.sleep(0.2)
    for g in fleet:
        assert g.process.proc.poll() is None, g.process.output()
        _, _, metrics = http("GET", f"{g.url}/metrics", headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
        assert "\ntollgate_log_ship_dropped_total 0\n" in metrics, metrics
        assert "\ntollgate_log_ship_backlog 0\n" in metrics, metrics
