"""Glue between kopf's triggers and the reconciler: the index, the queue, the resync, the lead.

The reconciler is synchronous (the `kubernetes` client is), so each reconcile runs in a worker
thread of a pool as large as the queue's workers: that bounds the requests in flight. The
per-app queue keeps two reconciles of one app from overlapping.

Both replicas of an HA install feed their indexes from the watches; only the one that holds
the lease reconciles (`shell/leader.py`), and taking the lead reconciles every app once, from
the warm index. A replica that is not leading, or is stopping, sends no request at all: the
gate (`Gate`) refuses each request before it leaves, so SIGTERM ends a reconcile at its next
request, not at its last.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import kopf

from compose_operator.shell.index import LiveIndex
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
        index: LiveIndex | None = None,
        workers: int = 8,
        leading: bool = True,
    ) -> None:
        self.reconciler = reconciler
        self.metrics = metrics
        self.resync_seconds = resync_seconds
        self.sharing = sharing
        self.index = index if index is not None else LiveIndex()
        self.queue = ReconcileQueue(
            self._work, expected=(kopf.TemporaryError, ApiError), workers=workers
        )
        self.leading = leading
        """Whether this replica reconciles; a standby only keeps its index warm."""
        self.stopping = False
        self._threads = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="reconcile"
        )
        self.warm = False
        """Set by the first event handler: kopf runs them only once every index is built."""
        self.by_uid: dict[tuple[str, str], Key] = {}
        """(namespace, UID) → (namespace, name) of every ComposeApp seen."""
        self.pending: set[Key] = set()
        """Apps an index update affected, enqueued by the next event handler: kopf runs index
        handlers for the whole initial listing first, so on start-up nothing is reconciled
        against a half-built index."""

    # fed by kopf's handlers

    def prepare(self, key: Key, spec: Mapping[str, Any], generation: Any) -> None:
        """The costly half of observing an app (parsing its Compose text); thread-safe."""
        if self.sharing is not None and "compose" in spec:
            self.sharing.parse(key, spec, generation)

    def app_observed(self, key: Key, body: Mapping[str, Any]) -> None:
        """Every ComposeApp body kopf sees, before any handler (the indexes)."""
        changed = self.index.observe("ComposeApp", body)
        if changed is not None:
            self.pending.add(changed)
        uid = body.get("metadata", {}).get("uid")
        if uid:
            self.by_uid[key[0], uid] = key
        if self.sharing is not None:
            self.pending |= self.sharing.observe(key, body)
            self._record_sharing()

    def object_observed(self, kind: str, body: Mapping[str, Any]) -> None:
        changed = self.index.observe(kind, body)
        if changed is not None:
            self.pending.add(changed)

    def object_deleted(self, kind: str, body: Mapping[str, Any]) -> None:
        changed = self.index.observe(kind, body, deleted=True)
        if changed is not None:
            self.pending.add(changed)
        self.flush()

    def app_deleted(self, key: Key, body: Mapping[str, Any] | None = None) -> None:
        gone = {"metadata": {"namespace": key[0], "name": key[1]}}
        self.index.observe("ComposeApp", body or gone, deleted=True)
        self.by_uid = {uid: app for uid, app in self.by_uid.items() if app != key}
        self.pending.discard(key)
        self.queue.forget(key)
        self.metrics.forget_app(key)
        if self.sharing is not None:
            self.pending |= self.sharing.forget(key)
            self._record_sharing()
        self.flush()

    def namespace_changed(self, namespace: str, body: Mapping[str, Any], *, deleted: bool) -> None:
        """A namespace's labels decide what selector offers admit."""
        self.index.observe("Namespace", body, deleted=deleted)
        if self.sharing is not None:
            self._fan_out(self.sharing.apps_to_check_in(namespace))

    def trigger(self, key: Key) -> None:
        """Something the app depends on changed (its ConfigMap, a binding). An opt-in
        annotation may name the app by its UID instead of its name."""
        self._fan_out([self.by_uid.get(key, key)])

    def flush(self) -> None:
        if not self.warm:
            self.warm = True
            self.pending.update(self.index.keys())
        pending, self.pending = self.pending, set()
        self._fan_out(pending)

    def _fan_out(self, keys: Iterable[Key], *, resync: bool = False) -> None:
        if not self.leading or self.stopping:
            return  # taking the lead reconciles everything anyway
        for key in sorted(keys):
            self.queue.enqueue(key, resync=resync)

    def _record_sharing(self) -> None:
        if self.sharing is not None:
            totals = self.sharing.totals()
            self.metrics.record_sharing(
                offers=totals.offers,
                bound_apps=totals.bound_apps,
                gpu_deployments_avoided=totals.gpu_deployments_avoided,
            )

    # the lead, the resync, shutdown

    def start_leading(self) -> None:
        """Every app once, with the drift comparison: whatever the last leader left undone."""
        self.leading = True
        if self.warm:
            self.pending.clear()
            self._fan_out(self.index.keys(), resync=True)

    def stop_leading(self) -> None:
        self.leading = False

    def allowed(self) -> bool:
        """Whether a request may leave now (the gate of `KubeApi.gated`)."""
        return self.leading and not self.stopping

    async def resync_forever(self) -> None:
        """Every app again, with the drift comparison, however quiet the watches are."""
        while True:
            await asyncio.sleep(self.resync_seconds)
            self._fan_out(self.index.keys(), resync=True)

    async def stop(self) -> None:
        """Drop queued work and refuse further requests; reconciles end at their next one."""
        self.stopping = True
        await self.queue.close()
        self._threads.shutdown(wait=False, cancel_futures=True)

    # one reconcile

    async def _work(self, key: Key, resync: bool) -> float | None:
        """One reconcile; returns seconds after which to reconcile the app again, or None."""
        if not self.allowed():
            return None
        namespace, name = key
        extra = {"app": f"{namespace}/{name}"}
        shared = self.sharing.view(key) if self.sharing is not None else None
        loop = asyncio.get_running_loop()
        with self.metrics.timed():
            try:
                report = await loop.run_in_executor(
                    self._threads,
                    lambda: self.reconciler.reconcile(
                        namespace, name, check_drift=resync, shared=shared
                    ),
                )
            except Exception:
                if not self.allowed():
                    return None  # refused by the gate: stopping, or the lead was lost
                self.metrics.reconciles.labels(result="error").inc()
                raise
        self.metrics.reconciles.labels(result=report.result).inc()
        if self.sharing is not None and report.result != "gone":
            affected = self.sharing.learn(
                key, offers=report.offers, wants=report.wants, bound=report.bound
            )
            self._record_sharing()
            for other in sorted(affected):
                self.metrics.sharing_triggers.inc()
                self.queue.enqueue(other)
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
