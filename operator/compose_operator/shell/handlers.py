"""kopf registrations: each handler is a guard and one call into the controller.

Only low-level handlers are used (`on.event`, an index, startup/cleanup, validate): kopf's
change-detection handlers (`on.create/update/resume`) write a diff-base annotation and
progress records to the object on every handled change, and its timers and daemons add
kopf's own finalizer to every ComposeApp. Event handlers write nothing, so the only writes
are the reconciler's own, and steady state sends none. The initial listing of a watch
delivers every existing object as an event, which covers resuming after a restart.

Event handlers are coroutines: they run on the event loop, where the queue lives (kopf runs
plain functions in worker threads).

Triggers, all ending in a reconcile of one app (namespace, name):
- a ComposeApp event (created, changed, listed at start, being deleted);
- a ConfigMap event for a ConfigMap some app reads through `composeFrom` or `spec.files`
  (an index), or one labelled `compose-operator.io/app` (the app's own: the model gateway's
  routing table, `<app>-files`, `<app>-configs`);
- an event on a Deployment, Service or PVC labelled `compose-operator.io/app`, or on a
  Deployment that opted in (annotation) or that we patched (`bound-by` annotation);
- the periodic resync, started at start-up;
- shared models: an index handler feeds every ComposeApp body to the sharing index, which
  names the apps an offer's or a binding's change affects; a Namespace's labels changing
  re-checks the apps in it that selector offers could admit (cluster-wide only).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from compose_operator.compose import projectfiles
from compose_operator.settings import Settings
from compose_operator.shell import webhook
from compose_operator.shell.controller import Controller
from compose_operator.shell.reconcile import (
    APP_LABEL,
    BOUND_BY_ANNOTATION,
    OPT_IN_ANNOTATION,
    Core,
)

COMPOSE_APPS = ("compose-operator.io", "v1alpha1", "composeapps")


def register(
    registry: kopf.OperatorRegistry,
    controller: Controller,
    *,
    validation: tuple[Core, Settings] | None = None,
    watch_namespaces: bool = False,
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
        async def namespace_event(name: str, type: str | None, **_: Any) -> None:
            controller.namespace_changed(name)

    @kopf.on.event(*COMPOSE_APPS, id="compose-app-event", registry=registry)
    async def compose_app_event(type: str, namespace: str | None, name: str, **_: Any) -> None:
        key = (namespace or "", name)
        if type == "DELETED":
            controller.app_deleted(key)
        else:
            controller.app_changed(key)

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
        namespace: str | None, name: str, meta: kopf.Meta, **indexes: Any
    ) -> None:
        sources: kopf.Index[tuple[str, str], str] = indexes["compose_sources"]
        for app in sources.get((namespace or "", name), []):
            controller.trigger((namespace or "", app))
        owner = meta.get("labels", {}).get(APP_LABEL)
        if owner:
            controller.trigger((namespace or "", owner))

    def on_marked(group: str, version: str, plural: str, where: str, key: str) -> None:
        labels = {key: kopf.PRESENT} if where == "labels" else None
        annotations = {key: kopf.PRESENT} if where == "annotations" else None

        @kopf.on.event(
            group,
            version,
            plural,
            id=f"{plural}-{where}-{key}",
            labels=labels,
            annotations=annotations,
            registry=registry,
        )
        async def marked_object_event(namespace: str | None, meta: kopf.Meta, **_: Any) -> None:
            controller.trigger((namespace or "", meta[where][key]))

    on_marked("apps", "v1", "deployments", "labels", APP_LABEL)
    on_marked("", "v1", "services", "labels", APP_LABEL)
    on_marked("", "v1", "persistentvolumeclaims", "labels", APP_LABEL)
    # A pod's state changes (a crash-looping init container) while its Deployment's does not:
    # the status says why a model is not ready as soon as the pod does, not at the next resync.
    on_marked("", "v1", "pods", "labels", APP_LABEL)
    on_marked("apps", "v1", "deployments", "annotations", OPT_IN_ANNOTATION)
    on_marked("apps", "v1", "deployments", "annotations", BOUND_BY_ANNOTATION)

    @kopf.on.login(id="login", registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # An explicit registry does not carry kopf's default login handlers.
        return kopf.login_via_client(**kwargs)

    resync: list[asyncio.Task[None]] = []

    @kopf.on.startup(id="start-resync", registry=registry)
    async def start_resync(**_: Any) -> None:
        resync.append(asyncio.create_task(controller.resync_forever()))

    @kopf.on.cleanup(id="stop-resync", registry=registry)
    async def stop_resync(**_: Any) -> None:
        for task in resync:
            task.cancel()
        await controller.queue.drain()

    if validation is not None:
        core, settings = validation
        _register_validation(registry, core, settings, namespace_labels)


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
        id="validate-compose",
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
