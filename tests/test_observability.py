"""Machine-readable observability and log handling: `/metrics` scraped and parsed with
the Prometheus project's own parser, OpenTelemetry spans received by a local OTLP/HTTP
listener, log export as JSON lines and CSV, body capture, the log and analytics APIs,
and retention. Requests go through the official `anthropic` and `openai` SDKs against
the real binary and a mock upstream."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anthropic
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import ADMIN_TOKEN, Gateway, Mock, http, tollgate

MODEL = "claude-sonnet-4-5"


class Collector:
    """A local OTLP/HTTP receiver: keeps every span POSTed to /v1/traces."""

    def __init__(self):
        self.spans: list[dict] = []
        self.resources: list[dict] = []
        me = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
                assert self.path == "/v1/traces", self.path
                for rs in body["resourceSpans"]:
                    me.resources.append(rs["resource"])
                    for ss in rs["scopeSpans"]:
                        me.spans.extend(ss["spans"])
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, pred, timeout: float = 10) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [s for s in self.spans if pred(s)]
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no matching span among {len(self.spans)}")


def attrs(span: dict) -> dict:
    out = {}
    for a in span.get("attributes", []):
        v = a["value"]
        out[a["key"]] = next(iter(v.values()))
    return out


@pytest.fixture(scope="module")
def collector():
    c = Collector()
    yield c
    c.server.shutdown()


@pytest.fixture(scope="module")
def upstream():
    m = Mock("obs-upstream", flavor="both")
    yield m
    m.process.stop()


@pytest.fixture(scope="module")
def gw(tmp_path_factory, upstream, collector):
    tmp = tmp_path_factory.mktemp("observability")
    g = Gateway(tmp, f"""
listen = "127.0.0.1:0"
data_dir = "{tmp / 'data'}"
default_provider = "main"

[logs]
flush_ms = 50

[otlp]
endpoint = "{collector.url}"
service_name = "tollgate-test"

[[providers]]
id = "main"
kind = "anthropic"
base_url = "{upstream.url}"

[[tenants]]
id = "acme"
capture_bodies = true
[[tenants.plugins]]
name = "metadata-policy"
config = {{ allowed_values = {{ env = ["prod", "dev"] }} }}
[[tenants.plugins]]
name = "budget-limit"
config = {{ limits = [{{ name = "team-daily", scope = "team", metric = "cost", period = "day", limit = 5.0 }}] }}

