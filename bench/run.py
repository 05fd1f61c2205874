#!/usr/bin/env python3
"""Load bench: Tollgate against the direct upstream (and, with --peers, Portkey and LiteLLM).

nginx (Debian package) serves canned Anthropic and OpenAI answers and a canned SSE stream;
a second nginx, a plain reverse proxy on the gateway's core, shows what any proxy costs
on this machine; the release gateway runs pinned to core 0 with every request logged as in
production; wrk
(with bench/wrk.lua) and nginx share core 1. Printed: ratios first, then absolute numbers,
and the whole report is written to bench/results/latest.md.

Run it through `make bench-load` (which builds the release binary and the plugins) or
`bench/run.sh [--duration S] [--peers] [--tenants N] [--soak S]`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
WORK = BENCH / ".work"
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
BIN = TARGET / "release" / "tollgate"
PLUGIN_DIR = TARGET / "wasm32-wasip2" / "release"
ADMIN = "tga-bench-admin-token"
CORES = os.cpu_count() or 1
# Core 0 for the system under test, the last core for nginx and wrk (one core machines
# share it, and say so in the report).
SUT_CORE, LOAD_CORE = "0", str(CORES - 1)
if os.environ.get("TOLLGATE_BENCH_ONE_CORE"):
    # Everything on one core: no cross-core wake-ups (see the README's note on them).
    SUT_CORE = LOAD_CORE

ANTHROPIC_BODY = json.dumps({
    "model": "claude-sonnet-4-5", "max_tokens": 256,
    "messages": [{"role": "user", "content": "Say hello in five words."}],
})
STREAM_BODY = json.dumps({**json.loads(ANTHROPIC_BODY), "stream": True})
OPENAI_BODY = json.dumps({
    "model": "gpt-4o", "max_tokens": 256,
    "messages": [{"role": "user", "content": "Say hello in five words."}],
})
META = json.dumps({"tenant": "acme", "user": "dev@acme.com", "team": "engineering", "env": "prod"})

THREE_PLUGINS = """
[[tenants.plugins]]
name = "metadata-policy"
reuse_instance = {reuse}
config = {{ required = ["env", "team"], allowed_values = {{ env = ["prod", "staging", "dev"] }}, team_models = {{ engineering = ["claude-*", "gpt-*"] }} }}

[[tenants.plugins]]
name = "model-router"
reuse_instance = {reuse}
config = {{ rules = [{{ name = "engineering", when = {{ metadata = {{ team = {{ equals = "engineering" }} }} }}, route = {{ strategy = "fallback", targets = [{{ provider = "{primary}" }}, {{ provider = "openai", model = "gpt-4o" }}] }} }}], default = {{ targets = [{{ provider = "{primary}" }}] }} }}

