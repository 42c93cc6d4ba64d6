"""A model whose engine dies of SIGILL, for real: the status says why in plain words, the app goes
Stalled (reason CrashLoop, kstatus Failed) after the operator's `stallAfterCrashes`, and a spec
change that fixes the image brings it back through Reconciling to Current.

The engine is a stub image (a static C program on no base, `llama-server`) that executes
an instruction no CPU has (`ud2`), the way an engine built for another CPU dies (issue 10: AMX
instructions on a node without AMX). The model comes in through `x-kubernetes.image`; the puller
still fetches the real GGUF first. The operator is the Helm-installed pod of
test_realnode_chat.py with `stallAfterCrashes: 3`, so three crashes (about 30 s of the kubelet's
back-off) are enough.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e import realchat
from e2e.realchat import Images, Kube, Say
from e2e.realnode_support import OCI_PY, RealNode
from e2e.test_realnode_chat import images, kube, say

pytestmark = pytest.mark.realnode
__all__ = ["images", "kube", "say"]

NAMESPACE = "real-crash"
APP = "crashy"
CRASHES = 3
STUB = r"""
#include <stdio.h>
int main(void) {
    puts("sigill-stub: executing an instruction this CPU does not have (ud2)");
    fflush(stdout);
    __builtin_trap();
}
"""
COMPOSE = """
models:
  llm:
    model: ai/gemma3
    context_size: {context}
    x-cloud-options: [cloud.instance-type=gpu-small, cloud.region=us-west-2]
    x-kubernetes:
      image: {image}
"""
SIGILL_WORDS = "code 132 (SIGILL: the image was built for CPU instructions this node lacks"


@pytest.fixture(scope="module")
def stub_image(realnode: RealNode, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The SIGILL stub, built with gcc -static and the node's OCI tool, pushed to the registry."""
    work: Path = tmp_path_factory.mktemp("sigill-stub")
    (work / "stub.c").write_text(STUB)
    subprocess.run(
        ["gcc", "-static", "-Os", "-s", "-o", str(work / "llama-server"), str(work / "stub.c")],
        check=True,
    )
    reference = f"{realnode.registry}/compose-operator/sigill-stub:1"
    archive = work / "stub.tar"
    oci = ["python3", str(OCI_PY)]
    subprocess.run(
        [*oci, "build", "--name", "localhost/compose-operator/sigill-stub:1", "--out",
         str(archive), "--entrypoint", "/usr/bin/llama-server",
         f"{work / 'llama-server'}=/usr/bin/llama-server"],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run([*oci, "push", str(archive), reference], check=True, capture_output=True)
    return reference


@pytest.fixture(scope="module")
def operator(kube: Kube, images: Images, say: Say) -> Iterator[None]:
    realchat.install_operator(kube, images, say, settings={"stallAfterCrashes": CRASHES})
    yield
    kube.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true",
                 "--timeout=120s", check=False)  # fmt: skip
    kube.helm("uninstall", realchat.RELEASE, "--namespace", realchat.OPERATOR_NAMESPACE, "--wait")
    kube.kubectl("delete", "namespace", realchat.OPERATOR_NAMESPACE, "--wait=true",
                 "--timeout=120s", check=False)  # fmt: skip


def app(image: str, context: int) -> dict[str, Any]:
    return {
        "apiVersion": "compose-operator.io/v1alpha1",
        "kind": "ComposeApp",
        "metadata": {"name": APP, "namespace": NAMESPACE},
        "spec": {"compose": COMPOSE.format(image=image, context=context)},
    }


def get_app(kube: Kube) -> dict[str, Any]:
    return kube.get("-n", NAMESPACE, "composeapp", APP)


