"""The one error type the core raises: every problem in the input, each located.

Loading and planning collect problems instead of stopping at the first, so a user fixes
a Compose file in one round trip. The CLI prints them and exits 2; the operator puts them
in the Ready condition, an Event and the webhook's refusal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input, at a dotted path such as `models.llm.context_size`."""

    path: str
    message: str
    line: int | None = None
    file: str | None = None
    """The file the problem is in when it is not the one the error names (an included file,
    an extended service's file)."""

    def render(self, file: str) -> str:
        where = f" (line {self.line})" if self.line is not None else ""
        path = f" {self.path}:" if self.path else ""
        return f"{self.file or file}:{path} {self.message}{where}"


class ComposeError(Exception):
    """The input cannot be turned into Kubernetes objects; retrying will not help."""

    def __init__(self, file: str, problems: Iterable[Problem]) -> None:
        self.file = file
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(self.messages))

    @property
    def messages(self) -> list[str]:
        """Each problem as `FILE: path.to.key: message`."""
        return [problem.render(self.file) for problem in self.problems]


@dataclass(frozen=True)
class Warning:
    """Something in the input that has no meaning on Kubernetes and was ignored."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message
