"""A service's `models:` attribute: which models it uses and the variables that carry them.

Short syntax `models: [llm]`, long syntax `models: {llm: {endpoint_var: AI_URL}}` (a null
value means the defaults). Default names follow Docker Compose 2.39.2+ (`pkg/compose/model.go`):
`env_prefix(key)` + `_URL` and `_MODEL`.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from typing import Any

from compose_operator.compose import values
from compose_operator.compose.report import Report, child, clip, item
from compose_operator.project import ModelBinding

BINDING_KEYS = ("endpoint_var", "model_var")
VARIABLE = re.compile(r"^[A-Z_][A-Z0-9_.]*$")
"""A binding's variable name: what Compose derives from a model key (upper case, `-` → `_`,
dots kept). Which names are off limits is the operator's policy (`deniedEnvNames`)."""


def env_prefix(key: str) -> str:
    """The variable prefix Compose derives from a model key: upper case, `-` → `_`, nothing
    else (`embedding-model` → `EMBEDDING_MODEL`, `my.model` → `MY.MODEL`)."""
    return key.upper().replace("-", "_")


def parse_bindings(
    value: Any, service: str, path: str, declared: Collection[str], report: Report
) -> tuple[ModelBinding, ...]:
    """The bindings of one service; `path` is `services.<name>.models`.

    Bindings that share a variable load: Compose accepts them. Whether they can be served is
    the planner's call, by the `modelEndpoint` setting (one gateway URL serves them all).
    """
    bindings: list[ModelBinding] = []
    for key, options, entry_path in _entries(value, path, report):
        if key not in declared:
            report.problem(entry_path, f'service "{service}" refers to undefined model {key}')
            continue
        binding = _binding(key, options, entry_path, report)
        if binding is not None:
            bindings.append(binding)
    return tuple(bindings)


def _entries(value: Any, path: str, report: Report) -> Iterable[tuple[str, dict[str, Any], str]]:
    """(model key, options, path) for both syntaxes."""
    if isinstance(value, list):
        seen: set[str] = set()
        for index, entry in enumerate(value):
            key = values.nonempty_string(entry, item(path, index), report)
            if key is None:
                continue
            if key in seen:
                report.problem(item(path, index), f"model {key} is listed twice")
                continue
            seen.add(key)
            yield key, {}, item(path, index)
        return
    if not isinstance(value, dict):
        values.expected(report, path, "a list of model keys or a mapping", value)
        return
    for key, options in value.items():
        entry_path = child(path, key)
        if options is None:
            yield key, {}, entry_path
            continue
        fields = values.mapping(options, entry_path, report)
        if fields is not None:
            values.unknown_keys(fields, entry_path, BINDING_KEYS, report)
            yield key, fields, entry_path


def _binding(key: str, options: dict[str, Any], path: str, report: Report) -> ModelBinding | None:
    prefix = env_prefix(key)
    names = []
    paths = []
    for var_key, default in (("endpoint_var", f"{prefix}_URL"), ("model_var", f"{prefix}_MODEL")):
        var_path = child(path, var_key) if var_key in options else path
        name = values.string(options.get(var_key, default), var_path, report)
        if name is None:
            return None
        names.append(_checked(name, var_key, var_key in options, var_path, report))
        paths.append(var_path)
    endpoint, model = names
    if endpoint is None or model is None:
        return None
    return ModelBinding(
        model=key, endpoint_var=endpoint, model_var=model, endpoint_at=paths[0], model_at=paths[1]
    )


def _checked(name: str, var_key: str, explicit: bool, path: str, report: Report) -> str | None:
    hint = "" if explicit else f" (derived from the model key; choose a name with {var_key})"
    if not VARIABLE.match(name):
        report.problem(
            path,
            f"{clip(name)!r} is not a variable name a binding may set: capital letters, digits, "
            f"'_' and '.', not starting with a digit{hint}",
        )
        return None
    return name
