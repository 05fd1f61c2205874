"""Policy bundles: hot-swapped under load with no failed request, refused when broken,
rolled back, layered under a platform bundle, kept across restarts; driven through the
admin API and the official `anthropic` SDK against the real binary and mock upstreams."""

from __future__ import annotations

import base64
import json
import threading
import time

import anthropic
import pytest

from conftest import PLUGIN_DIR, Gateway, Mock, http

PROMPT = "[[mock tokens=8 gap_ms=3]] hello"


def route_to(provider: str, message: str | None = None) -> dict:
    body = {"plugins": [{"name": "model-router", "config": {"default": {"targets": [{"provider": provider}]}}}]}
    if message:
        body["message"] = message
    return body


@pytest.fixture(scope="module")
def mocks():
    a, b = Mock("bundle-a", flavor="anthropic"), Mock("bundle-b", flavor="anthropic")
    yield a, b
    a.process.stop()
    b.process.stop()


def config(tmp, mocks) -> str:
    a, b = mocks
    return f"""
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
id = "swap"

[[tenants]]
id = "other"
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory, mocks):
    tmp = tmp_path_factory.mktemp("bundles")
    g = Gateway(tmp, config(tmp, mocks))
    yield g
    g.stop()


def put(gw: Gateway, tenant: str | None, body: dict):
    path = f"/tenants/{tenant}/bundle" if tenant else "/bundle"
    return gw.admin("PUT", path, body)


def client(gw: Gateway, tenant: str, meta: dict | None = None) -> anthropic.Anthropic:
    headers = {"x-portkey-metadata": json.dumps(meta)} if meta else {}
    return anthropic.Anthropic(base_url=gw.url, api_key=gw.create_key(tenant, name=f"{tenant}-k"),
                               max_retries=0, default_headers=headers)


def ask(c: anthropic.Anthropic):
    return c.messages.with_raw_response.create(
        model="claude-sonnet-4-5", max_tokens=32, messages=[{"role": "user", "content": PROMPT}])


def test_hot_swaps_under_load_fail_no_request_and_take_effect_at_once(gw):
    status, _, first = put(gw, "swap", route_to("a", "start on a"))
    assert status == 201, first
    base = first["version"]
    c = client(gw, "swap")
    stop = threading.Event()
    failures: list[str] = []
    served: list[str] = []

    def load(streaming: bool):
        while not stop.is_set():
            try:
                if streaming:
                    with c.messages.stream(model="claude-sonnet-4-5", max_tokens=32,
                                           messages=[{"role": "user", "content": PROMPT}]) as s:
                        s.get_final_message()
                        served.append(s.response.headers["request-id"])
                else:
                    served.append(ask(c).headers["request-id"])
            except Exception as e:  # noqa: BLE001 (any failure counts)
                failures.append(repr(e))

    threads = [threading.Thread(target=load, args=(i % 2 == 0,)) for i in range(6)]
    for t in threads:
        t.start()
    try:
        for i in range(100):
            provider = "b" if i % 2 == 0 else "a"
            status, _, v = put(gw, "swap", route_to(provider))
            assert status == 201, v
            if i % 10 == 0:
                # The very next request after the swap uses the new version.
                raw = ask(c)
                assert raw.headers["x-tollgate-provider"] == provider
                row = gw.wait_log(raw.headers["request-id"])
                assert row["bundle_version"] == v["version"]
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not failures, failures[:5]
    assert len(served) > 100
    # Every request's log row names the version that served it, and that version's route.
    rows = [gw.wait_log(rid) for rid in served[-60:]]
    for row in rows:
        v = row["bundle_version"]
        assert v is not None and base <= v <= base + 100
        expected = "a" if (v - base) % 2 == 0 else "b"
        assert row["provider"] == expected, row
        assert row["status"] == 200


def test_broken_bundles_are_refused_and_nothing_changes(gw, mocks):
    status, _, good = put(gw, "swap", route_to("b", "known good"))
    assert status == 201
    cases = [
        ({"plugins": [{"wasm": base64.b64encode(b"\0asm not really").decode(), "label": "junk"}]},
         "not a valid Tollgate plugin"),
        ({"plugins": [{"name": "model-router", "config": {"defualt": {}}}]}, "defualt"),
        ({"plugins": [{"name": "chaos", "config": {"mode": "trap"}}]}, "smoke request"),
        (route_to("nowhere"), "unknown provider 'nowhere'"),
        ({"plugins": [{"name": "no-such-plugin"}]}, "no-such-plugin"),
        ({"plugins": [{"name": "chaos"}], "surprise": 1}, "surprise"),
    ]
    for body, expected in cases:
        status, _, err = put(gw, "swap", body)
        assert status in (400, 422), (body, err)
        assert expected in json.dumps(err), (expected, err)
    status, _, active = gw.admin("GET", "/tenants/swap/bundle")
    assert status == 200 and active["version"] == good["version"]
    raw = ask(client(gw, "swap"))
    assert raw.headers["x-tollgate-provider"] == "b"
    status, _, audit = gw.admin("GET", "/audit?tenant=swap&limit=20")
    assert status == 200
    assert any(e["action"] == "apply-refused" and "smoke request" in e["detail"] for e in audit["data"])


def test_rollback_restores_the_old_behaviour_and_history_and_diff_show_it(gw):
    status, _, v_a = put(gw, "swap", route_to("a", "to a"))
    status, _, v_b = put(gw, "swap", route_to("b", "to b"))
    c = client(gw, "swap")
    assert ask(c).headers["x-tollgate-provider"] == "b"
    status, _, rolled = gw.admin("POST", "/tenants/swap/bundle/rollback", {"version": v_a["version"]})
    assert status == 201, rolled
    assert rolled["version"] == v_b["version"] + 1 and rolled["hash"] == v_a["hash"]
    assert ask(c).headers["x-tollgate-provider"] == "a"
    status, _, hist = gw.admin("GET", "/tenants/swap/bundle/versions")
    top = hist["data"][0]
    assert top["version"] == rolled["version"] and top["active"] is True
    assert [v["active"] for v in hist["data"]].count(True) == 1
    status, _, d = gw.admin("GET", f"/tenants/swap/bundle/diff?from={v_a['version']}&to={v_b['version']}")
    assert status == 200
    assert d["changes"] == ['plugins[0].config.default.targets[0].provider: "a" -> "b"']
    status, _, missing = gw.admin("POST", "/tenants/swap/bundle/rollback", {"version": 99999})
    assert status == 404, missing


def test_platform_bundle_runs_first_for_every_tenant_and_cannot_be_removed(gw):
    policy = {"plugins": [{"name": "metadata-policy", "config": {"required": ["env"]}}]}
    status, _, p = put(gw, None, policy)
    assert status == 201, p
    try:
        for tenant in ("other", "swap"):
            with pytest.raises(anthropic.BadRequestError) as e:
                ask(client(gw, tenant))
            assert "env" in e.value.message
            raw = ask(client(gw, tenant, {"env": "prod"}))
            row = gw.wait_log(raw.headers["request-id"])
            assert row["platform_version"] == p["version"]
        # A tenant's new bundle composes on top: the platform policy still applies.
        assert put(gw, "swap", route_to("a"))[0] == 201
        with pytest.raises(anthropic.BadRequestError):
            ask(client(gw, "swap"))
        status, _, bad = put(gw, None, {"plugins": [], "default_provider": "a"})
        assert status == 400 and "tenant bundles" in bad["error"]["message"]
    finally:
        assert put(gw, None, {"plugins": [], "message": "lift the platform policy"})[0] == 201
    assert ask(client(gw, "other")).http_response.status_code == 200


def test_bundles_survive_a_restart(tmp_path, mocks):
    g = Gateway(tmp_path, config(tmp_path, mocks))
    try:
        status, _, v = put(g, "swap", route_to("b"))
        assert status == 201
        assert g.stop() == 0
        g.start()
        raw = ask(client(g, "swap"))
        assert raw.headers["x-tollgate-provider"] == "b"
        assert g.wait_log(raw.headers["request-id"])["bundle_version"] == v["version"]
    finally:
        g.stop()


def test_uploaded_component_is_stored_by_hash(gw):
    wasm = (PLUGIN_DIR / "tollgate_chaos.wasm").read_bytes()
    body = {"plugins": [{"wasm": base64.b64encode(wasm).decode(), "label": "my-chaos",
                         "config": {"mode": "annotate"}}]}
    status, _, v = put(gw, "other", body)
    assert status == 201, v
    status, _, shown = gw.admin("GET", "/tenants/other/bundle")
    plugin = shown["bundle"]["plugins"][0]
    assert plugin["label"] == "my-chaos" and len(plugin["wasm_sha256"]) == 64 and "wasm" not in plugin
    raw = ask(client(gw, "other"))
    row = gw.wait_log(raw.headers["request-id"])
    assert [d["plugin"] for d in row["decisions"]] == ["my-chaos"]
    assert put(gw, "other", {"plugins": []})[0] == 201


def test_cli_applies_a_bundle_file_and_shows_history_and_diff(gw, tmp_path):
    from conftest import ADMIN_TOKEN, tollgate
    env = {"TOLLGATE_URL": gw.url, "TOLLGATE_ADMIN_TOKEN": ADMIN_TOKEN}
    bundle = tmp_path / "bundle.toml"
    for provider in ("a", "b"):
        bundle.write_text(f"""
