"""The validating admission webhook: a ComposeApp whose Compose file will not plan is refused.

kopf's own self-signed certificate path (certbuilder → oscrypto) fails on OpenSSL 3, so the
certificate is made here with `cryptography` (an EC P-256 key, SANs for the webhook host and
127.0.0.1) and handed to kopf's `WebhookServer`. The ValidatingWebhookConfiguration is the
chart's or the manifests' (`compose_operator.admission`); kopf's managed configurations are
off (they would need `create` on every webhook configuration and add a mutating one), and the
server hands its CA bundle to `register_ca_bundle`, which patches only that into the one
configuration the RBAC names.

Several replicas must serve one certificate, or the one CA bundle in the configuration matches
only the replica that registered last. The chart makes it with Helm and mounts it
(`--webhook-cert-dir`); kustomize cannot make one, so the manifests ship the Secret empty and the
first replica to start fills it (`--webhook-cert-secret`, `shared_certificate`), as OPA
Gatekeeper's manifests and its cert-controller do.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import kopf
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from compose_operator import admission
from compose_operator.compose import projectfiles
from compose_operator.errors import ComposeError
from compose_operator.settings import Settings
from compose_operator.shell import kube
from compose_operator.shell.kube import Api, ApiError
from compose_operator.shell.reconcile import Core

logger = logging.getLogger(__name__)

SERVICE_HOST = re.compile(r"^(?P<name>[a-z0-9-]+)\.(?P<namespace>[a-z0-9-]+)\.svc(\..+)?$")
CERT_DAYS = 3650
CERT_FILES = ("tls.crt", "tls.key", "ca.crt")
"""A certificate as a Secret holds it (and mounts it): the chart's, cert-manager's, ours."""
FILL_ATTEMPTS = 3
"""Conflicts while filling the shared Secret: another replica, or another writer, was first."""


class CertificateError(Exception):
    """The shared certificate's Secret cannot be used: the operator cannot serve the webhook."""


def refusals(
    spec: Mapping[str, Any],
    *,
    namespace: str,
    name: str,
    core: Core,
    settings: Settings,
    namespace_labels: Callable[[str], Mapping[str, str]] | None = None,
) -> list[str]:
    """Every problem that would stop this spec from planning; empty when it plans.

    A `composeFrom` spec, or `spec.files` entries kept in ConfigMaps, are checked by the
    reconciler (their ConfigMaps may not exist yet); here only their shape is.
    `namespace_labels` reads a Namespace's labels, which decide whether an app there may
    offer models when the settings name offering namespaces by a selector.
    """
    entries = spec.get("files")
    references = projectfiles.references(entries)
    try:
        if references or "compose" not in spec:
            projectfiles.from_spec(entries, dict.fromkeys(references, b""))
            return []
        text = spec["compose"]
        files = projectfiles.from_spec(
            entries, compose_bytes=len(text.encode("utf-8", "surrogatepass"))
        )
        project = core.load_project(
            text,
            file="spec.compose",
            environment=spec.get("environment", {}),
            files=files,
            images=spec.get("images", {}),
        )
        labels = None
        selector = settings.sharing.offer_namespace_selector
        offers = any(model.kubernetes.offer for model in project.models.values())
        if offers and selector is not None and namespace_labels is not None:
            labels = namespace_labels(namespace)
        core.plan(
            project,
            app=name,
            namespace=namespace,
            settings=settings,
            file="spec.compose",
            namespace_labels=labels,
        )
    except ComposeError as error:
        return error.messages
    return []


