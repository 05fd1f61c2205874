"""Fixtures that run the real `tollgate` binary and mock upstreams on 127.0.0.1.

Every test talks to the gateway only through the official SDKs or plain HTTP, exactly as
a client would. The binary is `target/debug/tollgate` (override with TOLLGATE_BIN); the
first-party plugins come from `target/wasm32-wasip2/release` (built by `make test`).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
BIN = Path(os.environ.get("TOLLGATE_BIN", TARGET / "debug" / "tollgate"))
PLUGIN_DIR = TARGET / "wasm32-wasip2" / "release"
ADMIN_TOKEN = "tga-test-admin-token"

# Never let a developer's real credentials or proxies leak into the tests.
for var in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL",
            "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
    os.environ.pop(var, None)
os.environ["NO_PROXY"] = "127.0.0.1,localhost"


class Process:
    """A child process whose output is collected in the background."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, ready: str = "listening on"):
        self.args = args
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self._ready = threading.Event()
        self.url: str | None = None
        self._pattern = re.compile(ready + r" (http://\S+)")
        threading.Thread(target=self._pump, daemon=True).start()
        if not self._ready.wait(60):
            self.stop()
            raise RuntimeError(f"{args[0]} did not start:\n" + self.output())
        if self.url is None:
            raise RuntimeError(f"{args} exited early:\n" + self.output())

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            m = self._pattern.search(line)
            if m and self.url is None:
                self.url = m.group(1)
                self._ready.set()
        self._ready.set()

    def output(self) -> str:
        return "".join(self.lines[-200:])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def http(method: str, url: str, body=None, headers: dict[str, str] | None = None, timeout: float = 30):
    """A tiny HTTP client returning (status, headers, parsed JSON or text)."""
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        hdrs.setdefault("content-type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            status, rh = resp.status, dict(resp.headers)
    except urllib.error.HTTPError as e:
        raw, status, rh = e.read(), e.code, dict(e.headers)
    try:
        return status, rh, json.loads(raw)
    except ValueError:
        return status, rh, raw.decode(errors="replace")


class Mock:
    """A `tollgate mock` upstream."""

    def __init__(self, name: str, flavor: str = "both", api_key: str | None = None):
        args = [str(BIN), "mock", "--listen", "127.0.0.1:0", "--name", name, "--flavor", flavor]
        if api_key:
            args += ["--api-key", api_key]
        self.process = Process(args)
        self.url = self.process.url
        self.name = name

    def requests(self) -> list[dict]:
        _, _, body = http("GET", f"{self.url}/_mock/requests")
        return body if isinstance(body, list) else body.get("requests", body.get("data", []))

    def clear(self) -> None:
        http("DELETE", f"{self.url}/_mock/requests")

    def behave(self, **behavior) -> None:
        status, _, body = http("POST", f"{self.url}/_mock/behavior", behavior)
        assert status < 300, body

    def reset(self) -> None:
        http("DELETE", f"{self.url}/_mock/behavior")


class Gateway:
    """A `tollgate serve` process with its own config and data dir."""

    def __init__(self, tmp: Path, config: str, env: dict[str, str] | None = None):
        self.tmp = tmp
        self.config_path = tmp / "tollgate.toml"
        self.config_path.write_text(config)
        self.env = {"TOLLGATE_ADMIN_TOKEN": ADMIN_TOKEN, "TOLLGATE_PLUGIN_DIR": str(PLUGIN_DIR), **(env or {})}
        self.start()

    def start(self) -> None:
        self.process = Process([str(BIN), "serve", "--config", str(self.config_path)], env=self.env,
                               ready="tollgate listening on")
        self.url = self.process.url

    def stop(self, sig: int = signal.SIGTERM) -> int:
        return self.process.stop(sig)

    def admin(self, method: str, path: str, body=None):
        return http(method, f"{self.url}/admin/v1{path}", body, {"authorization": f"Bearer {ADMIN_TOKEN}"})

    def create_key(self, tenant: str, **fields) -> str:
        status, _, body = self.admin("POST", f"/tenants/{tenant}/keys", fields)
        assert status == 201, body
        return body["secret"]

    def key_record(self, tenant: str, **fields) -> dict:
        status, _, body = self.admin("POST", f"/tenants/{tenant}/keys", fields)
        assert status == 201, body
        return body

    def logs(self, **query) -> list[dict]:
        qs = urllib.parse.urlencode(query, doseq=True)
        status, _, body = self.admin("GET", f"/logs?{qs}")
        assert status == 200, body
        return body["data"]

    def wait_log(self, request_id: str, timeout: float = 5.0) -> dict:
        """The log row of `request_id`, which must appear within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.logs(request_id=request_id)
            if rows:
                return rows[0]
            time.sleep(0.05)
        raise AssertionError(f"no log row for {request_id} within {timeout}s\n" + self.process.output())


import urllib.parse  # noqa: E402  (used by Gateway.logs)


def toml_inline(v) -> str:
    """A Python value as a TOML inline value (tables, arrays, strings, numbers, booleans)."""
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_inline(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "[" + ", ".join(toml_inline(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    return json.dumps(v)


def tollgate(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Runs the tollgate CLI."""
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="session")
def mock_a():
    m = Mock("mock-a")
    yield m
    m.process.stop()


@pytest.fixture(scope="session")
def gateway(tmp_path_factory, mock_a):
    """One gateway with a tenant per policy scenario, shared by the core tests."""
    tmp = tmp_path_factory.mktemp("gw")
    config = f"""
listen = "127.0.0.1:0"
data_dir = "{tmp / 'data'}"
default_provider = "mock-a"

[sandbox]
deadline_ms = 20
memory_mib = 16

[logs]
flush_ms = 50

[[providers]]
id = "mock-a"
kind = "anthropic"
base_url = "{mock_a.url}"
api_key_env = "MOCK_A_KEY"

[[tenants]]
id = "acme"
name = "Acme"
[[tenants.plugins]]
name = "metadata-policy"
config = {{ required = ["env"], allowed_values = {{ env = ["prod", "staging", "dev"] }}, team_models = {{ research = ["claude-haiku-*"] }} }}

[[tenants]]
id = "open"

[[tenants]]
id = "trap"
[[tenants.plugins]]
name = "chaos"
config = {{ mode = "trap" }}

[[tenants]]
id = "loop"
[[tenants.plugins]]
name = "chaos"
config = {{ mode = "loop" }}

[[tenants]]
id = "oom"
[[tenants.plugins]]
name = "chaos"
config = {{ mode = "oom" }}

[[tenants]]
id = "failopen"
[[tenants.plugins]]
name = "chaos"
fail_open = true
config = {{ mode = "trap" }}
[[tenants.plugins]]
name = "chaos"
config = {{ mode = "annotate" }}

[[tenants]]
id = "probe"
[[tenants.plugins]]
name = "chaos"
config = {{ mode = "wasi-probe" }}
"""
    gw = Gateway(tmp, config, env={"MOCK_A_KEY": "upstream-secret-a"})
    yield gw
    gw.stop()
