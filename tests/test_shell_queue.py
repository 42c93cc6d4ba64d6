"""The per-app queue: no overlap per app, coalesced bursts, retries with backoff."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from compose_operator.shell.queue import Key, ReconcileQueue

A: Key = ("ns", "a")
B: Key = ("ns", "b")


class Flaky(Exception):
    pass


def test_bursts_coalesce_and_one_app_never_overlaps() -> None:
    calls: list[tuple[Key, bool]] = []
    running: set[Key] = set()
    overlaps: list[Key] = []

    async def work(key: Key, resync: bool) -> None:
        if key in running:
            overlaps.append(key)
        running.add(key)
        calls.append((key, resync))
        await asyncio.sleep(0.01)
        running.discard(key)

    async def scenario() -> None:
        queue = ReconcileQueue(work)
        queue.enqueue(A)
        await asyncio.sleep(0)  # A starts
        for _ in range(5):
            queue.enqueue(A)  # one waiting run absorbs all five
        queue.enqueue(A, resync=True)
        queue.enqueue(B)
        await queue.drain()

    asyncio.run(scenario())
    assert overlaps == []
    assert sorted(calls) == [(A, False), (A, True), (B, False)]


def test_failures_retry_with_growing_delay_until_success() -> None:
    attempts: list[float] = []

    async def work(key: Key, resync: bool) -> None:
        attempts.append(asyncio.get_running_loop().time())
        if len(attempts) < 3:
            raise Flaky("not yet")

    async def scenario() -> ReconcileQueue:
        queue = ReconcileQueue(work, expected=(Flaky,), base_delay=0.02, max_delay=1)
        queue.enqueue(A)
        for _ in range(100):
            await asyncio.sleep(0.01)
            if len(attempts) == 3:
                break
        await queue.drain()
        return queue

    queue = asyncio.run(scenario())
    assert len(attempts) == 3
    first, second = attempts[1] - attempts[0], attempts[2] - attempts[1]
    assert 0.02 <= first < second
    assert queue._failures == {} and queue._retries == {}


def test_an_unexpected_error_is_logged_with_its_traceback_and_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    attempts: list[int] = []

    async def work(key: Key, resync: bool) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise KeyError("bug")

    async def scenario() -> None:
        queue = ReconcileQueue(work, expected=(Flaky,), base_delay=0.01)
        queue.enqueue(A)
        for _ in range(100):
            await asyncio.sleep(0.01)
            if len(attempts) == 2:
                break
        await queue.drain()

    asyncio.run(scenario())
    assert len(attempts) == 2
    (failure,) = caplog.records
    assert failure.exc_info is not None
    assert failure.__dict__["app"] == "ns/a"


def test_an_idle_queue_keeps_no_state_for_apps_it_served() -> None:
    """Issue 12: the per-app lock map was never pruned, so it grew with every app ever seen."""

    async def work(key: Key, resync: bool) -> None:
        await asyncio.sleep(0)

    async def scenario() -> ReconcileQueue:
        queue = ReconcileQueue(work)
        for n in range(50):
            queue.enqueue(("ns", f"app-{n}"))
            queue.enqueue(("ns", f"app-{n}"))
        await queue.drain()
        return queue

    assert asyncio.run(scenario()).tracked() == 0


def test_a_reconcile_that_waits_runs_again_after_its_delay_without_backing_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A Secret the pods mount is read by name, never watched: the reconcile asks to look
    again, at a steady pace, and the wait is no failure (no warning, no growing backoff)."""
    attempts: list[float] = []

    async def work(key: Key, resync: bool) -> float | None:
        attempts.append(asyncio.get_running_loop().time())
        return 0.03 if len(attempts) < 4 else None

    async def scenario() -> ReconcileQueue:
        queue = ReconcileQueue(work, base_delay=10)
        queue.enqueue(A)
        for _ in range(100):
            await asyncio.sleep(0.01)
            if len(attempts) == 4:
                break
        await queue.drain()
        return queue

    queue = asyncio.run(scenario())
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert len(attempts) == 4
    assert all(0.03 <= gap < 0.3 for gap in gaps)
    assert queue.tracked() == 0
    assert caplog.records == []
