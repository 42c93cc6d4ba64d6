"""Compose's merge rules for one loaded tree over another (compose-go `override/`).

Used where Compose merges: a service `extends` another, an `include`d file defines a resource
the including file also defines. Mappings merge key by key, lists append, scalars are
replaced, with Compose's special cases: `command`, `entrypoint` and `healthcheck.test` are
replaced whole; `environment`, `labels` (and the other list-or-mapping keys) become `K=V`
lists and append; `models` and `networks` merge as mappings; `depends_on` as mappings with
Compose's defaults; `build` as a mapping. Then `unique` drops earlier entries a later one
redefines (same variable, same mount target, same port), keeping the first position.

`!reset` and `!override` (compose-go `loader/reset.go`) name mapping paths of the overriding
tree: the base's value there is dropped before merging, so a reset removes it and an override
replaces it instead of merging.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

Path = tuple[str, ...]


class MergeError(Exception):
    """Two values of different shapes at one path (a list over a mapping)."""


def _matches(path: Path, pattern: Path) -> bool:
    if len(path) != len(pattern):
        return False
    return all(p in ("*", part) for part, p in zip(path, pattern, strict=True))


def _pattern(text: str) -> Path:
    return tuple(text.split("."))


Merger = Callable[[Any, Any, Path], Any]


def merge(base: Any, other: Any, path: Path = ()) -> Any:
    """`other` merged over `base` (both left untouched); raises MergeError."""
    return _merge(copy.deepcopy(base), copy.deepcopy(other), path)


def _merge(base: Any, other: Any, path: Path) -> Any:
    for pattern, merger in _SPECIALS:
        if _matches(path, pattern):
            return merger(base, other, path)
    if other is None:
        return base
    if isinstance(base, dict):
        if not isinstance(other, dict):
            raise MergeError(f"cannot override {'.'.join(path)}")
        return _merge_mappings(base, other, path)
    if isinstance(base, list):
        if not isinstance(other, list):
            raise MergeError(f"cannot override {'.'.join(path)}")
        return base + other
    return other


def _merge_mappings(base: dict[str, Any], other: dict[str, Any], path: Path) -> dict[str, Any]:
    for key, value in other.items():
        base[key] = _merge(base[key], value, (*path, key)) if key in base else value
    return base


def _go_text(value: Any) -> str:
    """A scalar as Go's `%v` prints it (`true`, `8000`, `1.5`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return str(value)


def _as_sequence(value: Any) -> list[Any]:
    if isinstance(value, dict):
        entries: list[Any] = []
        for key, element in value.items():
            if element is None:
                entries.append(key)
            elif isinstance(element, list):
                entries += [f"{key}={_go_text(e)}" for e in element]
            else:
                entries.append(f"{key}={_go_text(element)}")
        return sorted(entries, key=str)
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        return [value]
    return []


def _as_mapping(value: Any, default: dict[str, Any] | None) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        return {
            str(entry): None if default is None else dict(default)
            for entry in value
            if isinstance(entry, str)
        }
    return {}


def _to_sequence(base: Any, other: Any, _: Path) -> Any:
    return _as_sequence(base) + _as_sequence(other)


def _override(_: Any, other: Any, __: Path) -> Any:
    return other


def _build(base: Any, other: Any, path: Path) -> Any:
    def as_build(value: Any) -> dict[str, Any]:
        return {"context": value} if isinstance(value, str) else _as_mapping(value, None)

    return _merge_mappings(as_build(base), as_build(other), path)


def _depends_on(base: Any, other: Any, path: Path) -> Any:
    default = {"condition": "service_started", "required": True}
    return _merge_mappings(_as_mapping(base, default), _as_mapping(other, default), path)


def _by_key(base: Any, other: Any, path: Path) -> Any:
    return _merge_mappings(_as_mapping(base, None), _as_mapping(other, None), path)


def _extra_hosts(base: Any, other: Any, _: Path) -> Any:
    left = _as_sequence(base)
    return left + [entry for entry in _as_sequence(other) if entry not in left]


def _logging(base: Any, other: Any, path: Path) -> Any:
    if not (isinstance(base, dict) and isinstance(other, dict)):
        return other
    if "driver" not in other or "driver" not in base or other["driver"] == base["driver"]:
        return _merge_mappings(base, other, path)
    return other


_SPECIALS: tuple[tuple[Path, Merger], ...] = tuple(
    (_pattern(pattern), merger)
    for pattern, merger in (
        ("networks.*.labels", _to_sequence),
        ("volumes.*.labels", _to_sequence),
        ("services.*.annotations", _to_sequence),
        ("services.*.build", _build),
        ("services.*.build.args", _to_sequence),
        ("services.*.build.additional_contexts", _to_sequence),
        ("services.*.build.extra_hosts", _extra_hosts),
        ("services.*.build.labels", _to_sequence),
        ("services.*.command", _override),
        ("services.*.depends_on", _depends_on),
        ("services.*.deploy.labels", _to_sequence),
        ("services.*.dns", _to_sequence),
        ("services.*.dns_opt", _to_sequence),
        ("services.*.dns_search", _to_sequence),
        ("services.*.entrypoint", _override),
        ("services.*.env_file", _to_sequence),
        ("services.*.label_file", _to_sequence),
        ("services.*.environment", _to_sequence),
        ("services.*.extra_hosts", _extra_hosts),
        ("services.*.healthcheck.test", _override),
        ("services.*.labels", _to_sequence),
        ("services.*.volumes.*.volume.labels", _to_sequence),
        ("services.*.logging", _logging),
        ("services.*.models", _by_key),
        ("services.*.networks", _by_key),
        ("services.*.sysctls", _to_sequence),
        ("services.*.tmpfs", _to_sequence),
        ("services.*.ulimits.*", _override),
    )
)


