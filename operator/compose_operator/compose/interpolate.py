"""`${VAR}` interpolation exactly as Compose does it (compose-go `template/template.go`).

Forms: `$VAR`, `${VAR}`, `${VAR:-default}` (unset or empty), `${VAR-default}` (unset),
`${VAR:?message}` / `${VAR?message}` (an error), `${VAR:+replacement}` / `${VAR+replacement}`,
and `$$` for a literal `$`. Names are `[_a-zA-Z][_a-zA-Z0-9]*`. A `$` that starts no variable
(`$(cat)`, `$1`, a `$` at the end) is kept as written, because compose-go's pattern matches
only `$$`, `$NAME` and `${...}`; a `${` that is not a valid `${...}` is an error, as in
Compose. Defaults, messages and replacements may nest (`${A:-${B}}`) and are expanded only
when used. Values come only from the mapping given (the ComposeApp's `spec.environment`),
never from the operator's process.
An unset variable without a default becomes an empty string; the caller warns, as Compose does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from compose_operator.compose.report import Report, child, item
from compose_operator.compose.values import show
from compose_operator.compose.yamlload import MAX_EXPANDED

_NAME = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")
_OPERATORS = (":-", "-", ":?", "?", ":+", "+")
MAX_NESTING = 32
"""Deeper `${A:-${B:-...}}` nesting is refused rather than recursed into."""


class InterpolationError(Exception):
    """The template is malformed, or a required variable has no value."""


class _OverLimit(InterpolationError):
    """The expansion outgrew the characters it may have."""


@dataclass(frozen=True)
class Interpolated:
    value: str
    unset: tuple[str, ...]
    """Variables used without a value or default, in order of first use."""


def interpolate(
    template: str, environment: Mapping[str, str], *, limit: int = MAX_EXPANDED
) -> Interpolated:
    """Expand one string of at most `limit` characters; raises InterpolationError."""
    unset: list[str] = []
    value = _Expander(template, environment, unset, limit).expand(template, 0)
    return Interpolated(value, tuple(dict.fromkeys(unset)))


class TooLarge(Exception):
    """The interpolated document would exceed `MAX_EXPANDED` characters."""


def interpolate_tree(value: Any, path: str, environment: Mapping[str, str], report: Report) -> Any:
    """Every string scalar of a loaded document expanded; mapping keys are left as written.

    An aliased scalar is one string object in the loaded document: it is expanded once
    (memoised), and every place it appears counts towards `MAX_EXPANDED`.
    """
    tree = _Tree(environment, report)
    try:
        return tree.expand(value, path)
    except TooLarge:
        report.problem(
            "",
            f"the file expands to more than {MAX_EXPANDED} characters after interpolation; "
            "refusing it",
        )
        return value


class _Tree:
    def __init__(self, environment: Mapping[str, str], report: Report) -> None:
        self.environment = environment
        self.report = report
        self.size = 0
        self.done: dict[str, Interpolated | InterpolationError] = {}

    def expand(self, value: Any, path: str) -> Any:
        if isinstance(value, str):
            return self.scalar(value, path)
        if isinstance(value, dict):
            return {key: self.expand(element, child(path, key)) for key, element in value.items()}
        if isinstance(value, list):
            return [self.expand(element, item(path, index)) for index, element in enumerate(value)]
        return value

    def scalar(self, value: str, path: str) -> str:
        result = self.done.get(value)
        if result is None:
            try:
                result = interpolate(value, self.environment, limit=MAX_EXPANDED - self.size)
            except InterpolationError as error:
                result = error
            self.done[value] = result
        if isinstance(result, InterpolationError):
            if isinstance(result, _OverLimit):
                raise TooLarge
            self.report.problem(path, str(result))
            return value
        self.size += len(result.value)
        if self.size > MAX_EXPANDED:
            raise TooLarge
        for name in result.unset:
            self.report.warn(path, f'the "{name}" variable is not set; using an empty string')
        return result.value


class _Expander:
    def __init__(
        self, template: str, environment: Mapping[str, str], unset: list[str], limit: int
    ) -> None:
        self.template = template
        self.environment = environment
        self.unset = unset
        self.budget = limit
        """Characters the expansion may still produce (`${X}${X}...` multiplies X)."""

    def emit(self, out: list[str], text: str) -> None:
        self.budget -= len(text)
        if self.budget < 0:
            raise _OverLimit(f"{show(self.template)} expands to too many characters")
        out.append(text)

    def invalid(self) -> InterpolationError:
        return InterpolationError(
            f"invalid interpolation format in {self.template!r}; write $${{ for a literal ${{"
        )

    def expand(self, text: str, depth: int) -> str:
        if depth > MAX_NESTING:
            raise InterpolationError(
                f"interpolation nested deeper than {MAX_NESTING} levels in {self.template!r}"
            )
        out: list[str] = []
        position = 0
        while position < len(text):
            dollar = text.find("$", position)
            if dollar < 0:
                self.emit(out, text[position:])
                break
            self.emit(out, text[position:dollar])
            following = text[dollar + 1 : dollar + 2]
            if following == "$":
                self.emit(out, "$")
                position = dollar + 2
                continue
            if following == "{":
                close = _closing_brace(text, dollar + 1)
                if close < 0:
                    raise self.invalid()
                self.emit(out, self.braced(text[dollar + 2 : close], depth))
                position = close + 1
                continue
            name = _NAME.match(text, dollar + 1)
            if name is None:
                self.emit(out, "$")
                position = dollar + 1
                continue
            self.emit(out, self.lookup(name.group()))
            position = name.end()
        return "".join(out)

    def lookup(self, name: str) -> str:
        value = self.environment.get(name)
        if value is None:
            self.unset.append(name)
            return ""
        return value

    def braced(self, body: str, depth: int) -> str:
        name_match = _NAME.match(body)
        if name_match is None:
            raise self.invalid()
        name = name_match.group()
        rest = body[name_match.end() :]
        if not rest:
            return self.lookup(name)
        operator = next((op for op in _OPERATORS if rest.startswith(op)), None)
        if operator is None:
            raise self.invalid()
        argument = rest[len(operator) :]
        value = self.environment.get(name)
        empty = not value
        if operator in (":-", "-"):
            if value is None or (operator == ":-" and empty):
                return self.expand(argument, depth + 1)
            return value
        if operator in (":?", "?"):
            if value is None or (operator == ":?" and empty):
                message = self.expand(argument, depth + 1)
                suffix = f": {message}" if message else ""
                raise InterpolationError(f"required variable {name} is missing a value{suffix}")
            return value
        if value is not None and (operator == "+" or not empty):
            return self.expand(argument, depth + 1)
        return value or ""


def _closing_brace(text: str, opening: int) -> int:
    """The index of the `}` closing the `{` at `opening`, counting nested braces; else -1."""
    depth = 0
    for index in range(opening, len(text)):
        character = text[index]
        if character == "{":
            depth += 1
        elif character == "}":
            depth -= 1
            if depth == 0:
                return index
    return -1
