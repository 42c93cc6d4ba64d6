"""One level-based reconcile of one ComposeApp: read, plan, apply what differs, prune, report.

Every trigger (the app changed, its ConfigMap changed, an owned object changed, the periodic
resync) ends here, with the app's namespace and name; the app itself is read fresh, so a
reconcile never acts on a stale body.

Writes are the expensive, observable part, so steady state sends none:
- each applied body carries `compose-operator.io/applied-hash`, a hash of the body itself;
  an object whose live hash matches is not applied again. The periodic resync also compares
  the fields we own with the live object (drift from `kubectl edit`) and re-applies on a
  difference. Event-triggered reconciles skip that comparison: API-server defaults could
  make a careless comparison see drift on every event.
- the status is patched only when it differs, and Events are emitted only on transitions.

Invalid Compose applies and deletes nothing. Bound Deployments (services without `image`)
are patched only when they carry the opt-in annotation (the app's name or UID); our env
entries are applied under our field manager, never forced (a value another manager set is a
conflict reported in status, never taken over), and released by applying an empty body, which
leaves the Deployment exactly as its owner wrote it. The `compose-operator.io/bindings`
finalizer exists only while such patches exist or the app offers models (x-kubernetes.offer:
its deletion waits until no app is bound to it any more), so deleting any other app never
waits on us. A suspended or invalid app holds no binding to an offer, so the offering app's
deletion never waits on it.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import kopf

from compose_operator.compose import projectfiles
from compose_operator.errors import ComposeError
from compose_operator.plan import EnvBinding, Plan
from compose_operator.project import ComposeProject
from compose_operator.render import sharing
from compose_operator.settings import Settings
from compose_operator.shell import kube, status
from compose_operator.shell.kube import Api, ApiError, Manifest, Resource

APP_LABEL = "compose-operator.io/app"
OPT_IN_ANNOTATION = "compose-operator.io/app"
HASH_ANNOTATION = "compose-operator.io/applied-hash"
BOUND_BY_ANNOTATION = "compose-operator.io/bound-by"
FINALIZER = "compose-operator.io/bindings"
COMPONENT = "compose-operator"
SECRET_RECHECK_SECONDS = 15.0
"""How soon a Secret the pods mount is looked for again while it is missing."""

OWNED_KINDS: tuple[Resource, ...] = (kube.CONFIG_MAPS, kube.PVCS, kube.SERVICES, kube.DEPLOYMENTS)
"""Kinds the plan may create and prune (ConfigMaps: the model gateway's routing table,
the app's project files and configs).
NetworkPolicies join when the settings enable them."""

Result = Literal["applied", "unchanged", "invalid", "suspended", "deleted", "gone"]


@dataclass(frozen=True)
class Core:
    """The pure core's entry points; tests pass stand-ins."""

    load_project: Callable[..., ComposeProject]
    plan: Callable[..., Plan]
    build_env_patch: Callable[..., dict[str, Any]]


def real_core() -> Core:
    from compose_operator import compose, render

    return Core(compose.load_project, render.plan, render.build_env_patch)


@dataclass
class Report:
    """What one reconcile did; logged and counted in metrics."""

    result: Result = "unchanged"
    applied: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    status_written: bool = False
    events: list[str] = field(default_factory=list)
    ready_models: int = 0
    models: int = 0
    ready: bool = False
    offers: tuple[sharing.Offer, ...] | None = None
    """What the app offers, once its Compose text loaded (for the sharing index)."""
    wants: frozenset[str] | None = None
    bound: dict[str, str] | None = None
    """Model key → offer name, once planned."""
    recheck_after: float | None = None
    """Seconds after which to reconcile again: the app waits for a Secret, which the operator
    reads by name but does not watch."""


@dataclass(frozen=True)
class Sharing:
    """The sharing index's snapshot for one reconcile (see shell/sharing.py)."""

    offers: tuple[sharing.Offer, ...] = ()
    served: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    """Model key of this app's offer → (namespace, app) of every app bound to it."""
    unready: Mapping[str, str] = field(default_factory=dict)
    """Offer name (`ns/app/model`) → why it does not serve yet; absent when it does."""

    @property
    def serving(self) -> bool:
        return any(self.served.values())


class ComposeSourceMissing(Exception):
    """spec.composeFrom or spec.files names a ConfigMap or key that does not exist (yet)."""


class NameConflict(Exception):
    """A planned object's name is taken by an object this app does not own."""


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


def needs_apply(body: Manifest, live: Manifest | None, *, check_drift: bool) -> bool:
    if live is None:
        return True
    live_hash = live.get("metadata", {}).get("annotations", {}).get(HASH_ANNOTATION)
    if live_hash != body["metadata"]["annotations"][HASH_ANNOTATION]:
        return True
    return check_drift and not is_subset(body, live)


def _owned_by(obj: Manifest, uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj.get("metadata", {}).get("ownerReferences", []))


def _key(obj: Manifest) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def _name(obj: Manifest) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def read_compose(api: Api, app: Manifest) -> tuple[str, str]:
    """The Compose text and the file name messages should name."""
    spec = app.get("spec", {})
    if "compose" in spec:
        return spec["compose"], "spec.compose"
    ref = spec.get("composeFrom", {}).get("configMapKeyRef", {})
    namespace = app["metadata"]["namespace"]
    config_map = api.get(kube.CONFIG_MAPS, namespace, ref.get("name", ""))
    if config_map is None:
        raise ComposeSourceMissing(f"ConfigMap {ref.get('name')} not found in {namespace}")
    data = config_map.get("data", {})
    if ref.get("key") not in data:
        raise ComposeSourceMissing(f"ConfigMap {ref.get('name')} has no key {ref.get('key')}")
    text: str = data[ref["key"]]
    return text, f"configmap/{ref['name']}/{ref['key']}"


def read_files(api: Api, app: Manifest, compose_bytes: int) -> projectfiles.CarriedFiles:
    """spec.files, with the content of every ConfigMap key it refers to (binaryData decoded).

    Raises ComposeSourceMissing for a ConfigMap or key that does not exist (yet), and
    ComposeError for entries that are invalid whatever the cluster holds.
    """
    entries = app.get("spec", {}).get("files")
    namespace = app["metadata"]["namespace"]
    referenced: dict[tuple[str, str], str | bytes] = {}
    for name, key in projectfiles.references(entries):
        config_map = api.get(kube.CONFIG_MAPS, namespace, name)
        if config_map is None:
            raise ComposeSourceMissing(f"spec.files: ConfigMap {name} not found in {namespace}")
        if key in config_map.get("data", {}):
            referenced[name, key] = config_map["data"][key]
        elif key in config_map.get("binaryData", {}):
            referenced[name, key] = base64.b64decode(config_map["binaryData"][key])
        else:
            raise ComposeSourceMissing(f"spec.files: ConfigMap {name} has no key {key}")
    return projectfiles.from_spec(entries, referenced, compose_bytes=compose_bytes)


class Reconciler:
    """Reconciles ComposeApps through an `Api`; one instance serves every app."""

    def __init__(self, api: Api, settings: Settings, *, core: Core, now: Callable[[], str]) -> None:
        self.api = api
        self.settings = settings
        self.core = core
        self.now = now
        kinds = list(OWNED_KINDS)
        if settings.network_policies:
            kinds.insert(0, kube.NETWORK_POLICIES)
        self.owned_kinds = tuple(kinds)

    def reconcile(
        self,
        namespace: str,
        name: str,
        *,
        check_drift: bool = False,
        shared: Sharing | None = None,
    ) -> Report:
        """With `shared`, models bind to platform offers as the settings' policy says."""
        app = self.api.get(kube.COMPOSE_APPS, namespace, name)
        if app is None:
            return Report(result="gone")
        if app["metadata"].get("deletionTimestamp"):
            return self._finalize(app, shared or Sharing())
        if app.get("spec", {}).get("suspend"):
            return Report(result="suspended", bound={})
        report = Report()
        try:
            text, file = read_compose(self.api, app)
            plan = self._plan(app, text, file, shared, report)
        except ComposeError as error:
            report.result = "invalid"
            report.bound = {}
            self._report(
                app, None, status.Outcome("InvalidCompose", tuple(error.messages)), {}, report
            )
            return report
        except ComposeSourceMissing as error:
            self._report(
                app, None, status.Outcome("ComposeSourceMissing", (str(error),)), {}, report
            )
            raise kopf.TemporaryError(str(error)) from error
        served, unready = (shared or Sharing()).served, (shared or Sharing()).unready
        if plan.waiting:
            messages = tuple(why for _, why in plan.waiting)
            self._report(app, None, status.Outcome("WaitingForOffer", messages), {}, report)
            return report
        try:
            deployments, refused = self._execute(
                app, plan, report, check_drift=check_drift, serving=bool(shared and shared.serving)
            )
        except NameConflict as error:
            outcome = status.Outcome(
                "NameConflict", (str(error),), served=served, unready_offers=unready
            )
            self._report(app, plan, outcome, {}, report)
            return report
        except ApiError as error:
            outcome = status.Outcome(
                "ReconcileFailed", (str(error),), served=served, unready_offers=unready
            )
            self._report(app, plan, outcome, {}, report)
            raise kopf.TemporaryError(str(error)) from error
        missing = self._missing_secrets(namespace, plan)
        if plan.refusals:
            messages = tuple(why for _, why in plan.refusals)
            outcome = status.Outcome("SharingRefused", messages, served=served)
        else:
            outcome = status.Outcome(
                refused=refused, served=served, unready_offers=unready, missing_secrets=missing
            )
        self._report(app, plan, outcome, deployments, report)
        if missing:
            # Secrets are only read by name (least privilege: no list or watch): look again.
            report.recheck_after = SECRET_RECHECK_SECONDS
        return report

    def _missing_secrets(self, namespace: str, plan: Plan) -> dict[str, str]:
        """Secret name → what is missing, for the Secrets the app's pods mount."""
        missing: dict[str, str] = {}
        for secret in plan.secrets:
            found = self.api.get(kube.SECRETS, namespace, secret.name)
            keys = (found or {}).get("data") or {}
            if found is None:
                missing[secret.name] = f"Secret {secret.name} missing; {secret.create}"
            elif secret.key not in keys:
                missing[secret.name] = (
                    f"Secret {secret.name} has no key {secret.key}; {secret.create}"
                )
        return missing

    def _plan(
        self, app: Manifest, text: str, file: str, shared: Sharing | None, report: Report
    ) -> Plan:
        metadata = app["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        spec = app.get("spec", {})
        inline = len(text.encode("utf-8", "surrogatepass")) if "compose" in spec else 0
        project = self.core.load_project(
            text,
            file=file,
            environment=spec.get("environment", {}),
            files=read_files(self.api, app, inline),
            images=spec.get("images", {}),
        )
        report.offers = sharing.offers_of(
            project, app=name, namespace=namespace, settings=self.settings
        )
        report.wants = sharing.wanted_references(project)
        labels = _Labels(self.namespace_labels)
        # Whether this namespace may offer; with a selector, its labels decide.
        by_labels = self.settings.sharing.offer_namespace_selector is not None
        listed = self.settings.sharing.offer_namespaces
        own_labels = (
            labels(namespace) if report.offers and by_labels and namespace not in listed else {}
        )
        offers = None
        if shared is not None:
            candidates = [o for o in shared.offers if o.reference in report.wants]
            bound = {
                m.get("name", ""): m["source"][len(sharing.SHARED_PREFIX) :]
                for m in app.get("status", {}).get("models", [])
                if str(m.get("source", "")).startswith(sharing.SHARED_PREFIX)
            }
            offers = sharing.SharingInput(
                offers=tuple(candidates),
                namespace_labels=(
                    labels(namespace) if any(o.uses_selector for o in candidates) else {}
                ),
                bound=bound,
                offerer_labels={
                    o.namespace: labels(o.namespace)
                    for o in candidates
                    if by_labels and o.namespace not in listed
                },
            )
        plan = self.core.plan(
            project,
            app=name,
            namespace=namespace,
            settings=self.settings,
            file=file,
            offers=offers,
            namespace_labels=own_labels,
        )
        if not plan.waiting:
            report.bound = {
                m.key: m.source[len(sharing.SHARED_PREFIX) :]
                for m in plan.models
                if m.source.startswith(sharing.SHARED_PREFIX)
            }
        return plan

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        """A namespace's labels (selector offers, selected offerers); none when unreadable."""
        try:
            found = self.api.get(kube.NAMESPACES, "", namespace)
        except ApiError:
            return {}
        labels: dict[str, str] = (found or {}).get("metadata", {}).get("labels", {})
        return labels

    def _live(self, namespace: str) -> dict[tuple[str, str], Manifest]:
        live: dict[tuple[str, str], Manifest] = {}
        for resource in self.owned_kinds:
            for obj in self.api.list(resource, namespace):
                # List items carry no apiVersion/kind; put them back so bodies compare.
                typed = {**obj, "apiVersion": resource.api_version, "kind": resource.kind}
                live[resource.kind, obj["metadata"]["name"]] = typed
        return live

    def _execute(
        self, app: Manifest, plan: Plan, report: Report, *, check_drift: bool, serving: bool
    ) -> tuple[dict[str, Manifest], dict[str, str]]:
        namespace, name = app["metadata"]["namespace"], app["metadata"]["name"]
        uid = app["metadata"]["uid"]
        live = self._live(namespace)
        bodies = [owned_body(obj, app) for obj in plan.objects]
        taken = [
            _name(body)
            for body in bodies
            if _key(body) in live and not _owned_by(live[_key(body)], uid)
        ]
        if taken:
            raise NameConflict(
                "names already used by objects this ComposeApp does not own: " + ", ".join(taken)
            )
        accepted, refused = self._check_bindings(plan.bindings, live, name, uid)
        services_by_deployment = {s.deployment: s.name for s in plan.services}
        refused_services = {services_by_deployment.get(d, d): why for d, why in refused.items()}
        bound_before = [
            obj
            for (kind, _), obj in live.items()
            if kind == "Deployment"
            and obj["metadata"].get("annotations", {}).get(BOUND_BY_ANNOTATION) == name
        ]
        # An app that offers models keeps the finalizer even while nobody is bound: a consumer
        # may bind at any moment, and deleting the offer must wait until consumers moved.
        offers = serving or any(model.offered for model in plan.models)
        if accepted or offers:
            self._ensure_finalizer(app)
        for body in bodies:
            if needs_apply(body, live.get(_key(body)), check_drift=check_drift):
                resource = kube.BY_KIND[body["kind"]]
                live[_key(body)] = {"kind": body["kind"], **self.api.apply(resource, body)}
                report.applied.append(_name(body))
        keep: set[str] = set()
        for binding in accepted:
            deployment = live["Deployment", binding.deployment]
            body = self._binding_body(binding, deployment, name)
            if not needs_apply(body, deployment, check_drift=check_drift):
                keep.add(binding.deployment)
                continue
            try:
                # Never forced: a value another manager (Helm, kubectl) set stays theirs.
                applied = self.api.apply(kube.DEPLOYMENTS, body, force=False)
            except ApiError as error:
                if error.status != 409:
                    raise
                service = services_by_deployment.get(binding.deployment, binding.deployment)
                refused_services[service] = (
                    f"Deployment {binding.deployment}: another field manager already sets "
                    f"these fields, and nothing was taken over ({error}); remove them there, "
                    "or choose other names with endpoint_var / model_var"
                )
                continue
            keep.add(binding.deployment)
            live["Deployment", binding.deployment] = {"kind": "Deployment", **applied}
            report.applied.append(_name(body))
        for deployment in bound_before:
            if deployment["metadata"]["name"] not in keep:
                self._release(deployment)
                report.released.append(f"Deployment/{deployment['metadata']['name']}")
        planned = {_key(body) for body in bodies}
        for key, obj in sorted(live.items()):
            labels = obj["metadata"].get("labels", {})
            if key not in planned and labels.get(APP_LABEL) == name and _owned_by(obj, uid):
                resource = kube.BY_KIND[key[0]]
                self.api.delete(resource, namespace, key[1], obj["metadata"]["uid"])
                report.pruned.append(f"{key[0]}/{key[1]}")
        if not (keep or offers) and FINALIZER in app["metadata"].get("finalizers", []):
            self._remove_finalizer(app)
        if report.applied or report.pruned or report.released:
            report.result = "applied"
        deployments = {n: obj for (kind, n), obj in live.items() if kind == "Deployment"}
        return deployments, refused_services

    def _check_bindings(
        self,
        bindings: Sequence[EnvBinding],
        live: Mapping[tuple[str, str], Manifest],
        app: str,
        uid: str,
    ) -> tuple[list[EnvBinding], dict[str, str]]:
        """Opted-in Deployments: annotated with the app's name, or with its UID, which names
        this one ComposeApp (not a later one of the same name)."""
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
            elif deployment["metadata"].get("annotations", {}).get(OPT_IN_ANNOTATION) not in (
                app,
                uid,
            ):
                refused[binding.deployment] = (
                    f"Deployment {binding.deployment} has not opted in; annotate it with "
                    f"{OPT_IN_ANNOTATION}: {app} (or this ComposeApp's UID, {uid}) to receive "
                    "the model env"
                )
            else:
                accepted.append(binding)
        return accepted, refused

    def _binding_body(self, binding: EnvBinding, deployment: Manifest, app: str) -> Manifest:
        namespace = deployment["metadata"]["namespace"]
        containers = [
            c["name"]
            for c in deployment.get("spec", {})
            .get("template", {})
            .get("spec", {})
            .get("containers", [])
        ]
        body = copy.deepcopy(
            self.core.build_env_patch(binding, namespace=namespace, containers=containers)
        )
        annotations = body.setdefault("metadata", {}).setdefault("annotations", {})
        annotations[BOUND_BY_ANNOTATION] = app
        return with_hash(body)

    def _release(self, deployment: Manifest) -> None:
        """Apply an empty body under our manager: the server drops every field we set."""
        metadata = deployment["metadata"]
        self.api.apply(
            kube.DEPLOYMENTS,
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": metadata["name"], "namespace": metadata["namespace"]},
            },
        )

    def _ensure_finalizer(self, app: Manifest) -> None:
        metadata = app["metadata"]
        finalizers = list(metadata.get("finalizers", []))
        if FINALIZER in finalizers:
            return
        patch = {
            "metadata": {
                "finalizers": [*finalizers, FINALIZER],
                "resourceVersion": metadata.get("resourceVersion"),
            }
        }
        updated = self.api.patch(kube.COMPOSE_APPS, metadata["namespace"], metadata["name"], patch)
        metadata["finalizers"] = updated.get("metadata", {}).get(
            "finalizers", [*finalizers, FINALIZER]
        )

    def _remove_finalizer(self, app: Manifest) -> None:
        metadata = app["metadata"]
        finalizers = list(metadata.get("finalizers", []))
        index = finalizers.index(FINALIZER)
        path = f"/metadata/finalizers/{index}"
        patch = [{"op": "test", "path": path, "value": FINALIZER}, {"op": "remove", "path": path}]
        self.api.patch(
            kube.COMPOSE_APPS, metadata["namespace"], metadata["name"], patch, patch_type="json"
        )
        metadata["finalizers"] = [f for f in finalizers if f != FINALIZER]

    def _finalize(self, app: Manifest, shared: Sharing) -> Report:
        """Deletion: give bound Deployments back what they had; owned objects go by GC.

        An app whose offer still serves other apps waits: they move first (their own model,
        or Stalled under `require`), so no app's env ever names a Service that is gone.
        """
        report = Report(result="deleted", offers=())
        if FINALIZER not in app["metadata"].get("finalizers", []):
            return report
        namespace, name = app["metadata"]["namespace"], app["metadata"]["name"]
        for deployment in self.api.list(kube.DEPLOYMENTS, namespace):
            if deployment["metadata"].get("annotations", {}).get(BOUND_BY_ANNOTATION) == name:
                self._release(deployment)
                report.released.append(f"Deployment/{deployment['metadata']['name']}")
        if shared.serving:
            return report
        self._remove_finalizer(app)
        return report

    def _report(
        self,
        app: Manifest,
        plan: Plan | None,
        outcome: status.Outcome,
        deployments: Mapping[str, Manifest],
        report: Report,
    ) -> None:
        metadata = app["metadata"]
        previous = app.get("status", {})
        pods: list[Manifest] = []
        new = self._build(app, plan, outcome, deployments, pods)
        if plan is not None and not outcome.failure and _not_ready(new):
            pods = self._pods(metadata["namespace"], deployments)
            new = self._build(app, plan, outcome, deployments, pods)
        patch = status.status_patch(previous, new)
        if patch is not None:
            self.api.patch(
                kube.COMPOSE_APPS,
                metadata["namespace"],
                metadata["name"],
                {"status": patch},
                subresource="status",
            )
            report.status_written = True
        for event in status.transition_events(previous, new):
            self.api.create(kube.EVENTS, metadata["namespace"], self._event(app, event))
            report.events.append(event.reason)
        models = new.get("models", [])
        report.models = len(models)
        report.ready_models = sum(1 for m in models if "message" not in m)
        report.ready = any(
            c["type"] == status.READY and c["status"] == "True" for c in new["conditions"]
        )

    def _build(
        self,
        app: Manifest,
        plan: Plan | None,
        outcome: status.Outcome,
        deployments: Mapping[str, Manifest],
        pods: Sequence[Manifest],
    ) -> status.Status:
        return status.build_status(
            generation=app["metadata"].get("generation", 0),
            plan=plan,
            outcome=outcome,
            deployments=deployments,
            pods=pods,
            previous=app.get("status", {}),
            now=self.now(),
            stall_after_crashes=self.settings.stall_after_crashes,
        )

    def _pods(self, namespace: str, deployments: Mapping[str, Manifest]) -> list[Manifest]:
        """Pods of Deployments that are not available: only they need explaining."""
        pods: list[Manifest] = []
        for name, deployment in sorted(deployments.items()):
            available, _ = status.deployment_availability(name, deployment, ())
            selector = deployment.get("spec", {}).get("selector", {}).get("matchLabels", {})
            if not available and selector:
                labels = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
                pods.extend(self.api.list(kube.PODS, namespace, labels))
        return pods

    def _event(self, app: Manifest, event: status.EventSpec) -> Manifest:
        metadata = app["metadata"]
        now = self.now()
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "generateName": f"{metadata['name']}.",
                "namespace": metadata["namespace"],
            },
            "involvedObject": {
                "apiVersion": app["apiVersion"],
                "kind": app["kind"],
                "name": metadata["name"],
                "namespace": metadata["namespace"],
                "uid": metadata["uid"],
            },
            "type": event.type,
            "reason": event.reason,
            "message": event.message[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": COMPONENT,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }


class _Labels:
    """Namespace labels, each namespace read at most once per reconcile."""

    def __init__(self, read: Callable[[str], dict[str, str]]) -> None:
        self.read = read
        self.seen: dict[str, dict[str, str]] = {}

    def __call__(self, namespace: str) -> dict[str, str]:
        if namespace not in self.seen:
            self.seen[namespace] = self.read(namespace)
        return self.seen[namespace]


def _not_ready(new: status.Status) -> bool:
    return any(c["type"] == status.READY and c["status"] != "True" for c in new["conditions"])
