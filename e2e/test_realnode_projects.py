"""A real Compose project on the real node, packed by `compose-operator convert`.

The assistant project (tests/fixtures/projects/assistant) has a build-only service: its image
comes from spec.images (`convert --image`, here the example chat app's image, which has Python
and the openai client). Its pod reads a config file, a bind-mounted project folder (its own code
and a prompt in a subfolder) and an API token from a Secret, and calls its model through the
variables it was given with the openai client: llama.cpp serving the real gemma3 GGUF, behind
the app's model gateway. Until the Secret exists the app says which one is missing and how to
make it; the pod starts once it does.

The operator is the same Helm-installed pod as in test_realnode_chat.py (its fixtures are
reused).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e import realchat
from e2e.operator_harness import REPO
from e2e.realchat import Images, Kube, Say
from e2e.test_realnode_chat import images, kube, operator, say

pytestmark = pytest.mark.realnode
__all__ = ["images", "kube", "operator", "say"]

NAMESPACE = "real-projects"
APP = "assistant"
TOKEN = "token-for-the-real-node"
PROJECT = REPO / "tests" / "fixtures" / "projects" / "assistant"


def convert(folder: Path, app_image: str) -> tuple[str, str]:
    result = subprocess.run(
        [sys.executable, "-m", "compose_operator.cli", "convert", "-f", "compose.yaml",
         "--name", APP, "--namespace", NAMESPACE, "--image", f"assistant={app_image}"],
        cwd=folder, capture_output=True, text=True, check=True,
        env={"PYTHONPATH": str(REPO / "operator"), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    return result.stdout, result.stderr


@pytest.fixture(scope="module")
def assistant(
    kube: Kube, operator: None, images: Images, say: Say, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("project") / "assistant"
    shutil.copytree(PROJECT, folder)
    realchat.ensure_namespace(kube, NAMESPACE)
    try:
        stream, said = convert(folder, images.app)
        say(f"convert packed the assistant project:\n{said.strip()}")
        kube.kubectl("apply", "--server-side", "-f", "-", input=stream)
        missing = realchat.wait_for(
            lambda: _with_reason(kube, "SecretMissing"),
            timeout=120,
            what="the missing Secret named in status",
        )
        kube.kubectl(
            "-n", NAMESPACE, "create", "secret", "generic", "assistant-token",
            f"--from-literal=assistant-token={TOKEN}",
        )  # fmt: skip
        say("Secret assistant-token created; waiting for the assistant and its model")
        yield {"missing": missing, "ready": realchat.wait_current(kube, NAMESPACE, APP, say)}
    finally:
        kube.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true",
                     "--timeout=120s", check=False)  # fmt: skip


def _with_reason(kube: Kube, reason: str) -> dict[str, Any] | None:
    """The app, once its Ready condition has `reason`."""
    app: dict[str, Any] = kube.get("-n", NAMESPACE, "composeapp", APP)
    conditions = app.get("status", {}).get("conditions", [])
    ready: dict[str, Any] = next((c for c in conditions if c["type"] == "Ready"), {})
    return app if ready.get("reason") == reason else None


def test_a_missing_secret_is_named_with_the_command_that_makes_it(
    assistant: dict[str, Any],
) -> None:
    services = {s["name"]: s for s in assistant["missing"]["status"]["services"]}
    assert services["assistant"]["message"] == (
        f"Secret assistant-token missing; kubectl -n {NAMESPACE} create secret generic "
        "assistant-token --from-file=assistant-token=assistant-token.txt"
    )


def test_the_service_reads_its_config_folder_and_secret_and_asks_its_model(
    kube: Kube, assistant: dict[str, Any]
) -> None:
    result = kube.kubectl(
        "-n", NAMESPACE, "exec", "deploy/assistant", "-c", "assistant", "--",
        "python", "/opt/assistant/ask.py",
    )  # fmt: skip
    answer = json.loads(result.stdout)
    assert answer["persona"] == {"name": "Pip", "max_tokens": 16}
    assert answer["system"] == (PROJECT / "assistant" / "prompts" / "system.txt").read_text()
    assert answer["token_sha256"] == hashlib.sha256(TOKEN.encode()).hexdigest()
    deployment = kube.get("-n", NAMESPACE, "deployment", "assistant")
    env = {
        e["name"]: e["value"]
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert answer["url"] == env["MODEL_RUNNER_URL"]  # the model Service, or the app's gateway
    assert answer["url"].endswith(f".{NAMESPACE}.svc.cluster.local/v1/")
    assert answer["model"] == "ai/gemma3"
    assert answer["completion_tokens"] > 0, answer
