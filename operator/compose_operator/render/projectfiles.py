"""Project files, configs and secrets as the volumes and mounts of a service's pods.

- A bind mount of a project file puts its content at the target (a `subPath` of a ConfigMap
  volume); of a project folder, every file below it, subfolders included, through a projected
  volume whose items carry nested paths. Inline files live in one ConfigMap per app that the
  operator owns (`<app>-files`); a file kept in a ConfigMap of its own is mounted from there.
- A bind mount of a project folder with no files becomes a PersistentVolumeClaim named after
  it, like a named volume (a data folder such as `./data/mongodb`), with a warning.
- A config mounts from `<app>-configs` (its `content:` or `environment:` value), from where its
  `file:` lives, or from the existing ConfigMap it names; a secret from the Secret of its name.
  Both default to mode 0444, as Compose does.
- The pod template carries a digest of every mounted file's content, so a changed file rolls
  the pods (a `subPath` mount never sees a ConfigMap change on its own).

ConfigMap keys cannot hold `/`: a path that is not a valid key is folded and gets a short
hash of the path, so every path has its own key (`wiremock/mappings/a.json` →
`wiremock_mappings_a.json-1a2b3c4d`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from compose_operator import names
from compose_operator.errors import Problem, Warning
from compose_operator.plan import Manifest
from compose_operator.project import ComposeProject, FileMount, ProjectFile, Secret, Service
from compose_operator.render import labels

FILES_VOLUME = "compose-files"
CONFIGS_VOLUME = "compose-configs"
DIGEST_ANNOTATION = "compose-operator.io/files-digest"
DEFAULT_FILE_MODE = 0o444
"""Compose's mode for configs and secrets: read-only for everyone."""
_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")
_NOT_KEY = re.compile(r"[^-._a-zA-Z0-9]+")
MAX_KEY_READABLE = 200


def files_config_map(app: str) -> str:
    """The ConfigMap holding the app's inline project files: `<app>-files`."""
    return names.dns_label(app, "files")


def configs_config_map(app: str) -> str:
    """The ConfigMap holding the app's `configs:` contents: `<app>-configs`."""
    return names.dns_label(app, "configs")


def file_key(path: str) -> str:
    """A project path as a ConfigMap key: as written when valid, else folded and hashed."""
    if _KEY.match(path) and path not in (".", ".."):
        return path
    readable = _NOT_KEY.sub("_", path)[:MAX_KEY_READABLE].strip("_") or "file"
    return f"{readable}-{names.short_hash(path)}"


def create_secret_command(secret: Secret, namespace: str | None) -> str:
    """How to make a secret's Kubernetes Secret from what the Compose file says its value is."""
    if secret.file is not None:
        source = f"--from-file={secret.key}={secret.file}"
    elif secret.environment is not None:
        source = f'--from-literal={secret.key}="${secret.environment}"'
    else:
        source = f"--from-file={secret.key}=<file>"
    where = f"-n {namespace} " if namespace else ""
    return f"kubectl {where}create secret generic {secret.secret_name} {source}"


def missing_folder_claim(app: str, source: str) -> str:
    """The PersistentVolumeClaim for a bind-mounted project folder with no files."""
    return names.volume(app, source)


@dataclass
class ServiceMounts:
    """What one service's pods get from project files, configs and secrets."""

    volumes: list[dict[str, Any]] = field(default_factory=list)
    mounts: list[dict[str, Any]] = field(default_factory=list)
    digest: str | None = None
    """sha256 over the mounted contents; None when nothing with known content is mounted."""
    inline: dict[str, ProjectFile] = field(default_factory=dict)
    """Inline project files this service mounts: they go into `<app>-files`."""
    configs: dict[str, str] = field(default_factory=dict)
    """Config name → content this service mounts from `<app>-configs`."""
    claims: dict[str, str] = field(default_factory=dict)
    """Project folder with no files → the PVC that stands for it."""
    secrets: list[str] = field(default_factory=list)
    """Compose secret names the pods mount."""
    fs_group: int | None = None
    warnings: list[Warning] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


