"""The project's files: what `spec.files` carries, checked, and how the loader looks them up.

A Compose file names other files of its project: bind mounts of `./agents.yaml` or a folder,
`configs.*.file`, `env_file`, `include`, `extends.file`. On a laptop they are read from disk
next to the Compose file; a ComposeApp carries them in `spec.files` (text inline, or a key of a
ConfigMap of its own for large or binary files), and the CLI reads them from disk. Both give
the loader the same `ProjectFiles` view, so `render` shows what the operator will run.

Paths are relative to the project folder (the Compose file's folder) and normalised: no
leading `/`, no `.` or `..` segment, no empty segment. A path that leaves the project is not a
project file, whatever the input says, so no carried file can ever land outside the folder a
mount names (tests/test_projectfiles.py proves it with hypothesis).

Sizes are bounded where a tenant controls them: etcd refuses requests over 1.5 MiB, so
`spec.compose` plus every inline file stays within 1 MiB, leaving room for status and
metadata; a file kept in its own ConfigMap is bounded by Kubernetes' 1 MiB ConfigMap limit.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from compose_operator import names
from compose_operator.errors import ComposeError, Problem
from compose_operator.project import ProjectFile

MAX_FILES = 512
"""Entries in `spec.files`: a folder of mappings or scripts, not a data set."""
MAX_PATH = 512
"""Characters in one path."""
MAX_SPEC_BYTES = 1 << 20
"""`spec.compose` plus every inline `content`, in UTF-8 bytes: 1 MiB of etcd's 1.5 MiB."""
MAX_FILE_BYTES = 1 << 20
"""One file in a ConfigMap of its own: Kubernetes refuses ConfigMaps over 1 MiB."""
MAX_MODE = 0o777
SPEC_FILE = "spec.files"

_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")
_CONFIG_MAP_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_CONFIG_MAP_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
ENTRY_KEYS = ("path", "content", "configMapKeyRef", "mode")


class ProjectFiles(Protocol):
    """What the loader and planner may ask about project files; nothing else."""

    def get(self, path: str) -> ProjectFile | None:
        """The file at a normalised project path, if the project has it."""
        ...

    def under(self, folder: str) -> tuple[ProjectFile, ...]:
        """Every file below a normalised folder path, subfolders included, by path."""
        ...


@dataclass(frozen=True)
class CarriedFiles:
    """Project files held in memory (`spec.files`, tests)."""

    files: Mapping[str, ProjectFile] = field(default_factory=dict)

    def get(self, path: str) -> ProjectFile | None:
        return self.files.get(path)

    def under(self, folder: str) -> tuple[ProjectFile, ...]:
        prefix = "" if folder in ("", ".") else f"{folder}/"
        return tuple(self.files[p] for p in sorted(self.files) if p.startswith(prefix))


NO_FILES = CarriedFiles()


def not_carried(path: str) -> str:
    return (
        f"{path} is not among the project files; carry it in spec.files "
        "(`compose-operator convert` does)"
    )


def digest(content: str | bytes) -> str:
    data = content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content
    return hashlib.sha256(data).hexdigest()


def project_file(
    path: str,
    content: str | bytes,
    *,
    mode: int | None = None,
    config_map: tuple[str, str] | None = None,
) -> ProjectFile:
    return ProjectFile(
        path=path, content=content, digest=digest(content), mode=mode, config_map=config_map
    )


def path_problem(path: str) -> str | None:
    """Why `path` is not a valid project path, or None when it is."""
    if not path:
        return "a path must not be empty"
    if len(path) > MAX_PATH:
        return f"a path has at most {MAX_PATH} characters"
    if _CONTROL.search(path):
        return "a path holds no control characters or backslashes"
    if path.startswith("/"):
        return "a path is relative to the project folder; it must not start with /"
    segments = path.split("/")
    if any(segment in ("", ".", "..") for segment in segments):
        return "a path has no empty, '.' or '..' segments (write it as `dir/file`)"
    return None


