"""The reconciler against a recording fake API: what it applies, prunes, writes and emits."""

from __future__ import annotations

import copy
from typing import Any

import kopf
import pytest

from compose_operator.settings import Settings
from compose_operator.shell import kube
from compose_operator.shell.reconcile import (
    BOUND_BY_ANNOTATION,
    FINALIZER,
    HASH_ANNOTATION,
    is_subset,
)
from tests.shell_fakes import FakeApi, Request, WatchedReconciler

NS = "team"
APP = "chat"
NOW = "2026-11-29T10:00:00Z"
DIRECT = Settings(model_endpoint="direct")
"""The reconcile mechanics below on per-model URLs; the model gateway's own: at the end."""

COMPOSE = """\
services:
  web:
    image: nginx
    ports: ["8080:80"]
    models: [llm]
models:
  llm:
    model: ai/smollm2
  embed:
    model: ai/mxbai-embed-large
"""

COMPOSE_ONE_MODEL = """\
services:
  web:
    image: nginx
    ports: ["8080:80"]
    models: [llm]
models:
  llm:
    model: ai/smollm2
"""

COMPOSE_BOUND = """\
services:
  worker:
    build: .
    models:
      llm:
        endpoint_var: AI_URL
models:
  llm:
    model: ai/smollm2
"""

COMPOSE_UNBOUND = """\
services:
  worker:
    build: .
models:
  llm:
    model: ai/smollm2
"""


def compose_app(compose: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "compose-operator.io/v1alpha1",
        "kind": "ComposeApp",
        "metadata": {"name": APP, "namespace": NS, "uid": "app-uid", "generation": 1},
        "spec": {"compose": compose, **spec} if compose else spec,
    }


def user_deployment(name: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": NS,
            "annotations": {"owner": "helm", **(annotations or {})},
            "labels": {"app": name},
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "main",
                            "image": "worker:1",
                            "env": [{"name": "KEEP", "value": "1"}],
                        },
                        {"name": "sidecar", "image": "proxy:1"},
                    ]
                },
            },
        },
    }


def available(replicas: int = 1) -> dict[str, int]:
    return {
        "observedGeneration": 1,
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
    }


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def reconciler(api: FakeApi) -> WatchedReconciler:
    return WatchedReconciler(api, DIRECT, now=lambda: NOW)


def verbs(requests: list[Request]) -> list[tuple[str, str, str]]:
    return [(r.verb, r.resource, r.name) for r in requests]


def app_status(api: FakeApi) -> dict[str, Any]:
    live = api.live(kube.COMPOSE_APPS, NS, APP)
    assert live is not None
    status: dict[str, Any] = live.get("status", {})
    return status


def conditions(api: FakeApi) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c.get("reason", "")) for c in app_status(api)["conditions"]}


def set_spec(api: FakeApi, compose: str) -> None:
    app = api.others["composeapps", NS, APP]
    app["spec"]["compose"] = compose
    app["metadata"]["generation"] += 1


