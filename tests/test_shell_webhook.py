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
from compose_operator.shell import kube, webhook
from compose_operator.shell.kube import ApiError, Manifest, PatchType, Resource
from compose_operator.shell.reconcile import real_core
from tests.shell_fakes import FakeApi, UnexpectedApi

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


SECRET = ("ops", "co-webhook-cert")
HOST = "co-webhook.ops.svc"


def secret_api(data: dict[str, str] | None = None) -> FakeApi:
    api = FakeApi()
    body: dict[str, Any] = {"metadata": {"name": SECRET[1], "namespace": SECRET[0]}}
    if data is not None:
        body["data"] = data
    api.seed(kube.SECRETS, body)
    return api


def test_an_empty_secret_is_filled_once_and_every_replica_serves_what_it_holds(
    tmp_path: Path,
) -> None:
    api = secret_api()
    first = webhook.shared_certificate(api, *SECRET, HOST)
    second = webhook.shared_certificate(api, *SECRET, HOST)
    assert first == second
    (patch,) = api.writes()
    assert (patch.verb, patch.resource, patch.name) == ("patch", "secrets", SECRET[1])
    assert patch.body["metadata"] == {"resourceVersion": "1"}, "only the version read"
    stored = api.live(kube.SECRETS, *SECRET)
    assert stored is not None
    assert {k: base64.b64decode(v) for k, v in stored["data"].items()} == first
    assert first["ca.crt"] == first["tls.crt"], "self-signed: its own CA bundle"
    certificate = x509.load_pem_x509_certificate(first["tls.crt"])
    sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [HOST]
    certfile, keyfile = webhook.write_files(second, tmp_path)
    assert oct(keyfile.stat().st_mode & 0o777) == "0o600"
    ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(certfile, keyfile)


class SecondToWrite(UnexpectedApi):
    """Another replica fills the Secret between this one's read and its write."""

    def __init__(self, api: FakeApi) -> None:
        self.api = api
        self.winner: dict[str, bytes] = {}

    def get(self, resource: Any, namespace: str, name: str) -> Any:
        return self.api.get(resource, namespace, name)

    def patch(self, resource: Any, namespace: str, name: str, patch: Any, **_: Any) -> Any:
        if not self.winner:
            self.winner = webhook.shared_certificate(self.api, namespace, name, HOST)
            raise ApiError(409, "Conflict", "the object has been modified")
        raise AssertionError("written twice")


def test_of_two_replicas_filling_at_once_the_second_serves_the_firsts() -> None:
    api = SecondToWrite(secret_api())
    assert webhook.shared_certificate(api, *SECRET, HOST) == api.winner
    assert len(api.api.writes()) == 1


def test_a_filled_secret_is_served_as_it_is_and_never_written() -> None:
    """cert-manager's, or the chart's: whatever the type, the three files are all it takes."""
    files = {"tls.crt": b"CERT", "tls.key": b"KEY", "ca.crt": b"CA"}
    api = secret_api({k: base64.b64encode(v).decode() for k, v in files.items()})
    assert webhook.shared_certificate(api, *SECRET, HOST) == files
    assert api.writes() == []


@pytest.mark.parametrize(
    ("api", "message"),
    [
        (FakeApi(), "Secret ops/co-webhook-cert does not exist"),
        (
            secret_api({"tls.crt": "Q0VSVA==", "tls.key": ""}),
            "Secret ops/co-webhook-cert has no tls.key, ca.crt: give it all of tls.crt, "
            "tls.key, ca.crt, or empty it and the operator fills it",
        ),
    ],
    ids=["missing", "partly-filled"],
)
def test_a_secret_the_operator_cannot_use_is_named_and_left_alone(
    api: FakeApi, message: str
) -> None:
    with pytest.raises(webhook.CertificateError) as caught:
        webhook.shared_certificate(api, *SECRET, HOST)
    assert str(caught.value).startswith(message)
    assert api.writes() == []


def test_a_secret_the_operator_may_not_write_is_an_error_naming_it() -> None:
    class Forbidden(SecondToWrite):
        def patch(self, resource: Any, namespace: str, name: str, patch: Any, **_: Any) -> Any:
            raise ApiError(403, "Forbidden", "cannot patch resource secrets")

    with pytest.raises(webhook.CertificateError) as caught:
        webhook.shared_certificate(Forbidden(secret_api()), *SECRET, HOST)
    assert str(caught.value) == (
        "cannot fill Secret ops/co-webhook-cert: 403 Forbidden: cannot patch resource secrets"
    )


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


class RecordingPatches(UnexpectedApi):
    def __init__(self, error: ApiError | None = None) -> None:
        self.error = error
        self.calls: list[tuple[str, str, Any, str]] = []

    def patch(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        patch: Any,
        *,
        patch_type: PatchType = "merge",
        subresource: str = "",
    ) -> Manifest:
        self.calls.append((resource.plural, name, patch, patch_type))
        if self.error is not None:
            raise self.error
        return {}


def test_only_the_ca_bundle_of_the_named_configuration_is_patched() -> None:
    api = RecordingPatches()
    assert webhook.register_ca_bundle(api, "compose-operator", "Q0E=")
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
    assert not webhook.register_ca_bundle(api, "compose-operator", "Q0E=")
    assert "create it with the Helm chart or manifests/" in caplog.text
