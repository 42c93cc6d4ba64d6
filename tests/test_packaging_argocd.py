"""The Argo CD health check for ComposeApp, run in Lua 5.1 as Argo CD's gopher-lua runs it.

The cases live beside the script in Argo CD's own `health_test.yaml` format, so the script
and its tests can be contributed upstream unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import lua51

GITOPS = Path(__file__).resolve().parent.parent / "docs" / "gitops"
SCRIPT = (GITOPS / "argocd-health.lua").read_text()
CASES = yaml.safe_load((GITOPS / "health_test.yaml").read_text())["tests"]


def run_health_check(obj: dict[str, Any]) -> dict[str, str]:
    """Evaluate the script with `obj` bound as Argo CD binds it, return its status table."""
    lua = lua51.LuaRuntime()
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(SCRIPT)
    return {"status": result["status"], "message": result["message"]}


@pytest.mark.parametrize("case", CASES, ids=[Path(c["inputPath"]).stem for c in CASES])
def test_health_of_sample(case: dict[str, Any]) -> None:
    obj = yaml.safe_load((GITOPS / case["inputPath"]).read_text())
    assert run_health_check(obj) == case["healthStatus"]


def test_every_sample_is_a_case() -> None:
    samples = {f"testdata/{p.name}" for p in (GITOPS / "testdata").glob("*.yaml")}
    assert samples == {c["inputPath"] for c in CASES}


def test_stalled_wins_over_ready_true() -> None:
    """A Stalled app is Degraded even if an old Ready=True was left beside it."""
    obj = yaml.safe_load((GITOPS / "testdata" / "ready.yaml").read_text())
    for condition in obj["status"]["conditions"]:
        if condition["type"] == "Stalled":
            condition.update(status="True", message="sharing: require: no offer for ai/smollm2")
    assert run_health_check(obj) == {
        "status": "Degraded",
        "message": "sharing: require: no offer for ai/smollm2",
    }


def test_being_deleted_is_progressing() -> None:
    obj = yaml.safe_load((GITOPS / "testdata" / "ready.yaml").read_text())
    obj["metadata"]["deletionTimestamp"] = "2026-11-29T10:00:00Z"
    assert run_health_check(obj) == {"status": "Progressing", "message": "Being deleted"}


def test_stalled_without_message_quotes_ready() -> None:
    obj = yaml.safe_load((GITOPS / "testdata" / "invalid-compose.yaml").read_text())
    stalled = next(c for c in obj["status"]["conditions"] if c["type"] == "Stalled")
    stalled["message"] = ""
    assert run_health_check(obj) == {
        "status": "Degraded",
        "message": "compose.yaml: models.llm.runtime_flags[2]: --port is set by the operator; "
        "remove it",
    }