def test_first_reconcile_applies_each_object_once_and_writes_status_once(
    api: FakeApi, reconciler: WatchedReconciler
) -> None:
    api.seed(kube.COMPOSE_APPS, compose_app(COMPOSE))

    report = reconciler.reconcile(NS, APP)

    assert verbs(api.writes()) == [
        ("apply", "services", "chat-embed"),
        ("apply", "services", "chat-llm"),
        ("apply", "services", "web"),
        ("apply", "deployments", "chat-embed"),
        ("apply", "deployments", "chat-llm"),
        ("apply", "deployments", "web"),
        ("patch", "composeapps", APP),
    ]
    assert report.result == "applied"
    assert api.writes()[-1].subresource == "status"
    deployment = api.live(kube.DEPLOYMENTS, NS, "chat-llm")
    assert deployment is not None
    owner = deployment["metadata"]["ownerReferences"]
    assert owner == [
        {
            "apiVersion": "compose-operator.io/v1alpha1",
            "kind": "ComposeApp",
            "name": APP,
            "uid": "app-uid",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert conditions(api) == {
        "Ready": ("False", "NotReady"),
        "Reconciling": ("True", "Progressing"),
        "Stalled": ("False", ""),
    }
    assert api.events == []


def test_second_identical_reconcile_sends_no_writes(
    api: FakeApi, reconciler: WatchedReconciler
) -> None:
    api.seed(kube.COMPOSE_APPS, compose_app(COMPOSE))
    reconciler.reconcile(NS, APP)
    api.clear()

    report = reconciler.reconcile(NS, APP)

    assert api.writes() == []
    assert report.result == "unchanged"


def test_a_resync_without_drift_sends_no_writes(
    api: FakeApi, reconciler: WatchedReconciler
) -> None:
    api.seed(kube.COMPOSE_APPS, compose_app(COMPOSE))
    reconciler.reconcile(NS, APP)
    api.clear()

    reconciler.reconcile(NS, APP, check_drift=True)

    assert api.writes() == []


def test_becoming_available_writes_status_and_a_ready_event_only(
    api: FakeApi, reconciler: WatchedReconciler
) -> None:
    api.seed(kube.COMPOSE_APPS, compose_app(COMPOSE))
    reconciler.reconcile(NS, APP)
    for name in ("chat-embed", "chat-llm", "web"):
        api.set_status(kube.DEPLOYMENTS, NS, name, available())
    api.clear()

    report = reconciler.reconcile(NS, APP)

    assert verbs(api.writes()) == [("patch", "composeapps", APP), ("create", "events", "Ready")]
    assert report.ready
    status = app_status(api)
    assert status["ready"] == {"models": "2/2", "services": "1/1", "shared": "0/2"}
    assert status["models"][1] == {
        "name": "llm",
        "model": "ai/smollm2",
        "engine": "llama.cpp",
        "endpoint": "http://chat-llm.team.svc.cluster.local/v1/",
        "source": "own",
        "replicas": 1,
        "readyReplicas": 1,
    }
    assert api.events[0]["type"] == "Normal"
    assert api.events[0]["involvedObject"]["uid"] == "app-uid"
    api.clear()
    reconciler.reconcile(NS, APP)
    assert api.writes() == []


def test_drift_is_repaired_by_the_resync_but_not_on_events(
    api: FakeApi, reconciler: WatchedReconciler
) -> None:
    api.seed(kube.COMPOSE_APPS, compose_app(COMPOSE))
    reconciler.reconcile(NS, APP)
    api.ours["deployments", NS, "web"]["spec"]["template"]["spec"]["containers"][0]["image"] = "x"
    api.clear()

    reconciler.reconcile(NS, APP)
    assert api.writes() == []

    reconciler.reconcile(NS, APP, check_drift=True)
    assert verbs(api.writes()) == [("apply", "deployments", "web")]
    web = api.live(kube.DEPLOYMENTS, NS, "web")
    assert web is not None
    assert web["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx"


def test_a_changed_object_is_applied_again(api: FakeApi, reconciler: WatchedReconciler) -> None:
    api.seed(kube.COMPOSE_APPS, compose_app(COMPOSE))
    reconciler.reconcile(NS, APP)
    api.clear()

    set_spec(api, COMPOSE.replace("image: nginx", "image: nginx:1.27"))
    reconciler.reconcile(NS, APP)

    assert verbs(api.writes()) == [
        ("apply", "deployments", "web"),
        ("patch", "composeapps", APP),
    ]
    assert api.writes()[1].body == {
        "status": {
            "observedGeneration": 2,
            "conditions": [
                {**c, "observedGeneration": 2} for c in api.writes()[1].body["status"]["conditions"]
            ],
        }
    }


def test_invalid_compose_writes_nothing_but_status_and_one_warning(
    api: FakeApi, reconciler: WatchedReconciler
) -> None:
    api.seed(kube.COMPOSE_APPS, compose_app(COMPOSE))
    reconciler.reconcile(NS, APP)
    api.clear()
    set_spec(api, "models:\n  llm:\n    context_size: many\n")

    report = reconciler.reconcile(NS, APP)

    assert report.result == "invalid"
    assert [w.verb for w in api.writes()] == ["patch", "create"]
    assert conditions(api) == {
        "Ready": ("False", "InvalidCompose"),
        "Reconciling": ("False", ""),
        "Stalled": ("True", "InvalidCompose"),
    }
    ready = app_status(api)["conditions"][0]
    assert ready["message"].startswith("spec.compose: models.llm")
    assert api.events[-1]["type"] == "Warning"
    assert api.events[-1]["reason"] == "InvalidCompose"
    assert api.events[-1]["message"] == ready["message"]
    assert app_status(api)["models"][0]["name"] == "embed", "last good lists are kept"
    api.clear()
    reconciler.reconcile(NS, APP)
    assert api.writes() == []


def test_a_removed_model_is_pruned_and_foreign_objects_are_kept(
    api: FakeApi, reconciler: WatchedReconciler
) -> None:
    api.seed(kube.COMPOSE_APPS, compose_app(COMPOSE))
    reconciler.reconcile(NS, APP)
    foreign = {
        "metadata": {
            "name": "chat-old",
            "namespace": NS,
            "labels": {"compose-operator.io/app": APP},
            "ownerReferences": [{"uid": "someone-else"}],
        }
    }
    api.seed(kube.DEPLOYMENTS, foreign)
    api.clear()
    set_spec(api, COMPOSE_ONE_MODEL)

    report = reconciler.reconcile(NS, APP)

    assert verbs(api.writes()) == [
        ("delete", "deployments", "chat-embed"),
        ("delete", "services", "chat-embed"),
        ("patch", "composeapps", APP),
    ]
    assert report.pruned == ["Deployment/chat-embed", "Service/chat-embed"]
    assert api.live(kube.DEPLOYMENTS, NS, "chat-old") is not None


def test_a_name_taken_by_another_owner_applies_nothing(
    api: FakeApi, reconciler: WatchedReconciler
) -> None:
    api.seed(kube.COMPOSE_APPS, compose_app(COMPOSE))
    api.seed(kube.DEPLOYMENTS, user_deployment("web"))

    reconciler.reconcile(NS, APP)

    # No watch delivers the user's Deployment (it lacks our label): each new name is read once
    # before anything is created, and a taken one stops the reconcile before any write.
    assert verbs(api.reads()) == [
        ("get", "services", "chat-embed"),
        ("get", "services", "chat-llm"),
        ("get", "services", "web"),
        ("get", "deployments", "chat-embed"),
        ("get", "deployments", "chat-llm"),
        ("get", "deployments", "web"),
    ]
    assert [w.verb for w in api.writes()] == ["patch", "create"]
    assert conditions(api)["Stalled"] == ("True", "NameConflict")
    assert "Deployment/web" in app_status(api)["conditions"][0]["message"]


def test_an_opted_in_deployment_gets_only_env_under_a_finalizer(
    api: FakeApi, reconciler: WatchedReconciler
) -> None:
    api.seed(kube.COMPOSE_APPS, compose_app(COMPOSE_BOUND))
    original = api.seed(
        kube.DEPLOYMENTS, user_deployment("worker", {"compose-operator.io/app": APP})
    )

    reconciler.reconcile(NS, APP)

    writes = verbs(api.writes())
    assert writes[0] == ("patch", "composeapps", APP), "the finalizer comes before the patch"
    assert api.writes()[0].body["metadata"]["finalizers"] == [FINALIZER]
    assert ("apply", "deployments", "worker") in writes
    body = next(w.body for w in api.writes() if w.name == "worker")
    env = [
        {"name": "AI_URL", "value": "http://chat-llm.team.svc.cluster.local/v1/"},
        {"name": "LLM_MODEL", "value": "ai/smollm2"},
    ]
    assert body["spec"] == {
        "template": {
            "spec": {"containers": [{"name": "main", "env": env}, {"name": "sidecar", "env": env}]}
        }
    }
    assert set(body["metadata"]["annotations"]) == {BOUND_BY_ANNOTATION, HASH_ANNOTATION}
    live = api.live(kube.DEPLOYMENTS, NS, "worker")
    assert live is not None
    assert live["spec"]["template"]["spec"]["containers"][0]["env"] == [
        {"name": "KEEP", "value": "1"},
        *env,
    ]
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "worker:1"
    assert app_status(api)["services"] == [
        {
            "name": "worker",
            "mode": "patched",
            "models": ["llm"],
            "message": "Deployment worker: rollout not observed yet",
        },
    ]
    assert [e["reason"] for e in api.events] == ["Bound"]
    assert original["metadata"]["annotations"]["owner"] == "helm"
    api.clear()
    reconciler.reconcile(NS, APP)
    reconciler.reconcile(NS, APP, check_drift=True)
    assert api.writes() == []


def test_a_deployment_that_did_not_opt_in_is_refused_untouched(
    api: FakeApi, reconciler: WatchedReconciler
) -> None:
    api.seed(kube.COMPOSE_APPS, compose_app(COMPOSE_BOUND))
    api.seed(kube.DEPLOYMENTS, user_deployment("worker"))
    before = copy.deepcopy(api.live(kube.DEPLOYMENTS, NS, "worker"))

    reconciler.reconcile(NS, APP)

    assert ("apply", "deployments", "worker") not in verbs(api.writes())
    assert api.live(kube.DEPLOYMENTS, NS, "worker") == before
    app = api.live(kube.COMPOSE_APPS, NS, APP)
    assert app is not None and FINALIZER not in app["metadata"].get("finalizers", [])
    service = app_status(api)["services"][0]
    assert service["mode"] == "refused"
    assert "annotate it with compose-operator.io/app: chat" in service["message"]
    assert conditions(api)["Stalled"] == ("True", "BindingRefused")
    assert [e["reason"] for e in api.events] == ["BindingRefused"]


def test_a_removed_binding_restores_the_deployment_and_drops_the_finalizer(
    api: FakeApi, reconciler: WatchedReconciler
) -> None:
    api.seed(kube.COMPOSE_APPS, compose_app(COMPOSE_BOUND))
    api.seed(kube.DEPLOYMENTS, user_deployment("worker", {"compose-operator.io/app": APP}))
    before = api.live(kube.DEPLOYMENTS, NS, "worker")
    reconciler.reconcile(NS, APP)
    api.clear()
    set_spec(api, COMPOSE_UNBOUND)

    report = reconciler.reconcile(NS, APP)

    release = next(w for w in api.writes() if w.name == "worker")
    assert release.body == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "worker", "namespace": NS},
    }
    assert report.released == ["Deployment/worker"]
    assert api.live(kube.DEPLOYMENTS, NS, "worker") == before
    finalizer_patch = next(w for w in api.writes() if w.body and isinstance(w.body, list))
    assert finalizer_patch.body[1] == {"op": "remove", "path": "/metadata/finalizers/0"}
    app = api.live(kube.COMPOSE_APPS, NS, APP)
    assert app is not None and app["metadata"]["finalizers"] == []


def test_deleting_the_app_restores_bound_deployments_then_releases_it(
    api: FakeApi, reconciler: WatchedReconciler
) -> None:
    api.seed(kube.COMPOSE_APPS, compose_app(COMPOSE_BOUND))
    api.seed(kube.DEPLOYMENTS, user_deployment("worker", {"compose-operator.io/app": APP}))
    before = api.live(kube.DEPLOYMENTS, NS, "worker")
    reconciler.reconcile(NS, APP)
    api.others["composeapps", NS, APP]["metadata"]["deletionTimestamp"] = NOW
    api.clear()

    report = reconciler.reconcile(NS, APP)

    assert report.result == "deleted"
    assert verbs(api.writes()) == [
        ("apply", "deployments", "worker"),
        ("patch", "composeapps", APP),
    ]
    assert api.live(kube.DEPLOYMENTS, NS, "worker") == before
    app = api.live(kube.COMPOSE_APPS, NS, APP)
    assert app is not None and app["metadata"]["finalizers"] == []


def test_deleting_an_app_without_bindings_writes_nothing(
    api: FakeApi, reconciler: WatchedReconciler
) -> None:
    api.seed(kube.COMPOSE_APPS, compose_app(COMPOSE))
    reconciler.reconcile(NS, APP)
    api.others["composeapps", NS, APP]["metadata"]["deletionTimestamp"] = NOW
    api.clear()

    assert reconciler.reconcile(NS, APP).result == "deleted"
    assert api.writes() == []


def test_a_missing_config_map_is_reported_and_retried(
    api: FakeApi, reconciler: WatchedReconciler
) -> None:
    ref = {"configMapKeyRef": {"name": "chat-compose", "key": "compose.yaml"}}
    api.seed(kube.COMPOSE_APPS, compose_app("", composeFrom=ref))

    with pytest.raises(kopf.TemporaryError):
        reconciler.reconcile(NS, APP)

    assert conditions(api)["Ready"] == ("False", "ComposeSourceMissing")
    assert conditions(api)["Reconciling"] == ("True", "ComposeSourceMissing")
    assert [e["reason"] for e in api.events] == ["ComposeSourceMissing"]
    api.seed(
        kube.CONFIG_MAPS,
        {"metadata": {"name": "chat-compose", "namespace": NS}, "data": {"compose.yaml": COMPOSE}},
    )
    api.clear()
    reconciler.reconcile(NS, APP)
    assert len([w for w in api.writes() if w.verb == "apply"]) == 6
    assert conditions(api)["Ready"] == ("False", "NotReady")


def test_environment_reaches_interpolation(api: FakeApi, reconciler: WatchedReconciler) -> None:
    api.seed(
        kube.COMPOSE_APPS,
        compose_app(
            COMPOSE.replace("image: nginx", "image: nginx:${TAG}"), environment={"TAG": "1.2"}
        ),
    )
    reconciler.reconcile(NS, APP)
    web = api.live(kube.DEPLOYMENTS, NS, "web")
    assert web is not None
    assert web["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.2"


def test_a_suspended_app_is_left_alone(api: FakeApi, reconciler: WatchedReconciler) -> None:
    api.seed(kube.COMPOSE_APPS, compose_app(COMPOSE, suspend=True))
    assert reconciler.reconcile(NS, APP).result == "suspended"
    assert api.writes() == []


def test_unschedulable_and_crashing_models_say_why(
    api: FakeApi, reconciler: WatchedReconciler
) -> None:
    api.seed(kube.COMPOSE_APPS, compose_app(COMPOSE))
    reconciler.reconcile(NS, APP)
    api.set_status(kube.DEPLOYMENTS, NS, "web", available())
    labels = {"compose-operator.io/app": APP}
    api.seed(
        kube.PODS,
        {
            "metadata": {
                "name": "chat-llm-1",
                "namespace": NS,
                "labels": {**labels, "compose-operator.io/model": "llm"},
            },
            "status": {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/5 nodes are available: 5 node(s) didn't match Pod's node "
                        "affinity/selector.",
                    }
                ],
            },
        },
    )
    api.seed(
        kube.PODS,
        {
            "metadata": {
                "name": "chat-embed-1",
                "namespace": NS,
                "labels": {**labels, "compose-operator.io/model": "embed"},
            },
            "status": {
                "phase": "Running",
                "containerStatuses": [
                    {
                        "name": "engine",
                        "state": {
                            "waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s"}
                        },
                        "lastState": {
                            "terminated": {
                                "exitCode": 1,
                                "message": "llama_init: context size 131072 does not fit in memory",
                            }
                        },
                    }
                ],
            },
        },
    )
    api.clear()

    reconciler.reconcile(NS, APP)

    models = {m["name"]: m["message"] for m in app_status(api)["models"]}
    assert models == {
        "embed": "pod chat-embed-1: container engine: CrashLoopBackOff: back-off 5m0s; "
        "last exit code 1: llama_init: context size 131072 does not fit in memory",
        "llm": "pod chat-llm-1 cannot be scheduled: 0/5 nodes are available: 5 node(s) didn't "
        "match Pod's node affinity/selector.",
    }
    assert api.reads() == [], "pods come from the watch-fed index"


