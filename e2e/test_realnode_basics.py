"""The real node really runs pods: containers, DNS, Services, volumes, GPU scheduling, pulls.

Needs root and Debian's containerd/runc/CNI plugins (e2e/realnode/install-deps.sh). The
`realnode` fixture joins the node to the suite's cluster (starting it with node.sh unless it is
already up, and stopping what it started); `namespace` is the suite's fresh-namespace fixture.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.realnode_support import RealNode

pytestmark = [pytest.mark.e2e, pytest.mark.realnode]

GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
BUSYBOX = "localhost/busybox:local"

POD_SECURITY = None
"""The harness's own test pods (root busybox, plain Deployments): no Pod Security level."""


def pod(
    name: str,
    command: str,
    *,
    node_selector: dict[str, str],
    image: str = BUSYBOX,
    pull_policy: str = "Never",
    init_command: str | None = None,
    limits: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    restart: str = "Never",
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "main",
        "image": image,
        "imagePullPolicy": pull_policy,
        "command": ["/bin/sh", "-c", command],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    if limits:
        container["resources"] = {"limits": limits}
    spec: dict[str, Any] = {
        "restartPolicy": restart,
        "nodeSelector": node_selector,
        "tolerations": [GPU_TOLERATION],
        "terminationGracePeriodSeconds": 1,
        "containers": [container],
        "volumes": [{"name": "data", "emptyDir": {}}],
    }
    if init_command is not None:
        spec["initContainers"] = [
            {
                "name": "init",
                "image": image,
                "imagePullPolicy": pull_policy,
                "command": ["/bin/sh", "-c", init_command],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            }
        ]
    metadata: dict[str, Any] = {"name": name}
    if labels:
        metadata["labels"] = labels
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def test_pod_runs_a_real_process_on_the_real_node(realnode: RealNode, namespace: str) -> None:
    realnode.apply(
        namespace,
        pod(
            "hello",
            "echo kernel=$(uname -s) pid1=$(cat /proc/1/comm) data=$(ls -d /data)",
            node_selector={"kubernetes.io/hostname": realnode.node_name},
        ),
    )
    status = realnode.wait_for_phase(namespace, "hello", "Succeeded")

    assert realnode.logs(namespace, "hello") == "kernel=Linux pid1=sh data=/data\n"
    assert status["hostIP"] == realnode.node_ip
    assert status["podIP"].startswith(realnode.pod_prefix)
    assert status["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0


def test_exec_runs_a_command_in_a_running_container(realnode: RealNode, namespace: str) -> None:
    realnode.apply(
        namespace,
        pod(
            "shell",
            "echo ready > /data/state && exec sleep 300",
            node_selector={"kubernetes.io/hostname": realnode.node_name},
            restart="Always",
        ),
    )
    realnode.wait_for_condition(namespace, "pod/shell", "Ready")

    output = realnode.kubectl(
        "-n", namespace, "exec", "shell", "-c", "main", "--", "cat", "/data/state"
    )

    assert output == "ready\n"


def test_init_container_writes_an_empty_dir_that_the_main_container_reads(
    realnode: RealNode, namespace: str
) -> None:
    realnode.apply(
        namespace,
        pod(
            "volumes",
            "cat /data/greeting",
            init_command="echo written by $(hostname) in init > /data/greeting",
            node_selector={"kubernetes.io/hostname": realnode.node_name},
        ),
    )
    realnode.wait_for_phase(namespace, "volumes", "Succeeded")

    assert realnode.logs(namespace, "volumes") == "written by volumes in init\n"


def test_pod_reaches_a_service_by_its_dns_name(realnode: RealNode, namespace: str) -> None:
    on_node = {"kubernetes.io/hostname": realnode.node_name}
    realnode.apply(
        namespace,
        pod(
            "web",
            "mkdir -p /data/www && echo served-from-web > /data/www/index.html"
            " && exec httpd -f -p 8080 -h /data/www",
            node_selector=on_node,
            labels={"app": "web"},
            restart="Always",
        ),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )
    realnode.wait_for_condition(namespace, "pod/web", "Ready")
    # kube-proxy may lag the pod's readiness by about a second: the client retries briefly.
    realnode.apply(
        namespace,
        pod(
            "client",
            f"for i in $(seq 20); do timeout 3 wget -qO- http://web.{namespace}.svc.cluster.local/"
            " && exit 0; sleep 0.5; done; exit 1",
            node_selector=on_node,
        ),
    )
    realnode.wait_for_phase(namespace, "client", "Succeeded")

    # A first try that timed out leaves busybox's "Terminated" before the answer.
    assert realnode.logs(namespace, "client").splitlines()[-1] == "served-from-web"


def test_pod_reaches_the_api_server_through_the_kubernetes_service(
    realnode: RealNode, namespace: str
) -> None:
    realnode.apply(
        namespace,
        pod(
            "api",
            "for i in $(seq 10); do"
            " echo | timeout 3 nc kubernetes.default.svc.cluster.local 443"
            " && echo connected && exit 0; sleep 0.5; done; exit 1",
            node_selector={"kubernetes.io/hostname": realnode.node_name},
        ),
    )
    realnode.wait_for_phase(namespace, "api", "Succeeded")

    assert realnode.logs(namespace, "api").endswith("connected\n")


@pytest.fixture()
def outside_host() -> Iterator[str]:
    """A listener outside the cluster's ranges, yet on this machine: a network namespace of ours.

    If the node's egress guard failed, a pod's packets would reach this host (and still not
    leave the machine); with the guard they are dropped on the way. The namespace lives only as
    long as its listener process, so ending that process removes it and its veth pair.
    """
    host_end, host_address, address = "coe2e-out0", "10.251.0.1", "10.251.0.2"
    listener = subprocess.Popen(
        ["unshare", "--net", "socat", "TCP-LISTEN:8080,fork,reuseaddr", "SYSTEM:echo reached"]
    )

    def run(*command: str) -> None:
        subprocess.run(command, check=True, capture_output=True)

    def inside(*command: str) -> None:
        run("nsenter", "--target", str(listener.pid), "--net", *command)

    try:
        # Popen returns before `unshare` has made the namespace: a veth moved to the pid too early
        # lands in ours (seen once in CI as "eth0: File exists"). Wait until the namespace differs.
        own_namespace = Path("/proc/self/ns/net").readlink()
        deadline = time.monotonic() + 10
        while Path(f"/proc/{listener.pid}/ns/net").readlink() == own_namespace:
            assert time.monotonic() < deadline, "unshare never made the listener's namespace"
            time.sleep(0.02)
        run(
            "ip",
            "link",
            "add",
            host_end,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            str(listener.pid),
        )
        run("ip", "addr", "add", f"{host_address}/30", "dev", host_end)
        run("ip", "link", "set", host_end, "up")
        inside("ip", "addr", "add", f"{address}/30", "dev", "eth0")
        inside("ip", "link", "set", "eth0", "up")
        inside("ip", "route", "add", "default", "via", host_address)
        yield address
    finally:
        listener.kill()
        listener.wait()
        subprocess.run(["ip", "link", "delete", host_end], check=False, capture_output=True)


def reach(address: str, attempts: int = 20) -> str:
    """What the host gets from ADDRESS:8080, retrying while the listener starts."""
    for _ in range(attempts):
        result = subprocess.run(
            ["socat", "-T", "3", "-", f"TCP:{address}:8080"],
            input="",
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode == 0:
            return result.stdout
        time.sleep(0.1)
    return ""


def test_pods_cannot_reach_past_the_machine(
    realnode: RealNode, namespace: str, outside_host: str
) -> None:
    reachable_from_host = reach(outside_host)
    drops_before = realnode.guard_drops()
    realnode.apply(
        namespace,
        pod(
            "egress",
            f"if (echo | timeout 3 nc {outside_host} 8080) 2>/dev/null;"
            " then echo reached; else echo blocked; fi",
            node_selector={"kubernetes.io/hostname": realnode.node_name},
        ),
    )
    realnode.wait_for_phase(namespace, "egress", "Succeeded")

    assert (reachable_from_host, realnode.logs(namespace, "egress")) == (
        "reached\n",
        "blocked\n",
    )
    assert realnode.guard_drops() > drops_before


def test_node_is_labelled_tainted_and_advertises_gpus_like_a_gpu_small_node(
    realnode: RealNode,
) -> None:
    node = json.loads(realnode.kubectl("get", "node", realnode.node_name, "-o", "json"))

    labels = node["metadata"]["labels"]
    assert labels["node.kubernetes.io/instance-type"] == "gpu-small"
    assert labels["topology.kubernetes.io/region"] == "us-west-2"
    assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"} in node["spec"][
        "taints"
    ]
    assert node["status"]["capacity"]["nvidia.com/gpu"] == str(realnode.gpus)
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == str(realnode.gpus)
    assert "kwok.x-k8s.io/node" not in node["metadata"].get("annotations", {})


def test_gpu_pod_with_cloud_selector_lands_on_the_real_node(
    realnode: RealNode, namespace: str
) -> None:
    realnode.apply(
        namespace,
        pod(
            "gpu",
            "echo running",
            node_selector={
                "node.kubernetes.io/instance-type": "gpu-small",
                "topology.kubernetes.io/region": "us-west-2",
            },
            limits={"nvidia.com/gpu": "1"},
        ),
    )
    realnode.wait_for_phase(namespace, "gpu", "Succeeded")
    spec = json.loads(realnode.kubectl("-n", namespace, "get", "pod", "gpu", "-o", "json"))["spec"]

    assert spec["nodeName"] == realnode.node_name
    assert realnode.logs(namespace, "gpu") == "running\n"


def test_kwok_nodes_are_off_limits_to_real_pods_while_the_node_is_up(realnode: RealNode) -> None:
    nodes = json.loads(realnode.kubectl("get", "nodes", "-o", "json"))["items"]
    kwok_taint = {"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}
    tainted = {
        node["metadata"]["name"]: kwok_taint in node["spec"].get("taints", [])
        for node in nodes
        if node["metadata"].get("annotations", {}).get("kwok.x-k8s.io/node") == "fake"
    }

    assert tainted and all(tainted.values()), tainted


def test_gpu_pod_beyond_the_advertised_count_stays_pending(
    realnode: RealNode, namespace: str
) -> None:
    realnode.apply(
        namespace,
        pod(
            "too-many",
            "echo never",
            node_selector={"kubernetes.io/hostname": realnode.node_name},
            limits={"nvidia.com/gpu": str(realnode.gpus + 1)},
        ),
    )
    message = realnode.wait_for_unschedulable(namespace, "too-many")

    assert "Insufficient nvidia.com/gpu" in message


def test_kubelet_pulls_an_image_pushed_to_the_local_registry(
    realnode: RealNode, namespace: str
) -> None:
    reference = f"{realnode.registry}/e2e/busybox:{uuid.uuid4().hex[:8]}"
    realnode.push_archive("busybox.tar", reference)
    realnode.apply(
        namespace,
        pod(
            "pulled",
            "echo pulled",
            image=reference,
            pull_policy="Always",
            node_selector={"kubernetes.io/hostname": realnode.node_name},
        ),
    )
    realnode.wait_for_phase(namespace, "pulled", "Succeeded")
    events = realnode.kubectl(
        "-n",
        namespace,
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=pulled",
        "-o",
        "json",
    )

    assert realnode.logs(namespace, "pulled") == "pulled\n"
    assert any(event["reason"] == "Pulled" for event in json.loads(events)["items"])


def test_pod_reaches_the_registry_by_its_service_name(realnode: RealNode, namespace: str) -> None:
    realnode.apply(
        namespace,
        pod(
            "catalog",
            "timeout 5 wget -qO- http://registry.kube-system.svc.cluster.local:5000/v2/",
            node_selector={"kubernetes.io/hostname": realnode.node_name},
        ),
    )
    realnode.wait_for_phase(namespace, "catalog", "Succeeded")

    assert realnode.logs(namespace, "catalog") == "{}"


def test_host_reaches_the_registry_at_the_node_address(realnode: RealNode) -> None:
    result = subprocess.run(
        ["curl", "-fsS", f"http://{realnode.registry}/v2/"],
        capture_output=True,
        text=True,
        check=True,
    )

    assert result.stdout == "{}"
