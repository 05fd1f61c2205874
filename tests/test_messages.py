"""The Anthropic Messages API through the gateway, driven by the official `anthropic` SDK."""

from __future__ import annotations

import json

import anthropic
import pytest

from conftest import http

META = {"tenant": "acme", "user": "dev@acme.com", "team": "engineering", "env": "prod"}


def client(gateway, key: str, meta: dict | None = META, **kw) -> anthropic.Anthropic:
    headers = {"x-portkey-metadata": json.dumps(meta)} if meta is not None else {}
    return anthropic.Anthropic(base_url=gateway.url, auth_token=key, max_retries=0, default_headers=headers, **kw)


@pytest.fixture(scope="module")
def acme_key(gateway):
    return gateway.create_key("acme", name="sdk-tests")


def test_non_streaming_message_is_forwarded_and_logged(gateway, mock_a, acme_key):
    mock_a.clear()
    c = client(gateway, acme_key)
    raw = c.messages.with_raw_response.create(
        model="claude-sonnet-4-5", max_tokens=64,
        messages=[{"role": "user", "content": "Hello there"}],
        extra_headers={"anthropic-beta": "prompt-caching-2024-07-31", "x-portkey-trace-id": "trace-nonstream"},
    )
    msg = raw.parse()
    assert msg.type == "message" and msg.role == "assistant"
    assert "Hello there" in msg.content[0].text
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0
    request_id = raw.headers["request-id"]
    assert request_id.startswith("req_")
    assert raw.headers["x-tollgate-provider"] == "mock-a"

    # The upstream saw the provider's key, not the gateway key, and the client's Anthropic headers.
    sent = mock_a.requests()[-1]
    headers = {k.lower(): v for k, v in sent["headers"].items()}
    assert headers["x-api-key"] == "upstream-secret-a"
    assert acme_key not in json.dumps(headers)
    assert headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert headers["anthropic-version"] == raw.http_request.headers["anthropic-version"]
    assert "x-portkey-metadata" not in headers

    row = gateway.wait_log(request_id)
    assert row["tenant_id"] == "acme" and row["status"] == 200
    assert row["trace_id"] == "trace-nonstream"
    assert dict(row["metadata"]) == META
    assert row["team"] == "engineering" and row["user"] == "dev@acme.com"
    assert row["requested_model"] == "claude-sonnet-4-5" and row["served_model"] == "claude-sonnet-4-5"
    assert row["provider"] == "mock-a"
    assert row["usage"]["input_tokens"] == msg.usage.input_tokens
    assert row["usage"]["output_tokens"] == msg.usage.output_tokens
    assert row["decisions"][0]["plugin"] == "metadata-policy"
    assert row["decisions"][0]["outcome"] == "allow"
    assert row["latency_ms"] >= 0


def test_streaming_message_passes_events_through(gateway, acme_key):
    c = client(gateway, acme_key)
    events = []
    with c.messages.stream(
        model="claude-sonnet-4-5", max_tokens=64,
        messages=[{"role": "user", "content": "stream me a reply please"}],
    ) as stream:
        for event in stream:
            events.append(event.type)
        final = stream.get_final_message()
        request_id = stream.response.headers["request-id"]
    assert events[0] == "message_start"
    assert "content_block_delta" in events or "text" in events
    assert events[-1] == "message_stop"
    assert "stream me a reply please" in final.content[0].text
    assert final.stop_reason == "end_turn"
    row = gateway.wait_log(request_id)
    assert row["stream"] is True and row["status"] == 200
    assert row["usage"]["output_tokens"] == final.usage.output_tokens
    assert row["usage"]["input_tokens"] == final.usage.input_tokens
    assert row["ttft_ms"] is not None


def test_count_tokens(gateway, acme_key):
    c = client(gateway, acme_key)
    r = c.messages.count_tokens(model="claude-sonnet-4-5", messages=[{"role": "user", "content": "count these words"}])
    assert r.input_tokens > 0


def test_models_list(gateway, acme_key):
    c = client(gateway, acme_key)
    models = c.models.list()
    ids = [m.id for m in models.data]
    assert ids and all(isinstance(i, str) for i in ids)


