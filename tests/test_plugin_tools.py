"""`tollgate plugin test` and `plugin check` as a plugin author meets them: a failing case
is a FAIL line with what was expected and what came back, and exit status 1; a refused
config, a hook the plugin does not declare and a case that checks nothing never pass; bad
components are refused with what to do."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from conftest import PLUGIN_DIR, ROOT, tollgate

TEAM_HOURS = PLUGIN_DIR / "tollgate_team_hours.wasm"


def run_cases(tmp_path, text: str):
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "cases.toml").write_text(text)
    return tollgate("plugin", "test", str(TEAM_HOURS), "--cases", str(cases))


def test_the_shipped_fixtures_pass_for_the_rust_crate():
    out = tollgate("plugin", "test", str(ROOT / "plugins" / "team-hours"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "20 passed, 0 failed" in out.stdout


def test_failures_show_the_difference_and_fail_the_run(tmp_path):
    out = run_cases(tmp_path, """
config = { teams = { eng = { models = ["claude-*"] } } }

[[case]]
name = "passes"
request = { team = "eng" }
expect = { decision = "allow", labels = { "team_hours.entry" = "eng" } }

[[case]]
name = "wrong expectation"
request = { team = "eng", model = "gpt-4o" }
expect = { decision = "allow" }

[[case]]
name = "a broken config is not a denial"
config = { teams = {} }
request = { team = "eng" }
expect = { decision = "deny" }

[[case]]
name = "a hook it does not declare"
hook = "inspect-request"
expect = { decision = "allow" }

[[case]]
name = "checks nothing"
expect = {}
""")
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert any(line.strip().startswith("PASS") and "passes" in line for line in lines), out.stdout
    assert "expected decision allow" in out.stdout
    assert "got deny 403 permission_error \"team-hours: model 'gpt-4o' is not allowed for team 'eng'\"" in out.stdout
    assert "the config was refused: " in out.stdout and "teams: must list at least one team" in out.stdout
    assert "does not declare the inspect-request hook" in out.stdout
    assert "expect: says nothing to check" in out.stdout
    assert "1 passed, 4 failed" in out.stdout


def test_bad_components_are_refused_with_what_to_do(tmp_path):
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": []}))
    core = tmp_path / "core.wasm"
    core.write_bytes(b"\0asm\x01\0\0\0")
    out = tollgate("plugin", "check", str(core), "--request", str(request))
    assert out.returncode != 0 and "core WebAssembly module, not a component" in out.stderr + out.stdout
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"teams": {}}))
    out = tollgate("plugin", "check", str(TEAM_HOURS), "--config", str(config), "--request", str(request))
    assert out.returncode == 1 and "config: REJECTED" in out.stdout and "teams: must list at least one team" in out.stdout


@pytest.mark.parametrize("lang", ["python", "js", "rust"])
def test_a_new_project_with_every_hook_builds_and_passes_its_cases(tmp_path, lang):
    env = {"PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    out = tollgate("plugin", "new", "cap-all", "--lang", lang, "--hook", "policy,route,budget",
                   "--dir", str(tmp_path / "cap-all"), env=env)
    assert out.returncode == 0, out.stderr
    out = tollgate("plugin", "build", str(tmp_path / "cap-all"), env=env, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    out = tollgate("plugin", "test", str(tmp_path / "cap-all"), env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    # the config accepted and one refused, policy x2, route x2, budget x2
    assert "8 passed, 0 failed" in out.stdout, out.stdout
    for hook in ("policy", "route", "budget"):
        assert f" {hook} " in out.stdout
