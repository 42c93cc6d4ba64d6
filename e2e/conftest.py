"""Fixtures for the e2e suite: a real control plane with fake kwok nodes (e2e/cluster/cluster.sh).

If COMPOSE_E2E_KUBECONFIG is set (e.g. after `eval "$(e2e/cluster/cluster.sh env)"`), the suite
uses that cluster and leaves it running; so it does when cluster.sh reports its cluster running.
Otherwise it starts one and stops it at the end of the session.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.cluster_support import (
    E2E_DIR,
    Cluster,
    ClusterUnavailable,
    Kubectl,
    create_namespace,
    running_cluster,
)
from e2e.operator_harness import OperatorProcess, install_crd_and_rbac, running_operator
from e2e.realnode_support import RealNode, RealNodeUnavailable, running_realnode


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under e2e/ needs the cluster, so it carries the e2e marker."""
    for item in items:
        if E2E_DIR in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with contextlib.ExitStack() as stack:
        try:
            running = stack.enter_context(running_cluster(tmp_path_factory.mktemp("e2e")))
        except ClusterUnavailable as reason:
            pytest.fail(str(reason), pytrace=False)
        yield running


@pytest.fixture
def kubectl(cluster: Cluster) -> Kubectl:
    """The cluster's kubectl: kubectl("get", "nodes", input=None, check=True)."""
    return cluster.kubectl


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, deleted (without waiting) afterwards. It enforces Pod
    Security "restricted", unless its test module sets `POD_SECURITY` (the harness's own tests,
    whose pods are not the operator's)."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].rstrip("-")
    name = f"e2e-{slug}-{secrets.token_hex(3)}"
    create_namespace(cluster, name, getattr(request.module, "POD_SECURITY", "restricted"))
    cluster.kubectl("-n", name, "wait", "--for=create", "serviceaccount/default", "--timeout=30s")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def operator(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The operator as the chart installs it (its ServiceAccount and RBAC, no webhook),
    resyncing every 5 s, for one test module. Module-scoped: the modules that run operators
    of their own (HA, restart, webhook, sharing) never meet this one."""
    account = install_crd_and_rbac(cluster, webhook=False)
    with running_operator(
        cluster,
        tmp_path_factory.mktemp("operator"),
        account=account,
        extra_args=("--resync-seconds", "5"),
    ) as process:
        yield process


# realnode: the real node beside the kwok nodes (e2e/realnode/node.sh, e2e/realnode_support.py)
@pytest.fixture(scope="session")
def realnode(cluster: Cluster) -> Iterator[RealNode]:
    """The real node joined to the suite's cluster: reused when up, else started and stopped.

    Tests that use it are skipped where it cannot run (not root, Debian packages missing).
    """
    try:
        with running_realnode(cluster.kubeconfig, cluster.bin_dir) as node:
            yield node
    except RealNodeUnavailable as reason:
        pytest.skip(str(reason))


# end realnode