[[plugins]]
name = "model-router"
config = {{ default = {{ targets = [{{ provider = "{provider}" }}] }} }}
""")
        out = tollgate("bundle", "apply", "--tenant", "swap", str(bundle), "--message", f"cli {provider}", env=env)
        assert out.returncode == 0, out.stderr
    assert ask(client(gw, "swap")).headers["x-tollgate-provider"] == "b"
    out = tollgate("bundle", "history", "--tenant", "swap", env=env)
    assert out.returncode == 0 and "cli b" in out.stdout and "cli a" in out.stdout
    status, _, hist = gw.admin("GET", "/tenants/swap/bundle/versions")
    top = hist["data"][0]["version"]
    out = tollgate("bundle", "diff", "--tenant", "swap", str(top - 1), str(top), env=env)
    assert out.returncode == 0 and '"a" -> "b"' in out.stdout, out.stdout
    bundle.write_text("[[plugins]]\nname = \"model-router\"\nfail_opne = true\n")
    out = tollgate("bundle", "apply", "--tenant", "swap", str(bundle), env=env)
    assert out.returncode != 0 and "fail_opne" in out.stderr


def test_watch_mode_applies_bundle_files_and_keeps_serving_through_a_broken_one(tmp_path, mocks):
    from conftest import BIN, Process
    watch_dir = tmp_path / "bundles"
    watch_dir.mkdir()

    class WatchingGateway(Gateway):
        def start(self) -> None:
            self.process = Process([str(BIN), "serve", "--config", str(self.config_path), "--watch", str(watch_dir)],
                                   env=self.env, ready="tollgate listening on")
            self.url = self.process.url

    def router_file(provider: str) -> str:
        return f"""
