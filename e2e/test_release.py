"""`compose-operator release-all` on the real API server, as the chart's uninstall hook runs
it: after the operator stopped, apps that held its finalizer (one bound to a Helm-managed
Deployment, one offering a model) are released, the Deployment gets back exactly what Helm
wrote, and deleting the apps no longer waits (issue 12: they wedged their namespace).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from e2e.cluster_support import Cluster
from e2e.operator_harness import (
    KWOK_SETTINGS,
    OPERATOR_NAMESPACE,
    RELEASE,
    REPO,
    compose_app,
    env_of,
    eventually,
    install_crd_and_rbac,
    running_operator,
)
from e2e.test_operator import BINDING_APP, apply_as_helm, managed_view

FINALIZER = "compose-operator.io/bindings"
OFFER = """
models:
  llm:
    model: ai/smollm2
    x-kubernetes: {gpus: 0, offer: {namespaces: [nobody-yet]}}
"""


def hook_account(cluster: Cluster) -> str:
    """The uninstall hook's ServiceAccount and RBAC, from the chart's post-delete hooks."""
    rendered = subprocess.run(
        [str(cluster.helm_path), "template", RELEASE, str(REPO / "charts" / "compose-operator"),
         "--namespace", OPERATOR_NAMESPACE],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    hooks = [
        doc
        for doc in yaml.safe_load_all(rendered)
        if doc and doc["kind"] != "Job" and "helm.sh/hook" in doc["metadata"].get("annotations", {})
    ]
    cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(hooks))
    return str(next(d for d in hooks if d["kind"] == "ServiceAccount")["metadata"]["name"])


def finalizers(cluster: Cluster, namespace: str, name: str) -> list[str]:
    app = cluster.get_json("-n", namespace, "composeapp", name)
    return list(app["metadata"].get("finalizers", []))


def test_release_all_frees_every_app_the_operator_left_behind(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    account = install_crd_and_rbac(cluster, webhook=False)
    apply_as_helm(cluster, namespace, opted_in=True)
    helm_wrote = managed_view(cluster.get_json("-n", namespace, "deployment", "web"))
    settings = yaml.safe_load(KWOK_SETTINGS.read_text()) or {}
    settings["sharing"] = {"policy": "prefer", "offerNamespaces": [namespace]}
    with running_operator(cluster, tmp_path, account=account, settings=settings, name="release"):
        for name, text in (("demo", BINDING_APP), ("platform", OFFER)):
            cluster.kubectl("-n", namespace, "apply", "-f", "-", input=compose_app(name, text))
        eventually(
            lambda: all(
                FINALIZER in finalizers(cluster, namespace, name) for name in ("demo", "platform")
            ),
            what="demo and platform hold the finalizer",
        )
        eventually(
            lambda: "LLM_URL" in env_of(cluster.get_json("-n", namespace, "deployment", "web")),
            what="the Helm Deployment bound",
        )
    # The operator is gone (uninstalled). Without release-all these deletions would hang.
    kubeconfig = cluster.service_account_kubeconfig(OPERATOR_NAMESPACE, hook_account(cluster))
    released = subprocess.run(
        [sys.executable, "-m", "compose_operator.cli", "release-all", "--namespace", namespace],
        capture_output=True, text=True, timeout=120,
        env={**cluster.env(), "KUBECONFIG": str(kubeconfig), "PYTHONPATH": str(REPO / "operator")},
    )  # fmt: skip
    assert released.returncode == 0, released.stderr
    assert f"released ComposeApp {namespace}/demo: finalizer removed; restored web" in (
        released.stdout
    )
    assert f"released ComposeApp {namespace}/platform: finalizer removed" in released.stdout
    restored = cluster.get_json("-n", namespace, "deployment", "web", "--show-managed-fields")
    assert managed_view(restored) == helm_wrote
    assert "compose-operator" not in {m["manager"] for m in restored["metadata"]["managedFields"]}
    for name in ("demo", "platform"):
        cluster.kubectl(
            "-n", namespace, "delete", "composeapp", name, "--wait=true", "--timeout=30s"
        )  # fmt: skip
