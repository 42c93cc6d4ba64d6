"""Drives the real e2e node (e2e/realnode/node.sh) from tests: start/stop and pod helpers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

E2E_DIR = Path(__file__).resolve().parent
NODE_SH = E2E_DIR / "realnode" / "node.sh"
CHECK_CLEAN_SH = E2E_DIR / "realnode" / "check-clean.sh"
OCI_PY = E2E_DIR / "realnode" / "images" / "oci.py"


class RealNodeUnavailable(Exception):
    """The machine cannot run the real node (not root, or the Debian packages are missing)."""


def parse_exports(text: str) -> dict[str, str]:
    """The `export NAME=value` lines that node.sh prints."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("export ") and "=" in line:
            name, value = line.removeprefix("export ").split("=", 1)
            values[name] = value
    return values


@dataclass(frozen=True)
class RealNode:
    kubeconfig: str
    kubectl_binary: str
    node_name: str
    node_ip: str
    registry: str
    bin_dir: Path
    gpus: int
    pod_prefix: str

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            [self.kubectl_binary, "--kubeconfig", self.kubeconfig, *args],
            input=stdin,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def apply(self, namespace: str, *objects: Mapping[str, Any]) -> None:
        body = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
        self.kubectl("-n", namespace, "apply", "-f", "-", stdin=json.dumps(body))

    def get(self, namespace: str, kind_and_name: str) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(
            self.kubectl("-n", namespace, "get", kind_and_name, "-o", "json")
        )
        return document

    def logs(self, namespace: str, pod: str, container: str = "main") -> str:
        return self.kubectl("-n", namespace, "logs", pod, "-c", container)

    def wait_for_phase(
        self, namespace: str, pod: str, phase: str, timeout: float = 90
    ) -> dict[str, Any]:
        """The pod's status once it reaches `phase`; fails at once on an unexpected end."""
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = self.get(namespace, f"pod/{pod}").get("status", {})
            if status.get("phase") == phase:
                return status
            if status.get("phase") in {"Succeeded", "Failed"}:
                break
            time.sleep(0.2)
        raise AssertionError(
            f"pod {namespace}/{pod} is not {phase}: {json.dumps(status, indent=1)}\n"
            f"{self.kubectl('-n', namespace, 'get', 'events', '-o', 'wide')}"
        )

    def wait_for_condition(
        self, namespace: str, kind_and_name: str, condition: str, timeout: float = 90
    ) -> None:
        self.kubectl(
            "-n",
            namespace,
            "wait",
            f"--for=condition={condition}",
            kind_and_name,
            f"--timeout={int(timeout)}s",
        )

    def wait_for_unschedulable(self, namespace: str, pod: str, timeout: float = 30) -> str:
        """The scheduler's message once it has given up on the pod."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for condition in (
                self.get(namespace, f"pod/{pod}").get("status", {}).get("conditions", [])
            ):
                if (
                    condition["type"] == "PodScheduled"
                    and condition.get("reason") == "Unschedulable"
                ):
                    return str(condition.get("message", ""))
            time.sleep(0.2)
        raise AssertionError(f"pod {namespace}/{pod} was not reported unschedulable")

    def push_archive(self, archive: str, reference: str) -> None:
        """Pushes one of the node's own OCI archives (pause, coredns, busybox) to the registry."""
        subprocess.run(
            ["python3", str(OCI_PY), "push", str(self.bin_dir / "images" / archive), reference],
            check=True,
            capture_output=True,
        )

    def guard_drops(self) -> int:
        """Packets the node's egress guard has dropped (pods trying to leave the machine)."""
        listing = subprocess.run(
            ["iptables", "-w", "-t", "mangle", "-L", "COE2E-EGRESS", "-v", "-x", "-n"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return sum(int(line.split()[0]) for line in listing.splitlines() if " DROP " in f" {line} ")


def check_machine() -> None:
    if os.geteuid() != 0:
        raise RealNodeUnavailable("the real node needs root")
    tools = ("containerd", "runc", "socat", "docker-registry")
    missing = [tool for tool in tools if not shutil.which(tool)]
    if missing or not Path("/usr/lib/cni/bridge").exists():
        raise RealNodeUnavailable(
            f"missing {', '.join(missing) or 'CNI plugins'}: run e2e/realnode/install-deps.sh"
        )


@contextmanager
def running_realnode(kubeconfig: Path, cluster_bin: Path) -> Iterator[RealNode]:
    """The real node joined to the given cluster: reused when up, else started and stopped here.

    A node started here must leave the machine as it found it (check-clean.sh), or this fails.
    """
    check_machine()
    env = {
        **os.environ,
        "COMPOSE_E2E_KUBECONFIG": str(kubeconfig),
        "COMPOSE_E2E_BIN": str(cluster_bin),
    }
    running = subprocess.run([str(NODE_SH), "status"], env=env, capture_output=True, check=False)
    started = running.returncode != 0
    snapshot = Path(tempfile.mkdtemp(prefix="realnode-before-"))
    if started:
        subprocess.run([str(CHECK_CLEAN_SH), "snapshot", str(snapshot)], check=True)
        result = subprocess.run(
            [str(NODE_SH), "up"], env=env, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            subprocess.run([str(NODE_SH), "down"], env=env, capture_output=True, check=False)
            shutil.rmtree(snapshot, ignore_errors=True)
            raise AssertionError(f"node.sh up failed:\n{result.stderr}")
    try:
        listed = subprocess.run(
            [str(NODE_SH), "env"], env=env, capture_output=True, text=True, check=True
        )
        node = parse_exports(listed.stdout)
        pod_cidr = os.environ.get("COMPOSE_E2E_POD_CIDR", "10.244.0.0/24")
        yield RealNode(
            kubeconfig=str(kubeconfig),
            kubectl_binary=str(cluster_bin / "kubectl"),
            node_name=node["COMPOSE_E2E_NODE_NAME"],
            node_ip=node["COMPOSE_E2E_NODE_IP"],
            registry=node["COMPOSE_E2E_REGISTRY"],
            bin_dir=Path(node["COMPOSE_E2E_REALNODE_BIN"]),
            gpus=int(node["COMPOSE_E2E_NODE_GPUS"]),
            pod_prefix=pod_cidr.rsplit(".", 1)[0] + ".",
        )
    finally:
        leftovers = None
        if started:
            subprocess.run([str(NODE_SH), "down"], env=env, capture_output=True, check=False)
            leftovers = subprocess.run(
                [str(CHECK_CLEAN_SH), "compare", str(snapshot)],
                capture_output=True,
                text=True,
                check=False,
            )
        shutil.rmtree(snapshot, ignore_errors=True)
    if leftovers is not None and leftovers.returncode != 0:
        raise AssertionError(f"node.sh down left this behind:\n{leftovers.stdout}")
