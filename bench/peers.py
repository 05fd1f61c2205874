"""The peers of `bench/run.py --peers`: Portkey's open-source gateway (npm
`@portkey-ai/gateway`, one node process) and LiteLLM's proxy (PyPI `litellm[proxy]`, one
worker), installed into bench/.work/peers on first use and pointed at the same nginx
upstream. Both are driven through their OpenAI-compatible `/v1/chat/completions`, the
route both document for any provider, with the canned OpenAI answer behind it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import run

OPENAI_BODY = run.OPENAI_BODY


def _sh(args: list[str], cwd: Path | None = None) -> None:
    print("  $", " ".join(args), flush=True)
    subprocess.run(args, cwd=cwd, check=True, stdout=subprocess.DEVNULL)


def _wait_ready(proc: run.Proc, port: int, name: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.p.poll() is not None:
            raise SystemExit(f"{name} exited:\n{proc.log.read_text()[-3000:]}")
        try:
            run.wait_port(port, 1)
            return
        except RuntimeError:
            pass
    raise SystemExit(f"{name} did not listen on {port}:\n{proc.log.read_text()[-3000:]}")


def portkey(work: Path, upstream: int) -> tuple[run.Proc, int, str, str]:
    home = work / "peers" / "portkey"
    entry = home / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    if not entry.exists():
        home.mkdir(parents=True, exist_ok=True)
        _sh(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(home), "@portkey-ai/gateway"])
    port = run.free_port()
    proc = run.Proc("portkey", run.pinned(run.SUT_CORE, ["node", str(entry), f"--port={port}"]), cwd=home)
    _wait_ready(proc, port, "portkey")
    headers = "\n".join([
        "x-portkey-provider: openai",
        f"x-portkey-custom-host: http://127.0.0.1:{upstream}/v1",
    ])
    return proc, port, headers, "Bearer bench"


# LiteLLM refuses to start without a master key (and then requires it on every call).
LITELLM_KEY = "sk-tollgate-bench-0123456789abcdef0123456789abcdef"


def litellm(work: Path, upstream: int) -> tuple[run.Proc, int, str, str]:
    venv = work / "peers" / "litellm-venv"
    exe = venv / "bin" / "litellm"
    if not exe.exists():
        _sh([sys.executable, "-m", "venv", str(venv)])
        _sh([str(venv / "bin" / "pip"), "install", "--quiet", "litellm[proxy]"])
    cfg = work / "litellm.yaml"
    cfg.write_text(json.dumps({
        "model_list": [{"model_name": "gpt-4o", "litellm_params": {
            "model": "openai/gpt-4o", "api_base": f"http://127.0.0.1:{upstream}/v1", "api_key": "bench"}}],
    }))
    port = run.free_port()
    env = {"LITELLM_MASTER_KEY": LITELLM_KEY, "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False", "DISABLE_ADMIN_UI": "True"}
    proc = run.Proc("litellm", run.pinned(run.SUT_CORE, [str(exe), "--config", str(cfg), "--port", str(port),
                                                         "--host", "127.0.0.1", "--num_workers", "1"]), env=env)
    _wait_ready(proc, port, "litellm")
    return proc, port, "", f"Bearer {LITELLM_KEY}"


def run_peers(work: Path, upstream: int, seconds: int, measure, stops: list) -> list[dict]:
    rows = []
    for name, start in (("Portkey gateway (node, one process)", portkey),
                        ("LiteLLM proxy (one worker)", litellm)):
        if name.startswith("Portkey") and not shutil.which("npm"):
            print(f"  ! skipping {name}: npm is not installed", file=sys.stderr)
            continue
        try:
            proc, port, headers, auth = start(work, upstream)
        except (subprocess.CalledProcessError, SystemExit) as e:
            print(f"  ! skipping {name}: {e}", file=sys.stderr)
            continue
        stops.append(proc.stop)
        try:
            row = measure(name, f"http://127.0.0.1:{port}/v1/chat/completions", port, "", OPENAI_BODY, seconds,
                          auth, "", proc.p.pid, None, headers)
            rows.append(row)
        finally:
            proc.stop()
            stops.remove(proc.stop)
    return rows


if __name__ == "__main__":
    os.execv(sys.executable, [sys.executable, str(Path(__file__).with_name("run.py")), "--peers", *sys.argv[1:]])
