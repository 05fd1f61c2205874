"""What the gateway has billed survives: kill -9 under load loses no finished request, a
full disk refuses new requests instead of serving what it cannot record and loses
nothing once space returns, and a restart over a ledger bloated by a hostile plugin is
quick and serves nothing before it is ready. Each runs its own gateway on the real
binary (docs/security.md)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import Gateway, Mock, http

BODY = {"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def upstream():
    m = Mock("durable-upstream", flavor="anthropic")
    yield m
    m.process.stop()


def config(data_dir: Path, upstream: Mock, extra: str = "", flush_ms: int = 50) -> str:
    return f"""
listen = "127.0.0.1:0"
data_dir = "{data_dir}"
default_provider = "main"

[logs]
flush_ms = {flush_ms}

[[pricing]]
provider = "main"
model = "*"
input = 1000.0
output = 1000.0

[[providers]]
id = "main"
kind = "anthropic"
base_url = "{upstream.url}"

[[tenants]]
id = "billed"
{extra}
"""


def post(url: str, key: str, timeout: float = 10):
    req = urllib.request.Request(f"{url}/v1/messages", data=json.dumps(BODY).encode(), method="POST",
                                 headers={"authorization": f"Bearer {key}", "content-type": "application/json",
                                          "anthropic-version": "2023-06-01"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        body = json.loads(resp.read())
        return resp.status, resp.headers["request-id"], body


def all_rows(gw: Gateway) -> dict[str, dict]:
    """Every log row of tenant `billed`, paged newest first by the (ts, id) cursor."""
    rows: dict[str, dict] = {}
    before = None
    while True:
        q = "/logs?tenant=billed&limit=1000" + (f"&before={before}" if before else "")
        status, _, body = gw.admin("GET", q)
        assert status == 200, body
        for r in body["data"]:
            rows[r["request_id"]] = r
        if len(body["data"]) < 1000:
            return rows
        last = body["data"][-1]
        before = f"{last['ts_ms']}:{last['request_id']}"


def test_kill_9_under_load_loses_no_settled_usage(tmp_path, upstream):
    # A long flush interval: rows sit in memory for seconds, as they would under load.
    budget = ('[[tenants.plugins]]\nname = "budget-limit"\nconfig = { limits = [{ name = "all-time", '
              'scope = "tenant", metric = "cost", period = "total", limit = 1000.0 }] }\n')
    gw = Gateway(tmp_path, config(tmp_path / "data", upstream, budget, flush_ms=5_000))
    key = gw.create_key("billed")
    acked: list[str] = []
    stop = threading.Event()

    def load():
        while not stop.is_set():
            try:
                status, rid, _ = post(gw.url, key)
                if status == 200:
                    acked.append(rid)
            except (urllib.error.URLError, ConnectionError, OSError):
                return

    threads = [threading.Thread(target=load) for _ in range(6)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    assert gw.stop(signal.SIGKILL) == -signal.SIGKILL
    stop.set()
    for t in threads:
        t.join(10)
    assert len(acked) > 50, len(acked)

    gw.start()
    try:
        rows = all_rows(gw)
        missing = [rid for rid in acked if rid not in rows]
        assert not missing, f"{len(missing)} of {len(acked)} acknowledged requests lost"
        assert all(rows[rid]["status"] == 200 and rows[rid]["cost_nano"] > 0 for rid in acked)
        # The ledger counts exactly what the log holds: nothing lost, nothing twice.
        logged = sum(r["cost_nano"] for r in rows.values()) / 1e9
        status, _, body = gw.admin("GET", "/budgets?tenant=billed")
        spent = next(b for b in body["data"] if b["budget"] == "all-time")["spent"]
        assert spent == pytest.approx(logged, abs=1e-9)
        # And the journal was consumed: a second restart writes nothing again.
        gw.stop()
        gw.start()
        assert len(all_rows(gw)) == len(rows)
    finally:
        gw.stop()


def small_disk(tmp_path: Path, mib: int) -> Path:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    return mnt


def fill(path: Path) -> Path:
    filler = path / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def test_a_full_disk_refuses_new_requests_and_loses_nothing(tmp_path, upstream):
    mnt = small_disk(tmp_path, 24)
    gw = None
    try:
        gw = Gateway(tmp_path, config(mnt / "data", upstream))
        key = gw.create_key("billed")
        acked = [post(gw.url, key)[1] for _ in range(5)]
        filler = fill(mnt)
        refused = 0
        for _ in range(300):
            try:
                status, rid, _ = post(gw.url, key)
                acked.append(rid)
            except urllib.error.HTTPError as e:
                body = json.loads(e.read())
                assert e.code == 503 and "usage journal" in body["error"]["message"], body
                refused += 1
                if refused >= 3:
                    break
        assert refused >= 3, "the gateway kept serving on a full disk"
        # Space comes back: the gateway serves again, with no restart, and every
        # acknowledged request is in the log.
        filler.unlink()
        deadline = time.monotonic() + 15
        while True:
            try:
                acked.append(post(gw.url, key)[1])
                break
            except urllib.error.HTTPError as e:
                assert e.code == 503 and time.monotonic() < deadline, e.code
                time.sleep(0.2)
        deadline = time.monotonic() + 15
        while True:
            rows = all_rows(gw)
            missing = [rid for rid in acked if rid not in rows]
            if not missing:
                break
            assert time.monotonic() < deadline, f"{len(missing)} of {len(acked)} acknowledged requests lost"
            time.sleep(0.2)
        status, _, text = http("GET", f"{gw.url}/metrics", headers={"authorization": "Bearer tga-test-admin-token"})
        assert "tollgate_journal_errors_total" in text
    finally:
        if gw:
            gw.stop()
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_a_restart_over_a_bloated_ledger_is_quick_and_refuses_until_ready(tmp_path, upstream):
    data = tmp_path / "data"
    gw = Gateway(tmp_path, config(data, upstream))
    gw.stop()
    # What a hostile budget plugin left behind before the caps: 120 000 limits.
    db = sqlite3.connect(data / "tollgate.db")
    now = int(time.time() * 1000)
    spec = json.dumps({"metric": "requests", "period": "day", "window": "calendar", "limit": 1e12})
    db.executemany(
        "INSERT INTO budget_limits (tenant_id, budget, scope, value, spec, last_seen_ms) VALUES (?,?,?,?,?,?)",
        (("billed", f"l-{i}", "tenant", "billed", spec, now) for i in range(120_000)))
    db.commit()
    db.close()
    # While it loads, the port is closed: a client is refused at once, never left hanging.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gw.config_path.write_text(gw.config_path.read_text().replace('listen = "127.0.0.1:0"',
                                                                 f'listen = "127.0.0.1:{port}"'))
    outcomes: list[str] = []
    started = threading.Event()

    def probe():
        while not started.is_set():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
                    c.settimeout(5)
                    c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    outcomes.append("served" if c.recv(64).startswith(b"HTTP/1.1 200") else "bad")
            except ConnectionRefusedError:
                outcomes.append("refused")
            except OSError as e:
                outcomes.append(f"hung: {e}")
            time.sleep(0.01)

    prober = threading.Thread(target=probe)
    prober.start()
    t0 = time.monotonic()
    try:
        gw.start()
    finally:
        started.set()
        prober.join(10)
    took = time.monotonic() - t0
    try:
        assert took < 20, f"start-up took {took:.1f} s"
        assert outcomes and all(o in ("refused", "served") for o in outcomes), set(outcomes)
        key = gw.create_key("billed")
        assert post(gw.url, key)[0] == 200
        status, _, view = gw.admin("GET", "/budgets?tenant=billed")
        # At most the tenant's cap of limits was loaded; the view is bounded.
        assert status == 200 and view["total"] == 10_000 and len(view["data"]) == 500
    finally:
        gw.stop()
