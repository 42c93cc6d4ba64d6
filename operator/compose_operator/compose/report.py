"""The collector every loading step writes to: problems (fatal) and warnings (ignored keys).

Steps never raise on bad input; they record a problem at a path and carry on, so one
`ComposeError` lists everything wrong. Lines come from the YAML marks the reader kept per path.
Both lists keep the first `MAX_LISTED` entries and count the rest ("and N more"): a hostile
file of 65,000 unknown keys costs no more than a hundred, and its status stays small.
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


def clip(text: str, limit: int = 80) -> str:
    """A user's text in a message, at most `limit` characters of it."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def suggestion(key: str, valid: Iterable[str]) -> str:
    """`; did you mean 'context_size'?` for a near miss, else an empty string."""
    if len(key) > 80:
        return ""  # difflib is quadratic; no real key is that long
    close = difflib.get_close_matches(key, sorted(valid), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


MAX_LISTED = 100
"""Problems (and warnings) listed one by one; the rest are counted."""


class Report:
    def __init__(self, file: str | None = None) -> None:
        self.file = file
        """The file this report reads, when it is not the main Compose file."""
        self.lines: dict[str, int] = {}
        self.origins: dict[str, str] = {}
        """Path → file, for lines adopted from another file (an include, an extends base)."""
        self.problems: list[Problem] = []
        self.found = 0
        """Problems found, listed or not: a step compares it before and after a read."""
        self._warnings: list[tuple[int, Warning]] = []
        self._warned: set[tuple[str, str]] = set()
        self._unlisted_warnings = 0

    @property
    def full(self) -> bool:
        """No further problem will be listed: steps may skip work that only words one."""
        return self.found >= MAX_LISTED

    @property
    def warnings(self) -> tuple[Warning, ...]:
        """In file order (stable for warnings on one line)."""
        listed = tuple(w for _, w in sorted(self._warnings, key=lambda pair: pair[0]))
        if self._unlisted_warnings:
            return (*listed, Warning("", f"and {self._unlisted_warnings} more warnings"))
        return listed

    def sorted_problems(self) -> tuple[Problem, ...]:
        """In file order, the main file's first; problems with a whole file first; the unlisted
        ones counted."""
        listed = tuple(
            sorted(self.problems, key=lambda p: (p.file is not None, p.file or "", p.line or 0))
        )
        unlisted = self.found - len(self.problems)
        if unlisted:
            return (*listed, Problem("", f"and {unlisted} more problems"))
        return listed

    def problem(self, path: str, message: str, line: int | None = None) -> None:
        origin: str | None = None
        if line is None and not self.full:
            line, origin = self.locate(path)
        self.add(Problem(path, message, line, origin or self.file))

    def add(self, problem: Problem) -> None:
        """A problem made elsewhere (another file's name on it), counted like any other."""
        if not self.full:
            self.problems.append(problem)
        self.found += 1

    def warn(self, path: str, message: str) -> None:
        self.warn_at(self.line(path) or 0, Warning(path, message))

    def line(self, path: str) -> int | None:
        """The line of `path`, or of its nearest located ancestor (a value made by a default)."""
        return self.locate(path)[0]

    def locate(self, path: str) -> tuple[int | None, str | None]:
        """The line of `path` (or its nearest located ancestor) and the file it is in, when
        that is not this report's own."""
        while path:
            if path in self.lines:
                return self.lines[path], self.origins.get(path)
            cut = max(path.rfind("."), path.rfind("["))
            path = path[:cut] if cut > 0 else ""
        return None, None

    def adopt(self, other: Report, *, rename: tuple[str, str] | None = None) -> None:
        """Take another file's problems and warnings, and its lines for paths this report
        has not located (renamed from `rename[0]` to `rename[1]` for an extends base)."""
        room = max(0, MAX_LISTED - len(self.problems))
        self.problems += other.problems[:room]
        self.found += other.found
        for line, warning in other._warnings:
            self.warn_at(line, warning)
        for path, line in other.lines.items():
            target = path
            if rename is not None:
                old, new = rename
                if path != old and not path.startswith((f"{old}.", f"{old}[")):
                    continue
                target = new + path[len(old) :]
            if target not in self.lines:
                self.lines[target] = line
                origin = other.origins.get(path, other.file)
                if origin is not None:
                    self.origins[target] = origin

    def warn_at(self, line: int, warning: Warning) -> None:
        if (warning.path, warning.message) in self._warned:
            return
        if len(self._warnings) >= MAX_LISTED:
            self._unlisted_warnings += 1
            return
        self._warned.add((warning.path, warning.message))
        self._warnings.append((line, warning))

    def unknown_key(self, path: str, key: str, valid: Iterable[str]) -> None:
        if self.full:  # no suggestion to compute for a problem nobody will read
            self.problem(child(path, key), "unknown key")
            return
        self.problem(child(path, key), f"unknown key '{clip(key)}'{suggestion(key, valid)}")
