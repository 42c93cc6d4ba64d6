"""Run the operator as a local process under the Helm chart's ServiceAccount and RBAC.

The CRD comes from `crds/`, the RBAC from `helm template` of the chart, and the process
authenticates with a TokenRequest token (no client certificate), so every API call the
operator makes is checked by the real API server's RBAC, as in a cluster install.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from e2e.cluster_support import Cluster

REPO = Path(__file__).resolve().parent.parent
OPERATOR_NAMESPACE = "compose-operator"
RELEASE = "compose-operator"
RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}

KWOK_SETTINGS = REPO / "e2e" / "settings-kwok.yaml"
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def eventually(
    check: Callable[[], T | None], *, timeout: float = 60, interval: float = 0.5, what: str = ""
) -> T:
    """Poll until `check` returns something truthy; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            last = check()
            error = None
        except Exception as caught:
            error = caught
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what}: last={last!r} error={error!r}"
    )


def install_crd_and_rbac(
    cluster: Cluster, *, webhook: bool, chart_values: tuple[str, ...] = ()
) -> str:
    """Apply the CRD and the chart's RBAC (rendered with `--set` values); return the account."""
    cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds" / "composeapp.yaml"))
    cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "crd/composeapps.compose-operator.io",
        "--timeout=60s",
    )
    cluster.kubectl("create", "namespace", OPERATOR_NAMESPACE, check=False)
    rendered = subprocess.run(
        [
            str(cluster.helm_path),
            "template",
            RELEASE,
            str(REPO / "charts" / "compose-operator"),
            "--namespace",
            OPERATOR_NAMESPACE,
            "--set",
            f"webhook.enabled={'true' if webhook else 'false'}",
            *(argument for value in chart_values for argument in ("--set", value)),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rbac = [
        doc
        for doc in yaml.safe_load_all(rendered)
        if doc
        and doc["kind"] in RBAC_KINDS
        # The uninstall hook's own account and RBAC are not the operator's.
        and "helm.sh/hook" not in (doc["metadata"].get("annotations") or {})
    ]
    cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", "-f", "-", input=yaml.safe_dump_all(rbac)
    )
    account = next(doc for doc in rbac if doc["kind"] == "ServiceAccount")
    return str(account["metadata"]["name"])


@dataclass
class OperatorProcess:
    process: subprocess.Popen[bytes]
    log_path: Path
    metrics_port: int
    health_port: int
    user: str

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def metrics(self) -> str:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as r:
            return str(r.read().decode())

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextlib.contextmanager
def running_operator(
    cluster: Cluster,
    scratch: Path,
    *,
    account: str,
    extra_args: tuple[str, ...] = (),
    settings: dict[str, Any] | None = None,
    name: str = "operator",
) -> Iterator[OperatorProcess]:
    """Start `compose-operator run` as the chart's ServiceAccount; stop it afterwards."""
    kubeconfig = cluster.service_account_kubeconfig(OPERATOR_NAMESPACE, account)
    settings_path = KWOK_SETTINGS
    if settings is not None:
        settings_path = scratch / f"{name}-settings.yaml"
        settings_path.write_text(yaml.safe_dump(settings))
    log_path = scratch / f"{name}.log"
    metrics_port, health_port = free_port(), free_port()
    command = [
        sys.executable,
        "-m",
        "compose_operator.cli",
        "run",
        "--all-namespaces",
        "--settings",
        str(settings_path),
        "--metrics-port",
        str(metrics_port),
        "--health-port",
        str(health_port),
        "--log-format",
        "json",
        *extra_args,
    ]
    environment = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "PYTHONPATH": str(REPO / "operator"),
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
    operator = OperatorProcess(
        process=process,
        log_path=log_path,
        metrics_port=metrics_port,
        health_port=health_port,
        user=f"system:serviceaccount:{OPERATOR_NAMESPACE}:{account}",
    )
    try:
        eventually(
            lambda: process.poll() is None and _ready(health_port),
            timeout=60,
            what=f"the operator to be ready (log: {log_path})",
        )
        yield operator
    finally:
        operator.stop()


def compose_app(name: str, compose: str, **spec: Any) -> str:
    """A ComposeApp manifest as YAML text."""
    body = {
        "apiVersion": "compose-operator.io/v1alpha1",
        "kind": "ComposeApp",
        "metadata": {"name": name},
        "spec": {"compose": compose, **spec},
    }
    return yaml.safe_dump(body)


def condition(app: dict[str, Any], kind: str) -> dict[str, Any]:
    for entry in app.get("status", {}).get("conditions", []):
        if entry.get("type") == kind:
            return dict(entry)
    return {}


def env_of(workload: dict[str, Any], container: int = 0) -> dict[str, str]:
    """The literal env of a Pod's or a Deployment's container."""
    spec = workload["spec"]
    containers = (
        spec["containers"] if workload["kind"] == "Pod" else spec["template"]["spec"]["containers"]
    )
    return {e["name"]: e.get("value", "") for e in containers[container].get("env", [])}


def dumps(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True)
