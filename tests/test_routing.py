"""Routing, fallbacks, retries and load balancing (the model-router plugin), OpenAI
providers, the OpenAI front door and Anthropic <-> OpenAI translation, driven through the
official `anthropic` and `openai` SDKs against the real binary and mock upstreams."""

from __future__ import annotations

import json
import time
from collections import Counter

import anthropic
import openai
import pytest

from conftest import Gateway, Mock, http, toml_inline

OAI_KEY = "sk-mock-openai"

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Get the current weather in a given location",
    "input_schema": {
        "type": "object",
        "properties": {"location": {"type": "string", "description": "The city, e.g. Paris"}},
        "required": ["location"],
    },
}
OPENAI_WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": WEATHER_TOOL["description"],
        "parameters": WEATHER_TOOL["input_schema"],
    },
}
FAIL_OVER = {"statuses": [429, 500, 502, 503, 504], "timeout": True, "connect_error": True}


def router(config: dict) -> str:
    """A tenant plugin entry for model-router with `config` (TOML inline table via JSON)."""
    return f"[[tenants.plugins]]\nname = \"model-router\"\nconfig = {toml_inline(config)}\n"


@pytest.fixture(scope="module")
def anth():
    m = Mock("anth", flavor="anthropic")
    yield m
    m.process.stop()


@pytest.fixture(scope="module")
def anth2():
    m = Mock("anth2", flavor="anthropic")
    yield m
    m.process.stop()


@pytest.fixture(scope="module")
def oai():
    m = Mock("oai", flavor="openai", api_key=OAI_KEY)
    yield m
    m.process.stop()


@pytest.fixture(scope="module")
def gw(tmp_path_factory, anth, anth2, oai):
    tmp = tmp_path_factory.mktemp("routing")
    tenants = {
        # The documented example: engineering -> Anthropic, OpenAI fallback; dev -> cheaper model; else default.
        "routed": router({
            "rules": [
                {"name": "engineering", "when": {"metadata": {"team": {"equals": "engineering"}}},
                 "route": {"strategy": "fallback",
                           "targets": [{"provider": "anthropic"}, {"provider": "openai", "model": "gpt-4o"}],
                           "retry_on": FAIL_OVER}},
                {"name": "dev", "when": {"metadata": {"env": {"equals": "dev"}}},
                 "route": {"targets": [{"provider": "anthropic", "model": "claude-haiku-4-5"}]}},
            ],
            "default": {"targets": [{"provider": "anthropic-b"}]},
        }),
        "fallback": router({"default": {
            "strategy": "fallback", "attempt_timeout_ms": 1500, "retry_on": FAIL_OVER,
            "targets": [{"provider": "anthropic"}, {"provider": "openai", "model": "gpt-4o"}]}}),
        "refused": router({"default": {
            "strategy": "fallback", "retry_on": FAIL_OVER,
            "targets": [{"provider": "dead"}, {"provider": "anthropic-b"}]}}),
        "retry": router({"default": {
            "targets": [{"provider": "anthropic"}], "retries": 2, "backoff_ms": 50, "max_backoff_ms": 3000,
            "retry_on": FAIL_OVER}}),
        "balanced": router({"default": {
            "strategy": "load_balance",
            "targets": [{"provider": "anthropic", "weight": 70}, {"provider": "anthropic-b", "weight": 30}]}}),
        "to-openai": router({"default": {"targets": [{"provider": "openai", "model": "gpt-4o"}]}}),
        "to-anthropic": router({"default": {"targets": [{"provider": "anthropic", "model": "claude-sonnet-4-5"}]}}),
        "unrouted": "",
    }
    tenant_toml = "".join(f'\n[[tenants]]\nid = "{t}"\n{plugins}' for t, plugins in tenants.items())
    config = f"""
listen = "127.0.0.1:0"
data_dir = "{tmp / 'data'}"

[logs]
flush_ms = 50

[[providers]]
id = "anthropic"
kind = "anthropic"
base_url = "{anth.url}"

[[providers]]
id = "anthropic-b"
kind = "anthropic"
base_url = "{anth2.url}"

[[providers]]
id = "openai"
kind = "openai"
base_url = "{oai.url}"
api_key_env = "TEST_OPENAI_KEY"
models = ["gpt-4o", "gpt-4o-mini"]

[[providers]]
id = "dead"
kind = "openai-compatible"
base_url = "http://127.0.0.1:9"
connect_timeout_ms = 500
{tenant_toml}
"""
    g = Gateway(tmp, config, env={"TEST_OPENAI_KEY": OAI_KEY})
    yield g
    g.stop()


