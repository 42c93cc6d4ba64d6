"""The operator's RBAC, in the kustomize manifests and in the Helm chart, is the contract list:
with the webhook, only `patch` of its own ValidatingWebhookConfiguration by name.

Least privilege cuts both ways: a grant beyond the list is a permission nobody reviewed, and a
missing one breaks the operator only in a real cluster. Both fail here.
"""

from __future__ import annotations

import yaml

from tests.packaging_support import (
    CONTRACT_DISCOVERY,
    CONTRACT_NAMESPACED,
    MANIFESTS,
    OPERATOR_GRANTS,
    SHARING_GRANTS,
    SHARING_READ_ONLY,
    WEBHOOK,
    grants_of,
    helm_template,
    objects_of_kind,
    one_object,
)


def test_manifests_cluster_role_is_what_the_operator_uses() -> None:
    objects = list(yaml.safe_load_all((MANIFESTS / "rbac.yaml").read_text()))
    assert grants_of(one_object(objects, "ClusterRole")) == OPERATOR_GRANTS | SHARING_GRANTS


LEASE_GRANTS = {
    ("coordination.k8s.io", "leases", "create"),
    ("coordination.k8s.io", "leases/compose-operator", "get"),
    ("coordination.k8s.io", "leases/compose-operator", "patch"),
}
"""Leader election: create the one Lease (create cannot be narrowed to a name), then only it."""


def test_manifests_roles_are_the_charts_lease_and_the_one_certificate_secret() -> None:
    """In the operator's namespace only: the chart's Lease Role word for word, and the empty
    webhook certificate Secret the first replica fills (Helm fills the chart's)."""
    objects = list(yaml.safe_load_all((MANIFESTS / "rbac.yaml").read_text()))
    roles = {r["metadata"]["name"]: r for r in objects_of_kind(objects, "Role")}
    charts = {r["metadata"]["name"]: r for r in objects_of_kind(helm_template(), "Role")}
    assert sorted(roles) == ["compose-operator-leader-election", "compose-operator-webhook-cert"]
    lease = roles["compose-operator-leader-election"]
    assert lease["rules"] == charts["compose-operator-leader-election"]["rules"]
    assert grants_of(lease) == LEASE_GRANTS
    assert grants_of(roles["compose-operator-webhook-cert"]) == {
        ("", "secrets/compose-operator-webhook-cert", "get"),
        ("", "secrets/compose-operator-webhook-cert", "patch"),
    }
    bindings = objects_of_kind(objects, "RoleBinding")
    assert sorted((b["roleRef"]["kind"], b["roleRef"]["name"]) for b in bindings) == [
        ("Role", name) for name in sorted(roles)
    ]
    assert all(
        b["subjects"]
        == [{"kind": "ServiceAccount", "name": "compose-operator", "namespace": "compose-operator"}]
        for b in bindings
    )


def test_chart_sharing_never_drops_the_namespace_grant() -> None:
    objects = helm_template("--set", "settings.sharing=never")
    assert grants_of(one_object(objects, "ClusterRole")) == OPERATOR_GRANTS


def test_manifests_bind_the_role_to_the_operator_service_account() -> None:
    objects = list(yaml.safe_load_all((MANIFESTS / "rbac.yaml").read_text()))
    binding = one_object(objects, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "compose-operator",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "compose-operator", "namespace": "compose-operator"}
    ]


def test_chart_cluster_scope_is_what_the_operator_uses() -> None:
    objects = helm_template()
    assert grants_of(one_object(objects, "ClusterRole")) == OPERATOR_GRANTS | SHARING_GRANTS
    assert [r["metadata"]["name"] for r in objects_of_kind(objects, "Role")] == [
        "compose-operator-leader-election"
    ], "beyond the ClusterRole, only the Lease (tests/test_packaging_chart.py)"
    binding = one_object(objects, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "compose-operator", "namespace": "operators"}
    ]


def test_chart_without_webhook_drops_only_the_webhook_grant() -> None:
    objects = helm_template("--set", "webhook.enabled=false")
    assert grants_of(one_object(objects, "ClusterRole")) == (
        OPERATOR_GRANTS - WEBHOOK | SHARING_GRANTS
    )


def test_chart_namespace_scope_grants_per_namespace() -> None:
    objects = helm_template(
        "--set", "rbac.scope=namespace", "--set", "watchNamespaces={team-a,team-b}"
    )
    assert grants_of(one_object(objects, "ClusterRole")) == (
        CONTRACT_DISCOVERY | WEBHOOK | SHARING_READ_ONLY
    )
    roles = [
        r for r in objects_of_kind(objects, "Role") if r["metadata"]["name"] == "compose-operator"
    ]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert all(grants_of(role) == CONTRACT_NAMESPACED for role in roles)
    bindings = objects_of_kind(objects, "RoleBinding")
    assert sorted((b["metadata"]["namespace"], b["roleRef"]["name"]) for b in bindings) == [
        ("operators", "compose-operator-leader-election"),
        ("team-a", "compose-operator"),
        ("team-b", "compose-operator"),
    ]
    assert all(
        b["subjects"]
        == [{"kind": "ServiceAccount", "name": "compose-operator", "namespace": "operators"}]
        for b in bindings
    )
