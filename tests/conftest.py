"""Fixtures that run the real `tollgate` binary and mock upstreams on 127.0.0.1.

Every test talks to the gateway only through the official SDKs or plain HTTP, exactly as
a client would. The binary is `target/debug/tollgate` (override with TOLLGATE_BIN); the
first-party plugins come from `target/wasm32-wasip2/release` (built by `make test`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
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


class Redis:
    """A throwaway `redis-server` on a free port (no persistence), or the server named by
    TOLLGATE_TEST_REDIS_URL, which is then only flushed, never stopped."""

    def __init__(self, tmp: Path):
        self.external = os.environ.get("TOLLGATE_TEST_REDIS_URL")
        self.tmp = tmp
        self.proc: subprocess.Popen | None = None
        if self.external:
            self.url = self.external
            self.cli("FLUSHALL")
            return
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}"
        self.start()

    def start(self) -> None:
        if self.external:
            return
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.tmp)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.ping():
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def ping(self) -> bool:
        try:
            return self.cli("PING") == "PONG"
        except OSError:
            return False

    def cli(self, *args: str) -> str:
        """One command over RESP; the reply's first line, without its type marker."""
        host, port = self.url.removeprefix("redis://").split("/")[0].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=2) as s:
            s.sendall(("*%d\r\n" % len(args) + "".join(
                "$%d\r\n%s\r\n" % (len(a.encode()), a) for a in args)).encode())
            return s.recv(65536).decode().split("\r\n")[0][1:]


class Postgres:
    """A throwaway PostgreSQL cluster (Debian's postgresql, `initdb` into a temp dir,
    trust auth on 127.0.0.1 and a free port), or the server named by
    TOLLGATE_TEST_POSTGRES_URL; either way each instance gets a database of its own."""

    def __init__(self):
        self.external = os.environ.get("TOLLGATE_TEST_POSTGRES_URL")
        self.db = f"tollgate_{os.getpid()}_{int(time.time() * 1000) % 10**8}"
        if self.external:
            self.admin_url = self.external
        else:
            bindir = os.environ.get("TOLLGATE_PG_BINDIR") or next(
                (str(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), "")
            self.bin = Path(bindir) if bindir else None
            if self.bin is None or not (self.bin / "initdb").exists():
                raise RuntimeError("PostgreSQL is not installed: run `make services` (scripts/setup-services.sh)")
            # Outside pytest's private tmp: the server runs as `postgres` when we are root.
            self.dir = Path(tempfile.mkdtemp(prefix="tollgate-pg-"))
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                self.port = sock.getsockname()[1]
            if os.geteuid() == 0:
                shutil.chown(self.dir, "postgres", "postgres")
            self._run("initdb", "-D", str(self.dir / "data"), "-U", "postgres", "--auth=trust",
                      "--no-sync", "-E", "UTF8", "--locale=C")
            self.start()
            self.admin_url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        self.psql("postgres", f"CREATE DATABASE {self.db}")
        base = self.admin_url.rsplit("/", 1)[0]
        self.url = f"{base}/{self.db}"

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"{tool} failed: {out.stdout}\n{out.stderr}")

    def start(self) -> None:
        if self.external:
            return
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-o", opts, "-l", str(self.dir / "log"), "-w", "start")

    def stop(self) -> None:
        if not self.external:
            self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")

    def psql(self, db: str, sql: str) -> str:
        url = self.admin_url.rsplit("/", 1)[0] + f"/{db}"
        out = subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-tAc", sql],
                             capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"psql failed: {out.stderr}")
        return out.stdout.strip()

    def close(self) -> None:
        if self.external:
            self.psql("postgres", f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")
            return
        try:
            self.stop()
        except RuntimeError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


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