@pytest.fixture(autouse=True)
def clean(anth, anth2, oai):
    for m in (anth, anth2, oai):
        m.reset()
        m.clear()
    yield


def key(gw: Gateway, tenant: str, **fields) -> str:
    return gw.create_key(tenant, name=f"{tenant}-key", **fields)


def aclient(gw: Gateway, tenant: str, meta: dict | None = None, **kw) -> anthropic.Anthropic:
    headers = {"x-portkey-metadata": json.dumps(meta)} if meta else {}
    return anthropic.Anthropic(base_url=gw.url, api_key=key(gw, tenant), max_retries=0,
                               default_headers=headers, **kw)


def oclient(gw: Gateway, tenant: str, meta: dict | None = None) -> openai.OpenAI:
    headers = {"x-portkey-metadata": json.dumps(meta)} if meta else {}
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key(gw, tenant), max_retries=0,
                         default_headers=headers)


def ask(c: anthropic.Anthropic, text: str, model: str = "claude-sonnet-4-5", **kw):
    return c.messages.with_raw_response.create(
        model=model, max_tokens=64, messages=[{"role": "user", "content": text}], **kw)


# --- metadata-based routing -------------------------------------------------------------

def test_metadata_routes_engineering_to_anthropic(gw, anth, anth2):
    raw = ask(aclient(gw, "routed", {"team": "engineering", "env": "prod"}), "hello there")
    assert raw.headers["x-tollgate-provider"] == "anthropic"
    assert raw.headers["x-tollgate-model"] == "claude-sonnet-4-5"
    assert raw.headers["x-tollgate-attempt"] == "1"
    assert len(anth.requests()) == 1 and not anth2.requests()
    row = gw.wait_log(raw.headers["request-id"])
    route = [d for d in row["decisions"] if d["outcome"] == "route"]
    assert route and ["route_rule", "engineering"] in [list(a) for a in route[0]["annotations"]]


def test_metadata_routes_dev_to_cheaper_model(gw, anth):
    raw = ask(aclient(gw, "routed", {"team": "research", "env": "dev"}), "hello")
    assert raw.headers["x-tollgate-model"] == "claude-haiku-4-5"
    assert anth.requests()[0]["body"]["model"] == "claude-haiku-4-5"
    row = gw.wait_log(raw.headers["request-id"])
    assert row["requested_model"] == "claude-sonnet-4-5" and row["served_model"] == "claude-haiku-4-5"


def test_everyone_else_gets_the_default(gw, anth, anth2):
    raw = ask(aclient(gw, "routed", {"team": "sales", "env": "prod"}), "hello")
    assert raw.headers["x-tollgate-provider"] == "anthropic-b"
    assert len(anth2.requests()) == 1 and not anth.requests()


def test_unrouted_tenant_without_default_is_a_clear_400(gw):
    with pytest.raises(anthropic.BadRequestError) as e:
        ask(aclient(gw, "unrouted"), "hello")
    assert "default_provider" in e.value.message


# --- fallbacks ------------------------------------------------------------------------

@pytest.mark.parametrize("status", [429, 500, 503])
def test_fallback_on_status(gw, anth, oai, status):
    raw = ask(aclient(gw, "fallback"), f"[[mock status={status} only=anth]] hello")
    assert raw.parse().content[0].text
    assert raw.headers["x-tollgate-provider"] == "openai"
    assert raw.headers["x-tollgate-attempt"] == "2"
    row = gw.wait_log(raw.headers["request-id"])
    assert [(a["provider"], a.get("status")) for a in row["attempts"]] == [("anthropic", status), ("openai", 200)]
    assert str(status) in row["attempts"][0]["error"]
    assert row["provider"] == "openai" and row["served_model"] == "gpt-4o" and row["status"] == 200


