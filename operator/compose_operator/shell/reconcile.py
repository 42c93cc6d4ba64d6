"""One level-based reconcile of one ComposeApp: read the index, plan, diff, execute, report.

Every trigger (the app changed, its ConfigMap changed, an owned object changed, the periodic
resync) ends here, with the app's namespace and name. The live state comes from the watch-fed
index (`shell/index.py`), so a reconcile sends no read: the API sees only writes, and the rare
read no watch answers (a `composeFrom` ConfigMap or an opted-in Deployment without our label).

The decisions are the pure `diff.diff` (apply, prune, release, finalizer, conflicts, each with
its reason); `_execute` makes the calls; status is built from (plan, live, changes) and
patched only when it differs, and Events are emitted only on transitions. So steady state sends
nothing, and an event that changes nothing the status is built from sends nothing either.

Invalid Compose applies and deletes nothing. Bound Deployments (services without `image`) are
patched only when they carry the opt-in annotation; our env entries are applied under our field
manager alone and released by applying an empty body, which leaves the Deployment exactly as its
owner wrote it. The `compose-operator.io/bindings` finalizer exists only while such patches
exist or the app offers models (x-kubernetes.offer: its deletion waits until no app is bound to
it any more), so deleting any other app never waits on us.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import kopf

from compose_operator import diff as diffing
from compose_operator.compose import projectfiles
from compose_operator.diff import (
    APP_LABEL,
    BOUND_BY_ANNOTATION,
    FINALIZER,
    HASH_ANNOTATION,
    OPT_IN_ANNOTATION,
    Changes,
    is_subset,
)
from compose_operator.errors import ComposeError
from compose_operator.plan import OfferRef, Plan
from compose_operator.project import ComposeProject
from compose_operator.render import sharing
from compose_operator.settings import Settings
from compose_operator.shell import kube, status
from compose_operator.shell.index import AppState, LiveIndex
from compose_operator.shell.kube import Api, ApiError, Manifest

__all__ = [
    "APP_LABEL",
    "BOUND_BY_ANNOTATION",
    "FINALIZER",
    "HASH_ANNOTATION",
    "OPT_IN_ANNOTATION",
    "Core",
    "Reconciler",
    "Report",
    "Sharing",
    "is_subset",
    "real_core",
]

COMPONENT = "compose-operator"
SECRET_RECHECK_SECONDS = 15.0
"""How soon a Secret the pods mount is looked for again while it is missing."""

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
    bound: dict[str, OfferRef] | None = None
    """Model key → the offer it is bound to, once planned."""
    recheck_after: float | None = None
    """Seconds after which to reconcile again: the app waits for a Secret, which the operator
    reads by name but does not watch."""


@dataclass(frozen=True)
class Sharing:
    """The sharing index's snapshot for one reconcile (see shell/sharing.py)."""

    offers: tuple[sharing.Offer, ...] = ()
    served: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    """Model key of this app's offer → (namespace, app) of every app bound to it."""
    unready: Mapping[OfferRef, str] = field(default_factory=dict)
    """Offer → why it does not serve yet; absent when it does."""

    @property
    def serving(self) -> bool:
        return any(self.served.values())


class ComposeSourceMissing(Exception):
    """spec.composeFrom or spec.files names a ConfigMap or key that does not exist (yet)."""


class NameConflict(Exception):
    """A planned object's name is held by an object this app does not own (a 409 on apply)."""


