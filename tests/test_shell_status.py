"""Pure status building: kstatus conditions, why-not-ready messages, transition events."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from compose_operator.errors import Warning
from compose_operator.plan import Plan, PlannedModel, PlannedService
from compose_operator.shell.status import (
    EventSpec,
    Outcome,
    build_status,
    crash_record,
    deployment_availability,
    exit_meaning,
    pod_problem,
    status_patch,
    transition_events,
)

NOW = "2026-11-29T10:00:00Z"
EARLIER = "2026-11-29T09:00:00Z"


def deployment(desired: int = 1, generation: int = 1, **status: int) -> dict[str, Any]:
    return {
        "metadata": {"generation": generation},
        "spec": {"replicas": desired, "selector": {"matchLabels": {"m": "llm"}}},
        "status": status,
    }


def ready(replicas: int = 1) -> dict[str, Any]:
    return deployment(
        replicas,
        1,
        observedGeneration=1,
        replicas=replicas,
        updatedReplicas=replicas,
        readyReplicas=replicas,
        availableReplicas=replicas,
    )


def pod(name: str = "p", **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"m": "llm"}}, "status": status}


def waiting(reason: str, message: str = "", **extra: Any) -> dict[str, Any]:
    state: dict[str, Any] = {"reason": reason}
    if message:
        state["message"] = message
    return {"name": "engine", "state": {"waiting": state}, **extra}


UNSCHEDULABLE = {
    "type": "PodScheduled",
    "status": "False",
    "reason": "Unschedulable",
    "message": "0/5 nodes are available: 5 Insufficient nvidia.com/gpu.",
}


@pytest.mark.parametrize(
    ("pod_status", "expected"),
    [
        ({"phase": "Pending"}, None),
        (
            {"conditions": [UNSCHEDULABLE]},
            "pod p cannot be scheduled: 0/5 nodes are available: 5 Insufficient nvidia.com/gpu.",
        ),
        ({"conditions": [{**UNSCHEDULABLE, "reason": "SchedulingGated"}]}, None),
        (
            {"containerStatuses": [waiting("ImagePullBackOff", "Back-off pulling image x")]},
            "pod p: container engine: ImagePullBackOff: Back-off pulling image x",
        ),
        (
            {"containerStatuses": [waiting("ErrImagePull")]},
            "pod p: container engine: ErrImagePull",
        ),
        ({"containerStatuses": [waiting("ContainerCreating")]}, None),
        (
            {
                "containerStatuses": [
                    waiting(
                        "CrashLoopBackOff",
                        "back-off 40s",
                        lastState={"terminated": {"exitCode": 139, "message": "out of memory\n"}},
                    )
                ]
            },
            "pod p: container engine: CrashLoopBackOff: back-off 40s; last exit code 139 "
            "(SIGSEGV: the program crashed on a bad memory access: a bug, a damaged model file, "
            "or a model the engine cannot run): out of memory",
        ),
        (
            {
                "initContainerStatuses": [
                    {
                        "name": "pull-model",
                        "state": {"terminated": {"exitCode": 1, "message": "manifest unknown"}},
                    }
                ]
            },
            "pod p: container pull-model exited with code 1: manifest unknown",
        ),
        (
            {"initContainerStatuses": [{"name": "pull", "state": {"terminated": {"exitCode": 0}}}]},
            None,
        ),
        (
            {"containerStatuses": [{"name": "engine", "state": {"running": {}}, "ready": False}]},
            None,
        ),
    ],
)
def test_pod_problem(pod_status: dict[str, Any], expected: str | None) -> None:
    assert pod_problem(pod(**pod_status)) == expected


def test_a_long_termination_message_keeps_its_tail() -> None:
    log = "x" * 5000 + "the real error"
    terminated = {"exitCode": 1, "message": log}
    problem = pod_problem(
        pod(containerStatuses=[{"name": "e", "state": {"terminated": terminated}}])
    )
    assert problem is not None
    assert problem.endswith("…" + log[-1024:])


@pytest.mark.parametrize(
    ("live", "pods", "expected"),
    [
        (None, [], (False, "Deployment d does not exist yet")),
        (ready(), [], (True, "")),
        (ready(0), [], (True, "")),
        (
            deployment(generation=2, observedGeneration=1),
            [],
            (False, "Deployment d: rollout not observed yet"),
        ),
        (deployment(observedGeneration=1), [], (False, "Deployment d: 0/1 replicas updated")),
        (
            deployment(2, observedGeneration=1, updatedReplicas=2, availableReplicas=1),
            [],
            (False, "Deployment d: 1/2 replicas available"),
        ),
        (
            deployment(1, observedGeneration=1, updatedReplicas=1, availableReplicas=1, replicas=2),
            [],
            (False, "Deployment d: 1 old replicas terminating"),
        ),
        (
            deployment(observedGeneration=1),
            [pod("b", phase="Pending"), pod("a", conditions=[UNSCHEDULABLE])],
            (
                False,
                "pod a cannot be scheduled: "
                "0/5 nodes are available: 5 Insufficient nvidia.com/gpu.",
            ),
        ),
        (
            deployment(observedGeneration=1),
            [
                {
                    "metadata": {"name": "other", "labels": {"m": "x"}},
                    "status": {"conditions": [UNSCHEDULABLE]},
                }
            ],
            (False, "Deployment d: 0/1 replicas updated"),
        ),
        (ready(), [pod(conditions=[UNSCHEDULABLE])], (True, "")),
    ],
)
def test_deployment_availability(
    live: dict[str, Any] | None, pods: list[dict[str, Any]], expected: tuple[bool, str]
) -> None:
    assert deployment_availability("d", live, pods) == expected


PLAN = Plan(
    models=(
        PlannedModel(
            "llm",
            "ai/smollm2",
            "llama.cpp",
            "http://a-llm.ns.svc.cluster.local/v1/",
            "a-llm",
            "a-llm",
            1,
        ),
        PlannedModel(
            "big",
            "ai/llama3.3",
            "vllm",
            "http://x.platform.svc.cluster.local/v1/",
            "",
            "",
            1,
            source="shared: platform/models/big",
        ),
    ),
    services=(
        PlannedService("web", "created", "web", ("llm",)),
        PlannedService("worker", "patched", "worker", ("llm", "big")),
    ),
    warnings=(Warning("services.web.use_api_socket", "ignored on Kubernetes"),),
)


def conditions(status: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(c["type"], c["status"], c.get("reason", "")) for c in status["conditions"]]


def test_everything_available_is_ready() -> None:
    status = build_status(
        generation=3,
        plan=PLAN,
        outcome=Outcome(),
        deployments={"a-llm": ready(), "web": ready(), "worker": ready()},
        pods=[],
        previous={},
        now=NOW,
    )
    assert status == {
        "observedGeneration": 3,
        "models": [
            {
                "name": "llm",
                "model": "ai/smollm2",
                "engine": "llama.cpp",
                "endpoint": "http://a-llm.ns.svc.cluster.local/v1/",
                "source": "own",
                "replicas": 1,
                "readyReplicas": 1,
            },
            {
                "name": "big",
                "model": "ai/llama3.3",
                "engine": "vllm",
                "endpoint": "http://x.platform.svc.cluster.local/v1/",
                "source": "shared: platform/models/big",
                "replicas": 1,
            },
        ],
        "services": [
            {"name": "web", "mode": "created", "models": ["llm"]},
            {"name": "worker", "mode": "patched", "models": ["llm", "big"]},
        ],
        "warnings": ["services.web.use_api_socket: ignored on Kubernetes"],
        "ready": {"models": "2/2", "services": "2/2", "shared": "1/2"},
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Ready",
                "message": "every model and service is available",
                "observedGeneration": 3,
                "lastTransitionTime": NOW,
            },
            {
                "type": "Reconciling",
                "status": "False",
                "observedGeneration": 3,
                "lastTransitionTime": NOW,
            },
            {
                "type": "Stalled",
                "status": "False",
                "observedGeneration": 3,
                "lastTransitionTime": NOW,
            },
        ],
    }


@pytest.mark.parametrize(
    ("outcome", "deployments", "expected", "ready_message"),
    [
        (
            Outcome(),
            {"web": ready(), "worker": ready()},
            [
                ("Ready", "False", "NotReady"),
                ("Reconciling", "True", "Progressing"),
                ("Stalled", "False", ""),
            ],
            "model llm: Deployment a-llm does not exist yet",
        ),
        (
            Outcome(refused={"worker": "Deployment worker has not opted in"}),
            {"a-llm": ready(), "web": ready()},
            [
                ("Ready", "False", "BindingRefused"),
                ("Reconciling", "False", ""),
                ("Stalled", "True", "BindingRefused"),
            ],
            "service worker: Deployment worker has not opted in",
        ),
        (
            Outcome("InvalidCompose", ("f: a: bad", "f: b: worse")),
            {},
            [
                ("Ready", "False", "InvalidCompose"),
                ("Reconciling", "False", ""),
                ("Stalled", "True", "InvalidCompose"),
            ],
            "f: a: bad\nf: b: worse",
        ),
        (
            Outcome("NameConflict", ("names taken: Deployment/web",)),
            {},
            [
                ("Ready", "False", "NameConflict"),
                ("Reconciling", "False", ""),
                ("Stalled", "True", "NameConflict"),
            ],
            "names taken: Deployment/web",
        ),
        (
            Outcome("ReconcileFailed", ("500 InternalError: etcd",)),
            {},
            [
                ("Ready", "False", "ReconcileFailed"),
                ("Reconciling", "True", "ReconcileFailed"),
                ("Stalled", "False", ""),
            ],
            "500 InternalError: etcd",
        ),
        (
            Outcome("ComposeSourceMissing", ("ConfigMap c not found in ns",)),
            {},
            [
                ("Ready", "False", "ComposeSourceMissing"),
                ("Reconciling", "True", "ComposeSourceMissing"),
                ("Stalled", "False", ""),
            ],
            "ConfigMap c not found in ns",
        ),
    ],
)
def test_conditions(
    outcome: Outcome,
    deployments: dict[str, Any],
    expected: list[tuple[str, str, str]],
    ready_message: str,
) -> None:
    status = build_status(
        generation=2,
        plan=PLAN,
        outcome=outcome,
        deployments=deployments,
        pods=[],
        previous={},
        now=NOW,
    )
    assert conditions(status) == expected
    assert status["conditions"][0]["message"] == ready_message
    assert {c["observedGeneration"] for c in status["conditions"]} == {2}


def test_a_refused_service_is_reported_as_refused() -> None:
    status = build_status(
        generation=1,
        plan=PLAN,
        outcome=Outcome(refused={"worker": "no opt-in"}),
        deployments={"a-llm": ready(), "web": ready()},
        pods=[],
        previous={},
        now=NOW,
    )
    assert status["services"][1] == {
        "name": "worker",
        "mode": "refused",
        "models": ["llm", "big"],
        "message": "no opt-in",
    }
    assert status["ready"] == {"models": "2/2", "services": "1/2", "shared": "1/2"}


def test_without_a_plan_the_last_lists_are_kept() -> None:
    previous = {
        "models": [{"name": "llm"}],
        "services": [],
        "ready": {"models": "0/1", "services": "0/0"},
    }
    status = build_status(
        generation=4,
        plan=None,
        outcome=Outcome("InvalidCompose", ("bad",)),
        deployments={},
        pods=[],
        previous=previous,
        now=NOW,
    )
    assert {k: status[k] for k in previous} == previous
    assert "warnings" not in status


def test_unchanged_conditions_keep_their_transition_time() -> None:
    first = build_status(
        generation=1,
        plan=PLAN,
        outcome=Outcome(),
        deployments={},
        pods=[],
        previous={},
        now=EARLIER,
    )
    second = build_status(
        generation=1, plan=PLAN, outcome=Outcome(), deployments={}, pods=[], previous=first, now=NOW
    )
    assert second == first
    assert status_patch(first, second) is None
    third = build_status(
        generation=1,
        plan=PLAN,
        outcome=Outcome(),
        deployments={"a-llm": ready(), "web": ready(), "worker": ready()},
        pods=[],
        previous=second,
        now=NOW,
    )
    times = {c["type"]: c["lastTransitionTime"] for c in third["conditions"]}
    assert times == {"Ready": NOW, "Reconciling": NOW, "Stalled": EARLIER}


def test_status_patch_nulls_keys_that_went_away() -> None:
    previous = {"warnings": ["w"], "observedGeneration": 1, "kopf": {"x": 1}}
    new = {"observedGeneration": 2}
    assert status_patch(previous, new) == {"warnings": None, "observedGeneration": 2}


def ready_condition(status: str, reason: str, message: str = "m") -> dict[str, Any]:
    return {
        "conditions": [{"type": "Ready", "status": status, "reason": reason, "message": message}]
    }


@pytest.mark.parametrize(
    ("previous", "new", "expected"),
    [
        ({}, ready_condition("False", "NotReady"), []),
        (ready_condition("False", "NotReady"), ready_condition("False", "NotReady", "other"), []),
        (
            ready_condition("False", "NotReady"),
            ready_condition("True", "Ready"),
            [EventSpec("Normal", "Ready", "m")],
        ),
        (ready_condition("True", "Ready"), ready_condition("True", "Ready"), []),
        (
            ready_condition("True", "Ready"),
            ready_condition("False", "NotReady", "why"),
            [EventSpec("Warning", "NotReady", "why")],
        ),
        (
            {},
            ready_condition("False", "InvalidCompose", "bad"),
            [EventSpec("Warning", "InvalidCompose", "bad")],
        ),
        (
            ready_condition("False", "InvalidCompose", "bad"),
            ready_condition("False", "InvalidCompose", "bad"),
            [],
        ),
        (
            ready_condition("False", "InvalidCompose", "bad"),
            ready_condition("False", "InvalidCompose", "worse"),
            [EventSpec("Warning", "InvalidCompose", "worse")],
        ),
        (
            {},
            ready_condition("False", "ReconcileFailed", "500"),
            [EventSpec("Warning", "ReconcileFailed", "500")],
        ),
        (
            {"services": [{"name": "w", "mode": "refused"}]},
            {"services": [{"name": "w", "mode": "patched"}]},
            [EventSpec("Normal", "Bound", "service w: model env added to its Deployment")],
        ),
        (
            {"services": [{"name": "w", "mode": "patched"}]},
            {"services": []},
            [EventSpec("Normal", "Unbound", "service w: model env removed from its Deployment")],
        ),
        (
            {},
            {"services": [{"name": "w", "mode": "refused"}]},
            [EventSpec("Warning", "BindingRefused", "service w: binding refused")],
        ),
        ({"services": [{"name": "w", "mode": "created"}]}, {"services": []}, []),
    ],
)
def test_transition_events(
    previous: dict[str, Any], new: dict[str, Any], expected: list[EventSpec]
) -> None:
    assert transition_events(previous, new) == expected


@pytest.mark.parametrize(
    ("terminated", "limit", "expected"),
    [
        (
            {"exitCode": 132, "reason": "Error"},
            None,
            "SIGILL: the image was built for CPU instructions this node lacks; use an image "
            "built for this node's CPU, or a portable build",
        ),
        (
            {"exitCode": 137, "reason": "OOMKilled"},
            "8Gi",
            "OOMKilled: the container used all of its memory limit (8Gi); raise the limit or "
            "make the work smaller (e.g. context_size)",
        ),
        (
            {"exitCode": 137, "reason": "OOMKilled"},
            None,
            "OOMKilled: the node ran out of memory (the container has no memory limit)",
        ),
        (
            {"exitCode": 137, "reason": "Error"},
            "8Gi",
            "SIGKILL: killed from outside, not for lack of memory, e.g. after its stop grace "
            "period",
        ),
        (
            {"exitCode": 139, "reason": "Error"},
            None,
            "SIGSEGV: the program crashed on a bad memory access: a bug, a damaged model file, "
            "or a model the engine cannot run",
        ),
        (
            {"exitCode": 143, "reason": "Error"},
            None,
            "SIGTERM: the container was told to stop, e.g. after failing its liveness probe, or "
            "by an eviction or a node shutdown",
        ),
        (
            {"exitCode": 134, "reason": "Error"},
            None,
            "SIGABRT: the program aborted, e.g. on a failed assertion; the log says where",
        ),
        ({"exitCode": 1, "reason": "Error"}, "8Gi", None),
    ],
)
def test_exit_codes_in_plain_words(
    terminated: dict[str, Any], limit: str | None, expected: str | None
) -> None:
    assert exit_meaning(terminated, limit) == expected


def test_an_oom_killed_puller_is_quoted_with_its_memory_limit() -> None:
    killed = {
        "metadata": {"name": "p", "labels": {"m": "llm"}},
        "spec": {
            "initContainers": [
                {"name": "pull-model", "resources": {"limits": {"memory": "256Mi"}}}
            ],
            "containers": [{"name": "engine", "resources": {"limits": {"memory": "8Gi"}}}],
        },
        "status": {
            "initContainerStatuses": [
                {
                    "name": "pull-model",
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s"}},
                    "lastState": {
                        "terminated": {"exitCode": 137, "reason": "OOMKilled", "message": "pulling"}
                    },
                }
            ]
        },
    }
    assert pod_problem(killed) == (
        "pod p: container pull-model: CrashLoopBackOff: back-off 20s; last exit code 137 "
        "(OOMKilled: the container used all of its memory limit (256Mi); raise the limit or make "
        "the work smaller (e.g. context_size)): pulling"
    )


def crashing(
    restarts: int,
    code: int = 132,
    *,
    name: str = "p",
    created: str = EARLIER,
    state: str = "waiting",
    ready: bool = False,
) -> dict[str, Any]:
    """A pod whose engine crashed `restarts` times so far (the kubelet's view of it)."""
    last: dict[str, Any] = {
        "terminated": {"exitCode": code, "reason": "Error", "message": "llama threadpool init"}
    }
    states: dict[str, dict[str, Any]] = {
        "waiting": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}},
        "running": {"running": {}},
        "terminated": last,
    }
    current = states[state]
    engine = {
        "name": "engine",
        "state": current,
        "lastState": {} if state == "terminated" else last,
        "restartCount": restarts,
        "ready": ready,
    }
    return {
        "metadata": {"name": name, "labels": {"m": "llm"}, "creationTimestamp": created},
        "status": {"containerStatuses": [engine]},
    }


