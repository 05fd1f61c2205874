"""The same policy (`team-hours`) written in Rust, Python and JavaScript, each uploaded in
a bundle to its own tenant, behaves the same through the real binary with the official
SDKs: allow with a label, deny with its message (in each client's error shape), the route
plan it returns, and the daily cap its budget hook grants."""

from __future__ import annotations

import base64
import datetime
import json

import anthropic
import openai
import pytest

from conftest import PLUGIN_DIR, Gateway, Mock

LANGS = {"rust": "team_hours", "python": "team_hours_py", "js": "team_hours_js"}
PROMPT = "[[mock tokens=5]] hello"


def closed_hours() -> str:
    """An hour-long window that does not contain now (UTC), even if the hour turns."""
    h = datetime.datetime.now(datetime.timezone.utc).hour
    start = h + 2 if h <= 21 else 2
    return f"{start:02d}:00-{start + 1:02d}:00"


CONFIG = {
    "teams": {
        "engineering": {"models": ["claude-*"], "route": [{"provider": "b"}, {"provider": "a"}]},
        "nightshift": {"models": ["claude-*"], "hours": closed_hours()},
        "thrifty": {"models": ["claude-*"], "daily_usd": 0.000001},
    },
}


@pytest.fixture(scope="module")
def mocks():
    a, b = Mock("lang-a", flavor="both"), Mock("lang-b", flavor="both")
    yield a, b
    a.process.stop()
    b.process.stop()


@pytest.fixture(scope="module")
def gw(tmp_path_factory, mocks):
    a, b = mocks
    tmp = tmp_path_factory.mktemp("languages")
    tenants = "".join(
        f"""
[[tenants]]
id = "{lang}"
# An interpreter's fresh instance needs more room than a Rust plugin's.
sandbox = {{ memory_mib = 48, deadline_ms = 100 }}
"""
        for lang in LANGS
    )
    g = Gateway(tmp, f"""
listen = "127.0.0.1:0"
data_dir = "{tmp / 'data'}"
default_provider = "a"

[logs]
flush_ms = 50

[[providers]]
id = "a"
kind = "anthropic"
base_url = "{a.url}"

[[providers]]
id = "b"
kind = "anthropic"
base_url = "{b.url}"
{tenants}
""")
    for lang, file in LANGS.items():
        wasm = (PLUGIN_DIR / f"tollgate_{file}.wasm").read_bytes()
        body = {"plugins": [{"wasm": base64.b64encode(wasm).decode(), "label": f"team-hours-{lang}",
                             "config": CONFIG}], "message": f"team-hours in {lang}"}
        status, _, out = g.admin("PUT", f"/tenants/{lang}/bundle", body)
        assert status == 201, out
    yield g
    g.stop()


def claude(gw: Gateway, lang: str, team: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=gw.create_key(lang, name=f"{lang}-{team}"), max_retries=0,
                               default_headers={"x-portkey-metadata": json.dumps({"team": team})})


def gpt(gw: Gateway, lang: str, team: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=gw.create_key(lang, name=f"{lang}-{team}-oai"),
                         max_retries=0, default_headers={"x-portkey-metadata": json.dumps({"team": team})})


@pytest.mark.parametrize("lang", LANGS)
def test_allow_labels_the_entry_and_routes_by_the_plan(gw, lang):
    raw = claude(gw, lang, "engineering").messages.with_raw_response.create(
        model="claude-sonnet-4-5", max_tokens=16, messages=[{"role": "user", "content": PROMPT}])
    assert raw.parse().content[0].text
    assert raw.headers["x-tollgate-provider"] == "b"
    row = gw.wait_log(raw.headers["request-id"])
    policy = [d for d in row["decisions"] if d["outcome"] == "allow"][0]
    assert policy["plugin"] == f"team-hours-{lang}"
    assert ["team_hours.entry", "engineering"] in policy["annotations"]
    assert row["provider"] == "b"


@pytest.mark.parametrize("lang", LANGS)
def test_deny_messages_reach_both_sdks(gw, lang):
    with pytest.raises(anthropic.PermissionDeniedError) as e:
        claude(gw, lang, "engineering").messages.create(
            model="gpt-4o", max_tokens=16, messages=[{"role": "user", "content": PROMPT}])
    assert "team-hours: model 'gpt-4o' is not allowed for team 'engineering'" in e.value.message
    with pytest.raises(openai.PermissionDeniedError) as e:
        gpt(gw, lang, "nightshift").chat.completions.create(
            model="claude-sonnet-4-5", messages=[{"role": "user", "content": PROMPT}])
    assert "team-hours: team 'nightshift' is outside its hours; now " in e.value.message
    with pytest.raises(anthropic.PermissionDeniedError) as e:
        claude(gw, lang, "marketing").messages.create(
            model="claude-sonnet-4-5", max_tokens=16, messages=[{"role": "user", "content": PROMPT}])
    assert "team-hours: team 'marketing' is not allowed to use the gateway" in e.value.message


@pytest.mark.parametrize("lang", LANGS)
def test_the_budget_hook_grants_a_daily_cap_the_gateway_enforces(gw, lang):
    c = claude(gw, lang, "thrifty")
    ok = c.messages.with_raw_response.create(
        model="claude-sonnet-4-5", max_tokens=16, messages=[{"role": "user", "content": PROMPT}])
    gw.wait_log(ok.headers["request-id"])  # settled
    with pytest.raises(anthropic.RateLimitError) as e:
        c.messages.create(model="claude-sonnet-4-5", max_tokens=16,
                          messages=[{"role": "user", "content": PROMPT}])
    assert "team-hours:thrifty:daily" in e.value.message