# --- unicity ------------------------------------------------------------------------------

Indexer = Callable[[Any], str | None]


def _key_value(entry: Any) -> str | None:
    return entry.partition("=")[0] if isinstance(entry, str) else None


def _volume_target(entry: Any) -> str | None:
    if isinstance(entry, dict):
        target = entry.get("target")
        return target if isinstance(target, str) else None
    if isinstance(entry, str):
        parts = entry.split(":")
        return parts[1] if len(parts) > 1 else parts[0]
    return None


def _mount_target(default: str) -> Indexer:
    def index(entry: Any) -> str | None:
        if isinstance(entry, str):
            return f"{default}/{entry}"
        if isinstance(entry, dict):
            target = entry.get("target")
            return target if isinstance(target, str) else f"{default}/{entry.get('source')}"
        return None

    return index


def _port(entry: Any) -> str | None:
    if isinstance(entry, bool):
        return None
    if isinstance(entry, int | str):
        return str(entry)
    if isinstance(entry, dict) and "target" in entry:
        host = entry.get("host_ip", "0.0.0.0")
        protocol = entry.get("protocol", "tcp")
        return f"{host}:{entry.get('published')}:{entry['target']}/{protocol}"
    return None


def _env_file(entry: Any) -> str | None:
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict) and isinstance(entry.get("path"), str):
        return str(entry["path"])
    return None


def _expose(entry: Any) -> str | None:
    return str(entry) if isinstance(entry, int | str) and not isinstance(entry, bool) else None


_UNIQUE: tuple[tuple[Path, Indexer], ...] = tuple(
    (_pattern(pattern), indexer)
    for pattern, indexer in (
        ("services.*.annotations", _key_value),
        ("services.*.build.args", _key_value),
        ("services.*.build.labels", _key_value),
        ("services.*.build.tags", _key_value),
        ("services.*.cap_add", _key_value),
        ("services.*.cap_drop", _key_value),
        ("services.*.configs", _mount_target("")),
        ("services.*.deploy.labels", _key_value),
        ("services.*.devices", _volume_target),
        ("services.*.dns", _key_value),
        ("services.*.dns_opt", _key_value),
        ("services.*.dns_search", _key_value),
        ("services.*.environment", _key_value),
        ("services.*.env_file", _env_file),
        ("services.*.expose", _expose),
        ("services.*.labels", _key_value),
        ("services.*.links", _key_value),
        ("services.*.ports", _port),
        ("services.*.profiles", _key_value),
        ("services.*.secrets", _mount_target("/run/secrets")),
        ("services.*.sysctls", _key_value),
        ("services.*.tmpfs", _key_value),
        ("services.*.volumes", _volume_target),
    )
)


def unique(document: Any) -> Any:
    """Compose's EnforceUnicity: in the lists it knows, a later entry replaces an earlier
    one with the same key, in the earlier one's position. Entries it cannot index stay.
    Every such list is a service's (or its build's or deploy's): only those are visited."""
    services = document.get("services") if isinstance(document, dict) else None
    if not isinstance(services, dict):
        return document
    deduplicated: dict[str, Any] = {}
    for name, service in services.items():
        if isinstance(service, dict):
            service = dict(service)
            for (_, _, *within), indexer in _UNIQUE:
                _unique_at(service, within, indexer)
        deduplicated[name] = service
    return {**document, "services": deduplicated}


def _unique_at(mapping: dict[str, Any], path: list[str], indexer: Indexer) -> None:
    key, rest = path[0], path[1:]
    value = mapping.get(key)
    if rest:
        if isinstance(value, dict):
            mapping[key] = inner = dict(value)
            _unique_at(inner, rest, indexer)
        return
    if not isinstance(value, list):
        return
    result: list[Any] = []
    positions: dict[str, int] = {}
    for entry in value:
        index = indexer(entry)
        if index is not None and index in positions:
            result[positions[index]] = entry
            continue
        if index is not None:
            positions[index] = len(result)
        result.append(entry)
    mapping[key] = result


def reset(tree: Any, paths: Iterable[Path]) -> Any:
    """`tree` without the mapping entries at `paths` (`*` matches any key)."""
    patterns = list(paths)
    if not patterns:
        return tree

    def walk(value: Any, path: Path) -> Any:
        if isinstance(value, dict):
            return {
                key: walk(element, (*path, key))
                for key, element in value.items()
                if not any(_matches((*path, key), pattern) for pattern in patterns)
            }
        if isinstance(value, list):
            return [walk(element, (*path, "[]")) for element in value]
        return value

    return walk(tree, ())
