"""Start-up, config validation, the admin CLI, and logs that survive a clean shutdown."""

from __future__ import annotations

import json
import os
import re
import signal

import anthropic

from conftest import ADMIN_TOKEN, BIN, PLUGIN_DIR, Gateway, Process, http, tollgate


def test_bad_config_names_the_field(tmp_path):
    cfg = tmp_path / "t.toml"
    cfg.write_text('listen = "127.0.0.1:0"\n\n[sandbox]\ndeadline_ms = "fast"\n')
    r = tollgate("serve", "--config", str(cfg))
    assert r.returncode != 0
    assert "deadline_ms" in r.stderr and "line 4" in r.stderr, r.stderr


def test_logs_are_not_lost_on_clean_shutdown(tmp_path, mock_a):
    config = f"""
listen = "127.0.0.1:0"
data_dir = "{tmp_path / 'data'}"
[logs]
flush_ms = 60000
batch_size = 100000
[[providers]]
id = "mock-a"
kind = "anthropic"
base_url = "{mock_a.url}"
[[tenants]]
id = "t"
"""
    gw = Gateway(tmp_path, config)
    key = gw.create_key("t")
    c = anthropic.Anthropic(base_url=gw.url, auth_token=key, max_retries=0)
    ids = []
    for i in range(20):
        raw = c.messages.with_raw_response.create(model="m", max_tokens=8, messages=[{"role": "user", "content": f"n{i}"}])
        ids.append(raw.headers["request-id"])
    # A one-minute flush interval: only the shutdown drain can have written these rows.
    assert gw.stop(signal.SIGTERM) == 0, gw.process.output()
    gw.start()
    try:
        rows = gw.logs(tenant="t", limit=100)
        assert {r["request_id"] for r in rows} >= set(ids)
        # Keys survive the restart too.
        assert c.with_options(base_url=gw.url).messages.create(
            model="m", max_tokens=8, messages=[{"role": "user", "content": "again"}]).content
    finally:
        gw.stop()


def test_admin_cli(gateway):
    env = {"TOLLGATE_URL": gateway.url, "TOLLGATE_ADMIN_TOKEN": ADMIN_TOKEN}
    r = tollgate("tenants", "create", "cli-co", "--name", "CLI Co", env=env)
    assert r.returncode == 0, r.stderr
    assert "cli-co" in r.stdout
    r = tollgate("keys", "create", "--tenant", "cli-co", "--team", "engineering", "--user", "dev@cli.co", env=env)
    assert r.returncode == 0, r.stderr
    secret = re.search(r"secret \(shown once\): (\S+)", r.stdout).group(1)
    key_id = re.search(r"(key_\w+)", r.stdout).group(1)

    c = anthropic.Anthropic(base_url=gateway.url, auth_token=secret, max_retries=0,
                            default_headers={"x-portkey-metadata": json.dumps({"team": "engineering", "env": "dev"})})
    raw = c.messages.with_raw_response.create(model="m", max_tokens=8, messages=[{"role": "user", "content": "cli"}])
    gateway.wait_log(raw.headers["request-id"])

    r = tollgate("logs", "--tenant", "cli-co", "--filter", "team=engineering", "--json", env=env)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)["data"]
    assert [row["request_id"] for row in rows] == [raw.headers["request-id"]]
    r = tollgate("logs", "--tenant", "cli-co", "--filter", "team=finance", "--json", env=env)
    assert json.loads(r.stdout)["data"] == []
    r = tollgate("logs", "--tenant", "cli-co", env=env)
    assert raw.headers["request-id"] in r.stdout

    r = tollgate("keys", "list", "--tenant", "cli-co", env=env)
    assert key_id in r.stdout and secret not in r.stdout
    r = tollgate("keys", "revoke", key_id, env=env)
    assert r.returncode == 0, r.stderr
    try:
        c.messages.create(model="m", max_tokens=8, messages=[{"role": "user", "content": "cli"}])
        raise AssertionError("revoked key still works")
    except anthropic.AuthenticationError:
        pass
    r = tollgate("tenants", "list", env={"TOLLGATE_URL": gateway.url, "TOLLGATE_ADMIN_TOKEN": "wrong"})
    assert r.returncode != 0 and "401" in r.stderr


def test_embedded_default_works_offline(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TOLLGATE_ADMIN_TOKEN"}
    env["TOLLGATE_PLUGIN_DIR"] = str(PLUGIN_DIR)
    os.chdir(tmp_path)
    proc = Process([str(BIN), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "data")],
                   env=env, ready="tollgate listening on")
    try:
        out = proc.output()
        key = re.search(r"API key \(shown once\): (\S+)", out).group(1)
        admin = re.search(r"admin token:\s+(\S+)", out).group(1)
        assert "curl -s" in out
        meta = {"team": "engineering", "user": "dev@example.com", "env": "dev"}
        c = anthropic.Anthropic(base_url=proc.url, auth_token=key, max_retries=0,
                                default_headers={"x-portkey-metadata": json.dumps(meta)})
        msg = c.messages.create(model="claude-sonnet-4-5", max_tokens=64,
                                messages=[{"role": "user", "content": "Hello, gateway"}])
        assert "Hello, gateway" in msg.content[0].text
        status, _, body = http("GET", f"{proc.url}/admin/v1/tenants", headers={"authorization": f"Bearer {admin}"})
        assert status == 200 and [t["id"] for t in body["data"]] == ["demo"]
    finally:
        proc.stop()