[[tenants.plugins]]
name = "budget-limit"
reuse_instance = {reuse}
config = {{ limits = [{{ name = "team-daily-cost", scope = "team", metric = "cost", period = "day", limit = {limit}, alert_at = [80, 100] }}], rate_limits = [{{ name = "key-rpm", scope = "key", requests_per_minute = 100000000 }}] }}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(core: str, args: list[str]) -> list[str]:
    return (["taskset", "-c", core] if shutil.which("taskset") else []) + args


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int | None) -> float:
    """CPU time (user + system, every thread) that process `pid` and the processes under
    it (a peer's workers) have used, in seconds. Children that already exited are not
    counted (their time went to their parent's cutime, which is not read)."""
    if pid is None:
        return float("nan")
    stats = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(d.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    tree = {pid}
    grew = True
    while grew:
        grew = False
        for p, (ppid, _) in stats.items():
            if ppid in tree and p not in tree:
                tree.add(p)
                grew = True
    ticks = sum(stats[p][1] for p in tree if p in stats)
    return ticks / os.sysconf("SC_CLK_TCK")


def http(method: str, url: str, body=None, token: str = ADMIN) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={
        "authorization": f"Bearer {token}", "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"{}")


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class Proc:
    """A child process whose output goes to a file in the work dir."""

    def __init__(self, name: str, args: list[str], env: dict | None = None, cwd: Path | None = None):
        self.log = WORK / f"{name}.log"
        self.out = open(self.log, "w")
        self.p = subprocess.Popen(args, stdout=self.out, stderr=subprocess.STDOUT, cwd=cwd,
                                  env={**os.environ, **(env or {})}, start_new_session=True)

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.out.close()


def start_nginx() -> tuple[Proc, int]:
    port = free_port()
    fx = {name: (BENCH / "fixtures" / name).read_text() for name in ("anthropic.json", "openai.json", "anthropic.sse")}
    for name, text in fx.items():
        if "'" in text:
            raise SystemExit(f"fixture {name} must not contain a single quote")
    conf = WORK / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
daemon off;
pid {WORK}/nginx.pid;
error_log {WORK}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  client_body_temp_path {WORK}/nginx-body;
  proxy_temp_path {WORK}/nginx-proxy;
  fastcgi_temp_path {WORK}/nginx-fastcgi;
  uwsgi_temp_path {WORK}/nginx-uwsgi;
  scgi_temp_path {WORK}/nginx-scgi;
  server {{
    listen 127.0.0.1:{port} reuseport backlog=4096;
    location = /v1/messages {{ default_type application/json; return 200 '{fx["anthropic.json"].strip()}'; }}
    location = /v1/chat/completions {{ default_type application/json; return 200 '{fx["openai.json"].strip()}'; }}
    location = /sse/v1/messages {{ default_type text/event-stream; return 200 '{fx["anthropic.sse"]}'; }}
  }}
}}
""")
    proc = Proc("nginx", pinned(LOAD_CORE, ["nginx", "-c", str(conf), "-p", str(WORK)]))
    wait_port(port)
    return proc, port


def start_nginx_proxy(upstream: int) -> tuple[Proc, int]:
    """nginx as a plain reverse proxy (keep-alive upstream pool, no logging) on the gateway's
    core: the floor any proxy pays on this machine for its two extra sockets and wake-ups."""
    port = free_port()
    conf = WORK / "nginx-proxy.conf"
    conf.write_text(f"""
worker_processes 1;
daemon off;
pid {WORK}/nginx-proxy.pid;
error_log {WORK}/nginx-proxy-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path {WORK}/nginx-proxy-body;
  proxy_temp_path {WORK}/nginx-proxy-proxy;
  fastcgi_temp_path {WORK}/nginx-proxy-fastcgi;
  uwsgi_temp_path {WORK}/nginx-proxy-uwsgi;
  scgi_temp_path {WORK}/nginx-proxy-scgi;
  upstream canned {{ server 127.0.0.1:{upstream}; keepalive 128; }}
  server {{
    listen 127.0.0.1:{port} reuseport backlog=4096;
    location / {{ proxy_pass http://canned; proxy_http_version 1.1; proxy_set_header Connection ""; }}
  }}
}}
""")
    proc = Proc("nginx-proxy", pinned(SUT_CORE, ["nginx", "-c", str(conf), "-p", str(WORK)]))
    wait_port(port)
    return proc, port


def gateway_config(port: int, upstream: int, data: Path, tenants: str) -> str:
    return f"""
listen = "127.0.0.1:{port}"
data_dir = "{data}"

[[providers]]
id = "upstream"
kind = "anthropic"
base_url = "http://127.0.0.1:{upstream}"

[[providers]]
id = "upstream-sse"
kind = "anthropic"
base_url = "http://127.0.0.1:{upstream}/sse"

