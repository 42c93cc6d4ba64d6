"""A project folder on disk as `ProjectFiles`: what `render` and `convert` read.

`docker compose` reads the files a Compose file names from the folder it lives in; so do
`render` and `convert`, through the same view the operator has of `spec.files`. Every file
read is recorded, so `convert` packs exactly what the Compose file uses, and `render` can then
plan with the files placed as `convert` would place them (inline, or in a ConfigMap of their
own). Reading is bounded: no file over 1 MiB (a ConfigMap's limit), at most `MAX_FILES`
files, and no symlink leading out of the project folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from compose_operator.compose.projectfiles import (
    MAX_FILE_BYTES,
    MAX_FILES,
    path_problem,
    project_file,
)
from compose_operator.errors import ComposeError, Problem
from compose_operator.project import ProjectFile

EXECUTABLE = 0o755


@dataclass
class ProjectDir:
    """Project files read on demand from `root`, each read once and remembered."""

    root: Path
    excluded: frozenset[str] = frozenset()
    """Paths never read, as if absent: the files of the project's secrets."""
    read: dict[str, ProjectFile] = field(default_factory=dict)
    """Every file the loader asked for and found, by project path."""

    def get(self, path: str) -> ProjectFile | None:
        if path in self.read:
            return self.read[path]
        if path_problem(path) is not None or path in self.excluded:
            return None
        full = self.root / path
        if not full.is_file():
            return None
        self._check_inside(full, path)
        return self._load(path, full)

    def under(self, folder: str) -> tuple[ProjectFile, ...]:
        base = self.root if folder in ("", ".") else self.root / folder
        if (path_problem(folder) is not None and folder != ".") or not base.is_dir():
            return ()
        self._check_inside(base, folder)
        found: list[ProjectFile] = []
        for directory, subfolders, files in os.walk(base):
            subfolders.sort()
            for name in sorted(files):
                full = Path(directory) / name
                relative = full.relative_to(self.root).as_posix()
                if not full.is_file() or relative in self.excluded:
                    continue
                self._check_inside(full, relative)
                if len(found) >= MAX_FILES:
                    raise ComposeError(
                        folder,
                        [
                            Problem(
                                "",
                                f"more than {MAX_FILES} files; a project folder mounted "
                                "from a ConfigMap holds configuration, not data",
                            )
                        ],
                    )
                found.append(self.read.get(relative) or self._load(relative, full))
        return tuple(sorted(found, key=lambda f: f.path))

    def _check_inside(self, full: Path, path: str) -> None:
        """Refuses a symlink out of the project: convert would pack what it points at."""
        resolved = full.resolve()
        root = self.root.resolve()
        if resolved != root and root not in resolved.parents:
            raise ComposeError(
                path, [Problem("", f"a symlink leading out of the project folder ({resolved})")]
            )

    def _load(self, path: str, full: Path) -> ProjectFile:
        size = full.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ComposeError(
                path,
                [
                    Problem(
                        "",
                        f"{size} bytes; a project file must fit a ConfigMap (1 MiB): use a "
                        "named volume for data",
                    )
                ],
            )
        data = full.read_bytes()
        try:
            content: str | bytes = data.decode("utf-8")
        except UnicodeDecodeError:
            content = data
        mode = EXECUTABLE if os.access(full, os.X_OK) else None
        found = project_file(path, content, mode=mode)
        self.read[path] = found
        return found
