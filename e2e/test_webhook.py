"""The validating webhook refuses invalid Compose text at `kubectl apply` time.

The operator runs with `--webhook` as the chart's ServiceAccount (RBAC rendered with the
webhook on). The ValidatingWebhookConfiguration is made here as the chart makes it (pointing at
the local process: `compose-operator webhook-config --url`); the operator only patches its CA
bundle into it, and the real API server calls it over TLS with that bundle. `kubectl auth
can-i` shows what the operator may no longer do: create or change any other webhook
configuration.

The certificate is the kustomize manifests' shared one: their empty Secret and its Role are
applied as `kubectl apply -k manifests/` makes them, and the operator fills the Secret
(`--webhook-cert-secret`) and serves what it wrote.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
import yaml

from e2e.cluster_support import Cluster
from e2e.operator_harness import (
    OPERATOR_NAMESPACE,
    REPO,
    OperatorProcess,
    compose_app,
    condition,
    eventually,
    free_port,
    install_crd_and_rbac,
    running_operator,
)

WEBHOOK_NAME = "compose-operator"
CERT_SECRET = "compose-operator-webhook-cert"
OPERATOR = str(REPO / "operator")
INVALID = """
services:
  app: {image: my-app, models: [llm, missing]}
models:
  llm:
    model: ai/smollm2
    contxt_size: 10
    runtime_flags: ["--port", "9000"]
"""


@pytest.fixture(scope="module")
def webhook_operator(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    account = install_crd_and_rbac(cluster, webhook=True)
    port = free_port()
    configuration = subprocess.run(
        [sys.executable, "-m", "compose_operator.cli", "webhook-config", "--url",
         f"https://127.0.0.1:{port}", "--name", WEBHOOK_NAME],
        capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": OPERATOR},
    ).stdout  # fmt: skip
    cluster.kubectl("apply", "-f", "-", input=configuration)
    install_the_manifests_certificate_secret(cluster)
    try:
        with running_operator(
            cluster,
            tmp_path_factory.mktemp("webhook"),
            account=account,
            extra_args=(
                "--webhook",
                "--webhook-host",
                "127.0.0.1",
                "--webhook-port",
                str(port),
                "--webhook-cert-secret",
                f"{OPERATOR_NAMESPACE}/{CERT_SECRET}",
            ),
            name="webhook-operator",
        ) as process:
            eventually(
                lambda: cluster.get_json("validatingwebhookconfiguration", WEBHOOK_NAME)[
                    "webhooks"
                ][0]["clientConfig"].get("caBundle"),
                what="the operator to patch its CA bundle into the configuration",
            )
            yield process
    finally:
        cluster.kubectl(
            "delete", "validatingwebhookconfiguration", WEBHOOK_NAME, "--ignore-not-found",
            check=False,
        )  # fmt: skip


def install_the_manifests_certificate_secret(cluster: Cluster) -> None:
    """The empty Secret and the Role that lets the operator fill it, from `kubectl kustomize
    manifests/` (their namespace is the harness's operator namespace); emptied first."""
    built = cluster.kubectl("kustomize", str(REPO / "manifests")).stdout
    documents = [
        doc
        for doc in yaml.safe_load_all(built)
        if doc
        and doc["kind"] in ("Secret", "Role", "RoleBinding")
        and doc["metadata"]["name"] == CERT_SECRET
    ]
    assert sorted(doc["kind"] for doc in documents) == ["Role", "RoleBinding", "Secret"]
    assert {doc["metadata"]["namespace"] for doc in documents} == {OPERATOR_NAMESPACE}
    cluster.kubectl("-n", OPERATOR_NAMESPACE, "delete", "secret", CERT_SECRET, "--ignore-not-found")
    cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(documents))


