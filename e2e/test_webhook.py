"""The validating webhook refuses invalid Compose text at `kubectl apply` time.

The operator runs with `--webhook` as the chart's ServiceAccount (RBAC rendered with the
webhook on); the real API server calls it over TLS with the CA bundle the operator registered.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from operator_harness import (
    OperatorProcess,
    compose_app,
    condition,
    eventually,
    free_port,
    install_crd_and_rbac,
    running_operator,
)

WEBHOOK_NAME = "compose-operator.io"
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
    cluster: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    account = install_crd_and_rbac(cluster, webhook=True)
    port = free_port()
    try:
        with running_operator(
            cluster,
            tmp_path_factory.mktemp("webhook"),
            account=account,
            extra_args=("--webhook", "--webhook-host", "127.0.0.1", "--webhook-port", str(port)),
            name="webhook-operator",
        ) as process:
            eventually(
                lambda: (
                    cluster.kubectl(
                        "get", "validatingwebhookconfiguration", WEBHOOK_NAME, check=False
                    ).returncode
                    == 0
                ),
                what="the operator to register its webhook",
            )
            yield process
    finally:
        # A registration left pointing at a stopped process would refuse every later apply.
        for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
            cluster.kubectl("delete", kind, WEBHOOK_NAME, "--ignore-not-found", check=False)


def test_webhook_refuses_invalid_compose_with_the_loaders_messages(
    cluster: Any, webhook_operator: OperatorProcess, namespace: str
) -> None:
    refused = eventually(
        lambda: (
            (
                result := cluster.kubectl(
                    "-n",
                    namespace,
                    "apply",
                    "-f",
                    "-",
                    input=compose_app("bad", INVALID),
                    check=False,
                )
            ).returncode
            != 0
            and result
        ),
        what="the webhook to refuse the app",
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
    cluster: Any, webhook_operator: OperatorProcess, namespace: str
) -> None:
    valid = (
        "services:\n  app: {image: my-app, models: [llm]}\nmodels:\n  llm: {model: ai/smollm2}\n"
    )
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=compose_app("good", valid))

    def ready() -> bool:
        app = cluster.get_json("-n", namespace, "composeapp", "good")
        return condition(app, "Ready").get("status") == "True"

    eventually(ready, timeout=90, what="the admitted app to become Ready")
