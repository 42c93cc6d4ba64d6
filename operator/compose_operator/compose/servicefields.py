"""Service attributes with a syntax of their own: ports, expose, volumes, healthcheck,
resources, durations and quantities, each turned into the typed shape the planner uses."""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from compose_operator.compose import values
from compose_operator.compose.projectfiles import normalize
from compose_operator.compose.report import Report, child, item
from compose_operator.project import HealthCheck, Port, Resources, VolumeMount

MAX_RANGE = 16
"""A port range expands to one port per number; larger ranges are refused (each is a
Service port and a container port on Kubernetes)."""

MAX_CPUS = 100_000
"""More CPUs than any node has is a typo (and keeps the arithmetic bounded)."""

PORT_KEYS = ("target", "published", "protocol", "host_ip", "mode", "name", "app_protocol")
VOLUME_KEYS = ("type", "source", "target", "read_only", "consistency", "bind", "volume", "tmpfs")
HEALTHCHECK_KEYS = (
    "test",
    "interval",
    "timeout",
    "retries",
    "start_period",
    "start_interval",
    "disable",
)
RESOURCES_KEYS = ("limits", "reservations")
LIMITS_KEYS = ("cpus", "memory", "pids")
RESERVATIONS_KEYS = ("cpus", "memory", "devices", "generic_resources")
DEVICE_KEYS = ("capabilities", "count", "device_ids", "driver", "options")

_PORT = re.compile(
    r"^(?:(?:(?P<ip>\[[0-9a-fA-F:.]+\]|[0-9.]+|[^:\[\]/]*):)?"
    r"(?P<published>[0-9]{1,5}(?:-[0-9]{1,5})?)?:)?"
    r"(?P<target>[0-9]{1,5}(?:-[0-9]{1,5})?)(?:/(?P<protocol>[a-zA-Z]+))?$"
)
_DURATION_PART = re.compile(r"([0-9]{1,12}(?:\.[0-9]{0,12})?|\.[0-9]{1,12})(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": Decimal("1e-9"),
    "us": Decimal("1e-6"),
    "µs": Decimal("1e-6"),
    "μs": Decimal("1e-6"),
    "ms": Decimal("1e-3"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
}
_MEMORY = re.compile(
    r"^([0-9]{1,15}(?:\.[0-9]{1,9})?|\.[0-9]{1,9})\s*([kmgtp]?)(?:i?b)?$", re.IGNORECASE
)
_BINARY_SUFFIXES = (
    ("Pi", 1 << 50),
    ("Ti", 1 << 40),
    ("Gi", 1 << 30),
    ("Mi", 1 << 20),
    ("Ki", 1 << 10),
)
_UNIT_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}


# --- ports -------------------------------------------------------------------------------


def ports(value: Any, path: str, report: Report) -> tuple[Port, ...]:
    entries = values.sequence(value, path, report)
    result: list[Port] = []
    for index, entry in enumerate(entries or []):
        entry_path = item(path, index)
        if isinstance(entry, dict):
            port = _long_port(entry, entry_path, report)
            result.extend([port] if port else [])
        elif isinstance(entry, int | str) and not isinstance(entry, bool):
            result.extend(_short_port(str(entry), entry_path, report))
        else:
            values.expected(report, entry_path, 'a port such as "8080:80" or a mapping', entry)
    return tuple(result)


def _short_port(text: str, path: str, report: Report) -> list[Port]:
    match = _PORT.match(text.strip())
    if match is None:
        values.expected(
            report, path, 'a port such as "8080", "80:8080" or "127.0.0.1:80:8080/udp"', text
        )
        return []
    if match["ip"]:
        report.warn(path, f"host IP {match['ip']} has no meaning on Kubernetes; ignored")
    protocol = _protocol(match["protocol"] or "tcp", path, report)
    targets = _port_range(match["target"], path, report)
    published = _port_range(match["published"], path, report) if match["published"] else None
    if protocol is None or targets is None or (match["published"] and published is None):
        return []
    if published is None:
        return [Port(target=target, protocol=protocol) for target in targets]
    if len(published) != len(targets):
        report.problem(path, f"{text}: the published and target ranges differ in length")
        return []
    return [
        Port(target=target, published=host, protocol=protocol)
        for host, target in zip(published, targets, strict=True)
    ]


