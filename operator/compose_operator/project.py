"""The typed Compose project: what the loader produces and the planner consumes.

Only what the operator uses is kept; every value is already interpolated, validated and
normalised (list-or-map forms folded into one shape), so the planner never re-checks input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from compose_operator.errors import Warning

JsonDict = dict[str, Any]


@dataclass(frozen=True)
class CacheSpec:
    """`x-kubernetes.cache`: keep model weights on a PersistentVolumeClaim."""

    size: str
    storage_class: str | None = None


@dataclass(frozen=True)
class OfferSpec:
    """`x-kubernetes.offer`: this model is offered to apps in other namespaces."""

    namespaces: tuple[str, ...] = ()
    namespace_selector: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class KubernetesOptions:
    """`x-kubernetes` on a model: the Kubernetes-only knobs. None means "settings decide"."""

    engine: str | None = None
    gpus: int | None = None
    replicas: int = 1
    image: str | None = None
    resources: Mapping[str, Any] | None = None
    cache: CacheSpec | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    offer: OfferSpec | None = None
    shared: bool = True
    endpoint: Literal["gateway", "direct"] | None = None
    """`direct`: this model's `*_URL` is its own Service even behind a model gateway."""


@dataclass(frozen=True)
class Model:
    """One entry of the top-level `models:` element."""

    key: str
    model: str
    """The reference exactly as written (`ai/smollm2`): it is also the served model name."""
    name: str | None = None
    context_size: int | None = None
    runtime_flags: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    """`labels` and `x-cloud-options` merged, e.g. {"cloud.instance-type": "gpu-small"}."""
    kubernetes: KubernetesOptions = field(default_factory=KubernetesOptions)


@dataclass(frozen=True)
class ModelBinding:
    """A service's use of a model, with the variable names Compose would inject."""

    model: str
    """The key under the top-level `models:`."""
    endpoint_var: str
    model_var: str
    endpoint_at: str = field(default="", compare=False)
    """Where `endpoint_var` was written (or the binding, for a derived name): the path that
    the planner names when variables collide, which it judges by `modelEndpoint`."""
    model_at: str = field(default="", compare=False)


@dataclass(frozen=True)
class Port:
    target: int
    published: int | None = None
    protocol: Literal["TCP", "UDP"] = "TCP"


@dataclass(frozen=True)
class HealthCheck:
    """A Compose healthcheck with durations in whole seconds; `test` is an exec command."""

    test: tuple[str, ...]
    interval_seconds: int = 30
    timeout_seconds: int = 30
    retries: int = 3
    start_period_seconds: int = 0


@dataclass(frozen=True)
class Resources:
    """`deploy.resources` in Kubernetes quantities (cpus "0.5" → "500m", memory "1g" → "1Gi")."""

    cpu_limit: str | None = None
    memory_limit: str | None = None
    cpu_request: str | None = None
    memory_request: str | None = None
    gpus: int = 0


@dataclass(frozen=True)
class VolumeMount:
    source: str
    """A named volume key, or a host path when `bind` is true."""
    target: str
    read_only: bool = False
    bind: bool = False


@dataclass(frozen=True)
class Escalations:
    """What a service asks for that could escape its container; the planner applies policy."""

    privileged: bool = False
    host_network: bool = False
    host_pid: bool = False
    host_ipc: bool = False
    cap_add: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Service:
    """One entry of `services:`. With no `image`, it binds to an existing Deployment."""

    name: str
    image: str | None = None
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[Port, ...] = ()
    expose: tuple[int, ...] = ()
    replicas: int | None = None
    resources: Resources = field(default_factory=Resources)
    healthcheck: HealthCheck | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    user: str | None = None
    read_only: bool = False
    """`read_only: true`: the container's root filesystem is mounted read-only."""
    volumes: tuple[VolumeMount, ...] = ()
    models: tuple[ModelBinding, ...] = ()
    escalations: Escalations = field(default_factory=Escalations)
    # `x-kubernetes` on the service: where its pods may run.
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class Volume:
    """A top-level named volume; it becomes a PersistentVolumeClaim."""

    name: str
    size: str | None = None
    storage_class: str | None = None


@dataclass(frozen=True)
class ComposeProject:
    models: Mapping[str, Model] = field(default_factory=dict)
    services: Mapping[str, Service] = field(default_factory=dict)
    volumes: Mapping[str, Volume] = field(default_factory=dict)
    warnings: tuple[Warning, ...] = ()
    name: str | None = None
