"""Where a model's pods run and what they hold: GPUs, node selectors, tolerations.

Precedence, most specific last: settings defaults, then the GPU profile that
`cloud.instance-type` names, then the model's own `x-kubernetes` values.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from compose_operator import names
from compose_operator.errors import Problem, Warning
from compose_operator.project import Model
from compose_operator.settings import GpuProfile, Settings

INSTANCE_TYPE = "cloud.instance-type"
REGION = "cloud.region"
ZONE = "cloud.zone"
CLOUD_NODE_LABELS = {
    REGION: "topology.kubernetes.io/region",
    ZONE: "topology.kubernetes.io/zone",
}


@dataclass(frozen=True)
class Placement:
    gpus: int
    node_selector: dict[str, str]
    tolerations: list[dict[str, Any]]
    resources: dict[str, Any]
    annotations: dict[str, str]
    """The model's other labels, which have no scheduling meaning, kept on the pod."""


def place(
    model: Model, settings: Settings, path: str
) -> tuple[Placement, list[Problem], list[Warning]]:
    problems: list[Problem] = []
    warnings: list[Warning] = []
    options = model.kubernetes
    instance_type = model.labels.get(INSTANCE_TYPE)
    profile = settings.profiles.get(instance_type) if instance_type is not None else None
    gpus = _first(options.gpus, profile.gpus if profile else None, settings.default_gpus)

    node_selector: dict[str, str] = {}
    if profile is not None:
        node_selector.update(profile.node_selector)
    elif instance_type is not None:
        node_selector[settings.instance_type_label] = instance_type
    for label, node_label in CLOUD_NODE_LABELS.items():
        if label in model.labels:
            node_selector[node_label] = model.labels[label]
    node_selector.update(options.node_selector)
    for label in (INSTANCE_TYPE, *CLOUD_NODE_LABELS):
        value = model.labels.get(label)
        if value is not None and names.label_value(value) != value:
            problems.append(
                Problem(f"{path}.labels.{label}", f"{value!r} is not a valid node label value")
            )

    annotations = {}
    for key, value in sorted(model.labels.items()):
        if key in (INSTANCE_TYPE, *CLOUD_NODE_LABELS):
            continue
        if names.is_qualified_name(key):
            annotations[key] = value
        else:
            warnings.append(
                Warning(f"{path}.labels.{key}", "not a valid Kubernetes annotation key; ignored")
            )

    return (
        Placement(
            gpus=gpus,
            node_selector=dict(sorted(node_selector.items())),
            tolerations=_tolerations(gpus, settings, profile, options.tolerations),
            resources=gpu_resources(gpus, settings, options.resources or {}),
            annotations=annotations,
        ),
        problems,
        warnings,
    )


def gpu_resources(gpus: int, settings: Settings, requested: Mapping[str, Any]) -> dict[str, Any]:
    """`requested` (limits/requests) with the GPU limit added; the user's values win."""
    resources: dict[str, Any] = {key: dict(value) for key, value in requested.items()}
    if gpus > 0:
        resources["limits"] = {settings.gpu_resource_name: str(gpus), **resources.get("limits", {})}
    return resources


def gpu_tolerations(gpus: int, settings: Settings) -> list[dict[str, Any]]:
    return [dict(toleration) for toleration in settings.gpu_tolerations] if gpus > 0 else []


def _tolerations(
    gpus: int,
    settings: Settings,
    profile: GpuProfile | None,
    own: Iterable[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    merged = [
        *gpu_tolerations(gpus, settings),
        *(profile.tolerations if profile else ()),
        *own,
    ]
    unique: dict[str, dict[str, Any]] = {}
    for toleration in merged:
        unique.setdefault(json.dumps(toleration, sort_keys=True), dict(toleration))
    return list(unique.values())


def _first(*values: int | None) -> int:
    return next(value for value in values if value is not None)