def test_an_engine_crashing_with_sigill_stalls_the_app_after_the_threshold(api: FakeApi) -> None:
    reconciler = WatchedReconciler(api, Settings(stall_after_crashes=2), now=lambda: NOW)
    api.seed(kube.COMPOSE_APPS, compose_app(COMPOSE_ONE_MODEL))
    reconciler.reconcile(NS, APP)
    api.set_status(kube.DEPLOYMENTS, NS, "web", available())
    labels = {"compose-operator.io/app": APP, "compose-operator.io/model": "llm"}
    sigill = {"exitCode": 132, "reason": "Error", "message": "llama threadpool init, n_threads = 2"}
    for restarts in (1, 2):
        api.seed(
            kube.PODS,
            {
                "metadata": {"name": "chat-llm-1", "namespace": NS, "labels": labels},
                "status": {
                    "containerStatuses": [
                        {
                            "name": "llama-server",
                            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                            "lastState": {"terminated": sigill},
                            "restartCount": restarts,
                        }
                    ]
                },
            },
        )
        reconciler.reconcile(NS, APP)

    assert conditions(api) == {
        "Ready": ("False", "CrashLoop"),
        "Reconciling": ("False", ""),
        "Stalled": ("True", "CrashLoop"),
    }
    crash = app_status(api)["models"][0]["crash"]
    assert (crash["container"], crash["exitCode"], crash["crashes"]) == ("llama-server", 132, 2)
    assert crash["meaning"].startswith("SIGILL: the image was built for CPU instructions")
    reasons = [(e["type"], e["reason"]) for e in api.events]
    assert ("Warning", "ContainerCrashed") in reasons
    assert reasons[-1] == ("Warning", "CrashLoop")
    assert "llama threadpool init" in api.events[-1]["message"]