def _port_range(text: str, path: str, report: Report) -> list[int] | None:
    first, _, last = text.partition("-")
    start, end = int(first), int(last or first)
    if not 1 <= start <= end <= 65535:
        report.problem(path, f"{text} is not a port or an ascending range of ports (1-65535)")
        return None
    if end - start >= MAX_RANGE:
        report.problem(path, f"the range {text} has more than {MAX_RANGE} ports; list them")
        return None
    return list(range(start, end + 1))


def _protocol(text: str, path: str, report: Report) -> Literal["TCP", "UDP"] | None:
    lowered = text.lower()
    if lowered == "tcp":
        return "TCP"
    if lowered == "udp":
        return "UDP"
    report.problem(path, f"protocol must be tcp or udp, got {text!r}")
    return None


def _long_port(entry: dict[str, Any], path: str, report: Report) -> Port | None:
    values.unknown_keys(entry, path, PORT_KEYS, report)
    for key in ("host_ip", "mode", "name", "app_protocol"):
        if key in entry:
            report.warn(child(path, key), "no meaning on Kubernetes; ignored")
    if "target" not in entry:
        report.problem(path, "'target' is required: the container port")
        return None
    target = _port_number(entry["target"], child(path, "target"), report)
    published = None
    if "published" in entry:
        published = _port_number(entry["published"], child(path, "published"), report)
    protocol_text = values.string(entry.get("protocol", "tcp"), child(path, "protocol"), report)
    protocol = _protocol(protocol_text, child(path, "protocol"), report) if protocol_text else None
    if target is None or protocol is None or ("published" in entry and published is None):
        return None
    return Port(target=target, published=published, protocol=protocol)


def _port_number(value: Any, path: str, report: Report) -> int | None:
    number = values.integer(value, path, report, minimum=1)
    if number is not None and number > 65535:
        values.expected(report, path, "a port number (1-65535)", value)
        return None
    return number


def expose(value: Any, path: str, report: Report) -> tuple[int, ...]:
    entries = values.sequence(value, path, report)
    result: list[int] = []
    for index, entry in enumerate(entries or []):
        text = values.scalar_text(entry) if not isinstance(entry, bool) else None
        match = re.match(
            r"^([0-9]{1,5}(?:-[0-9]{1,5})?)(?:/(tcp|udp))?$", text or "", re.IGNORECASE
        )
        if match is None:
            values.expected(report, item(path, index), 'a port such as "8080" or "8080/tcp"', entry)
            continue
        result.extend(_port_range(match[1], item(path, index), report) or [])
    return tuple(result)


# --- volumes -----------------------------------------------------------------------------


def is_host_path(source: str) -> bool:
    """Compose reads a source as a host path (a bind mount) when it looks like one."""
    return source.startswith(("/", "./", "../", "~")) or source in (".", "..")


def volumes(
    value: Any, path: str, service: str, named: Collection[str], report: Report
) -> tuple[VolumeMount, ...]:
    entries = values.sequence(value, path, report)
    mounts: list[VolumeMount] = []
    for index, entry in enumerate(entries or []):
        entry_path = item(path, index)
        if isinstance(entry, str):
            mount = _short_volume(entry, entry_path, report)
        elif isinstance(entry, dict):
            mount = _long_volume(entry, entry_path, report)
        else:
            values.expected(report, entry_path, 'a volume such as "data:/var/lib/data"', entry)
            continue
        if mount is None:
            continue
        if not mount.bind and mount.source not in named:
            report.problem(
                entry_path, f'service "{service}" refers to undefined volume {mount.source}'
            )
            continue
        mounts.append(mount)
    return tuple(mounts)


def _short_volume(text: str, path: str, report: Report) -> VolumeMount | None:
    parts = text.split(":")
    if len(parts) == 1:
        report.warn(path, "an anonymous volume keeps nothing on Kubernetes; ignored")
        return None
    if len(parts) > 3 or not parts[0] or not parts[1].startswith("/"):
        values.expected(
            report, path, 'SOURCE:/container/path[:ro], e.g. "data:/var/lib/data"', text
        )
        return None
    options = parts[2].split(",") if len(parts) == 3 else []
    bind = is_host_path(parts[0])
    source = normalize("", parts[0]) if bind else parts[0]
    return VolumeMount(source=source, target=parts[1], read_only="ro" in options, bind=bind)


