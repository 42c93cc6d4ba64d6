"""Leader election on a coordination.k8s.io Lease, as controller-runtime operators do it.

Why a Lease and not kopf's peering: kopf's peering pauses every watch of the operators that are
not the highest-priority peer, so a standby's indexes go cold and taking over starts with a
full relist; it also needs its own cluster-wide CRD (KopfPeering) and writes a heartbeat to it.
A Lease lets both replicas watch and serve the webhook, and only the leader write.

The algorithm is client-go's `leaderelection`: the holder renews `spec.renewTime` every
`retry_period`; a candidate takes the Lease when its record has not changed for
`lease_duration` by the candidate's own clock (never comparing two machines' clocks); every
update carries the resourceVersion read, so two candidates never both win. A leader that
cannot renew for `renew_deadline` stops leading (its requests are refused from then on, see
`KubeApi.gated`) and exits, to come back as a standby with fresh state. A leader that stops
(SIGTERM) releases the Lease, so the standby takes over at its next retry.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from compose_operator.shell import kube
from compose_operator.shell.kube import Api, ApiError, Manifest

logger = logging.getLogger("compose_operator.leader")

LEASE_NAME = "compose-operator"


@dataclass(frozen=True)
class Timing:
    lease_duration: float = 8.0
    """How long a standby waits, after the record last changed, before taking the Lease."""
    renew_deadline: float = 6.0
    """How long a leader keeps leading without a successful renewal."""
    retry_period: float = 2.0
    """How often the leader renews and a standby checks."""


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        api: Api,
        namespace: str,
        identity: str,
        *,
        on_started_leading: Callable[[], None],
        on_stopped_leading: Callable[[], None],
        timing: Timing = Timing(),
        name: str = LEASE_NAME,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.identity = identity
        self.name = name
        self.timing = timing
        self.clock = clock
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self.leading = False
        self._observed: tuple[str, str] | None = None
        """(holder, renewTime) as last read, and when it last changed (our clock)."""
        self._observed_at = 0.0
        self._renewed_at = 0.0
        self._held: Manifest | None = None
        """The Lease as our last successful write returned it: a leader renews from it without
        reading first, and reads only after a conflict."""

    async def run(self) -> None:
        """Campaign, lead, renew, until cancelled (then release) or the lead is lost."""
        try:
            while True:
                acquired = await asyncio.to_thread(self.try_acquire_or_renew)
                now = self.clock()
                if acquired:
                    self._renewed_at = now
                    if not self.leading:
                        self.leading = True
                        logger.info("leading (Lease %s/%s)", self.namespace, self.name)
                        self.on_started_leading()
                elif self.leading and now - self._renewed_at > self.timing.renew_deadline:
                    self.leading = False
                    logger.error("lost the lead: no renewal for %.0fs", self.timing.renew_deadline)
                    self.on_stopped_leading()
                    return
                await asyncio.sleep(self.timing.retry_period)
        except asyncio.CancelledError:
            if self.leading:
                self.leading = False
                self.on_stopped_leading()
                await asyncio.to_thread(self.release)
            raise

    def try_acquire_or_renew(self) -> bool:
        """One round: True when this replica holds the Lease afterwards."""
        try:
            if self._held is not None:
                try:
                    return self._write(self._held, holder=self.identity)
                except ApiError as error:
                    self._held = None
                    if error.status != 409:
                        raise
            lease = self.api.get(kube.LEASES, self.namespace, self.name)
            if lease is None:
                created = self.api.create(
                    kube.LEASES, self.namespace, self._lease(None, transitions=0)
                )
                self._held = created
                return True
            spec = lease.get("spec", {}) or {}
            holder = str(spec.get("holderIdentity") or "")
            record = (holder, str(spec.get("renewTime") or ""))
            if record != self._observed:
                self._observed, self._observed_at = record, self.clock()
            duration = float(spec.get("leaseDurationSeconds") or self.timing.lease_duration)
            expired = self.clock() - self._observed_at > duration
            if holder and holder != self.identity and not expired:
                return False
            return self._write(lease, holder=holder)
        except ApiError as error:
            if error.status not in (0, 409, 404):
                logger.warning("leader election: %s", error)
            return False

    def _write(self, lease: Manifest, *, holder: str) -> bool:
        transitions = int((lease.get("spec", {}) or {}).get("leaseTransitions") or 0)
        if holder != self.identity:
            transitions += 1
        updated = self.api.patch(
            kube.LEASES, self.namespace, self.name, self._lease(lease, transitions=transitions)
        )
        self._held = updated
        updated_spec = updated.get("spec", {}) or {}
        self._observed = (self.identity, str(updated_spec.get("renewTime") or ""))
        self._observed_at = self.clock()
        return True

    def release(self) -> None:
        """Give the Lease up on shutdown: the standby takes over at its next retry."""
        try:
            lease = self.api.get(kube.LEASES, self.namespace, self.name)
            if (
                lease is None
                or (lease.get("spec", {}) or {}).get("holderIdentity") != self.identity
            ):
                return
            self.api.patch(
                kube.LEASES,
                self.namespace,
                self.name,
                {
                    "metadata": {"resourceVersion": lease["metadata"]["resourceVersion"]},
                    "spec": {"holderIdentity": None, "leaseDurationSeconds": 1},
                },
            )
            logger.info("released the lead")
        except ApiError as error:
            logger.warning("releasing the Lease: %s", error)

    def _lease(self, current: Manifest | None, *, transitions: int) -> Manifest:
        now = _now()
        spec: Manifest = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.timing.lease_duration),
            "renewTime": now,
            "leaseTransitions": transitions,
        }
        current_spec = (current or {}).get("spec", {}) or {}
        if current is None or current_spec.get("holderIdentity") != self.identity:
            spec["acquireTime"] = now
        metadata: Manifest = {"name": self.name, "namespace": self.namespace}
        if current is not None:
            # Optimistic concurrency: the patch fails with 409 if anyone wrote in between.
            metadata = {"resourceVersion": current["metadata"]["resourceVersion"]}
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": spec,
        }