class Reconciler:
    """Reconciles ComposeApps from the index, writing through an `Api`; serves every app.

    Safe to call from several threads at once for different apps (the queue never runs one app
    twice at a time): it keeps no state between calls besides the index.
    """

    def __init__(
        self,
        api: Api,
        settings: Settings,
        *,
        core: Core,
        now: Callable[[], str],
        index: LiveIndex,
    ) -> None:
        self.api = api
        self.settings = settings
        self.core = core
        self.now = now
        self.index = index

    def reconcile(
        self,
        namespace: str,
        name: str,
        *,
        check_drift: bool = False,
        shared: Sharing | None = None,
    ) -> Report:
        """With `shared`, models bind to platform offers as the settings' policy says."""
        state = self.index.state(namespace, name)
        if state is None:
            return Report(result="gone")
        app = state.app
        if app["metadata"].get("deletionTimestamp"):
            return self._finalize(state, shared or Sharing())
        if app.get("spec", {}).get("suspend"):
            return Report(result="suspended", bound={})
        report = Report()
        try:
            text, file = self._read_compose(app, fresh=check_drift)
            plan = self._plan(app, text, file, shared, report, check_drift=check_drift)
        except ComposeError as error:
            report.result = "invalid"
            report.bound = {}
            outcome = status.Outcome("InvalidCompose", tuple(error.messages))
            self._report(state, None, outcome, {}, report)
            return report
        except ComposeSourceMissing as error:
            outcome = status.Outcome("ComposeSourceMissing", (str(error),))
            self._report(state, None, outcome, {}, report)
            raise kopf.TemporaryError(str(error)) from error
        served, unready = (shared or Sharing()).served, (shared or Sharing()).unready
        if plan.waiting:
            messages = tuple(why for _, why in plan.waiting)
            self._report(state, None, status.Outcome("WaitingForOffer", messages), {}, report)
            return report
        live = dict(state.objects)
        try:
            self._read_binding_targets(namespace, plan, live)
        except ApiError as error:
            outcome = status.Outcome(
                "ReconcileFailed", (str(error),), served=served, unready_offers=unready
            )
            self._report(state, plan, outcome, {}, report)
            raise kopf.TemporaryError(str(error)) from error
        changes = diffing.diff(
            plan,
            live,
            app=app,
            check_drift=check_drift,
            serving=bool(shared and shared.serving),
            build_env_patch=self.core.build_env_patch,
        )
        taken = changes.conflicts
        conflicted: dict[str, str] = {}
        if not taken:
            try:
                conflicted = self._execute(app, changes, live, report)
            except NameConflict as error:
                taken = (str(error),)
            except ApiError as error:
                outcome = status.Outcome(
                    "ReconcileFailed", (str(error),), served=served, unready_offers=unready
                )
                self._report(state, plan, outcome, {}, report)
                raise kopf.TemporaryError(str(error)) from error
        if taken:
            message = "names already used by objects this ComposeApp does not own: " + ", ".join(
                taken
            )
            outcome = status.Outcome(
                "NameConflict", (message,), served=served, unready_offers=unready
            )
            self._report(state, plan, outcome, {}, report)
            return report
        missing = self._missing_secrets(namespace, plan)
        if plan.refusals:
            messages = tuple(why for _, why in plan.refusals)
            outcome = status.Outcome("SharingRefused", messages, served=served)
        else:
            refused = {**(changes.refused or {}), **conflicted}
            outcome = status.Outcome(
                refused=refused, served=served, unready_offers=unready, missing_secrets=missing
            )
        deployments = {n: obj for (kind, n), obj in live.items() if kind == "Deployment"}
        self._report(state, plan, outcome, deployments, report)
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

    def _read_compose(self, app: Manifest, *, fresh: bool) -> tuple[str, str]:
        """The Compose text and the file name messages should name.

        A ConfigMap carrying the app label is watched; any other is read once and again at
        each resync (`fresh`).
        """
        spec = app.get("spec", {})
        if "compose" in spec:
            return spec["compose"], "spec.compose"
        ref = spec.get("composeFrom", {}).get("configMapKeyRef", {})
        namespace = app["metadata"]["namespace"]
        config_map = self._config_map(namespace, ref.get("name", ""), fresh=fresh)
        if config_map is None:
            raise ComposeSourceMissing(f"ConfigMap {ref.get('name')} not found in {namespace}")
        data = config_map.get("data", {})
        if ref.get("key") not in data:
            raise ComposeSourceMissing(f"ConfigMap {ref.get('name')} has no key {ref.get('key')}")
        text: str = data[ref["key"]]
        return text, f"configmap/{ref['name']}/{ref['key']}"

    def _config_map(self, namespace: str, name: str, *, fresh: bool) -> Manifest | None:
        """A ConfigMap an app reads: from the index when a watch delivers it (labelled), else
        read once and again at each resync (`fresh`)."""
        config_map = self.index.config_map(namespace, name, fresh=fresh)
        if config_map is None:
            config_map = self.api.get(kube.CONFIG_MAPS, namespace, name)
            self.index.remember_config_map(namespace, name, config_map)
        return config_map

    def _read_files(
        self, app: Manifest, compose_bytes: int, *, fresh: bool
    ) -> projectfiles.CarriedFiles:
        """spec.files, with the content of every ConfigMap key it refers to (binaryData
        decoded). Raises ComposeSourceMissing for a ConfigMap or key that does not exist
        (yet), and ComposeError for entries that are invalid whatever the cluster holds."""
        entries = app.get("spec", {}).get("files")
        namespace = app["metadata"]["namespace"]
        referenced: dict[tuple[str, str], str | bytes] = {}
        for name, key in projectfiles.references(entries):
            config_map = self._config_map(namespace, name, fresh=fresh)
            if config_map is None:
                raise ComposeSourceMissing(f"spec.files: ConfigMap {name} not found in {namespace}")
            if key in config_map.get("data", {}):
                referenced[name, key] = config_map["data"][key]
            elif key in config_map.get("binaryData", {}):
                referenced[name, key] = base64.b64decode(config_map["binaryData"][key])
            else:
                raise ComposeSourceMissing(f"spec.files: ConfigMap {name} has no key {key}")
        return projectfiles.from_spec(entries, referenced, compose_bytes=compose_bytes)

    def _read_binding_targets(
        self, namespace: str, plan: Plan, live: dict[tuple[str, str], Manifest]
    ) -> None:
        """Deployments to bind that the watch does not deliver yet (opted in, not bound)."""
        for binding in plan.bindings:
            key = ("Deployment", binding.deployment)
            if binding.env and key not in live:
                found = self.api.get(kube.DEPLOYMENTS, namespace, binding.deployment)
                if found is not None:
                    live[key] = {**found, "kind": "Deployment"}

    def _plan(
        self,
        app: Manifest,
        text: str,
        file: str,
        shared: Sharing | None,
        report: Report,
        *,
        check_drift: bool,
    ) -> Plan:
        metadata = app["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        spec = app.get("spec", {})
        inline = len(text.encode("utf-8", "surrogatepass")) if "compose" in spec else 0
        project = self.core.load_project(
            text,
            file=file,
            environment=spec.get("environment", {}),
            files=self._read_files(app, inline, fresh=check_drift),
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
            bound = sharing.bindings_in_status(app.get("status", {}) or {})
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
            report.bound = {m.key: m.shared for m in plan.models if m.shared is not None}
        return plan

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        """A namespace's labels (selector offers, selected offerers): from the watch when
        Namespaces are watched, else read; none when unreadable."""
        watched = self.index.namespace_labels(namespace)
        if watched is not None:
            return watched
        try:
            found = self.api.get(kube.NAMESPACES, "", namespace)
        except ApiError:
            return {}
        labels: dict[str, str] = (found or {}).get("metadata", {}).get("labels", {})
        return labels

    def _execute(
        self, app: Manifest, changes: Changes, live: dict[tuple[str, str], Manifest], report: Report
    ) -> dict[str, str]:
        """Make the calls `changes` asks for, in a safe order; `live` follows what they answer.
        Returns the services whose binding the API server refused (a conflict)."""
        namespace, name = app["metadata"]["namespace"], app["metadata"]["name"]
        self._check_names_free(app, changes)
        if changes.finalizer == "add":
            self._ensure_finalizer(app)
        kept = set(changes.bound)
        refused: dict[str, str] = {}
        releases = [release.name for release in changes.releases]
        for change in changes.applies:
            body = change.body
            target = body["metadata"]["name"]
            if change.binding:
                try:
                    # Never forced: a value another manager (Helm, kubectl) set stays theirs.
                    applied = self.api.apply(kube.DEPLOYMENTS, body, force=False)
                except ApiError as error:
                    if error.status != 409:
                        raise
                    refused[change.binding] = (
                        f"Deployment {target}: another field manager already sets these "
                        f"fields, and nothing was taken over ({error}); remove them there, or "
                        "choose other names with endpoint_var / model_var"
                    )
                    before = live.get(("Deployment", target), {}).get("metadata", {}) or {}
                    if (before.get("annotations", {}) or {}).get(BOUND_BY_ANNOTATION) == name:
                        releases.append(target)
                    continue
                kept.add(target)
            else:
                applied = self.api.apply(kube.BY_KIND[body["kind"]], body)
            applied = {"kind": body["kind"], **applied}
            live[diffing.key_of(body)] = applied
            self.index.written(applied)
            report.applied.append(f"{body['kind']}/{target}")
        for release in releases:
            self._release(namespace, release)
            report.released.append(f"Deployment/{release}")
        for prune in changes.prunes:
            self.api.delete(kube.BY_KIND[prune.kind], namespace, prune.name, prune.uid)
            live.pop((prune.kind, prune.name), None)
            self.index.removed(prune.kind, namespace, prune.name, name)
            report.pruned.append(f"{prune.kind}/{prune.name}")
        if not (kept or changes.offers) and FINALIZER in app["metadata"].get("finalizers", []):
            self._remove_finalizer(app)
        if report.applied or report.pruned or report.released:
            report.result = "applied"
        return refused

    def _check_names_free(self, app: Manifest, changes: Changes) -> None:
        """Before creating anything, whether each new name is free. No watch delivers objects
        without our label, so this is the one read a creation needs (a NotFound, as a rule);
        a name another object holds stops the reconcile before any write: nothing
        half-applied, and nobody's object merged with ours."""
        uid = app["metadata"]["uid"]
        taken = []
        for change in changes.applies:
            if change.reason != "missing" or change.binding:
                continue
            metadata = change.body["metadata"]
            resource = kube.BY_KIND[change.body["kind"]]
            found = self.api.get(resource, metadata["namespace"], metadata["name"])
            if found is not None and not diffing.owned_by(found, uid):
                taken.append(f"{change.body['kind']}/{metadata['name']}")
        if taken:
            raise NameConflict(", ".join(taken))

    def _release(self, namespace: str, name: str) -> None:
        """Apply an empty body under our manager: the server drops every field we set."""
        released = self.api.apply(
            kube.DEPLOYMENTS,
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": namespace},
            },
        )
        self.index.written({"kind": "Deployment", **released})

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
        self._written_app(app, updated)
        metadata["finalizers"] = updated.get("metadata", {}).get(
            "finalizers", [*finalizers, FINALIZER]
        )

    def _remove_finalizer(self, app: Manifest) -> None:
        metadata = app["metadata"]
        finalizers = list(metadata.get("finalizers", []))
        index = finalizers.index(FINALIZER)
        path = f"/metadata/finalizers/{index}"
        patch = [{"op": "test", "path": path, "value": FINALIZER}, {"op": "remove", "path": path}]
        updated = self.api.patch(
            kube.COMPOSE_APPS, metadata["namespace"], metadata["name"], patch, patch_type="json"
        )
        self._written_app(app, updated)
        metadata["finalizers"] = [f for f in finalizers if f != FINALIZER]

    def _written_app(self, app: Manifest, updated: Manifest) -> None:
        if updated.get("metadata", {}).get("name"):
            self.index.written({"apiVersion": app["apiVersion"], "kind": app["kind"], **updated})

    def _finalize(self, state: AppState, shared: Sharing) -> Report:
        """Deletion: give bound Deployments back what they had; owned objects go by GC.

        An app whose offer still serves other apps waits: they move first (their own model,
        or Stalled under `require`), so no app's env ever names a Service that is gone.
        """
        app = state.app
        report = Report(result="deleted", offers=())
        if FINALIZER not in app["metadata"].get("finalizers", []):
            return report
        namespace, name = app["metadata"]["namespace"], app["metadata"]["name"]
        for (kind, deployment), obj in state.objects.items():
            annotations = obj["metadata"].get("annotations", {}) or {}
            if kind == "Deployment" and annotations.get(BOUND_BY_ANNOTATION) == name:
                self._release(namespace, deployment)
                report.released.append(f"Deployment/{deployment}")
        if shared.serving:
            return report
        self._remove_finalizer(app)
        return report

    def _report(
        self,
        state: AppState,
        plan: Plan | None,
        outcome: status.Outcome,
        deployments: Mapping[str, Manifest],
        report: Report,
    ) -> None:
        app = state.app
        metadata = app["metadata"]
        previous = app.get("status", {})
        new = status.build_status(
            generation=metadata.get("generation", 0),
            plan=plan,
            outcome=outcome,
            deployments=deployments,
            pods=state.pods,
            previous=previous,
            now=self.now(),
            stall_after_crashes=self.settings.stall_after_crashes,
        )
        patch = status.status_patch(previous, new)
        if patch is not None:
            updated = self.api.patch(
                kube.COMPOSE_APPS,
                metadata["namespace"],
                metadata["name"],
                {"status": patch},
                subresource="status",
            )
            self._written_app(app, updated)
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
