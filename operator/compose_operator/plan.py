"""The planner's output: every object to apply, every env patch, and what status reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from compose_operator.errors import Warning

Manifest = dict[str, Any]


@dataclass(frozen=True, order=True)
class OfferRef:
    """A model another app offers: `<namespace>/<app>/<model key>` in text, and
    `shared: <namespace>/<app>/<model key>` as a bound model's `source` in status. Parsed once,
    where text comes in (a status read back); everything else passes this."""

    namespace: str
    app: str
    model: str
    PREFIX: ClassVar[str] = "shared: "

    def __str__(self) -> str:
        return f"{self.namespace}/{self.app}/{self.model}"

    @property
    def source(self) -> str:
        return self.PREFIX + str(self)

    @classmethod
    def parse(cls, text: str) -> OfferRef | None:
        parts = text.split("/")
        return cls(*parts) if len(parts) == 3 and all(parts) else None

    @classmethod
    def from_source(cls, source: object) -> OfferRef | None:
        """The reference in a status `source`; None for `own`, `refused` or anything else."""
        if isinstance(source, str) and source.startswith(cls.PREFIX):
            return cls.parse(source[len(cls.PREFIX) :])
        return None


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
    shared: OfferRef | None = None
    """The offer the model is bound to (`source` is then `shared: <ref>`); read from
    `source` when not given."""

    def __post_init__(self) -> None:
        if self.shared is None:
            object.__setattr__(self, "shared", OfferRef.from_source(self.source))


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
