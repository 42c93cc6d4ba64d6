"""The chart and the manifests create the ValidatingWebhookConfiguration; the operator only
patches its CA bundle (issue 12: its RBAC let it create any webhook configuration)."""

from __future__ import annotations

from typing import Any

import yaml

from compose_operator import admission
from compose_operator.cli import main
from tests.packaging_support import (
    MANIFESTS,
    grants_of,
    helm_template,
    kustomize_build,
    objects_of_kind,
    one_object,
)

ADMISSION = "admissionregistration.k8s.io"


def configuration_of(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return dict(one_object(objects, "ValidatingWebhookConfiguration"))


def test_the_chart_registers_exactly_the_operators_configuration() -> None:
    found = configuration_of(helm_template())
    expected = admission.build_configuration(
        admission.service_client("operators", "compose-operator-webhook", 443)
    )
    assert found["metadata"]["name"] == expected["metadata"]["name"] == "compose-operator"
    assert found["webhooks"] == expected["webhooks"]


def test_the_chart_limits_the_webhook_to_the_watched_namespaces() -> None:
    found = configuration_of(helm_template("--set", "watchNamespaces={team-a,team-b}"))
    expected = admission.build_configuration(
        admission.service_client("operators", "compose-operator-webhook", 443),
        namespaces=("team-a", "team-b"),
    )
    assert found["webhooks"] == expected["webhooks"]


def test_without_the_webhook_the_chart_registers_none() -> None:
    assert objects_of_kind(helm_template("--set", "webhook.enabled=false"), "ValidatingWebhook"
                           "Configuration") == []  # fmt: skip


def test_the_manifests_register_what_webhook_config_prints(capsys: Any) -> None:
    written = yaml.safe_load((MANIFESTS / "webhook.yaml").read_text())
    assert (
        main(["webhook-config", "--service", "compose-operator/compose-operator-webhook:443"]) == 0
    )
    printed = yaml.safe_load(capsys.readouterr().out)
    assert written["webhooks"] == printed["webhooks"]
    assert written["metadata"]["name"] == printed["metadata"]["name"]
    assert configuration_of(kustomize_build())["webhooks"] == printed["webhooks"]


def test_no_mutating_webhook_and_no_way_to_register_one() -> None:
    for objects in (
        helm_template(),
        list(yaml.safe_load_all((MANIFESTS / "rbac.yaml").read_text())),
    ):
        assert objects_of_kind(objects, "MutatingWebhookConfiguration") == []
        grants = grants_of(one_object(objects, "ClusterRole"))
        admission_grants = sorted(g for g in grants if g[0] == ADMISSION)
        assert admission_grants == [
            (ADMISSION, "validatingwebhookconfigurations/compose-operator", "patch")
        ]


def test_the_operator_is_told_which_configuration_is_its_own() -> None:
    objects = helm_template("--set", "fullnameOverride=platform-operator")
    name = configuration_of(objects)["metadata"]["name"]
    assert name == "platform-operator"
    deployment = one_object(objects, "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--webhook-configuration={name}" in args
    grants = grants_of(one_object(objects, "ClusterRole"))
    assert (ADMISSION, f"validatingwebhookconfigurations/{name}", "patch") in grants


def test_the_ca_bundle_patch_touches_only_the_ca_bundle() -> None:
    assert admission.ca_bundle_patch("Q0E=") == {
        "webhooks": [
            {"name": "validate-compose.compose-operator.io", "clientConfig": {"caBundle": "Q0E="}}
        ]
    }