@pytest.mark.parametrize(
    ("desired", "live", "expected"),
    [
        ({"a": 1}, {"a": 1, "b": 2}, True),
        ({"a": 1}, {"a": 2}, False),
        ({"a": {"b": 1}}, {"a": {}}, False),
        (["x", "y"], ["x", "y"], True),
        (["x", "y"], ["y", "x"], False),
        (["x"], ["x", "y"], False),
        (
            [{"name": "E", "value": "1"}],
            [{"name": "K", "value": "0"}, {"name": "E", "value": "1"}],
            True,
        ),
        ([{"name": "E", "value": "1"}], [{"name": "E", "value": "2"}], False),
        ([{"name": "E", "value": "1"}], [], False),
        ([{"containerPort": 80}], [{"containerPort": 80, "protocol": "TCP"}], True),
    ],
)
def test_is_subset(desired: Any, live: Any, expected: bool) -> None:
    assert is_subset(desired, live) is expected


# The watch-fed index: reconciles read nothing, and events that change nothing cost nothing.


def test_a_warm_index_leaves_the_api_unread_from_creation_to_resync(
    api: FakeApi, reconciler: WatchedReconciler
) -> None:
    api.seed(kube.COMPOSE_APPS, compose_app(COMPOSE))
    reconciler.reconcile(NS, APP)
    for name in ("chat-embed", "chat-llm", "web"):
        api.set_status(kube.DEPLOYMENTS, NS, name, available())
    reconciler.reconcile(NS, APP)
    reconciler.reconcile(NS, APP)
    reconciler.reconcile(NS, APP, check_drift=True)

    # The only reads: whether each new name is free, once, when the objects are created.
    assert [r.verb for r in api.reads()] == ["get"] * 6
    assert [w.verb for w in api.writes()] == ["apply"] * 6 + ["patch", "patch", "create"]
    api.clear()
    for _ in range(3):
        reconciler.reconcile(NS, APP)
        reconciler.reconcile(NS, APP, check_drift=True)
    assert api.requests == []