def test_crashes_in_a_row_are_counted_across_observations() -> None:
    first = crash_record([crashing(0, state="terminated")], None, same_spec=True)
    assert first is not None
    record, last_exit = first
    assert record == {
        "pod": "p",
        "container": "engine",
        "exitCode": 132,
        "meaning": exit_meaning({"exitCode": 132}),
        "restartCount": 0,
        "crashes": 1,
    }
    assert last_exit.startswith("code 132 (SIGILL: ")
    assert last_exit.endswith("): llama threadpool init")
    for restarts, expected in [(1, 2), (1, 2), (4, 5)]:
        found = crash_record([crashing(restarts)], record, same_spec=True)
        assert found is not None
        record = found[0]
        assert (record["restartCount"], record["crashes"]) == (restarts, expected)


@pytest.mark.parametrize(
    ("pods", "same_spec", "crashes"),
    [
        ([crashing(5, code=139)], True, 1),
        ([crashing(5, name="q")], True, 1),
        ([crashing(5)], False, 1),
        ([crashing(5)], True, 3),
        ([crashing(5), crashing(1, code=143, name="new", created=NOW)], True, 1),
    ],
    ids=["other exit code", "other pod", "spec changed", "same crash", "newest pod"],
)
def test_crash_count_starts_again_when_the_crash_is_another(
    pods: list[dict[str, Any]], same_spec: bool, crashes: int
) -> None:
    previous = {"pod": "p", "container": "engine", "exitCode": 132, "restartCount": 4, "crashes": 2}
    found = crash_record(pods, previous, same_spec=same_spec)
    assert found is not None
    assert found[0]["crashes"] == crashes


