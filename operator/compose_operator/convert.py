"""`convert`: a Compose project folder as a ComposeApp (and a kustomization when asked).

The ComposeApp carries the Compose file verbatim and every project file it uses in
`spec.files`; files too large or binary for the ComposeApp travel in ConfigMaps of their own,
written beside it in the same YAML stream (or made by a kustomize `configMapGenerator`).
Secrets' files are never read: the user makes the Secrets (`kubectl create secret`).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from compose_operator.project import ProjectFile

CLIENT_SIDE_APPLY_MAX = 256 << 10
"""kubectl's client-side apply stores each object in the last-applied-configuration
annotation, which Kubernetes limits to 256 KiB; larger streams need server-side apply."""
KUSTOMIZE_FILES = "files"
"""The folder of a kustomization that holds the files its configMapGenerator reads."""


def spec_files(placed: Mapping[str, ProjectFile]) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for path, file in sorted(placed.items()):
        entry: dict[str, Any] = {"path": path}
        if file.config_map is None:
            entry["content"] = file.content
        else:
            name, key = file.config_map
            entry["configMapKeyRef"] = {"name": name, "key": key}
        if file.mode is not None:
            entry["mode"] = file.mode
        entries.append(entry)
    return entries


def build_app(
    *,
    name: str,
    namespace: str | None,
    compose: str,
    environment: Mapping[str, str],
    images: Mapping[str, str],
    placed: Mapping[str, ProjectFile],
) -> dict[str, Any]:
    metadata: dict[str, str] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    spec: dict[str, Any] = {"compose": compose}
    if placed:
        spec["files"] = spec_files(placed)
    if images:
        spec["images"] = dict(sorted(images.items()))
    if environment:
        spec["environment"] = dict(environment)
    return {
        "apiVersion": "compose-operator.io/v1alpha1",
        "kind": "ComposeApp",
        "metadata": metadata,
        "spec": spec,
    }


def own_config_maps(
    placed: Mapping[str, ProjectFile], namespace: str | None
) -> list[dict[str, Any]]:
    """The ConfigMaps holding files that travel on their own, one per file."""
    maps: list[dict[str, Any]] = []
    for file in sorted(placed.values(), key=lambda f: f.path):
        if file.config_map is None:
            continue
        name, key = file.config_map
        metadata: dict[str, str] = {"name": name}
        if namespace:
            metadata["namespace"] = namespace
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}
        if isinstance(file.content, bytes):
            body["binaryData"] = {key: base64.b64encode(file.content).decode("ascii")}
        else:
            body["data"] = {key: file.content}
        maps.append(body)
    return maps


KUSTOMIZE_CONFIG = "kustomizeconfig.yaml"


def kustomization(
    placed: Mapping[str, ProjectFile], namespace: str | None, app_file: str
) -> dict[str, Any]:
    """A kustomization of the ComposeApp, its large files made by configMapGenerator.

    Generated names carry kustomize's content hash, and `kustomizeconfig.yaml` (below) tells
    kustomize that `spec.files[].configMapKeyRef.name` names a ConfigMap, so it writes the
    hashed name there too: a changed file changes the ComposeApp, as GitOps tools expect.
    """
    generators = []
    for file in sorted(placed.values(), key=lambda f: f.path):
        if file.config_map is not None:
            name, key = file.config_map
            generators.append({"name": name, "files": [f"{key}={KUSTOMIZE_FILES}/{file.path}"]})
    body: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
    }
    if namespace:
        body["namespace"] = namespace
    body["resources"] = [app_file]
    if generators:
        body["configMapGenerator"] = generators
        body["configurations"] = [KUSTOMIZE_CONFIG]
    return body


def kustomize_config() -> dict[str, Any]:
    """kustomize's name-reference rule for ConfigMaps named in `spec.files`."""
    return {
        "nameReference": [
            {
                "kind": "ConfigMap",
                "version": "v1",
                "fieldSpecs": [
                    {
                        "kind": "ComposeApp",
                        "group": "compose-operator.io",
                        "path": "spec/files/configMapKeyRef/name",
                    }
                ],
            }
        ]
    }


def size_text(content: str | bytes) -> str:
    size = len(content) if isinstance(content, bytes) else len(content.encode())
    return f"{size} B" if size < 1024 else f"{size / 1024:.1f} KiB"