def normalize(base: str, path: str) -> str:
    """`path` as written in a file of folder `base`, relative to the project folder.

    `./x` in `sub/compose.yaml` is `sub/x`; the project folder itself is `.`; absolute and
    home paths stay as written; a path that climbs out of the project keeps its leading `..`
    (it is then a host path).
    """
    if path.startswith(("/", "~")):
        return path
    return posixpath.normpath(posixpath.join(base, path))


def references(entries: Any) -> list[tuple[str, str]]:
    """The (ConfigMap, key) pairs `spec.files` points at, for the shell to read."""
    found: list[tuple[str, str]] = []
    for entry in entries if isinstance(entries, list) else []:
        ref = entry.get("configMapKeyRef") if isinstance(entry, Mapping) else None
        if isinstance(ref, Mapping) and isinstance(ref.get("name"), str):
            found.append((ref["name"], str(ref.get("key", ""))))
    return list(dict.fromkeys(found))


def from_spec(
    entries: Any,
    referenced: Mapping[tuple[str, str], str | bytes] = {},
    *,
    compose_bytes: int = 0,
) -> CarriedFiles:
    """`spec.files` checked and read; raises ComposeError listing every problem.

    `referenced` holds the content of every `configMapKeyRef` the shell could read;
    `compose_bytes` is the size of an inline `spec.compose`, which shares the size budget.
    """
    problems: list[Problem] = []
    files: dict[str, ProjectFile] = {}
    if entries is None:
        return CarriedFiles()
    if not isinstance(entries, list):
        raise ComposeError(SPEC_FILE, [Problem("", "must be a list of {path, content} entries")])
    if len(entries) > MAX_FILES:
        problems.append(Problem("", f"{len(entries)} files; at most {MAX_FILES} are accepted"))
    inline_bytes = compose_bytes
    for index, entry in enumerate(entries):
        where = f"[{index}]"
        if not isinstance(entry, Mapping):
            problems.append(Problem(where, "must be a mapping with path and content"))
            continue
        path = entry.get("path")
        if isinstance(path, str) and path:
            where = path
        read = _entry(entry, where, referenced, problems)
        if read is None:
            continue
        if read.config_map is None and isinstance(read.content, str):
            inline_bytes += len(read.content.encode("utf-8", "surrogatepass"))
        if read.path in files:
            problems.append(Problem(where, "listed twice"))
            continue
        files[read.path] = read
    if inline_bytes > MAX_SPEC_BYTES:
        problems.append(
            Problem(
                "",
                f"spec.compose and the inline files hold {inline_bytes} bytes; at most "
                f"{MAX_SPEC_BYTES} (1 MiB) fit in a ComposeApp: keep large files in a "
                "ConfigMap of their own (configMapKeyRef)",
            )
        )
    problems += _shadowed(files)
    if problems:
        raise ComposeError(SPEC_FILE, problems)
    return CarriedFiles(files)


