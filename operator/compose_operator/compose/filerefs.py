"""`configs:` and `secrets:`, top level and per service, as Compose means them.

A config's content travels with the app: `content:` and `environment:` (the value from the
interpolation environment) in a ConfigMap the operator owns, `file:` from the project files,
`external: true` or `name:` alone from an existing ConfigMap. A secret never travels: each is
the Kubernetes Secret of its name in the app's namespace (`name:` or `x-kubernetes.secretName`
rename it), and `file:` / `environment:` only say how to make it.

Mounts follow docker compose (`pkg/compose/secrets.go`, `create.go`): a config lands at
`/<name>` (a relative `target` is under `/`), a secret at `/run/secrets/<name>` (a relative
`target` is under `/run/secrets/`); `mode` is octal as in Compose (`0440`, or "0440").
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from compose_operator.compose import values
from compose_operator.compose.projectfiles import ProjectFiles, normalize, not_carried
from compose_operator.compose.report import Report, child, item
from compose_operator.project import Config, FileMount, Secret

CONFIG_KEYS = (
    "file",
    "environment",
    "content",
    "external",
    "name",
    "labels",
    "driver",
    "driver_opts",
    "template_driver",
)
SECRET_KEYS = CONFIG_KEYS
MOUNT_KEYS = ("source", "target", "uid", "gid", "mode")
CONFIG_KUBERNETES_KEYS = ("key",)
SECRET_KUBERNETES_KEYS = ("secretName", "key")
NAME = re.compile(r"^[a-zA-Z0-9._-]+$")
"""A config or secret key (compose-go's schema); also a valid ConfigMap or Secret key."""
_OBJECT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
MAX_MODE = 0o777
CONFIG_DIR = "/"
SECRET_DIR = "/run/secrets/"


def object_name(name: str) -> str:
    """A Compose name as a Kubernetes object name: `mcp_secret` → `mcp-secret`."""
    return name.lower().replace("_", "-")


def valid_object_name(name: str) -> bool:
    return len(name) <= 253 and _OBJECT_NAME.match(name) is not None


def parse_configs(
    value: Any, files: ProjectFiles, environment: Mapping[str, str], report: Report
) -> dict[str, Config]:
    configs: dict[str, Config] = {}
    for name, body in (values.mapping(value, "configs", report) or {}).items():
        path = child("configs", name)
        fields = _fields(name, body, path, CONFIG_KEYS, report)
        if fields is None:
            continue
        key = _kubernetes_key(fields, path, CONFIG_KUBERNETES_KEYS, name, report).get("key", name)
        sources = [k for k in ("file", "environment", "content") if k in fields]
        external = values.boolean(fields.get("external", False), child(path, "external"), report)
        if len(sources) > 1 or (external and sources):
            given = [*sources, *(["external"] if external else [])]
            report.problem(path, f"give one of file, environment, content or external: {given}")
            continue
        if external or not sources:
            configs[name] = _existing_config(name, fields, key, path, external, report)
            continue
        source = sources[0]
        text = values.string(fields[source], child(path, source), report)
        if text is None:
            continue
        if source == "content":
            configs[name] = Config(name=name, content=text)
        elif source == "environment":
            if text not in environment:
                report.problem(
                    child(path, source),
                    f'environment variable "{text}" required by config "{name}" is not set',
                )
                continue
            configs[name] = Config(name=name, content=environment[text])
        else:
            file = normalize("", text)
            if files.get(file) is None:
                report.problem(child(path, "file"), not_carried(file))
                continue
            configs[name] = Config(name=name, file=file)
    return configs


def _existing_config(
    name: str, fields: dict[str, Any], key: str, path: str, external: bool | None, report: Report
) -> Config:
    written = fields.get("name")
    if not external and written is None:
        report.problem(path, "a config needs file, environment, content, external or name")
    config_map = written if isinstance(written, str) and written else object_name(name)
    if not valid_object_name(config_map):
        report.problem(
            child(path, "name") if written else path,
            f"{config_map!r} is not a ConfigMap name; give the ConfigMap's name with `name:`",
        )
    return Config(name=name, config_map=config_map, key=key)


def parse_secrets(value: Any, report: Report) -> dict[str, Secret]:
    secrets: dict[str, Secret] = {}
    for name, body in (values.mapping(value, "secrets", report) or {}).items():
        path = child("secrets", name)
        fields = _fields(name, body, path, SECRET_KEYS, report)
        if fields is None:
            continue
        options = _kubernetes_key(fields, path, SECRET_KUBERNETES_KEYS, name, report)
        if "content" in fields:
            report.problem(
                child(path, "content"),
                "a secret's value never travels in the Compose file on Kubernetes; put it in "
                f"a Secret (kubectl create secret generic {object_name(name)} ...)",
            )
            continue
        written = options.get("secretName") or fields.get("name")
        secret_name = written if isinstance(written, str) and written else object_name(name)
        if not valid_object_name(secret_name):
            report.problem(
                path,
                f"{secret_name!r} is not a Secret name; name the Secret with "
                "x-kubernetes.secretName",
            )
            continue
        if not written and secret_name != name:
            report.warn(
                path,
                f"its Kubernetes Secret is {secret_name} (Secret names hold no '_' or upper "
                "case); x-kubernetes.secretName chooses another",
            )
        file = fields.get("file")
        variable = fields.get("environment")
        secrets[name] = Secret(
            name=name,
            secret_name=secret_name,
            key=options.get("key", name),
            file=normalize("", file) if isinstance(file, str) and file else None,
            environment=variable if isinstance(variable, str) and variable else None,
        )
    return secrets


def _fields(
    name: str, body: Any, path: str, keys: Collection[str], report: Report
) -> dict[str, Any] | None:
    if not NAME.match(name):
        report.problem(path, "a name holds only letters, digits, '.', '_' and '-'")
        return None
    fields = {} if body is None else values.mapping(body, path, report)
    if fields is None:
        return None
    values.unknown_keys(fields, path, keys, report)
    for ignored in ("labels", "driver", "driver_opts", "template_driver"):
        if ignored in fields:
            report.warn(child(path, ignored), "no meaning on Kubernetes; ignored")
    return fields


def _kubernetes_key(
    fields: dict[str, Any], path: str, keys: Collection[str], name: str, report: Report
) -> dict[str, str]:
    """`x-kubernetes` options, each a string; `key` must be a valid ConfigMap/Secret key."""
    if fields.get("x-kubernetes") is None:
        return {}
    options_path = child(path, "x-kubernetes")
    options = values.mapping(fields["x-kubernetes"], options_path, report) or {}
    values.unknown_keys(options, options_path, keys, report)
    result: dict[str, str] = {}
    for key in keys:
        if key in options:
            text = values.nonempty_string(options[key], child(options_path, key), report)
            if text is not None:
                result[key] = text
    if "key" in result and not NAME.match(result["key"]):
        report.problem(
            child(options_path, "key"), "a key holds only letters, digits, '.', '_', '-'"
        )
        result.pop("key")
    return result


def parse_mounts(
    value: Any, path: str, service: str, kind: str, declared: Collection[str], report: Report
) -> tuple[FileMount, ...]:
    """A service's `configs:` or `secrets:` (`kind`), with Compose's default targets."""
    directory = SECRET_DIR if kind == "secrets" else CONFIG_DIR
    singular = kind[:-1]
    mounts: list[FileMount] = []
    for index, entry in enumerate(values.sequence(value, path, report) or []):
        entry_path = item(path, index)
        fields = {"source": entry} if isinstance(entry, str) else entry
        if not isinstance(fields, dict):
            values.expected(report, entry_path, f"a {singular} name or {{source, target}}", entry)
            continue
        values.unknown_keys(fields, entry_path, MOUNT_KEYS, report)
        source = values.nonempty_string(fields.get("source"), child(entry_path, "source"), report)
        if source is None:
            continue
        if source not in declared:
            report.problem(
                entry_path, f'service "{service}" refers to undefined {singular} {source}'
            )
            continue
        target: str | None = source
        if "target" in fields:
            target = values.nonempty_string(fields["target"], child(entry_path, "target"), report)
        if target is None:
            continue
        if not target.startswith("/"):
            target = directory + target
        mode = (
            _mode(fields["mode"], child(entry_path, "mode"), report) if "mode" in fields else None
        )
        ids = {}
        for key in ("uid", "gid"):
            if key in fields:
                text = values.scalar_text(fields[key])
                if text is None or not text.isdigit():
                    values.expected(report, child(entry_path, key), "a numeric id", fields[key])
                    continue
                ids[key] = text
        mounts.append(
            FileMount(
                source=source, target=target, mode=mode, uid=ids.get("uid"), gid=ids.get("gid")
            )
        )
    return tuple(mounts)


def _mode(value: Any, path: str, report: Report) -> int | None:
    """An octal mode: an integer as YAML read it (`0440` is octal there), or an octal string."""
    mode: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        mode = value
    elif isinstance(value, str) and re.fullmatch(r"0?[0-7]{1,4}", value):
        mode = int(value, 8)
    if mode is None or not 0 <= mode <= MAX_MODE:
        values.expected(report, path, 'a file mode such as 0440 or "0440"', value)
        return None
    return mode
