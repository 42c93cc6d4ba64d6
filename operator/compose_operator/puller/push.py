"""Publish a Docker model artifact to a registry (tests, e2e and demos push their own models).

The artifact has the shape Docker Model Runner pushes: an OCI image manifest whose config is
`application/vnd.docker.ai.model.config.v0.1+json`, one uncompressed layer per file, each
named by an `org.opencontainers.image.title` annotation. Blobs are streamed from disk, never
read whole into memory, and a blob the registry already has is not uploaded again.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compose_operator.puller import media
from compose_operator.puller.auth import Credentials
from compose_operator.puller.client import DEFAULT_POLICY, Policy, RegistryClient
from compose_operator.puller.errors import NotFound, PullError

CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class PushFile:
    """A file to push as one layer; `name` (default: the file name) goes in its annotation."""

    path: Path
    media_type: str
    name: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PushedArtifact:
    reference: str
    """`host/repository:tag`, ready for `pull_model` (`--insecure` unless loopback)."""
    manifest_digest: str
    manifest: Mapping[str, Any]


def connect(
    registry_url: str,
    *,
    insecure: bool = True,
    credentials: Credentials | None = None,
    policy: Policy = DEFAULT_POLICY,
) -> RegistryClient:
    """A client for `host:port` or `http(s)://host:port`; an http:// URL means insecure."""
    parsed = urllib.parse.urlsplit(registry_url if "://" in registry_url else "//" + registry_url)
    plain = parsed.scheme == "http" or (insecure and parsed.scheme != "https")
    return RegistryClient(parsed.netloc, insecure=plain, credentials=credentials, policy=policy)


def file_digest(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


def push_blob(client: RegistryClient, repository: str, source: Path | bytes) -> tuple[str, int]:
    """Upload a blob (monolithic POST then PUT); returns (digest, size)."""
    if isinstance(source, bytes):
        digest, size = "sha256:" + hashlib.sha256(source).hexdigest(), len(source)
    else:
        digest, size = file_digest(source), source.stat().st_size
    scope = f"repository:{repository}:pull,push"
    what = f"blob {digest} in {client.registry}/{repository}"
    try:
        client.request("HEAD", f"/v2/{repository}/blobs/{digest}", scope=scope, what=what).close()
    except NotFound:
        pass
    else:
        return digest, size
    with client.request(
        "POST", f"/v2/{repository}/blobs/uploads/", scope=scope, what=what
    ) as started:
        location = started.headers.get("Location")
    if not location:
        raise PullError(f"registry {client.registry} started an upload without a Location")
    # The Location already carries a query (`?_state=...`): append the digest to it.
    url = urllib.parse.urljoin(client.base_url + "/", location)
    url += ("&" if "?" in url else "?") + urllib.parse.urlencode({"digest": digest})
    body = source if isinstance(source, bytes) else (lambda: source.open("rb"))
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
    client.request("PUT", url, scope=scope, what=what, headers=headers, body=body).close()
    return digest, size


def push_manifest(
    client: RegistryClient,
    repository: str,
    tag: str,
    manifest: Mapping[str, Any],
    media_type: str = media.OCI_MANIFEST,
) -> str:
    """PUT a manifest (or an index) under `tag`; returns its digest."""
    body = json.dumps(manifest, separators=(",", ":")).encode()
    client.request(
        "PUT",
        f"/v2/{repository}/manifests/{tag}",
        scope=f"repository:{repository}:pull,push",
        what=f"manifest {client.registry}/{repository}:{tag}",
        headers={"Content-Type": media_type},
        body=body,
    ).close()
    return "sha256:" + hashlib.sha256(body).hexdigest()


def descriptor(
    media_type: str, digest: str, size: int, annotations: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """An OCI descriptor dict, annotations left out when empty."""
    value: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": size}
    if annotations:
        value["annotations"] = dict(annotations)
    return value


def push_model(
    registry_url: str,
    repository: str,
    tag: str,
    files: Sequence[tuple[Path, str] | PushFile],
    *,
    insecure: bool = True,
    config: Mapping[str, Any] | None = None,
    config_media_type: str = media.MODEL_CONFIG_V01,
    name_annotation: str = media.TITLE_ANNOTATION,
    credentials: Credentials | None = None,
) -> PushedArtifact:
    """Push files as a model artifact `registry/repository:tag`.

    `files` are (path, layer media type) pairs or PushFile; the default config names the
    format (`gguf` when a GGUF layer is present, else `safetensors`) and the total size.
    """
    client = connect(registry_url, insecure=insecure, credentials=credentials)
    items = [item if isinstance(item, PushFile) else PushFile(*item) for item in files]
    layers = []
    for item in items:
        digest, size = push_blob(client, repository, item.path)
        annotations = {name_annotation: item.name or item.path.name, **item.annotations}
        layers.append(descriptor(item.media_type, digest, size, annotations))
    config_document = config if config is not None else _default_config(items, layers)
    config_body = json.dumps(config_document, separators=(",", ":")).encode()
    config_digest, config_size = push_blob(client, repository, config_body)
    manifest = {
        "schemaVersion": 2,
        "mediaType": media.OCI_MANIFEST,
        "config": descriptor(config_media_type, config_digest, config_size),
        "layers": layers,
    }
    digest = push_manifest(client, repository, tag, manifest)
    return PushedArtifact(f"{client.registry}/{repository}:{tag}", digest, manifest)


def _default_config(items: Sequence[PushFile], layers: Sequence[Mapping[str, Any]]) -> Any:
    gguf = any(media.role_of(item.media_type, item.name) is media.Role.GGUF for item in items)
    return {
        "config": {
            "format": "gguf" if gguf else "safetensors",
            "size": str(sum(int(layer["size"]) for layer in layers)),
        },
        "rootfs": {"type": "rootfs", "diff_ids": [layer["digest"] for layer in layers]},
    }


def build_config_tar(
    directory: Path, out: Path, *, exclude_suffixes: Sequence[str] = (".safetensors",)
) -> Path:
    """Tar a model directory's small files (config.json, tokenizer, ...) the way Docker
    Model Runner packages them as `application/vnd.docker.ai.vllm.config.tar`.

    Deterministic (sorted names, zero mtimes and owners), so the same files give the same digest.
    """

    def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
        return info

    with tarfile.open(out, "w") as tar:
        for path in sorted(directory.rglob("*")):
            if path.is_file() and not path.name.endswith(tuple(exclude_suffixes)):
                tar.add(path, arcname=path.relative_to(directory).as_posix(), filter=normalise)
    return out
