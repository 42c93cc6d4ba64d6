"""Restarting the operator mid-reconcile converges to the same state as an undisturbed run."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from e2e.cluster_support import Cluster
from e2e.operator_harness import (
    compose_app,
    condition,
    eventually,
    install_crd_and_rbac,
    running_operator,
)

MODELS = 12


def big_app() -> str:
    models = "\n".join(
        f"  m{i}: {{model: ai/smollm2, context_size: {1024 + i}}}" for i in range(MODELS)
    )
    bindings = ", ".join(f"m{i}" for i in range(MODELS))
    return f"services:\n  app: {{image: my-app, models: [{bindings}]}}\nmodels:\n{models}\n"


def owned_state(cluster: Cluster, namespace: str) -> dict[str, Any]:
    """What the app consists of, without server-assigned noise."""
    items = cluster.get_json(
        "-n", namespace, "deployments,services", "-l", "compose-operator.io/app=big"
    )["items"]
    state = {}
    for item in items:
        key = f"{item['kind']}/{item['metadata']['name']}"
        spec = item["spec"]
        if item["kind"] == "Deployment":
            state[key] = spec["template"]["spec"]["containers"][0].get("args") or spec["template"][
                "spec"
            ]["containers"][0].get("env")
        else:
            state[key] = [(p["port"], p.get("targetPort")) for p in spec["ports"]]
    return state


def test_restart_mid_reconcile_converges(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory, namespace: str
) -> None:
    account = install_crd_and_rbac(cluster, webhook=False)
    scratch = tmp_path_factory.mktemp("restart")
    with running_operator(cluster, scratch, account=account, name="first") as first:
        cluster.kubectl("-n", namespace, "apply", "-f", "-", input=compose_app("big", big_app()))
        eventually(
            lambda: cluster.get_json("-n", namespace, "deployments")["items"],
            interval=0.05,
            what="the first objects to appear",
        )
        first.stop(signal.SIGKILL)
    partial = owned_state(cluster, namespace)

    with running_operator(cluster, scratch, account=account, name="second"):

        def converged() -> dict[str, Any] | None:
            app = cluster.get_json("-n", namespace, "composeapp", "big")
            ready = condition(app, "Ready").get("status") == "True"
            return app if ready else None

        app = eventually(converged, timeout=120, what="Ready after the restart")
        state = owned_state(cluster, namespace)

    # Each model's Deployment and Service, the app's Deployment, the gateway's two.
    assert len(partial) <= 2 * MODELS + 3
    assert len(state) == 2 * MODELS + 3, sorted(state)
    gateway = f"http://big-models.{namespace}.svc.cluster.local/v1/"
    assert {e["name"]: e["value"] for e in state["Deployment/app"]} == {
        name: value
        for i in range(MODELS)
        for name, value in ((f"M{i}_MODEL", "ai/smollm2"), (f"M{i}_URL", gateway))
    }
    for i in range(MODELS):
        args = state[f"Deployment/big-m{i}"]
        assert args[args.index("--ctx-size") + 1] == str(1024 + i)
    assert app["status"]["ready"] == {
        "models": f"{MODELS}/{MODELS}",
        "services": "1/1",
        "shared": f"0/{MODELS}",
    }
