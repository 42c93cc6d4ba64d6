"""The planner's output: every object to apply, every env patch, and what status reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from compose_operator.errors import Warning

Manifest = dict[str, Any]


@dataclass(frozen=True)
class PlannedModel:
    """A model as status reports it."""

    key: str
    model: str
    engine: str
    endpoint: str
    """The model's own Service (or its offer's): `http://<svc>.<ns>.svc.<domain>/v1/`. Services
    receive it as `*_URL` only without the model gateway."""
    deployment: str
    service: str
    replicas: int
    source: str = "own"
    """`own`, `shared: <ns>/<app>/<model>` when bound to a platform offer, or `refused` when
    the sharing policy is `require` and no offer matches."""
    offered: bool = False
    """This app offers the model to other namespaces (`x-kubernetes.offer`)."""


@dataclass(frozen=True)
class PlannedService:
    """A Compose service: `created` as our own Deployment, or `patched` into an existing one."""

    name: str
    mode: Literal["created", "patched"]
    deployment: str
    models: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlannedSecret:
    """A Kubernetes Secret some created service mounts (Compose `secrets:`); never made by the
    operator: the shell checks it exists, and status says how to make it when it does not."""

    name: str
    key: str
    create: str
    """The command that makes it: `kubectl -n team create secret generic ...`."""
    services: tuple[str, ...]


@dataclass(frozen=True)
class EnvBinding:
    """Env entries for a Deployment we do not own (a Compose service with no `image`).

    The planner cannot know the Deployment's container names; the shell reads them and
    builds the server-side-apply body with `render.build_env_patch`.
    """

    deployment: str
    service: str
    env: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class PlannedGateway:
    """The app's model gateway: one URL for every model, as Docker Model Runner gives."""

    name: str
    """Its Deployment, Service and ConfigMap."""
    url: str
    replicas: int


@dataclass(frozen=True)
class Plan:
    objects: tuple[Manifest, ...] = ()
    """Objects the app owns, in apply order (PVCs and Services before Deployments)."""
    bindings: tuple[EnvBinding, ...] = ()
    """Env for Deployments we only patch (only those that opted in are touched)."""
    models: tuple[PlannedModel, ...] = ()
    services: tuple[PlannedService, ...] = ()
    secrets: tuple[PlannedSecret, ...] = ()
    warnings: tuple[Warning, ...] = field(default_factory=tuple)
    refusals: tuple[tuple[str, str], ...] = ()
    """(model key, why) for models the sharing policy `require` refuses: when there are any,
    nothing of the app is applied (`objects` and `bindings` are empty)."""
    gateway: PlannedGateway | None = None
    """Present when a service reaches a model through the gateway (`modelEndpoint`)."""
    waiting: tuple[tuple[str, str], ...] = ()
    """(model key, which offer) for models whose matching offer is not applied yet: the app
    is left as it is until it is (nothing applied, nothing pruned)."""
