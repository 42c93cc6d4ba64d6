"""Glue between kopf's triggers and the reconciler: the queue, the resync loop, metrics, logs.

The reconciler is synchronous (the `kubernetes` client is), so each reconcile runs in a
worker thread; the per-app queue keeps two reconciles of one app from overlapping.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import kopf

from compose_operator.shell.kube import ApiError
from compose_operator.shell.metrics import Metrics
from compose_operator.shell.queue import Key, ReconcileQueue
from compose_operator.shell.reconcile import Reconciler
from compose_operator.shell.sharing import SharingIndex

logger = logging.getLogger("compose_operator.reconcile")


class Controller:
    def __init__(
        self,
        reconciler: Reconciler,
        metrics: Metrics,
        *,
        resync_seconds: float,
        sharing: SharingIndex | None = None,
    ) -> None:
        self.reconciler = reconciler
        self.metrics = metrics
        self.resync_seconds = resync_seconds
        self.sharing = sharing
        self.queue = ReconcileQueue(self._work, expected=(kopf.TemporaryError, ApiError))
        self.known: set[Key] = set()
        self.by_uid: dict[tuple[str, str], Key] = {}
        """(namespace, UID) → (namespace, name) of every ComposeApp seen."""
        self.pending: set[Key] = set()
        """Apps an index update affected, re-reconciled by the next event handler: kopf runs
        index handlers for the whole initial listing first, so on start-up nothing is
        reconciled against a half-built index."""

    def prepare(self, key: Key, spec: Mapping[str, Any], generation: Any) -> None:
        """The costly half of observing an app (parsing its Compose text); thread-safe."""
        if self.sharing is not None and "compose" in spec:
            self.sharing.parse(key, spec, generation)

    def app_observed(self, key: Key, body: Mapping[str, Any]) -> None:
        """Every ComposeApp body kopf sees, before any handler (the sharing index)."""
        uid = body.get("metadata", {}).get("uid")
        if uid:
            self.by_uid[key[0], uid] = key
        if self.sharing is not None:
            self.pending |= self.sharing.observe(key, body)
            self._record_sharing()

    def app_changed(self, key: Key) -> None:
        self.known.add(key)
        self.queue.enqueue(key)
        self.flush()

    def app_deleted(self, key: Key) -> None:
        self.known.discard(key)
        self.by_uid = {uid: app for uid, app in self.by_uid.items() if app != key}
        self.queue.forget(key)
        self.metrics.forget_app(key)
        if self.sharing is not None:
            self.pending |= self.sharing.forget(key)
            self._record_sharing()
        self.flush()

    def namespace_changed(self, namespace: str) -> None:
        """A namespace's labels decide what selector offers admit."""
        if self.sharing is not None:
            self._fan_out(self.sharing.apps_to_check_in(namespace))

    def flush(self) -> None:
        pending, self.pending = self.pending, set()
        self._fan_out(pending)

    def _fan_out(self, keys: Iterable[Key]) -> None:
        for key in sorted(keys):
            self.metrics.sharing_triggers.inc()
            self.queue.enqueue(key)

    def _record_sharing(self) -> None:
        if self.sharing is not None:
            totals = self.sharing.totals()
            self.metrics.record_sharing(
                offers=totals.offers,
                bound_apps=totals.bound_apps,
                gpu_deployments_avoided=totals.gpu_deployments_avoided,
            )

    def trigger(self, key: Key) -> None:
        """Something the app depends on changed (an owned object, its ConfigMap, a binding).
        An opt-in annotation may name the app by its UID instead of its name."""
        self.queue.enqueue(self.by_uid.get(key, key))

    async def resync_forever(self) -> None:
        """Every app again, with the drift comparison, however quiet the watches are."""
        while True:
            await asyncio.sleep(self.resync_seconds)
            for key in sorted(self.known):
                self.queue.enqueue(key, resync=True)

    async def _work(self, key: Key, resync: bool) -> float | None:
        namespace, name = key
        extra = {"app": f"{namespace}/{name}"}
        with self.metrics.timed():
            try:
                shared = self.sharing.view(key) if self.sharing is not None else None
                report = await asyncio.to_thread(
                    self.reconciler.reconcile, namespace, name, check_drift=resync, shared=shared
                )
            except Exception:
                self.metrics.reconciles.labels(result="error").inc()
                raise
        self.metrics.reconciles.labels(result=report.result).inc()
        if self.sharing is not None and report.result != "gone":
            affected = self.sharing.learn(
                key, offers=report.offers, wants=report.wants, bound=report.bound
            )
            self._record_sharing()
            self._fan_out(affected)
        if report.result in {"gone", "deleted"}:
            self.metrics.forget_app(key)
        else:
            self.metrics.record_app(
                key, ready=report.ready, models=report.models, ready_models=report.ready_models
            )
        if report.applied or report.pruned or report.released or report.events:
            logger.info(
                "reconciled (%s): applied %s, pruned %s, released %s, events %s",
                report.result,
                report.applied,
                report.pruned,
                report.released,
                report.events,
                extra=extra,
            )
        else:
            logger.debug("reconciled (%s): nothing to do", report.result, extra=extra)
        return report.recheck_after