[[providers]]
id = "openai"
kind = "openai"
base_url = "http://127.0.0.1:{upstream}"
models = ["gpt-4o"]
{tenants}
"""


def tenant(tid: str, provider: str = "upstream", plugins: bool = False, limit: int = 1_000_000,
           reuse: bool = False) -> str:
    body = f'\n[[tenants]]\nid = "{tid}"\ndefault_provider = "{provider}"\n'
    if plugins:
        body += THREE_PLUGINS.format(primary=provider, limit=limit, reuse="true" if reuse else "false")
    return body


class Gateway:
    def __init__(self, name: str, tenants: str, upstream: int):
        self.port = free_port()
        data = WORK / f"{name}-data"
        shutil.rmtree(data, ignore_errors=True)
        self.db = data / "tollgate.db"
        cfg = WORK / f"{name}.toml"
        cfg.write_text(gateway_config(self.port, upstream, data, tenants))
        self.proc = Proc(name, pinned(SUT_CORE, [str(BIN), "serve", "--config", str(cfg)]),
                         env={"TOLLGATE_ADMIN_TOKEN": ADMIN, "TOLLGATE_PLUGIN_DIR": str(PLUGIN_DIR),
                              "RUST_LOG": "warn"})
        deadline = time.monotonic() + 300
        while "tollgate listening on" not in self.proc.log.read_text():
            if self.proc.p.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"gateway {name} did not start:\n{self.proc.log.read_text()[-3000:]}")
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"

    def key(self, tid: str) -> str:
        return http("POST", f"{self.url}/admin/v1/tenants/{tid}/keys", {"name": "bench"})["secret"]

    def rows(self) -> int:
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30) as db:
            return db.execute("SELECT count(*) FROM request_logs").fetchone()[0]

    def settled_rows(self, expected: int, timeout: float = 30) -> int:
        """The row count once the log writer has caught up: `expected` rows, or a count
        that stayed the same for three polls in a row (1.5 s; a checkpoint or a retried
        batch can hold the writer for a moment)."""
        deadline, last, same = time.monotonic() + timeout, -1, 0
        while time.monotonic() < deadline:
            n = self.rows()
            same = same + 1 if n == last and n > 0 else 0
            if n >= expected or same >= 3:
                return n
            last = n
            time.sleep(0.5)
        return self.rows()

    def plugin_medians(self, window: tuple[int, int]) -> dict[str, float]:
        """Median time of each plugin's call (as logged per request) within `window` (ms)."""
        per: dict[str, list[int]] = {}
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30) as db:
            for (d,) in db.execute("SELECT decisions FROM request_logs WHERE ts_ms BETWEEN ? AND ?", window):
                for x in json.loads(d):
                    per.setdefault(x["plugin"], []).append(x.get("micros", 0))
        return {k: statistics.median(v) for k, v in per.items()}

    def stop(self) -> None:
        self.proc.stop()


def wrk(url: str, conns: int, seconds: int, body: str, auth: str = "", meta: str = "", headers: str = "") -> dict:
    env = {"BENCH_BODY": body, "BENCH_AUTH": auth, "BENCH_META": meta, "BENCH_HEADERS": headers}
    out = subprocess.run(
        pinned(LOAD_CORE, ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "5s",
                           "-s", str(BENCH / "wrk.lua"), url]),
        capture_output=True, text=True, env={**os.environ, **env}, timeout=seconds + 60)
    line = next((l for l in out.stdout.splitlines() if l.startswith("{")), None)
    if line is None:
        raise SystemExit(f"wrk printed no summary:\n{out.stdout}\n{out.stderr}")
    r = json.loads(line)
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    if r["errors"] or r["non2xx"]:
        print(f"  ! {url}: {r['errors']} socket errors, {r['non2xx']} non-2xx", file=sys.stderr)
    return r


def first_byte_us(port: int, path: str, body: str, headers: dict[str, str], n: int) -> float:
    """Median time from the request's last byte sent to the first body byte received, on a
    fresh connection each time (the connect is not timed)."""
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    raw = (f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
           f"anthropic-version: 2023-06-01\r\nconnection: close\r\n{head}"
           f"content-length: {len(body)}\r\n\r\n{body}").encode()
    samples = []
    for _ in range(n):
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buf = b""
            t0 = time.perf_counter_ns()
            s.sendall(raw)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    raise SystemExit(f"no body from :{port}{path}: {buf[:300]!r}")
                buf += chunk
                end = buf.find(b"\r\n\r\n")
                if end >= 0 and len(buf) > end + 4:
                    samples.append((time.perf_counter_ns() - t0) / 1000)
                    break
            status = buf.split(b" ", 2)[1]
            if status != b"200":
                raise SystemExit(f"first-byte request to :{port}{path} got {buf[:500]!r}")
            while s.recv(65536):
                pass
    return statistics.median(samples)


