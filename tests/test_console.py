"""The web console in a real browser: Debian's chromium, headless, driven by Playwright
(installed by `make setup`: scripts/setup-browser.sh and tests/requirements.txt).

Requests with different metadata go through the gateway (official SDKs), then the
console is opened: it signs in, filters the logs by team, opens one entry and finds its
model, provider, metadata and cost, shows a new request live, renders the analytics
charts, a trace, the budgets and the bundles (with a rollback). A screenshot of each
page is saved under tests/artifacts/console/. A second gateway holds 100k log rows and
the logs page must load in under a second."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import time
from pathlib import Path

import anthropic
import openai
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from conftest import ADMIN_TOKEN, ROOT, Gateway, Mock

CHROMIUM = os.environ.get("TOLLGATE_CHROMIUM", "/usr/bin/chromium")
SHOTS = ROOT / "tests" / "artifacts" / "console"
MODEL = "claude-sonnet-4-5"
# The flags this machine's chromium needs as root and without a network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: run scripts/setup-browser.sh (make setup)"
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    ctx.close()
    assert not errors, errors


@pytest.fixture(scope="module")
def upstream():
    m = Mock("console-upstream", flavor="both")
    yield m
    m.process.stop()


@pytest.fixture(scope="module")
def gw(tmp_path_factory, upstream):
    tmp = tmp_path_factory.mktemp("console")
    g = Gateway(tmp, f"""
listen = "127.0.0.1:0"
data_dir = "{tmp / 'data'}"
default_provider = "main"

[logs]
flush_ms = 50

[[providers]]
id = "main"
kind = "anthropic"
base_url = "{upstream.url}"

[[providers]]
id = "backup"
kind = "openai-compatible"
base_url = "{upstream.url}"

[[tenants]]
id = "acme"
capture_bodies = true
[[tenants.plugins]]
name = "metadata-policy"
config = {{ allowed_values = {{ env = ["prod", "dev"] }} }}
[[tenants.plugins]]
name = "budget-limit"
config = {{ limits = [{{ name = "team-daily", scope = "team", metric = "cost", period = "day", limit = 2.0 }}] }}

[[tenants]]
id = "globex"

