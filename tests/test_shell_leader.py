"""Leader election on a Lease: one leader, takeover after the lease runs out, no double writes."""

from __future__ import annotations

import copy
from typing import Any

from compose_operator.shell.kube import ApiError, Manifest, Resource
from compose_operator.shell.leader import LeaderElector, Timing
from tests.shell_fakes import UnexpectedApi, merge_patch

NS = "operators"


class LeaseApi(UnexpectedApi):
    """The Lease part of the API server: create, get, merge patch with a resourceVersion
    precondition (409 when it is stale), as coordination.k8s.io behaves."""

    def __init__(self) -> None:
        self.lease: Manifest | None = None
        self.version = 0
        self.requests: list[str] = []

    def get(self, resource: Resource, namespace: str, name: str) -> Manifest | None:
        self.requests.append("get")
        return copy.deepcopy(self.lease)

    def create(self, resource: Resource, namespace: str, body: Manifest) -> Manifest:
        self.requests.append("create")
        if self.lease is not None:
            raise ApiError(409, "AlreadyExists", "leases exists")
        self.version += 1
        self.lease = {**copy.deepcopy(body), "metadata": {**body["metadata"]}}
        self.lease["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(self.lease)

    def patch(self, resource: Resource, namespace: str, name: str, patch: Any, **_: Any) -> Any:
        self.requests.append("patch")
        assert self.lease is not None
        expected = patch.get("metadata", {}).get("resourceVersion")
        if expected is not None and expected != self.lease["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", "the object has been modified")
        self.version += 1
        self.lease = merge_patch(self.lease, patch)
        self.lease["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(self.lease)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def elector(api: LeaseApi, identity: str, clock: Clock, events: list[str]) -> LeaderElector:
    return LeaderElector(
        api,
        NS,
        identity,
        on_started_leading=lambda: events.append(f"{identity} leads"),
        on_stopped_leading=lambda: events.append(f"{identity} stops"),
        timing=Timing(lease_duration=8, renew_deadline=6, retry_period=2),
        clock=clock,
    )


def test_one_leader_renews_without_reading_and_the_standby_waits_out_the_lease() -> None:
    api, clock = LeaseApi(), Clock()
    events: list[str] = []
    first, second = elector(api, "a", clock, events), elector(api, "b", clock, events)
    assert first.try_acquire_or_renew()
    assert not second.try_acquire_or_renew()
    api.requests.clear()
    for _ in range(3):
        clock.now += 2
        assert first.try_acquire_or_renew()
        assert not second.try_acquire_or_renew()
    assert api.requests == ["patch", "get"] * 3, "the leader renews from its last write"

    # The leader is killed: nothing renews. The standby's own clock decides, from the moment
    # it last saw the record change, never the leader's timestamps.
    clock.now += 7
    assert not second.try_acquire_or_renew()
    clock.now += 2
    assert second.try_acquire_or_renew()
    assert api.lease is not None
    assert (api.lease["spec"]["holderIdentity"], api.lease["spec"]["leaseTransitions"]) == ("b", 1)
    # The old leader, were it only paused, finds the Lease taken and does not write.
    assert not first.try_acquire_or_renew()
    assert api.lease["spec"]["holderIdentity"] == "b"


def test_a_paused_leader_cannot_renew_over_its_successor() -> None:
    api, clock = LeaseApi(), Clock()
    events: list[str] = []
    first, second = elector(api, "a", clock, events), elector(api, "b", clock, events)
    assert first.try_acquire_or_renew()
    assert not second.try_acquire_or_renew()
    clock.now += 9  # `a` is paused (a long GC, a frozen node), not dead
    assert second.try_acquire_or_renew()
    # `a` wakes up and renews from its last write: the resourceVersion precondition refuses
    # it, and the record it then reads names `b`.
    assert not first.try_acquire_or_renew()
    assert api.lease is not None and api.lease["spec"]["holderIdentity"] == "b"


def test_a_stopping_leader_releases_the_lease_for_an_immediate_takeover() -> None:
    api, clock = LeaseApi(), Clock()
    events: list[str] = []
    first, second = elector(api, "a", clock, events), elector(api, "b", clock, events)
    assert first.try_acquire_or_renew()
    assert not second.try_acquire_or_renew()
    first.release()
    assert api.lease is not None and api.lease["spec"].get("holderIdentity") is None
    assert second.try_acquire_or_renew(), "no waiting for the lease duration"
