"""kopf registrations: each handler is a guard and one call into the controller.

Only low-level handlers are used (`on.event`, indexes, startup/cleanup, validate): kopf's
change-detection handlers (`on.create/update/resume`) write a diff-base annotation and
progress records to the object on every handled change, and its timers and daemons add
kopf's own finalizer to every ComposeApp. Event handlers write nothing, so the only writes
are the reconciler's own, and steady state sends none.

Every watch but the ComposeApps' (and the Namespaces', for selector offers) is filtered by the
API server on the label `compose-operator.io/app` (`label_selectors`): the operator receives
its own objects, the Deployments bound to its apps, and the ConfigMaps users labelled, never
the rest of the cluster. kopf's `labels=` on a handler filters on the client side, after the
whole object crossed the network and was decoded; `settings.watching.label_selectors` is what
puts `labelSelector` on the LIST and the WATCH.

Each watched kind has an index handler that feeds the live index (`shell/index.py`): kopf runs
index handlers for the whole initial listing of every kind before any other handler, so no
reconcile ever runs against a half-built index. The event handlers then enqueue what the index
said changed; an event that changed nothing a reconcile reads enqueues nothing.

Triggers, all ending in a reconcile of one app (namespace, name):
- a ComposeApp event that changed its spec, generation, finalizers or deletion (not our own
  status patches), or the initial listing (which covers resuming after a restart);
- a ConfigMap event for a labelled ConfigMap some app reads through `composeFrom` or
  `spec.files` (an index), or one the app owns (the model gateway's routing table,
  `<app>-files`, `<app>-configs`);
- an event on a labelled Deployment, Service, PVC, NetworkPolicy, PodDisruptionBudget or pod
  that changed what the app's status is built from, or deleted an object the app owns;
- the periodic resync, started at start-up, and taking the lead (`shell/leader.py`);
- shared models: the sharing index names the apps an offer's or a binding's change affects; a
  Namespace's labels changing re-checks the apps in it that selector offers could admit
  (cluster-wide only).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from compose_operator import admission
from compose_operator.compose import projectfiles
from compose_operator.settings import Settings
from compose_operator.shell import webhook
from compose_operator.shell.controller import Controller
from compose_operator.shell.reconcile import APP_LABEL, Core

COMPOSE_APPS = ("compose-operator.io", "v1alpha1", "composeapps")

WATCHED = (
    ("apps", "v1", "deployments", "Deployment"),
    ("", "v1", "services", "Service"),
    ("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim"),
    # A pod's state changes (a crash-looping init container) while its Deployment's does not:
    # the status says why a model is not ready as soon as the pod does.
    ("", "v1", "pods", "Pod"),
    ("", "v1", "configmaps", "ConfigMap"),
    # The model gateway's, when it runs more than one replica.
    ("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget"),
)
NETWORK_POLICIES = ("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy")


def watched(*, network_policies: bool) -> tuple[tuple[str, str, str, str], ...]:
    return (*WATCHED, NETWORK_POLICIES) if network_policies else WATCHED


def label_selectors(settings: kopf.OperatorSettings, *, network_policies: bool) -> None:
    """Server-side filtering: every watch but the ComposeApps' sees only labelled objects."""
    for group, _, plural, _ in watched(network_policies=network_policies):
        settings.watching.label_selectors[group, plural] = APP_LABEL