def test_fallback_on_timeout(gw, oai):
    started = time.monotonic()
    raw = ask(aclient(gw, "fallback"), "[[mock delay_ms=5000 only=anth]] hello")
    assert time.monotonic() - started < 4.5
    assert raw.headers["x-tollgate-provider"] == "openai"
    row = gw.wait_log(raw.headers["request-id"])
    first = row["attempts"][0]
    assert first["provider"] == "anthropic" and "status" not in first and "1500 ms" in first["error"]


def test_fallback_on_refused_connection(gw, anth2):
    raw = ask(aclient(gw, "refused"), "hello")
    assert raw.headers["x-tollgate-provider"] == "anthropic-b"
    row = gw.wait_log(raw.headers["request-id"])
    assert row["attempts"][0]["provider"] == "dead" and "connect" in row["attempts"][0]["error"]
    assert row["attempts"][1] == {**row["attempts"][1], "provider": "anthropic-b", "status": 200}


def test_all_targets_failing_returns_the_last_upstream_error(gw):
    c = aclient(gw, "fallback")
    with pytest.raises(anthropic.APIStatusError) as e:
        ask(c, "[[mock status=503]] hello")
    assert e.value.status_code == 503
    rid = e.value.response.headers["request-id"]
    row = gw.wait_log(rid)
    assert [a["status"] for a in row["attempts"]] == [503, 503] and row["status"] == 503


def test_retry_with_backoff_honours_retry_after(gw, anth):
    anth.behave(status=429, retry_after=1, times=2)
    started = time.monotonic()
    raw = ask(aclient(gw, "retry"), "hello")
    elapsed = time.monotonic() - started
    assert raw.parse().content[0].text
    # Two 429s each asked for 1 s: the gateway waited both out instead of its 50 ms backoff.
    assert elapsed >= 2.0, elapsed
    row = gw.wait_log(raw.headers["request-id"])
    assert [a["status"] for a in row["attempts"]] == [429, 429, 200]
    assert raw.headers["x-tollgate-attempt"] == "3"


def test_no_retry_after_the_stream_started(gw, anth, oai):
    c = aclient(gw, "fallback")
    seen = []
    with pytest.raises(anthropic.APIStatusError):
        with c.messages.stream(model="claude-sonnet-4-5", max_tokens=64,
                               messages=[{"role": "user", "content": "[[mock drop_after=2 tokens=20]] go"}]) as s:
            for event in s:
                seen.append(event.type)
    assert "message_start" in seen
    assert len(anth.requests()) == 1 and not oai.requests()
    time.sleep(0.3)
    rows = [r for r in gw.logs(tenant="fallback", limit=5) if r["stream"]]
    assert len(rows[0]["attempts"]) == 1 and "interrupted" in rows[0]["error"]


def test_weighted_load_balancing_follows_weights(gw):
    c = aclient(gw, "balanced")
    served = Counter()
    for _ in range(1000):
        raw = c.messages.with_raw_response.create(
            model="claude-sonnet-4-5", max_tokens=4, messages=[{"role": "user", "content": "hi"}])
        served[raw.headers["x-tollgate-provider"]] += 1
    share = served["anthropic"] / 1000
    assert abs(share - 0.70) <= 0.05, served


# --- Anthropic client -> OpenAI target ------------------------------------------------

def test_anthropic_client_openai_target_text(gw, oai):
    raw = ask(aclient(gw, "to-openai"), "ping the gateway please",
              system="You are terse.", extra_headers={"anthropic-beta": "prompt-caching-2024-07-31"})
    msg = raw.parse()
    assert msg.type == "message" and msg.role == "assistant" and msg.stop_reason == "end_turn"
    assert "ping the gateway please" in msg.content[0].text
    sent = oai.requests()[0]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"]["model"] == "gpt-4o"
    assert sent["body"]["messages"][0] == {"role": "system", "content": "You are terse."}
    assert "anthropic-beta" not in sent["headers"] and "anthropic-version" not in sent["headers"]
    assert sent["headers"]["authorization"] == f"Bearer {OAI_KEY}"
    row = gw.wait_log(raw.headers["request-id"])
    assert row["usage"]["input_tokens"] == msg.usage.input_tokens > 0
    assert row["usage"]["output_tokens"] == msg.usage.output_tokens > 0