def measure(name: str, url: str, port: int, path: str, body: str, seconds: int, auth: str = "",
            meta: str = "", pid: int | None = None, stream: tuple | None = None, headers: str = "",
            settle=None) -> dict:
    """One row: c=1 latency, c=64 throughput, streaming first byte. `settle` (for a
    Tollgate row) waits for the log writer to catch up: before the c=1 run, so no backlog
    of an earlier run competes with it, and after the c=64 run, so the CPU per request
    counts writing that run's rows too."""
    print(f"- {name}", flush=True)
    settle = settle or (lambda: None)
    warm = wrk(url, 8, 2, body, auth, meta, headers)  # warm the pools and caches
    settle()
    t0, cpu0 = int(time.time() * 1000), cpu_s(pid)
    c1 = wrk(url, 1, seconds, body, auth, meta, headers)
    t1 = int(time.time() * 1000)
    settle()  # the c=1 run's last rows are its own cost
    cpu1 = cpu_s(pid)
    c64 = wrk(url, 64, seconds, body, auth, meta, headers)
    settle()
    cpu2 = cpu_s(pid)
    row = {"name": name, "c1_window": (t0, t1), "p50": c1["p50"], "p99": c1["p99"], "rps": c64["rps"],
           "sent": warm["requests"] + c1["requests"] + c64["requests"], "errors": c1["errors"] + c64["errors"] + c1["non2xx"] + c64["non2xx"],
           # The gateway's own CPU per request (every thread, kernel time in its syscalls
           # and the writing of its log rows included). At one connection it is most of
           # the latency: the core is busy for nearly the whole round trip.
           "cpu_c1": (cpu1 - cpu0) * 1e6 / max(c1["requests"], 1),
           "cpu_c64": (cpu2 - cpu1) * 1e6 / max(c64["requests"], 1)}
    if stream:
        s_path, s_body, s_headers = stream
        row["first_byte"] = first_byte_us(port, s_path, s_body, s_headers, 300)
        row["sent"] += 300
    if pid:
        row["rss"] = rss_mb(pid)
    return row


def fmt_us(v) -> str:
    if v is None:
        return "-"
    return f"{v / 1000:.2f} ms" if v >= 10_000 else f"{v:.0f} µs"