@pytest.mark.parametrize(
    "pod_status",
    [
        crashing(3, state="running", ready=True)["status"],
        {"initContainerStatuses": [{"name": "pull", "state": {"terminated": {"exitCode": 0}}}]},
        {"containerStatuses": [{"name": "engine", "state": {"running": {}}, "restartCount": 0}]},
    ],
    ids=["ready again", "init container done", "never crashed"],
)
def test_no_crash_record_for_a_healthy_container(pod_status: dict[str, Any]) -> None:
    assert crash_record([pod(**pod_status)], None, same_spec=True) is None


def test_a_restarted_engine_still_loading_keeps_its_crash() -> None:
    found = crash_record([crashing(2, state="running")], None, same_spec=True)
    assert found is not None and found[0]["exitCode"] == 132


LLM_ONLY = Plan(models=PLAN.models[:1], services=(), warnings=())


def crash_status(
    restarts: int, previous: dict[str, Any], *, generation: int = 1, threshold: int = 3, **kw: Any
) -> dict[str, Any]:
    return build_status(
        generation=generation,
        plan=LLM_ONLY,
        outcome=Outcome(),
        deployments={"a-llm": deployment(observedGeneration=1, updatedReplicas=1)},
        pods=[crashing(restarts, **kw)],
        previous=previous,
        now=NOW,
        stall_after_crashes=threshold,
    )