def _long_volume(entry: dict[str, Any], path: str, report: Report) -> VolumeMount | None:
    values.unknown_keys(entry, path, VOLUME_KEYS, report)
    kind = entry.get("type")
    if kind in ("tmpfs", "npipe", "cluster", "image"):
        report.warn(path, f"a {kind} mount has no meaning on Kubernetes; ignored")
        return None
    if kind not in ("volume", "bind"):
        values.expected(
            report, child(path, "type"), "volume, bind, tmpfs, npipe, cluster or image", kind
        )
        return None
    for key in ("consistency", "bind", "volume", "tmpfs"):
        if key in entry:
            report.warn(child(path, key), "no meaning on Kubernetes; ignored")
    source = values.nonempty_string(entry.get("source"), child(path, "source"), report)
    target = values.nonempty_string(entry.get("target"), child(path, "target"), report)
    read_only = values.boolean(entry.get("read_only", False), child(path, "read_only"), report)
    if source is None or target is None or read_only is None:
        return None
    bind = kind == "bind"
    return VolumeMount(
        source=normalize("", source) if bind else source,
        target=target,
        read_only=read_only,
        bind=bind,
    )


# --- healthcheck -------------------------------------------------------------------------


def healthcheck(value: Any, path: str, report: Report) -> HealthCheck | None:
    fields = values.mapping(value, path, report)
    if fields is None:
        return None
    values.unknown_keys(fields, path, HEALTHCHECK_KEYS, report)
    if "start_interval" in fields:
        report.warn(child(path, "start_interval"), "no meaning on Kubernetes; ignored")
    disabled = values.boolean(fields.get("disable", False), child(path, "disable"), report)
    test = _test(fields["test"], child(path, "test"), report) if "test" in fields else None
    timings = {
        key: duration(fields[key], child(path, key), report)
        for key in ("interval", "timeout", "start_period")
        if key in fields
    }
    retries = None
    if "retries" in fields:
        retries = values.integer(fields["retries"], child(path, "retries"), report)
    if disabled or test == ():
        return None
    if test is None:
        if "test" not in fields:
            report.warn(
                path,
                "without 'test' Compose keeps the image's check, which Kubernetes does not run;"
                " ignored",
            )
        return None
    return HealthCheck(
        test=test,
        interval_seconds=timings.get("interval") or 30,
        timeout_seconds=timings.get("timeout") or 30,
        retries=3 if retries is None else retries,
        start_period_seconds=timings.get("start_period") or 0,
    )


def _test(value: Any, path: str, report: Report) -> tuple[str, ...] | None:
    """An exec command; `()` for `["NONE"]`, None after a problem."""
    if isinstance(value, str):
        return ("/bin/sh", "-c", value)
    words = values.string_list(value, path, report)
    if words is None:
        return None
    if not words:
        values.expected(
            report, path, 'a command such as ["CMD", "curl", "-f", "http://localhost"]', value
        )
        return None
    kind, rest = words[0], words[1:]
    if kind == "NONE":
        return ()
    if kind == "CMD" and rest:
        return rest
    if kind == "CMD-SHELL" and rest:
        return ("/bin/sh", "-c", " ".join(rest))
    report.problem(
        path, f"must start with CMD, CMD-SHELL or NONE and name a command, got {list(words)!r}"
    )
    return None


def duration(value: Any, path: str, report: Report) -> int | None:
    """A Go duration (`1m30s`, `10s`, `500ms`) in whole seconds, rounded up."""
    text = value if isinstance(value, str) else None
    if text == "0":
        return 0
    if text and _DURATION_PART.sub("", text) == "":
        total = sum(
            Decimal(number) * _DURATION_UNITS[unit] for number, unit in _DURATION_PART.findall(text)
        )
        if total <= values.INT32_MAX:
            return math.ceil(total)
    values.expected(report, path, 'a duration such as "10s", "1m30s" or "500ms"', value)
    return None


# --- resources ---------------------------------------------------------------------------


