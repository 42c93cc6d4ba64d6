"""A per-app work queue: a fixed number of workers, no overlap per app, coalescing, backoff.

kopf's event handlers are fire-and-forget (no retries) and its timers and daemons add kopf's
own finalizer to every object, so serialising, retrying and resyncing are done here, the way
controller-runtime's workqueue does them:
- a fixed number of workers (`workers`), so reconciles of different apps run in parallel and
  the requests in flight stay bounded (each reconcile sends one request at a time);
- one app is never reconciled twice at once; triggers for an app that is waiting join it, and
  triggers that arrive while it runs make it run once more afterwards, however many they were;
- triggers from watches go before resync work, so one edit never waits behind a thousand
  periodic checks;
- a failed reconcile is retried after an exponential backoff (1 s doubling to 5 min), reset by
  the next success; a successful reconcile may ask to run again after a delay (it waits for
  something no watch reports, such as a Secret the operator may only read), which is no
  failure and grows no backoff. Expected failures (API errors, kopf.TemporaryError) are logged
  in one line; anything else is a bug and logged with its traceback, and retried all the same,
  so one app's bad luck never stops the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
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
    workers: int = 8
    _waiting: dict[Key, bool] = field(default_factory=dict)
    """Keys queued and not started yet → whether a resync asked."""
    _urgent: deque[Key] = field(default_factory=deque)
    _background: deque[Key] = field(default_factory=deque)
    _running: dict[Key, bool | None] = field(default_factory=dict)
    """Keys being reconciled → None, or the resync flag of a trigger that came meanwhile."""
    _failures: dict[Key, int] = field(default_factory=dict)
    _retries: dict[Key, asyncio.TimerHandle] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _ready: asyncio.Event | None = None
    _idle: asyncio.Event | None = None

    def enqueue(self, key: Key, *, resync: bool = False) -> None:
        """Ask for a reconcile of `key` soon; joins one already waiting."""
        self._start()
        if key in self._running:
            previous = self._running[key]
            self._running[key] = resync if previous is None else previous or resync
            return
        if key in self._waiting:
            if self._waiting[key] is True and not resync and key not in self._urgent:
                self._urgent.append(key)  # a watch trigger promotes queued resync work
            self._waiting[key] = self._waiting[key] or resync
            return
        self._waiting[key] = resync
        (self._background if resync else self._urgent).append(key)
        self._wake()

    def forget(self, key: Key) -> None:
        retry = self._retries.pop(key, None)
        if retry is not None:
            retry.cancel()
        self._failures.pop(key, None)

    def tracked(self) -> int:
        """Apps the queue holds any state for (waiting, running, failures, retries): an app
        that is gone leaves nothing behind."""
        return len({*self._waiting, *self._running, *self._failures, *self._retries})

    async def drain(self) -> None:
        """Wait until nothing is queued or running (tests)."""
        while self._waiting or self._running:
            assert self._idle is not None
            self._idle.clear()
            await self._idle.wait()

    async def close(self) -> None:
        """Stop the workers at once: queued work is dropped, running work is cancelled."""
        for retry in self._retries.values():
            retry.cancel()
        self._retries.clear()
        self._waiting.clear()
        self._urgent.clear()
        self._background.clear()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def _start(self) -> None:
        if self._tasks:
            return
        self._ready, self._idle = asyncio.Event(), asyncio.Event()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._worker()) for _ in range(self.workers)]

    def _wake(self) -> None:
        if self._ready is not None:
            self._ready.set()

    def _next(self) -> Key | None:
        for source in (self._urgent, self._background):
            while source:
                key = source.popleft()
                if key in self._waiting and key not in self._running:
                    return key
        return None

    async def _worker(self) -> None:
        assert self._ready is not None and self._idle is not None
        while True:
            key = self._next()
            if key is None:
                if not self._running:
                    self._idle.set()
                self._ready.clear()
                await self._ready.wait()
                continue
            resync = self._waiting.pop(key)
            self._running[key] = None
            try:
                await self._run(key, resync)
            finally:
                again = self._running.pop(key)
                if again is not None:
                    self.enqueue(key, resync=again)
                elif not self._waiting and not self._running:
                    self._idle.set()

    async def _run(self, key: Key, resync: bool) -> None:
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
        self._retries[key] = loop.call_later(delay, self._retry, key)

    def _retry(self, key: Key) -> None:
        self._retries.pop(key, None)
        self.enqueue(key)
