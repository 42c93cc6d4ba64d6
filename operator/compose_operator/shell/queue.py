"""A per-app work queue: reconciles of one app never overlap, bursts coalesce, failures back off.

kopf's event handlers are fire-and-forget (no retries) and its timers and daemons add
kopf's own finalizer to every object, so serialising, retrying and resyncing are done here:
each key has an asyncio.Lock; a trigger that arrives while a reconcile waits for the lock
joins it instead of queueing another; a failed reconcile is retried after an exponential
backoff (1 s doubling to 5 min), reset by the next success; a successful reconcile may ask
to run again after a delay (it waits for something no watch reports, such as a Secret the
operator may only read), which is no failure and grows no backoff. Expected failures (API errors,
kopf.TemporaryError) are logged in one line; anything else is a bug and logged with its
traceback, and retried all the same, so one app's bad luck never stops the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Key = tuple[str, str]
Work = Callable[[Key, bool], Awaitable[float | None]]
"""Reconcile one app; returns seconds after which to reconcile it again, or None."""

logger = logging.getLogger(__name__)


@dataclass
class ReconcileQueue:
    work: Work
    """Reconciles one app; the flag asks for the drift comparison of a resync."""
    expected: tuple[type[BaseException], ...] = ()
    """Failures logged without a traceback."""
    base_delay: float = 1.0
    max_delay: float = 300.0
    _locks: dict[Key, asyncio.Lock] = field(default_factory=dict)
    _users: dict[Key, int] = field(default_factory=dict)
    """Tasks holding or awaiting each lock; a lock goes when its count reaches zero."""
    _waiting: dict[Key, bool] = field(default_factory=dict)
    _failures: dict[Key, int] = field(default_factory=dict)
    _retries: dict[Key, asyncio.TimerHandle] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def enqueue(self, key: Key, *, resync: bool = False) -> None:
        """Ask for a reconcile of `key` soon; joins one already waiting."""
        if key in self._waiting:
            self._waiting[key] = self._waiting[key] or resync
            return
        self._waiting[key] = resync
        task = asyncio.get_running_loop().create_task(self._run(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def forget(self, key: Key) -> None:
        retry = self._retries.pop(key, None)
        if retry is not None:
            retry.cancel()
        self._failures.pop(key, None)

    async def _run(self, key: Key) -> None:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            await self._locked(key, lock)
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                # Nobody holds or awaits it: an app that is gone leaves nothing behind.
                del self._users[key], self._locks[key]

    async def _locked(self, key: Key, lock: asyncio.Lock) -> None:
        async with lock:
            resync = self._waiting.pop(key)
            try:
                again = await self.work(key, resync)
            except Exception as error:
                failures = self._failures.get(key, 0) + 1
                self._failures[key] = failures
                delay = min(self.base_delay * 2 ** (failures - 1), self.max_delay)
                logger.warning(
                    "reconcile failed, retrying in %.0fs: %s",
                    delay,
                    error,
                    exc_info=not isinstance(error, self.expected),
                    extra={"app": "/".join(key)},
                )
                self._schedule_retry(key, delay)
            else:
                self.forget(key)
                if again is not None:
                    self._schedule_retry(key, again)

    def _schedule_retry(self, key: Key, delay: float) -> None:
        previous = self._retries.pop(key, None)
        if previous is not None:
            previous.cancel()
        loop = asyncio.get_running_loop()
        self._retries[key] = loop.call_later(delay, self.enqueue, key)

    def tracked(self) -> int:
        """Apps the queue holds any state for (locks, waiting runs, failures, retries)."""
        return len({*self._locks, *self._waiting, *self._failures, *self._retries})

    async def drain(self) -> None:
        """Wait for every started reconcile (tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks))