def test_the_operator_filled_the_empty_secret_and_registered_its_ca(
    cluster: Cluster, webhook_operator: OperatorProcess
) -> None:
    """What a second replica reads and serves too (tests/test_shell_webhook.py): so the one CA
    bundle matches every replica."""
    secret = cluster.get_json("-n", OPERATOR_NAMESPACE, "secret", CERT_SECRET)
    assert sorted(secret["data"]) == ["ca.crt", "tls.crt", "tls.key"]
    configuration = cluster.get_json("validatingwebhookconfiguration", WEBHOOK_NAME)
    assert configuration["webhooks"][0]["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]


@pytest.mark.parametrize(
    ("verb", "resource", "namespace", "allowed"),
    [
        ("patch", f"secrets/{CERT_SECRET}", OPERATOR_NAMESPACE, True),
        ("patch", "secrets/another-secret", OPERATOR_NAMESPACE, False),
        ("create", "secrets", OPERATOR_NAMESPACE, False),
        ("patch", f"secrets/{CERT_SECRET}", "default", False),
    ],
)
def test_the_operator_may_write_its_certificate_secret_and_no_other(
    cluster: Cluster,
    webhook_operator: OperatorProcess,
    verb: str,
    resource: str,
    namespace: str,
    allowed: bool,
) -> None:
    result = cluster.kubectl(
        "auth", "can-i", verb, resource, "-n", namespace, f"--as={webhook_operator.user}",
        check=False,
    )  # fmt: skip
    assert result.stdout.strip() == ("yes" if allowed else "no"), (verb, resource, result)


def refusal(
    cluster: Cluster, namespace: str, manifest: str, what: str
) -> subprocess.CompletedProcess[str]:
    """`kubectl apply` of `manifest`, tried until the webhook refuses it (it starts answering a
    moment after the operator does): the refused call, whose stderr carries the reasons."""

    def attempt() -> subprocess.CompletedProcess[str] | None:
        result = cluster.kubectl("-n", namespace, "apply", "-f", "-", input=manifest, check=False)
        return result if result.returncode != 0 else None

    return eventually(attempt, what=what)


def test_webhook_refuses_invalid_compose_with_the_loaders_messages(
    cluster: Cluster, webhook_operator: OperatorProcess, namespace: str
) -> None:
    refused = refusal(
        cluster, namespace, compose_app("bad", INVALID), "the webhook to refuse the app"
    )
    message = refused.stderr
    assert "denied the request" in message, message
    assert "models.llm.contxt_size: unknown key 'contxt_size'; did you mean 'context_size'?" in (
        message
    )
    assert 'service "app" refers to undefined model missing' in message
    result = cluster.kubectl("-n", namespace, "get", "composeapp", "bad", check=False)
    assert result.returncode != 0


def test_webhook_admits_valid_compose(
    cluster: Cluster, webhook_operator: OperatorProcess, namespace: str
) -> None:
    valid = (
        "services:\n  app: {image: my-app, models: [llm]}\nmodels:\n  llm: {model: ai/smollm2}\n"
    )
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=compose_app("good", valid))

    def ready() -> bool:
        app = cluster.get_json("-n", namespace, "composeapp", "good")
        return condition(app, "Ready").get("status") == "True"

    eventually(ready, timeout=90, what="the admitted app to become Ready")


OFFER = """
models:
  llm:
    model: ai/smollm2
    x-kubernetes: {offer: {namespaces: [team-a]}}
"""


def test_an_offer_from_a_namespace_that_may_not_offer_is_refused(
    cluster: Cluster, webhook_operator: OperatorProcess, namespace: str
) -> None:
    """The kwok settings name no namespace that may offer models (sharing.offerNamespaces):
    an offer is refused at apply time, before it could capture anyone's traffic."""
    refused = refusal(
        cluster, namespace, compose_app("offer", OFFER), "the webhook to refuse the offer"
    )
    assert (
        f"models.llm.x-kubernetes.offer: namespace {namespace} may not offer models"
        in refused.stderr
    ), refused.stderr
    assert cluster.kubectl("-n", namespace, "get", "composeapp", "offer", check=False).returncode


@pytest.mark.parametrize(
    ("verb", "resource", "allowed"),
    [
        ("patch", f"validatingwebhookconfigurations/{WEBHOOK_NAME}", True),
        ("create", "validatingwebhookconfigurations", False),
        ("patch", "validatingwebhookconfigurations/another-teams-webhook", False),
        ("delete", f"validatingwebhookconfigurations/{WEBHOOK_NAME}", False),
        ("create", "mutatingwebhookconfigurations", False),
        ("patch", "mutatingwebhookconfigurations/anything", False),
        ("list", "mutatingwebhookconfigurations", False),
    ],
)
def test_the_operator_may_register_its_ca_bundle_and_nothing_more(
    cluster: Cluster, webhook_operator: OperatorProcess, verb: str, resource: str, allowed: bool
) -> None:
    """Issue 12: with create and patch on every webhook configuration, a compromised operator
    amounted to cluster-admin."""
    result = cluster.kubectl(
        "auth", "can-i", verb, resource, f"--as={webhook_operator.user}", check=False
    )
    assert result.stdout.strip() == ("yes" if allowed else "no"), (verb, resource, result)
    assert webhook_operator.user.startswith(f"system:serviceaccount:{OPERATOR_NAMESPACE}:")


def test_no_mutating_webhook_is_registered(
    cluster: Cluster, webhook_operator: OperatorProcess
) -> None:
    found = cluster.get_json("mutatingwebhookconfigurations")["items"]
    assert [m["metadata"]["name"] for m in found if "compose" in m["metadata"]["name"]] == []
