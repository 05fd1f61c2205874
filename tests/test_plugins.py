"""Policy plugins in the sandbox: denials, and plugins that trap, loop or hog memory."""

from __future__ import annotations

import json
import time

import anthropic
import pytest

from conftest import PLUGIN_DIR, tollgate

BODY = dict(model="claude-sonnet-4-5", max_tokens=16, messages=[{"role": "user", "content": "hi"}])


def client(gateway, tenant: str, meta: dict | None = None) -> anthropic.Anthropic:
    key = gateway.create_key(tenant)
    return anthropic.Anthropic(base_url=gateway.url, auth_token=key, max_retries=0,
                               default_headers={"x-portkey-metadata": json.dumps(meta or {})})


def test_policy_plugin_denies_with_its_message(gateway):
    c = client(gateway, "acme", {"team": "engineering"})
    with pytest.raises(anthropic.BadRequestError) as e:
        c.messages.create(**BODY)
    err = e.value.body["error"]
    assert err["type"] == "invalid_request_error"
    assert "'env'" in err["message"] and "required" in err["message"]
    row = gateway.wait_log(e.value.response.headers["request-id"])
    assert row["status"] == 400
    assert row["decisions"][0]["outcome"] == "deny" and "'env'" in row["decisions"][0]["detail"]

    c = client(gateway, "acme", {"env": "qa"})
    with pytest.raises(anthropic.BadRequestError) as e:
        c.messages.create(**BODY)
    assert "'qa'" in e.value.body["error"]["message"]


def test_policy_plugin_restricts_team_models(gateway):
    c = client(gateway, "acme", {"env": "dev", "team": "research"})
    assert c.messages.create(**{**BODY, "model": "claude-haiku-4-5"}).content
    with pytest.raises(anthropic.PermissionDeniedError) as e:
        c.messages.create(**{**BODY, "model": "claude-opus-4-1"})
    assert "research" in e.value.body["error"]["message"]
    assert "claude-opus-4-1" in e.value.body["error"]["message"]


@pytest.mark.parametrize(
    "tenant, needle",
    [
        ("trap", "trapped"),
        ("loop", "exceeded its CPU deadline"),
        ("oom", "exceeded its memory limit of 16 MiB"),
    ],
)
def test_misbehaving_plugin_fails_only_that_request(gateway, tenant, needle):
    bad = client(gateway, tenant)
    good = client(gateway, "open")
    for _ in range(3):
        started = time.monotonic()
        with pytest.raises(anthropic.InternalServerError) as e:
            bad.messages.create(**BODY)
        elapsed = time.monotonic() - started
        assert e.value.status_code == 500
        err = e.value.body["error"]
        assert err["type"] == "api_error"
        assert "plugin 'chaos'" in err["message"] and needle in err["message"], err["message"]
        assert elapsed < 5, "a runaway plugin must be cut off by its deadline"
        # The gateway keeps serving everyone else.
        assert good.messages.create(**BODY).content
    row = gateway.wait_log(e.value.response.headers["request-id"])
    assert row["decisions"][0]["outcome"] == "error" and needle in row["decisions"][0]["detail"]


def test_fail_open_plugin_is_skipped_and_recorded(gateway):
    c = client(gateway, "failopen")
    raw = c.messages.with_raw_response.create(**BODY)
    assert raw.parse().content
    row = gateway.wait_log(raw.headers["request-id"])
    outcomes = [d["outcome"] for d in row["decisions"]]
    assert outcomes == ["skipped", "allow"]
    assert "trapped" in row["decisions"][0]["detail"]
    # The second plugin's annotations are recorded with its decision.
    assert row["decisions"][1]["annotations"]


def test_plugins_get_no_ambient_authority(gateway):
    c = client(gateway, "probe")
    raw = c.messages.with_raw_response.create(**BODY)
    row = gateway.wait_log(raw.headers["request-id"])
    labels = dict(row["decisions"][0]["annotations"])
    assert labels, row
    for probe, result in labels.items():
        assert result.startswith("denied"), f"{probe}: {result}"


def test_plugin_check_cli(tmp_path):
    wasm = PLUGIN_DIR / "tollgate_metadata_policy.wasm"
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"required": ["env"]}))
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"body": BODY, "metadata": {"team": "eng"}}))
    r = tollgate("plugin", "check", str(wasm), "--config", str(config), "--request", str(request))
    assert r.returncode == 3, r.stdout + r.stderr
    assert "DENY 400" in r.stdout and "'env'" in r.stdout

    request.write_text(json.dumps({"body": BODY, "metadata": {"env": "prod"}}))
    r = tollgate("plugin", "check", str(wasm), "--config", str(config), "--request", str(request))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ALLOW" in r.stdout

    config.write_text(json.dumps({"required": "env"}))
    r = tollgate("plugin", "check", str(wasm), "--config", str(config), "--request", str(request))
    assert r.returncode == 1 and "REJECTED" in r.stdout, r.stdout


def test_bad_plugin_config_refuses_to_start(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(f"""
data_dir = "{tmp_path / 'data'}"
[[providers]]
id = "p"
kind = "anthropic"
base_url = "http://127.0.0.1:9"
[[tenants]]
id = "acme"
[[tenants.plugins]]
name = "metadata-policy"
config = {{ required = "env" }}
""")
    r = tollgate("serve", "--config", str(cfg), env={"TOLLGATE_PLUGIN_DIR": str(PLUGIN_DIR)}, timeout=60)
    assert r.returncode != 0
    assert "tenant 'acme' plugins[0]" in r.stderr and "required" in r.stderr, r.stderr
