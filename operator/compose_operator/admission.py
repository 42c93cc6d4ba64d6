"""The ValidatingWebhookConfiguration, built in one place. Pure.

The Helm chart and the kustomize manifests create it (tests pin both to `build_configuration`),
and `compose-operator webhook-config` prints it for an operator run outside the cluster. The
operator never creates or rewrites a webhook configuration: at start-up it patches only the CA
bundle of its own certificate into this one object, named in its RBAC by `resourceNames`, so a
compromised operator cannot register a webhook that sees other resources. There is no mutating
webhook: the operator changes nothing at admission.

The webhook only refuses early (`kubectl apply` shows the problems); `failurePolicy: Ignore`
keeps edits possible while the operator is down, and the reconciler refuses the same input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from compose_operator import crd

CONFIGURATION_NAME = "compose-operator"
HANDLER_ID = "validate-compose"
"""The admission handler's id; the webhook server serves it at `/<id>`."""
WEBHOOK_NAME = f"{HANDLER_ID}.{crd.GROUP}"
TIMEOUT_SECONDS = 10
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

ClientConfig = dict[str, Any]


def service_client(namespace: str, service: str, port: int) -> ClientConfig:
    return {
        "service": {
            "namespace": namespace,
            "name": service,
            "port": port,
            "path": f"/{HANDLER_ID}",
        }
    }


def url_client(base_url: str) -> ClientConfig:
    return {"url": f"{base_url.rstrip('/')}/{HANDLER_ID}"}


def build_configuration(
    client: ClientConfig,
    *,
    name: str = CONFIGURATION_NAME,
    namespaces: Sequence[str] = (),
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The configuration, for the ComposeApps of `namespaces` (all when empty)."""
    webhook: dict[str, Any] = {
        "name": WEBHOOK_NAME,
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "failurePolicy": "Ignore",
        "matchPolicy": "Equivalent",
        "timeoutSeconds": TIMEOUT_SECONDS,
        "rules": [
            {
                "apiGroups": [crd.GROUP],
                "apiVersions": [crd.VERSION],
                "resources": [crd.PLURAL],
                "operations": ["CREATE", "UPDATE"],
                "scope": "Namespaced",
            }
        ],
        "clientConfig": client,
    }
    if namespaces:
        webhook["namespaceSelector"] = {
            "matchExpressions": [
                {"key": NAMESPACE_NAME_LABEL, "operator": "In", "values": list(namespaces)}
            ]
        }
    metadata: dict[str, Any] = {"name": name}
    if labels:
        metadata["labels"] = labels
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": metadata,
        "webhooks": [webhook],
    }


def ca_bundle_patch(ca_bundle: str) -> dict[str, Any]:
    """A strategic merge patch setting only the CA bundle (webhooks merge by name)."""
    return {"webhooks": [{"name": WEBHOOK_NAME, "clientConfig": {"caBundle": ca_bundle}}]}
