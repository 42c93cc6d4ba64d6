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

from compose_operator import compose, render
from compose_operator.settings import Settings
from compose_operator.shell.status import Outcome, build_status

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


COMPOSE = """\
services:
  app:
    image: ghcr.io/example/chat:1.2
    models: [llm]
models:
  llm:
    model: ai/smollm2
"""


def app_with_status(status: dict[str, Any], generation: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "compose-operator.io/v1alpha1",
        "kind": "ComposeApp",
        "metadata": {"name": "chat", "namespace": "team-a", "generation": generation},
        "spec": {"compose": COMPOSE},
        "status": status,
    }


def written_status(outcome: Outcome, *, planned: bool = False) -> dict[str, Any]:
    """The status the operator's own status writer makes for this outcome."""
    plan = None
    if planned:
        project = compose.load_project(COMPOSE)
        plan = render.plan(project, app="chat", namespace="team-a", settings=Settings())
    return build_status(
        generation=2,
        plan=plan,
        outcome=outcome,
        deployments={},
        pods=[],
        previous={},
        now="2026-11-29T10:00:00Z",
    )


@pytest.mark.parametrize(
    ("outcome", "planned", "health"),
    [
        (
            Outcome(),
            False,
            {"status": "Healthy", "message": "every model and service is available"},
        ),
        (
            Outcome(failure="InvalidCompose", messages=("compose.yaml: models.llm: bad",)),
            False,
            {"status": "Degraded", "message": "compose.yaml: models.llm: bad"},
        ),
        (
            Outcome(failure="ReconcileFailed", messages=("the API server said 503",)),
            False,
            {"status": "Progressing", "message": "retrying: the API server said 503"},
        ),
        (
            Outcome(),
            True,
            {
                "status": "Progressing",
                "message": "model llm: Deployment chat-llm does not exist yet\n"
                "service app: Deployment app does not exist yet\n"
                "model gateway: Deployment chat-models does not exist yet",
            },
        ),
        (
            Outcome(refused={"app": "Deployment app has no compose-operator.io/app annotation"}),
            True,
            {
                "status": "Degraded",
                "message": "service app: Deployment app has no compose-operator.io/app annotation",
            },
        ),
    ],
    ids=["ready", "invalid", "retrying", "waiting", "refused"],
)
def test_health_of_what_the_operator_writes(
    outcome: Outcome, planned: bool, health: dict[str, str]
) -> None:
    """The script reads the status writer's real output, not only hand-made samples."""
    status = written_status(outcome, planned=planned)
    assert run_health_check(app_with_status(status)) == health