def _sans(host: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    try:
        names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        names.append(x509.DNSName(host))
        match = SERVICE_HOST.match(host)
        if match:
            names.append(x509.DNSName(f"{match['name']}.{match['namespace']}.svc"))
    return list(dict.fromkeys(names))


def write_certificate(host: str, directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for `host`; returns (certfile, keyfile)."""
    certificate, key = new_certificate(host)
    return write_files({"tls.crt": certificate, "tls.key": key}, directory)


def write_files(files: Mapping[str, bytes], directory: Path) -> tuple[Path, Path]:
    """`tls.crt`, `tls.key` (readable by the owner only) and any others into `directory`;
    returns (certfile, keyfile)."""
    for name, content in files.items():
        (directory / name).write_bytes(content)
    keyfile = directory / "tls.key"
    keyfile.chmod(0o600)
    return directory / "tls.crt", keyfile


def new_certificate(host: str) -> tuple[bytes, bytes]:
    """A self-signed certificate for `host` (its own CA), and its key: PEM both."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
        .add_extension(x509.SubjectAlternativeName(_sans(host)), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return (
        certificate.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def shared_certificate(api: Api, namespace: str, name: str, host: str) -> dict[str, bytes]:
    """The certificate every replica serves, from the Secret `namespace/name`.

    An empty Secret is filled first, with a new certificate for `host`, by a patch that holds
    only while the Secret is still the version read: of two replicas starting at once, one
    writes and the other reads what it wrote. A Secret with only some of the files is someone
    else's (cert-manager's, a user's) and is never overwritten.
    """
    where = f"Secret {namespace}/{name}"
    for _ in range(FILL_ATTEMPTS):
        secret = api.get(kube.SECRETS, namespace, name)
        if secret is None:
            raise CertificateError(
                f"{where} does not exist: the webhook certificate is kept there (the manifests "
                "create it empty; the operator fills it)"
            )
        data = secret.get("data") or {}
        present = [file for file in CERT_FILES if data.get(file)]
        if present == list(CERT_FILES):
            return {file: base64.b64decode(data[file]) for file in CERT_FILES}
        if present:
            missing = ", ".join(file for file in CERT_FILES if file not in present)
            raise CertificateError(
                f"{where} has no {missing}: give it all of {', '.join(CERT_FILES)}, or empty it "
                "and the operator fills it"
            )
        certificate, key = new_certificate(host)
        files = {"tls.crt": certificate, "tls.key": key, "ca.crt": certificate}
        patch = {
            "metadata": {"resourceVersion": secret["metadata"]["resourceVersion"]},
            "data": {file: base64.b64encode(content).decode() for file, content in files.items()},
        }
        try:
            api.patch(kube.SECRETS, namespace, name, patch)
        except ApiError as error:
            if error.status != 409:
                raise CertificateError(f"cannot fill {where}: {error}") from error
            continue  # written meanwhile: read it again
        logger.info("made the webhook certificate for %s and kept it in %s", host, where)
        return files
    raise CertificateError(f"{where} changed {FILL_ATTEMPTS} times while it was being filled")


class WebhookServer(kopf.WebhookServer):
    """kopf's server, addressed through a Service when the host names one; each CA bundle it
    serves with goes to `on_ca_bundle` (base64 PEM, as a webhook configuration holds it)."""

    on_ca_bundle: Callable[[str], Awaitable[None]] | None = None

    async def __call__(self, fn: kopf.WebhookFn) -> AsyncIterator[kopf.WebhookClientConfig]:
        match = SERVICE_HOST.match(self.host or "")
        async for config in super().__call__(fn):
            bundle = config.get("caBundle")
            if bundle and self.on_ca_bundle is not None:
                await self.on_ca_bundle(bundle)
            if match is None:
                yield config
                continue
            service = kopf.WebhookClientConfigService(
                namespace=match["namespace"], name=match["name"], port=self.port, path=""
            )
            yield kopf.WebhookClientConfig(caBundle=config.get("caBundle"), service=service)


def build_server(
    *,
    host: str,
    port: int,
    directory: Path,
    addr: str = "0.0.0.0",
    cert_dir: Path | None = None,
) -> WebhookServer:
    """With `cert_dir` (tls.crt, tls.key, ca.crt, as a Secret mounts them), every replica
    serves the same certificate and registers the same CA bundle; else a self-signed one."""
    if cert_dir is not None:
        return WebhookServer(
            addr=addr,
            port=port,
            host=host,
            certfile=cert_dir / "tls.crt",
            pkeyfile=cert_dir / "tls.key",
            cafile=cert_dir / "ca.crt",
        )
    certfile, keyfile = write_certificate(host, directory)
    return WebhookServer(addr=addr, port=port, host=host, certfile=certfile, pkeyfile=keyfile)


def register_ca_bundle(api: Api, name: str, bundle: str) -> bool:
    """Patch `bundle` into the webhook configuration `name`; False (logged) when it cannot:
    a missing configuration (the chart or manifests make it) or RBAC. The webhook is then
    inactive (failurePolicy Ignore) and the reconciler still refuses what it would have."""
    try:
        api.patch(
            kube.VALIDATING_WEBHOOKS,
            "",
            name,
            admission.ca_bundle_patch(bundle),
            patch_type="strategic",
        )
    except ApiError as error:
        hint = (
            "create it with the Helm chart or manifests/ (the operator never creates one)"
            if error.status == 404
            else "the operator's RBAC must allow patch on it by resourceNames"
        )
        logger.error(
            "cannot register the webhook's CA bundle in ValidatingWebhookConfiguration %s: %s; %s",
            name,
            error,
            hint,
        )
        return False
    logger.info("registered the webhook's CA bundle in ValidatingWebhookConfiguration %s", name)
    return True
