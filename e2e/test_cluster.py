"""The e2e cluster itself: versions, fake GPU nodes, scheduling, server-side apply, RBAC, audit."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import yaml

from e2e.cluster_support import Cluster, Kubectl

GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}

POD_SECURITY = None
"""The harness's own test pods (root busybox, plain Deployments): no Pod Security level."""


def deployment(name: str, *, instance_type: str, region: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {
                        "node.kubernetes.io/instance-type": instance_type,
                        "topology.kubernetes.io/region": region,
                    },
                    "tolerations": [
                        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
                    ],
                    "containers": [
                        {
                            "name": "engine",
                            "image": "registry.invalid/engine:1",
                            "resources": {
                                "limits": {"nvidia.com/gpu": "1"},
                                "requests": {"nvidia.com/gpu": "1"},
                            },
                        }
                    ],
                },
            },
        },
    }


def apply(kubectl: Kubectl, namespace: str, document: dict[str, Any]) -> None:
    kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(document))


def pods_of(cluster: Cluster, namespace: str, app: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cluster.get_json("-n", namespace, "pods", "-l", f"app={app}")[
        "items"
    ]
    return items


def test_binaries_report_pinned_versions(cluster: Cluster) -> None:
    versions = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    helm = subprocess.run(
        [str(cluster.helm_path), "version", "--short"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert (
        versions["clientVersion"]["gitVersion"],
        versions["serverVersion"]["gitVersion"],
        helm.stdout.strip(),
    ) == ("v1.36.3", "v1.36.3", "v3.22.0")


def test_nodes_have_instance_types_regions_taints_and_gpus(cluster: Cluster) -> None:
    nodes = cluster.get_json("nodes")["items"]
    seen = {
        node["metadata"]["name"]: {
            "instance-type": node["metadata"]["labels"]["node.kubernetes.io/instance-type"],
            "region": node["metadata"]["labels"]["topology.kubernetes.io/region"],
            "taints": node["spec"].get("taints", []),
            "gpus": node["status"]["allocatable"].get("nvidia.com/gpu"),
            "gpu-capacity": node["status"]["capacity"].get("nvidia.com/gpu"),
            "ready": {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"],
        }
        for node in nodes
    }
    cpu: dict[str, object] = {"taints": [], "gpus": None, "gpu-capacity": None, "ready": "True"}
    gpu = {"taints": [GPU_TAINT], "gpus": "8", "gpu-capacity": "8", "ready": "True"}
    assert seen == {
        "cpu-0": {"instance-type": "cpu-standard", "region": "us-west-2", **cpu},
        "cpu-1": {"instance-type": "cpu-standard", "region": "us-west-2", **cpu},
        "gpu-small-0": {"instance-type": "gpu-small", "region": "us-west-2", **gpu},
        "gpu-small-1": {"instance-type": "gpu-small", "region": "us-west-2", **gpu},
        "gpu-large-0": {"instance-type": "gpu-large", "region": "eu-central-1", **gpu},
    }


def test_gpu_deployment_runs_on_a_matching_gpu_node(cluster: Cluster, namespace: str) -> None:
    apply(
        cluster.kubectl,
        namespace,
        deployment("engine", instance_type="gpu-small", region="us-west-2"),
    )
    cluster.kubectl("-n", namespace, "rollout", "status", "deployment/engine", "--timeout=60s")

    [pod] = pods_of(cluster, namespace, "engine")
    assert (pod["status"]["phase"], pod["spec"]["nodeName"] in {"gpu-small-0", "gpu-small-1"}) == (
        "Running",
        True,
    )


def test_deployment_for_a_missing_instance_type_stays_pending(
    cluster: Cluster, namespace: str
) -> None:
    apply(
        cluster.kubectl,
        namespace,
        deployment("nowhere", instance_type="gpu-huge", region="us-west-2"),
    )

    deadline = time.monotonic() + 60
    reasons: list[str] = []
    while "FailedScheduling" not in reasons and time.monotonic() < deadline:
        time.sleep(0.5)
        events = cluster.get_json("-n", namespace, "events")["items"]
        reasons = [event["reason"] for event in events if event["involvedObject"]["kind"] == "Pod"]
    [pod] = pods_of(cluster, namespace, "nowhere")
    assert ("FailedScheduling" in reasons, pod["status"]["phase"], pod["spec"].get("nodeName")) == (
        True,
        "Pending",
        None,
    )


def test_server_side_apply_tracks_field_owners_and_conflicts(
    cluster: Cluster, namespace: str
) -> None:
    def config_map(value: str) -> str:
        return yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "settings"},
                "data": {"model": value},
            }
        )

    apply_as = ("-n", namespace, "apply", "--server-side", "-f", "-")
    cluster.kubectl(*apply_as, "--field-manager=first", input=config_map("ai/smollm2"))
    conflict = cluster.kubectl(
        *apply_as, "--field-manager=second", input=config_map("ai/qwen3"), check=False
    )
    stored = cluster.get_json("-n", namespace, "configmap", "settings", "--show-managed-fields")

    assert (
        conflict.returncode,
        "conflict" in conflict.stderr.lower(),
        stored["data"],
        [(entry["manager"], entry["operation"]) for entry in stored["metadata"]["managedFields"]],
    ) == (1, True, {"model": "ai/smollm2"}, [("first", "Apply")])


def test_service_account_acts_only_within_its_role_and_is_audited(
    cluster: Cluster, namespace: str
) -> None:
    user = f"system:serviceaccount:{namespace}:robot"
    cluster.kubectl("-n", namespace, "create", "serviceaccount", "robot")
    before = cluster.kubectl(
        "-n", namespace, "auth", "can-i", "create", "configmaps", f"--as={user}", check=False
    )
    as_robot = cluster.service_account_kubeconfig(namespace, "robot")
    denied = cluster.kubectl("create", "configmap", "denied", kubeconfig=as_robot, check=False)

    in_namespace = ("-n", namespace)
    cluster.kubectl(*in_namespace, "create", "role", "cm", "--verb=create", "--resource=configmaps")
    robot = f"--serviceaccount={namespace}:robot"
    cluster.kubectl(*in_namespace, "create", "rolebinding", "robot", "--role=cm", robot)
    mark = cluster.audit_mark()
    cluster.kubectl("create", "configmap", "allowed", kubeconfig=as_robot)
    who = cluster.kubectl(
        "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}", kubeconfig=as_robot
    )

    writes = [
        (event["verb"], event["objectRef"]["resource"], event["objectRef"].get("name"))
        for event in cluster.audit_writes(user, since=mark)
    ]
    assert (
        before.stdout.strip(),
        before.returncode,
        denied.returncode,
        "forbidden" in denied.stderr,
        who.stdout,
        writes,
    ) == ("no", 1, 1, True, user, [("create", "configmaps", "allowed")])


def test_audit_log_records_writes_but_not_reads(cluster: Cluster, namespace: str) -> None:
    mark = cluster.audit_mark()
    in_namespace = ("-n", namespace)
    cluster.kubectl(*in_namespace, "create", "configmap", "written", "--from-literal=a=1")
    cluster.kubectl(*in_namespace, "get", "configmap", "written")
    cluster.kubectl(*in_namespace, "get", "configmaps")
    cluster.kubectl(*in_namespace, "patch", "configmap", "written", "-p", '{"data":{"a":"2"}}')
    cluster.kubectl(*in_namespace, "delete", "configmap", "written")

    admin = cluster.kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout
    verbs = [
        event["verb"]
        for event in cluster.audit_writes(admin, since=mark)
        if event["objectRef"].get("name") == "written"
    ]
    assert verbs == ["create", "patch", "delete"]
