"""Two replicas: one leads on a Lease, the standby takes over when the leader is SIGKILLed.

Both processes run as the chart's ServiceAccount with the chart's RBAC (the Lease Role
included), watch everything and keep their indexes warm; only the leader writes. The edit made
while nobody leads is applied by the standby once the Lease runs out, once.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.cluster_support import Cluster
from e2e.operator_harness import (
    OPERATOR_NAMESPACE,
    OperatorProcess,
    compose_app,
    condition,
    dumps,
    eventually,
    install_crd_and_rbac,
    running_operator,
)

APP = "ha"
LEASE = "compose-operator"
ELECTION = ("--leader-election", "--leader-election-namespace", OPERATOR_NAMESPACE)


def compose(context_size: int) -> str:
    return f"models:\n  llm:\n    model: ai/smollm2\n    context_size: {context_size}\n"


def leading(operator: OperatorProcess) -> bool:
    return any(
        json.loads(line).get("message", "").startswith("leading (Lease")
        for line in operator.log().splitlines()
        if line.startswith("{")
    )


def holder(cluster: Cluster) -> str:
    lease = cluster.get_json("-n", OPERATOR_NAMESPACE, "lease", LEASE)
    return str(lease["spec"].get("holderIdentity") or "")


def args_of(cluster: Cluster, namespace: str) -> list[str]:
    deployment = cluster.get_json("-n", namespace, "deployment", f"{APP}-llm")
    return list(deployment["spec"]["template"]["spec"]["containers"][0]["args"])


@pytest.fixture
def pair(cluster: Cluster, tmp_path: Path) -> Iterator[tuple[OperatorProcess, OperatorProcess]]:
    account = install_crd_and_rbac(cluster, webhook=False)
    cluster.kubectl("-n", OPERATOR_NAMESPACE, "delete", "lease", LEASE, check=False)
    with running_operator(
        cluster, tmp_path, account=account, extra_args=ELECTION, name="first"
    ) as first:
        eventually(lambda: leading(first), timeout=30, what="the first replica to lead")
        with running_operator(
            cluster, tmp_path, account=account, extra_args=ELECTION, name="second"
        ) as second:
            yield first, second


def test_the_standby_applies_a_pending_edit_once_after_the_leader_is_killed(
    cluster: Cluster, pair: tuple[OperatorProcess, OperatorProcess], namespace: str
) -> None:
    first, second = pair
    manifest = compose_app(APP, compose(4096))
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=manifest)
    eventually(
        lambda: condition(cluster.get_json("-n", namespace, "composeapp", APP), "Reconciling")
        .get("status") is not None,
        what="the leader to report a status",
    )  # fmt: skip
    assert "--ctx-size" in args_of(cluster, namespace)
    assert not leading(second), "one leader"
    leader_writes = [
        e for e in cluster.audit_requests(first.user) if e.get("objectRef", {}).get("namespace")
        == namespace and e["verb"] not in ("get", "list", "watch")
    ]  # fmt: skip
    assert leader_writes, "the leader wrote the app's objects"

    first.stop(signal.SIGKILL)
    mark = cluster.audit_mark()
    edited = time.monotonic()
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=compose_app(APP, compose(8192)))
    eventually(
        lambda: "8192" in args_of(cluster, namespace),
        timeout=15,
        interval=0.2,
        what="the standby to apply the edit",
    )
    took = time.monotonic() - edited
    assert leading(second) and holder(cluster).endswith(f"_{second.process.pid}"), holder(cluster)
    writes = [
        (e["verb"], e["objectRef"].get("resource"), e["objectRef"].get("name"))
        for e in cluster.audit_requests(second.user, since=mark)
        if e.get("objectRef", {}).get("namespace") == namespace
        and e["verb"] in ("create", "update", "patch", "delete")
        and e["objectRef"].get("subresource") != "status"
        and e["objectRef"].get("resource") != "events"
    ]
    # Nothing twice: the changed Deployment once, nothing else of the app (unchanged objects
    # are compared with the warm index, not applied again).
    assert writes == [("patch", "deployments", f"{APP}-llm")], dumps(writes)
    print(f"edit applied by the standby {took:.1f} s after the leader was killed")


def test_sigterm_releases_the_lease_and_ends_the_process_at_once(
    cluster: Cluster, pair: tuple[OperatorProcess, OperatorProcess]
) -> None:
    first, second = pair
    started = time.monotonic()
    first.stop(signal.SIGTERM)
    stopped = time.monotonic() - started
    assert first.process.returncode is not None
    assert stopped < 3, f"the operator took {stopped:.1f} s to exit on SIGTERM"
    # Released on the way out: the standby leads at its next try, not after the lease duration.
    eventually(lambda: leading(second), timeout=6, interval=0.2, what="the standby to lead")
    assert holder(cluster).endswith(f"_{second.process.pid}")