def test_events_that_change_no_fact_of_the_status_trigger_nothing() -> None:
    from compose_operator.shell.index import LiveIndex

    index = LiveIndex()
    app = compose_app(COMPOSE) | {"status": {"observedGeneration": 1}}
    app["metadata"]["resourceVersion"] = "5"
    assert index.observe("ComposeApp", app) == (NS, APP)
    ours = copy.deepcopy(app)
    ours["metadata"]["resourceVersion"] = "6"
    ours["status"] = {"observedGeneration": 1, "conditions": []}
    assert index.observe("ComposeApp", ours) is None, "our own status patch"
    edited = copy.deepcopy(ours)
    edited["metadata"] |= {"resourceVersion": "7", "generation": 2}
    assert index.observe("ComposeApp", edited) == (NS, APP)

    labels = {"compose-operator.io/app": APP}
    pod: dict[str, Any] = {
        "metadata": {"name": "chat-llm-1", "namespace": NS, "labels": labels},
        "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False"}]},
    }
    assert index.observe("Pod", pod) == (NS, APP)
    heartbeat = copy.deepcopy(pod)
    heartbeat["status"]["conditions"][0]["lastProbeTime"] = NOW
    heartbeat["metadata"]["resourceVersion"] = "9"
    assert index.observe("Pod", heartbeat) is None
    crashing = copy.deepcopy(pod)
    crashing["status"]["containerStatuses"] = [
        {"name": "engine", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
    ]
    assert index.observe("Pod", crashing) == (NS, APP)

    deployment: dict[str, Any] = {
        "kind": "Deployment",
        "metadata": {"name": "chat-llm", "namespace": NS, "labels": labels, "resourceVersion": "8"},
    }
    index.written(deployment)
    assert index.observe("Deployment", deployment) is None, "the watch event of our own apply"
    stale = copy.deepcopy(deployment)
    stale["metadata"]["resourceVersion"] = "4"
    assert index.observe("Deployment", stale) is None
    state = index.state(NS, APP)
    assert state is not None
    assert state.objects["Deployment", "chat-llm"]["metadata"]["resourceVersion"] == "8"


def test_a_compose_config_map_is_read_once_unless_it_carries_the_app_label(
    api: FakeApi, reconciler: WatchedReconciler
) -> None:
    ref = {"configMapKeyRef": {"name": "chat-compose", "key": "compose.yaml"}}
    api.seed(kube.COMPOSE_APPS, compose_app("", composeFrom=ref))
    config_map = {
        "metadata": {"name": "chat-compose", "namespace": NS},
        "data": {"compose.yaml": COMPOSE},
    }
    api.seed(kube.CONFIG_MAPS, config_map)
    reconciler.reconcile(NS, APP)
    reconciler.reconcile(NS, APP)
    config_map_reads = [r for r in api.reads() if r.resource == "configmaps"]
    assert verbs(config_map_reads) == [("get", "configmaps", "chat-compose")]
    api.clear()
    reconciler.reconcile(NS, APP, check_drift=True)
    assert verbs(api.reads()) == [("get", "configmaps", "chat-compose")], (
        "a resync reads an unwatched ConfigMap again"
    )

    api.others["configmaps", NS, "chat-compose"]["metadata"]["labels"] = {
        "compose-operator.io/app": APP
    }
    api.clear()
    reconciler.reconcile(NS, APP, check_drift=True)
    reconciler.reconcile(NS, APP)
    assert api.reads() == [], "a labelled ConfigMap comes with the watch"


# Issue 12: bindings without force, opt-in by UID, no binding held while suspended/invalid.


def test_a_value_helm_set_is_a_conflict_reported_and_never_taken_over(
    api: FakeApi, reconciler: WatchedReconciler
) -> None:
    """Issue 12: a forced apply took over same-named values other managers set, and releasing
    the binding then deleted them."""
    helm = user_deployment("worker", {"compose-operator.io/app": APP})
    helm["spec"]["template"]["spec"]["containers"][0]["env"].append(
        {"name": "AI_URL", "value": "http://helm-chose-this/v1/"}
    )
    api.seed(kube.COMPOSE_APPS, compose_app(COMPOSE_BOUND))
    api.seed(kube.DEPLOYMENTS, helm)
    before = copy.deepcopy(api.live(kube.DEPLOYMENTS, NS, "worker"))

    reconciler.reconcile(NS, APP)

    applies = [w for w in api.writes() if w.name == "worker"]
    assert applies, "the binding is tried"
    assert api.live(kube.DEPLOYMENTS, NS, "worker") == before
    service = app_status(api)["services"][0]
    assert service["mode"] == "refused"
    assert "another field manager already sets these fields" in service["message"]
    assert 'conflict with "helm"' in service["message"]
    assert 'env[name="AI_URL"].value' in service["message"]
    assert conditions(api)["Stalled"] == ("True", "BindingRefused")
    set_spec(api, COMPOSE_UNBOUND)
    reconciler.reconcile(NS, APP)
    assert api.live(kube.DEPLOYMENTS, NS, "worker") == before, "releasing deletes nothing"


def test_the_opt_in_may_name_the_apps_uid(api: FakeApi, reconciler: WatchedReconciler) -> None:
    api.seed(kube.COMPOSE_APPS, compose_app(COMPOSE_BOUND))
    api.seed(kube.DEPLOYMENTS, user_deployment("worker", {"compose-operator.io/app": "app-uid"}))
    reconciler.reconcile(NS, APP)
    assert app_status(api)["services"][0]["mode"] == "patched"


def test_an_opt_in_naming_another_uid_is_refused(
    api: FakeApi, reconciler: WatchedReconciler
) -> None:
    """An opt-in pinned to an earlier ComposeApp of the same name does not carry over."""
    api.seed(kube.COMPOSE_APPS, compose_app(COMPOSE_BOUND))
    api.seed(kube.DEPLOYMENTS, user_deployment("worker", {"compose-operator.io/app": "old-uid"}))
    reconciler.reconcile(NS, APP)
    service = app_status(api)["services"][0]
    assert service["mode"] == "refused"
    assert "(or this ComposeApp's UID, app-uid)" in service["message"]


def test_suspended_and_invalid_apps_hold_no_binding(
    api: FakeApi, reconciler: WatchedReconciler
) -> None:
    """Issue 12: a suspended or invalid consumer kept an offer serving forever, so the
    offering app's deletion waited indefinitely."""
    api.seed(kube.COMPOSE_APPS, compose_app(COMPOSE, suspend=True))
    assert reconciler.reconcile(NS, APP).bound == {}
    set_spec(api, "services: [")
    api.others["composeapps", NS, APP]["spec"].pop("suspend")
    report = reconciler.reconcile(NS, APP)
    assert (report.result, report.bound) == ("invalid", {})


def test_a_pod_security_refusal_is_quoted_from_the_replica_failure(
    api: FakeApi, reconciler: WatchedReconciler
) -> None:
    api.seed(kube.COMPOSE_APPS, compose_app(COMPOSE_ONE_MODEL))
    reconciler.reconcile(NS, APP)
    refusal = (
        'pods "chat-llm-5d8f-x" is forbidden: violates PodSecurity "restricted:latest": '
        "runAsNonRoot != true"
    )
    api.set_status(
        kube.DEPLOYMENTS,
        NS,
        "chat-llm",
        {
            "observedGeneration": 1,
            "conditions": [
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetCreated"},
                {
                    "type": "ReplicaFailure",
                    "status": "True",
                    "reason": "FailedCreate",
                    "message": refusal,
                },
            ],
        },
    )
    reconciler.reconcile(NS, APP)
    (model,) = app_status(api)["models"]
    assert model["message"] == f"Deployment chat-llm: FailedCreate: {refusal}"


# The model gateway (the default modelEndpoint): owned like the model objects, and the app is
# Ready only when it is.


@pytest.fixture
def gateway_reconciler(api: FakeApi) -> WatchedReconciler:
    return WatchedReconciler(api, Settings(), now=lambda: NOW)


def test_the_gateway_is_applied_with_the_app_and_gates_ready(
    api: FakeApi, gateway_reconciler: WatchedReconciler
) -> None:
    api.seed(kube.COMPOSE_APPS, compose_app(COMPOSE))
    gateway_reconciler.reconcile(NS, APP)
    applied = [(r.resource, r.name) for r in api.writes() if r.verb == "apply"]
    assert applied[0] == ("configmaps", "chat-models")
    assert {("services", "chat-models"), ("deployments", "chat-models")} <= set(applied)
    for name in ("chat-embed", "chat-llm", "web"):
        api.set_status(kube.DEPLOYMENTS, NS, name, available())

    gateway_reconciler.reconcile(NS, APP)
    status = app_status(api)
    assert conditions(api)["Ready"] == ("False", "NotReady")
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["message"] == "model gateway: Deployment chat-models: rollout not observed yet"
    assert status["gateway"] == {
        "url": "http://chat-models.team.svc.cluster.local/v1/",
        "name": "chat-models",
        "ready": False,
        "replicas": 1,
        "readyReplicas": 0,
        "message": "Deployment chat-models: rollout not observed yet",
    }
    # status keeps each model's own Service
    assert status["models"][1]["endpoint"] == "http://chat-llm.team.svc.cluster.local/v1/"

    api.set_status(kube.DEPLOYMENTS, NS, "chat-models", available())
    report = gateway_reconciler.reconcile(NS, APP)
    assert report.ready
    assert app_status(api)["gateway"]["ready"] is True
    assert "message" not in app_status(api)["gateway"]


def test_the_gateway_objects_are_restored_when_deleted_and_pruned_when_unplanned(
    api: FakeApi, gateway_reconciler: WatchedReconciler
) -> None:
    api.seed(kube.COMPOSE_APPS, compose_app(COMPOSE))
    gateway_reconciler.reconcile(NS, APP)
    table = api.live(kube.CONFIG_MAPS, NS, "chat-models")
    assert table is not None
    api.delete(kube.CONFIG_MAPS, NS, "chat-models", table["metadata"]["uid"])
    api.clear()

    gateway_reconciler.reconcile(NS, APP)
    assert verbs(api.writes())[0] == ("apply", "configmaps", "chat-models")
    assert api.live(kube.CONFIG_MAPS, NS, "chat-models") is not None

    set_spec(api, COMPOSE.replace("    models: [llm]\n", ""))  # no service binds a model now
    api.clear()
    gateway_reconciler.reconcile(NS, APP)
    assert sorted(r.resource for r in api.writes() if r.verb == "delete") == [
        "configmaps",
        "deployments",
        "services",
    ]
    assert {r.name for r in api.writes() if r.verb == "delete"} == {"chat-models"}
    assert "gateway" not in app_status(api)


def test_the_gateways_disruption_budget_comes_with_a_second_replica_and_goes_with_it(
    api: FakeApi, gateway_reconciler: WatchedReconciler
) -> None:
    """The budget is owned like the gateway's other objects: applied with the app's owner
    reference, restored when deleted, and pruned (label and owner) when one replica is left."""
    replicated = COMPOSE.replace(
        "    model: ai/smollm2\n", "    model: ai/smollm2\n    x-kubernetes: {replicas: 2}\n"
    )
    api.seed(kube.COMPOSE_APPS, compose_app(replicated))
    gateway_reconciler.reconcile(NS, APP)
    budget = api.live(kube.DISRUPTION_BUDGETS, NS, "chat-models")
    assert budget is not None
    assert budget["metadata"]["ownerReferences"][0]["uid"] == "app-uid"
    assert budget["metadata"]["labels"]["compose-operator.io/app"] == APP
    gateway = api.live(kube.DEPLOYMENTS, NS, "chat-models")
    assert gateway is not None
    assert budget["spec"]["selector"] == gateway["spec"]["selector"]
    assert gateway["spec"]["replicas"] == 2

    api.delete(kube.DISRUPTION_BUDGETS, NS, "chat-models", budget["metadata"]["uid"])
    api.clear()
    gateway_reconciler.reconcile(NS, APP)
    assert verbs(api.writes())[0] == ("apply", "poddisruptionbudgets", "chat-models")

    set_spec(api, COMPOSE)  # every model back to one replica: so is the gateway
    api.clear()
    report = gateway_reconciler.reconcile(NS, APP)
    assert [(r.verb, r.resource, r.name) for r in api.writes() if r.verb == "delete"] == [
        ("delete", "poddisruptionbudgets", "chat-models")
    ]
    assert "PodDisruptionBudget/chat-models" in report.pruned
    assert api.live(kube.DISRUPTION_BUDGETS, NS, "chat-models") is None
    gateway = api.live(kube.DEPLOYMENTS, NS, "chat-models")
    assert gateway is not None and gateway["spec"]["replicas"] == 1