def report(rows: list[dict], extra: list[str]) -> str:
    direct = rows[0]
    lines = ["| target | rps vs direct | added p50 | added p99 | added first byte (stream) |",
             "|---|---|---|---|---|"]
    for r in rows[1:]:
        fb = r.get("first_byte")
        lines.append(
            f"| {r['name']} | {r['rps'] / direct['rps']:.3f}× | {fmt_us(r['p50'] - direct['p50'])} | "
            f"{fmt_us(r['p99'] - direct['p99'])} | {fmt_us(fb - direct['first_byte']) if fb else '-'} |")
    lines += ["", "| target | c=1 p50 | c=1 p99 | c=64 rps | first byte (stream) | CPU per request, c=1 / c=64 | RSS after |",
              "|---|---|---|---|---|---|---|"]
    for r in rows:
        rss = f"{r['rss']:.0f} MB" if "rss" in r else "-"
        cpu = "-" if math.isnan(r["cpu_c1"]) else f"{r['cpu_c1']:.0f} / {r['cpu_c64']:.0f} µs"
        lines.append(f"| {r['name']} | {fmt_us(r['p50'])} | {fmt_us(r['p99'])} | {r['rps']:,.0f} | "
                     f"{fmt_us(r.get('first_byte'))} | {cpu} | {rss} |")
    return "\n".join(lines + [""] + extra)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        m = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
        cpu = m.group(1) if m else cpu
    except OSError:
        pass
    mem = ""
    try:
        kb = int(re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f", {kb / 1024 / 1024:.0f} GiB"
    except (OSError, AttributeError):
        pass
    return f"{cpu}, {CORES} cores{mem}, {platform.system()} {platform.release()}"


def tenants_phase(upstream: int, n: int) -> list[str]:
    """RSS with `n` tenants, each with its own three-plugin chain, each having served a request."""
    print(f"- {n} tenants with three plugins each", flush=True)
    toml = "".join(tenant(f"t{i:04d}", plugins=True, limit=1_000_000 + i) for i in range(n))
    gw = Gateway("tenants", toml, upstream)
    try:
        idle = rss_mb(gw.proc.p.pid)
        keys = [gw.key(f"t{i:04d}") for i in range(n)]
        threads, errors = [], []

        def serve(chunk: list[tuple[int, str]]) -> None:
            for i, key in chunk:
                req = urllib.request.Request(f"{gw.url}/v1/messages", data=ANTHROPIC_BODY.encode(), headers={
                    "authorization": f"Bearer {key}", "content-type": "application/json",
                    "x-portkey-metadata": META.replace('"acme"', f'"t{i:04d}"')})
                try:
                    urllib.request.urlopen(req, timeout=30).read()
                except Exception as e:  # noqa: BLE001 (counted and reported)
                    errors.append(f"t{i:04d}: {e}")

        pairs = list(enumerate(keys))
        for k in range(8):
            t = threading.Thread(target=serve, args=(pairs[k::8],))
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
        loaded = rss_mb(gw.proc.p.pid)
        rows = gw.settled_rows(n)
        out = [f"- {n} tenants, each with its own metadata-policy + model-router + budget-limit chain: "
               f"RSS {idle:.0f} MB after start, {loaded:.0f} MB after every tenant served a request "
               f"({len(errors)} errors, {rows} rows logged)."]
        if errors:
            out.append(f"  first error: {errors[0]}")
        return out
    finally:
        gw.stop()


def soak_phase(gw: Gateway, key: str, seconds: int) -> list[str]:
    print(f"- soak for {seconds}s at c=64", flush=True)
    samples, stop = [], threading.Event()

    def sample() -> None:
        while not stop.wait(10):
            samples.append(rss_mb(gw.proc.p.pid))

    t = threading.Thread(target=sample)
    t.start()
    r = wrk(f"{gw.url}/v1/messages", 64, seconds, ANTHROPIC_BODY, f"Bearer {key}", META)
    stop.set()
    t.join()
    return [f"- soak {seconds}s at c=64 (three plugins): {r['rps']:,.0f} rps, RSS every 10 s: "
            + ", ".join(f"{s:.0f}" for s in samples) + " MB"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    ap.add_argument("--tenants", type=int, default=1000, help="tenants in the memory phase (0 skips it)")
    ap.add_argument("--soak", type=int, default=0, help="seconds of a c=64 soak with RSS samples (0 skips it)")
    ap.add_argument("--peers", action="store_true", help="also measure Portkey and LiteLLM (installed into bench/.work)")
    args = ap.parse_args()
    for tool in ("nginx", "wrk"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"{tool} is not installed: run bench/run.sh (it installs the Debian packages)")
    if not BIN.exists():
        raise SystemExit(f"{BIN} is missing: run `make bench-load` (builds it)")
    WORK.mkdir(exist_ok=True)
    nginx, up = start_nginx()
    rows, extra, stops = [], [], [nginx.stop]
    try:
        direct = measure("nginx direct", f"http://127.0.0.1:{up}/v1/messages", up, "/v1/messages", ANTHROPIC_BODY,
                         args.duration, stream=("/sse/v1/messages", STREAM_BODY, {}))
        rows.append(direct)
        proxy, proxy_port = start_nginx_proxy(up)
        stops.append(proxy.stop)
        rows.append(measure("nginx as a reverse proxy (no logging; the floor for any proxy here)",
                            f"http://127.0.0.1:{proxy_port}/v1/messages", proxy_port, "/v1/messages",
                            ANTHROPIC_BODY, args.duration, stream=("/sse/v1/messages", STREAM_BODY, {})))
        proxy.stop()
        stops.remove(proxy.stop)
        gw = Gateway("gateway", tenant("bare") + tenant("acme", plugins=True) + tenant("bare-sse", "upstream-sse")
                     + tenant("acme-sse", "upstream-sse", plugins=True) + tenant("warm", plugins=True, reuse=True)
                     + tenant("acme-oai", "openai", plugins=True), up)
        stops.append(gw.stop)
        idle = rss_mb(gw.proc.p.pid)
        keys = {t: gw.key(t) for t in ("bare", "acme", "bare-sse", "acme-sse", "warm", "acme-oai")}
        pid = gw.proc.p.pid
        url = f"{gw.url}/v1/messages"

        def via(t: str) -> tuple:
            meta = META.replace('"acme"', f'"{t}"')
            return ("/v1/messages", STREAM_BODY, {"authorization": f"Bearer {keys[t]}", "x-portkey-metadata": meta})

        def settle() -> None:
            gw.settled_rows(1 << 62, timeout=120)  # until the row count stops moving

        rows.append(measure("Tollgate, no plugins", url, gw.port, "", ANTHROPIC_BODY, args.duration,
                            f"Bearer {keys['bare']}", META.replace('"acme"', '"bare"'), pid, via("bare-sse"),
                            settle=settle))
        rows.append(measure("Tollgate, metadata-policy + model-router + budget-limit", url, gw.port, "",
                            ANTHROPIC_BODY, args.duration, f"Bearer {keys['acme']}", META, pid, via("acme-sse"),
                            settle=settle))
        rows.append(measure("Tollgate, the same three plugins with reuse_instance", url, gw.port, "",
                            ANTHROPIC_BODY, args.duration, f"Bearer {keys['warm']}",
                            META.replace('"acme"', '"warm"'), pid, settle=settle))
        # The tenant's route sends the request to its primary provider: `openai` for
        # acme-oai (passed through), the Anthropic upstream for acme (translated both ways).
        rows.append(measure("Tollgate, three plugins, OpenAI client and upstream", f"{gw.url}/v1/chat/completions",
                            gw.port, "", OPENAI_BODY, args.duration, f"Bearer {keys['acme-oai']}",
                            META.replace('"acme"', '"acme-oai"'), pid, settle=settle))
        rows.append(measure("Tollgate, three plugins, OpenAI client to the Anthropic upstream (translated)",
                            f"{gw.url}/v1/chat/completions", gw.port, "", OPENAI_BODY, args.duration,
                            f"Bearer {keys['acme']}", META, pid, settle=settle))
        sent = sum(r["sent"] for r in rows[2:])
        logged = gw.settled_rows(sent)
        for row, how in ((rows[3], "fresh instance per call"), (rows[4], "warm instances")):
            calls = gw.plugin_medians(row["c1_window"])
            extra.append(f"- Plugin calls in the server at c=1, {how} (median of each call's logged time, "
                         "slots to decision): " + ", ".join(f"{k} {v:.0f} µs" for k, v in sorted(calls.items())) + ".")
        extra.append(f"- Gateway RSS: {idle:.0f} MB idle after start, {rss_mb(pid):.0f} MB after the runs.")
        extra.append(f"- Logged: {logged} request rows for {sent} requests completed by the clients "
                     f"(warm-up runs included; requests wrk cuts when a run ends are logged too, as client cut-offs).")
        if args.soak:
            extra += soak_phase(gw, keys["acme"], args.soak)
        gw.stop()
        stops.remove(gw.stop)
        if args.peers:
            from peers import run_peers  # noqa: PLC0415 (optional, heavy set-up)
            rows += run_peers(WORK, up, args.duration, measure, stops)
        if args.tenants:
            extra += tenants_phase(up, args.tenants)
    finally:
        for stop in reversed(stops):
            stop()
    pin = (f"gateway pinned to core {SUT_CORE}, nginx and wrk to core {LOAD_CORE}" if CORES > 1
           else "one core: everything shares it")
    head = [f"Machine: {machine()}; {pin}; wrk -t1, {args.duration} s per run, c=1 then c=64; "
            f"first byte: median of 300 streamed requests, fresh connection each.", ""]
    text = "\n".join(head) + report(rows, extra) + "\n"
    print("\n" + text)
    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.md").write_text(f"<!-- bench/run.py, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} -->\n" + text)


if __name__ == "__main__":
    sys.path.insert(0, str(BENCH))
    main()
