"""The whole file: read, interpolate, then each top-level element into one ComposeProject."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from compose_operator.compose import filerefs, merge, models, services, values
from compose_operator.compose.assemble import Assembler
from compose_operator.compose.projectfiles import NO_FILES, ProjectFiles
from compose_operator.compose.report import Report, child
from compose_operator.errors import ComposeError, Problem
from compose_operator.project import ComposeProject, ProjectFile, Service, Volume

TOP_LEVEL_KEYS = (
    "name",
    "services",
    "models",
    "volumes",
    "networks",
    "configs",
    "secrets",
    "version",
    "include",
)
IGNORED_TOP_LEVEL = ("networks", "version")
VOLUME_KEYS = ("driver", "driver_opts", "external", "labels", "name", "x-kubernetes")
VOLUME_KUBERNETES_KEYS = ("size", "storageClass")
PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
MAX_ENTRIES = {"models": 64, "services": 256, "volumes": 256}
"""Entries per top-level element: each becomes objects in the cluster and work in every
reconcile, and a ComposeApp is one team's application, not a cluster's worth."""


def load_project(
    text: str,
    *,
    file: str = "compose.yaml",
    environment: Mapping[str, str] = {},
    files: ProjectFiles = NO_FILES,
    images: Mapping[str, str] = {},
    images_file: str = "spec.images",
) -> ComposeProject:
    """The typed project, with warnings for what Kubernetes ignores.

    Raises ComposeError listing every problem in file order; nothing else escapes.
    `environment` alone feeds `${VAR}` interpolation (never the operator's own environment);
    `files` are the project's other files (`spec.files`, or the disk for the CLI); `images`
    gives services their image (`spec.images`, or `--image` for the CLI: `images_file`).
    """
    report = Report()
    document = Assembler(files, environment, report).main(text)
    if document is None or report.problems:
        raise ComposeError(file, report.sorted_problems())
    project = _project(merge.unique(document), environment, files, images, report)
    for service in sorted(set(images) - set(project.services)):
        report.add(
            Problem(
                service,
                "an image is given for it, but the project has no such service",
                None,
                images_file,
            )
        )
    if report.problems:
        raise ComposeError(file, report.sorted_problems())
    return project


def _project(
    document: dict[str, Any],
    environment: Mapping[str, str],
    files: ProjectFiles,
    images: Mapping[str, str],
    report: Report,
) -> ComposeProject:
    _check_top_level_keys(document, report)
    for key, limit in MAX_ENTRIES.items():
        entries = document.get(key)
        if isinstance(entries, dict) and len(entries) > limit:
            report.problem(key, f"{len(entries)} entries; at most {limit} are accepted")
            return ComposeProject()
    name = _name(document, report)
    model_map = {}
    if document.get("models") is not None:
        model_map = models.parse_models(document["models"], report)
    volume_map = _volumes(document.get("volumes"), report)
    configs = {}
    if document.get("configs") is not None:
        configs = filerefs.parse_configs(document["configs"], files, environment, report)
    secrets = {}
    if document.get("secrets") is not None:
        secrets = filerefs.parse_secrets(document["secrets"], report)
    service_map: dict[str, Service] = {}
    if document.get("services") is not None:
        context = services.Context(
            models=_declared(document, "models"),
            volumes=_declared(document, "volumes"),
            environment=environment,
            files=files,
            configs=_declared(document, "configs"),
            secrets=_declared(document, "secrets"),
            images=images,
        )
        service_map = services.parse_services(document["services"], context, report)
    return ComposeProject(
        models=model_map,
        services=service_map,
        volumes=volume_map,
        configs=configs,
        secrets=secrets,
        files=_mounted_files(service_map, configs, files),
        warnings=report.warnings,
        name=name,
    )


def _mounted_files(
    service_map: Mapping[str, Service], configs: Mapping[str, Any], files: ProjectFiles
) -> dict[str, ProjectFile]:
    """The project files some service mounts: bind-mounted files and folders, config files."""
    found: dict[str, ProjectFile] = {}
    for service in service_map.values():
        for mount in service.volumes:
            if mount.project:
                single = files.get(mount.source)
                for each in (single,) if single is not None else files.under(mount.source):
                    found[each.path] = each
    for config in configs.values():
        single = files.get(config.file) if config.file else None
        if single is not None:
            found[single.path] = single
    return dict(sorted(found.items()))


def _check_top_level_keys(document: dict[str, Any], report: Report) -> None:
    for key in document:
        if key.startswith("x-"):
            continue
        if key in IGNORED_TOP_LEVEL:
            report.warn(key, "ignored on Kubernetes")
        elif key not in TOP_LEVEL_KEYS:
            report.unknown_key("", key, TOP_LEVEL_KEYS)


def _declared(document: dict[str, Any], key: str) -> set[str]:
    """Keys declared under `models:` or `volumes:`, even those with problems of their own, so a
    service using one is not also told it is undefined."""
    element = document.get(key)
    return set(element) if isinstance(element, dict) else set()


def _name(document: dict[str, Any], report: Report) -> str | None:
    if "name" not in document:
        return None
    name = values.string(document["name"], "name", report)
    if name is not None and not PROJECT_NAME.match(name):
        report.problem(
            "name",
            "a project name holds lowercase letters, digits, '-' and '_', "
            "and starts with a letter or digit",
        )
    return name


def _volumes(value: Any, report: Report) -> dict[str, Volume]:
    if value is None:
        return {}
    volumes: dict[str, Volume] = {}
    for key, body in (values.mapping(value, "volumes", report) or {}).items():
        path = child("volumes", key)
        fields = {} if body is None else values.mapping(body, path, report)
        if fields is None:
            continue
        values.unknown_keys(fields, path, VOLUME_KEYS, report)
        for ignored in ("driver", "driver_opts", "external", "labels", "name"):
            if ignored in fields:
                report.warn(child(path, ignored), "no meaning on Kubernetes; ignored")
        size = storage_class = None
        if "x-kubernetes" in fields:
            options_path = child(path, "x-kubernetes")
            options = values.mapping(fields["x-kubernetes"], options_path, report) or {}
            for option in options:
                if option not in VOLUME_KUBERNETES_KEYS:
                    report.unknown_key(options_path, option, VOLUME_KUBERNETES_KEYS)
            if "size" in options:
                size = models.quantity(options["size"], child(options_path, "size"), report)
            if "storageClass" in options:
                storage_class = values.nonempty_string(
                    options["storageClass"], child(options_path, "storageClass"), report
                )
        volumes[key] = Volume(name=key, size=size, storage_class=storage_class)
    return volumes