[[plugins]]
name = "model-router"
config = {{ default = {{ targets = [{{ provider = "{provider}" }}] }} }}
"""

    def served_by(c: anthropic.Anthropic, provider: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            seen = ask(c).headers["x-tollgate-provider"]
            if seen == provider:
                return
            time.sleep(0.1)
        raise AssertionError(f"still served by {seen}, not {provider}\n" + g.process.output())

    bundle = watch_dir / "swap.toml"
    bundle.write_text(router_file("a"))
    g = WatchingGateway(tmp_path, config(tmp_path, mocks))
    try:
        c = client(g, "swap")
        served_by(c, "a")
        # "a" is also the config's default: wait for the file's version to be active too.
        deadline = time.monotonic() + 10
        while g.admin("GET", "/tenants/swap/bundle")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        status, _, first = g.admin("GET", "/tenants/swap/bundle")
        assert status == 200 and first["author"] == "watch", first
        raw = ask(c)
        assert raw.headers["x-tollgate-provider"] == "a"
        assert g.wait_log(raw.headers["request-id"])["bundle_version"] == first["version"]
        bundle.write_text(router_file("b"))
        served_by(c, "b")
        status, _, hist = g.admin("GET", "/tenants/swap/bundle/versions")
        assert status == 200
        assert [(v["author"], v["message"]) for v in hist["data"][:2]] == [("watch", "watch: swap.toml")] * 2
        good = hist["data"][0]["version"]

        bundle.write_text('[[plugins]]\nname = "model-router"\nconfig = { defualt = {} }\n')
        deadline = time.monotonic() + 10
        refused = []
        while not refused and time.monotonic() < deadline:
            status, _, audit = g.admin("GET", "/audit?tenant=swap")
            assert status == 200, audit
            refused = [e for e in audit["data"] if e["action"] == "apply-refused" and e["actor"] == "watch"]
            time.sleep(0.1)
        assert refused, g.process.output()
        assert "defualt" in refused[0]["detail"]
        # The refused file is not retried every poll, and the good version keeps serving.
        time.sleep(1.5)
        status, _, audit = g.admin("GET", "/audit?tenant=swap")
        assert len([e for e in audit["data"] if e["action"] == "apply-refused"]) == 1
        for _ in range(3):
            assert ask(c).headers["x-tollgate-provider"] == "b"
        status, _, active = g.admin("GET", "/tenants/swap/bundle")
        assert status == 200 and active["version"] == good
        assert g.process.proc.poll() is None
    finally:
        g.stop()