def register(
    registry: kopf.OperatorRegistry,
    controller: Controller,
    *,
    validation: tuple[Core, Settings] | None = None,
    watch_namespaces: bool = False,
    network_policies: bool = False,
    namespace_labels: Callable[[str], Mapping[str, str]] | None = None,
) -> None:
    """Register every handler on `registry`; with `validation`, the admission handler too
    (reading Namespace labels through `namespace_labels` when an offer needs them); with
    `watch_namespaces`, Namespace label changes (for selector offers)."""

    @kopf.index(*COMPOSE_APPS, id="sharing", registry=registry)
    async def sharing_index(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> None:
        key = (namespace or "", name)
        # Parsing a large Compose file takes a while: in a thread, the event loop (every
        # watch, the webhook, the health probes) keeps going.
        spec = copy.deepcopy(dict(body.get("spec", {}) or {}))
        generation = (body.get("metadata", {}) or {}).get("generation")
        await asyncio.to_thread(controller.prepare, key, spec, generation)
        controller.app_observed(key, body)

    if watch_namespaces:

        @kopf.on.event("", "v1", "namespaces", id="namespace-event", registry=registry)
        async def namespace_event(name: str, type: str | None, body: kopf.Body, **_: Any) -> None:
            controller.namespace_changed(name, body, deleted=type == "DELETED")

    @kopf.on.event(*COMPOSE_APPS, id="compose-app-event", registry=registry)
    async def compose_app_event(
        type: str, namespace: str | None, name: str, body: kopf.Body, **_: Any
    ) -> None:
        key = (namespace or "", name)
        if type == "DELETED":
            controller.app_deleted(key, body)
        else:
            controller.flush()

    # The id is the keyword under which kopf hands the index to other handlers.
    @kopf.index(*COMPOSE_APPS, id="compose_sources", registry=registry)
    def compose_sources(
        namespace: str | None, name: str, spec: kopf.Spec, **_: Any
    ) -> dict[tuple[str, str], str] | None:
        """Every ConfigMap the app reads: its Compose file's and its project files'."""
        ref = spec.get("composeFrom", {}).get("configMapKeyRef", {})
        names = [ref["name"]] if ref.get("name") else []
        names += [config_map for config_map, _ in projectfiles.references(spec.get("files"))]
        return {(namespace or "", config_map): name for config_map in names} or None

    @kopf.on.event("", "v1", "configmaps", id="config-map-event", registry=registry)
    async def config_map_event(
        type: str | None, namespace: str | None, name: str, body: kopf.Body, **indexes: Any
    ) -> None:
        if type == "DELETED":
            controller.object_deleted("ConfigMap", body)
        else:
            controller.flush()  # a labelled ConfigMap an app owns (the gateway's routes)
        sources: kopf.Index[tuple[str, str], str] = indexes["compose_sources"]
        for app in sources.get((namespace or "", name), []):
            controller.trigger((namespace or "", app))

    for group, version, plural, kind in watched(network_policies=network_policies):
        _register_live(registry, controller, group, version, plural, kind)

    @kopf.on.login(id="login", registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # An explicit registry does not carry kopf's default login handlers.
        return kopf.login_via_client(**kwargs)

    background: list[asyncio.Task[None]] = []

    @kopf.on.startup(id="start-background", registry=registry)
    async def start_background(**_: Any) -> None:
        background.append(asyncio.create_task(controller.resync_forever()))

    @kopf.on.cleanup(id="stop-background", registry=registry)
    async def stop_background(**_: Any) -> None:
        for task in background:
            task.cancel()
        await controller.stop()

    if validation is not None:
        core, settings = validation
        _register_validation(registry, core, settings, namespace_labels)


def _register_live(
    registry: kopf.OperatorRegistry,
    controller: Controller,
    group: str,
    version: str,
    plural: str,
    kind: str,
) -> None:
    @kopf.index(group, version, plural, id=f"live-{plural}", registry=registry)
    async def live_index(body: kopf.Body, **_: Any) -> None:
        controller.object_observed(kind, body)

    if kind == "ConfigMap":
        return  # config_map_event triggers through the compose_sources index

    @kopf.on.event(group, version, plural, id=f"{plural}-event", registry=registry)
    async def live_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        if type == "DELETED":
            controller.object_deleted(kind, body)
        else:
            controller.flush()


def _register_validation(
    registry: kopf.OperatorRegistry,
    core: Core,
    settings: Settings,
    namespace_labels: Callable[[str], Mapping[str, str]] | None,
) -> None:
    # Creates and updates only: a delete is never refused. Failures are ignored (the reconciler
    # reports invalid Compose anyway), so an operator that is down never blocks edits.
    @kopf.on.validate(
        *COMPOSE_APPS,
        id=admission.HANDLER_ID,
        operations=["CREATE", "UPDATE"],
        ignore_failures=True,
        registry=registry,
    )
    def validate_compose(
        spec: kopf.Spec, namespace: str | None, name: str, meta: kopf.Meta, **_: Any
    ) -> None:
        if meta.get("deletionTimestamp"):
            return  # finalizer removal on the way out is never refused
        app = name or str(meta.get("generateName", "")).rstrip("-") or "app"
        problems = webhook.refusals(
            dict(spec),
            namespace=namespace or "default",
            name=app,
            core=core,
            settings=settings,
            namespace_labels=namespace_labels,
        )
        if problems:
            raise kopf.AdmissionError("\n".join(problems), code=422)