def test_repeated_crashes_stall_the_app_until_the_pod_recovers() -> None:
    status = crash_status(0, {}, state="terminated")
    assert conditions(status) == [
        ("Ready", "False", "NotReady"),
        ("Reconciling", "True", "Progressing"),
        ("Stalled", "False", ""),
    ]
    assert status["models"][0]["crash"]["crashes"] == 1
    status = crash_status(1, status)
    assert status["models"][0]["crash"]["crashes"] == 2
    assert conditions(status)[2] == ("Stalled", "False", "")

    status = crash_status(2, status)
    assert conditions(status) == [
        ("Ready", "False", "CrashLoop"),
        ("Reconciling", "False", ""),
        ("Stalled", "True", "CrashLoop"),
    ]
    stalled = status["conditions"][2]["message"]
    assert stalled.startswith(
        "model llm: container engine of pod p crashed 3 times in a row, last with exit code 132 "
        "(SIGILL: the image was built for CPU instructions this node lacks"
    )
    assert stalled.endswith("): llama threadpool init")
    assert status["conditions"][0]["message"] == stalled

    still_loading = crash_status(3, status, state="running")
    assert conditions(still_loading)[2] == ("Stalled", "True", "CrashLoop")
    recovered = crash_status(3, still_loading, state="running", ready=True)
    assert "crash" not in recovered["models"][0]
    assert conditions(recovered)[2] == ("Stalled", "False", "")