def test_anthropic_client_openai_target_stream(gw):
    c = aclient(gw, "to-openai")
    with c.messages.stream(model="claude-sonnet-4-5", max_tokens=64,
                           messages=[{"role": "user", "content": "[[mock tokens=12]] stream me"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert len(text.split()) == 12
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 12
    assert final.usage.input_tokens > 0
    time.sleep(0.3)
    row = gw.logs(tenant="to-openai", limit=1)[0]
    assert row["stream"] and row["status"] == 200
    assert row["usage"]["output_tokens"] == 12 and row["usage"]["input_tokens"] == final.usage.input_tokens


def test_anthropic_client_openai_target_tool_calls(gw, oai):
    c = aclient(gw, "to-openai")
    msg = c.messages.create(model="claude-sonnet-4-5", max_tokens=64, tools=[WEATHER_TOOL],
                            tool_choice={"type": "auto"},
                            messages=[{"role": "user", "content":
                                       "[[mock tool=get_weather tool_args='{\"location\":\"Paris\"}']] weather?"}])
    assert msg.stop_reason == "tool_use"
    use = next(b for b in msg.content if b.type == "tool_use")
    assert use.name == "get_weather" and use.input == {"location": "Paris"}
    assert oai.requests()[0]["body"]["tools"][0]["function"]["name"] == "get_weather"
    # The tool result goes back as a `tool` message and the conversation continues.
    follow = c.messages.create(model="claude-sonnet-4-5", max_tokens=64, tools=[WEATHER_TOOL], messages=[
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in msg.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18C and sunny"}]},
    ])
    assert "18C and sunny" in follow.content[0].text
    sent = oai.requests()[-1]["body"]["messages"]
    assert sent[-1]["role"] == "tool" and sent[-1]["tool_call_id"] == use.id


def test_anthropic_client_openai_target_streamed_tool_call(gw):
    c = aclient(gw, "to-openai")
    with c.messages.stream(model="claude-sonnet-4-5", max_tokens=64, tools=[WEATHER_TOOL],
                           messages=[{"role": "user", "content":
                                      "[[mock tool=get_weather tool_args='{\"location\":\"Oslo\"}']] weather?"}]) as s:
        final = s.get_final_message()
    use = next(b for b in final.content if b.type == "tool_use")
    assert final.stop_reason == "tool_use" and use.input == {"location": "Oslo"}


# --- OpenAI client -> Anthropic and OpenAI targets -------------------------------------

def test_openai_client_anthropic_target_text(gw, anth):
    c = oclient(gw, "to-anthropic")
    raw = c.chat.completions.with_raw_response.create(
        model="gpt-4o", max_tokens=64,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello anthropic"}])
    done = raw.parse()
    assert done.object == "chat.completion" and done.choices[0].finish_reason == "stop"
    assert "hello anthropic" in done.choices[0].message.content
    assert raw.headers["x-tollgate-provider"] == "anthropic"
    sent = anth.requests()[0]
    assert sent["path"] == "/v1/messages" and sent["body"]["system"] == "Be brief."
    assert sent["body"]["model"] == "claude-sonnet-4-5"
    row = gw.wait_log(raw.headers["request-id"])
    assert row["endpoint"] == "chat_completions"
    assert row["usage"]["output_tokens"] == done.usage.completion_tokens > 0
    assert done.usage.prompt_tokens == row["usage"]["input_tokens"] > 0


def test_openai_client_anthropic_target_stream_with_usage(gw):
    c = oclient(gw, "to-anthropic")
    chunks = list(c.chat.completions.create(
        model="gpt-4o", max_tokens=64, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "[[mock tokens=9]] stream please"}]))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert len(text.split()) == 9
    finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 9


def test_openai_client_anthropic_target_tool_calls(gw):
    c = oclient(gw, "to-anthropic")
    done = c.chat.completions.create(
        model="gpt-4o", max_tokens=64, tools=[OPENAI_WEATHER_TOOL],
        messages=[{"role": "user", "content": "[[mock tool=get_weather tool_args='{\"location\":\"Rome\"}']] w?"}])
    call = done.choices[0].message.tool_calls[0]
    assert done.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"location": "Rome"}
    stream = c.chat.completions.create(
        model="gpt-4o", max_tokens=64, tools=[OPENAI_WEATHER_TOOL], stream=True,
        messages=[{"role": "user", "content": "[[mock tool=get_weather tool_args='{\"location\":\"Rome\"}']] w?"}])
    args, names, finish = "", [], None
    for ch in stream:
        for tc in (ch.choices[0].delta.tool_calls or []) if ch.choices else []:
            if tc.function and tc.function.name:
                names.append(tc.function.name)
            args += (tc.function.arguments or "") if tc.function else ""
        if ch.choices and ch.choices[0].finish_reason:
            finish = ch.choices[0].finish_reason
    assert names == ["get_weather"] and json.loads(args) == {"location": "Rome"} and finish == "tool_calls"


def test_openai_client_openai_target_passthrough(gw, oai):
    c = oclient(gw, "to-openai")
    done = c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi there"}])
    assert "hi there" in done.choices[0].message.content
    assert oai.requests()[0]["body"]["model"] == "gpt-4o"
    chunks = list(c.chat.completions.create(model="gpt-4o", stream=True,
                                            messages=[{"role": "user", "content": "[[mock tokens=5]] hi"}]))
    # The gateway asked upstream for usage on the client's behalf but does not leak the extra chunk.
    assert all(ch.choices for ch in chunks)
    assert oai.requests()[-1]["body"]["stream_options"] == {"include_usage": True}
    time.sleep(0.3)
    row = gw.logs(tenant="to-openai", limit=1)[0]
    assert row["usage"]["output_tokens"] == 5


def test_openai_errors_are_openai_shaped(gw):
    c = oclient(gw, "to-anthropic")
    with pytest.raises(openai.RateLimitError) as e:
        c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "[[mock status=429]] x"}])
    assert e.value.body["type"] == "rate_limit_error" or e.value.code is None
    bad = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="tg-nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        bad.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert isinstance(e.value.body, dict) and e.value.body.get("message")
    status, _, body = http("POST", f"{gw.url}/v1/chat/completions", b"{nope",
                           {"authorization": f"Bearer {key(gw, 'to-anthropic')}"})
    assert status == 400 and "message" in body["error"] and "type" in body["error"]


