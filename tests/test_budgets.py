"""Budgets, rate limits and cost tracking (the budget-limit plugin and the host's usage
ledger), driven through the official `anthropic` and `openai` SDKs against the real
binary and a mock upstream.

Prices are pinned by `[[pricing]]` overrides so every figure is exact: `tg-test-*` models
cost $1000 per million tokens in and out ($0.001 a token). A `[[mock tokens=10]]` prompt
is 18 characters, which the mock counts as 4 input tokens, and it answers with 10 output
tokens: 14 tokens, $0.014 a request.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anthropic
import openai
import pytest

from conftest import Gateway, Mock, http, tollgate, toml_inline, ADMIN_TOKEN

MODEL = "tg-test-model"
CHEAP = "tg-cheap-model"
PROMPT = "[[mock tokens=10]]"
REQUEST_USD = 0.014
SECRET = "whsec-test-secret"


class Webhook:
    """A local alert receiver: answers the first delivery 500 (so retries are exercised)."""

    def __init__(self):
        self.deliveries: list[tuple[dict, bytes]] = []
        self.failed_once = False
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if not hook.failed_once:
                    hook.failed_once = True
                    self.send_response(500)
                    self.end_headers()
                    return
                hook.deliveries.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/budget"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alerts(self) -> list[dict]:
        return [json.loads(body)["alert"] for _, body in self.deliveries]

    def wait_for(self, n: int, timeout: float = 15) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.deliveries) < n:
            time.sleep(0.05)
        return self.alerts()


def plugin(config: dict) -> str:
    return f"[[tenants.plugins]]\nname = \"budget-limit\"\nconfig = {toml_inline(config)}\n"


def config_text(tmp, mock: Mock, hook: Webhook | None, tenants: dict[str, str]) -> str:
    tenant_toml = ""
    for t, plugins in tenants.items():
        tenant_toml += f'\n[[tenants]]\nid = "{t}"\n'
        if hook is not None and t == "acme":
            tenant_toml += f'alerts = {{ webhook_url = "{hook.url}", webhook_secret = "{SECRET}" }}\n'
        tenant_toml += plugins
    return f"""
listen = "127.0.0.1:0"
data_dir = "{tmp / 'data'}"
default_provider = "mock"

[logs]
flush_ms = 50

[usage]
metadata_keys = ["project"]

[[pricing]]
model = "tg-test-*"
input = 1000.0
output = 1000.0

[[pricing]]
model = "{CHEAP}"
input = 1.0
output = 1.0

