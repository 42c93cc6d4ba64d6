"""Admission: refusals carry every loader message; certificates made with `cryptography`."""

from __future__ import annotations

import asyncio
import base64
import ssl
from pathlib import Path
from typing import Any

import kopf
import pytest
from cryptography import x509

from compose_operator.settings import Settings, Sharing
from compose_operator.shell import webhook
from compose_operator.shell.kube import ApiError
from compose_operator.shell.reconcile import real_core

GOOD = """\
services:
  web:
    image: nginx
    models: [llm]
models:
  llm:
    model: ai/smollm2
"""


def refusals(spec: dict[str, Any]) -> list[str]:
    return webhook.refusals(
        spec, namespace="team", name="chat", core=real_core(), settings=Settings()
    )


def test_a_valid_compose_file_is_admitted() -> None:
    assert refusals({"compose": GOOD}) == []


def test_an_invalid_compose_file_is_refused_with_every_message() -> None:
    bad = "services:\n  web:\n    models: [nope]\nmodels:\n  llm:\n    context_size: many\n"
    messages = refusals({"compose": bad})
    assert len(messages) >= 2
    assert all(m.startswith("spec.compose: ") for m in messages)
    assert any("models.llm" in m for m in messages)


def test_environment_is_used_for_interpolation() -> None:
    text = GOOD.replace("nginx", "${IMAGE?IMAGE must be set}")
    assert refusals({"compose": text, "environment": {"IMAGE": "nginx"}}) == []
    assert refusals({"compose": text}) != []


def test_compose_from_is_left_to_the_reconciler() -> None:
    assert refusals({"composeFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}) == []


def test_project_files_and_images_are_checked_at_admission() -> None:
    text = "services:\n  agent:\n    build: .\n    env_file: agent.env\n"
    assert (
        refusals(
            {
                "compose": text,
                "files": [{"path": "agent.env", "content": "MODE=chat\n"}],
                "images": {"agent": "registry.local/agent:1"},
            }
        )
        == []
    )
    assert refusals({"compose": text, "images": {"ghost": "x"}}) == [
        "spec.compose: services.agent.env_file: agent.env is not among the project files; carry "
        "it in spec.files (`compose-operator convert` does) (line 4)",
        "spec.images: ghost: an image is given for it, but the project has no such service",
    ]


def test_files_kept_in_configmaps_are_checked_for_shape_only() -> None:
    ref = {"configMapKeyRef": {"name": "big", "key": "db"}}
    assert refusals({"compose": GOOD, "files": [{"path": "db", **ref}]}) == []
    assert refusals({"compose": GOOD, "files": [{"path": "/db", **ref}]}) == [
        "spec.files: /db: a path is relative to the project folder; it must not start with /"
    ]


def test_certificate_names_the_host_and_loopback(tmp_path: Path) -> None:
    certfile, keyfile = webhook.write_certificate("compose-operator.system.svc", tmp_path)
    certificate = x509.load_pem_x509_certificate(certfile.read_bytes())
    sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["compose-operator.system.svc"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert oct(keyfile.stat().st_mode & 0o777) == "0o600"
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)


def test_a_full_service_name_also_gets_the_short_form(tmp_path: Path) -> None:
    certfile, _ = webhook.write_certificate("op.system.svc.cluster.local", tmp_path)
    certificate = x509.load_pem_x509_certificate(certfile.read_bytes())
    sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [
        "op.system.svc.cluster.local",
        "op.system.svc",
    ]


async def first_config(server: webhook.WebhookServer) -> kopf.WebhookClientConfig:
    fn: Any = None  # never called: only the client config is read
    configs: Any = server(fn)
    config: kopf.WebhookClientConfig = await configs.__anext__()
    await configs.aclose()
    return config


def test_a_service_host_yields_a_service_reference(tmp_path: Path) -> None:
    server = webhook.build_server(
        host="compose-operator.system.svc", port=0, directory=tmp_path, addr="127.0.0.1"
    )
    config = asyncio.run(first_config(server))
    assert config["service"] == {
        "namespace": "system",
        "name": "compose-operator",
        "port": 0,
        "path": "",
    }
    assert "url" not in config
    assert config["caBundle"]


def test_an_ip_host_yields_a_url(tmp_path: Path) -> None:
    server = webhook.build_server(host="127.0.0.1", port=0, directory=tmp_path, addr="127.0.0.1")
    config = asyncio.run(first_config(server))
    assert str(config.get("url", "")).startswith("https://127.0.0.1:")


OFFER = "models:\n  llm:\n    model: ai/x\n    x-kubernetes: {offer: {namespaces: [team-a]}}\n"


def test_an_offer_from_a_namespace_that_may_not_offer_is_refused_at_apply_time() -> None:
    trust = Sharing(offer_namespace_selector={"matchLabels": {"offers": "true"}})
    read: list[str] = []

    def labels(namespace: str) -> dict[str, str]:
        read.append(namespace)
        return {"offers": "true"} if namespace == "platform" else {}

    def check(namespace: str) -> list[str]:
        return webhook.refusals(
            {"compose": OFFER},
            namespace=namespace,
            name="models",
            core=real_core(),
            settings=Settings(sharing=trust),
            namespace_labels=labels,
        )

    assert check("platform") == []
    (message,) = check("team-b")
    assert message.startswith(
        "spec.compose: models.llm.x-kubernetes.offer: namespace team-b may not offer models"
    )
    assert read == ["platform", "team-b"]
    assert refusals({"compose": OFFER}) != [], "by default nobody may offer"


def test_the_servers_ca_bundle_is_handed_over_to_be_registered(tmp_path: Path) -> None:
    server = webhook.build_server(host="127.0.0.1", port=0, directory=tmp_path, addr="127.0.0.1")
    seen: list[str] = []

    async def register(bundle: str) -> None:
        seen.append(bundle)

    server.on_ca_bundle = register
    config = asyncio.run(first_config(server))
    assert seen == [config["caBundle"]]
    assert base64.b64decode(seen[0]).startswith(b"-----BEGIN CERTIFICATE-----")


class RecordingPatches:
    def __init__(self, error: ApiError | None = None) -> None:
        self.error = error
        self.calls: list[tuple[str, str, Any, str]] = []

    def patch(
        self, resource: Any, namespace: str, name: str, patch: Any, *, patch_type: str = "merge"
    ) -> dict[str, Any]:
        self.calls.append((resource.plural, name, patch, patch_type))
        if self.error is not None:
            raise self.error
        return {}


def test_only_the_ca_bundle_of_the_named_configuration_is_patched() -> None:
    api = RecordingPatches()
    assert webhook.register_ca_bundle(api, "compose-operator", "Q0E=")  # type: ignore[arg-type]
    assert api.calls == [
        (
            "validatingwebhookconfigurations",
            "compose-operator",
            {
                "webhooks": [
                    {
                        "name": "validate-compose.compose-operator.io",
                        "clientConfig": {"caBundle": "Q0E="},
                    }
                ]
            },
            "strategic",
        )
    ]


def test_a_missing_configuration_is_logged_with_how_to_make_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    api = RecordingPatches(ApiError(404, "NotFound", "not found"))
    assert not webhook.register_ca_bundle(api, "compose-operator", "Q0E=")  # type: ignore[arg-type]
    assert "create it with the Helm chart or manifests/" in caplog.text
