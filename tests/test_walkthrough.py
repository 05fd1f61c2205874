"""docs/plugins.md's walk-through, run literally: for each language, the command blocks
marked `<!-- walkthrough: LANG -->` run in an empty folder (`plugin new`, `plugin build`,
`plugin test`, a case added, `bundle replay`, `bundle apply`) against a real gateway; then
the official SDK sees the deployed policy refuse a blocked model and route the rest."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import anthropic
import pytest

from conftest import ADMIN_TOKEN, BIN, ROOT, Gateway, Mock

DOC = ROOT / "docs" / "plugins.md"


def blocks(lang: str) -> str:
    """The walk-through's shell commands for `lang`, in order."""
    found = re.findall(rf"<!-- walkthrough: {lang} -->\n```sh\n(.*?)```", DOC.read_text(), re.S)
    assert found, f"docs/plugins.md has no walk-through for {lang}"
    return "\n".join(found)


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    mock = Mock("walk-anthropic", flavor="anthropic")
    tmp = tmp_path_factory.mktemp("walkthrough")
    g = Gateway(tmp, f"""
listen = "127.0.0.1:0"
data_dir = "{tmp / 'data'}"
default_provider = "other"

[logs]
flush_ms = 50

[[providers]]
id = "anthropic"
kind = "anthropic"
base_url = "{mock.url}"

[[providers]]
id = "other"
kind = "anthropic"
base_url = "{mock.url}"

[[tenants]]
id = "acme"
# What docs/plugins.md asks for an interpreted plugin.
sandbox = {{ memory_mib = 48, deadline_ms = 50 }}
""")
    yield g
    g.stop()
    mock.process.stop()


@pytest.mark.parametrize("lang", ["python", "js", "rust"])
def test_the_walkthrough_deploys_a_working_policy(gw, lang, tmp_path):
    env = {
        **os.environ,
        # `tollgate` as the doc calls it, and componentize-py from the test venv.
        "PATH": os.pathsep.join([str(BIN.parent), str(Path(sys.executable).parent), os.environ["PATH"]]),
        "TOLLGATE_URL": gw.url,
        "TOLLGATE_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", blocks(lang)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"{out.stdout}\n{out.stderr}"
    # Both `plugin test` runs passed, the second with the added case.
    assert "6 passed, 0 failed" in out.stdout and "7 passed, 0 failed" in out.stdout, out.stdout
    c = anthropic.Anthropic(base_url=gw.url, api_key=gw.create_key("acme", name=f"walk-{lang}"), max_retries=0)
    with pytest.raises(anthropic.PermissionDeniedError) as e:
        c.messages.create(model="claude-opus-4-1", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    assert "model-guard: model 'claude-opus-4-1' is blocked" in e.value.message
    raw = c.messages.with_raw_response.create(model="claude-haiku-4-5", max_tokens=16,
                                              messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["x-tollgate-provider"] == "anthropic"
    row = gw.wait_log(raw.headers["request-id"])
    assert [d["plugin"] for d in row["decisions"]][0] == "model_guard"
    status, _, history = gw.admin("GET", "/tenants/acme/bundle/versions")
    assert status == 200 and history["data"][0]["message"] == "model-guard: no Opus"
