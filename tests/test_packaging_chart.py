"""The Helm chart: lint, and what `helm template` renders for the values that matter."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import kubernetes_validate
import pytest
import yaml

from compose_operator.settings import GpuProfile, Settings, load_settings
from tests.packaging_support import (
    CHART,
    MANIFESTS,
    NETWORK_POLICY_GRANTS,
    OPERATOR_GRANTS,
    SHARING_GRANTS,
    grants_of,
    helm_template,
    objects_of_kind,
    one_object,
    require_tool,
    restricted_violations,
    run,
    with_built_in_images,
)

IMAGE = "ghcr.io/compose-operator/compose-operator:0.1.0"


def container_of(objects: list[dict[str, Any]]) -> dict[str, Any]:
    containers = one_object(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    container: dict[str, Any] = containers[0]
    return container


def settings_text(objects: list[dict[str, Any]]) -> str:
    text: str = one_object(objects, "ConfigMap")["data"]["settings.yaml"]
    return text


@pytest.fixture(scope="module")
def defaults() -> list[dict[str, Any]]:
    return helm_template()


def test_lint_is_clean() -> None:
    output = run([require_tool("helm"), "lint", "--strict", str(CHART)])
    assert "0 chart(s) failed" in output
    assert "[WARNING]" not in output and "[ERROR]" not in output


def test_defaults_render_the_operator_objects(defaults: list[dict[str, Any]]) -> None:
    assert sorted((o["kind"], o["metadata"]["name"]) for o in defaults) == [
        ("ClusterRole", "compose-operator"),
        ("ClusterRoleBinding", "compose-operator"),
        ("ConfigMap", "compose-operator-settings"),
        ("Deployment", "compose-operator"),
        ("Role", "compose-operator-leader-election"),
        ("RoleBinding", "compose-operator-leader-election"),
        ("Secret", "compose-operator-webhook-cert"),
        ("Service", "compose-operator-metrics"),
        ("Service", "compose-operator-webhook"),
        ("ServiceAccount", "compose-operator"),
        ("ValidatingWebhookConfiguration", "compose-operator"),
    ]
    assert {o["metadata"]["namespace"] for o in defaults if "namespace" in o["metadata"]} == {
        "operators"
    }


def test_defaults_are_valid_for_kubernetes_1_36(defaults: list[dict[str, Any]]) -> None:
    for obj in defaults:
        kubernetes_validate.validate(obj, "1.36", strict=True)


def test_the_pod_is_restricted(defaults: list[dict[str, Any]]) -> None:
    pod = one_object(defaults, "Deployment")["spec"]["template"]["spec"]
    assert restricted_violations(pod) == []
    assert pod["securityContext"]["runAsUser"] == 65532


def test_defaults_run_with_the_webhook_on_its_service(defaults: list[dict[str, Any]]) -> None:
    container = container_of(defaults)
    assert container["image"] == IMAGE
    assert container["args"] == [
        "run",
        "--settings=/etc/compose-operator/settings.yaml",
        "--metrics-port=8080",
        "--health-port=8081",
        "--log-format=json",
        "--resync-seconds=300",
        "--concurrency=8",
        "--leader-election",
        "--leader-election-id=compose-operator",
        "--webhook",
        "--webhook-port=9443",
        "--webhook-host=compose-operator-webhook.operators.svc",
        "--webhook-cert-dir=/etc/compose-operator/webhook",
        "--webhook-configuration=compose-operator",
    ]
    services = {o["metadata"]["name"]: o["spec"] for o in objects_of_kind(defaults, "Service")}
    assert services["compose-operator-webhook"]["ports"] == [
        {"name": "https", "port": 443, "targetPort": "webhook"},
        {"name": "webhook", "port": 9443, "targetPort": "webhook"},
    ]
    assert services["compose-operator-metrics"]["ports"] == [
        {"name": "metrics", "port": 8080, "targetPort": "metrics"}
    ]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}


def test_kopf_is_named_after_the_pod(defaults: list[dict[str, Any]]) -> None:
    """Without POD_ID, kopf asks the passwd database for UID 65532, and the image has none."""
    assert container_of(defaults)["env"] == [
        {"name": "POD_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]


def test_two_replicas_elect_a_leader_on_one_lease_and_share_the_webhook_certificate(
    defaults: list[dict[str, Any]],
) -> None:
    deployment = one_object(defaults, "Deployment")
    assert (deployment["spec"]["replicas"], deployment["spec"]["strategy"]["type"]) == (
        2,
        "RollingUpdate",
    )
    role = next(o for o in defaults if o["kind"] == "Role")
    assert role["metadata"]["namespace"] == "operators"
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["compose-operator"],
            "verbs": ["get", "patch"],
        },
    ]
    secret = one_object(defaults, "Secret")
    assert sorted(secret["data"]) == ["ca.crt", "tls.crt", "tls.key"]
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert {"name": "webhook-cert", "secret": {"secretName": "compose-operator-webhook-cert"}} in (
        volumes
    )


def test_one_replica_without_leader_election() -> None:
    objects = helm_template("--set", "leaderElection.enabled=false")
    deployment = one_object(objects, "Deployment")
    assert (deployment["spec"]["replicas"], deployment["spec"]["strategy"]["type"]) == (
        1,
        "Recreate",
    )
    assert "--leader-election" not in container_of(objects)["args"]
    assert not [o for o in objects if o["kind"] == "Role"]


def test_default_settings_are_the_built_in_defaults_with_the_operator_as_puller(
    defaults: list[dict[str, Any]],
) -> None:
    settings = load_settings(settings_text(defaults))
    assert settings.puller_image == IMAGE
    assert settings.gateway.image == IMAGE
    assert with_built_in_images(settings) == Settings()


def test_default_settings_equal_the_kustomize_settings(defaults: list[dict[str, Any]]) -> None:
    assert yaml.safe_load(settings_text(defaults)) == yaml.safe_load(
        (MANIFESTS / "settings.yaml").read_text()
    )


def test_settings_values_reach_the_settings_file() -> None:
    profile = {
        "nodeSelector": {"cloud.google.com/gke-accelerator": "nvidia-l4"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "gpus": 2,
    }
    objects = helm_template(
        "--set-json",
        f"settings.profiles={json.dumps({'gpu-small': profile})}",
        "--set",
        "settings.sharing=require",
        "--set",
        "settings.engines.vllm.gpu=registry.internal/vllm:0.11",
        "--set",
        "image.tag=1.2.3",
    )
    settings = load_settings(settings_text(objects))
    assert settings.profiles == {
        "gpu-small": GpuProfile(
            node_selector={"cloud.google.com/gke-accelerator": "nvidia-l4"},
            tolerations=({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},),
            gpus=2,
        )
    }
    assert settings.sharing.policy == "require"
    assert settings.engines["vllm"].gpu == "registry.internal/vllm:0.11"
    assert settings.engines["vllm"].cpu == Settings().engines["vllm"].cpu
    assert settings.puller_image == "ghcr.io/compose-operator/compose-operator:1.2.3"
    assert container_of(objects)["image"] == "ghcr.io/compose-operator/compose-operator:1.2.3"


def test_an_explicit_puller_image_is_kept() -> None:
    objects = helm_template("--set", "settings.pullerImage=registry.internal/puller:7")
    assert load_settings(settings_text(objects)).puller_image == "registry.internal/puller:7"


def test_a_settings_change_rolls_the_pod(defaults: list[dict[str, Any]]) -> None:
    changed = helm_template("--set", "settings.defaultGpus=2")

    def checksum(objects: list[dict[str, Any]]) -> str:
        template = one_object(objects, "Deployment")["spec"]["template"]
        checksum: str = template["metadata"]["annotations"]["checksum/settings"]
        return checksum

    assert checksum(changed) != checksum(defaults)


def test_watch_namespaces_become_namespace_flags() -> None:
    objects = helm_template("--set", "watchNamespaces={team-a,team-b}")
    args = container_of(objects)["args"]
    assert [a for a in args if a.startswith("--namespace")] == [
        "--namespace=team-a",
        "--namespace=team-b",
    ]


def test_without_the_webhook_there_is_no_webhook_service_or_port() -> None:
    objects = helm_template("--set", "webhook.enabled=false")
    container = container_of(objects)
    assert "--no-webhook" in container["args"]
    assert not [a for a in container["args"] if a.startswith("--webhook")]
    assert [p["name"] for p in container["ports"]] == ["metrics", "health"]
    assert [s["metadata"]["name"] for s in objects_of_kind(objects, "Service")] == [
        "compose-operator-metrics"
    ]


def test_network_policies_setting_grants_network_policies() -> None:
    objects = helm_template("--set", "settings.networkPolicies=true")
    assert grants_of(one_object(objects, "ClusterRole")) == (
        OPERATOR_GRANTS | NETWORK_POLICY_GRANTS | SHARING_GRANTS
    )


def test_service_monitor_only_when_asked(defaults: list[dict[str, Any]]) -> None:
    assert objects_of_kind(defaults, "ServiceMonitor") == []
    objects = helm_template(
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "metrics.serviceMonitor.labels.release=prom",
    )
    monitor = one_object(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "30s"}
    ]
    selected = [
        s["metadata"]["name"]
        for s in objects_of_kind(objects, "Service")
        if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
        and "metrics" in [port["name"] for port in s["spec"]["ports"]]
    ]
    assert selected == ["compose-operator-metrics"]


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        (["rbac.scope=namespace"], "rbac.scope=namespace needs watchNamespaces"),
        (["rbac.scope=cluster-wide"], "at '/rbac/scope': value must be one of"),
        (["watchNamespace=team-a"], "additional properties 'watchNamespace' not allowed"),
        (["settings.sharing=always"], "at '/settings/sharing': value must be one of"),
        (["logFormat=text"], "at '/logFormat': value must be one of"),
    ],
)
def test_wrong_values_are_refused_at_install_time(values: list[str], complaint: str) -> None:
    command = [require_tool("helm"), "template", "x", str(CHART)]
    for value in values:
        command += ["--set", value]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert complaint in result.stderr


def test_scheduling_and_pod_values_reach_the_pod() -> None:
    objects = helm_template(
        "--set",
        "nodeSelector.role=system",
        "--set-json",
        'tolerations=[{"key":"system","operator":"Exists"}]',
        "--set",
        "podLabels.team=platform",
        "--set",
        "logFormat=plain",
    )
    template = one_object(objects, "Deployment")["spec"]["template"]
    assert template["spec"]["nodeSelector"] == {"role": "system"}
    assert template["spec"]["tolerations"] == [{"key": "system", "operator": "Exists"}]
    assert template["metadata"]["labels"]["team"] == "platform"
    assert "--log-format=plain" in container_of(objects)["args"]