def _entry(
    entry: Mapping[str, Any],
    where: str,
    referenced: Mapping[tuple[str, str], str | bytes],
    problems: list[Problem],
) -> ProjectFile | None:
    for key in entry:
        if key not in ENTRY_KEYS:
            problems.append(Problem(where, f"unknown key '{key}'"))
    path = entry.get("path")
    if not isinstance(path, str):
        problems.append(Problem(where, "path must be a string"))
        return None
    why = path_problem(path)
    if why is not None:
        problems.append(Problem(where, why))
        return None
    mode = entry.get("mode")
    if mode is not None and (
        not isinstance(mode, int) or isinstance(mode, bool) or not 0 <= mode <= MAX_MODE
    ):
        problems.append(Problem(where, "mode must be a file mode from 0 to 0777 (511)"))
        return None
    has_content, ref = "content" in entry, entry.get("configMapKeyRef")
    if has_content == (ref is not None):
        problems.append(Problem(where, "give exactly one of content and configMapKeyRef"))
        return None
    if has_content:
        content = entry["content"]
        if not isinstance(content, str):
            problems.append(Problem(where, "content must be a string"))
            return None
        return project_file(path, content, mode=mode)
    ref_name = ref.get("name") if isinstance(ref, Mapping) else None
    ref_key = ref.get("key") if isinstance(ref, Mapping) else None
    name = ref_name if isinstance(ref_name, str) else ""
    key = ref_key if isinstance(ref_key, str) else ""
    if not (isinstance(name, str) and _CONFIG_MAP_NAME.match(name) and len(name) <= 253):
        problems.append(Problem(where, "configMapKeyRef.name must be a ConfigMap name"))
        return None
    if not (isinstance(key, str) and _CONFIG_MAP_KEY.match(key) and len(key) <= 253):
        problems.append(Problem(where, "configMapKeyRef.key must be a ConfigMap key"))
        return None
    if (name, key) not in referenced:
        problems.append(Problem(where, f"ConfigMap {name} has no key {key}"))
        return None
    content = referenced[name, key]
    if len(content) > MAX_FILE_BYTES:
        problems.append(Problem(where, f"ConfigMap {name} key {key} is over 1 MiB"))
        return None
    return project_file(path, content, mode=mode, config_map=(name, key))


def _shadowed(files: Mapping[str, ProjectFile]) -> list[Problem]:
    """`a` and `a/b` cannot both be files: one would be a folder."""
    problems = []
    for path in sorted(files):
        parts = path.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder in files:
                problems.append(Problem(path, f"{folder} is a file, so it cannot be a folder"))
                break
    return problems


INLINE_FILE_MAX = 256 << 10
"""A text file up to 256 KiB travels inline in the ComposeApp; a larger one, or a binary one,
in a ConfigMap of its own, so one large file does not crowd out the rest."""


def pack(
    app: str, found: Sequence[ProjectFile], *, compose_bytes: int
) -> tuple[dict[str, ProjectFile], list[Problem]]:
    """Where each file the project uses travels: inline, or in a ConfigMap of its own (the
    returned file then names it). Largest files move out first until the inline ones fit the
    ComposeApp's budget. Problems name files no ConfigMap can hold."""
    problems: list[Problem] = []
    placed: dict[str, ProjectFile] = {}
    inline: list[ProjectFile] = []
    for file in sorted(found, key=lambda f: f.path):
        size = len(file.content) if isinstance(file.content, bytes) else len(file.content.encode())
        if size > MAX_FILE_BYTES:
            problems.append(
                Problem(
                    file.path,
                    f"{size} bytes; a project file must fit a ConfigMap (1 MiB): use a named "
                    "volume for data",
                )
            )
        elif isinstance(file.content, bytes) or size > INLINE_FILE_MAX:
            placed[file.path] = _own_config_map(file, own_config_map_name(app, file.path))
        else:
            inline.append(file)
    budget = MAX_SPEC_BYTES - compose_bytes
    inline.sort(key=lambda f: (-len(str(f.content).encode()), f.path))
    total = sum(len(str(f.content).encode()) for f in inline)
    for file in inline:
        if total > budget:
            placed[file.path] = _own_config_map(file, own_config_map_name(app, file.path))
            total -= len(str(file.content).encode())
        else:
            placed[file.path] = file
    return dict(sorted(placed.items())), problems


def own_config_map_name(app: str, path: str) -> str:
    """`<app>-file-<path>`: the `file` part keeps it apart from the operator's own
    `<app>-files`, `<app>-configs` and `<app>-models`, whatever the file is called."""
    return names.dns_label(app, "file", path)


def _own_config_map(file: ProjectFile, name: str) -> ProjectFile:
    """The file moved to ConfigMap `name`, under its base name as the key."""
    key = file.path.rsplit("/", 1)[-1]
    key = key if _CONFIG_MAP_KEY.match(key) else "content"
    return ProjectFile(
        path=file.path,
        content=file.content,
        digest=file.digest,
        mode=file.mode,
        config_map=(name, key),
    )