[[providers]]
id = "mock"
kind = "anthropic"
base_url = "{mock.url}"
{tenant_toml}
"""


@pytest.fixture(scope="module")
def upstream():
    m = Mock("budget-upstream", flavor="anthropic")
    yield m
    m.process.stop()


@pytest.fixture(scope="module")
def hook():
    h = Webhook()
    yield h
    h.server.shutdown()


@pytest.fixture(scope="module")
def gw(tmp_path_factory, upstream, hook):
    tmp = tmp_path_factory.mktemp("budgets")
    tenants = {
        "acme": plugin({"limits": [{
            "name": "team-daily-cost", "scope": "team", "match": ["engineering"], "metric": "cost",
            "period": "day", "limit": 0.05, "alert_at": [50, 80, 100]}]}),
        "conc": plugin({"limits": [{"name": "tenant-total", "scope": "tenant", "metric": "cost",
                                    "period": "total", "limit": 0.1}]}),
        "burst": plugin({"rate_limits": [{"name": "key-rpm", "scope": "key", "requests_per_minute": 5}]}),
        "cheap": plugin({"limits": [{"name": "project-monthly", "scope": "metadata.project", "metric": "cost",
                                     "period": "month", "limit": 0.05,
                                     "downgrade": {"at": 50, "provider": "mock", "model": CHEAP}}]}),
        "open": "",
    }
    g = Gateway(tmp, config_text(tmp, upstream, hook, tenants))
    yield g
    g.stop()


def client(gw: Gateway, tenant: str, meta: dict | None = None, key: str | None = None) -> anthropic.Anthropic:
    headers = {"x-portkey-metadata": json.dumps(meta)} if meta else {}
    key = key or gw.create_key(tenant, name=f"{tenant}-key")
    return anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, default_headers=headers)


def ask(c: anthropic.Anthropic, text: str = PROMPT, model: str = MODEL, max_tokens: int = 64):
    return c.messages.with_raw_response.create(
        model=model, max_tokens=max_tokens, messages=[{"role": "user", "content": text}])


def budgets(gw: Gateway, tenant: str) -> list[dict]:
    status, _, body = gw.admin("GET", f"/budgets?tenant={tenant}")
    assert status == 200, body
    return body["data"]


def wait_spent(gw: Gateway, tenant: str, budget: str, value: str, at_least: float, timeout: float = 5) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        rows = [b for b in budgets(gw, tenant) if b["budget"] == budget and b["value"] == value]
        if rows and rows[0]["spent"] >= at_least - 1e-9 and rows[0]["reserved"] == 0:
            return rows[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"{budget}/{value} never reached {at_least}: {rows}")
        time.sleep(0.05)


# --- cost of every request ----------------------------------------------------------------

def test_cost_is_logged_with_its_breakdown_from_the_shipped_table(gw):
    raw = ask(client(gw, "open"), model="claude-sonnet-4-5")
    row = gw.wait_log(raw.headers["request-id"])
    u = row["usage"]
    assert (u["input_tokens"], u["output_tokens"]) == (4, 10)
    cost = row["cost"]
    # Claude Sonnet 4.5 is $3 in / $15 out per million tokens in the shipped table.
    assert cost["priced_as"].startswith("claude-sonnet-4-5")
    assert cost["input_usd"] == pytest.approx(4 * 3 / 1e6)
    assert cost["output_usd"] == pytest.approx(10 * 15 / 1e6)
    assert cost["total_usd"] == pytest.approx((4 * 3 + 10 * 15) / 1e6)
    assert row["cost_nano"] == 12 * 1000 + 150 * 1000


def test_config_override_prices_a_model(gw):
    raw = ask(client(gw, "open"))
    row = gw.wait_log(raw.headers["request-id"])
    assert row["cost"]["total_usd"] == pytest.approx(REQUEST_USD)
    assert row["cost"]["priced_as"].startswith("override")


# --- a team's daily cost cap ----------------------------------------------------------------

def test_team_daily_cap_stops_that_team_only_and_alerts_once_per_threshold(gw, hook):
    eng = client(gw, "acme", {"team": "engineering", "env": "prod"})
    sales = client(gw, "acme", {"team": "sales", "env": "prod"})
    served = 0
    denied = None
    for _ in range(10):
        try:
            ask(eng)
            served += 1
        except anthropic.RateLimitError as e:
            denied = e
            break
    # $0.014 a request against $0.05: the fourth is admitted at $0.042 spent, the fifth is not.
    assert served == 4 and denied is not None
    assert denied.status_code == 429
    err = denied.body["error"]
    assert err["type"] == "budget_exceeded_error"
    msg = err["message"]
    for part in ("team-daily-cost", "engineering", "$0.05", "resets"):
        assert part in msg, msg
    assert int(denied.response.headers["retry-after"]) >= 1
    assert denied.response.headers["x-should-retry"] == "false"
    row = gw.wait_log(denied.response.headers["request-id"])
    assert row["status"] == 429 and row["team"] == "engineering"

    # An OpenAI client on the same team gets OpenAI's quota error.
    o = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=gw.create_key("acme", name="oai"), max_retries=0,
                      default_headers={"x-portkey-metadata": json.dumps({"team": "engineering"})})
    with pytest.raises(openai.RateLimitError) as oe:
        o.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": PROMPT}])
    assert oe.value.type == "insufficient_quota" and "team-daily-cost" in oe.value.message

    # Sales has no cap: it is still served.
    for _ in range(5):
        assert ask(sales).http_response.status_code == 200

    b = wait_spent(gw, "acme", "team-daily-cost", "engineering", 4 * REQUEST_USD)
    assert b["limit"] == 0.05 and b["metric"] == "cost" and b["period"] == "day"
    assert b["spent"] == pytest.approx(4 * REQUEST_USD)
    assert b["remaining"] == 0 and b["resets_at_ms"] > time.time() * 1000

    # 50%, 80% and 100% each fire once, signed, and the first (failed) delivery was retried.
    alerts = hook.wait_for(3)
    time.sleep(0.5)
    alerts = hook.alerts()
    assert sorted(a["threshold_pct"] for a in alerts) == [50, 80, 100], alerts
    assert {(a["budget"], a["scope"], a["value"]) for a in alerts} == {("team-daily-cost", "team", "engineering")}
    for headers, body in hook.deliveries:
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["x-tollgate-signature"], expected)
    assert any(h.get("x-tollgate-attempt") == "2" for h, _ in hook.deliveries)
    status, _, listed = gw.admin("GET", "/alerts?tenant=acme")
    assert status == 200 and sorted(a["threshold_pct"] for a in listed["data"]) == [50, 80, 100]


# --- concurrency: reservations stop overspend ----------------------------------------------

def test_concurrent_requests_overshoot_by_at_most_one_reservation(gw):
    key = gw.create_key("conc", name="conc-key")
    # Spend $0.07 of $0.10 first (nearly exhausted).
    for _ in range(5):
        ask(client(gw, "conc", key=key))
    wait_spent(gw, "conc", "tenant-total", "conc", 5 * REQUEST_USD)

    body = json.dumps({"model": MODEL, "max_tokens": 10,
                       "messages": [{"role": "user", "content": "[[mock tokens=10 delay_ms=400]]"}]}).encode()
    # What the gateway reserves per request: the body at ~4 bytes a token plus max_tokens.
    reservation = (len(body) // 4 + 10) * 0.001

    def one(_):
        status, _, _ = http("POST", f"{gw.url}/v1/messages", body,
                            {"authorization": f"Bearer {key}", "anthropic-version": "2023-06-01"})
        return status

    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        statuses = list(pool.map(one, range(50)))
    admitted = statuses.count(200)
    assert statuses.count(429) == 50 - admitted
    assert 1 <= admitted <= 1 + int((0.1 - 5 * REQUEST_USD) / reservation)
    b = wait_spent(gw, "conc", "tenant-total", "conc", 5 * REQUEST_USD)
    assert b["spent"] <= 0.1 + reservation + 1e-9, (b, reservation, admitted)


# --- streams cut by the client --------------------------------------------------------------

def test_stream_cut_by_the_client_is_billed_for_what_was_generated(gw):
    c = client(gw, "open")
    seen = 0
    with c.messages.stream(model=MODEL, max_tokens=1000,
                           messages=[{"role": "user", "content": "[[mock tokens=400 gap_ms=20]]"}]) as stream:
        request_id = stream.response.headers["request-id"]
        for event in stream:
            if event.type == "content_block_delta":
                seen += 1
                if seen == 20:
                    break
    row = gw.wait_log(request_id)
    assert row["status"] == 499
    out = row["usage"]["output_tokens"]
    assert 20 <= out < 400, row["usage"]
    assert row["cost"]["usage_estimated"] is True
    assert row["cost_nano"] == (row["usage"]["input_tokens"] + out) * 1_000_000


# --- rate limits ------------------------------------------------------------------------------

def test_per_minute_request_limit_holds_under_a_burst(gw):
    key = gw.create_key("burst", name="burst-key")
    c = client(gw, "burst", key=key)

    def one(_):
        try:
            return ask(c).http_response.status_code, None
        except anthropic.RateLimitError as e:
            return 429, e

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        results = list(pool.map(one, range(20)))
    assert [s for s, _ in results].count(200) == 5
    errors = [e for s, e in results if s == 429]
    assert len(errors) == 15
    assert errors[0].body["error"]["type"] == "rate_limit_error"
    assert "key-rpm" in errors[0].body["error"]["message"]
    # A rolling minute is exact: the burst leaves the window a minute after it arrived.
    assert 1 <= int(errors[0].response.headers["retry-after"]) <= 61
    # Another key of the same tenant has its own limit.
    assert ask(client(gw, "burst")).http_response.status_code == 200


# --- downgrade ---------------------------------------------------------------------------------

def test_budget_downgrades_to_a_cheaper_model_past_its_threshold(gw):
    c = client(gw, "cheap", {"project": "apollo"})
    models = [ask(c).headers["x-tollgate-model"] for _ in range(4)]
    # $0.014, $0.028 spent: from the third request on, past 50% of $0.05, the cheap model serves.
    assert models[:2] == [MODEL, MODEL] and set(models[2:]) == {CHEAP}, models
    other = client(gw, "cheap", {"project": "zeus"})
    assert ask(other).headers["x-tollgate-model"] == MODEL


# --- the admin view -----------------------------------------------------------------------------

def test_usage_report_groups_by_team_and_the_cli_prints_it(gw):
    c = client(gw, "open", {"team": "platform", "project": "apollo"})
    raw = ask(c)
    gw.wait_log(raw.headers["request-id"])
    status, _, body = gw.admin("GET", "/usage?tenant=open&by=team&period=day")
    assert status == 200, body
    groups = {g["group"]: g for g in body["data"]}
    assert groups["platform"]["requests"] >= 1 and groups["platform"]["cost_usd"] >= REQUEST_USD - 1e-9
    assert body["total"]["cost_usd"] >= groups["platform"]["cost_usd"]
    status, _, by_model = gw.admin("GET", "/usage?tenant=open&by=model&period=month")
    assert status == 200 and MODEL in {g["group"] for g in by_model["data"]}
    status, _, by_meta = gw.admin("GET", "/usage?tenant=open&by=metadata.project&period=total")
    assert status == 200 and "apollo" in {g["group"] for g in by_meta["data"]}
    status, _, bad = gw.admin("GET", "/usage?tenant=open&by=colour")
    assert status == 400 and "by" in bad["error"]["message"]

    env = {"TOLLGATE_URL": gw.url, "TOLLGATE_ADMIN_TOKEN": ADMIN_TOKEN}
    out = tollgate("usage", "--tenant", "open", "--by", "team", env=env)
    assert out.returncode == 0, out.stderr
    assert "platform" in out.stdout and "COST" in out.stdout.upper()
    out = tollgate("budgets", "--tenant", "acme", env=env)
    assert out.returncode == 0, out.stderr
    assert "team-daily-cost" in out.stdout


# --- restart ------------------------------------------------------------------------------------

def test_counters_survive_a_restart(tmp_path, upstream):
    tenants = {"acme": plugin({"limits": [{"name": "user-requests", "scope": "user", "metric": "requests",
                                           "period": "day", "limit": 5, "alert_at": [60]}]})}
    g = Gateway(tmp_path, config_text(tmp_path, upstream, None, tenants))
    try:
        key = g.create_key("acme", name="k", user="dev@acme.com")
        for _ in range(3):
            ask(client(g, "acme", key=key))
        wait_spent(g, "acme", "user-requests", "dev@acme.com", 3)
        assert g.stop() == 0
        g.start()
        b = wait_spent(g, "acme", "user-requests", "dev@acme.com", 3)
        assert b["spent"] == 3 and b["remaining"] == 2
        status, _, alerts = g.admin("GET", "/alerts?tenant=acme")
        assert [a["threshold_pct"] for a in alerts["data"]] == [60]
        c = client(g, "acme", key=key)
        ask(c)
        ask(c)
        with pytest.raises(anthropic.RateLimitError):
            ask(c)
        status, _, alerts = g.admin("GET", "/alerts?tenant=acme")
        assert [a["threshold_pct"] for a in alerts["data"]] == [60], "an alert fired twice across a restart"
    finally:
        g.stop()