[[tenants]]
id = "quiet"
""")
    yield g
    g.stop()


def anth(gw: Gateway, tenant: str, meta: dict | None = None, **headers) -> anthropic.Anthropic:
    h = dict(headers)
    if meta is not None:
        h["x-portkey-metadata"] = json.dumps(meta)
    return anthropic.Anthropic(base_url=gw.url, api_key=gw.create_key(tenant), max_retries=0, default_headers=h)


def ask(c: anthropic.Anthropic, text: str = "hello"):
    return c.messages.with_raw_response.create(model=MODEL, max_tokens=32,
                                               messages=[{"role": "user", "content": text}])


def scrape(gw: Gateway) -> dict:
    status, _, text = http("GET", f"{gw.url}/metrics", headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    assert status == 200, text
    return {f.name: f for f in text_string_to_metric_families(text)}


def sample(families: dict, family: str, name: str, **labels) -> float:
    for s in families[family].samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise AssertionError(f"no {name} with {labels}")


def test_metrics_are_scraped_and_parse(gw):
    c = anth(gw, "acme", {"team": "engineering", "env": "prod"})
    ids = [ask(c).headers["request-id"] for _ in range(3)]
    with pytest.raises(anthropic.BadRequestError) as denied:
        ask(anth(gw, "acme", {"team": "engineering", "env": "qa"}))
    with c.messages.stream(model=MODEL, max_tokens=32,
                           messages=[{"role": "user", "content": "[[mock tokens=5 gap_ms=5]]"}]) as s:
        s.get_final_message()
        streamed = s.response.headers["request-id"]
    for rid in ids + [denied.value.response.headers["request-id"], streamed]:
        gw.wait_log(rid)
    time.sleep(0.2)

    fam = scrape(gw)
    labels = dict(tenant="acme", provider="main", model=MODEL, endpoint="messages")
    assert sample(fam, "tollgate_requests", "tollgate_requests_total", status="200", **labels) >= 4
    assert sample(fam, "tollgate_requests", "tollgate_requests_total", status="400", tenant="acme") == 1
    assert fam["tollgate_request_duration_seconds"].type == "histogram"
    count = sample(fam, "tollgate_request_duration_seconds", "tollgate_request_duration_seconds_count", **labels)
    inf = sample(fam, "tollgate_request_duration_seconds", "tollgate_request_duration_seconds_bucket", le="+Inf", **labels)
    assert count == inf >= 4
    assert sample(fam, "tollgate_time_to_first_token_seconds", "tollgate_time_to_first_token_seconds_count",
                  **labels) >= 1
    assert sample(fam, "tollgate_tokens", "tollgate_tokens_total", type="output", **labels) > 0
    assert sample(fam, "tollgate_cost_usd", "tollgate_cost_usd_total", **labels) > 0
    calls = sample(fam, "tollgate_plugin_calls", "tollgate_plugin_calls_total", tenant="acme",
                   plugin="metadata-policy", outcome="allow")
    assert calls >= 4
    assert sample(fam, "tollgate_plugin_calls", "tollgate_plugin_calls_total", plugin="metadata-policy",
                  outcome="deny") == 1
    assert sample(fam, "tollgate_plugin_call_duration_seconds", "tollgate_plugin_call_duration_seconds_count",
                  tenant="acme", plugin="metadata-policy") >= 5
    assert sample(fam, "tollgate_plugin_failures", "tollgate_plugin_failures_total", tenant="acme",
                  plugin="budget-limit") == 0
    assert sample(fam, "tollgate_upstream_attempts", "tollgate_upstream_attempts_total", provider="main",
                  outcome="2xx") >= 4
    limit = sample(fam, "tollgate_budget_limit", "tollgate_budget_limit", tenant="acme", budget="team-daily",
                   value="engineering")
    used = sample(fam, "tollgate_budget_used", "tollgate_budget_used", budget="team-daily", value="engineering")
    assert limit == 5.0 and 0 < used < limit
    assert sample(fam, "tollgate_plugin_instances_limit", "tollgate_plugin_instances_limit", tenant="acme") >= 1


def test_metrics_show_the_active_bundle_version(gw):
    status, _, v = gw.admin("PUT", "/tenants/quiet/bundle", {"plugins": []})
    assert status == 201, v
    assert sample(scrape(gw), "tollgate_bundle_version", "tollgate_bundle_version", tenant="quiet") == v["version"]


def test_metrics_need_the_admin_token(gw):
    status, _, body = http("GET", f"{gw.url}/metrics")
    assert status == 401 and "admin token" in body["error"]["message"]
    status, _, _ = http("GET", f"{gw.url}/metrics", headers={"authorization": "Bearer nope"})
    assert status == 401


def test_spans_reach_the_collector_with_gen_ai_attributes(gw, collector):
    c = anth(gw, "acme", {"team": "engineering", "env": "prod"}, **{"x-portkey-trace-id": "session-otel"})
    first = ask(c).headers["request-id"]
    second = ask(c).headers["request-id"]
    roots = {}
    for rid in (first, second):
        roots[rid] = collector.wait_for(lambda s, rid=rid: attrs(s).get("tollgate.request_id") == rid)[0]
    root = roots[first]
    a = attrs(root)
    assert root["name"] == f"chat {MODEL}" and root["kind"] == 2
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.request.model"] == MODEL and a["gen_ai.response.model"] == MODEL
    assert a["gen_ai.provider.name"] == "anthropic"
    assert int(a["gen_ai.usage.output_tokens"]) > 0 and int(a["gen_ai.usage.input_tokens"]) > 0
    assert a["http.response.status_code"] == "200"
    assert a["tollgate.metadata.team"] == "engineering" and a["tollgate.tenant"] == "acme"
    assert int(root["endTimeUnixNano"]) >= int(root["startTimeUnixNano"])
    # Requests of one x-portkey-trace-id share a trace.
    assert roots[second]["traceId"] == root["traceId"] and roots[second]["spanId"] != root["spanId"]
    children = [s for s in collector.spans if s.get("parentSpanId") == root["spanId"]]
    names = sorted(s["name"] for s in children)
    assert names == [f"chat {MODEL}", "plugin budget-limit", "plugin metadata-policy"], names
    upstream = next(s for s in children if s["kind"] == 3)
    assert attrs(upstream)["http.response.status_code"] == "200"
    for s in children:
        assert s["traceId"] == root["traceId"]
        assert int(root["startTimeUnixNano"]) <= int(s["startTimeUnixNano"]) <= int(root["endTimeUnixNano"])
    assert any(attrs(r).get("service.name") == "tollgate-test" for r in collector.resources)


def test_a_callers_traceparent_is_continued_and_failures_are_errors(gw, collector):
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    c = anth(gw, "acme", {"env": "qa"}, traceparent=f"00-{trace}-00f067aa0ba902b7-01")
    with pytest.raises(anthropic.BadRequestError) as e:
        ask(c)
    rid = e.value.response.headers["request-id"]
    root = collector.wait_for(lambda s: attrs(s).get("tollgate.request_id") == rid)[0]
    assert root["traceId"] == trace and root["parentSpanId"] == "00f067aa0ba902b7"
    assert root["status"]["code"] == 2 and attrs(root)["error.type"] == "400"
    deny = collector.wait_for(lambda s: s.get("parentSpanId") == root["spanId"])[0]
    assert attrs(deny)["tollgate.plugin.outcome"] == "deny"


def test_bodies_are_kept_only_where_capture_is_on(gw):
    c = anth(gw, "acme", {"team": "engineering", "env": "dev"})
    rid = ask(c, "keep me").headers["request-id"]
    with c.messages.stream(model=MODEL, max_tokens=32,
                           messages=[{"role": "user", "content": "[[mock tokens=4]] stream me"}]) as s:
        s.get_final_message()
        srid = s.response.headers["request-id"]
    quiet = ask(anth(gw, "quiet")).headers["request-id"]
    for r in (rid, srid, quiet):
        gw.wait_log(r)
    status, _, row = gw.admin("GET", f"/logs/{rid}")
    assert status == 200 and row["body_capture"] is True
    assert json.loads(row["bodies"]["request"])["messages"][0]["content"] == "keep me"
    assert json.loads(row["bodies"]["response"])["type"] == "message"
    _, _, streamed = gw.admin("GET", f"/logs/{srid}")
    assert "event: message_stop" in streamed["bodies"]["response"]
    _, _, other = gw.admin("GET", f"/logs/{quiet}")
    assert other["body_capture"] is False and other["bodies"] is None
    assert gw.admin("GET", "/logs/req_nope")[0] == 404
    # A tenant filter that does not match hides the row.
    assert gw.admin("GET", f"/logs/{rid}?tenant=quiet")[0] == 404


def test_log_filters_traces_and_analytics(gw):
    o = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=gw.create_key("acme"), max_retries=0,
                      default_headers={"x-portkey-metadata": json.dumps({"team": "sales", "env": "prod"}),
                                       "x-portkey-trace-id": "sales-session"})
    for _ in range(2):
        raw = o.chat.completions.with_raw_response.create(model=MODEL, max_tokens=16,
                                                          messages=[{"role": "user", "content": "hi"}])
        gw.wait_log(raw.headers["request-id"])
    rows = gw.logs(tenant="acme", team="sales", provider="main", status="2xx")
    assert len(rows) == 2 and {r["endpoint"] for r in rows} == {"chat_completions"}
    assert gw.logs(tenant="acme", status="4xx") and all(400 <= r["status"] < 500 for r in gw.logs(status="4xx"))
    assert [r["trace_id"] for r in gw.logs(q="sales-sess")] == ["sales-session"] * 2
    status, _, t = gw.admin("GET", "/traces/sales-session")
    assert status == 200 and t["requests"] == 2 and t["cost_usd"] > 0
    status, _, listed = gw.admin("GET", "/traces?tenant=acme&since=1h")
    assert "sales-session" in {x["trace_id"] for x in listed["data"]}
    status, _, a = gw.admin("GET", "/analytics?tenant=acme&since=1h&by=team&bucket=1m")
    assert status == 200, a
    assert a["bucket_ms"] == 60_000 and len(a["buckets"]) >= 60
    teams = {s["group"]: s for s in a["series"]}
    assert teams["sales"]["total"]["requests"] == 2
    assert sum(teams["sales"]["requests"]) == 2 and teams["sales"]["total"]["latency_p95_ms"] is not None
    assert a["total"]["total"]["requests"] >= sum(s["total"]["requests"] for s in a["series"]) - 1e-9
    assert gw.admin("GET", "/analytics?by=colour")[0] == 400
    assert gw.admin("GET", "/analytics?since=30d&bucket=1s")[0] == 400


def test_logs_export_as_jsonl_and_csv(gw, tmp_path):
    env = {"TOLLGATE_URL": gw.url, "TOLLGATE_ADMIN_TOKEN": ADMIN_TOKEN}
    expected = gw.logs(tenant="acme", limit=1000)
    out = tollgate("logs", "export", "--format", "jsonl", "--tenant", "acme", env=env)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert sorted(r["request_id"] for r in lines) == sorted(r["request_id"] for r in expected)
    assert [r["ts_ms"] for r in lines] == sorted(r["ts_ms"] for r in lines), "oldest first"
    path = tmp_path / "logs.csv"
    out = tollgate("logs", "export", "--format", "csv", "--tenant", "acme", "--filter", "team=sales",
                   "-o", str(path), env=env)
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert len(rows) == 2 and {r["team"] for r in rows} == {"sales"}
    assert float(rows[0]["cost_usd"]) > 0 and rows[0]["provider"] == "main"
    out = tollgate("logs", "export", "--format", "xml", env=env)
    assert out.returncode != 0 and "format" in out.stderr


def test_retention_deletes_old_logs_per_tenant(tmp_path, upstream):
    config = f"""
