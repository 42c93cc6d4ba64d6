"""The kustomize base (`kubectl apply -k manifests/`): the objects it makes and how they run."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from compose_operator.settings import Settings, load_settings
from tests.packaging_support import (
    MANIFESTS,
    NETWORK_POLICY_GRANTS,
    OPERATOR_GRANTS,
    SHARING_GRANTS,
    grants_of,
    helm_template,
    kustomize_build,
    one_object,
    restricted_violations,
    with_built_in_images,
)

NAMESPACE = "compose-operator"
IMAGE = "ghcr.io/compose-operator/compose-operator:0.1.0"


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return kustomize_build()


def operator_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    containers = one_object(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    container: dict[str, Any] = containers[0]
    return container


def test_base_makes_exactly_the_operator_objects(objects: list[dict[str, Any]]) -> None:
    settings = one_object(objects, "ConfigMap")["metadata"]["name"]
    assert settings.startswith("compose-operator-settings-")
    assert sorted((o["kind"], o["metadata"]["name"]) for o in objects) == [
        ("ClusterRole", "compose-operator"),
        ("ClusterRoleBinding", "compose-operator"),
        ("ConfigMap", settings),
        ("CustomResourceDefinition", "composeapps.compose-operator.io"),
        ("Deployment", "compose-operator"),
        ("Namespace", NAMESPACE),
        ("Role", "compose-operator-leader-election"),
        ("Role", "compose-operator-webhook-cert"),
        ("RoleBinding", "compose-operator-leader-election"),
        ("RoleBinding", "compose-operator-webhook-cert"),
        ("Secret", "compose-operator-webhook-cert"),
        ("Service", "compose-operator-metrics"),
        ("Service", "compose-operator-webhook"),
        ("ServiceAccount", "compose-operator"),
        ("ValidatingWebhookConfiguration", "compose-operator"),
    ]


def test_namespaced_objects_land_in_the_operator_namespace(objects: list[dict[str, Any]]) -> None:
    cluster_scoped = {
        "Namespace",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "ValidatingWebhookConfiguration",
    }
    assert {o["metadata"].get("namespace") for o in objects if o["kind"] not in cluster_scoped} == {
        NAMESPACE
    }


def test_every_object_is_valid_for_kubernetes_1_36(objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        kubernetes_validate.validate(obj, "1.36", strict=True)


def test_the_rbac_is_the_contract(objects: list[dict[str, Any]]) -> None:
    assert grants_of(one_object(objects, "ClusterRole")) == OPERATOR_GRANTS | SHARING_GRANTS


def test_the_operator_pod_is_restricted(objects: list[dict[str, Any]]) -> None:
    pod = one_object(objects, "Deployment")["spec"]["template"]["spec"]
    assert restricted_violations(pod) == []
    assert pod["securityContext"]["runAsUser"] == 65532


def test_the_namespace_enforces_the_restricted_standard(objects: list[dict[str, Any]]) -> None:
    labels = one_object(objects, "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_operator_runs_with_the_contract_flags(objects: list[dict[str, Any]]) -> None:
    container = operator_container(objects)
    assert container["image"] == IMAGE
    assert container["args"] == [
        "run",
        "--settings=/etc/compose-operator/settings.yaml",
        "--metrics-port=8080",
        "--health-port=8081",
        "--log-format=json",
        "--leader-election",
        "--leader-election-id=compose-operator",
        "--webhook",
        "--webhook-port=9443",
        "--webhook-configuration=compose-operator",
        "--webhook-host=compose-operator-webhook.$(POD_NAMESPACE).svc",
        "--webhook-cert-secret=$(POD_NAMESPACE)/compose-operator-webhook-cert",
    ]
    assert container["env"] == [
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "metrics": 8080,
        "health": 8081,
        "webhook": 9443,
    }
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}


def test_two_replicas_elect_a_leader_and_share_one_webhook_certificate_as_the_charts_do(
    objects: list[dict[str, Any]],
) -> None:
    """The chart's defaults are the reference: same replicas, rollout, Lease, election flags
    and certificate Secret. Only who makes the certificate differs (Helm there, the first
    replica here: kustomize cannot make one)."""
    chart = helm_template()
    ours, theirs = one_object(objects, "Deployment"), one_object(chart, "Deployment")
    for deployment in (ours, theirs):
        assert (deployment["spec"]["replicas"], deployment["spec"]["strategy"]["type"]) == (
            2,
            "RollingUpdate",
        )

    def election(deployment: Mapping[str, Any]) -> list[str]:
        args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        return [arg for arg in args if arg.startswith("--leader-election")]

    assert (
        election(ours)
        == election(theirs)
        == [
            "--leader-election",
            "--leader-election-id=compose-operator",
        ]
    )
    # The Lease is in the pod's namespace ($POD_NAMESPACE, the runner's default).
    namespace_env = {
        "name": "POD_NAMESPACE",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
    }
    for deployment in (ours, theirs):
        assert namespace_env in deployment["spec"]["template"]["spec"]["containers"][0]["env"]

    secret, charts_secret = one_object(objects, "Secret"), one_object(chart, "Secret")
    assert secret["metadata"]["name"] == charts_secret["metadata"]["name"]
    assert "data" not in secret, "a re-apply must not reset what the first replica wrote"
    assert sorted(charts_secret["data"]) == ["ca.crt", "tls.crt", "tls.key"]
    name = secret["metadata"]["name"]
    assert f"--webhook-cert-secret=$(POD_NAMESPACE)/{name}" in operator_container(objects)["args"]


def test_the_operator_mounts_the_generated_settings(objects: list[dict[str, Any]]) -> None:
    pod = one_object(objects, "Deployment")["spec"]["template"]["spec"]
    settings = one_object(objects, "ConfigMap")["metadata"]["name"]
    assert {"name": "settings", "configMap": {"name": settings}} in pod["volumes"]
    assert {
        "name": "settings",
        "mountPath": "/etc/compose-operator",
        "readOnly": True,
    } in operator_container(objects)["volumeMounts"]


def test_the_settings_are_the_defaults_with_the_operator_as_puller(
    objects: list[dict[str, Any]],
) -> None:
    text = one_object(objects, "ConfigMap")["data"]["settings.yaml"]
    settings = load_settings(text)
    assert settings.puller_image == operator_container(objects)["image"]
    assert settings.gateway.image == operator_container(objects)["image"]
    assert with_built_in_images(settings) == Settings()


def test_services_reach_metrics_and_the_webhook(objects: list[dict[str, Any]]) -> None:
    services = {o["metadata"]["name"]: o["spec"] for o in objects if o["kind"] == "Service"}
    selector = one_object(objects, "Deployment")["spec"]["selector"]["matchLabels"]
    assert all(spec["selector"] == selector for spec in services.values())
    assert services["compose-operator-metrics"]["ports"] == [
        {"name": "metrics", "port": 8080, "targetPort": "metrics"}
    ]
    assert services["compose-operator-webhook"]["ports"] == [
        {"name": "https", "port": 443, "targetPort": "webhook"},
        {"name": "webhook", "port": 9443, "targetPort": "webhook"},
    ]


def test_network_policies_component_adds_only_that_grant(tmp_path: Path) -> None:
    # kustomize takes only relative paths to other kustomizations.
    base = os.path.relpath(MANIFESTS, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        f"resources: [{base}]\ncomponents: [{base}/components/network-policies]\n"
    )
    role = one_object(kustomize_build(tmp_path), "ClusterRole")
    assert grants_of(role) == OPERATOR_GRANTS | NETWORK_POLICY_GRANTS | SHARING_GRANTS


def namespace_values(node: Any) -> list[str]:
    """Every value of a `namespace` key anywhere in a manifest."""
    if isinstance(node, dict):
        own = [node["namespace"]] if isinstance(node.get("namespace"), str) else []
        return own + [found for value in node.values() for found in namespace_values(value)]
    if isinstance(node, list):
        return [found for item in node for found in namespace_values(item)]
    return []


def test_an_overlays_namespace_moves_every_object_and_every_reference_to_it(
    tmp_path: Path,
) -> None:
    """kustomize's namespace transformer rewrites a binding subject only when it is named
    `default`, and a webhook's Service reference not at all: with only that, the operator in
    `ops` would be bound as a ServiceAccount of `compose-operator`, and the API server would
    call a webhook Service there. The references follow through kustomize's name links."""
    base = os.path.relpath(MANIFESTS, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(f"namespace: ops\nresources: [{base}]\n")
    objects = kustomize_build(tmp_path)
    assert one_object(objects, "Namespace")["metadata"]["name"] == "ops"
    assert {value for obj in objects for value in namespace_values(obj)} == {"ops"}
    bindings = [o for o in objects if o["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    assert len(bindings) == 3
    assert all(
        subject == {"kind": "ServiceAccount", "name": "compose-operator", "namespace": "ops"}
        for binding in bindings
        for subject in binding["subjects"]
    )
    (webhook,) = one_object(objects, "ValidatingWebhookConfiguration")["webhooks"]
    assert webhook["clientConfig"]["service"]["namespace"] == "ops"
