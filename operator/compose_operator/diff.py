"""What one reconcile must change: the plan against the live objects, each change with its reason.

Pure: `diff(plan, live, ...)` reads dicts and returns `Changes`; the shell's `execute` makes
the calls and status is built from (plan, live, changes). Every decision a reconcile takes is
here, so the tests of it are tables.

- Apply an owned object when it is missing, when its `applied-hash` annotation (a hash of the
  body itself) differs from the body planned now, or, on a resync, when a field we own drifted
  (`kubectl edit`); event-triggered reconciles skip that comparison (API-server defaults could
  make a careless one see drift on every event).
- Prune what carries the app's label and owner reference and is not planned any more.
- Bind: env for Deployments that opted in (annotation `compose-operator.io/app` naming the app),
  applied under our field manager with the app label added, so the watch delivers them from
  then on; refused otherwise, with the reason. Release what is no longer bound (an empty apply
  body, which drops every field we set, the label too).
- The finalizer exists only while bindings exist or the app offers models.
- A planned name taken by an object this app does not own is a conflict: nothing is applied.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from compose_operator.plan import EnvBinding, Plan

Manifest = dict[str, Any]
ObjectKey = tuple[str, str]
"""(kind, name)."""

APP_LABEL = "compose-operator.io/app"
OPT_IN_ANNOTATION = "compose-operator.io/app"
HASH_ANNOTATION = "compose-operator.io/applied-hash"
BOUND_BY_ANNOTATION = "compose-operator.io/bound-by"
FINALIZER = "compose-operator.io/bindings"

EnvPatchBuilder = Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class Apply:
    body: Manifest
    reason: Literal["missing", "changed", "drifted"]
    binding: str = ""
    """For an env patch of a Deployment we do not own: the Compose service. Never forced: a
    value another field manager set is a conflict, reported, never taken over."""


@dataclass(frozen=True)
class Prune:
    kind: str
    name: str
    uid: str
    reason: str = "no longer planned"


@dataclass(frozen=True)
class Release:
    name: str
    """A Deployment we patched that the app no longer binds."""
    reason: str = "no longer bound"


@dataclass(frozen=True)
class Changes:
    applies: tuple[Apply, ...] = ()
    """Owned objects first (plan order), then bindings."""
    prunes: tuple[Prune, ...] = ()
    releases: tuple[Release, ...] = ()
    finalizer: Literal["add", "remove", ""] = ""
    conflicts: tuple[str, ...] = ()
    """`Kind/name` of planned objects whose names others hold: nothing is applied then."""
    refused: Mapping[str, str] | None = None
    """Compose service name → why its Deployment was not patched."""
    bound: tuple[str, ...] = ()
    """Deployments bound now and unchanged (no apply needed): they keep the finalizer."""
    offers: bool = False
    """The app offers models or serves other apps: it keeps the finalizer."""

    @property
    def empty(self) -> bool:
        return not (self.applies or self.prunes or self.releases or self.finalizer)


def body_hash(body: Manifest) -> str:
    """A stable hash of an apply body: same body, same hash."""
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:20]


def with_hash(body: Manifest) -> Manifest:
    hashed = copy.deepcopy(body)
    annotations = hashed.setdefault("metadata", {}).setdefault("annotations", {})
    annotations[HASH_ANNOTATION] = body_hash(body)
    return hashed


def owner_reference(app: Manifest) -> Manifest:
    return {
        "apiVersion": app["apiVersion"],
        "kind": app["kind"],
        "name": app["metadata"]["name"],
        "uid": app["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owned_body(obj: Manifest, app: Manifest) -> Manifest:
    body = copy.deepcopy(obj)
    metadata = body.setdefault("metadata", {})
    metadata["namespace"] = app["metadata"]["namespace"]
    metadata["ownerReferences"] = [owner_reference(app)]
    return with_hash(body)


def _named(items: list[Any]) -> bool:
    return all(isinstance(item, Mapping) and "name" in item for item in items)


def is_subset(desired: Any, live: Any) -> bool:
    """Whether every field we set has the same value live.

    Extra live fields are server defaults or other managers' fields, which an apply would not
    change either; lists of named items (containers, env, ports) are matched by name for the
    same reason.
    """
    if isinstance(desired, Mapping):
        return isinstance(live, Mapping) and all(
            key in live and is_subset(value, live[key]) for key, value in desired.items()
        )
    if isinstance(desired, list) and desired and _named(desired) and isinstance(live, list):
        by_name = {item.get("name"): item for item in live if isinstance(item, Mapping)}
        return all(
            item["name"] in by_name and is_subset(item, by_name[item["name"]]) for item in desired
        )
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(desired) == len(live)
            and all(is_subset(d, v) for d, v in zip(desired, live, strict=True))
        )
    return bool(desired == live)


def apply_reason(
    body: Manifest, live: Manifest | None, *, check_drift: bool
) -> Literal["missing", "changed", "drifted", ""]:
    """Why `body` must be applied over `live`; empty when it need not."""
    if live is None:
        return "missing"
    live_hash = live.get("metadata", {}).get("annotations", {}).get(HASH_ANNOTATION)
    if live_hash != body["metadata"]["annotations"][HASH_ANNOTATION]:
        return "changed"
    if check_drift and not is_subset(body, live):
        return "drifted"
    return ""


def owned_by(obj: Manifest, uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj.get("metadata", {}).get("ownerReferences", []))


def key_of(obj: Manifest) -> ObjectKey:
    return obj["kind"], obj["metadata"]["name"]


def opted_in(deployment: Manifest, app: str, uid: str) -> bool:
    """Annotated with the app's name, or with its UID, which names this one ComposeApp (not a
    later one of the same name)."""
    metadata = deployment.get("metadata", {})
    return (metadata.get("annotations", {}) or {}).get(OPT_IN_ANNOTATION) in (app, uid)


def binding_body(
    binding: EnvBinding, deployment: Manifest, app: str, build_env_patch: EnvPatchBuilder
) -> Manifest:
    """The env patch for a bound Deployment, marked so its watch and its release find it."""
    from compose_operator import names

    namespace = deployment["metadata"]["namespace"]
    containers = [
        c["name"]
        for c in deployment.get("spec", {})
        .get("template", {})
        .get("spec", {})
        .get("containers", [])
    ]
    body = copy.deepcopy(build_env_patch(binding, namespace=namespace, containers=containers))
    metadata = body.setdefault("metadata", {})
    metadata.setdefault("annotations", {})[BOUND_BY_ANNOTATION] = app
    metadata.setdefault("labels", {})[APP_LABEL] = names.label_value(app)
    return with_hash(body)


def check_bindings(
    bindings: Sequence[EnvBinding], live: Mapping[ObjectKey, Manifest], app: str, uid: str
) -> tuple[list[EnvBinding], dict[str, str]]:
    """The bindings whose Deployment opted in, and why each other one was refused."""
    accepted: list[EnvBinding] = []
    refused: dict[str, str] = {}
    for binding in bindings:
        deployment = live.get(("Deployment", binding.deployment))
        if not binding.env:
            continue
        if deployment is None:
            refused[binding.deployment] = (
                f"Deployment {binding.deployment} not found; create it with the annotation "
                f"{OPT_IN_ANNOTATION}: {app} to receive the model env"
            )
        elif not opted_in(deployment, app, uid):
            refused[binding.deployment] = (
                f"Deployment {binding.deployment} has not opted in; annotate it with "
                f"{OPT_IN_ANNOTATION}: {app} (or this ComposeApp's UID, {uid}) to receive "
                "the model env"
            )
        else:
            accepted.append(binding)
    return accepted, refused


def diff(
    plan: Plan,
    live: Mapping[ObjectKey, Manifest],
    *,
    app: Manifest,
    check_drift: bool,
    serving: bool,
    build_env_patch: EnvPatchBuilder,
) -> Changes:
    """Every write that brings the live objects to the plan, each with its reason."""
    metadata = app["metadata"]
    name, uid = metadata["name"], metadata["uid"]
    bodies = [owned_body(obj, app) for obj in plan.objects]
    taken = tuple(
        f"{body['kind']}/{body['metadata']['name']}"
        for body in bodies
        if key_of(body) in live and not owned_by(live[key_of(body)], uid)
    )
    if taken:
        return Changes(conflicts=taken)
    accepted, refused = check_bindings(plan.bindings, live, name, uid)
    services_by_deployment = {s.deployment: s.name for s in plan.services}
    refused_services = {services_by_deployment.get(d, d): why for d, why in refused.items()}
    applies: list[Apply] = []
    for body in bodies:
        reason = apply_reason(body, live.get(key_of(body)), check_drift=check_drift)
        if reason:
            applies.append(Apply(body, reason))
    bound: list[str] = []
    for binding in accepted:
        deployment = live["Deployment", binding.deployment]
        body = binding_body(binding, deployment, name, build_env_patch)
        reason = apply_reason(body, deployment, check_drift=check_drift)
        service = services_by_deployment.get(binding.deployment, binding.deployment)
        if reason:
            applies.append(Apply(body, reason, binding=service))
        else:
            bound.append(binding.deployment)
    keep = {b.deployment for b in accepted}
    releases = tuple(
        Release(obj["metadata"]["name"])
        for (kind, obj_name), obj in sorted(live.items())
        if kind == "Deployment"
        and obj_name not in keep
        and (obj["metadata"].get("annotations", {}) or {}).get(BOUND_BY_ANNOTATION) == name
    )
    planned = {key_of(body) for body in bodies}
    prunes = tuple(
        Prune(kind, obj_name, obj["metadata"]["uid"])
        for (kind, obj_name), obj in sorted(live.items())
        if (kind, obj_name) not in planned
        and (obj["metadata"].get("labels", {}) or {}).get(APP_LABEL) is not None
        and owned_by(obj, uid)
    )
    # An app that offers models keeps the finalizer even while nobody is bound: a consumer
    # may bind at any moment, and deleting the offer must wait until consumers moved.
    # A binding refused by a conflict when applied lets it go again (`execute` decides then).
    offers = serving or any(model.offered for model in plan.models)
    held = bool(accepted) or offers
    finalizers = metadata.get("finalizers", []) or []
    finalizer: Literal["add", "remove", ""] = ""
    if held and FINALIZER not in finalizers:
        finalizer = "add"
    elif not held and FINALIZER in finalizers:
        finalizer = "remove"
    return Changes(
        applies=tuple(applies),
        prunes=prunes,
        releases=releases,
        finalizer=finalizer,
        refused=refused_services,
        bound=tuple(bound),
        offers=offers,
    )