def test_a_spec_change_ends_the_stall() -> None:
    status: dict[str, Any] = {}
    for restarts in range(4):
        status = crash_status(restarts, status)
    assert conditions(status)[2] == ("Stalled", "True", "CrashLoop")
    changed = crash_status(4, status, generation=2)
    assert conditions(changed) == [
        ("Ready", "False", "NotReady"),
        ("Reconciling", "True", "Progressing"),
        ("Stalled", "False", ""),
    ]
    assert changed["models"][0]["crash"]["crashes"] == 1


def test_stall_after_crashes_zero_never_stalls() -> None:
    status: dict[str, Any] = {}
    for restarts in range(10):
        status = crash_status(restarts, status, threshold=0)
    assert status["models"][0]["crash"]["crashes"] == 10
    assert conditions(status)[2] == ("Stalled", "False", "")


def test_a_crashing_service_stalls_too() -> None:
    plan = Plan(models=(), services=(PlannedService("web", "created", "web"),), warnings=())
    status: dict[str, Any] = {}
    for restarts in range(2):
        status = build_status(
            generation=1,
            plan=plan,
            outcome=Outcome(),
            deployments={"web": deployment(observedGeneration=1, updatedReplicas=1)},
            pods=[crashing(restarts, code=1)],
            previous=status,
            now=NOW,
            stall_after_crashes=2,
        )
    assert conditions(status)[2] == ("Stalled", "True", "CrashLoop")
    assert status["conditions"][2]["message"] == (
        "service web: container engine of pod p crashed 2 times in a row, last with exit code 1: "
        "llama threadpool init"
    )