def test_x_api_key_and_portkey_key_headers(gateway, acme_key):
    meta = {"x-portkey-metadata": json.dumps(META)}
    c = anthropic.Anthropic(base_url=gateway.url, max_retries=0, api_key=None, auth_token=None,
                            default_headers={"x-api-key": acme_key, **meta})
    msg = c.messages.create(model="claude-sonnet-4-5", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    assert msg.content[0].text
    body = {"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    status, _, resp = http("POST", f"{gateway.url}/v1/messages", body, {"x-portkey-api-key": acme_key, **meta})
    assert status == 200, resp


@pytest.mark.parametrize(
    "header, expected",
    [
        ('{"team":"eng",}', "trailing comma at line 1 column 15"),
        ('["team","eng"]', "must be a JSON object of string values, got an array"),
        ('"team=eng"', "got a string"),
        ('{"team":"eng","env":1}', "value of 'env' must be a string, got a number"),
        ('{"team":{"name":"eng"}}', "value of 'team' must be a string, got an object"),
        ('{"team":"eng"', "not valid JSON"),
    ],
)
def test_bad_metadata_is_a_400_that_says_what_is_wrong(gateway, acme_key, header, expected):
    c = anthropic.Anthropic(base_url=gateway.url, auth_token=acme_key, max_retries=0,
                            default_headers={"x-portkey-metadata": header})
    with pytest.raises(anthropic.BadRequestError) as e:
        c.messages.create(model="claude-sonnet-4-5", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 400
    err = e.value.body["error"]
    assert err["type"] == "invalid_request_error"
    assert "x-portkey-metadata" in err["message"] and expected in err["message"], err["message"]
    assert e.value.response.headers["request-id"].startswith("req_")


def test_metadata_keys_are_case_sensitive(gateway, acme_key):
    # "Env" is not "env": the policy still finds env missing.
    c = client(gateway, acme_key, meta={"Env": "prod"})
    with pytest.raises(anthropic.BadRequestError) as e:
        c.messages.create(model="claude-sonnet-4-5", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    assert "'env'" in e.value.body["error"]["message"]


def test_bad_body_is_a_400(gateway, acme_key):
    for body, needle in [(b"{not json", "not valid"), (b"[]", "JSON object"), (b'{"max_tokens":5}', "model")]:
        status, headers, resp = http("POST", f"{gateway.url}/v1/messages", body,
                                     {"authorization": f"Bearer {acme_key}", "x-portkey-metadata": json.dumps(META)})
        assert status == 400, resp
        assert resp["type"] == "error" and resp["error"]["type"] == "invalid_request_error"
        assert needle in resp["error"]["message"]


def test_unknown_route_is_anthropic_404(gateway):
    status, headers, body = http("GET", f"{gateway.url}/v1/nope")
    assert status == 404 and body["error"]["type"] == "not_found_error"
    assert headers["request-id"].startswith("req_")


def test_upstream_5xx_is_passed_through(gateway, acme_key):
    c = client(gateway, acme_key)
    with pytest.raises(anthropic.APIStatusError) as e:
        c.messages.create(model="claude-sonnet-4-5", max_tokens=16,
                          messages=[{"role": "user", "content": "[[mock status=503]] please fail"}])
    assert e.value.status_code == 503
    assert e.value.body["type"] == "error"
    assert e.value.body["error"]["type"] == "overloaded_error"
    row = gateway.wait_log(e.value.response.headers["request-id"])
    assert row["status"] == 503 and "upstream 503" in row["error"]


def test_upstream_garbage_is_a_502_not_a_crash(gateway, acme_key):
    c = client(gateway, acme_key)
    with pytest.raises(anthropic.APIStatusError) as e:
        c.messages.create(model="claude-sonnet-4-5", max_tokens=16,
                          messages=[{"role": "user", "content": "[[mock garbage=1]]"}])
    assert e.value.status_code == 502
    assert e.value.body["error"]["type"] == "api_error"


def test_stream_dropped_midway_surfaces_as_error_event(gateway, acme_key):
    c = client(gateway, acme_key)
    seen = []
    with pytest.raises(anthropic.APIStatusError) as e:
        with c.messages.stream(model="claude-sonnet-4-5", max_tokens=64,
                               messages=[{"role": "user", "content": "[[mock drop_after=2 tokens=20]] go"}]) as s:
            for event in s:
                seen.append(event.type)
    assert "message_start" in seen
    assert "message_stop" not in seen
    assert "interrupted" in str(e.value) or "ended before" in str(e.value)
