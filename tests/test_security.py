"""Multi-tenant enforcement against a hostile tenant admin, a hostile plugin and a hostile
network (docs/security.md). Each test is the attack, run against the real binary:
a tenant admin lifting the operator's rules, a plugin flooding the host with output
or budget limits, a compile bomb, idle and slow sockets, a keyless flood, rolling
windows probed for overshoot. Each asserts the outcome and that a neighbour tenant
keeps working: every neighbour request succeeds and its p95 latency stays under
NEIGHBOUR_P95_S (a debug build on the 2-core CI machine).

Kill -9 under load and a full disk are in tests/test_durability.py."""

from __future__ import annotations

import base64
import json
import re
import socket
import statistics
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from conftest import ADMIN_TOKEN, PLUGIN_DIR, Gateway, Mock, http, toml_inline
from support.compile_bomb import compile_bomb, section

MODEL = "claude-sonnet-4-5"
BODY = {"model": MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
# The stated bound on a neighbour's latency while another tenant attacks.
NEIGHBOUR_P95_S = 0.5


def hostile(mode: str, **extra) -> str:
    return f'[[tenants.plugins]]\nname = "hostile"\nconfig = {toml_inline({"mode": mode, **extra})}\n'


def budget(config: dict) -> str:
    return f'[[tenants.plugins]]\nname = "budget-limit"\nconfig = {toml_inline(config)}\n'


@pytest.fixture(scope="module")
def upstreams():
    main, other = Mock("sec-main", flavor="anthropic"), Mock("sec-other", flavor="anthropic")
    yield main, other
    main.process.stop()
    other.process.stop()


@pytest.fixture(scope="module")
def gw(tmp_path_factory, upstreams):
    main, other = upstreams
    tmp = tmp_path_factory.mktemp("security")
    tenants = {
        "neighbour": "",
        "neighbour2": "",
        "uploader": "",
        "bombed": "",
        "pinned": 'allowed_providers = ["main"]\nallowed_models = ["claude-*"]\n' + budget(
            {"limits": [{"name": "operator-cap", "scope": "tenant", "metric": "cost", "period": "day",
                         "limit": 0.00001}]}),
        "deny-huge": 'sandbox = { memory_mib = 32 }\n' + hostile("huge-deny", size=8 << 20),
        "labels": hostile("many-labels", count=1000, size=4000),
        "logflood": hostile("log-flood", count=20000, size=200),
        "targets": hostile("many-targets", count=11000, provider="other"),
        "limits": hostile("many-limits", count=5000),
        "fresh": hostile("fresh-limit"),
        "nan": hostile("nan-limit"),
        "negative": hostile("negative-limit"),
        "clock": hostile("clock-probe"),
        "random": hostile("random-probe"),
        "retries": '[[tenants.plugins]]\nname = "model-router"\nconfig = ' + toml_inline({"default": {
            "strategy": "fallback", "targets": [{"provider": "main"}] * 8,
            "retry_on": {"statuses": [500], "timeout": False, "connect_error": False},
            "retries": 10, "backoff_ms": 1, "max_backoff_ms": 1}}) + "\n",
        "rolling": budget({
            "rate_limits": [{"name": "key-rpm", "scope": "key", "requests_per_minute": 5}],
            "limits": [{"name": "weekly-cost", "scope": "user", "metric": "cost", "period": "week",
                        "window": "rolling", "limit": 0.00001}]}),
        "hangup": budget({"rate_limits": [{"name": "key-rpm", "scope": "key", "requests_per_minute": 2}]}),
        "fits": 'budget_admit = "estimate_fits"\n' + budget(
            {"limits": [{"name": "small-cap", "scope": "tenant", "metric": "cost", "period": "day",
                         "limit": 0.05}]}),
    }
    tenant_toml = "".join(f'\n[[tenants]]\nid = "{t}"\n{extra}' for t, extra in tenants.items())
    config = f"""
listen = "127.0.0.1:0"
data_dir = "{tmp / 'data'}"
default_provider = "main"

[server]
max_connections_per_client = 100
header_read_timeout_ms = 1500
max_unauthenticated_per_client = 32

[sandbox]
deadline_ms = 50
compile_timeout_ms = 3000
compile_memory_mib = 512
max_component_bytes = 4194304
max_attempts = 6

[budgets]
max_limits_per_tenant = 200

[logs]
flush_ms = 50

[[pricing]]
provider = "main"
model = "*"
input = 1000.0
output = 1000.0

[[providers]]
id = "main"
kind = "anthropic"
base_url = "{main.url}"

[[providers]]
id = "other"
kind = "anthropic"
base_url = "{other.url}"
{tenant_toml}
"""
    g = Gateway(tmp, config)
    yield g
    g.stop()


def post(gw: Gateway, key: str | None, body: dict | None = None, meta: dict | None = None,
         timeout: float = 30):
    headers = {"anthropic-version": "2023-06-01"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    if meta:
        headers["x-portkey-metadata"] = json.dumps(meta)
    return http("POST", f"{gw.url}/v1/messages", body or BODY, headers, timeout=timeout)


def tenant_token(gw: Gateway, tenant: str) -> str:
    status, _, tok = gw.admin("POST", f"/tenants/{tenant}/admin-tokens", {})
    assert status == 201, tok
    return tok["token"]


def as_tenant(gw: Gateway, token: str, method: str, path: str, body=None):
    return http(method, f"{gw.url}/admin/v1{path}", body, {"authorization": f"Bearer {token}"})


class Neighbour:
    """A tenant whose requests must keep succeeding, quickly, while another attacks."""

    def __init__(self, gw: Gateway, tenant: str = "neighbour"):
        self.gw = gw
        self.key = gw.create_key(tenant, name=f"{tenant}-{time.monotonic_ns()}")
        self.latencies: list[float] = []
        self.failures: list = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def one(self) -> None:
        t0 = time.perf_counter()
        status, _, body = post(self.gw, self.key)
        self.latencies.append(time.perf_counter() - t0)
        if status != 200:
            self.failures.append((status, body))

    def __enter__(self):
        def run():
            while not self._stop.is_set():
                self.one()
                time.sleep(0.02)
        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread:
            self._thread.join(30)
        if exc[0] is None:
            self.check()

    def check(self, at_least: int = 5) -> None:
        while len(self.latencies) < at_least:
            self.one()
        assert not self.failures, self.failures[:3]
        p95 = statistics.quantiles(self.latencies, n=20)[-1] if len(self.latencies) >= 2 else self.latencies[0]
        assert p95 < NEIGHBOUR_P95_S, f"neighbour p95 {p95 * 1000:.0f} ms over {len(self.latencies)} requests"


def gateway_output(gw: Gateway) -> str:
    return "".join(gw.process.lines)


def rss_mib(gw: Gateway) -> float:
    for line in Path(f"/proc/{gw.process.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def metric(gw: Gateway, name: str, **labels) -> float:
    """The sum of `name`'s samples whose labels start with `labels`, from `/metrics`."""
    status, _, text = http("GET", f"{gw.url}/metrics", headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    assert status == 200
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{" + want) or (not labels and line.startswith(name + " ")):
            total += float(line.rsplit(" ", 1)[1])
    return total


# --- 1. the operator's rules hold against the tenant's own admin ------------------------------

def test_a_tenant_admin_cannot_lift_the_operators_rules(gw):
    key = gw.create_key("pinned", name="pinned-key")
    token = tenant_token(gw, "pinned")
    assert post(gw, key)[0] == 200  # spends past the operator's $0.00001 a day
    status, _, body = post(gw, key)
    assert status == 429 and "operator-cap" in body["error"]["message"], body

    with Neighbour(gw):
        # The attack: the tenant's own admin replaces its bundle with nothing.
        status, _, v = as_tenant(gw, token, "PUT", "/tenants/pinned/bundle", {"plugins": []})
        assert status == 201, v
        status, _, body = post(gw, key)
        assert status == 429 and "operator-cap" in body["error"]["message"], body
        # ...or names a provider the operator did not allow as its default.
        status, _, body = as_tenant(gw, token, "PUT", "/tenants/pinned/bundle",
                                    {"plugins": [], "default_provider": "other"})
        assert status == 400 and "provider 'other' is not allowed" in body["error"]["message"], body
        # ...or routes there with a plugin of its own: the request is refused.
        router = {"name": "model-router", "config": {"default": {"targets": [{"provider": "other"}]}}}
        status, _, v = as_tenant(gw, token, "PUT", "/tenants/pinned/bundle", {"plugins": [router]})
        assert status == 201, v
        status, headers, body = post(gw, key)
        assert status == 403 and "provider 'other' is not allowed" in body["error"]["message"], body
        row = gw.wait_log(headers["request-id"])
        assert any(d["plugin"] == "operator allow-list" and d["outcome"] == "deny" for d in row["decisions"])
        # ...or asks for a model outside the allow-list.
        status, _, v = as_tenant(gw, token, "PUT", "/tenants/pinned/bundle", {"plugins": []})
        assert status == 201
        status, _, body = post(gw, key, {**BODY, "model": "gpt-4o"})
        assert status == 403 and "model 'gpt-4o' is not allowed" in body["error"]["message"], body
        # The platform bundle, where pins live, is out of its reach.
        for body in ({"plugins": []}, {"plugins": [], "tenants": {"pinned": {}}}):
            assert as_tenant(gw, token, "PUT", "/bundle", body)[0] == 403
        status, _, body = as_tenant(gw, token, "PUT", "/tenants/pinned/bundle",
                                    {"plugins": [], "tenants": {"pinned": {}}})
        assert status == 400 and "platform" in body["error"]["message"]
        # The layering is visible to the tenant's admin.
        status, _, t = as_tenant(gw, token, "GET", "/tenants/pinned")
        assert status == 200
        assert t["layers"]["pinned"] == {"source": "config", "plugins": ["budget-limit"],
                                         "allowed_providers": ["main"], "allowed_models": ["claude-*"]}
        assert t["layers"]["own"]["plugins"] == []

    # The platform admin can change the pins: a platform bundle section replaces them.
    status, _, v = gw.admin("PUT", "/bundle", {"plugins": [], "tenants": {
        "pinned": {"allowed_providers": ["main", "other"]}}})
    assert status == 201, v
    try:
        status, _, t = gw.admin("GET", "/tenants/pinned")
        assert t["layers"]["pinned"]["source"] == f"platform bundle v{v['version']}"
        assert post(gw, key)[0] == 200  # no pinned budget any more
    finally:
        assert gw.admin("PUT", "/bundle", {"plugins": []})[0] == 201
    assert post(gw, key)[0] == 429  # the config file's pins are back


# --- 2. a budget plugin cannot stall the ledger ----------------------------------------------

def test_a_budget_plugin_cannot_stall_the_ledger(gw):
    limits_key, fresh_key = gw.create_key("limits"), gw.create_key("fresh")
    # Thousands of distinct limits in one request: refused, naming the plugin.
    status, _, body = post(gw, limits_key)
    assert status == 500, body
    msg = body["error"]["message"]
    assert "plugin 'hostile'" in msg and "5000 budget limits" in msg and "max_limits_per_request" in msg

    # A new limit on every request: the tenant's cap stops it, the neighbour never notices.
    outcomes: list[int] = []

    def hammer():
        for _ in range(130):
            outcomes.append(post(gw, fresh_key)[0])
            post(gw, limits_key)

    with Neighbour(gw):
        threads = [threading.Thread(target=hammer) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert outcomes.count(200) == 200 and outcomes.count(500) == 60, outcomes
    status, _, body = post(gw, fresh_key)
    assert status == 500 and "max_limits_per_tenant" in body["error"]["message"]
    assert "plugin 'hostile'" in body["error"]["message"]
    # The budget view and the metrics are bounded the same way.
    status, _, view = gw.admin("GET", "/budgets?tenant=fresh&limit=10")
    assert status == 200 and len(view["data"]) == 10 and view["total"] == 200 and view["truncated"]
    assert view["data"][0]["granted_by"] == "hostile"
    assert metric(gw, "tollgate_budget_series_omitted", tenant="fresh") == 100
    status, _, text = http("GET", f"{gw.url}/metrics", headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    assert len(re.findall(r'tollgate_budget_limit\{tenant="fresh"', text)) == 100


# --- 3. plugin output is bounded --------------------------------------------------------------

def test_plugin_output_is_bounded(gw, upstreams):
    _, other = upstreams
    with Neighbour(gw):
        # An 8 MiB deny message reaches neither the client nor the log whole.
        status, headers, body = post(gw, gw.create_key("deny-huge"))
        assert status == 403, str(body)[:200]
        assert 1000 <= len(body["error"]["message"]) <= 1024
        assert body["error"]["type"] == "permission_error"  # the bogus type was dropped
        row = gw.wait_log(headers["request-id"])
        assert len(json.dumps(row)) < 8 << 10

        # A thousand 4 KB labels: sixteen of 256 bytes are kept.
        status, headers, _ = post(gw, gw.create_key("labels"))
        assert status == 200
        row = gw.wait_log(headers["request-id"])
        labels = row["decisions"][0]["annotations"]
        assert len(labels) == 16 and all(len(v) == 256 for _, v in labels)
        assert "1000 labels cut to 16" in row["decisions"][0]["detail"]

        # Twenty thousand log lines in one call: the gateway's log gets sixteen and a note.
        before = len(gw.process.lines)
        status, headers, _ = post(gw, gw.create_key("logflood"))
        assert status == 200
        time.sleep(0.3)
        new = gw.process.lines[before:]
        assert sum("x" * 200 in line for line in new) <= 16, len(new)
        assert any("plugin log lines dropped" in line and "dropped=19984" in line for line in new), new[-3:]

        # A route plan of 11 000 targets: refused before any upstream attempt.
        other.clear()
        status, _, body = post(gw, gw.create_key("targets"))
        assert status == 500 and "11000 targets" in body["error"]["message"]
        assert "max_route_targets" in body["error"]["message"]
        assert other.requests() == []

        # Eight targets with ten retries each against a failing upstream: six attempts in all.
        status, headers, body = post(gw, gw.create_key("retries"), {
            **BODY, "messages": [{"role": "user", "content": "[[mock status=500]] fail"}]})
        assert status == 500, body
        assert len(gw.wait_log(headers["request-id"])["attempts"]) == 6

        # Budget limits that are NaN or negative fail the request, naming the plugin.
        for tenant in ("nan", "negative"):
            status, _, body = post(gw, gw.create_key(tenant))
            assert status == 500 and "plugin 'hostile'" in body["error"]["message"]
            assert "finite number" in body["error"]["message"], body


# --- 4. a compile bomb costs only its uploader -------------------------------------------------

def test_a_compile_bomb_is_refused_without_hurting_neighbours(gw):
    token = tenant_token(gw, "bombed")
    bomb = compile_bomb((PLUGIN_DIR / "tollgate_hostile.wasm").read_bytes(), 1, 100_000, 2_000)
    upload = {"plugins": [{"wasm": base64.b64encode(bomb).decode(), "label": "bomb"}]}
    result: dict = {}

    def attack():
        t0 = time.monotonic()
        result["answer"] = as_tenant(gw, token, "PUT", "/tenants/bombed/bundle", upload)
        result["took"] = time.monotonic() - t0

    with Neighbour(gw):
        attacker = threading.Thread(target=attack)
        attacker.start()
        time.sleep(0.3)
        # Another tenant's own upload compiles beside the bomb: uploads share at least two
        # workers, one per tenant, so the bomb holds one and this takes the next. (With
        # one upload worker per two cores, at least one, it waited out the bomb's budget on
        # a machine of two or three cores, such as CI's.) A custom section makes the bytes
        # new, so they are compiled, not found in the cache.
        unique = b"tollgate-test" + time.time_ns().to_bytes(8, "little")
        own = (PLUGIN_DIR / "tollgate_chaos.wasm").read_bytes() + section(0, bytes([13]) + unique)
        t0 = time.monotonic()
        status, _, v = as_tenant(gw, tenant_token(gw, "uploader"), "PUT", "/tenants/uploader/bundle",
                                 {"plugins": [{"wasm": base64.b64encode(own).decode(), "label": "own"}]})
        assert status == 201, v
        assert time.monotonic() - t0 < 2.5
        # Another tenant's bundle applies at once: no lock is held across the compile, and
        # the operator's plugin files compile in a lane of their own, so the neighbour does
        # not wait out the bomb's 3 s compile budget (it did, and sometimes timed out).
        t0 = time.monotonic()
        status, _, v = gw.admin("PUT", "/tenants/neighbour2/bundle",
                                {"plugins": [{"name": "metadata-policy", "config": {"required": ["env"]}}]})
        assert status == 201, v
        assert time.monotonic() - t0 < 2.5
        attacker.join(60)
    status, _, body = result["answer"]
    assert status == 400 and "compile_timeout_ms" in body["error"]["message"], body
    assert result["took"] < 20
    assert rss_mib(gw) < 400
    # The refusal is remembered: the same bytes are not compiled again.
    t0 = time.monotonic()
    status, _, body = as_tenant(gw, token, "PUT", "/tenants/bombed/bundle", upload)
    assert status == 400 and time.monotonic() - t0 < 2
    # Oversized components and core modules are refused before any compiling.
    big = {"plugins": [{"wasm": base64.b64encode(b"\0asm" + bytes(5 << 20)).decode()}]}
    status, _, body = as_tenant(gw, token, "PUT", "/tenants/bombed/bundle", big)
    assert status == 400 and "max_component_bytes" in body["error"]["message"]
    core = {"plugins": [{"wasm": base64.b64encode(b"\0asm\x01\0\0\0").decode()}]}
    status, _, body = as_tenant(gw, token, "PUT", "/tenants/bombed/bundle", core)
    assert status == 400 and "core WebAssembly module" in body["error"]["message"]


# --- 5. idle and slow sockets ------------------------------------------------------------------

def test_idle_and_slow_sockets_hold_only_their_clients_share(gw):
    host, port = urllib.parse.urlsplit(gw.url).hostname, urllib.parse.urlsplit(gw.url).port
    refused_before = metric(gw, "tollgate_connections_refused_total", cap="max_connections_per_client")

    def closed(s: socket.socket, wait: float) -> bool:
        s.settimeout(wait)
        try:
            while True:
                data = s.recv(4096)
                if not data:
                    return True
        except (socket.timeout, BlockingIOError):
            return False
        except OSError:
            return True

    socks = []
    try:
        for _ in range(400):
            s = socket.socket()
            s.bind(("127.0.0.2", 0))  # the attacker's address; the neighbour is 127.0.0.1
            s.connect((host, port))
            socks.append(s)
        with Neighbour(gw):
            time.sleep(0.3)
            open_ones = [s for s in socks if not closed(s, 0.01)]
            assert len(open_ones) <= 100, len(open_ones)
            # Slowloris on the rest: a request head that never ends.
            for s in open_ones:
                s.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-slow: ")
            time.sleep(0.5)
        # The header-read timeout (1.5 s) closes every one of them.
        assert all(closed(s, 3.0) for s in open_ones)
        # Connections the kernel queued while a loaded gateway was busy are refused as it
        # gets to them: wait for those (while they are still open) before counting.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and metric(
                gw, "tollgate_connections_refused_total", cap="max_connections_per_client") - refused_before < 300:
            time.sleep(0.05)
    finally:
        for s in socks:
            s.close()
    refused = metric(gw, "tollgate_connections_refused_total", cap="max_connections_per_client") - refused_before
    assert refused >= 300


# --- 6. a keyless flood ------------------------------------------------------------------------

def test_a_keyless_flood_costs_no_rows_and_delays_no_tenant(gw):
    import http.client
    before = metric(gw, "tollgate_unauthenticated_requests_total", reason="missing_key")
    host, port = urllib.parse.urlsplit(gw.url).hostname, urllib.parse.urlsplit(gw.url).port
    sent = [0]
    stop = threading.Event()

    def flood():
        conn = http.client.HTTPConnection(host, port, timeout=10)
        while not stop.is_set():
            try:
                conn.request("POST", "/v1/messages", body=json.dumps(BODY),
                             headers={"content-type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                if resp.status in (401, 429):
                    sent[0] += 1
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=10)

    threads = [threading.Thread(target=flood, daemon=True) for _ in range(6)]
    with Neighbour(gw) as n:
        for t in threads:
            t.start()
        time.sleep(1.0)
        # A real tenant's request is logged within a second or two, flood or not.
        status, headers, _ = post(gw, n.key)
        assert status == 200
        gw.wait_log(headers["request-id"], timeout=2.0)
        time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join(10)
    assert sent[0] > 500, sent
    counted = metric(gw, "tollgate_unauthenticated_requests_total", reason="missing_key") - before
    assert counted >= sent[0]
    # Not one of them became a log row.
    status, _, body = gw.admin("GET", "/logs?status=401&limit=1000")
    assert status == 200 and body["data"] == []
    assert rss_mib(gw) < 400


# --- 8. rolling windows say the truth ----------------------------------------------------------

def test_rolling_windows_never_overshoot_and_say_when_they_free(gw):
    key = gw.create_key("rolling", name="rolling-key")
    t0 = time.time()
    statuses = [post(gw, key, meta={"user": f"u{i}"})[0] for i in range(5)]
    assert statuses == [200] * 5
    status, headers, body = post(gw, key, meta={"user": "u9"})
    assert status == 429 and "key-rpm" in body["error"]["message"], body
    retry = int(headers["retry-after"])
    # The burst leaves the rolling minute exactly a minute after it arrived.
    assert 55 <= retry <= 61, retry
    status, _, view = gw.admin("GET", "/budgets?tenant=rolling")
    rpm = next(b for b in view["data"] if b["budget"] == "key-rpm:requests")
    assert rpm["spent"] + rpm["reserved"] == 5
    assert t0 * 1000 + 59_000 <= rpm["resets_at_ms"] <= t0 * 1000 + 61_500

    # A rolling week exhausted minutes (here: seconds) ago frees a week after the spend,
    # not at a calendar boundary.
    status, _, body = gw.admin("GET", "/budgets?tenant=rolling")
    weekly = [b for b in body["data"] if b["budget"] == "weekly-cost" and b["value"] == "u0"][0]
    week = 7 * 86_400_000
    sub = week // 60
    assert t0 * 1000 + week - 2_000 <= weekly["resets_at_ms"] <= t0 * 1000 + week + sub + 2_000, weekly


# --- 9. the smaller holes ----------------------------------------------------------------------

def test_keys_that_already_expired_are_refused_at_creation(gw):
    status, _, body = gw.admin("POST", "/tenants/neighbour/keys", {"expires_at": int(time.time() * 1000) - 1000})
    assert status == 400 and "in the past" in body["error"]["message"]


def test_a_refused_plugin_name_does_not_reveal_the_plugin_directory(gw):
    token = tenant_token(gw, "neighbour2")
    status, _, body = as_tenant(gw, token, "PUT", "/tenants/neighbour2/bundle",
                                {"plugins": [{"name": "no-such-plugin"}]})
    assert status == 400
    msg = body["error"]["message"]
    assert "no-such-plugin" in msg and str(PLUGIN_DIR) not in msg and "/" not in msg.split("'")[-1]


def test_plugins_see_only_coarse_clocks(gw):
    status, headers, _ = post(gw, gw.create_key("clock"))
    assert status == 200
    labels = dict(gw.wait_log(headers["request-id"])["decisions"][0]["annotations"])
    assert labels["clock.wall_sub_ms_ns"] == "0", labels
    assert int(labels["clock.monotonic_step_ns"]) >= 1_000_000, labels


def test_randomness_carries_nothing_from_one_call_to_the_next(gw):
    # Calls share pooled WASI contexts: what one call draws must not move what the next
    # sees (another tenant's calls included).
    key = gw.create_key("random")
    seen = set()
    for _ in range(4):
        status, headers, _ = post(gw, key)
        assert status == 200
        labels = dict(gw.wait_log(headers["request-id"])["decisions"][0]["annotations"])
        seen.add(labels["random.hash"])
    assert len(seen) == 1, seen


def test_estimate_fits_refuses_a_request_that_would_overshoot_a_small_cap(gw):
    key = gw.create_key("fits")
    # $0.001 a token: 64 output tokens reserve $0.064+, more than the $0.05 cap can take.
    status, _, body = post(gw, key, {**BODY, "max_tokens": 64})
    assert status == 429 and "small-cap" in body["error"]["message"], body
    # A request whose estimate fits is admitted.
    assert post(gw, key, {**BODY, "max_tokens": 8})[0] == 200


def test_hanging_up_while_the_provider_works_is_still_counted_and_billed(gw):
    # The attack: send, then leave before the (slow) answer, to slip past a rate limit
    # and be billed nothing while the provider does the work.
    key = gw.create_key("hangup")
    slow = {**BODY, "messages": [{"role": "user", "content": "[[mock delay_ms=1500]] hi"}]}
    for _ in range(2):
        try:
            post(gw, key, slow, timeout=0.3)
        except OSError:
            pass
    time.sleep(2.0)
    rows = [r for r in gw.logs(tenant="hangup", limit=10)]
    assert len(rows) == 2, rows
    for r in rows:
        assert r["status"] in (200, 499), r
        assert r["cost_nano"] > 0 and len(r["attempts"]) == 1, r
    # Both count against the key's two requests a minute.
    status, _, body = post(gw, key)
    assert status == 429 and "key-rpm" in body["error"]["message"], body
