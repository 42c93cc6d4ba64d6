"""Compose named volumes as PersistentVolumeClaims."""

from __future__ import annotations

from compose_operator import names
from compose_operator.plan import Manifest
from compose_operator.project import Volume
from compose_operator.render import labels

DEFAULT_SIZE = "1Gi"
"""Compose volumes have no size; a volume's `x-kubernetes.size` sets one."""


def build_volume_claim(volume: Volume, *, app: str, namespace: str) -> Manifest:
    spec: dict[str, object] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": volume.size or DEFAULT_SIZE}},
    }
    if volume.storage_class is not None:
        spec["storageClassName"] = volume.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": names.volume(app, volume.name),
            "namespace": namespace,
            "labels": labels.common(app),
        },
        "spec": spec,
    }
