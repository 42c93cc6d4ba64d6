"""Typed reads of loaded YAML values: each returns the value or None after recording a problem.

Strings that are whole numbers or `true`/`false` count as numbers and booleans where the
Compose spec wants one, since interpolation (`context_size: ${CTX}`) always yields strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from compose_operator.compose.report import Report, child, item

_WHOLE_NUMBER = re.compile(r"^[+-]?[0-9]{1,12}$")
INT32_MAX = 2**31 - 1
"""Kubernetes counts (replicas, GPUs, probe seconds) are int32; so is a sane context size."""


def show(value: Any) -> str:
    """A value as a user would recognise it in a message."""
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**60:
        return "a number of more than 60 digits"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return str(value)


def scalar_text(value: Any) -> str | None:
    """A scalar as the string Compose would make of it (`true`, `8080`); None for others."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None


def expected(report: Report, path: str, what: str, value: Any) -> None:
    report.problem(path, f"must be {what}, got {show(value)}")


def string(value: Any, path: str, report: Report) -> str | None:
    if isinstance(value, str):
        return value
    expected(report, path, "a string", value)
    return None


def nonempty_string(value: Any, path: str, report: Report) -> str | None:
    if isinstance(value, str) and value:
        return value
    expected(report, path, "a non-empty string", value)
    return None


def integer(value: Any, path: str, report: Report, *, minimum: int = 0) -> int | None:
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _WHOLE_NUMBER.match(value.strip()):
        number = int(value.strip())
    if number is not None and number > INT32_MAX:
        expected(report, path, f"at most {INT32_MAX}", value)
        return None
    if number is not None and number >= minimum:
        return number
    what = "a positive integer" if minimum == 1 else f"an integer of at least {minimum}"
    expected(report, path, what, value)
    return None


def boolean(value: Any, path: str, report: Report) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    expected(report, path, "true or false", value)
    return None


def mapping(value: Any, path: str, report: Report) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    expected(report, path, "a mapping", value)
    return None


def sequence(value: Any, path: str, report: Report) -> list[Any] | None:
    if isinstance(value, list):
        return value
    expected(report, path, "a list", value)
    return None


def string_list(value: Any, path: str, report: Report) -> tuple[str, ...] | None:
    """A list of strings; a lone string is refused (`runtime_flags: --foo` is a mistake)."""
    items = sequence(value, path, report)
    if items is None:
        return None
    strings = [string(element, item(path, index), report) for index, element in enumerate(items)]
    if any(element is None for element in strings):
        return None
    return tuple(element for element in strings if element is not None)


def string_map(value: Any, path: str, report: Report) -> dict[str, str] | None:
    """A mapping of strings; scalar values are turned into their text (`gpu: true` → "true")."""
    entries = mapping(value, path, report)
    if entries is None:
        return None
    result: dict[str, str] = {}
    for key, element in entries.items():
        text = scalar_text(element)
        if text is None:
            expected(report, child(path, key), "a string", element)
        else:
            result[key] = text
    return result


def key_value_list(value: Any, path: str, report: Report, *, bare: str | None) -> dict[str, str]:
    """Compose's list-or-dict (`labels`): `["k=v"]` or `{k: v}` folded into one mapping.

    A list entry with no `=` takes the value `bare`, or is an error when `bare` is None.
    """
    result: dict[str, str] = {}
    if isinstance(value, dict):
        for key, element in value.items():
            text = "" if element is None else scalar_text(element)
            if text is None:
                expected(report, child(path, key), "a string", element)
            else:
                result[key] = text
        return result
    if not isinstance(value, list):
        expected(report, path, "a list of key=value strings or a mapping", value)
        return result
    for index, element in enumerate(value):
        entry = string(element, item(path, index), report)
        if entry is None:
            continue
        key, equals, text = entry.partition("=")
        if not key or (not equals and bare is None):
            expected(report, item(path, index), "key=value", entry)
        else:
            result[key] = text if equals else (bare or "")
    return result


def unknown_keys(
    entries: Mapping[str, Any], path: str, allowed: Iterable[str], report: Report
) -> None:
    """An error, with the closest valid key, for each key neither allowed nor `x-*`."""
    valid = list(allowed)
    for key in entries:
        if key not in valid and not key.startswith("x-"):
            report.unknown_key(path, key, valid)