[[tenants]]
id = "guarded"
capture_bodies = true
[[tenants.plugins]]
name = "pii-redact"
config = {{ apply_to = "request" }}
""")
    yield g
    g.stop()


@pytest.fixture(scope="module")
def traffic(gw):
    """Requests with different metadata; returns request ids by label."""
    sent = {}

    def anth(meta, trace=None):
        headers = {"x-portkey-metadata": json.dumps(meta)}
        if trace:
            headers["x-portkey-trace-id"] = trace
        return anthropic.Anthropic(base_url=gw.url, api_key=gw.create_key("acme"), max_retries=0,
                                   default_headers=headers)

    eng = anth({"team": "engineering", "user": "ada@acme.com", "env": "prod", "project": "apollo"}, "session-eng")
    for i in range(3):
        raw = eng.messages.with_raw_response.create(model=MODEL, max_tokens=32,
                                                    messages=[{"role": "user", "content": f"eng question {i}"}])
        sent[f"eng{i}"] = raw.headers["request-id"]
    sales = anth({"team": "sales", "user": "bob@acme.com", "env": "dev", "project": "zeus"})
    with sales.messages.stream(model="claude-haiku-4-5", max_tokens=32,
                               messages=[{"role": "user", "content": "[[mock tokens=6]] sales pitch"}]) as s:
        s.get_final_message()
        sent["sales-stream"] = s.response.headers["request-id"]
    o = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=gw.create_key("acme"), max_retries=0,
                      default_headers={"x-portkey-metadata": json.dumps({"team": "sales", "env": "prod"})})
    raw = o.chat.completions.with_raw_response.create(model=MODEL, max_tokens=16,
                                                       messages=[{"role": "user", "content": "hi"}])
    sent["sales-openai"] = raw.headers["x-request-id"]
    try:
        anth({"team": "sales", "env": "qa"}).messages.create(model=MODEL, max_tokens=8,
                                                             messages=[{"role": "user", "content": "x"}])
    except anthropic.BadRequestError as e:
        sent["sales-denied"] = e.response.headers["request-id"]
    g = anthropic.Anthropic(base_url=gw.url, api_key=gw.create_key("globex"), max_retries=0,
                            default_headers={"x-portkey-metadata": json.dumps({"team": "sales"})})
    sent["globex"] = g.messages.with_raw_response.create(
        model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "other tenant"}]).headers["request-id"]
    for rid in sent.values():
        gw.wait_log(rid)
    return sent


def sign_in(page: Page, gw: Gateway, token: str = ADMIN_TOKEN, hash_: str = "#/logs"):
    page.goto(f"{gw.url}/console/{hash_}")
    page.fill("#token", token)
    page.click("#login button[type=submit]")
    expect(page.locator("#who")).to_be_visible()


def shot(page: Page, name: str):
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def row_ids(page: Page) -> list[str]:
    return page.locator("#log-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.id)")


def test_logs_filter_by_team_and_open_an_entry(page, gw, traffic):
    sign_in(page, gw)
    page.wait_for_selector(f"#log-table tr[data-id='{traffic['eng0']}']")
    assert set(traffic.values()) <= set(row_ids(page))
    shot(page, "logs")

    page.select_option("#filters select[name=tenant]", "acme")
    page.fill("#filters input[name=team]", "sales")
    page.click("#filters button[type=submit]")
    page.wait_for_function("() => location.hash.includes('team=sales')")
    page.wait_for_selector(f"#log-table tr[data-id='{traffic['sales-stream']}']")
    ids = set(row_ids(page))
    assert ids == {traffic["sales-stream"], traffic["sales-openai"], traffic["sales-denied"]}, ids
    teams = page.locator("#log-table tbody tr td:nth-child(3)").all_inner_texts()
    assert set(teams) == {"sales"}
    shot(page, "logs-team-sales")

    page.click(f"#log-table tr[data-id='{traffic['sales-stream']}']")
    summary = page.locator("#summary")
    expect(summary).to_contain_text("claude-haiku-4-5")
    expect(summary).to_contain_text("main")
    text = page.locator("main").inner_text()
    for needle in ("team", "sales", "project", "zeus", "bob@acme.com", "Input", "Output", "Total", "Priced as",
                   "metadata-policy", "budget-limit", "Routing attempts"):
        assert needle in text, needle
    cost = page.locator("#cost tbody tr:last-child td:last-child").inner_text()
    assert cost.startswith("$") and float(cost[1:]) > 0
    expect(page.locator("#bodies")).to_contain_text("sales pitch")
    expect(page.locator("#bodies")).to_contain_text("message_stop")
    shot(page, "log-detail")


def test_a_guardrail_verdict_shows_in_the_log_detail(page, gw, traffic):
    c = anthropic.Anthropic(base_url=gw.url, api_key=gw.create_key("guarded"), max_retries=0)
    raw = c.messages.with_raw_response.create(
        model=MODEL, max_tokens=16, messages=[{"role": "user", "content": "write to ann@corp.example today"}])
    rid = raw.headers["request-id"]
    gw.wait_log(rid)
    sign_in(page, gw, hash_=f"#/logs/{rid}")
    expect(page.locator("main")).to_contain_text("request guardrail")
    decisions = page.locator("main").inner_text()
    assert "pii-redact" in decisions and "rewrite" in decisions and "email (pii) ×1" in decisions, decisions
    # What was kept is what was sent: the redacted prompt.
    expect(page.locator("#bodies")).to_contain_text("[EMAIL_1]")
    assert "ann@corp.example" not in page.locator("#bodies").inner_text()
    shot(page, "log-detail-guardrail")


def test_a_new_request_shows_up_live_within_two_seconds(page, gw, traffic):
    sign_in(page, gw)
    page.wait_for_selector("#log-table tbody tr")
    c = anthropic.Anthropic(base_url=gw.url, api_key=gw.create_key("acme"), max_retries=0,
                            default_headers={"x-portkey-metadata": json.dumps({"team": "live", "env": "prod"})})
    rid = c.messages.with_raw_response.create(model=MODEL, max_tokens=8,
                                              messages=[{"role": "user", "content": "live"}]).headers["request-id"]
    started = time.monotonic()
    page.wait_for_selector(f"#log-table tr[data-id='{rid}']", timeout=2000)
    assert time.monotonic() - started < 2.0
    assert page.locator("#log-table tbody tr").first.get_attribute("data-id") == rid


def test_analytics_renders_charts(page, gw, traffic):
    sign_in(page, gw, hash_="#/analytics?since=1h&by=team")
    page.wait_for_selector("#charts svg")
    charts = page.locator("#charts .chart")
    # The charts render one after another: wait for all five (and the first one's
    # legend) before reading them, as a slow machine may still be drawing.
    expect(charts).to_have_count(5)
    expect(charts.first.locator(".legend")).to_contain_text("sales")
    assert page.locator("#charts .chart").first.locator("rect.bar-rect").count() >= 2
    legend = page.locator("#charts .chart").first.locator(".legend").inner_text()
    assert "engineering" in legend and "sales" in legend
    assert page.locator("path.line-path").count() >= 1
    table = page.locator("main table").last.inner_text()
    assert "engineering" in table and "sales" in table
    shot(page, "analytics")
    # With no range in the URL, the selector shows the range the charts were fetched for.
    # (The same page changes view: wait for the new fetch and the new selector value,
    # not for charts the previous view may still show.)
    with page.expect_request(lambda r: "/admin/v1/analytics" in r.url and "since=24h" in r.url):
        page.goto(f"{gw.url}/console/#/analytics")
    expect(page.locator("select[name=since]")).to_have_value("24h")


def test_traces_group_a_session(page, gw, traffic):
    sign_in(page, gw, hash_="#/traces?since=1h")
    page.wait_for_selector("tbody tr[data-id='session-eng']")
    shot(page, "traces")
    page.click("tbody tr[data-id='session-eng']")
    page.wait_for_selector(".waterfall")
    assert page.locator("tbody tr").count() == 3
    shot(page, "trace")


def test_budgets_and_bundle_rollback(page, gw, traffic):
    router = lambda p: {"plugins": [{"name": "model-router", "config": {"default": {"targets": [{"provider": p}]}}}]}  # noqa: E731
    status, _, v1 = gw.admin("PUT", "/tenants/globex/bundle", {**router("main"), "message": "main first"})
    assert status == 201
    status, _, v2 = gw.admin("PUT", "/tenants/globex/bundle", {**router("backup"), "message": "try backup"})
    assert status == 201
    sign_in(page, gw, hash_="#/budgets")
    page.wait_for_selector("main table")
    text = page.locator("main table").inner_text()
    assert "team-daily" in text and "engineering" in text and "$2.00" in text
    shot(page, "budgets")

    page.goto(f"{gw.url}/console/#/bundles")
    section = page.locator("[data-scope=globex]")
    expect(section).to_contain_text(f"Active: version {v2['version']}")
    # The layers a request passes: the operator's pinned rules are shown locked.
    acme = page.locator("[data-scope=acme] ol.layers")
    expect(acme.locator("li.locked")).to_contain_text("Pinned by the operator")
    expect(acme.locator("li.locked")).to_contain_text("metadata-policy")
    expect(section.locator("ol.layers li").last).to_contain_text("model-router")
    shot(page, "bundles")
    page.once("dialog", lambda d: d.accept())
    section.locator("tr", has_text="main first").locator("button.rollback").click()
    expect(page.locator("[data-scope=globex]")).to_contain_text(f"Active: version {v2['version'] + 1}")
    status, _, active = gw.admin("GET", "/tenants/globex/bundle")
    assert active["version"] == v2["version"] + 1 and active["hash"] == v1["hash"]
    shot(page, "bundles-rolled-back")


def test_a_tenant_admin_sees_only_its_tenant(page, gw, traffic):
    status, _, tok = gw.admin("POST", "/tenants/globex/admin-tokens", {})
    assert status == 201
    sign_in(page, gw, token=tok["token"])
    expect(page.locator("#who")).to_contain_text("globex")
    page.wait_for_selector(f"#log-table tr[data-id='{traffic['globex']}']")
    page.wait_for_timeout(300)
    assert set(row_ids(page)) == {traffic["globex"]}
    page.goto(f"{gw.url}/console/#/logs/{traffic['eng0']}")
    expect(page.locator("main .error")).to_contain_text("no request")
    shot(page, "tenant-admin")


def test_a_bad_token_is_refused(page, gw):
    page.goto(f"{gw.url}/console/")
    page.fill("#token", "tga-wrong")
    page.click("#login button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("not accepted")


# --- 100k rows ---------------------------------------------------------------------------

def fill_logs(db_path: Path, n: int):
    """`n` log rows over the last day, written straight into the store."""
    now = int(time.time() * 1000)
    rng = random.Random(7)
    teams = ["engineering", "sales", "research", "support", "ops"]
    models = ["claude-sonnet-4-5", "claude-haiku-4-5", "gpt-4o"]
    rows = []
    for i in range(n):
        team = teams[i % len(teams)]
        rows.append((
            f"req_seed{i:08d}", now - rng.randrange(86_400_000), "bulk", "key_seed", f"trace-{i // 4}", "messages",
            team, f"user{i % 50}@bulk.com", json.dumps({"team": team, "env": "prod"}), models[i % 3], models[i % 3],
            "main", 500 if i % 20 == 2 else 200, 0, rng.randrange(50, 3000), None, 120, 340, 0, 0, "[]", None, "[]",
            rng.randrange(1000, 9_000_000), None, None, None, 256, 400, 1,
        ))
    db = sqlite3.connect(db_path)
    db.executemany(
        """INSERT INTO request_logs (request_id, ts_ms, tenant_id, key_id, trace_id, endpoint, team, user, metadata,
           requested_model, served_model, provider, status, stream, latency_ms, ttft_ms, input_tokens, output_tokens,
           cache_read_tokens, cache_write_tokens, decisions, error, attempts, cost_nano, cost, bundle_version,
           platform_version, max_tokens, body_bytes, message_count)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""", rows)
    db.commit()
    db.close()


def test_the_logs_page_loads_in_under_a_second_with_100k_rows(browser, tmp_path, upstream):
    config = f"""
