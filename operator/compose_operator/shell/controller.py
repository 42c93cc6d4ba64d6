"""Glue between kopf's triggers and the reconciler: the queue, the resync loop, metrics, logs.

The reconciler is synchronous (the `kubernetes` client is), so each reconcile runs in a
worker thread; the per-app queue keeps two reconciles of one app from overlapping.
"""

from __future__ import annotations

import asyncio
import logging

import kopf

from compose_operator.shell.kube import ApiError
from compose_operator.shell.metrics import Metrics
from compose_operator.shell.queue import Key, ReconcileQueue
from compose_operator.shell.reconcile import Reconciler

logger = logging.getLogger("compose_operator.reconcile")


class Controller:
    def __init__(self, reconciler: Reconciler, metrics: Metrics, *, resync_seconds: float) -> None:
        self.reconciler = reconciler
        self.metrics = metrics
        self.resync_seconds = resync_seconds
        self.queue = ReconcileQueue(self._work, expected=(kopf.TemporaryError, ApiError))
        self.known: set[Key] = set()

    def app_changed(self, key: Key) -> None:
        self.known.add(key)
        self.queue.enqueue(key)

    def app_deleted(self, key: Key) -> None:
        self.known.discard(key)
        self.queue.forget(key)
        self.metrics.forget_app(key)

    def trigger(self, key: Key) -> None:
        """Something the app depends on changed (an owned object, its ConfigMap, a binding)."""
        self.queue.enqueue(key)

    async def resync_forever(self) -> None:
        """Every app again, with the drift comparison, however quiet the watches are."""
        while True:
            await asyncio.sleep(self.resync_seconds)
            for key in sorted(self.known):
                self.queue.enqueue(key, resync=True)

    async def _work(self, key: Key, resync: bool) -> None:
        namespace, name = key
        extra = {"app": f"{namespace}/{name}"}
        with self.metrics.timed():
            try:
                report = await asyncio.to_thread(
                    self.reconciler.reconcile, namespace, name, check_drift=resync
                )
            except Exception:
                self.metrics.reconciles.labels(result="error").inc()
                raise
        self.metrics.reconciles.labels(result=report.result).inc()
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