def test_crash_events_come_once_per_crash_not_per_restart() -> None:
    statuses: list[dict[str, Any]] = [{}]
    for restarts in range(4):
        statuses.append(crash_status(restarts, statuses[-1]))
    statuses.append(crash_status(4, statuses[-1], code=139))
    events = [transition_events(a, b) for a, b in itertools.pairwise(statuses)]
    reasons = [[e.reason for e in step] for step in events]
    assert reasons == [["ContainerCrashed"], [], ["CrashLoop"], [], ["ContainerCrashed"]]
    crashed = events[0][0]
    assert crashed.type == "Warning"
    assert crashed.message.startswith(
        "model llm: pod p: container engine: CrashLoopBackOff: back-off 10s; last exit code 132 "
        "(SIGILL: the image was built for CPU instructions this node lacks"
    )
    assert events[2][0].message == statuses[3]["conditions"][2]["message"]


def test_pods_of_an_older_template_are_not_counted() -> None:
    old, new = crashing(7), crashing(0, name="new", created=NOW, state="running", ready=False)
    old["metadata"]["labels"]["pod-template-hash"] = "aaa"
    new["metadata"]["labels"]["pod-template-hash"] = "bbb"
    new["status"]["containerStatuses"][0]["lastState"] = {}
    assert crash_record([old, new], None, same_spec=True) is None
    sibling = crashing(2, name="sibling", created=EARLIER)
    sibling["metadata"]["labels"]["pod-template-hash"] = "bbb"
    found = crash_record([old, new, sibling], None, same_spec=True)
    assert found is not None and found[0]["pod"] == "sibling"