listen = "127.0.0.1:0"
data_dir = "{tmp_path / 'data'}"
default_provider = "main"

[[providers]]
id = "main"
kind = "anthropic"
base_url = "{upstream.url}"

[[tenants]]
id = "bulk"
"""
    g = Gateway(tmp_path, config)
    try:
        assert g.stop() == 0
        fill_logs(tmp_path / "data" / "tollgate.db", 100_000)
        g.start()
        ctx = browser.new_context(viewport={"width": 1400, "height": 900})
        pg = ctx.new_page()
        # Sign in once, so the timed load is the logs page itself.
        sign_in(pg, g)
        pg.wait_for_selector("#log-table tbody tr")
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            pg.goto(f"{g.url}/console/#/logs")
            pg.reload()
            pg.wait_for_selector("#log-table tbody tr:nth-child(100)")
            timings.append(time.perf_counter() - started)
        print(f"logs page with 100k rows: {', '.join(f'{t * 1000:.0f} ms' for t in timings)}")
        assert min(timings) < 1.0, timings
        shot(pg, "logs-100k")
        # A filtered view of the same store is quick too.
        started = time.perf_counter()
        pg.goto(f"{g.url}/console/#/logs?team=research&status=5xx")
        pg.wait_for_selector("#log-table tbody tr")
        assert time.perf_counter() - started < 1.0
        assert set(pg.locator("#log-table tbody tr td:nth-child(3)").all_inner_texts()) == {"research"}
        started = time.perf_counter()
        pg.goto(f"{g.url}/console/#/analytics?since=24h&by=team")
        pg.wait_for_selector("#charts svg rect.bar-rect")
        print(f"analytics over 100k rows: {(time.perf_counter() - started) * 1000:.0f} ms")
        shot(pg, "analytics-100k")
        ctx.close()
    finally:
        g.stop()