def cpus(value: Any, path: str, report: Report) -> str | None:
    """Docker's CPU count ("0.5", 2) as a Kubernetes quantity ("500m", "2")."""
    try:
        cores = Decimal(values.scalar_text(value) or "x") if not isinstance(value, bool) else None
    except InvalidOperation:
        cores = None
    if cores is None or not cores.is_finite() or not 0 < cores <= MAX_CPUS:
        values.expected(report, path, 'a positive number of CPUs such as "0.5"', value)
        return None
    if cores == cores.to_integral_value():
        return str(int(cores))
    return f"{math.ceil(cores * 1000)}m"


def memory(value: Any, path: str, report: Report) -> str | None:
    """Docker's byte size ("512m", "1.5GB", 1073741824) as a Kubernetes quantity ("1536Mi").

    Docker's units are binary (k = 1024), so they map to Ki/Mi/Gi; the largest unit that
    keeps a whole number is used, and bytes are rounded up.
    """
    text = values.scalar_text(value) if not isinstance(value, bool) else None
    match = _MEMORY.match(text.strip()) if text else None
    if match is None:
        values.expected(report, path, 'a memory size such as "512m" or "1g"', value)
        return None
    size = Decimal(match[1]) * (1024 ** _UNIT_POWERS[match[2].lower()])
    amount = math.ceil(size)
    if amount <= 0:
        values.expected(report, path, "a positive memory size", value)
        return None
    for suffix, unit in _BINARY_SUFFIXES:
        if amount % unit == 0:
            return f"{amount // unit}{suffix}"
    return str(amount)


def resources(value: Any, path: str, report: Report) -> Resources:
    """`deploy.resources`: limits, reservations (requests) and GPU device reservations."""
    fields = values.mapping(value, path, report) or {}
    values.unknown_keys(fields, path, RESOURCES_KEYS, report)
    limits_path = child(path, "limits")
    limits = values.mapping(fields.get("limits", {}), limits_path, report) or {}
    values.unknown_keys(limits, limits_path, LIMITS_KEYS, report)
    reservations_path = child(path, "reservations")
    reservations = values.mapping(fields.get("reservations", {}), reservations_path, report) or {}
    values.unknown_keys(reservations, reservations_path, RESERVATIONS_KEYS, report)
    for key, section, section_path in (
        ("pids", limits, limits_path),
        ("generic_resources", reservations, reservations_path),
    ):
        if key in section:
            report.warn(child(section_path, key), "no meaning on Kubernetes; ignored")
    gpus = 0
    if "devices" in reservations:
        gpus = _gpus(reservations["devices"], child(reservations_path, "devices"), report)
    return Resources(
        cpu_limit=_read(limits, "cpus", limits_path, report, cpus),
        memory_limit=_read(limits, "memory", limits_path, report, memory),
        cpu_request=_read(reservations, "cpus", reservations_path, report, cpus),
        memory_request=_read(reservations, "memory", reservations_path, report, memory),
        gpus=gpus,
    )


def _read(fields: dict[str, Any], key: str, path: str, report: Report, read: Any) -> Any:
    return read(fields[key], child(path, key), report) if key in fields else None


def _gpus(value: Any, path: str, report: Report) -> int:
    """GPUs reserved by `devices` entries whose capabilities include `gpu`."""
    total = 0
    for index, entry in enumerate(values.sequence(value, path, report) or []):
        entry_path = item(path, index)
        device = values.mapping(entry, entry_path, report)
        if device is None:
            continue
        values.unknown_keys(device, entry_path, DEVICE_KEYS, report)
        capabilities = values.string_list(
            device.get("capabilities", []), child(entry_path, "capabilities"), report
        )
        if not capabilities or "gpu" not in capabilities:
            report.warn(
                entry_path, "only GPU device reservations have a meaning on Kubernetes; ignored"
            )
            continue
        if "device_ids" in device:
            ids = values.string_list(device["device_ids"], child(entry_path, "device_ids"), report)
            report.warn(
                child(entry_path, "device_ids"),
                "Kubernetes picks the GPUs; only their number is kept",
            )
            total += len(ids or ())
            continue
        count = device.get("count", "all")
        if count == "all":
            report.warn(
                entry_path, "count: all reserves one GPU on Kubernetes; give a number for more"
            )
            total += 1
            continue
        total += values.integer(count, child(entry_path, "count"), report) or 0
    return total
