"""The collector every loading step writes to: problems (fatal) and warnings (ignored keys).

Steps never raise on bad input; they record a problem at a path and carry on, so one
`ComposeError` lists everything wrong. Lines come from the YAML marks the reader kept per path.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from compose_operator.errors import Problem, Warning


def child(path: str, key: str) -> str:
    """The path of a mapping entry: `models` + `llm` → `models.llm`."""
    return f"{path}.{key}" if path else key


def item(path: str, index: int) -> str:
    """The path of a list item: `runtime_flags` + 2 → `runtime_flags[2]`."""
    return f"{path}[{index}]"


def suggestion(key: str, valid: Iterable[str]) -> str:
    """`; did you mean 'context_size'?` for a near miss, else an empty string."""
    close = difflib.get_close_matches(key, sorted(valid), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


class Report:
    def __init__(self) -> None:
        self.lines: dict[str, int] = {}
        self.problems: list[Problem] = []
        self._warnings: list[tuple[int, Warning]] = []
        self._warned: set[tuple[str, str]] = set()

    @property
    def warnings(self) -> tuple[Warning, ...]:
        """In file order (stable for warnings on one line)."""
        return tuple(warning for _, warning in sorted(self._warnings, key=lambda pair: pair[0]))

    def sorted_problems(self) -> tuple[Problem, ...]:
        """In file order; problems with the whole file first."""
        return tuple(sorted(self.problems, key=lambda problem: problem.line or 0))

    def problem(self, path: str, message: str, line: int | None = None) -> None:
        self.problems.append(Problem(path, message, line or self.line(path)))

    def warn(self, path: str, message: str) -> None:
        if (path, message) not in self._warned:
            self._warned.add((path, message))
            self._warnings.append((self.line(path) or 0, Warning(path, message)))

    def line(self, path: str) -> int | None:
        """The line of `path`, or of its nearest located ancestor (a value made by a default)."""
        while path:
            if path in self.lines:
                return self.lines[path]
            cut = max(path.rfind("."), path.rfind("["))
            path = path[:cut] if cut > 0 else ""
        return None

    def unknown_key(self, path: str, key: str, valid: Iterable[str]) -> None:
        self.problem(child(path, key), f"unknown key '{key}'{suggestion(key, valid)}")
