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
    shared_from: tuple[str, ...] | None = None
    """`shared: {from: [..]}`: bind only to offers from these namespaces; None: any trusted."""


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
    """A named volume key; for a bind mount, a project path (`agents.yaml`, `data/mongodb`,
    relative to the project folder and normalised) or a host path (`/var/run/docker.sock`,
    `~/x`, `../outside`)."""
    target: str
    read_only: bool = False
    bind: bool = False

    @property
    def project(self) -> bool:
        """A bind mount of a path inside the project: its files travel in the ComposeApp."""
        return self.bind and is_project_path(self.source)


def is_project_path(path: str) -> bool:
    """A normalised path that stays inside the project folder (`x`, `x/y`, not `/x`, `~`,
    `..` or `../x`)."""
    return bool(path) and not path.startswith(("/", "~")) and path.split("/", 1)[0] != ".."


@dataclass(frozen=True)
class ProjectFile:
    """A file of the project (`spec.files`, or read from disk by the CLI)."""

    path: str
    """Relative to the project folder, normalised: `agents.yaml`, `wiremock/mappings/a.json`."""
    content: str | bytes
    """Text, or bytes for a binary file (only from a ConfigMap's binaryData or from disk)."""
    digest: str
    """sha256 of the content: what rolls the pods when the file changes."""
    mode: int | None = None
    """File mode in the container (e.g. 0o755 for a script); None: Kubernetes' default."""
    config_map: tuple[str, str] | None = None
    """(ConfigMap name, key) when the file lives in a ConfigMap of its own; None: inline."""


@dataclass(frozen=True)
class FileMount:
    """A service's use of a top-level config or secret (`configs:` / `secrets:`)."""

    source: str
    """The key under the top-level `configs:` or `secrets:`."""
    target: str
    """Absolute path in the container, after Compose's defaults (`/<name>`,
    `/run/secrets/<name>`)."""
    mode: int | None = None
    uid: str | None = None
    gid: str | None = None


@dataclass(frozen=True)
class Config:
    """A top-level config: its content travels in a ConfigMap."""

    name: str
    content: str | None = None
    """`content:`, or `environment:`'s value: the operator's own ConfigMap holds it."""
    file: str | None = None
    """`file:`, a project path: mounted from where that project file lives."""
    config_map: str | None = None
    """`external: true` or `name:`: an existing ConfigMap of this name."""
    key: str = ""
    """The key in `config_map` holding the content (default: the config's name)."""


@dataclass(frozen=True)
class Secret:
    """A top-level secret: never carried; the Kubernetes Secret of `secret_name` holds it."""

    name: str
    secret_name: str
    key: str
    """The key in the Secret holding the content (default: the secret's name)."""
    file: str | None = None
    """`file:` (a project path): where the value is on the author's machine."""
    environment: str | None = None
    """`environment:`: the variable holding the value on the author's machine."""


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
    """One entry of `services:`. With no `image` (from the file or `spec.images`), it binds
    to an existing Deployment."""

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
    configs: tuple[FileMount, ...] = ()
    secrets: tuple[FileMount, ...] = ()
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
    configs: Mapping[str, Config] = field(default_factory=dict)
    secrets: Mapping[str, Secret] = field(default_factory=dict)
    files: Mapping[str, ProjectFile] = field(default_factory=dict)
    """The project files the services mount (bind mounts and configs), by path."""
    warnings: tuple[Warning, ...] = ()
    name: str | None = None