def test_models_list_parses_in_both_sdks(gw):
    ids = [m.id for m in oclient(gw, "to-openai").models.list().data]
    assert "gpt-4o" in ids and "gpt-4o-mini" in ids
    ids = [m.id for m in aclient(gw, "to-openai").models.list().data]
    assert "gpt-4o" in ids
    limited = gw.create_key("to-openai", name="mini-only", models=["gpt-4o-mini"])
    c = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=limited, max_retries=0)
    assert [m.id for m in c.models.list().data] == ["gpt-4o-mini"]


class ForwardProxy:
    """A plain HTTP forward proxy (absolute-form requests, as `HTTP_PROXY` clients send
    them) that records each request line and relays it to the origin."""

    def __init__(self):
        import http.server
        import threading
        import urllib.request

        seen: list[str] = []
        self.seen = seen
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def relay(self):
                seen.append(f"{self.command} {self.path}")
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "proxy-connection", "connection", "content-length")}
                req = urllib.request.Request(self.path, data=body, headers=headers, method=self.command)
                try:
                    resp = opener.open(req, timeout=10)
                    status, rh, data = resp.status, resp.headers, resp.read()
                except urllib.error.HTTPError as e:
                    status, rh, data = e.code, e.headers, e.read()
                self.send_response(status)
                for k, v in rh.items():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = relay

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


def test_a_provider_behind_the_environments_proxy_is_reached_through_it(tmp_path, anth):
    # The providers' client goes to upstreams directly; one that HTTP_PROXY covers (and
    # NO_PROXY does not exempt) is reached through the proxy, as reqwest did before.
    proxy = ForwardProxy()
    config = f"""
listen = "127.0.0.1:0"
data_dir = "{tmp_path / 'data'}"
default_provider = "anthropic"

[logs]
flush_ms = 50

[[providers]]
id = "anthropic"
kind = "anthropic"
base_url = "{anth.url}"

[[tenants]]
id = "proxied"
"""
    g = Gateway(tmp_path, config, env={"HTTP_PROXY": proxy.url, "NO_PROXY": ""})
    try:
        raw = ask(aclient(g, "proxied"), "through the proxy")
        assert raw.http_response.status_code == 200
        assert raw.parse().content[0].text
        assert proxy.seen == [f"POST {anth.url}/v1/messages"], proxy.seen
        assert len(anth.requests()) == 1
    finally:
        g.stop()
        proxy.stop()
