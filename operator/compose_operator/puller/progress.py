"""Progress lines on stderr: a pod log shows a model download moving, without flooding it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

MIB = 1024 * 1024


def human_bytes(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    if count < MIB:
        return f"{count / 1024:.1f} KiB"
    if count < 1024 * MIB:
        return f"{count / MIB:.1f} MiB"
    return f"{count / (1024 * MIB):.2f} GiB"


class Progress:
    """One line per layer at most every `interval` seconds, plus one when it completes."""

    def __init__(
        self,
        stream: TextIO,
        *,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._interval = interval
        self._clock = clock
        self._name = ""
        self._total = 0
        self._done = 0
        self._last = 0.0

    def say(self, message: str) -> None:
        print(message, file=self._stream, flush=True)

    def start(self, name: str, total: int, already: int = 0) -> None:
        self._name, self._total, self._done = name, total, already
        self._last = self._clock()
        resumed = f" (resuming at {human_bytes(already)})" if already else ""
        self.say(f"{name}: downloading {human_bytes(total)}{resumed}")

    def advance(self, count: int) -> None:
        self._done += count
        now = self._clock()
        if now - self._last >= self._interval:
            self._last = now
            self._report()

    def finish(self) -> None:
        self._report()

    def _report(self) -> None:
        percent = f" ({100 * self._done // self._total}%)" if self._total else ""
        self.say(f"{self._name}: {human_bytes(self._done)} / {human_bytes(self._total)}{percent}")
