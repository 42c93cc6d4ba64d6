"""The e2e cluster as tests and benchmarks see it: a real control plane with kwok nodes, started
by e2e/cluster/cluster.sh; the pytest fixtures that hand it out live in e2e/conftest.py."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

E2E_DIR = Path(__file__).resolve().parent
CLUSTER_SCRIPT = E2E_DIR / "cluster" / "cluster.sh"
Kubectl = Callable[..., subprocess.CompletedProcess[str]]
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


class KubectlError(subprocess.CalledProcessError):
    """A failed kubectl call whose message carries kubectl's own complaint."""

    def __str__(self) -> str:
        return f"{shlex.join(self.cmd)} exited {self.returncode}: {self.stderr.strip()}"


@dataclass(frozen=True)
class Cluster:
    """A running e2e cluster and the ways tests talk to it."""

    kubeconfig: Path
    bin_dir: Path
    audit_log: Path | None
    scratch: Path

    @property
    def kubectl_path(self) -> Path:
        return self.bin_dir / "kubectl"

    @property
    def helm_path(self) -> Path:
        return self.bin_dir / "helm"

    def env(self) -> dict[str, str]:
        """An environment for child processes that finds this cluster and its binaries first."""
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        kubeconfig: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl (the machine's /usr/bin/kubectl is an unrelated old build)."""
        command = [
            str(self.kubectl_path),
            f"--kubeconfig={kubeconfig or self.kubeconfig}",
            *args,
        ]
        result = subprocess.run(
            command, input=input, capture_output=True, text=True, timeout=180, check=False
        )
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, command, result.stdout, result.stderr)
        return result

    def get_json(self, *args: str) -> dict[str, Any]:
        """`kubectl get ... -o json`, parsed."""
        document: dict[str, Any] = json.loads(self.kubectl("get", *args, "-o", "json").stdout)
        return document

    def service_account_kubeconfig(self, namespace: str, name: str) -> Path:
        """A kubeconfig that authenticates as the ServiceAccount only, through a TokenRequest token.

        It holds no client certificate: with one, the API server would see the admin.
        """
        token = self.kubectl(
            "-n", namespace, "create", "token", name, "--duration=2h"
        ).stdout.strip()
        admin = yaml.safe_load(self.kubectl("config", "view", "--raw", "--minify").stdout)
        cluster = admin["clusters"][0]["cluster"]
        user = f"system:serviceaccount:{namespace}:{name}"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "e2e", "cluster": cluster}],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [
                {"name": user, "context": {"cluster": "e2e", "user": user, "namespace": namespace}}
            ],
            "current-context": user,
        }
        path = self.scratch / f"kubeconfig-{namespace}-{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def audit_mark(self) -> int:
        """A position in the audit log; pass it to audit_writes to see only later events."""
        return self._require_audit_log().stat().st_size

    def audit_writes(self, user: str, since: int = 0) -> list[dict[str, Any]]:
        """The completed write requests (create/update/patch/delete) of a user since a mark."""
        return [
            event
            for event in self._audit_events(since)
            if event.get("stage") == "ResponseComplete"
            and event.get("verb") in WRITE_VERBS
            and event.get("user", {}).get("username") == user
        ]

    def audit_requests(self, user: str, since: int = 0) -> list[dict[str, Any]]:
        """Every completed request of a user since a mark, reads included (the audit policy
        records reads of the operator's ServiceAccounts only); a watch counts when it starts."""
        return [
            event
            for event in self._audit_events(since)
            if event.get("user", {}).get("username") == user
            and event.get("stage")
            == ("ResponseStarted" if event.get("verb") == "watch" else "ResponseComplete")
        ]

    def _audit_events(self, since: int) -> list[dict[str, Any]]:
        with self._require_audit_log().open("rb") as log:
            log.seek(since)
            lines = log.read().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def _require_audit_log(self) -> Path:
        if self.audit_log is None:
            pytest.fail("COMPOSE_E2E_AUDIT_LOG is not set, so the audit log cannot be read")
        return self.audit_log


class ClusterUnavailable(Exception):
    """cluster.sh could not start the e2e cluster; the message carries its complaint."""


@contextlib.contextmanager
def running_cluster(
    scratch: Path, on_start: Callable[[], None] = lambda: None
) -> Iterator[Cluster]:
    """The e2e cluster: the one COMPOSE_E2E_KUBECONFIG names, else the one cluster.sh reports
    running (either is left running), else one started here (`on_start` is told first: it
    takes seconds, minutes on a cold build) and stopped on exit."""
    if os.environ.get("COMPOSE_E2E_KUBECONFIG"):
        yield _cluster_from(os.environ, scratch)
        return
    running = subprocess.run([str(CLUSTER_SCRIPT), "status"], capture_output=True, check=False)
    if running.returncode == 0:
        listed = subprocess.run(
            [str(CLUSTER_SCRIPT), "env"], capture_output=True, text=True, check=True
        )
        yield _cluster_from(_parse_exports(listed.stdout), scratch)
        return
    on_start()
    started = subprocess.run(
        [str(CLUSTER_SCRIPT), "up"], capture_output=True, text=True, check=False
    )
    if started.returncode != 0:
        raise ClusterUnavailable(f"cluster.sh up failed:\n{started.stderr}")
    try:
        yield _cluster_from(_parse_exports(started.stdout), scratch)
    finally:
        subprocess.run([str(CLUSTER_SCRIPT), "down"], capture_output=True, check=False)


def _parse_exports(text: str) -> dict[str, str]:
    """The variables of `cluster.sh env` / `cluster.sh up` output (`export NAME=value` lines)."""
    exports = {}
    for line in text.splitlines():
        match = re.fullmatch(r"export (\w+)=(.*)", line.strip())
        if match:
            exports[match[1]] = match[2]
    return exports


def _cluster_from(environment: Mapping[str, str], scratch: Path) -> Cluster:
    """The cluster that COMPOSE_E2E_* variables describe; the binaries are built (or reused) when
    COMPOSE_E2E_BIN is not among them."""
    bin_dir = environment.get("COMPOSE_E2E_BIN")
    if not bin_dir:
        built = subprocess.run(
            [str(CLUSTER_SCRIPT.parent / "build.sh")],
            capture_output=True,
            text=True,
            check=True,
        )
        bin_dir = built.stdout.strip().splitlines()[-1]
    audit_log = environment.get("COMPOSE_E2E_AUDIT_LOG")
    return Cluster(
        kubeconfig=Path(environment["COMPOSE_E2E_KUBECONFIG"]),
        bin_dir=Path(bin_dir),
        audit_log=Path(audit_log) if audit_log else None,
        scratch=scratch,
    )


ENFORCE = "pod-security.kubernetes.io/enforce"


def create_namespace(cluster: Cluster, name: str, level: str | None = "restricted") -> None:
    """A namespace enforcing Pod Security `level`: with "restricted", a pod the operator
    renders that did not meet it would never be created (the ReplicaSet reports FailedCreate)."""
    cluster.kubectl("create", "namespace", name)
    if level is not None:
        cluster.kubectl("label", "namespace", name, f"{ENFORCE}={level}")