class _Builder:
    def __init__(self, service: Service, project: ComposeProject, app: str) -> None:
        self.service = service
        self.project = project
        self.app = app
        self.path = f"services.{service.name}"
        self.result = ServiceMounts()
        self.by_name: dict[str, dict[str, Any]] = {}
        self.digests: list[tuple[str, str]] = []
        self.targets: dict[str, str] = {}

    def build(self) -> ServiceMounts:
        for index, mount in enumerate(self.service.volumes):
            if mount.project:
                self._bind(index, mount.source, mount.target, mount.read_only)
            else:
                self.targets.setdefault(mount.target, f"{self.path}.volumes[{index}]")
        for kind, entries in (("secrets", self.service.secrets), ("configs", self.service.configs)):
            for index, entry in enumerate(entries):
                where = f"{self.path}.{kind}[{index}]"
                if self._claim_target(entry.target, where):
                    self._file_ref(kind, entry, where)
        self.result.volumes = list(self.by_name.values())
        self._check_names()
        if self.digests:
            text = "\n".join(f"{target}\t{digest}" for target, digest in sorted(self.digests))
            self.result.digest = hashlib.sha256(text.encode()).hexdigest()
        return self.result

    def _check_names(self) -> None:
        """A named volume whose pod volume name is one of ours would replace it."""
        for index, mount in enumerate(self.service.volumes):
            if mount.project:
                continue
            name = (
                names.dns_label("host", mount.source)
                if mount.bind
                else names.dns_label(mount.source)
            )
            if name in self.by_name:
                self.result.problems.append(
                    Problem(
                        f"{self.path}.volumes[{index}]",
                        f"volume {mount.source!r} would be the pod volume {name}, which holds "
                        "the service's project files, configs or secrets; rename it",
                    )
                )

    def _claim_target(self, target: str, where: str) -> bool:
        """Docker compose mounts volumes first and skips a config or secret whose target is
        taken; Kubernetes refuses two mounts at one path, so the later one is left out."""
        if target in self.targets:
            self.result.warnings.append(
                Warning(where, f"ignored: {target} is already mounted by {self.targets[target]}")
            )
            return False
        self.targets[target] = where
        return True

    # --- bind mounts of project paths -----------------------------------------------------

    def _bind(self, index: int, source: str, target: str, read_only: bool) -> None:
        where = f"{self.path}.volumes[{index}]"
        if not self._claim_target(target, where):
            return
        files = self.project.files
        single = files.get(source)
        inside = [f for p, f in files.items() if source == "." or p.startswith(f"{source}/")]
        if single is None and not inside:
            claim = missing_folder_claim(self.app, source)
            self.result.claims[source] = claim
            volume = names.dns_label(source)
            self._volume(volume, {"persistentVolumeClaim": {"claimName": claim}})
            self._mount(volume, target, read_only=read_only)
            self.result.warnings.append(
                Warning(
                    where,
                    f"./{source} has no project files; it becomes the PersistentVolumeClaim "
                    f"{claim}, an empty volume like a named one",
                )
            )
            return
        if not read_only:
            self.result.warnings.append(
                Warning(where, "project files are mounted read-only (from a ConfigMap)")
            )
        if single is not None:
            self._single(single, target, single.mode)
            return
        sources: dict[str, list[dict[str, Any]]] = {}
        for each in sorted(inside, key=lambda f: f.path):
            config_map, key = self._place(each)
            relative = each.path if source == "." else each.path[len(source) + 1 :]
            item = {"key": key, "path": relative, **_mode(each.mode)}
            sources.setdefault(config_map, []).append(item)
            self.digests.append((f"{target}/{relative}", each.digest))
        volume = names.dns_label("compose-dir", source)
        projected = [
            {"configMap": {"name": name, "items": items}} for name, items in sorted(sources.items())
        ]
        self._volume(volume, {"projected": {"sources": projected}})
        self._mount(volume, target, read_only=True)

    def _place(self, file: ProjectFile) -> tuple[str, str]:
        """The ConfigMap and key holding a project file."""
        if file.config_map is not None:
            return file.config_map
        self.result.inline[file.path] = file
        return files_config_map(self.app), file_key(file.path)

    def _single(self, file: ProjectFile, target: str, mode: int | None) -> None:
        config_map, key = self._place(file)
        volume = (
            FILES_VOLUME if file.config_map is None else names.dns_label("compose-cm", config_map)
        )
        path = self._item(volume, {"configMap": {"name": config_map}}, key, mode)
        self._mount(volume, target, read_only=True, sub_path=path)
        self.digests.append((target, file.digest))

    # --- configs and secrets ----------------------------------------------------------------

    def _file_ref(self, kind: str, entry: FileMount, where: str) -> None:
        mode = DEFAULT_FILE_MODE if entry.mode is None else entry.mode
        self._ids(entry, where)
        if kind == "secrets":
            secret = self.project.secrets[entry.source]
            volume = names.dns_label("compose-secret", secret.secret_name)
            path = self._item(
                volume, {"secret": {"secretName": secret.secret_name}}, secret.key, mode
            )
            self._mount(volume, entry.target, read_only=True, sub_path=path)
            self.result.secrets.append(entry.source)
            return
        config = self.project.configs[entry.source]
        if config.file is not None:
            self._single(self.project.files[config.file], entry.target, mode)
        elif config.config_map is not None:
            volume = names.dns_label("compose-cm", config.config_map)
            path = self._item(volume, {"configMap": {"name": config.config_map}}, config.key, mode)
            self._mount(volume, entry.target, read_only=True, sub_path=path)
        else:
            content = config.content or ""
            self.result.configs[config.name] = content
            source = {"configMap": {"name": configs_config_map(self.app)}}
            path = self._item(CONFIGS_VOLUME, source, config.name, mode)
            self._mount(CONFIGS_VOLUME, entry.target, read_only=True, sub_path=path)
            self.digests.append((entry.target, hashlib.sha256(content.encode()).hexdigest()))

    def _ids(self, entry: FileMount, where: str) -> None:
        """Kubernetes sets no owner on projected files: a gid becomes the pod's fsGroup (the
        files' group), a uid cannot be honoured."""
        if entry.uid is not None:
            self.result.warnings.append(
                Warning(f"{where}.uid", "Kubernetes cannot set a file's owner; ignored")
            )
        if entry.gid is None:
            return
        gid = int(entry.gid)
        if self.result.fs_group not in (None, gid):
            self.result.warnings.append(
                Warning(
                    f"{where}.gid",
                    f"the pod's files already belong to group {self.result.fs_group}; ignored",
                )
            )
            return
        self.result.fs_group = gid

    # --- volume bookkeeping ---------------------------------------------------------------

    def _volume(self, name: str, source: dict[str, Any]) -> None:
        self.by_name.setdefault(name, {"name": name, **source})

    def _item(self, volume: str, source: dict[str, Any], key: str, mode: int | None) -> str:
        """Add `key` to a ConfigMap or Secret volume; the path it lands at inside it."""
        self._volume(volume, source)
        kind = "secret" if "secret" in source else "configMap"
        items: list[dict[str, Any]] = self.by_name[volume][kind].setdefault("items", [])
        path = key if mode is None else f"{mode:o}/{key}"
        if not any(i["path"] == path for i in items):
            items.append({"key": key, "path": path, **_mode(mode)})
        return path

    def _mount(
        self, volume: str, target: str, *, read_only: bool, sub_path: str | None = None
    ) -> None:
        mount: dict[str, Any] = {"name": volume, "mountPath": target}
        if read_only:
            mount["readOnly"] = True
        if sub_path is not None:
            mount["subPath"] = sub_path
        self.result.mounts.append(mount)


def _mode(mode: int | None) -> dict[str, int]:
    return {} if mode is None else {"mode": mode}


def service_mounts(service: Service, project: ComposeProject, app: str) -> ServiceMounts:
    """The volumes, mounts and digest for one service's pods, and what the app must own."""
    return _Builder(service, project, app).build()


def build_files_config_map(app: str, namespace: str, files: Mapping[str, ProjectFile]) -> Manifest:
    """`<app>-files`: the inline project files some service mounts. Inline files are text
    (spec.files `content`); binary ones always travel in ConfigMaps of their own."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": files_config_map(app),
            "namespace": namespace,
            "labels": labels.common(app),
        },
        "data": {file_key(p): str(f.content) for p, f in sorted(files.items())},
    }


def build_configs_config_map(app: str, namespace: str, contents: Mapping[str, str]) -> Manifest:
    """`<app>-configs`: the content of every config given by `content:` or `environment:`."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": configs_config_map(app),
            "namespace": namespace,
            "labels": labels.common(app),
        },
        "data": dict(sorted(contents.items())),
    }
