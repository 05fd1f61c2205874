#!/usr/bin/env python3
"""Fleet load bench: throughput of 1, 2 and 3 release replicas sharing one PostgreSQL
(`[store]`) and one Redis (`[ledger]`), against one gateway on its embedded store and
in-process ledger, all with the three first-party plugins (a dollar budget and a rate
limit on every request) and the nginx upstream of bench/run.py.

Every replica and the load share this machine's cores (nothing is pinned: N replicas
on 2 cores measure what the shared services cost, not how a fleet scales across
machines). One wrk per replica runs at once, 64 connections split between them; the
figure is their sum. Written to bench/results/fleet.md.

Run it through `bench/run.sh --fleet` (builds the release binary and plugins, installs
nginx and wrk) after `make services` (PostgreSQL and Redis from Debian).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (the load bench's nginx, gateway config and wrk)

CONNS = 64


def free_port() -> int:
    return run.free_port()


class Services:
    """Throwaway PostgreSQL and Redis, as the test fixtures start them."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="tollgate-bench-pg-"))
        bindir = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), None)
        if bindir is None or shutil.which("redis-server") is None:
            raise SystemExit("PostgreSQL or Redis is missing: run `make services`")
        self.bin = bindir
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.pg_port, self.redis_port = free_port(), free_port()
        self._pg("initdb", "-D", str(self.dir / "data"), "-U", "postgres", "--auth=trust", "--no-sync",
                 "-E", "UTF8", "--locale=C")
        self._pg("pg_ctl", "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "-w", "-o",
                 f"-p {self.pg_port} -k {self.dir} -c listen_addresses=127.0.0.1", "start")
        self.redis = subprocess.Popen(["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                                       "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
        run.wait_port(self.redis_port)
        self.db = 0

    def _pg(self, tool: str, *args: str) -> None:
        cmd = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def fresh(self) -> tuple[str, str]:
        """A new database and Redis db number, so each fleet starts empty."""
        self.db += 1
        name = f"bench{self.db}"
        subprocess.run(["psql", f"postgres://postgres@127.0.0.1:{self.pg_port}/postgres", "-qc",
                        f"CREATE DATABASE {name}"], check=True, capture_output=True)
        subprocess.run(["redis-cli", "-p", str(self.redis_port), "FLUSHALL"], check=True, capture_output=True)
        return (f"postgres://postgres@127.0.0.1:{self.pg_port}/{name}", f"redis://127.0.0.1:{self.redis_port}")

    def stop(self) -> None:
        self.redis.kill()
        self.redis.wait()
        try:
            self._pg("pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def start_replica(name: str, upstream: int, shared: tuple[str, str] | None) -> run.Gateway:
    """A release gateway with the three-plugin tenant; on the shared services if given."""
    gw = run.Gateway.__new__(run.Gateway)
    gw.port = free_port()
    data = run.WORK / f"{name}-data"
    shutil.rmtree(data, ignore_errors=True)
    gw.db = data / "tollgate.db"
    text = run.gateway_config(gw.port, upstream, data, run.tenant("acme", plugins=True))
    # Top-level tables before the first [[providers]].
    text = text.replace("[[providers]]", tenants_head(shared) + "[[providers]]", 1)
    cfg = run.WORK / f"{name}.toml"
    cfg.write_text(text)
    gw.proc = run.Proc(name, [str(run.BIN), "serve", "--config", str(cfg)],
                       env={"TOLLGATE_ADMIN_TOKEN": run.ADMIN, "TOLLGATE_PLUGIN_DIR": str(run.PLUGIN_DIR),
                            "RUST_LOG": "warn"})
    deadline = time.monotonic() + 300
    while "tollgate listening on" not in gw.proc.log.read_text():
        if gw.proc.p.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{name} did not start:\n{gw.proc.log.read_text()[-3000:]}")
        time.sleep(0.05)
    gw.url = f"http://127.0.0.1:{gw.port}"
    return gw


def tenants_head(shared: tuple[str, str] | None) -> str:
    if not shared:
        return ""
    pg, redis = shared
    return f'[store]\nkind = "postgres"\nurl = "{pg}"\n\n[ledger]\nkind = "redis"\nurl = "{redis}"\n\n'


def wait_key(gws: list, key: str) -> None:
    for g in gws:
        deadline = time.monotonic() + 10
        while True:
            req = run.urllib.request.Request(f"{g.url}/v1/models", headers={"authorization": f"Bearer {key}"})
            try:
                with run.urllib.request.urlopen(req, timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"the key never reached {g.url}")
                time.sleep(0.05)


def load(gws: list, key: str, seconds: int) -> tuple[float, int]:
    """Sum of requests/s of one wrk per replica at once; and the non-2xx count."""
    conns = max(1, CONNS // len(gws))

    def one(g):
        return run.wrk(f"{g.url}/v1/messages", conns, seconds, run.ANTHROPIC_BODY, f"Bearer {key}", run.META)

    with concurrent.futures.ThreadPoolExecutor(len(gws)) as pool:
        results = list(pool.map(one, gws))
    return sum(r["rps"] for r in results), sum(r["non2xx"] + r["errors"] for r in results)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=8, help="seconds per wrk run (default 8)")
    args = ap.parse_args()
    run.WORK.mkdir(exist_ok=True)
    run.LOAD_CORE = ",".join(str(c) for c in range(run.CORES))  # nothing pinned here
    nginx, up = run.start_nginx()
    services = Services()
    rows = []
    try:
        for n in (0, 1, 2, 3):
            shared = services.fresh() if n else None
            gws = [start_replica(f"fleet-{n}-{i}", up, shared) for i in range(max(n, 1))]
            try:
                key = gws[0].key("acme")
                wait_key(gws, key)
                load(gws, key, 2)  # warm-up: connections, plugin caches
                rps, bad = load(gws, key, args.duration)
                label = ("1 gateway, embedded SQLite and in-process ledger" if n == 0
                         else f"{n} replica{'s' if n > 1 else ''} on PostgreSQL + Redis")
                rows.append((label, rps, bad))
                print(f"{label}: {rps:,.0f} req/s ({bad} non-2xx)", flush=True)
            finally:
                for g in gws:
                    g.stop()
    finally:
        services.stop()
        nginx.stop()
    base = rows[0][1]
    lines = [f"Machine: {run.machine()}; nothing pinned; {CONNS} connections in all, one wrk per replica, "
             f"{args.duration} s; tenant with metadata-policy + model-router + budget-limit (a daily dollar "
             "budget and a per-minute rate limit on every request).", "",
             "| setup | req/s | vs one gateway | non-2xx |", "|---|---|---|---|"]
    lines += [f"| {label} | {rps:,.0f} | {rps / base:.2f}x | {bad} |" for label, rps, bad in rows]
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    out = run.BENCH / "results"
    out.mkdir(exist_ok=True)
    (out / "fleet.md").write_text(f"<!-- bench/fleet.py, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} -->\n"
                                  + text)


if __name__ == "__main__":
    main()
