"""Bundle replay: a candidate bundle is run over a tenant's logged requests and the
report names exactly the requests whose outcome would change (denials, targets,
budget hits), while nothing is applied, logged or charged. Driven through the official
`anthropic` SDK, the admin API and the `tollgate bundle replay` CLI against the real
binary and mock upstreams."""

from __future__ import annotations

import json

import anthropic
import pytest

from conftest import ADMIN_TOKEN, Gateway, Mock, tollgate

ENV_POLICY = {"required": ["env"], "allowed_values": {"env": ["prod", "dev"]}}


@pytest.fixture(scope="module")
def mocks():
    a, b = Mock("replay-a", flavor="anthropic"), Mock("replay-b", flavor="anthropic")
    yield a, b
    a.process.stop()
    b.process.stop()


@pytest.fixture(scope="module")
def gw(tmp_path_factory, mocks):
    a, b = mocks
    tmp = tmp_path_factory.mktemp("replay")
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

[[tenants]]
id = "acme"

[[tenants]]
id = "other"
""")
    yield g
    g.stop()


@pytest.fixture(scope="module")
def traffic(gw):
    """Logged requests of tenant acme: request id by label, in arrival order."""
    # acme's own bundle (version 1) decides them: a replay's candidate replaces it.
    status, _, v = gw.admin("PUT", "/tenants/acme/bundle",
                            {"plugins": [{"name": "metadata-policy", "config": ENV_POLICY}]})
    assert status == 201 and v["version"] == 1, v
    key = gw.create_key("acme", name="replay-key")
    sent: dict[str, str] = {}
    plan = [
        ("eng1", {"team": "engineering", "env": "prod"}),
        ("eng2", {"team": "engineering", "env": "prod"}),
        ("sales1", {"team": "sales", "env": "prod"}),
        ("eng3", {"team": "engineering", "env": "dev"}),
        ("bad-env", {"team": "engineering", "env": "qa"}),
        ("sales2", {"team": "sales", "env": "dev"}),
        ("research1", {"team": "research", "env": "prod"}),
    ]
    for label, meta in plan:
        c = anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0,
                                default_headers={"x-portkey-metadata": json.dumps(meta)})
        try:
            raw = c.messages.with_raw_response.create(
                model="claude-sonnet-4-5", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
            sent[label] = raw.headers["request-id"]
        except anthropic.APIStatusError as e:
            assert label == "bad-env", e
            sent[label] = e.response.headers["request-id"]
    for rid in sent.values():
        gw.wait_log(rid)
    return sent


def replay(gw: Gateway, plugins: list[dict], **extra):
    return gw.admin("POST", "/tenants/acme/bundle/replay", {"bundle": {"plugins": plugins}, "since": "1h", **extra})


def changed(report: dict, kind: str) -> set[str]:
    return {c["request_id"] for c in report["changes"] if c["change"] == kind}


def test_a_stricter_policy_reports_exactly_the_requests_it_would_deny(gw, traffic):
    stricter = {**ENV_POLICY, "allowed_values": {"env": ["prod", "dev"], "team": ["engineering", "research"]}}
    before = len(gw.logs(tenant="acme", limit=1000))
    status, _, report = replay(gw, [{"name": "metadata-policy", "config": stricter}])
    assert status == 200, report
    assert report["replayed"] == 7 and report["skipped"] == 0
    assert changed(report, "newly_denied") == {traffic["sales1"], traffic["sales2"]}
    assert report["summary"]["newly_denied"] == 2 and report["summary"]["unchanged"] == 5
    change = next(c for c in report["changes"] if c["request_id"] == traffic["sales1"])
    assert change["before"] == {"outcome": "served", "provider": "a", "model": "claude-sonnet-4-5"}
    assert change["after"]["outcome"] == "denied" and change["after"]["plugin"] == "metadata-policy"
    assert "'sales'" in change["after"]["message"]
    # A dry run: nothing applied, nothing logged.
    assert gw.admin("GET", "/tenants/acme/bundle")[2]["version"] == 1
    assert len(gw.logs(tenant="acme", limit=1000)) == before


def test_a_looser_policy_reports_what_it_would_allow(gw, traffic):
    status, _, report = replay(gw, [])
    assert status == 200, report
    assert changed(report, "newly_allowed") == {traffic["bad-env"]}
    assert report["summary"]["newly_allowed"] == 1 and report["summary"]["newly_denied"] == 0


def test_a_routing_change_reports_the_requests_that_move(gw, traffic):
    router = {"default": {"targets": [{"provider": "a"}]},
              "rules": [{"name": "eng-to-b", "when": {"metadata": {"team": {"equals": "engineering"}}},
                         "route": {"targets": [{"provider": "b", "model": "claude-haiku-4-5"}]}}]}
    status, _, report = replay(gw, [{"name": "metadata-policy", "config": ENV_POLICY},
                                    {"name": "model-router", "config": router}])
    assert status == 200, report
    assert changed(report, "target_changed") == {traffic["eng1"], traffic["eng2"], traffic["eng3"]}
    c = next(c for c in report["changes"] if c["request_id"] == traffic["eng1"])
    assert c["after"] == {"outcome": "served", "provider": "b", "model": "claude-haiku-4-5"}


def test_a_budget_reports_the_requests_past_its_cap(gw, traffic):
    budget = {"limits": [{"name": "tenant-daily", "scope": "tenant", "metric": "requests", "period": "day",
                          "limit": 4}]}
    status, _, report = replay(gw, [{"name": "metadata-policy", "config": ENV_POLICY},
                                    {"name": "budget-limit", "config": budget}])
    assert status == 200, report
    # Served in order: eng1, eng2, sales1, eng3 (4 of 4), then sales2 and research1 hit the cap.
    assert changed(report, "budget_hit") == {traffic["sales2"], traffic["research1"]}
    hit = next(c for c in report["changes"] if c["change"] == "budget_hit")
    assert hit["after"]["status"] == 429 and "tenant-daily" in hit["after"]["message"]
    # The real budget was not touched.
    status, _, budgets = gw.admin("GET", "/budgets?tenant=acme")
    assert status == 200 and budgets["data"] == []


def test_a_broken_candidate_is_refused(gw, traffic):
    status, _, body = replay(gw, [{"name": "chaos", "config": {"mode": "trap"}}])
    assert status == 400 and "bundle refused" in body["error"]["message"]
    status, _, body = replay(gw, [{"name": "metadata-policy", "config": {"required": "env"}}])
    assert status == 400 and "plugins[0]" in body["error"]["message"]
    status, _, body = replay(gw, [], since="yesterday-ish")
    assert status == 400 and "since" in body["error"]["message"]


def test_another_tenants_admin_cannot_replay(gw, traffic):
    status, _, tok = gw.admin("POST", "/tenants/other/admin-tokens", {})
    assert status == 201
    from conftest import http
    status, _, body = http("POST", f"{gw.url}/admin/v1/tenants/acme/bundle/replay",
                           {"bundle": {"plugins": []}}, {"authorization": f"Bearer {tok['token']}"})
    assert status == 403, body


def test_cli_replay_prints_the_requests_that_would_change(gw, traffic, tmp_path):
    bundle = tmp_path / "stricter.toml"
    bundle.write_text("""
[[plugins]]
name = "metadata-policy"
config = { required = ["env"], allowed_values = { env = ["prod", "dev"], team = ["engineering", "research"] } }
""")
    out = tollgate("bundle", "replay", "--tenant", "acme", str(bundle), "--since", "1h",
                   env={"TOLLGATE_URL": gw.url, "TOLLGATE_ADMIN_TOKEN": ADMIN_TOKEN})
    assert out.returncode == 0, out.stderr
    assert "2 newly denied" in out.stdout, out.stdout
    assert traffic["sales1"] in out.stdout and traffic["sales2"] in out.stdout
    assert traffic["eng1"] not in out.stdout


def test_rules_pinned_by_the_operator_still_decide_in_a_replay(gw, traffic):
    # The platform pins the env policy on acme: a candidate without it cannot lift it.
    status, _, v = gw.admin("PUT", "/bundle", {"plugins": [], "tenants": {
        "acme": {"plugins": [{"name": "metadata-policy", "config": ENV_POLICY}]}}})
    assert status == 201, v
    try:
        status, _, report = replay(gw, [])
        assert status == 200, report
        assert changed(report, "newly_allowed") == set()
    finally:
        assert gw.admin("PUT", "/bundle", {"plugins": []})[0] == 201