def conditions(document: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {
        c["type"]: (c["status"], c.get("reason", ""))
        for c in document.get("status", {}).get("conditions", [])
    }


def events(kube: Kube) -> list[dict[str, Any]]:
    listed = kube.get("-n", NAMESPACE, "events", "--field-selector",
                      f"involvedObject.kind=ComposeApp,involvedObject.name={APP}")  # fmt: skip
    return list(listed["items"])


@pytest.fixture(scope="module")
def stalled(
    kube: Kube, operator: None, stub_image: str, say: Say
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The app once Stalled, and every distinct status seen on the way."""
    realchat.ensure_namespace(kube, NAMESPACE)
    say(f"applying {NAMESPACE}/{APP}: ai/gemma3 served by the SIGILL stub {stub_image}")
    realchat.apply(kube, app(stub_image, 1024))
    seen: list[dict[str, Any]] = []

    def stalled_app() -> dict[str, Any] | None:
        document = get_app(kube)
        if not seen or seen[-1] != document.get("status"):
            seen.append(document.get("status", {}))
        return document if conditions(document).get("Stalled", ("", ""))[0] == "True" else None

    document = realchat.wait_for(
        stalled_app,
        f"ComposeApp {NAMESPACE}/{APP} to be Stalled",
        timeout=300,
        interval=1,
        diagnose=lambda: realchat.diagnosis(kube, NAMESPACE),
        progress=lambda: realchat.app_progress(kube, NAMESPACE, APP),
        say=say,
    )
    say(f"Stalled: {json.dumps(document['status']['models'][0].get('crash'))}")
    return document, seen


def test_the_crash_is_explained_in_plain_words_while_it_still_retries(
    stalled: tuple[dict[str, Any], list[dict[str, Any]]], kube: Kube
) -> None:
    _, seen = stalled
    retrying = [
        status
        for status in seen
        if SIGILL_WORDS in status.get("models", [{}])[0].get("message", "")
        and conditions({"status": status}).get("Reconciling") == ("True", "Progressing")
    ]
    assert retrying, json.dumps(seen, indent=1)
    crashed = [e for e in events(kube) if e["reason"] == "ContainerCrashed"]
    assert crashed, json.dumps(events(kube), indent=1)
    assert crashed[0]["type"] == "Warning"
    assert SIGILL_WORDS in crashed[0]["message"]
    assert "sigill-stub: executing an instruction this CPU does not have" in crashed[0]["message"]


def test_after_the_threshold_the_app_is_stalled_and_kstatus_failed(
    stalled: tuple[dict[str, Any], list[dict[str, Any]]], kube: Kube
) -> None:
    document, _ = stalled
    assert conditions(document) == {
        "Ready": ("False", "CrashLoop"),
        "Reconciling": ("False", ""),
        "Stalled": ("True", "CrashLoop"),
    }
    assert realchat.kstatus(document) == "Failed"
    crash = document["status"]["models"][0]["crash"]
    assert crash["container"] == "llama-server"
    assert crash["exitCode"] == 132
    assert crash["crashes"] >= CRASHES
    message = realchat.conditions(document)["Stalled"]["message"]
    assert message.startswith(f"model llm: container llama-server of pod {crash['pod']} crashed ")
    assert SIGILL_WORDS in message
    assert message.endswith("sigill-stub: executing an instruction this CPU does not have (ud2)")
    assert [e["message"] for e in events(kube) if e["reason"] == "CrashLoop"] == [message[:1024]]


def test_a_spec_change_reconciles_again_and_a_working_image_makes_it_current(
    stalled: tuple[dict[str, Any], list[dict[str, Any]]], kube: Kube, images: Images, say: Say
) -> None:
    say("fixing the app: the real llama.cpp image")
    realchat.apply(kube, app(images.llamacpp, 2048))
    deadline = time.monotonic() + 60
    document = get_app(kube)
    while document["status"]["observedGeneration"] != document["metadata"]["generation"]:
        assert time.monotonic() < deadline, json.dumps(document["status"])
        time.sleep(0.5)
        document = get_app(kube)
    assert conditions(document)["Stalled"] == ("False", "")
    assert realchat.kstatus(document) in {"InProgress", "Current"}
    current = realchat.wait_current(kube, NAMESPACE, APP, say, timeout=300)
    assert realchat.kstatus(current) == "Current"
    assert "crash" not in current["status"]["models"][0]