listen = "127.0.0.1:0"
data_dir = "{tmp_path / 'data'}"
default_provider = "main"

[logs]
flush_ms = 50
retention_days = 7

[[providers]]
id = "main"
kind = "anthropic"
base_url = "{upstream.url}"

[[tenants]]
id = "short"
log_retention_days = 1

[[tenants]]
id = "forever"
log_retention_days = 0

[[tenants]]
id = "default"
"""
    g = Gateway(tmp_path, config)
    try:
        for t in ("short", "forever", "default"):
            g.wait_log(ask(anth(g, t)).headers["request-id"])
        assert g.stop() == 0
        # Age every row: 3 days old (past "short"'s 1 day, within the default 7) and
        # 10 days old copies (past the default too).
        db = sqlite3.connect(tmp_path / "data" / "tollgate.db")
        day = 86_400_000
        now = int(time.time() * 1000)
        db.execute("UPDATE request_logs SET ts_ms = ?", (now - 3 * day,))
        db.execute("""INSERT INTO request_logs SELECT request_id || '-old', ? , tenant_id, key_id, trace_id, endpoint,
                      team, user, metadata, requested_model, served_model, provider, status, stream, latency_ms,
                      ttft_ms, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, decisions, error,
                      attempts, cost_nano, cost, bundle_version, platform_version, max_tokens, body_bytes,
                      message_count, admitted FROM request_logs""", (now - 10 * day,))
        db.commit()
        db.close()
        g.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            left = {(r["tenant_id"], r["request_id"].endswith("-old")) for r in g.logs(limit=1000)}
            if left == {("forever", False), ("forever", True), ("default", False)}:
                break
            time.sleep(0.1)
        assert left == {("forever", False), ("forever", True), ("default", False)}, left
    finally:
        g.stop()
