"""`compose-operator release-all`: the finalizer's escape when the operator is uninstalled
with apps left (issue 12: such apps held their deletion, their namespace's and the CRD's)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from compose_operator.shell import kube
from compose_operator.shell.reconcile import BOUND_BY_ANNOTATION, FINALIZER
from compose_operator.shell.release import OperatorStillRunning, release_all, stop_operator
from tests.shell_fakes import FakeApi


def app(namespace: str, name: str, finalizers: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "compose-operator.io/v1alpha1",
        "kind": "ComposeApp",
        "metadata": {"name": name, "namespace": namespace, "finalizers": finalizers},
        "spec": {"compose": "services: {}\n"},
    }


def helm_deployment(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {"template": {"spec": {"containers": [{"name": "main", "env": []}]}}},
    }


@pytest.fixture
def api() -> FakeApi:
    fake = FakeApi()
    fake.seed(kube.COMPOSE_APPS, app("team-a", "chat", [FINALIZER, "other/keep"]))
    fake.seed(kube.COMPOSE_APPS, app("platform", "models", [FINALIZER]))
    fake.seed(kube.COMPOSE_APPS, app("team-b", "quiet", []))
    fake.seed(kube.DEPLOYMENTS, helm_deployment("team-a", "worker"))
    fake.seed(kube.DEPLOYMENTS, helm_deployment("team-a", "unrelated"))
    # What the operator had applied to the bound Deployment: env and its bound-by mark.
    fake.ours["deployments", "team-a", "worker"] = {
        "metadata": {"annotations": {BOUND_BY_ANNOTATION: "chat"}},
        "spec": {
            "template": {
                "spec": {
                    "containers": [{"name": "main", "env": [{"name": "LLM_URL", "value": "u"}]}]
                }
            }
        },
    }
    return fake


def test_every_finalizer_goes_and_bound_deployments_get_back_what_they_had(api: FakeApi) -> None:
    before = copy.deepcopy(api.others["deployments", "team-a", "worker"])
    said: list[str] = []

    released = release_all(api, say=said.append)

    assert released.apps == ["platform/models", "team-a/chat"]
    assert released.deployments == ["team-a/worker"]
    after = api.live(kube.DEPLOYMENTS, "team-a", "worker")
    assert after is not None
    for version in (before, after):
        version["metadata"].pop("resourceVersion")
    assert after == before, "exactly what its owner wrote, nothing of ours"
    finalizers = {
        (ns, name): obj["metadata"]["finalizers"]
        for (plural, ns, name), obj in api.others.items()
        if plural == "composeapps"
    }
    assert finalizers == {
        ("team-a", "chat"): ["other/keep"],
        ("platform", "models"): [],
        ("team-b", "quiet"): [],
    }
    assert said[-1] == "2 apps released, 1 Deployments restored"
    assert not [r for r in api.writes() if r.name == "unrelated"]


def test_only_the_namespaces_named(api: FakeApi) -> None:
    assert release_all(api, ["platform"], say=lambda _: None).apps == ["platform/models"]


def operator_pod(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ops", "labels": {"app": "op"}}}


def test_the_operator_is_stopped_first_and_its_pods_waited_for() -> None:
    api = FakeApi()
    api.seed(
        kube.DEPLOYMENTS,
        {"metadata": {"name": "op", "namespace": "ops"}, "spec": {"replicas": 2,
         "selector": {"matchLabels": {"app": "op"}}}},
    )  # fmt: skip
    api.seed(kube.PODS, operator_pod("op-1"))
    naps: list[float] = []

    def sleep(seconds: float) -> None:
        naps.append(seconds)
        api.others.pop(("pods", "ops", "op-1"))  # the pod terminates

    stop_operator(api, "ops", "op", "", timeout=30, sleep=sleep, say=lambda _: None)
    live = api.live(kube.DEPLOYMENTS, "ops", "op")
    assert live is not None and live["spec"]["replicas"] == 0
    assert naps == [1]


def test_an_operator_that_does_not_stop_stops_release_all() -> None:
    api = FakeApi()
    api.seed(kube.PODS, operator_pod("op-1"))
    ticks = iter(range(0, 1000, 10))
    with pytest.raises(OperatorStillRunning, match="op-1"):
        stop_operator(
            api, "ops", "gone", "app=op", timeout=30, sleep=lambda _: None,
            clock=lambda: float(next(ticks)), say=lambda _: None,
        )  # fmt: skip
